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
  } else if (unit.name.starts_with("smmu3.")) {
    // Kernel contract: arm-smmu-v3 registers its unit as "smmu3.%pa" (the MMIO base), arm-smmu
    // (SMMUv1/v2) as "smmu.%pa"; neither has a vendor folder like intel-iommu/ or amd-iommu/.
    unit.vendor = IommuVendor::arm_smmu_v3;
  } else if (unit.name.starts_with("smmu.")) {
    unit.vendor = IommuVendor::arm_smmu;
  }
  return unit;
}

// The interrupt chip column of /proc/interrupts names remapped chips "IR-IO-APIC",
// "IR-PCI-MSI-...", "IR-PCI-MSIX-..." when interrupt remapping is on.
bool interrupts_show_remapping(std::string_view interrupts) {
  return interrupts.find(" IR-") != std::string_view::npos;
}

// Kernel contract: MSIs that go through a GICv3/v4 ITS are on interrupt chips named "ITS-MSI",
// "ITS-pMSI" (one domain per ITS, older kernels) or "ITS-PCI-MSI-BDF", "ITS-PCI-MSIX-BDF"
// (6.x per-device domains). The ITS translates each MSI by the DeviceID the SMMU/root complex
// gives it, so a device can only raise its own interrupts: the kernel flags these domains
// IRQ_DOMAIN_FLAG_ISOLATED_MSI, which vfio_iommu_type1 requires as it requires IR on x86.
// /proc/interrupts lists only interrupts with a handler; /sys/kernel/irq/N/chip_name lists every
// allocated one (vfio-pci's, e1000e's while its link is down).
constexpr std::string_view kItsChipPrefix = "ITS-";

bool interrupts_show_its(std::string_view interrupts) {
  return interrupts.find(std::string(" ") + std::string(kItsChipPrefix)) != std::string_view::npos;
}

bool irq_chips_show_its(const fs::path& irq_dir) {
  for (const auto& irq : list_dir(irq_dir)) {
    const auto chip = read_line_if_exists(irq_dir / irq / "chip_name");
    if (chip && chip->starts_with(kItsChipPrefix)) return true;
  }
  return false;
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
  const std::string interrupts = read_file_if_exists(paths.proc / "interrupts").value_or("");
  host.remapped_interrupts_seen = interrupts_show_remapping(interrupts);
  host.its_msi_seen =
      interrupts_show_its(interrupts) || irq_chips_show_its(paths.sys / "kernel/irq");
  if (auto unsafe = read_line_if_exists(
          paths.sys / "module/vfio_iommu_type1/parameters/allow_unsafe_interrupts")) {
    host.allow_unsafe_interrupts = *unsafe == "Y" || *unsafe == "1";
  }
  host.kernel_cmdline = read_line_if_exists(paths.proc / "cmdline").value_or("");
  const std::string cpuinfo = read_file_if_exists(paths.proc / "cpuinfo").value_or("");
  host.cpu_vendor = find_key_value(cpuinfo, "vendor_id").value_or("");
  host.cpu_implementer = find_key_value(cpuinfo, "CPU implementer").value_or("");
  return host;
}

std::string_view to_string(IommuVendor vendor) noexcept {
  switch (vendor) {
    case IommuVendor::intel_vtd:
      return "Intel VT-d";
    case IommuVendor::amd_vi:
      return "AMD-Vi";
    case IommuVendor::arm_smmu_v3:
      return "Arm SMMUv3";
    case IommuVendor::arm_smmu:
      return "Arm SMMU";
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
