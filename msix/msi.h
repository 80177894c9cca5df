// x86 MSI messages: the address and data a device writes to raise an interrupt (Intel SDM vol. 3,
// "Message Signalled Interrupts"). Pure encoding and decoding.
//
//   address: 0xFEE << 20 | destination APIC ID << 12 | redirection hint << 3 | logical << 2
//   data:    trigger mode << 15 | level assert << 14 | delivery mode << 8 | vector
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace vfiokit::msix {

enum class DeliveryMode : std::uint8_t {
  fixed = 0,
  lowest_priority = 1,
  smi = 2,
  nmi = 4,
  init = 5,
  extint = 7,
};

struct MsiMessage {
  constexpr MsiMessage() = default;
  // Not an aggregate: {address, data} (x86's, and most of vfiokit's) leaves the device ID out.
  constexpr MsiMessage(std::uint64_t message_address, std::uint32_t message_data,
                       std::optional<std::uint32_t> requester = std::nullopt)
      : address(message_address), data(message_data), device_id(requester) {}

  std::uint64_t address = 0;
  std::uint32_t data = 0;
  // The requester ID an interrupt translation service looks the message up by: arm64's GICv3
  // ITS translates (device ID, event ID = data) into an interrupt, so KVM needs it with every
  // MSI to a VM that has one (KVM_MSI_VALID_DEVID). x86 has no such thing: nullopt.
  std::optional<std::uint32_t> device_id;
  bool operator==(const MsiMessage&) const = default;
};

struct MsiFields {
  std::uint8_t destination = 0;  // APIC ID (physical) or logical destination
  std::uint8_t vector = 0;
  DeliveryMode delivery = DeliveryMode::fixed;
  bool logical_destination = false;
  bool redirection_hint = false;
  bool level_triggered = false;
  bool level_assert = false;  // meaningful for level-triggered messages only
  bool operator==(const MsiFields&) const = default;
};

inline constexpr std::uint64_t kMsiAddressBase = 0xfee00000;

// Throws Error for vectors below 16 (reserved by the architecture for exceptions) with fixed or
// lowest-priority delivery, and for reserved delivery modes.
MsiMessage encode_msi(const MsiFields& fields);
// Throws Error if the address is outside the 0xFEExxxxx interrupt window or sets reserved bits,
// or the data sets reserved bits, names a reserved delivery mode, or an exception vector (below
// 16) with fixed or lowest-priority delivery: whatever decodes encodes back to the same message.
MsiFields decode_msi(const MsiMessage& message);

std::string describe(const MsiFields& fields);  // "vector 0x30 to APIC 0, fixed, edge"

}  // namespace vfiokit::msix
