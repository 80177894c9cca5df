#include "vfiokit/drivers/nvme_protocol.h"

#include <cstring>

#include "vfiokit/base/error.h"

namespace vfiokit::drivers::nvme {
namespace {

void put32(SubmissionEntry& entry, std::size_t offset, std::uint32_t value) {
  for (int i = 0; i < 4; ++i)
    entry[offset + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(value >> (8 * i));
}

std::uint32_t get32(std::span<const std::uint8_t> bytes, std::size_t offset) {
  return static_cast<std::uint32_t>(bytes[offset]) |
         static_cast<std::uint32_t>(bytes[offset + 1]) << 8 |
         static_cast<std::uint32_t>(bytes[offset + 2]) << 16 |
         static_cast<std::uint32_t>(bytes[offset + 3]) << 24;
}

// The spec's ASCII fields, padded with spaces (some controllers pad with NULs). The controller is
// not trusted: anything but printable ASCII becomes '?', so no control byte or escape sequence
// it wrote reaches a terminal or a log.
std::string ascii_field(std::span<const std::uint8_t> data, std::size_t offset, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data.data() + offset), size);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  for (char& c : text) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return text;
}

}  // namespace

Capabilities parse_capabilities(std::uint64_t cap) {
  Capabilities c;
  c.max_queue_entries = static_cast<std::uint32_t>(cap & 0xffff) + 1;
  c.timeout_ms = static_cast<std::uint32_t>((cap >> 24) & 0xff) * 500;
  c.doorbell_stride = 4u << ((cap >> 32) & 0xf);
  c.min_page_size = 4096u << ((cap >> 48) & 0xf);
  c.nvm_command_set = ((cap >> 37) & 0x1) != 0;
  return c;
}

std::uint32_t enabled_configuration() {
  constexpr std::uint32_t kEnable = 1u << 0;
  constexpr std::uint32_t kSqEntrySize = 6u << 16;  // 2^6 = 64 bytes
  constexpr std::uint32_t kCqEntrySize = 4u << 20;  // 2^4 = 16 bytes
  // CSS 0 (NVM), MPS 0 (4 KiB), AMS 0 (round robin), SHN 0.
  return kEnable | kSqEntrySize | kCqEntrySize;
}

std::uint32_t admin_queue_attributes(std::uint32_t entries) {
  if (entries < 2 || entries > 4096) {
    throw Error("NVMe admin queues", "size " + std::to_string(entries) + " is outside 2..4096");
  }
  return (entries - 1) << 16 | (entries - 1);  // ACQS, ASQS: both 0-based
}

std::uint64_t doorbell_offset(std::uint16_t queue, bool completion, std::uint32_t stride) {
  return kDoorbellBase + (2 * std::uint64_t{queue} + (completion ? 1 : 0)) * stride;
}

SubmissionEntry identify_command(std::uint16_t command_id, std::uint32_t cns, std::uint64_t prp1) {
  SubmissionEntry entry{};
  put32(entry, 0, kOpcodeIdentify | static_cast<std::uint32_t>(command_id) << 16);  // CDW0
  put32(entry, 4, 0);                                                               // NSID
  put32(entry, 24, static_cast<std::uint32_t>(prp1));                               // PRP1
  put32(entry, 28, static_cast<std::uint32_t>(prp1 >> 32));
  put32(entry, 40, cns);  // CDW10
  return entry;
}

Completion parse_completion(std::span<const std::uint8_t> entry) {
  if (entry.size() < kCompletionEntrySize) {
    throw Error("NVMe completion", "entry is " + std::to_string(entry.size()) + " bytes, not 16");
  }
  Completion c;
  c.result = get32(entry, 0);
  const std::uint32_t dw2 = get32(entry, 8);
  const std::uint32_t dw3 = get32(entry, 12);
  c.sq_head = static_cast<std::uint16_t>(dw2);
  c.sq_id = static_cast<std::uint16_t>(dw2 >> 16);
  c.command_id = static_cast<std::uint16_t>(dw3);
  c.phase = ((dw3 >> 16) & 1u) != 0;
  c.status = static_cast<std::uint16_t>(dw3 >> 17);
  return c;
}

ControllerIdentity parse_identify_controller(std::span<const std::uint8_t> data) {
  if (data.size() < 4096) {
    throw Error("NVMe Identify",
                "controller data is " + std::to_string(data.size()) + " bytes, not 4096");
  }
  ControllerIdentity id;
  id.vendor_id = static_cast<std::uint16_t>(data[0] | data[1] << 8);
  id.subsystem_vendor_id = static_cast<std::uint16_t>(data[2] | data[3] << 8);
  id.serial = ascii_field(data, 4, 20);
  id.model = ascii_field(data, 24, 40);
  id.firmware = ascii_field(data, 64, 8);
  return id;
}

}  // namespace vfiokit::drivers::nvme
