// kubelet's two allocation questions, answered from values: which devices to prefer
// (GetPreferredAllocation) and what a container gets for the ones it was given (Allocate).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/k8s/model.h"
#include "vfiokit/k8s/names.h"

namespace vfiokit::k8s {

// `size` IDs out of `available`, every one of `must_include` among them, the rest chosen so that
// as few NUMA nodes as possible are spanned (the node with most free devices first), then by id.
// The answer is only a preference, and kubelet fails the pod's admission on an error: an
// available ID that is not the resource's is never preferred but not refused, and every
// must_include ID is in the answer as given, known or not. Throws Error (kind usage) only when
// the size cannot be met at all: must_include larger than size, or size larger than `available`.
std::vector<std::string> preferred_allocation(const Resource& resource,
                                              std::span<const std::string> available,
                                              std::span<const std::string> must_include,
                                              std::size_t size);

// /dev/vfio/vfio once and /dev/vfio/N per group ("rw"); pci_resource_variable(name) = the
// functions the resource selected in each allocated group (a GPU's, not its HDMI audio's: one
// per device, as KubeVirt takes one address per hostDevice), and group_members_variable(name) =
// every member of the allocated groups, each comma-separated in the order of `ids`. Throws
// Error (kind usage) naming the ID for one that is not the resource's or is unhealthy, a
// repeated ID, or an empty request.
ContainerAllocation allocate(const HostPaths& paths, const Resource& resource,
                             std::span<const std::string> ids);

}  // namespace vfiokit::k8s
