// `vfiokit device-plugin --config FILE`: which resources to advertise and which devices each one
// selects. The file is JSON (a ConfigMap carries it as-is; docs/kubernetes.md):
//
//   {
//     "resources": [
//       {"name": "vfiokit.io/nvme", "devices": ["1b36:0010"]},
//       {"name": "vfiokit.io/gpu", "classes": ["0300", "0302"]},
//       {"name": "vfiokit.io/edu", "bdfs": ["0000:00:05.0"]}
//     ],
//     "keepBound": false
//   }
//
// A function belongs to a resource when it matches any entry of any of its lists: "devices" in
// lspci's -d form (vendor:device, either may be empty), "classes" as 2, 4 or 6 hex digits (class,
// subclass, prog-if), "bdfs" as lspci -s addresses with the domain.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/pci/bdf.h"

namespace vfiokit::k8s {

struct VendorDevice {
  std::optional<std::uint16_t> vendor;  // nullopt: any
  std::optional<std::uint16_t> device;
  bool operator==(const VendorDevice&) const = default;
};

struct ClassMatch {
  std::uint32_t value = 0;  // left-aligned in 24 bits: "0300" is 0x030000
  std::uint32_t mask = 0;   // 0xff0000, 0xffff00 or 0xffffff
  bool operator==(const ClassMatch&) const = default;
};

struct ResourceSelection {
  std::string name;  // "vfiokit.io/nvme": DOMAIN/NAME, as kubelet validates extended resources
  std::vector<VendorDevice> devices;
  std::vector<ClassMatch> classes;
  std::vector<pci::Bdf> bdfs;
  bool operator==(const ResourceSelection&) const = default;
};

struct PluginConfig {
  std::vector<ResourceSelection> resources;  // at least one; names unique
  bool keep_bound = false;                   // leave the groups on vfio-pci when the plugin stops
  bool operator==(const PluginConfig&) const = default;
};

// Throws Error (operation "read device-plugin config", kind usage) naming the key and what it
// should be: malformed JSON, an unknown key, a resource name kubelet would refuse, a resource
// with nothing to select, a repeated resource name, two names that would share a socket file or
// a PCI_RESOURCE_* variable (names.h; both are named), a name whose socket path would not fit a
// unix socket under kubelet's default device-plugins directory, a malformed ID, class or BDF.
PluginConfig parse_plugin_config(std::string_view json_text);

}  // namespace vfiokit::k8s
