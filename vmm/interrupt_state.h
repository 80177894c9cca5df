// The guest's view of a passed-through device's MSI capability and MSI-X table, emulated by the
// VMM (the real ones belong to the host kernel, which vfio-pci programs). Pure: each write says
// what changed, and the VMM turns that into routes, irqfds and VFIO_DEVICE_SET_IRQS.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vfiokit/msix/msi.h"
#include "vfiokit/pci/config_space.h"

namespace vfiokit::vmm {

struct InterruptChange {
  bool enable = false;   // enable or disable toggled (MSI enable, MSI-X enable)
  bool message = false;  // an address or data changed
  bool mask = false;     // a mask bit (per vector or function mask) changed
  [[nodiscard]] bool any() const noexcept { return enable || message || mask; }
  InterruptChange& operator|=(const InterruptChange& other) noexcept {
    enable |= other.enable;
    message |= other.message;
    mask |= other.mask;
    return *this;
  }
};

// The MSI capability's registers after its 2-byte header (control, address, data, mask).
class MsiState {
 public:
  explicit MsiState(const pci::MsiCapability& capability);

  // `offset` is from the capability's start; bytes 0 and 1 (ID, next) are not emulated.
  [[nodiscard]] bool owns(std::uint32_t offset) const noexcept;
  [[nodiscard]] std::uint8_t read_byte(std::uint32_t offset) const;
  InterruptChange write_byte(std::uint32_t offset, std::uint8_t value);

  [[nodiscard]] bool enabled() const noexcept { return control_ & 1u; }
  [[nodiscard]] unsigned vectors() const noexcept;  // as enabled (Multiple Message Enable)
  // Vector i carries data | i in its low bits, as the spec has multi-message MSI do.
  [[nodiscard]] msix::MsiMessage message(unsigned vector) const noexcept;
  [[nodiscard]] bool masked(unsigned vector) const noexcept;
  // Where the Pending Bits register is (from the capability's start); nullopt without
  // per-vector masking. The state here reads it as zero: pending interrupts wait in eventfds.
  [[nodiscard]] std::optional<std::uint32_t> pending_offset() const noexcept;

 private:
  [[nodiscard]] std::uint32_t data_offset() const noexcept {
    return capability_.address_64bit ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32;
  }
  [[nodiscard]] std::uint32_t mask_offset() const noexcept {
    return capability_.address_64bit ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32;
  }
  [[nodiscard]] std::uint32_t length() const noexcept;

  pci::MsiCapability capability_;
  std::uint16_t control_ = 0;
  std::uint64_t address_ = 0;
  std::uint16_t data_ = 0;
  std::uint32_t mask_bits_ = 0;
};

// The MSI-X table: 16 bytes per vector (address low, high, data, vector control). After reset
// every vector is masked, as the spec requires.
class MsixTable {
 public:
  explicit MsixTable(std::uint32_t size);

  [[nodiscard]] std::uint32_t size() const noexcept {
    return static_cast<std::uint32_t>(entries_.size());
  }
  [[nodiscard]] std::uint64_t bytes() const noexcept {
    return entries_.size() * std::uint64_t{PCI_MSIX_ENTRY_SIZE};
  }
  // Accesses are 4 or 8 bytes, aligned, inside the table (others read as zero, write nothing),
  // at any offset: a guest's offset is not trusted.
  void read(std::uint64_t offset, std::span<std::uint8_t> data) const;
  // Returns the vector a write touched and what changed in it.
  InterruptChange write(std::uint64_t offset, std::span<const std::uint8_t> data,
                        std::uint32_t& vector);

  [[nodiscard]] msix::MsiMessage message(std::uint32_t vector) const;
  [[nodiscard]] bool masked(std::uint32_t vector) const;

 private:
  [[nodiscard]] bool valid_access(std::uint64_t offset, std::size_t width) const noexcept;

  struct Entry {
    std::uint32_t address_low = 0, address_high = 0, data = 0;
    std::uint32_t control = PCI_MSIX_ENTRY_CTRL_MASKBIT;  // masked after reset
  };
  std::vector<Entry> entries_;
};

// The MSI-X capability's Message Control word: enable (bit 15) and function mask (bit 14) are
// the guest's; the table size comes from the device.
struct MsixControl {
  std::uint16_t table_size_field = 0;  // N - 1, read-only
  bool enabled = false;
  bool function_masked = false;
  [[nodiscard]] std::uint16_t value() const noexcept {
    return static_cast<std::uint16_t>(table_size_field |
                                      (function_masked ? PCI_MSIX_FLAGS_MASKALL : 0) |
                                      (enabled ? PCI_MSIX_FLAGS_ENABLE : 0));
  }
  // Applies a write of the high byte (the only writable bits); returns what changed.
  InterruptChange write_high_byte(std::uint8_t value);
};

}  // namespace vfiokit::vmm
