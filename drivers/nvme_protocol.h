// NVMe data structures as bytes (NVM Express Base Specification): submission and completion
// queue entries, Identify Controller data, register fields. Pure, so every field is tested.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace vfiokit::drivers::nvme {

// Controller registers (BAR0).
inline constexpr std::uint64_t kRegCap = 0x00;
inline constexpr std::uint64_t kRegVersion = 0x08;
inline constexpr std::uint64_t kRegConfig = 0x14;                // CC
inline constexpr std::uint64_t kRegStatus = 0x1c;                // CSTS
inline constexpr std::uint64_t kRegAdminQueueAttributes = 0x24;  // AQA
inline constexpr std::uint64_t kRegAdminSqBase = 0x28;           // ASQ
inline constexpr std::uint64_t kRegAdminCqBase = 0x30;           // ACQ
inline constexpr std::uint64_t kDoorbellBase = 0x1000;

inline constexpr std::size_t kSubmissionEntrySize = 64;
inline constexpr std::size_t kCompletionEntrySize = 16;
inline constexpr std::uint8_t kOpcodeIdentify = 0x06;
inline constexpr std::uint32_t kCnsController = 0x01;

struct Capabilities {
  std::uint32_t max_queue_entries = 0;  // MQES + 1
  std::uint32_t timeout_ms = 0;         // TO, in 500 ms units
  std::uint32_t doorbell_stride = 0;    // bytes between doorbells: 4 << DSTRD
  std::uint32_t min_page_size = 0;      // 4 KiB << MPSMIN
  bool nvm_command_set = false;         // CSS bit 0
};
Capabilities parse_capabilities(std::uint64_t cap);

// CC with EN set: NVM command set, 4 KiB pages, round-robin, 64-byte SQ and 16-byte CQ entries.
std::uint32_t enabled_configuration();
// AQA for admin queues of `entries` entries each (2..4096).
std::uint32_t admin_queue_attributes(std::uint32_t entries);

// Byte offset in BAR0 of a queue's doorbell: submission tail (2 * qid) or completion head
// (2 * qid + 1), each `stride` bytes apart.
std::uint64_t doorbell_offset(std::uint16_t queue, bool completion, std::uint32_t stride);

using SubmissionEntry = std::array<std::uint8_t, kSubmissionEntrySize>;
// Identify with PRP1 = the IOVA of a 4 KiB page the controller writes the data to.
SubmissionEntry identify_command(std::uint16_t command_id, std::uint32_t cns, std::uint64_t prp1);

struct Completion {
  std::uint32_t result = 0;  // DW0, command specific
  std::uint16_t sq_head = 0;
  std::uint16_t sq_id = 0;
  std::uint16_t command_id = 0;
  bool phase = false;
  std::uint16_t status = 0;  // status field without the phase bit: 0 is success
};
// Throws Error if fewer than 16 bytes are given.
Completion parse_completion(std::span<const std::uint8_t> entry);

struct ControllerIdentity {
  std::uint16_t vendor_id = 0;
  std::uint16_t subsystem_vendor_id = 0;
  std::string serial;  // trailing spaces removed; bytes that are not printable ASCII read '?'
  std::string model;
  std::string firmware;
};
// Throws Error if fewer than 4096 bytes are given.
ControllerIdentity parse_identify_controller(std::span<const std::uint8_t> data);

}  // namespace vfiokit::drivers::nvme
