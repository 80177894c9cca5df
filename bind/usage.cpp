#include "vfiokit/bind/usage.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

void add_unique(std::vector<std::string>& names, std::string_view name) {
  if (std::find(names.begin(), names.end(), name) == names.end()) names.emplace_back(name);
}

// True if a /sys/class/{block,net} link target passes through the device directory of `bdf`.
bool link_is_below(const std::string& target, const std::string& bdf) {
  return target.find('/' + bdf + '/') != std::string::npos;
}

std::vector<std::string> class_members_below(const fs::path& class_dir, const std::string& bdf) {
  std::vector<std::string> names;
  for (const auto& name : list_dir(class_dir)) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(class_dir / name, ec);
    if (!ec && link_is_below(target.string(), bdf)) names.push_back(name);
  }
  return names;
}

bool exclusive_open_is_busy(const fs::path& node) {
  // The kernel's own test for "in use": an O_EXCL open of a block device fails with EBUSY while
  // it is mounted, held by device-mapper/md, or opened exclusively by anyone else.
  UniqueFd fd(::open(node.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NONBLOCK));
  return !fd && errno == EBUSY;
}

// A /proc file of a process that may be gone (ESRCH, ENOENT) or not ours to read: empty then.
std::string read_proc_text(const fs::path& path) {
  try {
    return read_file_if_exists(path).value_or("");
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> mounts;
  for (const std::string_view line : split_lines(text)) {
    const auto f = split_words(line);
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    if (f.size() < 5) continue;
    MountEntry entry{std::string(f[2]), std::string(f[4]), {}};
    const auto dash = std::find(f.begin() + 5, f.end(), "-");
    if (f.end() - dash >= 3) entry.source = std::string(*(dash + 2));
    mounts.push_back(std::move(entry));
  }
  return mounts;
}

std::vector<std::string> parse_ipv4_route_interfaces(std::string_view text) {
  std::vector<std::string> names;
  bool header = true;
  for (const std::string_view line : split_lines(text)) {
    if (std::exchange(header, false)) continue;
    const auto f = split_words(line);
    if (f.size() >= 2) add_unique(names, f[0]);
  }
  return names;
}

std::vector<std::string> parse_ipv6_route_interfaces(std::string_view text) {
  std::vector<std::string> names;
  for (const std::string_view line : split_lines(text)) {
    const auto f = split_words(line);
    if (f.size() < 10 || f[0].size() != 32) continue;
    const std::string_view destination = f[0];
    const bool link_local = destination.starts_with("fe8") || destination.starts_with("fe9") ||
                            destination.starts_with("fea") || destination.starts_with("feb");
    const bool multicast = destination.starts_with("ff");
    if (link_local || multicast || f[9] == "lo") continue;
    add_unique(names, f[9]);
  }
  return names;
}

std::vector<std::string> parse_swap_devices(std::string_view text) {
  std::vector<std::string> devices;
  bool header = true;
  for (const std::string_view line : split_lines(text)) {
    if (std::exchange(header, false)) continue;
    const auto f = split_words(line);
    if (!f.empty()) devices.emplace_back(f[0]);
  }
  return devices;
}

bool NetInterfaceUse::in_use() const noexcept {
  return up || ipv4_routes || ipv6_routes || master.has_value();
}

std::string NetInterfaceUse::describe() const {
  std::vector<std::string> uses;
  if (up) uses.emplace_back("is up");
  if (ipv4_routes) uses.emplace_back("carries IPv4 routes");
  if (ipv6_routes) uses.emplace_back("carries IPv6 routes");
  if (master) uses.push_back("is enslaved to " + *master);
  return "network interface " + name + ' ' + (uses.empty() ? "is idle" : join(uses, ", "));
}

bool BlockDeviceUse::in_use() const noexcept {
  return !mount_points.empty() || !holders.empty() || swap || busy;
}

std::string BlockDeviceUse::describe() const {
  std::vector<std::string> uses;
  if (!mount_points.empty()) uses.push_back("is mounted on " + join(mount_points, ", "));
  if (!holders.empty()) uses.push_back("is held by " + join(holders, ", "));
  if (swap) uses.emplace_back("is in use as swap");
  if (busy && mount_points.empty() && holders.empty() && !swap) {
    uses.emplace_back("is open exclusively by another program");
  }
  return "block device " + name + ' ' + (uses.empty() ? "is idle" : join(uses, ", "));
}

DeviceUsage probe_device_usage(const HostPaths& paths, const pci::Bdf& bdf) {
  DeviceUsage usage;
  const std::string address = bdf.to_string();

  const auto ipv4 =
      parse_ipv4_route_interfaces(read_file_if_exists(paths.proc / "net/route").value_or(""));
  const auto ipv6 =
      parse_ipv6_route_interfaces(read_file_if_exists(paths.proc / "net/ipv6_route").value_or(""));
  const fs::path net_dir = paths.sys / "class/net";
  for (const auto& name : class_members_below(net_dir, address)) {
    NetInterfaceUse net;
    net.name = name;
    // IFF_UP is bit 0 of "flags"; operstate alone misses an interface that is up without carrier.
    const auto flags = parse_uint(read_line_if_exists(net_dir / name / "flags").value_or(""), 16);
    net.up =
        (flags && (*flags & 0x1u)) || read_line_if_exists(net_dir / name / "operstate") == "up";
    net.ipv4_routes = std::find(ipv4.begin(), ipv4.end(), name) != ipv4.end();
    net.ipv6_routes = std::find(ipv6.begin(), ipv6.end(), name) != ipv6.end();
    net.master = read_link_name(net_dir / name / "master");
    usage.net.push_back(std::move(net));
  }

  const auto mounts =
      parse_mountinfo(read_file_if_exists(paths.proc / "self/mountinfo").value_or(""));
  const auto swaps = parse_swap_devices(read_file_if_exists(paths.proc / "swaps").value_or(""));
  const fs::path block_dir = paths.sys / "class/block";
  for (const auto& name : class_members_below(block_dir, address)) {
    BlockDeviceUse block;
    block.name = name;
    block.device_number = read_line_if_exists(block_dir / name / "dev").value_or("");
    for (const auto& mount : mounts) {
      if (!block.device_number.empty() && mount.device_number == block.device_number) {
        block.mount_points.push_back(mount.mount_point);
      }
    }
    block.holders = list_dir(block_dir / name / "holders");
    const std::string node = "/dev/" + name;
    block.swap = std::find(swaps.begin(), swaps.end(), node) != swaps.end();
    block.busy = exclusive_open_is_busy(paths.dev / name);
    usage.block.push_back(std::move(block));
  }
  return usage;
}

std::string VfioHolder::describe() const {
  return what + " (" + command + ", pid " + std::to_string(pid) + ")";
}

std::optional<pci::Bdf> vfio_device_of_fdinfo(std::string_view fdinfo) {
  const auto syspath = find_key_value(fdinfo, "vfio-device-syspath");
  if (!syspath) return std::nullopt;
  return pci::parse_bdf(fs::path(*syspath).filename().string());
}

std::optional<char> parse_process_state(std::string_view stat) {
  const std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos || close + 2 >= stat.size() || stat[close + 1] != ' ') {
    return std::nullopt;
  }
  return stat[close + 2];
}

