#include "vfiokit/msix/msi.h"

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::msix {
namespace {

bool reserved_mode(std::uint32_t mode) { return mode == 3 || mode == 6; }

constexpr std::uint64_t kReservedAddressBits = 0xff3;    // 11:4 and 1:0
constexpr std::uint32_t kReservedDataBits = 0xffff3800;  // 31:16 and 13:11

}  // namespace

MsiMessage encode_msi(const MsiFields& f) {
  const auto mode = static_cast<std::uint32_t>(f.delivery);
  if (reserved_mode(mode) || mode > 7) {
    throw Error("encode MSI", "delivery mode " + std::to_string(mode) + " is reserved");
  }
  if (f.vector < 16 &&
      (f.delivery == DeliveryMode::fixed || f.delivery == DeliveryMode::lowest_priority)) {
    throw Error("encode MSI",
                "vector " + std::to_string(f.vector) +
                    " is reserved for exceptions (use 16..255, 32 and up in practice)");
  }
  MsiMessage m;
  m.address = kMsiAddressBase | std::uint64_t{f.destination} << 12 |
              (f.redirection_hint ? 1u << 3 : 0u) | (f.logical_destination ? 1u << 2 : 0u);
  m.data =
      f.vector | mode << 8 | (f.level_assert ? 1u << 14 : 0u) | (f.level_triggered ? 1u << 15 : 0u);
  return m;
}

MsiFields decode_msi(const MsiMessage& m) {
  if ((m.address >> 20) != (kMsiAddressBase >> 20)) {
    throw Error("decode MSI", "address " + hex(m.address) + " is outside the 0xfee00000 window");
  }
  // Bits 11:4 are reserved in this (compatibility) format; the remappable format and the
  // extended destination ID use them, and this decoder would misread those messages.
  if (m.address & kReservedAddressBits) {
    throw Error("decode MSI", "address " + hex(m.address) + " sets reserved bits 11:4 or 1:0");
  }
  if (m.data & kReservedDataBits) {
    throw Error("decode MSI", "data " + hex(m.data) + " sets reserved bits 31:16 or 13:11");
  }
  const std::uint32_t mode = (m.data >> 8) & 0x7;
  if (reserved_mode(mode))
    throw Error("decode MSI", "delivery mode " + std::to_string(mode) + " is reserved");
  if ((m.data & 0xff) < 16 && (mode == 0 || mode == 1)) {
    throw Error("decode MSI",
                "vector " + std::to_string(m.data & 0xff) +
                    " is reserved for exceptions with fixed or lowest-priority delivery");
  }
  MsiFields f;
  f.destination = static_cast<std::uint8_t>(m.address >> 12);
  f.redirection_hint = (m.address >> 3) & 1;
  f.logical_destination = (m.address >> 2) & 1;
  f.vector = static_cast<std::uint8_t>(m.data);
  f.delivery = static_cast<DeliveryMode>(mode);
  f.level_assert = (m.data >> 14) & 1;
  f.level_triggered = (m.data >> 15) & 1;
  return f;
}

std::string describe(const MsiFields& f) {
  static constexpr const char* kModes[] = {"fixed", "lowest-priority", "SMI",   "reserved", "NMI",
                                           "INIT",  "reserved",        "ExtINT"};
  return "vector " + hex(f.vector) + " to " + (f.logical_destination ? "logical " : "APIC ") +
         std::to_string(f.destination) + ", " + kModes[static_cast<unsigned>(f.delivery) & 7] +
         ", " + (f.level_triggered ? "level" : "edge");
}

}  // namespace vfiokit::msix
