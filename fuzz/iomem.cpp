// /proc/iomem as the display-in-use check reads it (bind/display.h): any text, and files built
// from fuzzed trees of ranges in the kernel's layout.
//
// Invariants: every range ends at or after its start and has a name without a line break; a
// range has a parent exactly when it is nested, the parent comes earlier and is one level up;
// no more ranges than lines; every firmware framebuffer found on a device has a framebuffer's
// name and, when it names a BAR, lies inside that BAR; built files parse back to exactly the
// ranges, names, depths and parents they were built from.
#include <string_view>

#include "fuzz/fuzz.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/display.h"

namespace vfiokit::bind {
namespace {

std::string hex_digits(std::uint64_t value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  do {
    text.insert(text.begin(), kDigits[value & 0xf]);
    value >>= 4;
  } while (value != 0);
  while (text.size() < 8) text.insert(text.begin(), '0');
  return text;
}

void check_ranges(const std::vector<IomemRange>& ranges, std::string_view text) {
  FUZZ_CHECK(ranges.size() <= split_lines(text).size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const IomemRange& range = ranges[i];
    FUZZ_CHECK(range.start <= range.end);
    FUZZ_CHECK(range.name.find('\n') == std::string::npos);
    FUZZ_CHECK(range.parent.has_value() == (range.depth > 0));
    if (range.parent) {
      FUZZ_CHECK(*range.parent < i);
      FUZZ_CHECK(ranges[*range.parent].depth + 1 == range.depth);
    }
  }
}

void check_framebuffers(const std::vector<IomemRange>& ranges, FuzzedDataProvider& data) {
  std::vector<pci::Bar> bars;
  const auto count = data.ConsumeIntegralInRange<unsigned>(0, 6);
  for (unsigned i = 0; i < count; ++i) {
    pci::Bar bar;
    bar.index = i;
    bar.kind = data.ConsumeBool() ? pci::BarKind::mem64 : pci::BarKind::io;
    bar.address = data.ConsumeIntegral<std::uint64_t>();
    bar.size = data.ConsumeIntegral<std::uint64_t>();
    bars.push_back(bar);
  }
  const pci::Bdf bdf{0, data.ConsumeIntegral<std::uint8_t>(), 0, 0};
  for (const auto& fb : firmware_framebuffers_on(ranges, bdf, bars)) {
    FUZZ_CHECK(is_firmware_framebuffer(fb.name));
    FUZZ_CHECK(fb.start <= fb.end);
    if (!fb.bar) continue;
    FUZZ_CHECK(*fb.bar < bars.size());
    const pci::Bar& bar = bars[*fb.bar];
    FUZZ_CHECK(bar.kind != pci::BarKind::io && bar.size > 0);
    FUZZ_CHECK(fb.start >= bar.address && fb.end - bar.address <= bar.size - 1);
  }
}

void built(FuzzedDataProvider& data) {
  static constexpr std::string_view kNames[] = {
      "efifb",  "PCI Bus 0000:00",      "0000:00:00.0", "System RAM",
      "BOOTFB", "simple-framebuffer.0", "Reserved",     ""};
  std::string text;
  std::vector<IomemRange> expected;
  std::vector<std::size_t> open;
  while (data.remaining_bytes() > 0 && expected.size() < 256) {
    IomemRange range;
    range.depth = data.ConsumeIntegralInRange<unsigned>(0, static_cast<unsigned>(open.size()));
    open.resize(range.depth);
    if (range.depth > 0) range.parent = open.back();
    range.start = data.ConsumeIntegral<std::uint64_t>();
    range.end = range.start + data.ConsumeIntegralInRange<std::uint64_t>(0, ~range.start);
    range.name = std::string(kNames[data.ConsumeIntegralInRange<std::size_t>(0, 7)]);
    text += std::string(2 * range.depth, ' ') + hex_digits(range.start) + "-" +
            hex_digits(range.end) + " : " + range.name + "\n";
    open.push_back(expected.size());
    expected.push_back(std::move(range));
  }
  const auto parsed = parse_iomem(text);
  FUZZ_CHECK(parsed.size() == expected.size());
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    FUZZ_CHECK(parsed[i].start == expected[i].start && parsed[i].end == expected[i].end);
    FUZZ_CHECK(parsed[i].name == expected[i].name && parsed[i].depth == expected[i].depth);
    FUZZ_CHECK(parsed[i].parent == expected[i].parent);
  }
  check_ranges(parsed, text);
}

}  // namespace
}  // namespace vfiokit::bind

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size > 0 && bytes[0] == 0xb1) {  // built files
    FuzzedDataProvider data(bytes + 1, size - 1);
    vfiokit::bind::built(data);
    return 0;
  }
  // The text, then (from the same bytes, read as numbers) BARs to look for framebuffers in.
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  const auto ranges = vfiokit::bind::parse_iomem(text);
  vfiokit::bind::check_ranges(ranges, text);
  FuzzedDataProvider data(bytes, size);
  vfiokit::bind::check_framebuffers(ranges, data);
  return 0;
}
