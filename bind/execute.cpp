#include "vfiokit/bind/execute.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/signals.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

fs::path drivers_dir(const HostPaths& paths) { return paths.sys / "bus/pci/drivers"; }

std::string describe_driver(const std::optional<std::string>& driver) {
  return driver ? *driver : std::string("no driver");
}

class Executor {
 public:
  Executor(const HostPaths& paths, SysfsOps& ops, Journal& journal, const ExecuteOptions& options)
      : paths_(paths), ops_(ops), journal_(journal), options_(options) {}

  void step(std::string_view name, const pci::Bdf& bdf) {
    if (options_.on_step) options_.on_step(name, bdf);
    check_stop();
  }

  // A bind stops moving forward at the first step after a signal; what it touched then goes
  // home. A homecoming (and a rollback) is never stopped: it is what leaves every device on a
  // driver.
  void check_stop() const {
    if (!stoppable_ || !options_.interrupted) return;
    if (const int signal = options_.interrupted()) {
      throw Error("bind", "stopped by " + signal_name(signal) + " before it finished")
          .with("signal", signal_name(signal));
    }
  }

  void ensure_driver_registered(std::string_view driver) {
    if (fs::exists(drivers_dir(paths_) / driver)) return;
    ops_.load_module(driver);
    if (!fs::exists(drivers_dir(paths_) / driver)) {
      throw Error("load driver",
                  "modprobe succeeded but no PCI driver " + std::string(driver) + " is registered")
          .with("driver", std::string(driver))
          .hint("check dmesg; the module may have failed to initialise");
    }
  }

  void write_override(const pci::Bdf& bdf, const std::optional<std::string>& value) {
    // A lone newline clears driver_override (the kernel strips it and stores nothing).
    ops_.write(pci::device_dir(paths_, bdf) / "driver_override", value ? *value : "\n");
  }

  void unbind(const pci::Bdf& bdf, const std::string& driver) {
    step("unbind", bdf);
    ops_.write(drivers_dir(paths_) / driver / "unbind", bdf.to_string(), options_.unbind_timeout);
  }

  // drivers_probe until a driver is bound; returns it (nullopt if none came).
  std::optional<std::string> probe(const pci::Bdf& bdf, int attempts) {
    for (int attempt = 1; attempt <= attempts; ++attempt) {
      step("probe", bdf);
      ops_.write(paths_.sys / "bus/pci/drivers_probe", bdf.to_string());
      if (auto driver = pci::read_driver(paths_, bdf)) return driver;
      if (attempt < attempts) ops_.sleep(options_.probe_retry_delay);
    }
    return std::nullopt;
  }

  // A device that had no IOMMU group before vfio-pci probed it (PlannedDevice::learns_group):
  // the group it joined, once every member of it is known to be in `plan` (or a bridge that
  // stays on a driver keeping the group viable). A member this bind does not move would share
  // an IOMMU domain with the device handed to user space.
  unsigned learn_group(const PlannedDevice& device, const Plan& plan) {
    const std::string name = device.bdf.to_string();
    const auto group = pci::read_pci_device(paths_, device.bdf).iommu_group;
    if (!group) {
      throw Error("bind", name +
                              " has no IOMMU group even on vfio-pci: the IOMMU does not cover "
                              "it, so VFIO cannot isolate its DMA")
          .with("bdf", name)
          .hint("see dmesg for the IOMMU driver's messages about " + name);
    }
    std::vector<std::string> outsiders;
    std::vector<std::string> everyone;
    for (const auto& member : iommu::read_iommu_group(paths_, *group).devices) {
      const bool planned = std::any_of(plan.devices.begin(), plan.devices.end(),
                                       [&](const PlannedDevice& d) { return d.bdf == member; });
      const pci::PciDevice facts = pci::read_pci_device(paths_, member);
      const bool stays = facts.is_bridge() &&
                         (!facts.driver || iommu::driver_keeps_group_viable(*facts.driver, true));
      if (!stays) everyone.push_back(member.to_string());
      if (!planned && !stays) {
        outsiders.push_back(member.to_string() + " (on " + describe_driver(facts.driver) + ")");
      }
    }
    if (!outsiders.empty()) {
      throw Error("bind", name + " joined IOMMU group " + std::to_string(*group) +
                              " when vfio-pci probed it, and that group also holds " +
                              join(outsiders, ", ") + ", which this bind does not move")
          .with("bdf", name)
          .with("group", std::to_string(*group))
          .hint("bind the whole group at once: vfiokit bind " + join(everyone, " "));
    }
    if (auto entry = journal_.find(device.bdf)) {
      entry->group = *group;
      journal_.record(*entry);
    }
    log::info("{} joined IOMMU group {} when vfio-pci probed it", name, *group);
    return *group;
  }

