// `vfiokit persist`'s udev rule and softdep files (bind/persist.h): any text as a rule file,
// and entries built from fuzzed values.
//
// Invariants: a rule that parses renders to a rule that parses to the same entry; an entry built
// from valid values survives render then parse unchanged; the softdep file has one line per
// host driver and each says exactly "softdep DRIVER pre: vfio-pci" (four words: a driver name
// that splits into more words would give modprobe other dependencies than the one meant).
#include <cctype>
#include <set>
#include <string_view>

#include "fuzz/fuzz.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/persist.h"

namespace vfiokit::bind {
namespace {

void check_softdeps(const std::vector<PersistEntry>& entries) {
  std::set<std::string> drivers;
  for (const auto& entry : entries) {
    if (entry.host_driver) drivers.insert(*entry.host_driver);
  }
  const std::string text = render_softdeps(entries);
  FUZZ_CHECK(text.empty() == drivers.empty());
  std::size_t rules = 0;
  for (const std::string_view line : split_lines(text)) {
    if (line.starts_with("#")) continue;
    ++rules;
    std::vector<std::string_view> words;
    std::size_t pos = 0;
    while (pos < line.size()) {  // modprobe.d splits on any whitespace
      while (pos < line.size() && std::isspace(static_cast<unsigned char>(line[pos]))) ++pos;
      const std::size_t start = pos;
      while (pos < line.size() && !std::isspace(static_cast<unsigned char>(line[pos]))) ++pos;
      if (pos > start) words.push_back(line.substr(start, pos - start));
    }
    FUZZ_CHECK(words.size() == 4);
    FUZZ_CHECK(words[0] == "softdep" && drivers.count(std::string(words[1])) &&
               words[2] == "pre:" && words[3] == "vfio-pci");
  }
  FUZZ_CHECK(rules == drivers.size());
}

std::string driver_name(FuzzedDataProvider& data) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyz0123456789_-";
  std::string name(data.ConsumeIntegralInRange<std::size_t>(1, 40), 'x');
  for (char& c : name) c = kChars[data.ConsumeIntegralInRange<std::size_t>(0, kChars.size() - 1)];
  return name == "-" ? "x" : name;
}

}  // namespace
}  // namespace vfiokit::bind

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::bind;
  if (size > 0 && bytes[0] == 0xb1) {  // built entries
    FuzzedDataProvider data(bytes + 1, size - 1);
    std::vector<PersistEntry> entries;
    while (data.remaining_bytes() > 0 && entries.size() < 8) {
      PersistEntry entry;
      entry.bdf = {data.ConsumeIntegral<std::uint32_t>(), data.ConsumeIntegral<std::uint8_t>(),
                   data.ConsumeIntegralInRange<std::uint8_t>(0, 31),
                   data.ConsumeIntegralInRange<std::uint8_t>(0, 7)};
      entry.vendor_id = data.ConsumeIntegral<std::uint16_t>();
      entry.device_id = data.ConsumeIntegral<std::uint16_t>();
      if (data.ConsumeBool()) entry.host_driver = driver_name(data);
      FUZZ_CHECK(parse_udev_rule(render_udev_rule(entry)) == entry);
      entries.push_back(entry);
    }
    check_softdeps(entries);
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  const auto entry = parse_udev_rule(text);
  if (!entry) return 0;
  FUZZ_CHECK(parse_udev_rule(render_udev_rule(*entry)) == entry);
  check_softdeps({*entry});
  return 0;
}
