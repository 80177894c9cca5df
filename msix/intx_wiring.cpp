#include "vfiokit/msix/intx_wiring.h"

#include <linux/vfio.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/vfio/irq_set.h"

namespace vfiokit::msix {

IntxWiring::IntxWiring(const vfio::DeviceAccess& device, IrqRouting& vm, std::uint32_t gsi)
    : vm_(&vm), gsi_(gsi), resample_(EventFd::create()), vectors_(device, VFIO_PCI_INTX_IRQ_INDEX) {
  if (gsi >= kFirstMsiGsi) {
    throw Error("INTx wiring", "GSI " + std::to_string(gsi) + " is not an IOAPIC pin (0.." +
                                   std::to_string(kFirstMsiGsi - 1) + ")");
  }
  // VFIO first (the trigger eventfd exists once INTx is on), then KVM, then the unmask path.
  // Nothing raised in between is lost: KVM polls the trigger eventfd as it assigns the irqfd,
  // and vfio-pci polls the unmask eventfd as it takes it (vfio_virqfd_enable).
  vectors_.enable(1);
  try {
    vm_->assign_resample_irqfd(vectors_.eventfd(0), resample_.fd(), gsi_);
    assigned_ = true;
    const std::int32_t unmask[] = {resample_.fd()};
    device.set_irqs(vfio::encode_irq_set(VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
                                         VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
                                         unmask));
  } catch (...) {
    deassign();
    throw;  // vectors_ disables INTx as it goes
  }
  log::debug("INTx of {} wired to GSI {} (level, resampled)", device.bdf().to_string(), gsi_);
}

IntxWiring::~IntxWiring() { deassign(); }

void IntxWiring::deassign() noexcept {
  if (!assigned_) return;
  try {
    vm_->deassign_irqfd(vectors_.eventfd(0), gsi_);
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
  assigned_ = false;
}

}  // namespace vfiokit::msix
