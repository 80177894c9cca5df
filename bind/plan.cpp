#include "vfiokit/bind/plan.h"

#include <algorithm>
#include <set>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::bind {
namespace {

// Adds a refusal, or records it as overridden when its --force flag was given.
void refuse(Plan& plan, const pci::Bdf& bdf, Check check, std::string reason,
            const ForceFlags& force) {
  Refusal refusal{bdf, check, std::move(reason)};
  if (force.overrides(check)) {
    plan.forced.push_back(std::move(refusal));
  } else {
    plan.refusals.push_back(std::move(refusal));
  }
}

// The checks that protect the host from losing something it is using.
void check_host_use(Plan& plan, const DeviceFacts& facts, const ForceFlags& force) {
  const pci::PciDevice& dev = facts.device;
  if (dev.boot_vga) {
    refuse(plan, dev.bdf, Check::boot_vga,
           "it is the boot VGA device: the host console and firmware framebuffer run on it", force);
  }
  std::vector<std::string> nets;
  for (const auto& net : facts.usage.net) {
    if (net.in_use()) nets.push_back(net.describe());
  }
  if (!nets.empty()) refuse(plan, dev.bdf, Check::net, join(nets, "; "), force);
  std::vector<std::string> blocks;
  for (const auto& block : facts.usage.block) {
    if (block.in_use()) blocks.push_back(block.describe());
  }
  if (!blocks.empty()) {
    refuse(plan, dev.bdf, Check::block, join(blocks, "; "), force);
  }
  if (facts.display.in_use()) {
    refuse(plan, dev.bdf, Check::display,
           "the host still uses its display: " + facts.display.describe(), force);
  }
  if (dev.sriov_num_vfs.value_or(0) > 0) {
    refuse(plan, dev.bdf, Check::sriov,
           "it is an SR-IOV physical function with " + std::to_string(*dev.sriov_num_vfs) +
               " virtual functions enabled; unbinding its driver destroys them",
           force);
  }
}

void check_group_holders(Plan& plan, const GroupFacts& group, const pci::Bdf& bdf,
                         const ForceFlags& force) {
  if (group.holders.empty()) return;
  std::vector<std::string> held;
  bool certain = false;
  for (const auto& holder : group.holders) {
    held.push_back(holder.describe());
    certain = certain || holder.certain;
  }
  refuse(plan, bdf, Check::group_in_use,
         "IOMMU group " + std::to_string(group.number) +
             " is open through VFIO: " + join(held, ", ") +
             (certain ? ""
                      : "; this kernel does not say which device a VFIO device fd is for, "
                        "so it may be this group's"),
         force);
}

// The groups with a device moving, each with the first such device: the one a refusal names.
using MovingGroups = std::map<unsigned, pci::Bdf>;

void note_move(MovingGroups& groups, const PlannedDevice& device) {
  if (device.action == PlannedAction::move && device.group) {
    groups.emplace(*device.group, device.bdf);
  }
}

// A device whose journal entry cannot be read came from a driver nobody knows any more.
bool check_journal(Plan& plan, const DeviceFacts& facts) {
  if (!facts.journal_damage) return true;
  const Error& e = *facts.journal_damage;
  const std::string_view path = e.context_value("path");
  refuse(plan, facts.device.bdf, Check::journal,
         "its journal entry " + std::string(path) + " cannot be used (" + e.message() +
             "): which driver it came from is unknown; " + e.hint(),
         {});
  return false;
}

// One group-in-use check per group that has a device moving.
void check_groups_in_use(Plan& plan, const HostView& view, const MovingGroups& groups,
                         const ForceFlags& force) {
  for (const auto& [group, first_moving] : groups) {
    const auto it = view.groups.find(group);
    if (it != view.groups.end()) check_group_holders(plan, it->second, first_moving, force);
  }
}

const DeviceFacts& facts_of(const HostView& view, const pci::Bdf& bdf) {
  const auto it = view.devices.find(bdf);
  if (it == view.devices.end()) {
    throw Error("plan", "no facts gathered for " + bdf.to_string()).with("bdf", bdf.to_string());
  }
  return it->second;
}

// The requested devices first, in the order given, then the other members of their groups in
// BDF order; devices without a group stand alone.
std::vector<std::pair<pci::Bdf, bool>> closure(const HostView& view,
                                               std::span<const pci::Bdf> requested) {
  std::vector<std::pair<pci::Bdf, bool>> order;
  std::set<pci::Bdf> seen;
  for (const auto& bdf : requested) {
    if (seen.insert(bdf).second) order.emplace_back(bdf, true);
  }
  for (const auto& bdf : requested) {
    const auto& group = facts_of(view, bdf).device.iommu_group;
    const auto it = group ? view.groups.find(*group) : view.groups.end();
    if (it == view.groups.end()) continue;
    for (const auto& member : it->second.members) {
      if (seen.insert(member).second) order.emplace_back(member, false);
    }
  }
  return order;
}

std::string closure_note(bool requested, const PlannedDevice& device) {
  if (requested) return "requested";
  return "shares IOMMU group " + std::to_string(device.group.value_or(0));
}

constexpr const char* kLearnsGroupNote =
    "no IOMMU group until a driver probes it (a device-tree host): vfio-pci's probe gives it one, "
    "and every member of that group must be in this bind";

std::string no_group_reason(const HostView& view, const pci::PciDevice& dev) {
  if (!view.iommu_active)
    return "it has no IOMMU group: the IOMMU is off, so VFIO cannot isolate its DMA";
  return "it has no IOMMU group although an IOMMU is active and " +
         (dev.driver ? "it is bound to " + *dev.driver : std::string("it is a bridge")) +
         ": the IOMMU does not cover it, so VFIO cannot isolate its DMA";
}

}  // namespace

