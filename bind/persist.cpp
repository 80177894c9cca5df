#include "vfiokit/bind/persist.h"

#include <algorithm>
#include <set>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kMetadataPrefix = "# vfiokit-persist ";
constexpr std::string_view kRulePrefix = "61-vfiokit-";

void create_parent(const fs::path& path) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec)
    throw Error::from_errno(ec.value(), "create folder").with("path", path.parent_path().string());
}

std::optional<std::uint16_t> read_id(const fs::path& path) {
  const auto line = read_line_if_exists(path);
  if (!line || !line->starts_with("0x")) return std::nullopt;
  const auto value = parse_uint(std::string_view(*line).substr(2), 16);
  if (!value || *value > 0xffff) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

std::string ids_of(std::uint16_t vendor_id, std::uint16_t device_id) {
  return pci::id_hex(vendor_id) + ":" + pci::id_hex(device_id);
}

}  // namespace

std::string render_udev_rule(const PersistEntry& entry) {
  const std::string bdf = entry.bdf.to_string();
  const std::string ids = pci::id_hex(entry.vendor_id) + ":" + pci::id_hex(entry.device_id);
  std::string text =
      "# Written by `vfiokit persist`; remove with `vfiokit persist --remove " + bdf + "`.\n";
  text += "# Keeps " + bdf + " [" + ids + "] on vfio-pci from boot on";
  if (entry.host_driver) text += " instead of " + *entry.host_driver;
  text += ".\n";
  text += std::string(kMetadataPrefix) + "bdf=" + bdf + " id=" + ids +
          " host-driver=" + entry.host_driver.value_or("-") + "\n";
  text += "ACTION==\"add\", SUBSYSTEM==\"pci\", KERNEL==\"" + bdf + "\", ATTR{vendor}==\"0x" +
          pci::id_hex(entry.vendor_id) + "\", ATTR{device}==\"0x" + pci::id_hex(entry.device_id) +
          "\", ATTR{driver_override}=\"vfio-pci\"\n";
  return text;
}

std::optional<PersistEntry> parse_udev_rule(std::string_view text) {
  const std::size_t start = text.find(kMetadataPrefix);
  if (start == std::string_view::npos) return std::nullopt;
  std::string_view line = text.substr(start + kMetadataPrefix.size());
  line = line.substr(0, line.find('\n'));
  PersistEntry entry;
  bool have_bdf = false, have_id = false;
  while (!line.empty()) {
    const std::size_t space = line.find(' ');
    const std::string_view field = line.substr(0, space);
    line = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    const std::size_t eq = field.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const std::string_view key = field.substr(0, eq);
    const std::string_view value = field.substr(eq + 1);
    if (key == "bdf") {
      const auto bdf = pci::parse_bdf(value);
      if (!bdf) return std::nullopt;
      entry.bdf = *bdf;
      have_bdf = true;
    } else if (key == "id") {
      const std::size_t colon = value.find(':');
      const auto vendor = colon == 4 ? parse_uint(value.substr(0, 4), 16) : std::nullopt;
      const auto device = colon == 4 ? parse_uint(value.substr(5), 16) : std::nullopt;
      if (!vendor || !device || value.size() != 9) return std::nullopt;
      entry.vendor_id = static_cast<std::uint16_t>(*vendor);
      entry.device_id = static_cast<std::uint16_t>(*device);
      have_id = true;
    } else if (key == "host-driver") {
      if (!is_driver_name(value)) return std::nullopt;
      if (value != "-") entry.host_driver = std::string(value);
    } else {
      return std::nullopt;
    }
  }
  if (!have_bdf || !have_id) return std::nullopt;
  return entry;
}

std::string render_softdeps(const std::vector<PersistEntry>& entries) {
  std::set<std::string> drivers;
  for (const auto& entry : entries) {
    if (entry.host_driver) drivers.insert(*entry.host_driver);
  }
  if (drivers.empty()) return {};
  std::string text =
      "# Written by `vfiokit persist`: vfio-pci must be registered before these drivers load,\n"
      "# so that the devices vfiokit's udev rules reserve bind to it instead.\n";
  for (const auto& driver : drivers) text += "softdep " + driver + " pre: vfio-pci\n";
  return text;
}

