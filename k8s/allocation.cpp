#include "vfiokit/k8s/allocation.h"

#include <algorithm>
#include <map>
#include <set>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::k8s {
namespace {

constexpr std::string_view kPreferOperation = "choose a preferred allocation";
constexpr std::string_view kAllocateOperation = "allocate devices";

Error request_error(std::string_view operation, const Resource& resource, std::string message) {
  return Error(std::string(operation), std::move(message))
      .with("resource", resource.name)
      .kind(ErrorKind::usage);
}

const GroupDevice* find_device(const Resource& resource, std::string_view id) {
  const auto it = std::find_if(resource.devices.begin(), resource.devices.end(),
                               [&](const GroupDevice& device) { return device.id == id; });
  return it == resource.devices.end() ? nullptr : &*it;
}

// Each ID once and the resource's own; throws naming the first that is not.
std::vector<const GroupDevice*> lookup(std::string_view operation, const Resource& resource,
                                       std::span<const std::string> ids, std::string_view what) {
  std::vector<const GroupDevice*> devices;
  std::set<std::string_view> seen;
  for (const auto& id : ids) {
    const GroupDevice* device = find_device(resource, id);
    if (!device) {
      throw request_error(operation, resource,
                          std::string(what) + " " + id + " is not a device of " + resource.name)
          .with("id", id)
          .hint("kubelet and the plugin disagree about " + resource.name +
                "'s devices: restart the plugin so that it registers afresh");
    }
    if (!seen.insert(id).second) {
      throw request_error(operation, resource, std::string(what) + " " + id + " is named twice")
          .with("id", id)
          .hint("name each device once");
    }
    devices.push_back(device);
  }
  return devices;
}

}  // namespace

std::vector<std::string> preferred_allocation(const Resource& resource,
                                              std::span<const std::string> available,
                                              std::span<const std::string> must_include,
                                              std::size_t size) {
  // kubelet names each ID once; a repeat counts once here rather than failing the pod.
  const std::set<std::string_view> available_ids(available.begin(), available.end());
  std::vector<std::string> chosen;
  std::set<std::string_view> required;
  for (const auto& id : must_include) {
    if (required.insert(id).second) chosen.push_back(id);
  }
  if (required.size() > size || size > available_ids.size()) {
    throw request_error(kPreferOperation, resource,
                        "cannot choose " + std::to_string(size) + " of " +
                            std::to_string(available_ids.size()) + " available devices with " +
                            std::to_string(required.size()) + " required")
        .with("size", std::to_string(size))
        .hint("ask for at most as many devices as are available, and at least the required ones");
  }

  // Devices not yet chosen, by NUMA node (-1, "unknown", counts as one node of its own), each
  // node's in id order. Only the resource's own devices are preferred: an available ID it does
  // not know is left for kubelet to decide about (it fills what a preference leaves open), and
  // a required one it does not know spans no node.
  std::map<int, std::vector<std::string_view>> free_by_node;
  std::set<int> spanned;
  for (const GroupDevice& device : resource.devices) {
    if (required.count(device.id)) {
      spanned.insert(device.numa_node);
    } else if (available_ids.count(device.id)) {
      free_by_node[device.numa_node].push_back(device.id);
    }
  }
  for (auto& [node, ids] : free_by_node) std::sort(ids.begin(), ids.end());

  // Taking the nodes with most free devices first spans the fewest nodes; nodes the required
  // devices already span cost nothing, so they come first. Ties go to a known node, then the
  // lowest number.
  std::vector<int> order;
  for (const auto& [node, ids] : free_by_node) order.push_back(node);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const auto key = [&](int node) {
      return std::make_tuple(!spanned.count(node), -static_cast<long>(free_by_node[node].size()),
                             node < 0, node);
    };
    return key(a) < key(b);
  });

  for (int node : order) {
    for (std::string_view id : free_by_node[node]) {
      if (chosen.size() == size) break;
      chosen.emplace_back(id);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

ContainerAllocation allocate(const HostPaths& paths, const Resource& resource,
                             std::span<const std::string> ids) {
  if (ids.empty()) {
    throw request_error(kAllocateOperation, resource, "no device IDs to allocate")
        .hint("kubelet asks for one device ID or more");
  }
  const auto devices = lookup(kAllocateOperation, resource, ids, "ID");
  for (const GroupDevice* device : devices) {
    if (device->health != Health::healthy) {
      throw request_error(kAllocateOperation, resource,
                          "ID " + device->id + " is unhealthy: " + device->reason)
          .with("id", device->id)
          .hint("kubelet should not allocate an unhealthy device; fix what the reason says");
    }
  }
  // The container sees the nodes at the paths VFIO users expect; the host side follows
  // HostPaths::dev, so that a fixture tree (or a /dev mounted elsewhere) gives real host paths.
  ContainerAllocation allocation;
  allocation.devices.push_back({"/dev/vfio/vfio", (paths.dev / "vfio/vfio").string(), "rw"});
  // KubeVirt takes one address of PCI_RESOURCE_<name> per hostDevice: only the functions the
  // resource selected belong there, while the pod gets the whole group's node (VFIO opens a
  // group, not a function) and the group's members in a variable of their own.
  std::vector<std::string> selected;
  std::vector<std::string> members;
  for (const GroupDevice* device : devices) {
    allocation.devices.push_back({"/dev/vfio/" + std::to_string(device->group),
                                  iommu::vfio_group_node(paths, device->group).string(), "rw"});
    for (const auto& bdf : device->selected) selected.push_back(bdf.to_string());
    for (const auto& bdf : device->members) members.push_back(bdf.to_string());
  }
  allocation.envs[pci_resource_variable(resource.name)] = join(selected, ",");
  allocation.envs[group_members_variable(resource.name)] = join(members, ",");
  return allocation;
}

}  // namespace vfiokit::k8s
