// What the host's IOMMU looks like from sysfs and procfs: which units, which groups, whether
// interrupt remapping is active (on arm64: whether MSIs go through a GICv3 ITS, which isolates
// them), and what firmware and the kernel command line say about it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::iommu {

enum class IommuVendor { intel_vtd, amd_vi, arm_smmu_v3, arm_smmu, other };

struct IommuUnit {
  std::string name;  // /sys/class/iommu/NAME, e.g. "dmar0", "ivhd0", "smmu3.0x0000000009050000"
  IommuVendor vendor = IommuVendor::other;
  std::optional<bool> remapping_capable;  // Intel: ECAP.IR (bit 3); unknown elsewhere
};

struct HostIommu {
  std::vector<IommuUnit> units;
  std::vector<unsigned> groups;           // /sys/kernel/iommu_groups/N, sorted
  bool firmware_dmar = false;             // ACPI DMAR table: VT-d described by firmware
  bool firmware_ivrs = false;             // ACPI IVRS table: AMD-Vi described by firmware
  bool remapped_interrupts_seen = false;  // /proc/interrupts lists IR- interrupt chips
  bool its_msi_seen = false;  // MSIs through a GICv3 ITS (ITS- chips): arm64's MSI isolation
  std::optional<bool> allow_unsafe_interrupts;  // vfio_iommu_type1 parameter, when loaded
  std::string kernel_cmdline;
  std::string cpu_vendor;       // "GenuineIntel", "AuthenticAMD", ...
  std::string cpu_implementer;  // arm64's /proc/cpuinfo "CPU implementer", e.g. "0x41" (Arm)
};

HostIommu probe_host_iommu(const HostPaths& paths);

std::string_view to_string(IommuVendor vendor) noexcept;

// True if the kernel command line holds the exact token `option` (e.g. "intel_iommu=off").
bool cmdline_has(const std::string& cmdline, std::string_view option);

}  // namespace vfiokit::iommu
