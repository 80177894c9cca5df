#include "vfiokit/k8s/inventory.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/bind/plan.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::k8s {
namespace {

bool matches_class(const ClassMatch& match, std::uint32_t class_code) noexcept {
  return (class_code & match.mask) == match.value;
}

// A host, ISA or other platform bridge (class 06, but not a PCI-to-PCI or CardBus bridge, which
// stay on pcieport in the plan): the chipset's own functions. plan_bind would move one like an
// endpoint, taking the platform's LPC or SMBus from the host.
bool is_platform_bridge(const pci::PciDevice& device) noexcept {
  return device.base_class() == 0x06 && !device.is_bridge();
}

std::string resource_list(const std::vector<std::string>& names) {
  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) text += i + 1 == names.size() ? " and " : ", ";
    text += names[i];
  }
  return text;
}

struct GroupVerdict {
  std::string problem;  // empty: the group can be advertised
  std::string fix;
};

GroupVerdict judge_group(unsigned group, const std::vector<const pci::PciDevice*>& functions,
                         const std::vector<std::string>& selecting_resources) {
  if (selecting_resources.size() > 1) {
    return {"its IOMMU group " + std::to_string(group) + " is selected by " +
                resource_list(selecting_resources) + ", and a group can go to one user only",
            "select the functions of group " + std::to_string(group) +
                " in one resource only (`vfiokit list` shows the groups)"};
  }
  for (const pci::PciDevice* function : functions) {
    if (is_platform_bridge(*function)) {
      return {"its IOMMU group " + std::to_string(group) + " holds " + function->bdf.to_string() +
                  ", a platform bridge (class " + pci::class_hex(function->class_code) +
                  ") that must stay with the host",
              "select devices in groups of their own: a slot behind an ACS-capable port, or "
              "another slot"};
    }
  }
  const bool any_endpoint =
      std::any_of(functions.begin(), functions.end(),
                  [](const auto* function) { return !function->is_bridge(); });
  if (!any_endpoint) {
    return {"its IOMMU group " + std::to_string(group) + " holds only bridges",
            "select the endpoints behind the bridge instead"};
  }
  return {};
}

}  // namespace

bool selects(const ResourceSelection& resource, const pci::PciDevice& device) noexcept {
  for (const auto& match : resource.devices) {
    if ((!match.vendor || *match.vendor == device.vendor_id) &&
        (!match.device || *match.device == device.device_id)) {
      return true;
    }
  }
  for (const auto& match : resource.classes) {
    if (matches_class(match, device.class_code)) return true;
  }
  return std::find(resource.bdfs.begin(), resource.bdfs.end(), device.bdf) != resource.bdfs.end();
}

std::vector<pci::PciDevice> read_functions(const HostPaths& paths) {
  std::vector<pci::PciDevice> functions;
  for (const auto& bdf : pci::list_pci_devices(paths)) {
    try {
      functions.push_back(pci::read_pci_device(paths, bdf, pci::ConfigDepth::header));
    } catch (const Error&) {
      // Removed since it was listed: as if it had never been there.
    }
  }
  return functions;
}

std::vector<ResourceGroups> select_groups(const PluginConfig& config,
                                          std::span<const pci::PciDevice> devices,
                                          bool iommu_active) {
  std::vector<const pci::PciDevice*> sorted;
  for (const auto& device : devices) sorted.push_back(&device);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->bdf < b->bdf; });

  std::map<unsigned, std::vector<const pci::PciDevice*>> functions_of_group;
  for (const auto* device : sorted) {
    if (device->iommu_group) functions_of_group[*device->iommu_group].push_back(device);
  }
  // Which resources select something in each group: a group shared by two is refused for both.
  std::map<unsigned, std::vector<std::string>> resources_of_group;
  std::vector<std::vector<const pci::PciDevice*>> selected(config.resources.size());
  for (std::size_t r = 0; r < config.resources.size(); ++r) {
    for (const auto* device : sorted) {
      if (!selects(config.resources[r], *device)) continue;
      selected[r].push_back(device);
      if (!device->iommu_group) continue;
      auto& names = resources_of_group[*device->iommu_group];
      if (names.empty() || names.back() != config.resources[r].name) {
        names.push_back(config.resources[r].name);
      }
    }
  }

  std::vector<ResourceGroups> result;
  for (std::size_t r = 0; r < config.resources.size(); ++r) {
    ResourceGroups resource{config.resources[r].name, {}, {}};
    std::map<unsigned, std::vector<pci::Bdf>> picked_in_group;
    for (const auto* device : selected[r]) {
      if (bind::groupless_until_probed(iommu_active, *device)) {
        const std::string bdf = device->bdf.to_string();
        resource.refused.push_back(
            {device->bdf,
             "it has no IOMMU group yet: a device-tree host gives a device its group when a "
             "driver probes it, and the device plugin does not probe devices",
             "give it its group once: `vfiokit bind " + bdf + "`, then `vfiokit unbind " + bdf +
                 "` (it stays driverless and keeps the group until it goes away), then restart "
                 "the plugin"});
        continue;
      }
      if (!device->iommu_group) {
        resource.refused.push_back(
            {device->bdf, "it has no IOMMU group: the IOMMU is off, so VFIO cannot isolate its DMA",
             "turn the IOMMU on: VT-d or AMD-Vi in the firmware, and intel_iommu=on (Intel) or "
             "amd_iommu=on (AMD) on the kernel command line, without iommu=off; `vfiokit doctor` "
             "checks each step"});
        continue;
      }
      if (device->is_bridge()) {
        resource.refused.push_back({device->bdf,
                                    "it is a PCI bridge; VFIO passes through endpoints",
                                    "select the devices behind it instead of the bridge"});
        continue;
      }
      picked_in_group[*device->iommu_group].push_back(device->bdf);
    }
    for (const auto& [group, picked] : picked_in_group) {
      const auto& functions = functions_of_group[group];
      const GroupVerdict verdict = judge_group(group, functions, resources_of_group[group]);
      if (!verdict.problem.empty()) {
        for (const auto& bdf : picked)
          resource.refused.push_back({bdf, verdict.problem, verdict.fix});
        continue;
      }
      SelectedGroup selected_group{group, {}, picked, -1};
      std::set<int> nodes;
      for (const auto* function : functions) {
        if (function->is_bridge()) continue;
        selected_group.members.push_back(function->bdf);
        nodes.insert(function->numa_node);
      }
      if (nodes.size() == 1) selected_group.numa_node = *nodes.begin();
      resource.groups.push_back(std::move(selected_group));
    }
    std::sort(resource.groups.begin(), resource.groups.end(),
              [](const auto& a, const auto& b) { return a.members.front() < b.members.front(); });
    std::sort(resource.refused.begin(), resource.refused.end(),
              [](const auto& a, const auto& b) { return a.bdf < b.bdf; });
    result.push_back(std::move(resource));
  }
  return result;
}

