// What VFIO offers for one device on vfio-pci, gathered in one pass for `vfiokit info`: its
// regions, its interrupt indexes, the devices a bus reset would also reset, and the IOMMU.
// An index the kernel does not offer for this device (ERR exists only for PCI Express; VGA only
// for VGA devices) is reported as not available, never as a failure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vfiokit/iommu/backend.h"
#include "vfiokit/vfio/device.h"
#include "vfiokit/vfio/open.h"

namespace vfiokit::vfio {

struct IrqIndexSummary {
  std::uint32_t index = 0;
  std::optional<IrqInfo> info;  // nullopt: not available on this device
  std::string unavailable;      // why, when it is not

  // Dynamic MSI-X (Linux 6.5): the MSI-X index without VFIO_IRQ_INFO_NORESIZE takes new vectors
  // while MSI-X is enabled, with no disable/enable gap. Read from the flags, never from the
  // kernel version. nullopt for any other index, or an MSI-X index that is not available.
  [[nodiscard]] std::optional<bool> dynamic_msix() const noexcept;
};

struct DeviceSummary {
  pci::Bdf bdf;
  DeviceInfo info;
  std::vector<RegionInfo> regions;  // the indexes the kernel answers for
  std::vector<IrqIndexSummary> irqs;
  std::vector<HotResetDependency> hot_reset;  // empty: no bus reset possible
  iommu::IommuInfo iommu;
};

DeviceSummary summarize_device(OpenedDevice& opened);

// Why an IRQ index the kernel refused (with `error`) is not available, in the report's words;
// nullopt when the refusal is a real failure that must be reported as one.
std::optional<std::string> unavailable_irq_reason(std::uint32_t index, int error);

}  // namespace vfiokit::vfio
