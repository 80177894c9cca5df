// A VFIO device as a PCI function of the VMM's guest. This part dispatches; three parts do the
// work, each with one job:
//
//   BarRegisters     the guest's BAR registers: placed by the VMM (vmm/bar_layout.h), sized
//                    and moved by the guest; the host's BARs are never touched.
//   BarMapping       per BAR: the parts VFIO lets the process mmap become guest memory slots
//                    that follow the BAR when it moves, so guest accesses go straight to the
//                    device; the rest, and always the pages of the MSI-X table and PBA, trap.
//   GuestInterrupts  the guest's MSI/MSI-X programming, emulated, and wired to the VM.
//
// Config space (the overlay): every byte is the device's, passed through VFIO, except the BAR
// registers (virtual), the MSI registers and MSI-X Message Control (emulated), and the ROM BAR
// and interrupt pin (hidden: read zero, writes go nowhere). A guest access reaches the device
// as wide as the guest made it, less the bytes that are not the device's.
//
// Trapped accesses: while Memory Space (I/O Space) is off in the command register, the BARs do
// not decode: reads return all ones and writes go nowhere; otherwise the MSI-X table and PBA
// are emulated and everything else is forwarded to the device with its exact width.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vmm/bar_layout.h"
#include "vfiokit/vmm/bar_mapping.h"
#include "vfiokit/vmm/bar_registers.h"
#include "vfiokit/vmm/guest_interrupts.h"
#include "vfiokit/vmm/pci_bus.h"

namespace vfiokit::vmm {

class PassthroughDevice final : public PciFunction {
 public:
  // `device`, `memory` and `routes` must outlive this. The BARs are laid out in `windows` and
  // their mappable parts put into guest memory slots.
  PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                    msix::RouteTable& routes, const BarWindows& windows = {});
  // In order: the interrupts unwired, bus mastering turned off (a device the guest left running
  // stops its DMA before the VMM unmaps guest RAM from the IOMMU), the BAR slots removed, the
  // BAR mappings undone.
  ~PassthroughDevice() override;
  PassthroughDevice(const PassthroughDevice&) = delete;
  PassthroughDevice& operator=(const PassthroughDevice&) = delete;

  // Accesses of 1, 2 or 4 bytes inside one dword of the first 256 bytes (configuration
  // mechanism #1); others read all ones and write nothing.
  std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) override;
  void config_write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) override;

  // Trapped accesses; false when the address or port is not in one of this device's BARs.
  bool mmio(const kvm::MmioExit& exit, std::span<std::uint8_t> data);
  bool io(const kvm::IoExit& exit, std::span<std::uint8_t> data);

  [[nodiscard]] std::size_t memory_slots() const noexcept;
  // "BAR0 16 KiB mem64 at 0xc0000000 (12 KiB mapped, 4 KiB trapped)", one per BAR.
  [[nodiscard]] std::vector<std::string> describe() const;
  [[nodiscard]] const BarRegisters& bars() const noexcept { return registers_; }
  [[nodiscard]] const GuestInterrupts& interrupts() const noexcept { return *interrupts_; }

 private:
  // What the device is (its interrupt capabilities) and where its BARs go in the guest.
  struct Survey;
  static Survey survey(const vfio::DeviceAccess& device, const BarWindows& windows);
  PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                    msix::RouteTable& routes, Survey survey);

  enum class Owner : std::uint8_t { device, bars, hidden, interrupts };
  [[nodiscard]] Owner owner(std::uint32_t offset) const noexcept;
  // The bytes of a write that are the device's, in as few accesses as their alignment allows.
  void write_through(std::uint32_t offset, std::span<const std::uint8_t> bytes);
  void read_command();
  [[nodiscard]] BarMapping& mapping(unsigned index) const;

  const vfio::DeviceAccess& device_;
  BarRegisters registers_;
  // One per BAR of registers_, in the same order; each removes its slots before it unmaps.
  std::vector<std::unique_ptr<BarMapping>> mappings_;
  // The command register's Memory Space and I/O Space bits.
  bool memory_decoding_ = false;
  bool io_decoding_ = false;
  // Declared last, destroyed first (reset in the destructor before anything else).
  std::optional<GuestInterrupts> interrupts_;
};

}  // namespace vfiokit::vmm