  void move_to_target(const PlannedDevice& device) {
    const std::string& target = *device.target_driver;
    step("override", device.bdf);
    write_override(device.bdf, target);
    touched_.push_back(&device);
    if (auto driver = pci::read_driver(paths_, device.bdf); driver && *driver != target) {
      unbind(device.bdf, *driver);
    }
    const auto bound = probe(device.bdf, options_.probe_attempts);
    step("verify", device.bdf);
    if (bound != target) {
      throw Error("bind",
                  bound
                      ? device.bdf.to_string() + " was bound to " + *bound + " instead of " + target
                      : device.bdf.to_string() + " has no driver after " +
                            std::to_string(options_.probe_attempts) + " drivers_probe attempts")
          .with("bdf", device.bdf.to_string())
          .hint("see dmesg for " + target + " probe errors");
    }
  }

  // Takes one device home; returns what happened, or throws.
  std::string go_home(const pci::Bdf& bdf, const std::optional<std::string>& driver,
                      const std::optional<std::string>& override_value) {
    step("home", bdf);
    const auto before = pci::read_driver(paths_, bdf);
    // The override first, so that nothing probing from here on picks the VFIO driver again.
    if (pci::read_driver_override(paths_, bdf) != override_value)
      write_override(bdf, override_value);
    if (before && before != driver) unbind(bdf, *before);
    if (!pci::read_driver(paths_, bdf)) {
      bool bound = false;
      if (driver) {
        try {
          ensure_driver_registered(*driver);
          ops_.write(drivers_dir(paths_) / *driver / "bind", bdf.to_string());
          bound = pci::read_driver(paths_, bdf).has_value();
        } catch (const Error& e) {
          log::warn("binding {} to {} directly failed ({}); trying drivers_probe", bdf.to_string(),
                    *driver, e.what());
        }
      }
      if (!bound) probe(bdf, driver ? options_.probe_attempts : 1);
    }
    step("verify", bdf);
    const auto after = pci::read_driver(paths_, bdf);
    if (driver && after != driver) {
      throw Error("restore", bdf.to_string() + " is on " + describe_driver(after) +
                                 ", not its original driver " + *driver)
          .with("bdf", bdf.to_string())
          .hint("bind it by hand: echo " + bdf.to_string() + " > /sys/bus/pci/drivers/" + *driver +
                "/bind");
    }
    return "back on " + describe_driver(after) + (before == after ? " (unchanged)" : "");
  }

  // Every touched device home, newest first. Never throws: each outcome is reported.
  std::vector<DeviceOutcome> roll_back() {
    stoppable_ = false;
    std::vector<DeviceOutcome> outcomes;
    for (auto it = touched_.rbegin(); it != touched_.rend(); ++it) {
      const PlannedDevice& device = **it;
      try {
        const std::string detail =
            go_home(device.bdf, device.original_driver, device.original_override);
        journal_.remove(device.bdf);
        outcomes.push_back({device.bdf, true, "rolled back: " + detail});
      } catch (const Error& e) {
        outcomes.push_back({device.bdf, false, std::string("rollback FAILED: ") + e.what()});
      }
    }
    return outcomes;
  }

  void wait_for_group_node(unsigned group) {
    const fs::path node = iommu::vfio_group_node(paths_, group);
    auto waited = std::chrono::milliseconds(0);
    while (!fs::exists(node)) {
      if (waited >= options_.group_node_timeout) {
        throw Error("bind", node.string() + " did not appear")
            .with("group", std::to_string(group))
            .hint("is devtmpfs mounted on /dev, and udev running?");
      }
      check_stop();
      ops_.sleep(options_.poll_interval);
      waited += options_.poll_interval;
    }
    if (options_.owner) ops_.set_owner(node, options_.owner->uid, options_.owner->gid);
  }

  std::vector<const PlannedDevice*> touched_;
  bool stoppable_ = false;

 private:
  const HostPaths& paths_;
  SysfsOps& ops_;
  Journal& journal_;
  const ExecuteOptions& options_;
};

}  // namespace

