#include "vfiokit/bind/readiness.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "vfiokit/base/text.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::bind {
namespace {

CheckResult check_iommu(const pci::PciDevice& dev) {
  if (dev.iommu_group) {
    return {"iommu", CheckStatus::pass, "in IOMMU group " + std::to_string(*dev.iommu_group), {}};
  }
  return {"iommu", CheckStatus::fail, "no IOMMU group: the IOMMU is off or does not cover it",
          "enable the IOMMU (see `vfiokit doctor`)"};
}

CheckResult check_group(const HostView& view, const pci::PciDevice& dev) {
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

CheckResult check_reset(const pci::PciDevice& dev) {
  std::vector<std::string> methods = dev.reset_methods;
  if (methods.empty()) {
    // Kernels before 5.15 have no reset_method file: infer what the config space offers.
    if (dev.config.pcie && dev.config.pcie->function_level_reset) methods.emplace_back("flr");
    if (dev.config.power_management && !dev.config.power_management->no_soft_reset) {
      methods.emplace_back("pm");
    }
  }
  if (!methods.empty()) {
    return {"reset", CheckStatus::pass, "reset methods: " + join(methods, ", "), {}};
  }
  if (dev.config.header_only) {
    return {"reset", CheckStatus::warn,
            "unknown: the capabilities that say how it resets are readable by root only",
            "run vfiokit as root"};
  }
  return {"reset", CheckStatus::warn,
          "no reset method: device state carries over from one user to the next",
          "expect QEMU's 'no available reset mechanism' warning; a guest driver must "
          "reinitialise the device itself"};
}

CheckResult check_interrupt_remapping(const iommu::HostIommu& host) {
  if (host.remapped_interrupts_seen) {
    return {"interrupt-remapping", CheckStatus::pass, "active on the host", {}};
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

// GPU passthrough facts: functions in the same slot (HDMI/DP audio), huge BARs, the ROM.
void add_display_checks(std::vector<CheckResult>& checks, const HostView& view,
                        const DeviceFacts& device_facts) {
  const pci::PciDevice& dev = device_facts.device;
  std::vector<std::string> siblings;
  for (const auto& [bdf, facts] : view.devices) {
    if (bdf == dev.bdf || bdf.domain != dev.bdf.domain || bdf.bus != dev.bdf.bus ||
        bdf.device != dev.bdf.device) {
      continue;
    }
    siblings.push_back(bdf.to_string() + " (class " + pci::class_hex(facts.device.class_code) +
                       ", " + facts.device.driver.value_or("no driver") + ")");
  }
  if (!siblings.empty()) {
    checks.push_back({"gpu-functions", CheckStatus::warn,
                      "other functions in the same slot and IOMMU group: " + join(siblings, ", "),
                      "pass them through together on one guest slot (QEMU: "
                      "multifunction=on on function 0, addr=SLOT.N for the others)"});
  } else if (dev.multifunction()) {
    checks.push_back({"gpu-functions",
                      CheckStatus::pass,
                      "multifunction device; no sibling functions share its group",
                      {}});
  }
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
  std::vector<CheckResult> checks = {check_iommu(dev),
                                     check_group(view, dev),
                                     check_header(dev),
                                     check_sriov(dev),
                                     check_boot_vga(dev),
                                     check_reset(dev),
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
  if (dev.is_display()) add_display_checks(checks, view, facts);
  fail_what_bind_refuses(checks, view, bdf);
  return checks;
}

}  // namespace vfiokit::bind
