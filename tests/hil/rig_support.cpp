#include "tests/hil/rig_support.h"

#include "base/fs.h"

namespace vfiokit::hil {

std::optional<std::string> find_pci_function(unsigned vendor, unsigned device) {
  const std::filesystem::path devices = "/sys/bus/pci/devices";
  for (const auto& name : list_dir(devices)) {
    const auto v = parse_uint(read_line_if_exists(devices / name / "vendor").value_or(""), 16);
    const auto d = parse_uint(read_line_if_exists(devices / name / "device").value_or(""), 16);
    if (v == vendor && d == device) return name;
  }
  return std::nullopt;
}

}  // namespace vfiokit::hil
