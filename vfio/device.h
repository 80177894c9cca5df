// A VFIO device fd: what the device offers (regions, IRQ indexes), its config space and ROM,
// interrupts set up through VFIO_DEVICE_SET_IRQS, and reset; and DeviceAccess, the small
// interface through which the layers above reach a device, so they can be tested on a fake.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/vfio/region_info.h"

namespace vfiokit::vfio {

struct DeviceInfo {
  std::uint32_t flags = 0;
  std::uint32_t num_regions = 0;
  std::uint32_t num_irqs = 0;
  [[nodiscard]] bool resettable() const noexcept;
  [[nodiscard]] bool is_pci() const noexcept;
};

struct IrqInfo {
  std::uint32_t index = 0;
  std::uint32_t flags = 0;  // VFIO_IRQ_INFO_*
  std::uint32_t count = 0;
  [[nodiscard]] bool eventfd() const noexcept;
  [[nodiscard]] bool maskable() const noexcept;
  [[nodiscard]] bool automasked() const noexcept;
  [[nodiscard]] bool noresize() const noexcept;
  [[nodiscard]] std::string flags_text() const;
};
std::string irq_index_name(std::uint32_t index);  // "INTx", "MSI", "MSI-X", "ERR", "REQ"

struct HotResetDependency {
  unsigned group = 0;
  pci::Bdf bdf;
  bool operator==(const HotResetDependency&) const = default;
};

// The reply of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: the header's count, but never more entries
// than `reply` holds after it (a count the buffer cannot hold is not trusted). Pure.
std::vector<HotResetDependency> parse_hot_reset_info(std::span<const std::uint8_t> reply);
// More devices than one hot reset can reach (a bus's 256 functions, many times over): a reply
// that claims more is not believed, and no bus reset is offered.
inline constexpr std::uint32_t kMaxHotResetDependencies = 4096;

// What the VMM's device model and the interrupt vectors need from a device: config space,
// a region's registers and mappable areas, IRQ indexes and VFIO_DEVICE_SET_IRQS. VfioDevice
// implements it on the kernel; tests implement it in memory (tests/unit/fake_device.h).
class DeviceAccess {
 public:
  virtual ~DeviceAccess() = default;

  [[nodiscard]] virtual const pci::Bdf& bdf() const noexcept = 0;
  [[nodiscard]] virtual RegionInfo region_info(std::uint32_t index) const = 0;
  [[nodiscard]] virtual IrqInfo irq_info(std::uint32_t index) const = 0;

  // Config space as vfio-pci presents it (partly virtualized: BARs, MSI/MSI-X, command bits).
  // One access as wide as the span, so a 2- or 4-byte register is written at once.
  virtual void config_read(std::uint64_t offset, std::span<std::uint8_t> out) const = 0;
  virtual void config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const = 0;
  // pread/pwrite of a region through the device fd; throws on a short transfer or a range
  // outside the region.
  virtual void region_read(const RegionInfo& region, std::uint64_t offset,
                           std::span<std::uint8_t> out) const = 0;
  virtual void region_write(const RegionInfo& region, std::uint64_t offset,
                            std::span<const std::uint8_t> in) const = 0;
  // A shared mapping of [offset, offset + size) of a region (one of its mappable areas); throws
  // Error when it cannot be mapped.
  [[nodiscard]] virtual MappedMemory map_region(const RegionInfo& region, std::uint64_t offset,
                                                std::uint64_t size) const = 0;
  // VFIO_DEVICE_SET_IRQS with the encoded vfio_irq_set.
  virtual void set_irqs(std::span<const std::uint8_t> irq_set) const = 0;
  // VFIO_DEVICE_RESET (a guest's function level reset reaches the device through it); throws
  // Error when the device offers no reset.
  virtual void reset() const = 0;

  [[nodiscard]] std::uint16_t config_read16(std::uint64_t offset) const;
  void config_write16(std::uint64_t offset, std::uint16_t value) const;
  [[nodiscard]] std::uint32_t config_read32(std::uint64_t offset) const;
};

class VfioDevice final : public DeviceAccess {
 public:
  VfioDevice(UniqueFd fd, const pci::Bdf& bdf);

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] const pci::Bdf& bdf() const noexcept override { return bdf_; }
  [[nodiscard]] const DeviceInfo& info() const noexcept { return info_; }

  [[nodiscard]] RegionInfo region_info(std::uint32_t index) const override;
  [[nodiscard]] IrqInfo irq_info(std::uint32_t index) const override;

  void region_read(const RegionInfo& region, std::uint64_t offset,
                   std::span<std::uint8_t> out) const override;
  void region_write(const RegionInfo& region, std::uint64_t offset,
                    std::span<const std::uint8_t> in) const override;
  // Kernel contract: the mmap offset is the region's offset in the device fd plus `offset`.
  [[nodiscard]] MappedMemory map_region(const RegionInfo& region, std::uint64_t offset,
                                        std::uint64_t size) const override;

  void config_read(std::uint64_t offset, std::span<std::uint8_t> out) const override;
  void config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const override;
  // Sets PCI_COMMAND memory-space and bus-master enable: the device may decode its BARs and
  // start DMA.
  void enable_bus_master() const;

  // The option ROM (empty when there is none).
  [[nodiscard]] std::vector<std::uint8_t> read_rom() const;

  void set_irqs(std::span<const std::uint8_t> irq_set) const override;

  // VFIO_DEVICE_RESET; throws Error when the device offers no reset (resettable() is false).
  void reset() const override;
  // The devices a bus (hot) reset would also reset; empty when it is not supported.
  [[nodiscard]] std::vector<HotResetDependency> hot_reset_dependencies() const;

 private:
  UniqueFd fd_;
  pci::Bdf bdf_;
  DeviceInfo info_;
  RegionInfo config_;
};

}  // namespace vfiokit::vfio
