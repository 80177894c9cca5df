// NVMe structures as a controller (the untrusted side) writes them: completion entries, Identify
// Controller data, the CAP register; and the ones vfiokit builds: commands, AQA, doorbells.
//
// Invariants: completion fields put back together give the entry's bytes; identity strings are
// at most their field's length, printable ASCII (they reach terminals and logs), and without
// trailing padding, and a field that is already printable ASCII comes back as it is, less its
// padding; CAP fields are in the ranges the spec gives them; an Identify command holds its
// opcode, command ID, PRP1 and CNS where the spec puts them and nothing else; AQA encodes the
// queue size it was given, and refuses exactly the sizes outside 2..4096; doorbells are
// stride apart.
#include <cstring>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/drivers/nvme_protocol.h"

namespace vfiokit::drivers::nvme {
namespace {

using fuzz::get_le;

bool power_of_two(std::uint64_t value) { return value != 0 && (value & (value - 1)) == 0; }

void check_string(const std::string& parsed, std::span<const std::uint8_t> field) {
  FUZZ_CHECK(parsed.size() <= field.size());
  for (char c : parsed) FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
  if (!parsed.empty()) FUZZ_CHECK(parsed.back() != ' ');
  bool printable = true;
  std::size_t end = field.size();
  while (end > 0 && (field[end - 1] == ' ' || field[end - 1] == 0)) --end;
  for (std::size_t i = 0; i < end; ++i) printable &= field[i] >= 0x20 && field[i] <= 0x7e;
  if (printable) {
    FUZZ_CHECK(parsed == std::string(reinterpret_cast<const char*>(field.data()), end));
  }
}

void completion(FuzzedDataProvider& data) {
  const auto entry =
      data.ConsumeBytes<std::uint8_t>(data.ConsumeIntegralInRange<std::size_t>(0, 20));
  try {
    const Completion c = parse_completion(entry);
    FUZZ_CHECK(entry.size() >= kCompletionEntrySize);
    FUZZ_CHECK(c.result == get_le(entry, 0, 4));
    FUZZ_CHECK((c.sq_head | std::uint32_t{c.sq_id} << 16) == get_le(entry, 8, 4));
    FUZZ_CHECK((c.command_id | std::uint32_t{c.phase} << 16 | std::uint32_t{c.status} << 17) ==
               get_le(entry, 12, 4));
  } catch (const Error&) {
    FUZZ_CHECK(entry.size() < kCompletionEntrySize);
  }
}

void identify(FuzzedDataProvider& data) {
  std::vector<std::uint8_t> page = data.ConsumeBytes<std::uint8_t>(72);
  page.resize(data.ConsumeBool() ? 4096 : data.ConsumeIntegralInRange<std::size_t>(0, 4100));
  try {
    const ControllerIdentity id = parse_identify_controller(page);
    FUZZ_CHECK(page.size() >= 4096);
    FUZZ_CHECK(id.vendor_id == get_le(page, 0, 2));
    FUZZ_CHECK(id.subsystem_vendor_id == get_le(page, 2, 2));
    check_string(id.serial, std::span(page).subspan(4, 20));
    check_string(id.model, std::span(page).subspan(24, 40));
    check_string(id.firmware, std::span(page).subspan(64, 8));
  } catch (const Error&) {
    FUZZ_CHECK(page.size() < 4096);
  }
}

void registers(FuzzedDataProvider& data) {
  const auto cap = data.ConsumeIntegral<std::uint64_t>();
  const Capabilities c = parse_capabilities(cap);
  FUZZ_CHECK(c.max_queue_entries >= 1 && c.max_queue_entries <= 65536);
  FUZZ_CHECK(c.timeout_ms % 500 == 0 && c.timeout_ms <= 255 * 500);
  FUZZ_CHECK(power_of_two(c.doorbell_stride) && c.doorbell_stride >= 4 &&
             c.doorbell_stride <= 4u << 15);
  FUZZ_CHECK(power_of_two(c.min_page_size) && c.min_page_size >= 4096 &&
             c.min_page_size <= 4096u << 15);
  FUZZ_CHECK(c.nvm_command_set == (((cap >> 37) & 1) != 0));

  const auto queue = data.ConsumeIntegral<std::uint16_t>();
  const std::uint32_t stride = c.doorbell_stride;
  const std::uint64_t tail = doorbell_offset(queue, false, stride);
  const std::uint64_t head = doorbell_offset(queue, true, stride);
  FUZZ_CHECK(tail >= kDoorbellBase && head == tail + stride);
  if (queue > 0)
    FUZZ_CHECK(doorbell_offset(static_cast<std::uint16_t>(queue - 1), true, stride) + stride ==
               tail);

  const auto entries = data.ConsumeIntegralInRange<std::uint32_t>(0, 5000);
  try {
    const std::uint32_t aqa = admin_queue_attributes(entries);
    FUZZ_CHECK(entries >= 2 && entries <= 4096);
    FUZZ_CHECK((aqa & 0xfff) + 1 == entries && ((aqa >> 16) & 0xfff) + 1 == entries);
    FUZZ_CHECK((aqa & 0xf000f000u) == 0);
  } catch (const Error&) {
    FUZZ_CHECK(entries < 2 || entries > 4096);
  }

  const auto command_id = data.ConsumeIntegral<std::uint16_t>();
  const auto cns = data.ConsumeIntegral<std::uint32_t>();
  const auto prp1 = data.ConsumeIntegral<std::uint64_t>();
  const SubmissionEntry command = identify_command(command_id, cns, prp1);
  FUZZ_CHECK(command[0] == kOpcodeIdentify && command[1] == 0);
  FUZZ_CHECK(get_le(command, 2, 2) == command_id);
  FUZZ_CHECK(get_le(command, 24, 8) == prp1);
  FUZZ_CHECK(get_le(command, 40, 4) == cns);
  for (std::size_t i = 4; i < kSubmissionEntrySize; ++i) {
    if ((i >= 24 && i < 32) || (i >= 40 && i < 44)) continue;
    FUZZ_CHECK(command[i] == 0);
  }
  FUZZ_CHECK((enabled_configuration() & 1) == 1);
}

}  // namespace
}  // namespace vfiokit::drivers::nvme

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  using namespace vfiokit::drivers::nvme;
  FuzzedDataProvider data(bytes, size);
  switch (data.ConsumeIntegralInRange<int>(0, 2)) {
    case 0:
      completion(data);
      break;
    case 1:
      identify(data);
      break;
    default:
      registers(data);
      break;
  }
  return 0;
}
