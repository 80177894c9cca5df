#include "vfiokit/bind/readiness.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <optional>

#include "vfiokit/base/text.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::bind {
namespace {

CheckResult check_iommu(const HostView& view, const pci::PciDevice& dev) {
  if (dev.iommu_group) {
    return {"iommu", CheckStatus::pass, "in IOMMU group " + std::to_string(*dev.iommu_group), {}};
  }
  if (groupless_until_probed(view, dev)) {
    return {"iommu", CheckStatus::warn,
            "no IOMMU group yet: an IOMMU is active, and a device-tree host (arm64) gives a "
            "device its group when a driver probes it",
            "`vfiokit bind " + dev.bdf.to_string() +
                "` lets vfio-pci probe it, then checks the group it joins"};
  }
  return {"iommu", CheckStatus::fail, "no IOMMU group: the IOMMU is off or does not cover it",
          "enable the IOMMU (see `vfiokit doctor`)"};
}

CheckResult check_group(const HostView& view, const pci::PciDevice& dev) {
  if (groupless_until_probed(view, dev)) {
    return {"group-viable",
            CheckStatus::warn,
            "unknown until a driver probes it (no IOMMU group yet)",
            {}};
  }
  if (!dev.iommu_group) return {"group-viable", CheckStatus::fail, "no IOMMU group", {}};
  const GroupFacts& group = view.groups.at(*dev.iommu_group);
  std::vector<pci::PciDevice> members;
  std::vector<std::string> to_move;
  std::vector<std::string> stuck;
  for (const auto& bdf : group.members) {
    const auto& member = view.devices.at(bdf).device;
    members.push_back(member);
    if (!member.driver || iommu::driver_keeps_group_viable(*member.driver, member.is_bridge())) {
      continue;
    }
    (member.is_bridge() ? stuck : to_move).push_back(bdf.to_string() + " (" + *member.driver + ")");
  }
  const std::string size =
      std::to_string(group.members.size()) + (group.members.size() == 1 ? " device" : " devices");
  if (!stuck.empty()) {
    return {"group-viable", CheckStatus::fail,
            "group " + std::to_string(group.number) +
                " has bridges on drivers VFIO does not "
                "accept: " +
                join(stuck, ", "),
            "unbind those bridges from their drivers, or use a slot in another IOMMU group"};
  }
  if (!to_move.empty()) {
    return {"group-viable", CheckStatus::warn,
            "group " + std::to_string(group.number) + " (" + size +
                ") is not viable yet: " + join(to_move, ", ") + " on host drivers",
            "`vfiokit bind " + dev.bdf.to_string() + "` moves the whole group to vfio-pci"};
  }
  return {"group-viable",
          CheckStatus::pass,
          "group " + std::to_string(group.number) + " (" + size + ") is viable",
          {}};
}

CheckResult check_header(const pci::PciDevice& dev) {
  if (!dev.config.header) {
    return {"header-type", CheckStatus::warn, "config space unreadable: " + dev.config.error,
            "run as root to read the whole config space"};
  }
  if (dev.config.header->header_type == 0) {
    return {"header-type", CheckStatus::pass, "type 0 (endpoint)", {}};
  }
  return {"header-type", CheckStatus::fail,
          "type " + std::to_string(dev.config.header->header_type) +
              " (bridge): VFIO passes "
              "through endpoints only",
          "pass through the devices behind the bridge instead"};
}

CheckResult check_sriov(const pci::PciDevice& dev) {
  if (dev.physfn) {
    return {"sriov", CheckStatus::pass, "virtual function of " + dev.physfn->to_string(), {}};
  }
  if (!dev.sriov_total_vfs)
    return {"sriov", CheckStatus::pass, "not an SR-IOV physical function", {}};
  const unsigned enabled = dev.sriov_num_vfs.value_or(0);
  if (enabled == 0) {
    return {"sriov",
            CheckStatus::pass,
            "SR-IOV physical function, no virtual functions enabled (of " +
                std::to_string(*dev.sriov_total_vfs) + ")",
            {}};
  }
  return {"sriov", CheckStatus::fail,
          "SR-IOV physical function with " + std::to_string(enabled) +
              " virtual functions enabled; unbinding its driver destroys them",
          "pass through a virtual function instead, or disable them first: echo 0 > "
          "/sys/bus/pci/devices/" +
              dev.bdf.to_string() + "/sriov_numvfs"};
}

CheckResult check_boot_vga(const pci::PciDevice& dev) {
  if (!dev.boot_vga) return {"boot-vga", CheckStatus::pass, "not the boot VGA device", {}};
  return {"boot-vga", CheckStatus::fail,
          "the boot VGA device: the host console and firmware framebuffer run on it",
          "give the host another GPU for its console (or run headless with video=efifb:off) "
          "and bind with --force-boot-vga"};
}

bool in_group_of(const HostView& view, const pci::PciDevice& dev, const pci::Bdf& other) {
  if (!dev.iommu_group) return false;
  const auto group = view.groups.find(*dev.iommu_group);
  if (group == view.groups.end()) return false;
  const auto& members = group->second.members;
  return std::find(members.begin(), members.end(), other) != members.end();
}

std::string describe_neighbour(const pci::BusNeighbour& n) {
  return n.bdf.to_string() + " (class " + pci::class_hex(n.class_code) + ", " +
         (n.iommu_group ? "IOMMU group " + std::to_string(*n.iommu_group) : "no IOMMU group") +
         ", " + n.driver.value_or("no driver") + ")";
}

constexpr std::string_view kNoResetConsequence =
    "the guest sees the state the last user left; GPUs often fail to initialise on the second "
    "boot";

// vfio-pci resets a device when a user opens it and when the user lets go. A reset of the
// function alone always works; a bus (or slot) reset also resets the neighbours below the same
// bridge, and vfio-pci uses it only while every one of them is on vfio-pci too: those in the
// device's IOMMU group move with it, the others stay on the host and block it.
CheckResult check_reset(const HostView& view, const DeviceFacts& facts) {
  const pci::PciDevice& dev = facts.device;
  const pci::ResetSupport reset =
      pci::assess_reset(dev, facts.reset_topology.value_or(pci::ResetTopology{}));
  const auto methods = reset.methods();
  const std::string listed = "reset methods: " + join(methods, ", ");
  if (reset.function_level()) return {"reset", CheckStatus::pass, listed, {}};
  const bool bus = std::find(methods.begin(), methods.end(), "bus") != methods.end();
  if (bus) {
    std::vector<std::string> moving;
    std::vector<std::string> staying;
    std::vector<std::string> staying_bdfs;
    for (const auto& neighbour : reset.also_reset) {
      if (in_group_of(view, dev, neighbour.bdf)) {
        moving.push_back(neighbour.bdf.to_string());
      } else {
        staying.push_back(describe_neighbour(neighbour));
        staying_bdfs.push_back(neighbour.bdf.to_string());
      }
    }
    if (staying.empty()) {
      return {"reset",
              CheckStatus::pass,
              listed + (moving.empty() ? std::string()
                                       : " (a bus reset also resets " + join(moving, ", ") +
                                             ", which moves with it)"),
              {}};
    }
    return {"reset", CheckStatus::warn,
            "only a bus reset, which also resets " + join(staying, ", ") +
                ": vfio-pci cannot use it while those stay on the host, so " +
                std::string(kNoResetConsequence),
            "pass those through too (`vfiokit bind " + join(staying_bdfs, " ") +
                "`), or move the card to a slot of its own"};
  }
  if (!reset.capabilities_known) {
    return {"reset", CheckStatus::warn,
            "unknown: the capabilities that say how it resets are readable by root only",
            "run vfiokit as root"};
  }
  return {"reset", CheckStatus::warn, "no reset method: " + std::string(kNoResetConsequence),
          "expect QEMU's 'no available reset mechanism' warning; a guest driver must "
          "reinitialise the device itself"};
}

CheckResult check_interrupt_remapping(const iommu::HostIommu& host) {
  if (host.remapped_interrupts_seen) {
    return {"interrupt-remapping", CheckStatus::pass, "active on the host", {}};
  }
  if (host.its_msi_seen) {  // arm64: the GICv3 ITS isolates MSIs (see `vfiokit doctor`)
    return {"interrupt-remapping", CheckStatus::pass, "MSIs isolated by the GICv3 ITS", {}};
  }
  if (host.allow_unsafe_interrupts.value_or(false)) {
    return {"interrupt-remapping", CheckStatus::warn,
            "not active; allowed by vfio_iommu_type1 allow_unsafe_interrupts",
            "enable interrupt remapping (see `vfiokit doctor`)"};
  }
  return {"interrupt-remapping", CheckStatus::fail,
          "not active: VFIO will refuse to enable the device's MSI/MSI-X",
          "enable interrupt remapping (see `vfiokit doctor`)"};
}

CheckResult check_host_use(const DeviceFacts& facts) {
  std::vector<std::string> uses;
  std::vector<std::string> flags;
  for (const auto& net : facts.usage.net) {
    if (net.in_use()) uses.push_back(net.describe());
  }
  if (!uses.empty()) flags.emplace_back("--force-net");
  const std::size_t net_uses = uses.size();
  for (const auto& block : facts.usage.block) {
    if (block.in_use()) uses.push_back(block.describe());
  }
  if (uses.size() > net_uses) flags.emplace_back("--force-block");
  if (uses.empty()) return {"host-use", CheckStatus::pass, "nothing on the host is using it", {}};
  return {"host-use", CheckStatus::warn, join(uses, "; "),
          "stop using it on the host first; bind refuses otherwise (or " + join(flags, ", ") + ")"};
}

// The option ROM guest firmware runs to bring the display up: present, and if it could be read,
// valid and made for this very device (a ROM flashed for another card, or a damaged one, is why
// people pass romfile=).
CheckResult check_rom(const DeviceFacts& facts, const pci::PciDevice& dev) {
  const std::string dump = "`vfiokit rom " + dev.bdf.to_string() + " --output FILE`";
  if (dev.rom_size == 0) {
    return {"rom", CheckStatus::warn, "no option ROM exposed by the host",
            "guest firmware that needs the GPU's ROM for its display needs romfile=FILE (a dump "
            "of this card's ROM)"};
  }
  const std::string present = "option ROM BAR of " + human_size(dev.rom_size);
  if (!facts.rom) return {"rom", CheckStatus::pass, present + "; QEMU exposes it", {}};
  const RomFacts& rom = *facts.rom;
  if (!rom.not_read.empty()) {
    return {"rom", CheckStatus::pass, present + "; contents " + rom.not_read, {}};
  }
  if (rom.unreadable) {
    const bool not_root =
        rom.unreadable->errno_value() == EACCES || rom.unreadable->errno_value() == EPERM;
    return {"rom", CheckStatus::warn,
            present + "; its contents could not be read: " +
                (not_root ? std::string("reading a ROM needs root")
                          : std::string(rom.unreadable->what())),
            not_root ? "run `vfiokit check` as root to validate the ROM"
                     : "if the guest's firmware cannot use it, pass romfile=FILE with a good dump "
                       "of this card's ROM"};
  }
  const pci::RomLayout& layout = *rom.layout;
  if (!layout.valid()) {
    std::string first =
        layout.problems.empty() ? std::string("no image") : layout.problems.front().message;
    if (layout.problems.size() > 1) {
      first += " (and " + std::to_string(layout.problems.size() - 1) + " more)";
    }
    return {"rom", CheckStatus::warn, present + ", but it is not usable as it is: " + first,
            "give the guest a good ROM for this card with romfile=FILE (" + dump +
                " shows every problem)"};
  }
  std::vector<std::string> kinds;
  for (const pci::RomImage& image : layout.images) {
    std::string kind(pci::rom_code_type_name(image.code_type));
    if (kind.empty()) kind = "code type " + std::to_string(image.code_type);
    if (image.efi && !pci::efi_machine_name(image.efi->machine_type).empty()) {
      kind += " " + std::string(pci::efi_machine_name(image.efi->machine_type));
    }
    kinds.push_back(kind);
  }
  return {"rom",
          CheckStatus::pass,
          present + "; valid for this device: " + std::to_string(layout.images.size()) +
              (layout.images.size() == 1 ? " image (" : " images (") + join(kinds, ", ") + ")",
          {}};
}

// The other functions of the GPU's slot (HDMI/DP audio, USB-C, ...). bind moves the whole IOMMU
// group, so siblings in the group go with the GPU and need nothing; a sibling in another group,
// or one bind would refuse, cannot, and the guest gets a slot with a function missing.
std::optional<CheckResult> check_gpu_functions(const HostView& view, const pci::PciDevice& dev) {
  std::map<pci::Bdf, pci::BusNeighbour> siblings;
  auto same_slot = [&](const pci::Bdf& bdf) {
    return bdf != dev.bdf && bdf.domain == dev.bdf.domain && bdf.bus == dev.bdf.bus &&
           bdf.device == dev.bdf.device;
  };
  for (const auto& [bdf, facts] : view.devices) {
    if (same_slot(bdf)) {
      siblings[bdf] = {bdf, facts.device.class_code, facts.device.iommu_group, facts.device.driver};
    }
  }
  const auto& topology = view.devices.at(dev.bdf).reset_topology;
  for (const auto& neighbour : topology ? topology->neighbours : std::vector<pci::BusNeighbour>{}) {
    if (same_slot(neighbour.bdf)) siblings.emplace(neighbour.bdf, neighbour);
  }
  if (siblings.empty()) {
    if (!dev.multifunction()) return std::nullopt;
    return CheckResult{"gpu-functions",
                       CheckStatus::pass,
                       "multifunction device; no other function in its slot",
                       {}};
  }
  const Plan plan = plan_bind(view, std::span<const pci::Bdf>(&dev.bdf, 1), ForceFlags{});
  std::vector<std::string> moving;
  std::vector<std::string> stuck;
  std::vector<std::string> other_groups;
  for (const auto& entry : siblings) {
    // Not a structured binding: clang before 16 cannot capture one in the lambda below.
    const pci::Bdf& bdf = entry.first;
    const pci::BusNeighbour& sibling = entry.second;
    const std::string described = bdf.to_string() + " (class " +
                                  pci::class_hex(sibling.class_code) + ", " +
                                  sibling.driver.value_or("no driver") + ")";
    if (!in_group_of(view, dev, bdf)) {
      stuck.push_back(described + " is in " +
                      (sibling.iommu_group ? "IOMMU group " + std::to_string(*sibling.iommu_group)
                                           : std::string("no IOMMU group")) +
                      ", so it does not move with it");
      other_groups.push_back(bdf.to_string());
      continue;
    }
    const auto refusal = std::find_if(plan.refusals.begin(), plan.refusals.end(),
                                      [&](const Refusal& r) { return r.bdf == bdf; });
    if (refusal != plan.refusals.end()) {
      stuck.push_back(described + " cannot move: " + refusal->reason);
    } else {
      moving.push_back(described);
    }
  }
  if (stuck.empty()) {
    return CheckResult{
        "gpu-functions",
        CheckStatus::pass,
        "the other functions of its slot move with it (same IOMMU group): " + join(moving, ", "),
        {}};
  }
  std::string fix = "a guest needs the slot's functions together";
  if (!other_groups.empty()) {
    fix += ": pass " + join(other_groups, ", ") + " through as well (`vfiokit bind " +
           dev.bdf.to_string() + " " + join(other_groups, " ") + "`)";
  }
  return CheckResult{"gpu-functions", CheckStatus::warn,
                     "the slot's functions cannot move together: " + join(stuck, "; "), fix};
}

CheckResult check_display(const DeviceFacts& facts) {
  const DisplayUsage& display = facts.display;
  if (display.in_use()) {
    return {"display", CheckStatus::warn, display.describe(),
            "free it first; bind refuses otherwise (or --force-display)"};
  }
  return {
      "display",
      CheckStatus::pass,
      "no process, console or firmware framebuffer uses its display" +
          (display.gpu_driver ? "; its driver " + *display.gpu_driver + " is idle" : std::string()),
      {}};
}

// GPU passthrough facts: functions in the same slot (HDMI/DP audio), huge BARs, the ROM.
void add_display_checks(std::vector<CheckResult>& checks, const HostView& view,
                        const DeviceFacts& device_facts) {
  const pci::PciDevice& dev = device_facts.device;
  if (auto item = check_gpu_functions(view, dev)) checks.push_back(std::move(*item));
  std::vector<std::string> large;
  for (const auto& bar : dev.bars) {
    if (bar.size > (std::uint64_t{1} << 32)) {
      large.push_back("BAR" + std::to_string(bar.index) + " " + human_size(bar.size));
    }
  }
  if (!large.empty()) {
    checks.push_back({"large-bars", CheckStatus::warn,
                      join(large, ", ") + " above 4 GiB: the guest needs a 64-bit MMIO window "
                                          "at least that large",
                      "use UEFI (OVMF) in the guest and size the window, e.g. QEMU -global "
                      "q35-pcihost.pci-hole64-size=64G"});
  }
  checks.push_back(check_rom(device_facts, dev));
}

// The item of `check` that covers each of bind's refusals.
std::string_view item_for(Check refusal) noexcept {
  switch (refusal) {
    case Check::net:
    case Check::block:
      return "host-use";
    case Check::bridge:
      return "header-type";
    default:
      return to_string(refusal);  // "boot-vga", "sriov", "iommu", "group-viable", ...
  }
}

// Whatever `vfiokit bind BDF` would refuse is a FAIL here, under the item that covers it (a new
// one named after the refusal when no item does), so `check` never passes what `bind` refuses.
// The plan is bind's own (plan_bind without --force), not a second copy of its rules.
void fail_what_bind_refuses(std::vector<CheckResult>& checks, const HostView& view,
                            const pci::Bdf& bdf) {
  const Plan plan = plan_bind(view, std::span<const pci::Bdf>(&bdf, 1), ForceFlags{});
  for (const Refusal& refusal : plan.refusals) {
    const std::string_view id = item_for(refusal.check);
    const std::string summary =
        (refusal.bdf == bdf ? std::string() : refusal.bdf.to_string() + ": ") + refusal.reason;
    const std::string fix =
        refusal.force_flag().empty()
            ? std::string("nothing overrides this; bind refuses it")
            : "bind refuses this; fix it, or override with " + std::string(refusal.force_flag());
    auto item = std::find_if(checks.begin(), checks.end(),
                             [&](const CheckResult& c) { return c.id == id; });
    if (item == checks.end()) {
      checks.push_back({std::string(id), CheckStatus::fail, summary, fix});
    } else if (item->status == CheckStatus::pass) {
      *item = {std::string(id), CheckStatus::fail, summary, fix};
    } else {
      item->status = CheckStatus::fail;  // a warning about the same thing: its words stay
    }
  }
}

}  // namespace

