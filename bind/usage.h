// What on the host is using a PCI function right now: network interfaces that are up, routed
// or enslaved; block devices that are mounted, held, swapped on or opened exclusively; and
// processes that hold its VFIO group open. Moving such a device off its driver takes the
// resource away from under its users, so bind refuses unless forced.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/host_paths.h"
#include "pci/bdf.h"

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

struct VfioGroupHolder {
  int pid = 0;
  std::string command;
};
// Processes other than `self_pid` with /dev/vfio/GROUP open (from /proc/PID/fd links).
std::vector<VfioGroupHolder> find_vfio_group_holders(const HostPaths& paths, unsigned group,
                                                     int self_pid);

}  // namespace vfiokit::bind