bool groupless_until_probed(const HostView& view, const pci::PciDevice& dev) noexcept {
  return groupless_until_probed(view.iommu_active, dev);
}

std::string_view to_string(Check check) noexcept {
  switch (check) {
    case Check::boot_vga:
      return "boot-vga";
    case Check::display:
      return "display";
    case Check::net:
      return "net";
    case Check::block:
      return "block";
    case Check::group_in_use:
      return "group-in-use";
    case Check::sriov:
      return "sriov";
    case Check::iommu:
      return "iommu";
    case Check::bridge:
      return "bridge";
    case Check::group_viable:
      return "group-viable";
    case Check::journal:
      return "journal";
  }
  return "?";
}

std::string_view force_flag(Check check) noexcept {
  switch (check) {
    case Check::boot_vga:
      return "--force-boot-vga";
    case Check::display:
      return "--force-display";
    case Check::net:
      return "--force-net";
    case Check::block:
      return "--force-block";
    case Check::group_in_use:
      return "--force-group-in-use";
    case Check::sriov:
      return "--force-sriov";
    case Check::iommu:
    case Check::bridge:
    case Check::group_viable:
    case Check::journal:
      return {};
  }
  return {};
}

bool* ForceFlags::flag(Check check) noexcept {
  switch (check) {
    case Check::boot_vga:
      return &boot_vga;
    case Check::display:
      return &display;
    case Check::net:
      return &net;
    case Check::block:
      return &block;
    case Check::group_in_use:
      return &group_in_use;
    case Check::sriov:
      return &sriov;
    case Check::iommu:
    case Check::bridge:
    case Check::group_viable:
    case Check::journal:
      return nullptr;
  }
  return nullptr;
}

bool ForceFlags::overrides(Check check) const noexcept {
  ForceFlags copy = *this;
  const bool* value = copy.flag(check);
  return value != nullptr && *value;
}

std::vector<pci::Bdf> Plan::endpoints() const {
  std::vector<pci::Bdf> out;
  for (const auto& device : devices) {
    if (device.action != PlannedAction::stay) out.push_back(device.bdf);
  }
  return out;
}

