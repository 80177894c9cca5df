// `vfiokit persist`: keeping devices on vfio-pci across reboots, like driverctl but before the
// host driver ever binds. Two files:
//   /etc/udev/rules.d/61-vfiokit-BDF.rules  sets driver_override inside the PCI "add" event.
//       It runs before 80-drivers.rules loads the host driver's module, and it matches vendor
//       and device too, so a different card in the same slot is left alone.
//   /etc/modprobe.d/vfiokit.conf  "softdep HOSTDRIVER pre: vfio-pci" for every persisted
//       device's host driver, so vfio-pci is registered by the time that driver loads.
// Neither helps when the host driver is built into the kernel (it probes the device before udev
// runs) or loads from an initramfs without them: boot/ carries both into the initramfs, and
// vfiokit.service runs `vfiokit persist --apply`, which binds what a host driver took anyway.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::bind {

struct PersistEntry {
  pci::Bdf bdf;
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::optional<std::string> host_driver;  // the driver the device leaves; softdep target

  bool operator==(const PersistEntry&) const = default;
};

std::string render_udev_rule(const PersistEntry& entry);
// Reads back a rule this code wrote (its "# vfiokit-persist" line); nullopt for anything else.
std::optional<PersistEntry> parse_udev_rule(std::string_view text);
// The whole modprobe.d file for these entries; empty when no entry has a host driver.
std::string render_softdeps(const std::vector<PersistEntry>& entries);

struct PersistPlan {
  Plan plan;                          // the checks of a bind, without group-in-use
  std::vector<PersistEntry> entries;  // one per endpoint of the requested devices' groups
};

// What `persist` writes for `requested` and the rest of their groups: the same checks as a bind
// except group-in-use (whether the group is open now says nothing about the next boot). Each
// entry's host driver is the one the device leaves: its journalled original driver if vfiokit
// bound it, else its current driver unless that is already a VFIO driver.
PersistPlan plan_persist(const HostView& view, std::span<const pci::Bdf> requested,
                         const ForceFlags& force);

// What is in a persisted device's slot at boot, read from sysfs.
struct SlotNow {
  std::uint16_t vendor_id = 0;
  std::uint16_t device_id = 0;
  std::optional<std::string> driver;
  // The driver is part of the kernel image (no loaded module behind it): it probed the device
  // before udev and any softdep could act.
  bool driver_built_in = false;

  bool operator==(const SlotNow&) const = default;
};

// Reads the slots of `entries` that hold a device; a slot with none is absent from the map.
std::map<pci::Bdf, SlotNow> read_slots(const HostPaths& paths,
                                       std::span<const PersistEntry> entries);

enum class BootAction {
  bind,        // a host driver has it (built in, or loaded before vfio-pci), or no driver does
  already,     // on a VFIO driver: the udev rule and the softdep did their work
  absent,      // no device at that address (unplugged, or SR-IOV VFs not created yet)
  other_card,  // a device with other IDs is in the slot: the rule is not for it
};

std::string_view to_string(BootAction action) noexcept;

struct BootDecision {
  PersistEntry entry;
  BootAction action = BootAction::absent;
  std::string reason;  // one line for the report, e.g. "bound to nvme (built into the kernel)"
};

// What `persist --apply` (vfiokit.service, at boot) does for each persisted device, in the
// entries' order. Only `bind` decisions move anything, through the same plan as `vfiokit bind`.
std::vector<BootDecision> decide_boot_apply(std::span<const PersistEntry> entries,
                                            const std::map<pci::Bdf, SlotNow>& slots);

// Which initramfs generator the host has (by its configuration under /etc), and the command
// that rebuilds every installed kernel's initramfs so it carries the persisted rules.
struct InitramfsGenerator {
  std::string name;     // "initramfs-tools" or "dracut"
  std::string command;  // "update-initramfs -u -k all", "dracut --regenerate-all --force"

  bool operator==(const InitramfsGenerator&) const = default;
};
std::optional<InitramfsGenerator> detect_initramfs_generator(const std::filesystem::path& etc);

class PersistStore {
 public:
  // `etc` is normally /etc.
  explicit PersistStore(std::filesystem::path etc);

  std::vector<PersistEntry> entries() const;
  // Writes the rules for `added` and rewrites the softdep file for all entries. Returns the
  // files written.
  std::vector<std::filesystem::path> add(const std::vector<PersistEntry>& added);
  // Removes the rules of these devices (if present) and rewrites the softdep file. Returns the
  // files removed or rewritten.
  std::vector<std::filesystem::path> remove(const std::vector<pci::Bdf>& removed);
  // What add() and remove() would write or remove, for --dry-run: nothing is touched.
  std::vector<std::filesystem::path> files_for_add(const std::vector<PersistEntry>& added) const;
  std::vector<std::filesystem::path> files_for_remove(const std::vector<pci::Bdf>& removed) const;

  std::filesystem::path rule_path(const pci::Bdf& bdf) const;
  std::filesystem::path softdep_path() const;

 private:
  std::vector<std::filesystem::path> write_softdeps();
  std::filesystem::path etc_;
};

}  // namespace vfiokit::bind
