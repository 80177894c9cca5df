// sysfs "resource" files: one "0x<start> 0x<end> 0x<flags>" line per resource, BARs 0..5 first.
//
// Invariants: every parsed range ends at or after its start and, unless it is the all-zero
// unimplemented entry, has a size that is not zero (a size that wraps would make a BAR vanish);
// printing the ranges back and parsing them gives the same ranges; the BARs taken from them
// are in index order below 6, each as big as its range, typed by its flags.
#include <cinttypes>
#include <string_view>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/pci/device.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::pci;
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  std::vector<ResourceRange> ranges;
  try {
    ranges = parse_resource_file(text);
  } catch (const vfiokit::Error&) {
    return 0;
  }
  std::string printed;
  for (const ResourceRange& range : ranges) {
    FUZZ_CHECK(range.end >= range.start);
    FUZZ_CHECK(range.empty() == (range.size() == 0));
    if (!range.empty()) FUZZ_CHECK(range.size() - 1 == range.end - range.start);
    char line[80];
    std::snprintf(line, sizeof line, "0x%016" PRIx64 " 0x%016" PRIx64 " 0x%016" PRIx64 "\n",
                  range.start, range.end, range.flags);
    printed += line;
  }
  const auto again = parse_resource_file(printed);
  FUZZ_CHECK(again.size() == ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    FUZZ_CHECK(again[i].start == ranges[i].start && again[i].end == ranges[i].end &&
               again[i].flags == ranges[i].flags);
  }

  const auto bars = bars_from_resources(ranges);
  unsigned next = 0;
  for (const Bar& bar : bars) {
    FUZZ_CHECK(bar.index >= next && bar.index < 6);
    next = bar.index + 1;
    const ResourceRange& range = ranges[bar.index];
    FUZZ_CHECK(bar.size != 0 && bar.size == range.size() && bar.address == range.start);
    FUZZ_CHECK((bar.kind == BarKind::io) == ((range.flags & 0x100) != 0));
  }
  // Every range with a size and a type is a BAR.
  std::size_t typed = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(ranges.size(), 6); ++i) {
    if (ranges[i].size() != 0 && (ranges[i].flags & 0x300) != 0) ++typed;
  }
  FUZZ_CHECK(typed == bars.size());
  return 0;
}