PersistPlan plan_persist(const HostView& view, std::span<const pci::Bdf> requested,
                         const ForceFlags& force) {
  ForceFlags without_group_in_use = force;
  without_group_in_use.group_in_use = true;
  PersistPlan out;
  out.plan = plan_bind(view, requested, without_group_in_use);
  std::erase_if(out.plan.forced, [](const Refusal& r) { return r.check == Check::group_in_use; });
  // What boots onto vfio-pci is the whole group, and a device still without one (a device-tree
  // host gives it one at the first probe) has members nobody knows yet.
  for (const auto& device : out.plan.devices) {
    if (!device.learns_group) continue;
    out.plan.refusals.push_back(
        {device.bdf, Check::iommu,
         "it has no IOMMU group until a driver probes it, so which devices boot onto vfio-pci "
         "with it is unknown: `vfiokit bind " +
             device.bdf.to_string() + "` first (it gets its group), then persist"});
  }
  if (out.plan.refused()) return out;
  for (const auto& device : out.plan.devices) {
    if (device.action == PlannedAction::stay) continue;
    const DeviceFacts& facts = view.devices.at(device.bdf);
    std::optional<std::string> host_driver;
    if (facts.journal) {
      host_driver = facts.journal->original_driver;
    } else if (device.action == PlannedAction::move) {
      host_driver = device.current_driver;
    }
    out.entries.push_back(
        {device.bdf, facts.device.vendor_id, facts.device.device_id, std::move(host_driver)});
  }
  return out;
}

std::map<pci::Bdf, SlotNow> read_slots(const HostPaths& paths,
                                       std::span<const PersistEntry> entries) {
  std::map<pci::Bdf, SlotNow> slots;
  for (const auto& entry : entries) {
    if (!pci::pci_device_exists(paths, entry.bdf)) continue;
    const fs::path dir = pci::device_dir(paths, entry.bdf);
    const auto vendor = read_id(dir / "vendor");
    const auto device = read_id(dir / "device");
    if (!vendor || !device) continue;  // going away as we look
    SlotNow slot{*vendor, *device, pci::read_driver(paths, entry.bdf), false};
    // A loaded module has an initstate; a driver built into the kernel has none (its
    // /sys/module entry, when there is one, holds only parameters).
    if (slot.driver) {
      std::error_code ec;
      slot.driver_built_in =
          !fs::exists(paths.sys / "bus/pci/drivers" / *slot.driver / "module/initstate", ec);
    }
    slots.emplace(entry.bdf, std::move(slot));
  }
  return slots;
}

std::string_view to_string(BootAction action) noexcept {
  switch (action) {
    case BootAction::bind:
      return "bind";
    case BootAction::already:
      return "already";
    case BootAction::absent:
      return "absent";
    case BootAction::other_card:
      return "other-card";
  }
  return "?";
}

std::vector<BootDecision> decide_boot_apply(std::span<const PersistEntry> entries,
                                            const std::map<pci::Bdf, SlotNow>& slots) {
  std::vector<BootDecision> decisions;
  for (const auto& entry : entries) {
    BootDecision decision{entry, BootAction::absent, "no device at this address"};
    const auto found = slots.find(entry.bdf);
    if (found != slots.end()) {
      const SlotNow& slot = found->second;
      if (slot.vendor_id != entry.vendor_id || slot.device_id != entry.device_id) {
        decision.action = BootAction::other_card;
        decision.reason = "persisted for " + ids_of(entry.vendor_id, entry.device_id) + ", but " +
                          ids_of(slot.vendor_id, slot.device_id) + " is in the slot: left alone";
      } else if (slot.driver && iommu::is_vfio_driver(*slot.driver)) {
        decision.action = BootAction::already;
        decision.reason = "on " + *slot.driver;
      } else if (slot.driver) {
        decision.action = BootAction::bind;
        decision.reason = "bound to " + *slot.driver +
                          (slot.driver_built_in ? " (built into the kernel)"
                                                : " (loaded before vfio-pci could claim it)");
      } else {
        decision.action = BootAction::bind;
        decision.reason = "no driver bound";
      }
    }
    decisions.push_back(std::move(decision));
  }
  return decisions;
}

