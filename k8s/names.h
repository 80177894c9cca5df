// The names a resource gets outside the plugin: its socket file in kubelet's device-plugins
// directory and the environment variables a container receives. Pure functions of the resource
// name, shared by the config's checks (two resources must not share one), allocation and the
// gRPC shell.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace vfiokit::k8s {

// "vfiokit-vfiokit-io-nvme.sock" for "vfiokit.io/nvme": one socket per resource, named so that
// it is a plain file name ('/' and '.' become '-'; a '-' stays '-').
std::string plugin_socket_name(std::string_view resource_name);

// PCI_RESOURCE_VFIOKIT_IO_NVME for "vfiokit.io/nvme": KubeVirt's name for the variable that lists
// a resource's PCI addresses (util.ResourceNameToEnvVar: upper case, '/' and '.' become '_';
// '-' and '_' stay as they are).
std::string pci_resource_variable(std::string_view resource_name);

// VFIOKIT_GROUP_MEMBERS_VFIOKIT_IO_NVME for "vfiokit.io/nvme": every member of the allocated
// groups, with the same suffix as pci_resource_variable().
std::string group_members_variable(std::string_view resource_name);

// The longest socket path a unix socket takes: sun_path (108 bytes on Linux) less its
// terminating NUL.
inline constexpr std::size_t kMaxSocketPath = 107;

// kubelet's device-plugins directory unless --plugin-dir says otherwise, with its trailing '/'.
inline constexpr std::string_view kDefaultPluginDir = "/var/lib/kubelet/device-plugins/";

}  // namespace vfiokit::k8s
