// How `list` and `show` present PCI devices: text lines and JSON with the same facts.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "tools/vfiokit/json.h"
#include "vfiokit/bind/usage.h"
#include "vfiokit/pci/device.h"
#include "vfiokit/pci/names.h"
#include "vfiokit/pci/reset.h"

namespace vfiokit::cli {

struct NamedDevice {
  pci::PciDevice device;
  std::string vendor_name;
  std::string device_name;
  std::string class_name;
  std::string subsystem_name;
};
NamedDevice name_device(pci::PciNames& names, pci::PciDevice device);

// "Non-Volatile memory controller [0108]: Red Hat, Inc. QEMU NVM Express Controller [1b36:0010]"
std::string describe(const NamedDevice& named);

// The one device object of every document: `group_members` are its IOMMU group's devices (the
// device too); `usage` and `reset` are null where host use and the device's place in the tree
// were not looked at.
Json device_json(const NamedDevice& named, const std::vector<pci::Bdf>& group_members,
                 const bind::DeviceUsage* usage, const pci::ResetSupport* reset = nullptr);
void print_device_details(std::ostream& out, const NamedDevice& named,
                          const std::vector<pci::Bdf>& group_members,
                          const bind::DeviceUsage& usage);

}  // namespace vfiokit::cli
