// IOMMU groups: which PCI functions share one, and whether VFIO can own the group.
//
// The kernel hands a group to VFIO only when every member is either driverless or bound to a
// driver that manages its own DMA ownership (driver_managed_dma: vfio-pci and its variants,
// pci-stub, pcieport). Anything else makes the group "not viable".
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/device.h"

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

// /dev/vfio/N lent to an unprivileged user for one run (QEMU after -runas, as libvirt does): owned
// by that user while the lease lives, then by whoever owned it before. Only a character device
// is lent; a symlink or anything else at the path is refused, never followed.
class GroupNodeLease {
 public:
  // Throws Error (with the node and errno) when the node is missing, not a character device, or
  // cannot be chowned.
  GroupNodeLease(std::filesystem::path node, uid_t uid, gid_t gid);
  // Gives the node back; a failure is logged (the run is over; nothing else depends on it).
  ~GroupNodeLease();
  GroupNodeLease(GroupNodeLease&& other) noexcept;
  GroupNodeLease& operator=(GroupNodeLease&&) = delete;
  GroupNodeLease(const GroupNodeLease&) = delete;
  GroupNodeLease& operator=(const GroupNodeLease&) = delete;

  [[nodiscard]] const std::filesystem::path& node() const noexcept { return node_; }

 private:
  std::filesystem::path node_;  // empty once moved from
  uid_t previous_uid_ = 0;
  gid_t previous_gid_ = 0;
};

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