Error refusal_error(const Plan& plan, std::string_view operation) {
  Error e(std::string(operation), "refused by a safety check; nothing was changed");
  e.kind(ErrorKind::refused);
  std::vector<std::string> flags;
  for (const auto& r : plan.refusals) {
    e.with(r.bdf.to_string() + " " + std::string(to_string(r.check)), r.reason);
    const std::string flag(r.force_flag());
    if (!flag.empty() && std::find(flags.begin(), flags.end(), flag) == flags.end()) {
      flags.push_back(flag);
    }
  }
  if (!flags.empty()) e.hint("if you are sure, override with " + join(flags, " "));
  return e;
}

std::vector<const PlannedDevice*> Plan::moves() const {
  std::vector<const PlannedDevice*> out;
  for (const auto& device : devices) {
    if (device.action == PlannedAction::move) out.push_back(&device);
  }
  return out;
}

namespace {

// Reading the ROM turns its BAR's decoding on for a moment; not under a guest that owns the
// device (a VFIO user holds its group).
void gather_rom(const HostPaths& paths, const HostView& view, DeviceFacts& facts) {
  const pci::PciDevice& dev = facts.device;
  if (!dev.is_display() || dev.rom_size == 0) return;
  RomFacts rom;
  const auto group = dev.iommu_group ? view.groups.find(*dev.iommu_group) : view.groups.end();
  if (group != view.groups.end() && !group->second.holders.empty()) {
    rom.not_read =
        "not read while a VFIO user holds its group: " + group->second.holders.front().describe();
  } else {
    try {
      const std::vector<std::uint8_t> bytes = pci::read_sysfs_rom(paths, dev.bdf);
      rom.layout = pci::parse_rom(bytes, pci::RomDeviceIds{dev.vendor_id, dev.device_id});
    } catch (const Error& e) {
      rom.unreadable = e;
    }
  }
  facts.rom = std::move(rom);
}

}  // namespace

HostView gather_host_view(const HostPaths& paths, std::span<const pci::Bdf> requested,
                          const Journal& journal, int self_pid, pci::ConfigDepth depth) {
  HostView view;
  auto add_device = [&](const pci::Bdf& bdf) {
    if (view.devices.count(bdf)) return;
    DeviceFacts facts;
    facts.device = pci::read_pci_device(paths, bdf, depth);
    facts.usage = probe_device_usage(paths, bdf);
    // Only display devices have DRM nodes, consoles and firmware framebuffers; the probe reads
    // every process's fds, which no other device needs.
    if (facts.device.is_display()) {
      facts.display = probe_display_usage(paths, facts.device, self_pid);
    }
    if (depth == pci::ConfigDepth::full)
      facts.reset_topology = pci::read_reset_topology(paths, bdf);
    try {
      facts.journal = journal.find(bdf);
    } catch (const Error& e) {
      facts.journal_damage = e;
    }
    view.devices.emplace(bdf, std::move(facts));
  };
  std::set<unsigned> groups;
  for (const auto& bdf : requested) {
    add_device(bdf);
    const auto group = view.devices.at(bdf).device.iommu_group;
    if (!group) continue;
    groups.insert(*group);
    GroupFacts& facts = view.groups[*group];
    if (facts.members.empty()) {
      facts.number = *group;
      facts.members = iommu::read_iommu_group(paths, *group).devices;
    }
    // The device's own iommu_group link says it belongs; a group's devices/ that does not list
    // it yet (or any more) is a hot-plug race, and it still moves with its group.
    if (std::find(facts.members.begin(), facts.members.end(), bdf) == facts.members.end()) {
      facts.members.insert(std::upper_bound(facts.members.begin(), facts.members.end(), bdf), bdf);
    }
  }
  for (const unsigned group : groups) {
    GroupFacts& facts = view.groups.at(group);
    facts.holders = find_vfio_holders(paths, group, facts.members, self_pid);
    for (const auto& member : facts.members) add_device(member);
  }
  if (depth == pci::ConfigDepth::full) {
    for (const auto& bdf : requested) gather_rom(paths, view, view.devices.at(bdf));
  }
  view.iommu_active = !list_dir(paths.sys / "class/iommu").empty();
  return view;
}

