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
// (hidden: reads zero, writes go nowhere). A guest access reaches the device as wide as the
// guest made it, less the bytes that are not the device's.
//
// INTx: Interrupt Pin shows the device's pin when VFIO offers its INTx, else 0 (none); with a
// pin, Interrupt Line holds the IOAPIC input the VMM's host bridge routes it to (intx_gsi() in
// vmm/pci_bus.h), as firmware would have written it, and is the guest's scratch byte after
// that. The command register's Interrupt Disable bit goes to vfio-pci, which masks the line
// while it is set. With InterruptOptions::intx_only the MSI and MSI-X capabilities are left out
// of the capability list the guest walks (their registers read as vfio-pci shows them, enabling
// nothing), and Capabilities List in the status register goes when no capability is left.
//
// Function level reset: the guest setting Initiate Function Level Reset (bit 15 of the PCIe
// capability's Device Control) on a function whose Device Capabilities offer FLR is trapped
// (the bit never reaches vfio-pci, and reads 0): the interrupts are unwired, VFIO_DEVICE_RESET
// resets the device, the emulated MSI and MSI-X state goes back to its reset values (MSI-X
// table all masked, PBA clear), INTx is wired again, and the command register is cleared, as
// after a real FLR. The BAR registers keep the VMM's placement.
//
// Trapped accesses: while Memory Space (I/O Space) is off in the command register, the BARs do
// not decode: reads return all ones and writes go nowhere; otherwise the MSI-X table and PBA
// are emulated and everything else is forwarded to the device with its exact width.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/kvm/vcpu.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/pci/config_space.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vmm/bar_layout.h"
#include "vfiokit/vmm/bar_mapping.h"
#include "vfiokit/vmm/bar_registers.h"
#include "vfiokit/vmm/guest_interrupts.h"
#include "vfiokit/vmm/pci_bus.h"

namespace vfiokit::vmm {

// How the guest may have the device interrupt it.
struct InterruptOptions {
  // The device number the function is attached at on bus 0: with its pin it picks the IOAPIC
  // input of its INTx (intx_gsi()).
  std::uint8_t slot = 1;
  // INTx only (`launch --interrupts intx`): MSI and MSI-X hidden from the guest. A device
  // without an interrupt pin is refused.
  bool intx_only = false;
};

class PassthroughDevice final : public PciFunction {
 public:
  // `device`, `memory` and `routes` must outlive this. The BARs are laid out in `windows` and
  // their mappable parts put into guest memory slots.
  PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                    msix::RouteTable& routes, const BarWindows& windows = {},
                    const InterruptOptions& interrupt_options = {});
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
  static Survey survey(const vfio::DeviceAccess& device, const BarWindows& windows,
                       const InterruptOptions& options);
  PassthroughDevice(const vfio::DeviceAccess& device, kvm::GuestMemoryMap& memory,
                    msix::RouteTable& routes, Survey survey);

  // intx: Interrupt Pin and Line; links: capability pointers rewritten around hidden ones.
  enum class Owner : std::uint8_t { device, bars, hidden, interrupts, intx, links };
  [[nodiscard]] Owner owner(std::uint32_t offset) const noexcept;
  // The bytes of a write that are the device's, in as few accesses as their alignment allows.
  void write_through(std::uint32_t offset, std::span<const std::uint8_t> bytes);
  void read_command();
  // The bytes of a config write at `offset` ask for an FLR the device offers.
  [[nodiscard]] bool requests_flr(std::uint32_t offset, std::span<const std::uint8_t> bytes) const;
  void function_level_reset();
  [[nodiscard]] BarMapping& mapping(unsigned index) const;

  const vfio::DeviceAccess& device_;
  BarRegisters registers_;
  // One per BAR of registers_, in the same order; each removes its slots before it unmaps.
  std::vector<std::unique_ptr<BarMapping>> mappings_;
  std::optional<pci::PcieCapability> pcie_;
  // What Interrupt Pin shows (0: none) and Interrupt Line holds.
  std::uint8_t interrupt_pin_ = 0;
  std::uint8_t interrupt_line_ = 0;
  // With capabilities hidden: each pointer byte on the list the guest walks (0x34, then each
  // visible capability's next) and what it reads; empty when nothing is hidden.
  std::map<std::uint32_t, std::uint8_t> capability_links_;
  // The command register's Memory Space and I/O Space bits.
  bool memory_decoding_ = false;
  bool io_decoding_ = false;
  // Declared last, destroyed first (reset in the destructor before anything else).
  std::optional<GuestInterrupts> interrupts_;
};

}  // namespace vfiokit::vmm
