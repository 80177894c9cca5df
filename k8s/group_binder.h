// The device plugin's hold on its groups: each selected group moved to vfio-pci with the same
// plan, safety checks, state lock, journal and rollback as `vfiokit bind`, and given back as
// `vfiokit restore` does when the plugin stops (unless it is told to keep them bound).
//
// A plugin killed with -9 leaves the journal behind, and the next one reconciles with it before
// it binds: a device whose entry says `binding` (the bind was cut short) goes home first and is
// bound afresh; one whose entry says `bound` and is on vfio-pci is adopted as it is, and goes
// home from its entry's original driver at the end.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/execute.h"
#include "vfiokit/bind/sysfs_ops.h"
#include "vfiokit/k8s/inventory.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::k8s {

struct BinderOptions {
  std::chrono::milliseconds lock_wait{30000};  // for another vfiokit to finish, per group
  // The signal that asks to stop (0: none; SignalGuard::received): it ends a wait for the lock
  // and stops a bind under way, which then takes home what it touched. Giving back never stops.
  std::function<int()> interrupted;
  bind::SysfsOps* ops = nullptr;  // nullptr: the live kernel
  bool keep_bound = false;        // leave the groups on vfio-pci when the binder ends
};

enum class GroupState {
  bound,    // moved to vfio-pci now (perhaps with members already there)
  adopted,  // every member was on vfio-pci already; nothing was written
  refused,  // the plan refused it: nothing was written
  failed,   // the bind failed and was rolled back, or the journal could not be reconciled
};
std::string_view to_string(GroupState state) noexcept;  // "bound", "adopted", ...

struct GroupOutcome {
  unsigned group = 0;
  std::vector<pci::Bdf> members;
  GroupState state = GroupState::failed;
  // What happened: the moves, the adoption (and whether the group goes home at the end), or
  // the refusal's or failure's message.
  std::string detail;
  std::string fix;  // refused and failed: what to do about it

  // Bound and adopted groups are on vfio-pci and may be advertised.
  [[nodiscard]] bool held() const noexcept {
    return state == GroupState::bound || state == GroupState::adopted;
  }
};

class GroupBinder {
 public:
  GroupBinder(const HostPaths& paths, BinderOptions options);
  // give_back(), logging instead of throwing.
  ~GroupBinder();
  GroupBinder(const GroupBinder&) = delete;
  GroupBinder& operator=(const GroupBinder&) = delete;

  // Every group of every resource, one at a time, each under the state lock. Never throws for a
  // group: a refusal or a failure is that group's outcome, and the others go on. One outcome
  // per group, in the order given.
  std::vector<GroupOutcome> take(std::span<const ResourceGroups> resources);

  // Every device this binder moved, or adopted with a journal entry, goes home (unless
  // keep_bound): each is attempted even when another fails. Once; later calls return nothing.
  std::vector<bind::DeviceOutcome> give_back();

  // The devices give_back() will take home, in the order it will.
  [[nodiscard]] std::vector<pci::Bdf> to_give_back() const;

 private:
  GroupOutcome take_group(const SelectedGroup& group);
  // Takes home the members whose bind was cut short; says what it did ("" when nothing).
  std::string reconcile(const SelectedGroup& group, bind::Journal& journal, bind::SysfsOps& ops);
  [[nodiscard]] bind::ExecuteOptions execute_options(bool stoppable) const;
  [[nodiscard]] bind::SysfsOps& ops() noexcept;

  HostPaths paths_;
  BinderOptions options_;
  bind::LiveSysfsOps live_ops_;
  // Per group taken, the devices that go home at the end.
  std::vector<std::vector<pci::Bdf>> held_;
  bool given_back_ = false;
};

// The groups that may be advertised: those whose outcome holds them; the others become
// refusals of their resource (one per member, with the outcome's detail and fix).
std::vector<ResourceGroups> held_groups(std::span<const ResourceGroups> resources,
                                        std::span<const GroupOutcome> outcomes);

}  // namespace vfiokit::k8s
