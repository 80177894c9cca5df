#include "vfiokit/vfio/summary.h"

#include <linux/vfio.h>

#include <cerrno>

#include "vfiokit/base/error.h"

namespace vfiokit::vfio {

std::optional<std::string> unavailable_irq_reason(std::uint32_t index, int error) {
  // vfio-pci answers EINVAL for an index this device does not have (vfio_pci_core_ioctl:
  // VFIO_PCI_ERR_IRQ_INDEX only with a PCI Express capability).
  if (error != EINVAL) return std::nullopt;
  if (index == VFIO_PCI_ERR_IRQ_INDEX) {
    return "not available: the kernel offers ERR only to PCI Express devices";
  }
  return "not available on this device";
}

std::optional<bool> IrqIndexSummary::dynamic_msix() const noexcept {
  if (index != VFIO_PCI_MSIX_IRQ_INDEX || !info) return std::nullopt;
  return !info->noresize();
}

DeviceSummary summarize_device(OpenedDevice& opened) {
  const VfioDevice& device = opened.device;
  DeviceSummary summary;
  summary.bdf = device.bdf();
  summary.info = device.info();
  for (std::uint32_t i = 0; i < device.info().num_regions; ++i) {
    try {
      summary.regions.push_back(device.region_info(i));
    } catch (const Error& e) {
      // Indexes past the PCI ones (VGA on a device that is not VGA) may be absent: EINVAL.
      if (e.errno_value() != EINVAL) throw;
    }
  }
  for (std::uint32_t i = 0; i < device.info().num_irqs; ++i) {
    IrqIndexSummary irq{i, std::nullopt, {}};
    try {
      irq.info = device.irq_info(i);
    } catch (const Error& e) {
      const auto reason = unavailable_irq_reason(i, e.errno_value());
      if (!reason) throw;
      irq.unavailable = *reason;
    }
    summary.irqs.push_back(std::move(irq));
  }
  summary.hot_reset = device.hot_reset_dependencies();
  summary.iommu = opened.backend->info();
  return summary;
}

}  // namespace vfiokit::vfio
