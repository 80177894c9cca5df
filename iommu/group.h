// IOMMU groups: which PCI functions share one, and whether VFIO can own the group.
//
// The kernel hands a group to VFIO only when every member is either driverless or bound to a
// driver that manages its own DMA ownership (driver_managed_dma: vfio-pci and its variants,
// pci-stub, pcieport). Anything else makes the group "not viable".
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/host_paths.h"
#include "pci/bdf.h"
#include "pci/device.h"

namespace vfiokit::iommu {

struct IommuGroup {
  unsigned number = 0;
  std::vector<pci::Bdf> devices;  // sorted
  std::string type;               // "DMA", "DMA-FQ", "identity", ... (sysfs "type")
};

// Throws Error naming the group if it does not exist.
IommuGroup read_iommu_group(const HostPaths& paths, unsigned number);

// /dev/vfio/N: the node VFIO creates for a group once a member is bound to a VFIO driver.
std::filesystem::path vfio_group_node(const HostPaths& paths, unsigned group);

// True for drivers that VFIO's group ownership accepts beside vfio-pci.
bool is_vfio_driver(std::string_view driver) noexcept;
bool driver_keeps_group_viable(std::string_view driver, bool is_bridge) noexcept;

struct GroupBlocker {
  pci::Bdf bdf;
  std::string driver;
};
// The members that keep the group from being viable, in BDF order; empty means viable.
std::vector<GroupBlocker> group_blockers(std::span<const pci::PciDevice> members);

}  // namespace vfiokit::iommu