std::optional<ProcessInfo> read_process(const fs::path& proc, int pid) {
  const fs::path dir = proc / std::to_string(pid);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  ProcessInfo info;
  info.pid = pid;
  const std::string comm = read_proc_text(dir / "comm");
  info.command = comm.empty() ? "?" : std::string(trim(comm));
  info.state = parse_process_state(read_proc_text(dir / "stat")).value_or('?');
  return info;
}

void for_each_open_fd(const fs::path& proc, int self_pid,
                      const std::function<void(int, const fs::path&, const std::string&)>& visit) {
  for (const auto& entry : list_dir(proc)) {
    const auto pid = parse_uint(entry);
    if (!pid || *pid > 0x7fffffff || static_cast<int>(*pid) == self_pid) continue;
    std::error_code ec;
    // Processes come and go, and other users' fds are unreadable: skip what cannot be read.
    for (fs::directory_iterator it(proc / entry / "fd", ec), end; !ec && it != end;
         it.increment(ec)) {
      std::error_code link_ec;
      const fs::path target = fs::read_symlink(it->path(), link_ec);
      if (!link_ec) visit(static_cast<int>(*pid), it->path(), target.string());
    }
  }
}

std::vector<VfioHolder> find_vfio_holders(const HostPaths& paths, unsigned group,
                                          std::span<const pci::Bdf> members, int self_pid) {
  const std::string group_node = "/dev/vfio/" + std::to_string(group);
  std::map<std::string, pci::Bdf> cdevs;  // "/dev/vfio/devices/vfio0" -> its device
  for (const auto& bdf : members) {
    for (const auto& name : list_dir(pci::device_dir(paths, bdf) / "vfio-dev")) {
      cdevs.emplace("/dev/vfio/devices/" + name, bdf);
    }
  }
  auto is_member = [&](const pci::Bdf& bdf) {
    return std::find(members.begin(), members.end(), bdf) != members.end();
  };
  std::vector<VfioHolder> holders;
  for_each_open_fd(
      paths.proc, self_pid, [&](int pid, const fs::path& link, const std::string& target) {
        VfioHolder holder;
        holder.pid = pid;
        if (target == group_node) {
          holder.what = group_node;
        } else if (const auto cdev = cdevs.find(target); cdev != cdevs.end()) {
          holder.what = target + " (" + cdev->second.to_string() + ")";
        } else if (target == "anon_inode:[vfio-device]") {
          const fs::path fdinfo = link.parent_path().parent_path() / "fdinfo" / link.filename();
          const std::string info = read_proc_text(fdinfo);
          const auto device = vfio_device_of_fdinfo(info);
          if (device && !is_member(*device)) return;
          holder.certain = device.has_value();
          holder.what = device ? "a VFIO device fd for " + device->to_string()
                               : "a VFIO device fd the kernel does not name";
        } else {
          return;
        }
        const std::string comm = read_proc_text(paths.proc / std::to_string(pid) / "comm");
        holder.command = comm.empty() ? "?" : std::string(trim(comm));
        holders.push_back(std::move(holder));
      });
  return holders;
}

}  // namespace vfiokit::bind
