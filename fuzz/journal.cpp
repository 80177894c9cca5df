// The binding journal's file format (bind/journal.h): any text, and entries built from fuzzed
// values.
//
// Invariants: parsing fails only with vfiokit::Error; whatever parses formats to a text that
// parses to the same entry, and formatting that entry again gives the same text; an entry built
// from valid values survives format then parse unchanged.
#include <string_view>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/bind/journal.h"

namespace vfiokit::bind {
namespace {

std::string driver_name(FuzzedDataProvider& data) {
  static constexpr std::string_view kChars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:!~+@";
  std::string name(data.ConsumeIntegralInRange<std::size_t>(1, 255), 'x');
  for (char& c : name) c = kChars[data.ConsumeIntegralInRange<std::size_t>(0, kChars.size() - 1)];
  return name == "-" ? "x" : name;  // "-" stands for "unset"
}

void built(FuzzedDataProvider& data) {
  JournalEntry entry;
  entry.bdf = {data.ConsumeIntegral<std::uint32_t>(), data.ConsumeIntegral<std::uint8_t>(),
               data.ConsumeIntegralInRange<std::uint8_t>(0, 31),
               data.ConsumeIntegralInRange<std::uint8_t>(0, 7)};
  entry.group = data.ConsumeIntegral<std::uint32_t>();
  if (data.ConsumeBool()) entry.original_driver = driver_name(data);
  if (data.ConsumeBool()) entry.original_override = driver_name(data);
  entry.target_driver = driver_name(data);
  entry.state = data.ConsumeBool() ? JournalState::bound : JournalState::binding;
  entry.pid = data.ConsumeIntegralInRange<int>(0, 0x7fffffff);
  FUZZ_CHECK(parse_journal_entry(format_journal_entry(entry)) == entry);
}

}  // namespace
}  // namespace vfiokit::bind

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::bind;
  if (size > 0 && bytes[0] == 0xb1) {  // a marker no journal text starts with
    FuzzedDataProvider data(bytes + 1, size - 1);
    built(data);
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes), size);
  JournalEntry entry;
  try {
    entry = parse_journal_entry(text);
  } catch (const vfiokit::Error&) {
    return 0;
  }
  const std::string formatted = format_journal_entry(entry);
  FUZZ_CHECK(parse_journal_entry(formatted) == entry);
  FUZZ_CHECK(format_journal_entry(parse_journal_entry(formatted)) == formatted);
  return 0;
}
