#include "vfiokit/iommu/host_iommu.h"

#include <algorithm>
#include <filesystem>

#include "vfiokit/base/fs.h"

namespace vfiokit::iommu {
namespace fs = std::filesystem;
namespace {

// Intel VT-d Extended Capability register, bit 3: Interrupt Remapping support (VT-d spec 11.4.3).
constexpr std::uint64_t kEcapInterruptRemapping = 1u << 3;

IommuUnit probe_unit(const fs::path& dir, std::string name) {
  IommuUnit unit{std::move(name), IommuVendor::other, std::nullopt};
  if (fs::exists(dir / "intel-iommu")) {
    unit.vendor = IommuVendor::intel_vtd;
    if (auto ecap = read_line_if_exists(dir / "intel-iommu/ecap")) {
      if (auto bits = parse_uint(*ecap, 16)) {
        unit.remapping_capable = (*bits & kEcapInterruptRemapping) != 0;
      }
    }
  } else if (fs::exists(dir / "amd-iommu")) {
    unit.vendor = IommuVendor::amd_vi;
  }
  return unit;
}

// The interrupt chip column of /proc/interrupts names remapped chips "IR-IO-APIC",
// "IR-PCI-MSI-...", "IR-PCI-MSIX-..." when interrupt remapping is on.
bool interrupts_show_remapping(std::string_view interrupts) {
  return interrupts.find(" IR-") != std::string_view::npos;
}

}  // namespace

HostIommu probe_host_iommu(const HostPaths& paths) {
  HostIommu host;
  const fs::path class_dir = paths.sys / "class/iommu";
  for (auto& name : list_dir(class_dir)) host.units.push_back(probe_unit(class_dir / name, name));
  for (const auto& name : list_dir(paths.sys / "kernel/iommu_groups")) {
    if (auto number = parse_uint(name)) host.groups.push_back(static_cast<unsigned>(*number));
  }
  std::sort(host.groups.begin(), host.groups.end());
  host.firmware_dmar = fs::exists(paths.sys / "firmware/acpi/tables/DMAR");
  host.firmware_ivrs = fs::exists(paths.sys / "firmware/acpi/tables/IVRS");
  host.remapped_interrupts_seen =
      interrupts_show_remapping(read_file_if_exists(paths.proc / "interrupts").value_or(""));
  if (auto unsafe = read_line_if_exists(
          paths.sys / "module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")) {
    host.allow_unsafe_interrupts = *unsafe == "Y" || *unsafe == "1";
  }
  host.kernel_cmdline = read_line_if_exists(paths.proc / "cmdline").value_or("");
  host.cpu_vendor =
      find_key_value(read_file_if_exists(paths.proc / "cpuinfo").value_or(""), "vendor_id")
          .value_or("");
  return host;
}

std::string_view to_string(IommuVendor vendor) noexcept {
  switch (vendor) {
    case IommuVendor::intel_vtd:
      return "Intel VT-d";
    case IommuVendor::amd_vi:
      return "AMD-Vi";
    case IommuVendor::other:
      return "other";
  }
  return "other";
}

bool cmdline_has(const std::string& cmdline, std::string_view option) {
  std::size_t pos = 0;
  while (pos < cmdline.size()) {
    const std::size_t end = std::min(cmdline.find(' ', pos), cmdline.size());
    if (std::string_view(cmdline).substr(pos, end - pos) == option) return true;
    pos = end + 1;
  }
  return false;
}

}  // namespace vfiokit::iommu