std::vector<CheckResult> assess_readiness(const HostView& view, const pci::Bdf& bdf,
                                          const iommu::HostIommu& host) {
  const DeviceFacts& facts = view.devices.at(bdf);
  const pci::PciDevice& dev = facts.device;
  std::vector<CheckResult> checks = {check_iommu(view, dev),
                                     check_group(view, dev),
                                     check_header(dev),
                                     check_sriov(dev),
                                     check_boot_vga(dev),
                                     check_reset(view, facts),
                                     check_interrupt_remapping(host),
                                     check_host_use(facts)};
  if (dev.config.header_only) {
    checks.push_back({"config-space", CheckStatus::warn,
                      "only the 64-byte header of config space is readable without root: "
                      "capabilities, MSI/MSI-X and reset support are unknown",
                      "run vfiokit as root"});
  } else if (!dev.config.error.empty() && dev.config.header) {
    checks.push_back({"config-space", CheckStatus::warn,
                      "config space could not be fully parsed: " + dev.config.error,
                      "the device may be broken or its capability list damaged"});
  }
  if (dev.is_display()) {
    checks.push_back(check_display(facts));
    add_display_checks(checks, view, facts);
  }
  fail_what_bind_refuses(checks, view, bdf);
  return checks;
}

}  // namespace vfiokit::bind
