// kubelet's two allocation questions, answered from values: which devices to prefer
// (GetPreferredAllocation) and what a container gets for the ones it was given (Allocate).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/k8s/model.h"

namespace vfiokit::k8s {

// `size` IDs out of `available`, every one of `must_include` among them, the rest chosen so that
// as few NUMA nodes as possible are spanned (the node with most free devices first), then by id.
// Throws Error (kind usage) when the request cannot be met: an ID that is not available or not
// the resource's, must_include larger than size, size larger than what is available.
std::vector<std::string> preferred_allocation(const Resource& resource,
                                              std::span<const std::string> available,
                                              std::span<const std::string> must_include,
                                              std::size_t size);

// PCI_RESOURCE_VFIOKIT_IO_NVME for "vfiokit.io/nvme": KubeVirt's name for the variable that lists
// a resource's PCI addresses (upper case, every character outside [A-Z0-9] becomes '_').
std::string pci_resource_variable(std::string_view resource_name);

// /dev/vfio/vfio once and /dev/vfio/N per group ("rw"), and pci_resource_variable(name) =
// every member BDF of the allocated devices, comma-separated, in the order of `ids`. Throws
// Error (kind usage) naming the ID for one that is not the resource's or is unhealthy, a
// repeated ID, or an empty request.
ContainerAllocation allocate(const HostPaths& paths, const Resource& resource,
                             std::span<const std::string> ids);

}  // namespace vfiokit::k8s