Plan plan_bind(const HostView& view, std::span<const pci::Bdf> requested, const ForceFlags& force) {
  Plan plan;
  MovingGroups groups_with_moves;
  for (const auto& [bdf, requested_here] : closure(view, requested)) {
    const DeviceFacts& facts = facts_of(view, bdf);
    const pci::PciDevice& dev = facts.device;
    PlannedDevice item;
    item.bdf = bdf;
    item.group = dev.iommu_group;
    item.requested = requested_here;
    item.current_driver = dev.driver;
    item.current_override = dev.driver_override;
    item.target_driver = std::string(kVfioPci);
    item.target_override = std::string(kVfioPci);
    item.original_driver = facts.journal ? facts.journal->original_driver : dev.driver;
    item.original_override = facts.journal ? facts.journal->original_override : dev.driver_override;
    item.note = closure_note(requested_here, item);

    if (!dev.iommu_group) {
      if (groupless_until_probed(view, dev)) {
        item.learns_group = true;
        item.note = std::string(requested_here ? "requested; " : "") + kLearnsGroupNote;
      } else {
        refuse(plan, bdf, Check::iommu, no_group_reason(view, dev), force);
      }
    }
    if (dev.is_bridge()) {
      item.action = PlannedAction::stay;
      item.target_driver = dev.driver;
      item.target_override = dev.driver_override;
      if (requested_here) {
        refuse(plan, bdf, Check::bridge,
               "it is a PCI bridge; VFIO passes through endpoints: bind the devices behind it",
               force);
      } else if (dev.driver && !iommu::driver_keeps_group_viable(*dev.driver, true)) {
        refuse(plan, bdf, Check::group_viable,
               "bridge " + bdf.to_string() + " in the same IOMMU group is bound to " + *dev.driver +
                   ", which keeps the group from being viable",
               force);
      } else {
        item.note = "bridge, stays on " + dev.driver.value_or("no driver");
      }
      plan.devices.push_back(std::move(item));
      continue;
    }
    if (dev.driver && iommu::is_vfio_driver(*dev.driver)) {
      item.action = PlannedAction::already;
      item.note = "already on " + *dev.driver;
      plan.devices.push_back(std::move(item));
      continue;
    }
    item.action = PlannedAction::move;
    check_journal(plan, facts);
    check_host_use(plan, facts, force);
    note_move(groups_with_moves, item);
    plan.devices.push_back(std::move(item));
  }
  check_groups_in_use(plan, view, groups_with_moves, force);
  return plan;
}

namespace {

// A device going home: from the journal if there is an entry, else to whatever drivers_probe
// picks once the override is cleared.
PlannedDevice plan_home(const DeviceFacts& facts, bool requested_here) {
  const pci::PciDevice& dev = facts.device;
  PlannedDevice item;
  item.bdf = dev.bdf;
  item.group = dev.iommu_group;
  item.requested = requested_here;
  item.current_driver = dev.driver;
  item.current_override = dev.driver_override;
  if (facts.journal) {
    item.target_driver = facts.journal->original_driver;
    item.target_override = facts.journal->original_override;
  }
  const bool home = facts.journal && dev.driver == item.target_driver &&
                    dev.driver_override == item.target_override;
  const bool on_vfio = dev.driver && iommu::is_vfio_driver(*dev.driver);
  if (home) {
    item.action = PlannedAction::already;
    item.note = "already on " + dev.driver.value_or("no driver") + ", its original driver";
  } else if (facts.journal || on_vfio) {
    item.action = PlannedAction::move;
    item.note =
        item.target_driver ? "back to " + *item.target_driver : "to the driver drivers_probe picks";
  } else {
    item.action = PlannedAction::already;
    item.note =
        "not on a VFIO driver and not journalled: left on " + dev.driver.value_or("no driver");
  }
  return item;
}

}  // namespace

