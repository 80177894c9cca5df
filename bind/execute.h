// Carrying out a Plan through SysfsOps, with the journal written first and everything rolled
// back if any step fails.
//
// Bind, per device that moves: driver_override <- vfio-pci (first, so any re-probe from here on
// picks vfio-pci), unbind from the current driver (with a timeout), drivers_probe until the
// driver link says vfio-pci (with retries), keeping the override. Then /dev/vfio/GROUP must
// appear, and --owner is applied to it.
//
// Going home (unbind, restore, rollback), per device: driver_override <- its original value
// (cleared if it had none), unbind from the current driver unless that is the original, bind
// the original driver (drivers/NAME/bind, falling back to drivers_probe), and verify.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/bind/sysfs_ops.h"

namespace vfiokit::bind {

struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ExecuteOptions {
  std::chrono::milliseconds unbind_timeout{10000};
  int probe_attempts = 10;
  std::chrono::milliseconds probe_retry_delay{100};
  std::chrono::milliseconds group_node_timeout{5000};
  std::chrono::milliseconds poll_interval{20};
  std::optional<Owner> owner;
  int pid = 0;  // recorded in journal entries
  // Called before each step ("journal", "override", "unbind", "probe", "verify", "home") with
  // the device it concerns: progress output, and the hook tests use to stop a bind midway.
  std::function<void(std::string_view step, const pci::Bdf& bdf)> on_step;
  // The signal that asks to stop (SIGINT...; 0 while none has come; SignalGuard::received). A
  // bind checks it before each step and, once set, stops and takes home what it touched; a
  // write under way (an unbind in its child) is waited for, never abandoned. A homecoming
  // does not stop: it finishes.
  std::function<int()> interrupted;
};

struct DeviceOutcome {
  pci::Bdf bdf;
  bool ok = true;
  std::string detail;  // "moved nvme -> vfio-pci", "back on nvme", "restore FAILED: ..."
};

struct ExecuteResult {
  std::vector<DeviceOutcome> devices;
  std::vector<unsigned> groups;  // groups whose /dev/vfio node now exists (bind)
};

// Throws Error when a step fails or a signal stops it (context "signal"); by then every device
// already changed has been taken home, and the Error's context names each one with what
// happened to it.
ExecuteResult execute_bind(const HostPaths& paths, const Plan& plan, SysfsOps& ops,
                           Journal& journal, const ExecuteOptions& options);

// Unbind and restore: every device is attempted even if an earlier one fails; the Error thrown
// at the end names each device's outcome. Journal entries are removed for devices that made it.
ExecuteResult execute_homecoming(const HostPaths& paths, const Plan& plan, SysfsOps& ops,
                                 Journal& journal, const ExecuteOptions& options);

}  // namespace vfiokit::bind
