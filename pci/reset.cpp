#include "vfiokit/pci/reset.h"

#include <algorithm>
#include <filesystem>

#include "vfiokit/base/fs.h"

namespace vfiokit::pci {
namespace fs = std::filesystem;
namespace {

// The device's directory under sys/devices, where the tree is; empty if it cannot be resolved.
fs::path real_device_dir(const HostPaths& paths, const Bdf& bdf) {
  std::error_code ec;
  fs::path dir = fs::canonical(device_dir(paths, bdf), ec);
  return ec ? fs::path() : dir;
}

bool is_below(const fs::path& dir, const fs::path& ancestor) {
  const std::string text = dir.string();
  const std::string prefix = ancestor.string() + '/';
  return text.size() > prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

BusNeighbour read_neighbour(const HostPaths& paths, const Bdf& bdf) {
  BusNeighbour neighbour;
  neighbour.bdf = bdf;
  const fs::path dir = device_dir(paths, bdf);
  const auto class_code = parse_uint(read_line_if_exists(dir / "class").value_or(""), 16);
  neighbour.class_code = static_cast<std::uint32_t>(class_code.value_or(0) & 0xffffffu);
  if (auto group = read_link_name(dir / "iommu_group")) {
    if (auto number = parse_uint(*group); number && *number <= 0xffffffffu) {
      neighbour.iommu_group = static_cast<unsigned>(*number);
    }
  }
  neighbour.driver = read_driver(paths, bdf);
  return neighbour;
}

// sysfs slot "address" is DOMAIN:BUS:DEVICE, without the function.
bool slot_holds(std::string_view address, const Bdf& bdf) {
  const auto slot = parse_bdf(std::string(trim(address)) + ".0");
  return slot && slot->domain == bdf.domain && slot->bus == bdf.bus && slot->device == bdf.device;
}

}  // namespace

ResetTopology read_reset_topology(const HostPaths& paths, const Bdf& bdf) {
  ResetTopology topology;
  const fs::path dir = real_device_dir(paths, bdf);
  if (dir.empty()) return topology;
  // Below a root bus the parent is "pci0000:00", which is no device and has no bridge control.
  const fs::path parent = dir.parent_path();
  topology.parent_bridge = parse_bdf(parent.filename().string());
  if (topology.parent_bridge) {
    for (const auto& other : list_pci_devices(paths)) {
      if (other == bdf) continue;
      if (is_below(real_device_dir(paths, other), parent)) {
        topology.neighbours.push_back(read_neighbour(paths, other));
      }
    }
  }
  const fs::path slots = paths.sys / "bus/pci/slots";
  for (const auto& name : list_dir(slots)) {
    std::error_code ec;
    // Only hot-plug slots have a power control; the others (ACPI _SUN, SMBIOS) just name a
    // physical slot and cannot reset anything.
    if (!fs::exists(slots / name / "power", ec)) continue;
    if (slot_holds(read_line_if_exists(slots / name / "address").value_or(""), bdf)) {
      topology.hotplug_slot = name;
      break;
    }
  }
  return topology;
}

std::vector<std::string> ResetSupport::methods() const {
  if (!kernel_methods.empty()) return kernel_methods;
  std::vector<std::string> out;  // in the kernel's order of preference
  if (flr) out.emplace_back("flr");
  if (af_flr) out.emplace_back("af_flr");
  if (pm) out.emplace_back("pm");
  if (bus || slot) out.emplace_back("bus");
  return out;
}

bool ResetSupport::function_level() const {
  const auto all = methods();
  return std::any_of(all.begin(), all.end(), [](const std::string& method) {
    return method != "bus" && method != "cxl_bus";
  });
}

ResetSupport assess_reset(const PciDevice& dev, const ResetTopology& topology) {
  ResetSupport support;
  support.kernel_methods = dev.reset_methods;
  support.capabilities_known = !dev.config.header_only && dev.config.header.has_value();
  support.flr = dev.config.pcie && dev.config.pcie->function_level_reset;
  support.af_flr = dev.config.advanced_features &&
                   dev.config.advanced_features->transactions_pending &&
                   dev.config.advanced_features->function_level_reset;
  support.pm = dev.config.power_management && !dev.config.power_management->no_soft_reset;
  // A bridge's own secondary bus reset would reset what is behind it, not the bridge.
  support.bus = topology.parent_bridge.has_value() && !dev.is_bridge();
  support.slot = topology.hotplug_slot.has_value() && !dev.is_bridge();
  if (support.bus || support.slot) support.also_reset = topology.neighbours;
  return support;
}

}  // namespace vfiokit::pci
