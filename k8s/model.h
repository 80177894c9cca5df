// The device plugin's values: what kubelet is told about a resource's devices and what a pod
// gets when one is allocated. kubelet's unit is a device ID; vfiokit's is an IOMMU group, since a
// group can only go to one user. Plain values, shared by the pure core (config, inventory,
// allocation) and the gRPC shell (plugin_server).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "vfiokit/pci/bdf.h"

namespace vfiokit::k8s {

enum class Health { healthy, unhealthy };

// One kubelet device: one IOMMU group and the endpoints in it that a pod receives.
struct GroupDevice {
  std::string id;  // the group's first endpoint, "0000:01:00.0": stable across reboots, unlike N
  unsigned group = 0;
  std::vector<pci::Bdf> members;   // the endpoints (bridges excluded), sorted
  std::vector<pci::Bdf> selected;  // the members the resource's selectors matched, sorted
  int numa_node = -1;              // -1: the platform does not say
  Health health = Health::unhealthy;
  std::string reason;  // why it is unhealthy, naming the function and the fix; empty when healthy

  bool operator==(const GroupDevice&) const = default;
};

// One extended resource ("vfiokit.io/nvme") and its devices, sorted by id.
struct Resource {
  std::string name;
  std::vector<GroupDevice> devices;

  bool operator==(const Resource&) const = default;
};

// kubelet's DeviceSpec: a device node to create in the container.
struct DeviceNode {
  std::string container_path;
  std::string host_path;
  std::string permissions;  // "rw", "rwm": cgroup device permissions

  bool operator==(const DeviceNode&) const = default;
};

// What one container gets for the IDs kubelet allocated to it.
struct ContainerAllocation {
  std::vector<DeviceNode> devices;
  std::map<std::string, std::string> envs;

  bool operator==(const ContainerAllocation&) const = default;
};

std::string_view to_string(Health health) noexcept;  // "Healthy", "Unhealthy" (kubelet's words)

}  // namespace vfiokit::k8s