ExecuteResult execute_bind(const HostPaths& paths, const Plan& plan, SysfsOps& ops,
                           Journal& journal, const ExecuteOptions& options) {
  if (plan.refused()) throw Error("bind", "the plan was refused; nothing to execute");
  Executor executor(paths, ops, journal, options);
  ExecuteResult result;
  const auto moves = plan.moves();
  std::map<pci::Bdf, unsigned> learned;  // devices that got their IOMMU group from the probe
  std::vector<unsigned> groups;
  for (const auto& device : plan.devices) {
    if (device.group && device.action != PlannedAction::stay &&
        std::find(groups.begin(), groups.end(), *device.group) == groups.end()) {
      groups.push_back(*device.group);
    }
  }
  executor.stoppable_ = true;
  try {
    // The journal before any write: a crash from here on leaves enough to restore every device.
    for (const auto* device : moves) {
      executor.step("journal", device->bdf);
      journal.record({device->bdf, device->group.value_or(0), device->original_driver,
                      device->original_override, *device->target_driver, JournalState::binding,
                      options.pid});
    }
    if (!moves.empty()) executor.ensure_driver_registered(*moves.front()->target_driver);
    for (const auto* device : moves) {
      executor.move_to_target(*device);
      if (!device->learns_group) continue;
      const unsigned group = executor.learn_group(*device, plan);
      learned.emplace(device->bdf, group);
      if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
    }
    for (unsigned group : groups) executor.wait_for_group_node(group);
    log::debug("group nodes ready");
    for (const auto* device : moves) {
      auto entry = journal.find(device->bdf);
      entry->state = JournalState::bound;
      journal.record(*entry);
    }
  } catch (Error& failure) {
    const auto outcomes = executor.roll_back();
    bool all_home = true;
    for (const auto& outcome : outcomes) {
      failure.with(outcome.bdf.to_string(), outcome.detail);
      all_home = all_home && outcome.ok;
    }
    // Journalled (or about to be) but never touched: nothing to undo beyond the entry itself.
    for (const auto* device : moves) {
      if (std::find(executor.touched_.begin(), executor.touched_.end(), device) !=
          executor.touched_.end()) {
        continue;
      }
      try {
        journal.remove(device->bdf);
      } catch (const Error& e) {
        all_home = false;
        log::warn("{}", e.what());
      }
      failure.with(device->bdf.to_string(),
                   "unchanged, still on " + describe_driver(device->current_driver));
    }
    if (!all_home) {
      failure.hint(
          "not everything is back where it was: fix the cause, then run `vfiokit "
          "restore --all`");
    }
    throw;
  }
  for (const auto& device : plan.devices) {
    const bool moved = device.action == PlannedAction::move;
    std::string detail =
        moved ? "moved " + describe_driver(device.current_driver) + " -> " + *device.target_driver
              : device.note;
    if (const auto it = learned.find(device.bdf); it != learned.end()) {
      detail += " (joined IOMMU group " + std::to_string(it->second) + " on the probe)";
    }
    result.devices.push_back({device.bdf, true, std::move(detail)});
  }
  result.groups = groups;
  return result;
}

ExecuteResult execute_homecoming(const HostPaths& paths, const Plan& plan, SysfsOps& ops,
                                 Journal& journal, const ExecuteOptions& options) {
  if (plan.refused()) throw Error("unbind", "the plan was refused; nothing to execute");
  Executor executor(paths, ops, journal, options);
  ExecuteResult result;
  std::vector<DeviceOutcome> failures;
  for (const auto& device : plan.devices) {
    if (device.action != PlannedAction::move) {
      if (device.action == PlannedAction::already && journal.find(device.bdf)) {
        journal.remove(device.bdf);
      }
      result.devices.push_back({device.bdf, true, device.note});
      continue;
    }
    try {
      const std::string detail =
          executor.go_home(device.bdf, device.target_driver, device.target_override);
      journal.remove(device.bdf);
      result.devices.push_back({device.bdf, true, detail});
    } catch (const Error& e) {
      DeviceOutcome outcome{device.bdf, false, std::string("FAILED: ") + e.what()};
      result.devices.push_back(outcome);
      failures.push_back(outcome);
    }
  }
  if (!failures.empty()) {
    Error error("unbind", std::to_string(failures.size()) + " of " +
                              std::to_string(plan.moves().size()) +
                              " devices did not get back to their original driver");
    for (const auto& outcome : result.devices) error.with(outcome.bdf.to_string(), outcome.detail);
    error.hint("their journal entries are kept: fix the cause, then run `vfiokit restore --all`");
    throw error;
  }
  return result;
}

}  // namespace vfiokit::bind
