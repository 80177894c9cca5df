// A VFIO device fd: what the device offers (regions, IRQ indexes), its config space and ROM,
// interrupts set up through VFIO_DEVICE_SET_IRQS, and reset.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "pci/bdf.h"
#include "vfio/region_info.h"

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
};

class VfioDevice {
 public:
  VfioDevice(UniqueFd fd, const pci::Bdf& bdf);

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] const pci::Bdf& bdf() const noexcept { return bdf_; }
  [[nodiscard]] const DeviceInfo& info() const noexcept { return info_; }

  [[nodiscard]] RegionInfo region_info(std::uint32_t index) const;
  [[nodiscard]] IrqInfo irq_info(std::uint32_t index) const;

  // pread/pwrite of a region through the device fd; throws on a short transfer.
  void region_read(const RegionInfo& region, std::uint64_t offset,
                   std::span<std::uint8_t> out) const;
  void region_write(const RegionInfo& region, std::uint64_t offset,
                    std::span<const std::uint8_t> in) const;

  // Config space as vfio-pci presents it (partly virtualized: BARs, MSI/MSI-X, command bits).
  void config_read(std::uint64_t offset, std::span<std::uint8_t> out) const;
  void config_write(std::uint64_t offset, std::span<const std::uint8_t> in) const;
  [[nodiscard]] std::uint16_t config_read16(std::uint64_t offset) const;
  void config_write16(std::uint64_t offset, std::uint16_t value) const;
  [[nodiscard]] std::uint32_t config_read32(std::uint64_t offset) const;
  // Sets PCI_COMMAND memory-space and bus-master enable: the device may decode its BARs and
  // start DMA.
  void enable_bus_master() const;

  // The option ROM (empty when there is none).
  [[nodiscard]] std::vector<std::uint8_t> read_rom() const;

  // VFIO_DEVICE_SET_IRQS with the encoded vfio_irq_set.
  void set_irqs(std::span<const std::uint8_t> irq_set) const;

  // VFIO_DEVICE_RESET; throws Error when the device offers no reset (resettable() is false).
  void reset() const;
  // The devices a bus (hot) reset would also reset; empty when it is not supported.
  [[nodiscard]] std::vector<HotResetDependency> hot_reset_dependencies() const;

 private:
  UniqueFd fd_;
  pci::Bdf bdf_;
  DeviceInfo info_;
  RegionInfo config_;
};

}  // namespace vfiokit::vfio
