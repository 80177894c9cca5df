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

#include "base/host_paths.h"
#include "bind/journal.h"
#include "bind/usage.h"
#include "pci/device.h"

namespace vfiokit::bind {

inline constexpr std::string_view kVfioPci = "vfio-pci";

// Each --force-REASON overrides one refusal; none overrides a structural impossibility (no
// IOMMU, a bridge, a group that cannot become viable).
struct ForceFlags {
  bool boot_vga = false;      // --force-boot-vga
  bool net = false;           // --force-net
  bool block = false;         // --force-block
  bool group_in_use = false;  // --force-group-in-use
  bool sriov = false;         // --force-sriov
};

struct DeviceFacts {
  pci::PciDevice device;
  DeviceUsage usage;
  std::optional<JournalEntry> journal;
};

struct GroupFacts {
  unsigned number = 0;
  std::vector<pci::Bdf> members;
  std::vector<VfioGroupHolder> holders;  // other processes with /dev/vfio/N open
};

struct HostView {
  std::map<pci::Bdf, DeviceFacts> devices;  // the requested devices and their group members
  std::map<unsigned, GroupFacts> groups;
};

// Reads the requested devices and every member of their IOMMU groups. Throws Error (exit 1)
// naming a BDF that is well formed but names no device.
// Planning needs only each device's config header; readiness checks want all of it.
HostView gather_host_view(const HostPaths& paths, std::span<const pci::Bdf> requested,
                          const Journal& journal, int self_pid,
                          pci::ConfigDepth depth = pci::ConfigDepth::header);

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
};

struct Refusal {
  pci::Bdf bdf;
  std::string check;  // "boot-vga", "net", "block", "group-in-use", "sriov", "iommu", ...
  std::string reason;
  std::string force_flag;  // empty when nothing can override it
};

struct Plan {
  std::vector<PlannedDevice> devices;  // in execution order
  std::vector<Refusal> refusals;       // non-empty: nothing may be written
  std::vector<Refusal> forced;         // refusals a --force flag overrode, reported as warnings
  [[nodiscard]] bool refused() const noexcept { return !refusals.empty(); }
  [[nodiscard]] std::vector<const PlannedDevice*> moves() const;
};

// Moving `requested` and the rest of their IOMMU groups to vfio-pci.
Plan plan_bind(const HostView& view, std::span<const pci::Bdf> requested, const ForceFlags& force);

// Moving `requested` and the rest of their groups off VFIO drivers, each back to the original
// driver its journal entry names (or the default driver drivers_probe finds).
Plan plan_unbind(const HostView& view, std::span<const pci::Bdf> requested,
                 const ForceFlags& force);

// Returning journalled devices home, wherever a crash left them; no group closure.
Plan plan_restore(const HostView& view, std::span<const pci::Bdf> journalled,
                  const ForceFlags& force);

}  // namespace vfiokit::bind
