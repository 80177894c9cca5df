// Builds PCI config spaces byte by byte for tests, with capability chains laid out as the
// spec says (standard list from 0x40, extended list from 0x100).
#pragma once

#include <cstdint>
#include <vector>

namespace vfiokit::test {

class ConfigBuilder {
 public:
  explicit ConfigBuilder(std::size_t size = 4096) : bytes_(size, 0) {}

  ConfigBuilder& u8(std::size_t offset, std::uint8_t value) {
    bytes_.at(offset) = value;
    return *this;
  }
  ConfigBuilder& u16(std::size_t offset, std::uint16_t value) {
    u8(offset, static_cast<std::uint8_t>(value));
    return u8(offset + 1, static_cast<std::uint8_t>(value >> 8));
  }
  ConfigBuilder& u32(std::size_t offset, std::uint32_t value) {
    u16(offset, static_cast<std::uint16_t>(value));
    return u16(offset + 2, static_cast<std::uint16_t>(value >> 16));
  }
  // An endpoint with the capability-list status bit set and the pointer at 0x34 = first.
  ConfigBuilder& endpoint(std::uint16_t vendor, std::uint16_t device, std::uint8_t first_cap) {
    u16(0, vendor).u16(2, device).u16(6, first_cap ? 0x10 : 0).u8(0x34, first_cap);
    return *this;
  }
  // A capability header: id and next pointer.
  ConfigBuilder& cap(std::size_t offset, std::uint8_t id, std::uint8_t next) {
    return u8(offset, id).u8(offset + 1, next);
  }
  // An extended capability header: id, version 1, next offset.
  ConfigBuilder& ext_cap(std::size_t offset, std::uint16_t id, std::uint16_t next) {
    return u32(offset, id | 1u << 16 | static_cast<std::uint32_t>(next) << 20);
  }
  [[nodiscard]] const std::vector<std::uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
};

}  // namespace vfiokit::test
