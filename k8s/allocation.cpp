#include "vfiokit/k8s/allocation.h"

#include <algorithm>
#include <map>
#include <set>

#include "vfiokit/base/error.h"
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
  const auto offered = lookup(kPreferOperation, resource, available, "available ID");
  lookup(kPreferOperation, resource, must_include, "required ID");
  const std::set<std::string_view> available_ids(available.begin(), available.end());
  for (const auto& id : must_include) {
    if (!available_ids.count(id)) {
      throw request_error(kPreferOperation, resource,
                          "required ID " + id + " is not among the available ones")
          .with("id", id)
          .hint("kubelet's must-include IDs are a subset of the available ones");
    }
  }
  if (must_include.size() > size || size > available.size()) {
    throw request_error(kPreferOperation, resource,
                        "cannot choose " + std::to_string(size) + " of " +
                            std::to_string(available.size()) + " available devices with " +
                            std::to_string(must_include.size()) + " required")
        .with("size", std::to_string(size))
        .hint("ask for at most as many devices as are available, and at least the required ones");
  }

  // Devices not yet chosen, by NUMA node (-1, "unknown", counts as one node of its own), each
  // node's in id order.
  const std::set<std::string_view> required(must_include.begin(), must_include.end());
  std::map<int, std::vector<std::string_view>> free_by_node;
  std::set<int> spanned;
  for (const GroupDevice* device : offered) {
    if (required.count(device->id)) {
      spanned.insert(device->numa_node);
    } else {
      free_by_node[device->numa_node].push_back(device->id);
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

  std::vector<std::string> chosen(must_include.begin(), must_include.end());
  for (int node : order) {
    for (std::string_view id : free_by_node[node]) {
      if (chosen.size() == size) break;
      chosen.emplace_back(id);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

std::string pci_resource_variable(std::string_view resource_name) {
  std::string variable = "PCI_RESOURCE_";
  for (char c : resource_name) {
    if (c >= 'a' && c <= 'z') {
      variable += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      variable += c;
    } else {
      variable += '_';
    }
  }
  return variable;
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
  std::vector<std::string> bdfs;
  for (const GroupDevice* device : devices) {
    allocation.devices.push_back({"/dev/vfio/" + std::to_string(device->group),
                                  iommu::vfio_group_node(paths, device->group).string(), "rw"});
    for (const auto& member : device->members) bdfs.push_back(member.to_string());
  }
  std::string joined;
  for (const auto& bdf : bdfs) joined += (joined.empty() ? "" : ",") + bdf;
  allocation.envs[pci_resource_variable(resource.name)] = joined;
  return allocation;
}

}  // namespace vfiokit::k8s
