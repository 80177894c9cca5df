// A VFIO device's INTx wired into a VM as a level-triggered IOAPIC input, with user space out of
// the interrupt path in both directions:
//
//   device asserts INTx -> vfio-pci masks the line (VFIO_IRQ_INFO_AUTOMASKED) and signals the
//   trigger eventfd -> KVM's resampling irqfd asserts the GSI -> the guest takes the interrupt,
//   quiets the device and ends it (EOI) -> KVM deasserts the GSI and signals the resample
//   eventfd -> vfio-pci, which has it as the INTx UNMASK eventfd, unmasks the line; a device
//   still asserting then interrupts again.
//
// The command register's Interrupt Disable bit is vfio-pci's to honour: it virtualizes the bit
// and masks the line while it is set (vfio_basic_config_write), whatever the unmask eventfd says.
#pragma once

#include <cstdint>

#include "vfiokit/base/eventfd.h"
#include "vfiokit/msix/routing.h"
#include "vfiokit/msix/vectors.h"

namespace vfiokit::msix {

class IntxWiring {
 public:
  // Wires the device's INTx to `gsi` (an IOAPIC pin: 16..23 carry no PIC route). `device` and
  // `vm` must outlive this. Throws Error, leaving nothing wired, when the device has no INTx on
  // an eventfd or the VM or VFIO refuses.
  IntxWiring(const vfio::DeviceAccess& device, IrqRouting& vm, std::uint32_t gsi);
  // In order: the irqfd deassigned (KVM deasserts the GSI and stops signalling the resample
  // eventfd), then (members) VFIO's INTx disabled, which drops its unmask eventfd too, then the
  // eventfds closed.
  ~IntxWiring();
  IntxWiring(const IntxWiring&) = delete;
  IntxWiring& operator=(const IntxWiring&) = delete;

  [[nodiscard]] std::uint32_t gsi() const noexcept { return gsi_; }
  // The eventfd vfio-pci signals when the device asserts INTx, and the one KVM signals at EOI.
  [[nodiscard]] int trigger_eventfd() const { return vectors_.eventfd(0); }
  [[nodiscard]] int resample_eventfd() const noexcept { return resample_.fd(); }

 private:
  void deassign() noexcept;

  IrqRouting* vm_;
  std::uint32_t gsi_;
  // Declared before vectors_, closed after VFIO has let go of it.
  EventFd resample_;
  InterruptVectors vectors_;  // VFIO_PCI_INTX_IRQ_INDEX: one vector, the trigger eventfd
  bool assigned_ = false;
};

}  // namespace vfiokit::msix