GroupDevice assess_group(const SelectedGroup& group, std::span<const pci::PciDevice> present,
                         bool group_node_exists) {
  GroupDevice device;
  device.id = group.members.empty() ? "group " + std::to_string(group.group)
                                    : group.members.front().to_string();
  device.group = group.group;
  device.members = group.members;
  device.selected = group.selected;
  device.numa_node = group.numa_node;

  std::vector<std::string> reasons;
  std::set<pci::Bdf> members(group.members.begin(), group.members.end());
  for (const auto& bdf : group.members) {
    const auto it =
        std::find_if(present.begin(), present.end(),
                     [&](const pci::PciDevice& function) { return function.bdf == bdf; });
    if (it == present.end()) {
      reasons.push_back(bdf.to_string() + " is gone from the bus");
    } else if (!it->driver) {
      reasons.push_back(bdf.to_string() +
                        " has no driver, not vfio-pci: it was unbound (vfiokit restore or "
                        "driverctl?)");
    } else if (!iommu::is_vfio_driver(*it->driver)) {
      reasons.push_back(bdf.to_string() + " is on " + *it->driver +
                        ", not vfio-pci: another driver took it (vfiokit restore / driverctl?)");
    }
  }
  // The members' own drivers are named above; what else in the group keeps it from being
  // viable (a bridge on a driver VFIO does not accept, a function that joined the group) is not.
  for (const auto& blocker : iommu::group_blockers(present)) {
    if (members.count(blocker.bdf)) continue;
    reasons.push_back(blocker.bdf.to_string() + " in IOMMU group " + std::to_string(group.group) +
                      " is on " + blocker.driver + ", which keeps the group from being viable");
  }
  if (!group_node_exists)
    reasons.push_back("/dev/vfio/" + std::to_string(group.group) + " is missing");
  device.health = reasons.empty() ? Health::healthy : Health::unhealthy;
  device.reason = join(reasons, "; ");
  return device;
}

std::vector<Resource> assess(const HostPaths& paths, std::span<const ResourceGroups> resources) {
  std::vector<Resource> result;
  for (const auto& selection : resources) {
    Resource resource{selection.name, {}};
    for (const auto& group : selection.groups) {
      // The group as the kernel has it now, and the members we know of (which may have left).
      std::set<pci::Bdf> functions(group.members.begin(), group.members.end());
      try {
        const auto now = iommu::read_iommu_group(paths, group.group);
        functions.insert(now.devices.begin(), now.devices.end());
      } catch (const Error&) {
        // The group is gone with its devices: each member is reported gone below.
      }
      std::vector<pci::PciDevice> present;
      for (const auto& bdf : functions) {
        if (!pci::pci_device_exists(paths, bdf)) continue;
        try {
          present.push_back(pci::read_pci_device(paths, bdf, pci::ConfigDepth::header));
        } catch (const Error&) {
          // Removed between the two reads: it is gone.
        }
      }
      resource.devices.push_back(assess_group(
          group, present, std::filesystem::exists(iommu::vfio_group_node(paths, group.group))));
    }
    std::sort(resource.devices.begin(), resource.devices.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    result.push_back(std::move(resource));
  }
  return result;
}

}  // namespace vfiokit::k8s