Plan plan_unbind(const HostView& view, std::span<const pci::Bdf> requested,
                 const ForceFlags& force) {
  Plan plan;
  MovingGroups groups_with_moves;
  for (const auto& [bdf, requested_here] : closure(view, requested)) {
    const DeviceFacts& facts = facts_of(view, bdf);
    if (facts.device.is_bridge() && !facts.journal) {
      PlannedDevice item;
      item.bdf = bdf;
      item.group = facts.device.iommu_group;
      item.current_driver = facts.device.driver;
      item.action = PlannedAction::stay;
      item.note = "bridge, stays on " + facts.device.driver.value_or("no driver");
      plan.devices.push_back(std::move(item));
      continue;
    }
    check_journal(plan, facts);
    PlannedDevice item = plan_home(facts, requested_here);
    note_move(groups_with_moves, item);
    plan.devices.push_back(std::move(item));
  }
  check_groups_in_use(plan, view, groups_with_moves, force);
  return plan;
}

Plan plan_restore(const HostView& view, std::span<const pci::Bdf> journalled,
                  const ForceFlags& force) {
  Plan plan;
  MovingGroups groups_with_moves;
  for (const auto& bdf : journalled) {
    const DeviceFacts& facts = facts_of(view, bdf);
    check_journal(plan, facts);
    PlannedDevice item = plan_home(facts, true);
    note_move(groups_with_moves, item);
    plan.devices.push_back(std::move(item));
  }
  check_groups_in_use(plan, view, groups_with_moves, force);
  return plan;
}

RestoreSelection select_for_restore(const HostPaths& paths, const Journal& journal,
                                    std::span<const pci::Bdf> named) {
  const JournalScan scan = journal.scan();
  auto wanted = [&](const std::optional<pci::Bdf>& bdf) {
    return named.empty() || (bdf && std::find(named.begin(), named.end(), *bdf) != named.end());
  };
  RestoreSelection selection;
  for (const auto& bdf : named) {
    const bool has_entry = std::any_of(scan.entries.begin(), scan.entries.end(),
                                       [&](const JournalEntry& e) { return e.bdf == bdf; }) ||
                           std::any_of(scan.problems.begin(), scan.problems.end(),
                                       [&](const JournalProblem& p) { return p.bdf == bdf; });
    if (!has_entry) {
      throw Error("restore", "no journal entry for " + bdf.to_string())
          .with("bdf", bdf.to_string())
          .hint("vfiokit did not bind it; `vfiokit unbind " + bdf.to_string() +
                "` returns a device on vfio-pci to its default driver");
    }
  }
  for (const auto& problem : scan.problems) {
    if (wanted(problem.bdf)) selection.left.push_back(problem);
  }
  for (const auto& entry : scan.entries) {
    if (!wanted(entry.bdf)) continue;
    std::error_code ec;
    if (std::filesystem::exists(pci::device_dir(paths, entry.bdf), ec)) {
      selection.devices.push_back(entry.bdf);
      continue;
    }
    const std::string bdf = entry.bdf.to_string();
    const std::string path = journal.entry_path(entry.bdf).string();
    selection.left.push_back(
        {path, entry.bdf,
         bdf +
             " is not on this host any more (unplugged, or a virtual function whose physical "
             "function disabled SR-IOV); it was on " +
             entry.original_driver.value_or("no driver"),
         "if it comes back (plugged in again, SR-IOV enabled again), run `vfiokit restore " + bdf +
             "`; if it will not, delete " + path});
  }
  return selection;
}

}  // namespace vfiokit::bind
