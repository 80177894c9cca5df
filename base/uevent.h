// The kernel's device events (NETLINK_KOBJECT_UEVENT), used only as a wake-up: something on
// the PCI bus changed (a driver bound or unbound, a function added or removed), so whoever
// watches devices reads sysfs again now instead of at its next interval. The messages are not
// parsed into facts; sysfs stays the one source of truth.
#pragma once

#include "vfiokit/base/unique_fd.h"

namespace vfiokit {

class UeventMonitor {
 public:
  // Non-blocking and close-on-exec, on the kernel's multicast group. Throws Error when the
  // kernel refuses (a network namespace without the host's uevents says so with no error: the
  // caller's interval still covers it).
  static UeventMonitor open();

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // Reads every pending message; true if any was about a PCI device ("SUBSYSTEM=pci").
  bool drain_pci_events();

 private:
  explicit UeventMonitor(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace vfiokit
