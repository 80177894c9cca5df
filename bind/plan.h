// Planning a move between drivers: which devices move (the whole IOMMU group closure), which
// stay (bridges on pcieport, devices already there), and which safety checks refuse it.
//
// gather_host_view() reads the host; plan_bind() and plan_unbind() decide from those facts alone,
// so every scenario is testable on fixture trees.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/display.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/bind/usage.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/pci/reset.h"
#include "vfiokit/pci/rom.h"

namespace vfiokit::bind {

inline constexpr std::string_view kVfioPci = "vfio-pci";

// The safety checks a plan can fail. The first six protect something the host is using and
// each has a --force flag; the rest are structural impossibilities nothing overrides.
enum class Check {
  boot_vga,      // the host console runs on it
  display,       // a display device a process, the console or a firmware framebuffer uses
  net,           // a network interface is up, routed or enslaved
  block,         // a disk or partition is mounted, held, swapped on or open
  group_in_use,  // another process has the group or one of its devices open through VFIO
  sriov,         // a PF with VFs enabled: unbinding destroys them
  iommu,         // no IOMMU group
  bridge,        // a bridge was requested
  group_viable,  // a bridge in the group sits on a driver VFIO does not accept
  journal,       // its journal entry is damaged: where it came from is unknown
};

// "boot-vga", "group-in-use", ...: the name output and JSON use.
std::string_view to_string(Check check) noexcept;
// "--force-boot-vga", ...; empty for the checks nothing overrides.
std::string_view force_flag(Check check) noexcept;

// Each --force-REASON overrides one refusal; none overrides a structural impossibility (no
// IOMMU, a bridge, a group that cannot become viable).
struct ForceFlags {
  bool boot_vga = false;      // --force-boot-vga
  bool net = false;           // --force-net
  bool block = false;         // --force-block
  bool group_in_use = false;  // --force-group-in-use
  bool sriov = false;         // --force-sriov
  bool display = false;       // --force-display

