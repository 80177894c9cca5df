// Which IOMMU groups each resource of the config selects, and how healthy each one is now.
//
// kubelet's unit is a device ID, vfiokit's an IOMMU group: a function that matches a resource
// brings in its whole group, and the group is one device. select_groups() and assess_group()
// decide from values; assess() reads sysfs for them.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/k8s/config.h"
#include "vfiokit/k8s/model.h"
#include "vfiokit/pci/bdf.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::k8s {

struct SelectedGroup {
  unsigned group = 0;
  std::vector<pci::Bdf> members;   // the group's endpoints (bridges excluded), sorted
  std::vector<pci::Bdf> selected;  // the members the resource's selectors matched, sorted: what
                                   // KubeVirt gets as the device's address (PCI_RESOURCE_*)
  int numa_node = -1;              // the members' node when they agree, else -1

  bool operator==(const SelectedGroup&) const = default;
};

// A function a resource selected but cannot advertise, and what to do about it.
struct Refusal {
  pci::Bdf bdf;
  std::string problem;
  std::string fix;

  bool operator==(const Refusal&) const = default;
};

struct ResourceGroups {
  std::string name;
  std::vector<SelectedGroup> groups;  // sorted by first member
  std::vector<Refusal> refused;       // sorted by BDF

  bool operator==(const ResourceGroups&) const = default;
};

// One entry per resource of `config`, in its order. `devices` is every function on the host.
// A group is refused (one Refusal per function the resource selected in it) when a selected
// function has no IOMMU group, when two resources select functions of the same group (each is
// named), and when the group holds a host, ISA or other platform bridge that must never leave
// its host driver. The binder's plan (bind/plan.h) makes the other safety checks.
// `iommu_active` (an IOMMU unit is registered) tells a device a device-tree host has not given a
// group yet, because no driver has probed it, from one the IOMMU does not cover: the refusal
// says which, and its fix.
std::vector<ResourceGroups> select_groups(const PluginConfig& config,
                                          std::span<const pci::PciDevice> devices,
                                          bool iommu_active = false);

// Every PCI function on the host, for select_groups(): read at ConfigDepth::header, which is all
// selection needs; a function removed while they are read is left out.
std::vector<pci::PciDevice> read_functions(const HostPaths& paths);

// True when `device` matches any entry of the resource's lists.
bool selects(const ResourceSelection& resource, const pci::PciDevice& device) noexcept;

// One group as kubelet sees it now. `present` is every function of the group on the bus now,
// bridges included (a member missing from it is gone); `group_node_exists` whether /dev/vfio/N
// is there. Healthy when every member is present and on a VFIO driver, the group is viable and
// its node exists; otherwise the reason names each function and what is wrong.
GroupDevice assess_group(const SelectedGroup& group, std::span<const pci::PciDevice> present,
                         bool group_node_exists);

// assess_group() for every selected group, reading sysfs (a function that is gone is not an
// error: it makes its group unhealthy). One Resource per entry, devices sorted by id.
std::vector<Resource> assess(const HostPaths& paths, std::span<const ResourceGroups> resources);

}  // namespace vfiokit::k8s
