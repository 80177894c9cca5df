#include "vfiokit/base/uevent.h"

#include <linux/netlink.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <string_view>

#include "vfiokit/base/error.h"

namespace vfiokit {

namespace {
// The kernel's uevent multicast group (udev listens on group 2, its re-broadcast).
constexpr unsigned kKernelUeventGroup = 1;
}  // namespace

UeventMonitor UeventMonitor::open() {
  UniqueFd fd(
      ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT));
  if (!fd) {
    throw Error::from_last_errno("open uevent socket");
  }
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = kKernelUeventGroup;
  // Kernel contract: a sockaddr_nl and its exact size.
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    throw Error::from_last_errno("bind uevent socket");
  }
  return UeventMonitor(std::move(fd));
}

bool UeventMonitor::drain_pci_events() {
  // One uevent is at most UEVENT_BUFFER_SIZE (2048) bytes; a longer one would come truncated,
  // which is harmless for a wake-up.
  std::array<char, 8192> buffer{};
  bool pci = false;
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return pci;
      if (err == EINTR) continue;
      // ENOBUFS: events were dropped; reading sysfs again covers them.
      if (err == ENOBUFS) return true;
      throw Error::from_errno(err, "read uevent socket");
    }
    const std::string_view message(buffer.data(), static_cast<std::size_t>(n));
    // "ACTION@DEVPATH\0ACTION=bind\0DEVPATH=...\0SUBSYSTEM=pci\0...": the key, NUL-bounded.
    if (message.find(std::string_view("\0SUBSYSTEM=pci\0", 15)) != std::string_view::npos) {
      pci = true;
    }
  }
}

}  // namespace vfiokit
