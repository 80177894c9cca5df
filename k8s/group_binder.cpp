#include "vfiokit/k8s/group_binder.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <utility>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/bind/lock.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::k8s {
namespace {

std::string bdf_list(const std::vector<pci::Bdf>& bdfs) {
  std::vector<std::string> names;
  names.reserve(bdfs.size());
  for (const auto& bdf : bdfs) names.push_back(bdf.to_string());
  return join(names, ", ");
}

// The plan's refusals as one sentence, and what to do: the plugin never forces a check, but a
// person who is sure can bind the group by hand; the plugin then adopts it.
void describe_refusal(const bind::Plan& plan, const SelectedGroup& group, GroupOutcome& outcome) {
  std::vector<std::string> reasons;
  std::vector<std::string> flags;
  for (const auto& refusal : plan.refusals) {
    reasons.push_back(refusal.bdf.to_string() + ": " + refusal.reason);
    const std::string flag(refusal.force_flag());
    if (!flag.empty() && std::find(flags.begin(), flags.end(), flag) == flags.end()) {
      flags.push_back(flag);
    }
  }
  outcome.state = GroupState::refused;
  outcome.detail = "refused by a safety check, nothing was changed: " + join(reasons, "; ");
  outcome.fix = flags.empty()
                    ? std::string("nothing overrides this: leave group ") +
                          std::to_string(group.group) + " out of the config"
                    : "free the device, or if you are sure bind it yourself (`vfiokit bind " +
                          plan.refusals.front().bdf.to_string() + " " + join(flags, " ") +
                          "`) and restart the plugin, which then adopts it";
}

}  // namespace

std::string_view to_string(GroupState state) noexcept {
  switch (state) {
    case GroupState::bound:
      return "bound";
    case GroupState::adopted:
      return "adopted";
    case GroupState::refused:
      return "refused";
    case GroupState::failed:
      return "failed";
  }
  return "unknown";
}

GroupBinder::GroupBinder(const HostPaths& paths, BinderOptions options)
    : paths_(paths), options_(std::move(options)) {}

GroupBinder::~GroupBinder() {
  try {
    for (const auto& outcome : give_back()) {
      if (outcome.ok) {
        log::info("{}: {}", outcome.bdf.to_string(), outcome.detail);
      } else {
        log::error("{}: {}", outcome.bdf.to_string(), outcome.detail);
      }
    }
  } catch (const std::exception& e) {
    log::error("giving the device plugin's groups back: {}", e.what());
  }
}

bind::SysfsOps& GroupBinder::ops() noexcept { return options_.ops ? *options_.ops : live_ops_; }

bind::ExecuteOptions GroupBinder::execute_options(bool stoppable) const {
  bind::ExecuteOptions execute;
  execute.pid = ::getpid();
  if (stoppable) execute.interrupted = options_.interrupted;
  return execute;
}

std::vector<GroupOutcome> GroupBinder::take(std::span<const ResourceGroups> resources) {
  std::vector<GroupOutcome> outcomes;
  for (const auto& resource : resources) {
    for (const auto& group : resource.groups) {
      outcomes.push_back(take_group(group));
      const auto& outcome = outcomes.back();
      if (outcome.held()) {
        log::info("{} group {}: {}: {}", resource.name, group.group, to_string(outcome.state),
                  outcome.detail);
      } else {
        log::warn("{} group {}: {}: {} ({})", resource.name, group.group, to_string(outcome.state),
                  outcome.detail, outcome.fix);
      }
    }
  }
  return outcomes;
}

// A bind cut short (a plugin killed mid-bind) left devices anywhere between their two drivers:
// they go home first, from their entries, so that the bind that follows starts from a known
// state and records their true home.
std::string GroupBinder::reconcile(const SelectedGroup& group, bind::Journal& journal,
                                   bind::SysfsOps& ops) {
  std::vector<pci::Bdf> cut_short;
  for (const auto& bdf : group.members) {
    std::optional<bind::JournalEntry> entry;
    try {
      entry = journal.find(bdf);
    } catch (const Error&) {
      continue;  // a damaged entry: the plan refuses to move the device (Check::journal)
    }
    if (entry && entry->state == bind::JournalState::binding &&
        pci::pci_device_exists(paths_, bdf)) {
      cut_short.push_back(bdf);
    }
  }
  if (cut_short.empty()) return {};
  log::warn("group {}: a bind of {} was cut short; taking them home first", group.group,
            bdf_list(cut_short));
  const auto view = bind::gather_host_view(paths_, cut_short, journal, ::getpid());
  const auto plan = bind::plan_restore(view, cut_short, {});
  if (plan.refused()) throw bind::refusal_error(plan, "restore");
  bind::execute_homecoming(paths_, plan, ops, journal, execute_options(false));
  return "took " + bdf_list(cut_short) + " home first (a bind of them had been cut short); ";
}

