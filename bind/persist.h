// `vfiokit persist`: keeping devices on vfio-pci across reboots, like driverctl but before the
// host driver ever binds. Two files:
//   /etc/udev/rules.d/61-vfiokit-BDF.rules  sets driver_override inside the PCI "add" event.
//       It runs before 80-drivers.rules loads the host driver's module, and it matches vendor
//       and device too, so a different card in the same slot is left alone.
//   /etc/modprobe.d/vfiokit.conf  "softdep HOSTDRIVER pre: vfio-pci" for every persisted
//       device's host driver, so vfio-pci is registered by the time that driver loads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

  std::filesystem::path rule_path(const pci::Bdf& bdf) const;
  std::filesystem::path softdep_path() const;

 private:
  std::vector<std::filesystem::path> write_softdeps();
  std::filesystem::path etc_;
};

}  // namespace vfiokit::bind
