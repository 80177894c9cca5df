// A passed-through device's MSI and MSI-X as its guest programs them: the capability registers
// and the MSI-X table and PBA are emulated (interrupt_state.h), and what the guest enables,
// targets and masks becomes host vectors wired into the VM (msix::MsixWiring: GSI routes,
// irqfds, VFIO_DEVICE_SET_IRQS), so device interrupts reach the guest without user space.
//
//   - A device signals with MSI-X or MSI, never both: while MSI-X is on it wins (as in QEMU);
//     MSI enabled underneath takes over when MSI-X goes off.
//   - Only the MSI-X vectors up to the highest one the guest has unmasked are wired (at least
//     one), like QEMU: a GPU's 2048-entry table costs nothing it does not use. Unmasking a
//     higher vector adds the vectors up to it: while MSI-X stays enabled where the kernel
//     allows (dynamic MSI-X), else through an off-and-on gap after which the vectors that were
//     live fire once, so nothing raised in the gap is lost.
//   - A masked vector that fired shows in the PBA (MSI: the Pending Bits); unmasking delivers
//     it.
//   - INTx, for a function with an interrupt pin, is wired (msix::IntxWiring: a resampling
//     irqfd on the pin's IOAPIC input) whenever neither MSI nor MSI-X is: from the start, and
//     again when the guest turns them off, as a device signals on its pin while they are off.
//     vfio-pci refuses MSI while INTx is on, so INTx goes before MSI or MSI-X is wired.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vfiokit/msix/intx_wiring.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/msix/wiring.h"
#include "vfiokit/pci/config_space.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vmm/bar_mapping.h"
#include "vfiokit/vmm/interrupt_state.h"

namespace vfiokit::vmm {

// Where a function's INTx pin reaches the guest (vmm/pci_bus.h's intx_gsi()).
struct IntxPin {
  std::uint32_t gsi = 0;
  // The guest has no other way (MSI and MSI-X hidden): INTx that cannot be wired is an error,
  // not a pin the guest is told it lacks.
  bool required = false;
};

class GuestInterrupts {
 public:
  // `device` and `routes` must outlive this. With `intx`, INTx is wired now (a device that
  // cannot is logged and shown without a pin, unless INTx is required: then this throws); MSI
  // and MSI-X wait until the guest enables them.
  GuestInterrupts(const vfio::DeviceAccess& device, msix::RouteTable& routes,
                  const std::optional<pci::MsiCapability>& msi,
                  const std::optional<pci::MsixCapability>& msix,
                  const std::optional<IntxPin>& intx = std::nullopt);
  GuestInterrupts(const GuestInterrupts&) = delete;
  GuestInterrupts& operator=(const GuestInterrupts&) = delete;

  // Config space: the bytes emulated here (the MSI registers after the capability's header,
  // the MSI-X Message Control word).
  [[nodiscard]] bool owns_config(std::uint32_t offset) const noexcept;
  [[nodiscard]] std::uint8_t read_config(std::uint32_t offset) const;
  // A guest config write of `bytes` at `offset`: the bytes emulated here change together,
  // then the wiring follows once.
  void write_config(std::uint32_t offset, std::span<const std::uint8_t> bytes);

  // The pages of BAR `bar` holding the MSI-X table or PBA, which must stay trapped.
  [[nodiscard]] std::vector<ByteRange> trapped_pages(unsigned bar) const;
  // A trapped access at `offset` into BAR `bar`: true when it was the MSI-X table's or PBA's
  // (and is done), false when it belongs to the device.
  bool mmio(unsigned bar, std::uint64_t offset, bool write, std::span<std::uint8_t> data);

  // What is wired now: VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
  // VFIO_PCI_MSIX_IRQ_INDEX, or nothing.
  [[nodiscard]] std::optional<std::uint32_t> wired_index() const noexcept;
  // A function reset (the guest's FLR), in two steps around the device's own reset: unwire()
  // takes down whatever is wired (VFIO stops signalling before the device resets: vfio-pci
  // keeps its IRQ state through VFIO_DEVICE_RESET); reset() then puts the state where a reset
  // leaves it (MSI off, its registers zero; MSI-X off, not function-masked, every vector masked,
  // nothing pending) and wires INTx again, which a device with both off signals on.
  void unwire();
  void reset();

  // The IOAPIC input the function's INTx reaches; nullopt when the guest has no INTx (no pin,
  // or it could not be wired).
  [[nodiscard]] std::optional<std::uint32_t> intx_gsi() const noexcept { return intx_gsi_; }

 private:
  [[nodiscard]] bool msi_byte(std::uint32_t offset) const noexcept;
  [[nodiscard]] bool msix_control_byte(std::uint32_t offset) const noexcept;
  [[nodiscard]] std::uint32_t msix_control_offset() const noexcept {
    return msix_cap_->offset + std::uint32_t{PCI_MSIX_FLAGS};
  }
  // INTx back on when neither MSI nor MSI-X is (a no-op without a pin).
  void restore_intx();
  void apply_msi(const InterruptChange& change);
  void apply_msix(const InterruptChange& change, std::optional<std::uint32_t> vector);
  void wire_msix();
  // More vectors while MSI-X is on (msix::MsixWiring::grow: no gap where the kernel allows).
  void grow_msix();
  [[nodiscard]] std::uint32_t msix_vectors_in_use() const;
  // The guest's messages of vectors 0..in_use-1, and which of them are masked (by the vector or
  // by the function), as MsixWiring takes them.
  struct MsixProgramming {
    std::vector<msix::MsiMessage> messages;
    std::vector<bool> masked;
  };
  [[nodiscard]] MsixProgramming msix_programming(std::uint32_t in_use) const;
  [[nodiscard]] bool msix_wired() const noexcept;
  [[nodiscard]] bool in_table(unsigned bar, std::uint64_t offset) const noexcept;
  [[nodiscard]] bool in_pba(unsigned bar, std::uint64_t offset) const noexcept;
  void read_pba(std::uint64_t offset, std::span<std::uint8_t> data) const;
  [[nodiscard]] std::uint8_t msi_pending_byte(std::uint32_t byte) const;

  const vfio::DeviceAccess& device_;
  msix::RouteTable& routes_;
  std::optional<pci::MsiCapability> msi_cap_;
  std::optional<MsiState> msi_;
  std::optional<pci::MsixCapability> msix_cap_;
  std::optional<MsixTable> table_;
  MsixControl msix_control_;
  std::optional<std::uint32_t> intx_gsi_;
  // Declared last, destroyed first: the interrupts stop reaching the guest before the state
  // that describes them goes. At most one of the two is wired.
  std::optional<msix::MsixWiring> wiring_;
  std::optional<msix::IntxWiring> intx_;
};

}  // namespace vfiokit::vmm
