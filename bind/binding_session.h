// Devices put on vfio-pci for the length of one run (launch), and given back afterwards: the
// same checks, journal, lock and rollback as `vfiokit bind`, with the give-back guaranteed.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/execute.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/bind/sysfs_ops.h"

namespace vfiokit::bind {

struct SessionOptions {
  ForceFlags force;
  std::chrono::milliseconds lock_wait{30000};  // for another vfiokit to finish
  // Each device's outcome as the group is bound and as it is given back: progress output.
  std::function<void(const DeviceOutcome&)> on_outcome;
  // The signal that asks to stop (0: none; SignalGuard::received): it ends the wait for the
  // lock and stops the bind, which then takes home what it touched. Giving back never stops.
  std::function<int()> interrupted;
  SysfsOps* ops = nullptr;  // nullptr: the live kernel
};

class BindingSession {
 public:
  // Plans and binds the group closure of `bdf` under the state lock. Throws a refused Error
  // (exit 3) naming each refusal, or the bind's Error (exit 1, already rolled back).
  BindingSession(const HostPaths& paths, const pci::Bdf& bdf, SessionOptions options);
  // Gives back, reporting but not throwing on failure (the journal keeps what did not make it).
  ~BindingSession();
  BindingSession(const BindingSession&) = delete;
  BindingSession& operator=(const BindingSession&) = delete;

  // Every endpoint of the group now on a VFIO driver, bound by this session or before it.
  [[nodiscard]] const std::vector<pci::Bdf>& endpoints() const noexcept { return endpoints_; }
  // What this session moved, and so gives back.
  [[nodiscard]] const std::vector<pci::Bdf>& moved() const noexcept { return moved_; }
  // Gives back what this session bound (once); throws the homecoming's Error.
  void restore();

 private:
  void give_back();
  void report(const ExecuteResult& result) const;

  HostPaths paths_;
  SessionOptions options_;
  LiveSysfsOps live_ops_;
  std::vector<pci::Bdf> moved_;
  std::vector<pci::Bdf> endpoints_;
  bool restored_ = false;
};

}  // namespace vfiokit::bind
