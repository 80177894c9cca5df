#include "vfiokit/iommu/group.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"

namespace vfiokit::iommu {

IommuGroup read_iommu_group(const HostPaths& paths, unsigned number) {
  const auto dir = paths.sys / "kernel/iommu_groups" / std::to_string(number);
  if (!std::filesystem::exists(dir)) {
    throw Error("read IOMMU group", "IOMMU group " + std::to_string(number) + " does not exist")
        .with("group", std::to_string(number));
  }
  IommuGroup group;
  group.number = number;
  for (const auto& name : list_dir(dir / "devices")) {
    if (auto bdf = pci::parse_bdf(name)) group.devices.push_back(*bdf);
  }
  std::sort(group.devices.begin(), group.devices.end());
  group.type = read_line_if_exists(dir / "type").value_or("");
  return group;
}

std::filesystem::path vfio_group_node(const HostPaths& paths, unsigned group) {
  return paths.dev / "vfio" / std::to_string(group);
}

GroupNodeLease::GroupNodeLease(std::filesystem::path node, uid_t uid, gid_t gid)
    : node_(std::move(node)) {
  struct stat st {};
  if (::lstat(node_.c_str(), &st) != 0) {
    throw Error::from_last_errno("lend VFIO group node").with("path", node_.string());
  }
  if (!S_ISCHR(st.st_mode)) {
    throw Error("lend VFIO group node", node_.string() + " is not a character device")
        .with("path", node_.string());
  }
  previous_uid_ = st.st_uid;
  previous_gid_ = st.st_gid;
  if (::fchownat(AT_FDCWD, node_.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0) {
    throw Error::from_last_errno("lend VFIO group node")
        .with("path", node_.string())
        .with("owner", std::to_string(uid) + ":" + std::to_string(gid));
  }
}

GroupNodeLease::GroupNodeLease(GroupNodeLease&& other) noexcept
    : node_(std::exchange(other.node_, {})),
      previous_uid_(other.previous_uid_),
      previous_gid_(other.previous_gid_) {}

GroupNodeLease::~GroupNodeLease() {
  if (node_.empty()) return;
  // The node goes away with the group's last vfio-pci binding: then there is nothing to give back.
  if (::fchownat(AT_FDCWD, node_.c_str(), previous_uid_, previous_gid_, AT_SYMLINK_NOFOLLOW) != 0 &&
      errno != ENOENT) {
    const int err = errno;
    log::warn("could not give {} back to {}:{}: {}", node_.string(), previous_uid_, previous_gid_,
              std::strerror(err));
  }
}

bool is_vfio_driver(std::string_view driver) noexcept {
  // vfio-pci itself and the vendor variants (mlx5_vfio_pci, hisi_acc-vfio-pci,
  // nvgrace-gpu-vfio-pci, virtio_vfio_pci, ...): all built on vfio-pci-core.
  return driver == "vfio-pci" || driver.ends_with("vfio_pci") || driver.ends_with("vfio-pci");
}

bool driver_keeps_group_viable(std::string_view driver, bool is_bridge) noexcept {
  if (is_vfio_driver(driver) || driver == "pci-stub") return true;
  return is_bridge && driver == "pcieport";
}

std::vector<GroupBlocker> group_blockers(std::span<const pci::PciDevice> members) {
  std::vector<GroupBlocker> blockers;
  for (const auto& member : members) {
    if (member.driver && !driver_keeps_group_viable(*member.driver, member.is_bridge())) {
      blockers.push_back({member.bdf, *member.driver});
    }
  }
  std::sort(blockers.begin(), blockers.end(),
            [](const GroupBlocker& a, const GroupBlocker& b) { return a.bdf < b.bdf; });
  return blockers;
}

}  // namespace vfiokit::iommu
