// What on the host is using a PCI function right now: network interfaces that are up, routed
// or enslaved; block devices that are mounted, held, swapped on or opened exclusively; and
// processes that hold its VFIO group open. Moving such a device off its driver takes the
// resource away from under its users, so bind refuses unless forced.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::bind {

// Pure parsers for the /proc files the probes read.
struct MountEntry {
  std::string device_number;  // "major:minor"
  std::string mount_point;
  std::string source;
};
std::vector<MountEntry> parse_mountinfo(std::string_view text);
// Interfaces named by any IPv4 route (/proc/net/route).
std::vector<std::string> parse_ipv4_route_interfaces(std::string_view text);
// Interfaces named by an IPv6 route other than link-local (fe80::/10) and multicast (ff00::/8),
// which every interface gets by itself (/proc/net/ipv6_route).
std::vector<std::string> parse_ipv6_route_interfaces(std::string_view text);
// Device paths in /proc/swaps.
std::vector<std::string> parse_swap_devices(std::string_view text);

struct NetInterfaceUse {
  std::string name;
  bool up = false;
  bool ipv4_routes = false;
  bool ipv6_routes = false;
  std::optional<std::string> master;  // bond, bridge or team it is enslaved to
  [[nodiscard]] bool in_use() const noexcept;
  [[nodiscard]] std::string describe() const;  // "eth1 is up, carries IPv4 routes"
};

struct BlockDeviceUse {
  std::string name;           // "nvme0n1p1"
  std::string device_number;  // "259:1"
  std::vector<std::string> mount_points;
  std::vector<std::string> holders;  // dm-0, md0, ...
  bool swap = false;
  bool busy = false;  // an exclusive open failed with EBUSY
  [[nodiscard]] bool in_use() const noexcept;
  [[nodiscard]] std::string describe() const;
};

struct DeviceUsage {
  std::vector<NetInterfaceUse> net;
  std::vector<BlockDeviceUse> block;
};

// The network interfaces and block devices (partitions included) that belong to `bdf` or to
// anything below it in the device tree, and how each is used.
DeviceUsage probe_device_usage(const HostPaths& paths, const pci::Bdf& bdf);

// Something of an IOMMU group a process has open through VFIO. vfio-pci's remove() waits until
// every one is closed, so unbinding under it hangs.
struct VfioHolder {
  int pid = 0;
  std::string command;
  std::string what;  // "/dev/vfio/11", "a VFIO device fd for 0000:06:00.0", ...
  // False for a VFIO device fd the kernel does not name (before 6.18 fdinfo has no
  // vfio-device-syspath): it may belong to this group or to another.
  bool certain = true;
  [[nodiscard]] std::string describe() const;  // "/dev/vfio/11 (qemu-system-x86, pid 4242)"
};

// Processes other than `self_pid` that hold the group `group` (whose devices are `members`)
// through VFIO, from their /proc/PID/fd links: the group node /dev/vfio/GROUP; a device fd from
// VFIO_GROUP_GET_DEVICE_FD ("anon_inode:[vfio-device]", which stays valid after the group fd is
// closed), matched through "vfio-device-syspath:" in /proc/PID/fdinfo/FD; a device's cdev
// /dev/vfio/devices/vfioN, matched through /sys/bus/pci/devices/BDF/vfio-dev/vfioN. /dev/iommu
// alone holds no device: the iommufd binding lives only as long as the device's own fd.
std::vector<VfioHolder> find_vfio_holders(const HostPaths& paths, unsigned group,
                                          std::span<const pci::Bdf> members, int self_pid);

// The BDF named by a VFIO device fd's fdinfo ("vfio-device-syspath: /sys/devices/.../BDF"), or
// nullopt when the kernel does not say.
std::optional<pci::Bdf> vfio_device_of_fdinfo(std::string_view fdinfo);

// A process as /proc shows it.
struct ProcessInfo {
  int pid = 0;
  std::string command;  // comm
  char state = '?';     // R running, S sleeping, D blocked in the kernel, Z zombie, T stopped
};
// The state letter of a /proc/PID/stat line (after the command, which may hold ')' itself).
std::optional<char> parse_process_state(std::string_view stat);
// nullopt when there is no such process.
std::optional<ProcessInfo> read_process(const std::filesystem::path& proc, int pid);
// Each fd link of each process under `proc` other than `self_pid` that this user may read:
// visit(pid, path of the link, its target).
void for_each_open_fd(
    const std::filesystem::path& proc, int self_pid,
    const std::function<void(int, const std::filesystem::path&, const std::string&)>& visit);

}  // namespace vfiokit::bind