std::optional<InitramfsGenerator> detect_initramfs_generator(const fs::path& etc) {
  std::error_code ec;
  // Debian's initramfs-tools-core ships /etc/initramfs-tools/initramfs.conf; dracut ships
  // /etc/dracut.conf. Where both are installed, initramfs-tools is the one Debian runs.
  if (fs::exists(etc / "initramfs-tools/initramfs.conf", ec)) {
    return InitramfsGenerator{"initramfs-tools", "update-initramfs -u -k all"};
  }
  if (fs::exists(etc / "dracut.conf", ec) || fs::is_directory(etc / "dracut.conf.d", ec)) {
    return InitramfsGenerator{"dracut", "dracut --regenerate-all --force"};
  }
  return std::nullopt;
}

PersistStore::PersistStore(fs::path etc) : etc_(std::move(etc)) {}

fs::path PersistStore::rule_path(const pci::Bdf& bdf) const {
  return etc_ / "udev/rules.d" / (std::string(kRulePrefix) + bdf.to_string() + ".rules");
}

fs::path PersistStore::softdep_path() const { return etc_ / "modprobe.d/vfiokit.conf"; }

std::vector<PersistEntry> PersistStore::entries() const {
  std::vector<PersistEntry> all;
  for (const auto& name : list_dir(etc_ / "udev/rules.d")) {
    if (!name.starts_with(kRulePrefix) || !name.ends_with(".rules")) continue;
    if (auto entry = parse_udev_rule(read_file(etc_ / "udev/rules.d" / name))) {
      all.push_back(std::move(*entry));
    }
  }
  std::sort(all.begin(), all.end(),
            [](const PersistEntry& a, const PersistEntry& b) { return a.bdf < b.bdf; });
  return all;
}

std::vector<fs::path> PersistStore::write_softdeps() {
  const std::string text = render_softdeps(entries());
  const fs::path path = softdep_path();
  if (text.empty()) {
    std::error_code ec;
    if (fs::remove(path, ec)) return {path};
    return {};
  }
  create_parent(path);
  write_file_durable(path, text);
  return {path};
}

std::vector<fs::path> PersistStore::files_for_add(const std::vector<PersistEntry>& added) const {
  std::vector<fs::path> files;
  for (const auto& entry : added) files.push_back(rule_path(entry.bdf));
  std::vector<PersistEntry> after = entries();
  std::erase_if(after, [&](const PersistEntry& e) {
    return std::any_of(added.begin(), added.end(),
                       [&](const PersistEntry& a) { return a.bdf == e.bdf; });
  });
  after.insert(after.end(), added.begin(), added.end());
  std::error_code ec;
  if (!render_softdeps(after).empty() || fs::exists(softdep_path(), ec)) {
    files.push_back(softdep_path());
  }
  return files;
}

std::vector<fs::path> PersistStore::files_for_remove(const std::vector<pci::Bdf>& removed) const {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& bdf : removed) {
    if (fs::exists(rule_path(bdf), ec)) files.push_back(rule_path(bdf));
  }
  if (fs::exists(softdep_path(), ec)) files.push_back(softdep_path());
  return files;
}

std::vector<fs::path> PersistStore::add(const std::vector<PersistEntry>& added) {
  std::vector<fs::path> written;
  for (const auto& entry : added) {
    const fs::path path = rule_path(entry.bdf);
    create_parent(path);
    write_file_durable(path, render_udev_rule(entry));
    written.push_back(path);
  }
  for (auto& path : write_softdeps()) written.push_back(std::move(path));
  return written;
}

std::vector<fs::path> PersistStore::remove(const std::vector<pci::Bdf>& removed) {
  std::vector<fs::path> changed;
  for (const auto& bdf : removed) {
    std::error_code ec;
    if (fs::remove(rule_path(bdf), ec)) changed.push_back(rule_path(bdf));
    if (ec) throw Error::from_errno(ec.value(), "remove").with("path", rule_path(bdf).string());
  }
  for (auto& path : write_softdeps()) changed.push_back(std::move(path));
  return changed;
}

}  // namespace vfiokit::bind