GroupOutcome GroupBinder::take_group(const SelectedGroup& group) {
  GroupOutcome outcome{group.group, group.members, GroupState::failed, {}, {}};
  // Once asked to stop, the groups not yet taken are left alone rather than started and rolled
  // back.
  if (const int signal = options_.interrupted ? options_.interrupted() : 0) {
    outcome.detail = "not bound: stopped by " + signal_name(signal) + " first";
    outcome.fix = "start the plugin again";
    return outcome;
  }
  try {
    const auto run_dir = paths_.run / "vfiokit";
    const bind::StateLock lock(
        run_dir, bind::LockOptions{options_.lock_wait, "/proc", options_.interrupted});
    bind::Journal journal(run_dir);
    const std::string reconciled = reconcile(group, journal, ops());

    const auto view = bind::gather_host_view(paths_, group.members, journal, ::getpid());
    const auto plan = bind::plan_bind(view, group.members, {});
    if (plan.refused()) {
      describe_refusal(plan, group, outcome);
      outcome.detail = reconciled + outcome.detail;
      return outcome;
    }
    // What is on vfio-pci already: with a `bound` entry a plugin before this one bound it and it
    // goes home at the end; without one, its original driver is unknown and it stays.
    std::vector<pci::Bdf> give_back;
    std::vector<pci::Bdf> adopted_journalled;
    std::vector<pci::Bdf> adopted_unknown;
    for (const auto& device : plan.devices) {
      if (device.action == bind::PlannedAction::move) give_back.push_back(device.bdf);
      if (device.action != bind::PlannedAction::already) continue;
      if (view.devices.at(device.bdf).journal) {
        adopted_journalled.push_back(device.bdf);
      } else {
        adopted_unknown.push_back(device.bdf);
      }
    }
    std::vector<std::string> details;
    if (!give_back.empty()) {
      bind::execute_bind(paths_, plan, ops(), journal, execute_options(true));
      std::vector<std::string> moves;
      for (const auto* device : plan.moves()) {
        moves.push_back(device->bdf.to_string() + " (" +
                        device->current_driver.value_or("no driver") + ")");
      }
      details.push_back("moved " + join(moves, ", ") + " to vfio-pci");
    }
    if (!adopted_journalled.empty()) {
      details.push_back("adopted " + bdf_list(adopted_journalled) +
                        ", already on vfio-pci by an earlier bind; they go home from the journal "
                        "at the end");
    }
    if (!adopted_unknown.empty()) {
      details.push_back("adopted " + bdf_list(adopted_unknown) +
                        ", already on vfio-pci with no journal entry: their original driver is "
                        "unknown, so they stay on vfio-pci when the plugin stops");
    }
    give_back.insert(give_back.end(), adopted_journalled.begin(), adopted_journalled.end());
    held_.push_back(std::move(give_back));
    outcome.state = plan.moves().empty() ? GroupState::adopted : GroupState::bound;
    outcome.detail = reconciled + join(details, "; ");
  } catch (const Error& e) {
    outcome.state = GroupState::failed;
    outcome.detail = e.what();
    outcome.fix = e.hint();
  }
  return outcome;
}

std::vector<pci::Bdf> GroupBinder::to_give_back() const {
  std::vector<pci::Bdf> devices;
  if (options_.keep_bound) return devices;
  for (const auto& group : held_) devices.insert(devices.end(), group.begin(), group.end());
  return devices;
}

std::vector<bind::DeviceOutcome> GroupBinder::give_back() {
  std::vector<bind::DeviceOutcome> outcomes;
  if (std::exchange(given_back_, true)) return outcomes;
  if (options_.keep_bound) {
    if (!held_.empty()) {
      log::info("keepBound: {} groups stay on vfio-pci; the next plugin adopts them", held_.size());
    }
    return outcomes;
  }
  const std::vector<pci::Bdf> devices = to_give_back();
  if (devices.empty()) return outcomes;
  const auto run_dir = paths_.run / "vfiokit";
  std::optional<bind::StateLock> lock;
  try {
    lock.emplace(run_dir, bind::LockOptions{options_.lock_wait, "/proc", {}});
  } catch (const Error& e) {
    for (const auto& bdf : devices) {
      outcomes.push_back({bdf, false, std::string("not given back: ") + e.what()});
    }
    return outcomes;
  }
  bind::Journal journal(run_dir);
  // One device at a time, so that each outcome is its own and one failure stops no other.
  for (const auto& bdf : devices) {
    if (!pci::pci_device_exists(paths_, bdf)) {
      outcomes.push_back({bdf, false,
                          "gone from the bus: nothing to give back (`vfiokit restore` clears its "
                          "journal entry)"});
      continue;
    }
    try {
      const std::vector<pci::Bdf> one{bdf};
      const auto view = bind::gather_host_view(paths_, one, journal, ::getpid());
      const auto plan = bind::plan_restore(view, one, {});
      if (plan.refused()) throw bind::refusal_error(plan, "restore");
      const auto result =
          bind::execute_homecoming(paths_, plan, ops(), journal, execute_options(false));
      outcomes.insert(outcomes.end(), result.devices.begin(), result.devices.end());
    } catch (const Error& e) {
      outcomes.push_back({bdf, false, std::string("FAILED: ") + e.what()});
    }
  }
  return outcomes;
}

std::vector<ResourceGroups> held_groups(std::span<const ResourceGroups> resources,
                                        std::span<const GroupOutcome> outcomes) {
  std::map<unsigned, const GroupOutcome*> by_group;
  for (const auto& outcome : outcomes) by_group[outcome.group] = &outcome;
  std::vector<ResourceGroups> held;
  for (const auto& resource : resources) {
    ResourceGroups kept{resource.name, {}, resource.refused};
    for (const auto& group : resource.groups) {
      const auto it = by_group.find(group.group);
      if (it != by_group.end() && it->second->held()) {
        kept.groups.push_back(group);
        continue;
      }
      for (const auto& bdf : group.members) {
        if (it == by_group.end()) {
          kept.refused.push_back({bdf, "the plugin did not bind its group", "restart the plugin"});
        } else {
          kept.refused.push_back({bdf, it->second->detail, it->second->fix});
        }
      }
    }
    std::sort(kept.refused.begin(), kept.refused.end(),
              [](const auto& a, const auto& b) { return a.bdf < b.bdf; });
    held.push_back(std::move(kept));
  }
  return held;
}

}  // namespace vfiokit::k8s