  // The flag that overrides `check`, or nullptr when nothing does.
  [[nodiscard]] bool* flag(Check check) noexcept;
  [[nodiscard]] bool overrides(Check check) const noexcept;
};

// A display device's option ROM, as `check` sees it: read and walked (against the device's own
// vendor:device), or why it was not.
struct RomFacts {
  std::optional<pci::RomLayout> layout;  // read and parsed
  std::optional<Error> unreadable;       // reading failed (not root: EACCES)
  std::string not_read;                  // why nothing was tried (a VFIO user holds the group)
};

struct DeviceFacts {
  pci::PciDevice device;
  // Gathered at ConfigDepth::full for requested display devices that have a ROM BAR.
  std::optional<RomFacts> rom;
  DeviceUsage usage;
  DisplayUsage display;  // display devices (class 03) only
  // Where it sits for a bus or slot reset: gathered with ConfigDepth::full only (check).
  std::optional<pci::ResetTopology> reset_topology;
  std::optional<JournalEntry> journal;
  // Why its journal entry could not be read (damaged, a symlink...): nothing may move it.
  std::optional<Error> journal_damage;
};

struct GroupFacts {
  unsigned number = 0;
  std::vector<pci::Bdf> members;
  std::vector<VfioHolder> holders;  // other processes with the group or a device open
};

struct HostView {
  std::map<pci::Bdf, DeviceFacts> devices;  // the requested devices and their group members
  std::map<unsigned, GroupFacts> groups;
  // An IOMMU unit is registered (/sys/class/iommu is not empty). A device with no group on such
  // a host is either not covered by it, or, on a device-tree host (arm64), not yet probed: the
  // kernel configures a device's IOMMU when a driver probes it, and only then gives it a group.
  bool iommu_active = false;
};

// Reads the requested devices and every member of their IOMMU groups. Throws Error (exit 1)
// naming a BDF that is well formed but names no device.
// Planning needs only each device's config header; readiness checks want all of it, and at
// ConfigDepth::full the option ROM of each requested display device (DeviceFacts::rom).
HostView gather_host_view(const HostPaths& paths, std::span<const pci::Bdf> requested,
                          const Journal& journal, int self_pid,
                          pci::ConfigDepth depth = pci::ConfigDepth::header);

// A driverless endpoint with no IOMMU group on a host whose IOMMU is active: on a device-tree
// host its group comes with a driver's probe (HostView::iommu_active). bind lets vfio-pci probe
// it and checks the group it joins (PlannedDevice::learns_group).
// The same test with the host's IOMMU state given (the device plugin's inventory asks it too);
// inline, so a user of the predicate alone links nothing of bind's.
inline bool groupless_until_probed(bool iommu_active, const pci::PciDevice& dev) noexcept {
  return iommu_active && !dev.iommu_group && !dev.driver && !dev.is_bridge();
}
bool groupless_until_probed(const HostView& view, const pci::PciDevice& dev) noexcept;

enum class PlannedAction {
  move,     // to the target driver (bind) or back to its original driver (unbind/restore)
  already,  // already where it should end up: nothing to do
  stay,     // a bridge that stays on its driver
};

struct PlannedDevice {
  pci::Bdf bdf;
  std::optional<unsigned> group;
  bool requested = false;
  PlannedAction action = PlannedAction::move;
  std::optional<std::string> current_driver;
  std::optional<std::string> current_override;
  // Bind: where it is going. Unbind/restore: the original driver (nullopt: whatever
  // drivers_probe picks) and override from the journal.
  std::optional<std::string> target_driver;
  std::optional<std::string> target_override;
  // Bind: the home the journal records and rollback returns to. An existing journal entry's
  // (a bind that was interrupted) wins over the current state, which may be half-way.
  std::optional<std::string> original_driver;
  std::optional<std::string> original_override;
  std::string note;  // why it is in the plan, or why it stays
  // A driverless device with no IOMMU group on a host whose IOMMU is active (group unknown):
  // vfio-pci's probe gives it its group, and execute_bind then checks that every member of that
  // group is in this plan before going on (device-tree hosts configure the IOMMU at probe).
  bool learns_group = false;
};

struct Refusal {
  pci::Bdf bdf;
  Check check = Check::iommu;
  std::string reason;
  // "--force-..." that overrides it; empty when nothing can.
  [[nodiscard]] std::string_view force_flag() const noexcept { return bind::force_flag(check); }
};

struct Plan {
  std::vector<PlannedDevice> devices;  // in execution order
  std::vector<Refusal> refusals;       // non-empty: nothing may be written
  std::vector<Refusal> forced;         // refusals a --force flag overrode, reported as warnings
  [[nodiscard]] bool refused() const noexcept { return !refusals.empty(); }
  [[nodiscard]] std::vector<const PlannedDevice*> moves() const;
  // The devices that end up on a VFIO driver: everything but the bridges that stay. A guest
  // gets exactly these.
  [[nodiscard]] std::vector<pci::Bdf> endpoints() const;
};

// A refused plan as one Error with exit status 3, each refusal in its context and the flags
// that would override them in the hint.
Error refusal_error(const Plan& plan, std::string_view operation);

// Moving `requested` and the rest of their IOMMU groups to vfio-pci.
Plan plan_bind(const HostView& view, std::span<const pci::Bdf> requested, const ForceFlags& force);

// Moving `requested` and the rest of their groups off VFIO drivers, each back to the original
// driver its journal entry names (or the default driver drivers_probe finds).
Plan plan_unbind(const HostView& view, std::span<const pci::Bdf> requested,
                 const ForceFlags& force);

// Returning journalled devices home, wherever a crash left them; no group closure.
Plan plan_restore(const HostView& view, std::span<const pci::Bdf> journalled,
                  const ForceFlags& force);

// What `restore` takes home: the journalled devices named in `named` (all of them when it is
// empty) that are still on the host. A damaged entry, or one for a device that is gone
// (unplugged, or a virtual function whose physical function disabled SR-IOV), is left with
// what to do about it. Throws Error for a named device without any journal entry.
struct RestoreSelection {
  std::vector<pci::Bdf> devices;
  std::vector<JournalProblem> left;
};
RestoreSelection select_for_restore(const HostPaths& paths, const Journal& journal,
                                    std::span<const pci::Bdf> named);

}  // namespace vfiokit::bind
