// A VFIO device as a PCI function of the VMM's guest.
//
//   BARs         placed in guest-physical space by the VMM (vmm/bar_layout.h); the parts VFIO
//                lets the process mmap become KVM memory slots, so guest accesses go straight to
//                the device; the rest, and always the pages holding the MSI-X table and PBA,
//                are trapped and forwarded (or emulated).
//   config space passed through from VFIO, except the BAR and ROM registers (virtual: the
//                guest's layout, sizing included) and the MSI and MSI-X control state.
//   interrupts   the guest's MSI/MSI-X programming (enable bits, addresses, data, masks)
//                becomes GSI routes, irqfds and VFIO_DEVICE_SET_IRQS through msix::MsixWiring,
//                so device interrupts reach the guest without user space.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "msix/routing.h"
#include "msix/wiring.h"
#include "vfio/device.h"
#include "vfio/region.h"
#include "vmm/bar_layout.h"
#include "vmm/interrupt_state.h"
#include "vmm/pci_bus.h"

namespace vfiokit::vmm {

class PassthroughDevice final : public PciFunction {
 public:
  // `device`, `vm` and `routes` must outlive this. KVM memory slots from `first_slot` up are
  // this device's.
  PassthroughDevice(const vfio::VfioDevice& device, kvm::Vm& vm, msix::RouteTable& routes,
                    std::uint32_t first_slot, const BarWindows& windows = {});
  // Interrupts unwired, then the BAR slots removed, then (members) the BAR mappings undone.
  ~PassthroughDevice() override;

  std::uint32_t config_read(std::uint32_t offset, std::uint32_t size) override;
  void config_write(std::uint32_t offset, std::uint32_t size, std::uint32_t value) override;

  // Trapped accesses; false when the address or port is not in one of this device's BARs.
  bool mmio(const kvm::MmioExit& exit, std::span<std::uint8_t> data);
  bool io(const kvm::IoExit& exit, std::span<std::uint8_t> data);

  [[nodiscard]] std::size_t memory_slots() const noexcept;
  // "BAR0 16 KiB mem64 at 0xc0000000 (12 KiB mapped, 4 KiB trapped)", one per BAR.
  [[nodiscard]] std::vector<std::string> describe() const;

 private:
  struct Bar {
    GuestBar guest;
    std::unique_ptr<vfio::Region> region;
    std::vector<std::uint32_t> slots;
    std::uint64_t mapped_bytes = 0;
    bool sizing_low = false;
    bool sizing_high = false;
  };

  // Slots for a memory BAR; a place KVM refuses (the guest put the BAR over RAM or another
  // BAR, e.g. halfway through moving a 64-bit BAR) leaves it trapped.
  void map_bar(Bar& bar);
  void unmap_bar(Bar& bar) noexcept;
  // Region offsets [start, end) that must stay trapped: the MSI-X table and PBA pages.
  [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> trapped(const Bar& bar) const;
  Bar* bar_for_register(std::uint32_t offset, bool& high);
  std::uint8_t bar_register_byte(std::uint32_t offset);
  void write_bar_register(std::uint32_t register_offset, std::uint32_t value);

  // hidden: reads zero, writes go nowhere (the ROM BAR, the interrupt pin).
  enum class Owner : std::uint8_t { device, bar, hidden, msi, msix_control };
  [[nodiscard]] Owner owner(std::uint32_t offset) const noexcept;

  void apply_msi(const InterruptChange& change);
  void apply_msix(const InterruptChange& change, std::optional<std::uint32_t> vector);
  void wire_msix();
  [[nodiscard]] std::uint32_t msix_vectors_in_use() const;
  bool msix_mmio(const Bar& bar, std::uint64_t offset, bool write, std::span<std::uint8_t> data);

  const vfio::VfioDevice& device_;
  kvm::Vm& vm_;
  msix::RouteTable& routes_;
  std::uint32_t next_slot_;
  std::optional<pci::MsiCapability> msi_cap_;
  std::optional<MsiState> msi_;
  std::optional<pci::MsixCapability> msix_cap_;
  std::optional<MsixTable> table_;
  MsixControl msix_control_;
  std::vector<Bar> bars_;
  // The command register's Memory Space bit: while it is off, trapped accesses read all ones
  // and writes go nowhere, as with a device that does not decode.
  bool memory_decoding_ = false;
  // Declared last, destroyed first: the interrupts stop reaching the guest before anything else.
  std::optional<msix::MsixWiring> wiring_;
};

}  // namespace vfiokit::vmm
