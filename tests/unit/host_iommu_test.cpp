#include "vfiokit/iommu/host_iommu.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/fixtures.h"

namespace vfiokit::iommu {
namespace {

TEST(HostIommu, VtdWithRemappingAsTheRigShowsIt) {
  const HostIommu host = probe_host_iommu(test::fixture_host("vtd-ready"));
  ASSERT_EQ(host.units.size(), 1u);
  EXPECT_EQ(host.units[0].name, "dmar0");
  EXPECT_EQ(host.units[0].vendor, IommuVendor::intel_vtd);
  EXPECT_EQ(host.units[0].remapping_capable, true);  // ecap 0xf00f4a has bit 3 set
  EXPECT_EQ(host.groups, (std::vector<unsigned>{0, 1, 2}));
  EXPECT_TRUE(host.firmware_dmar);
  EXPECT_FALSE(host.firmware_ivrs);
  EXPECT_TRUE(host.remapped_interrupts_seen);
  EXPECT_EQ(host.allow_unsafe_interrupts, false);
  EXPECT_EQ(host.cpu_vendor, "GenuineIntel");
  EXPECT_TRUE(cmdline_has(host.kernel_cmdline, "intel_iommu=on"));
}

TEST(HostIommu, FirmwareTableWithoutKernelSupport) {
  const HostIommu host = probe_host_iommu(test::fixture_host("dmar-disabled"));
  EXPECT_TRUE(host.units.empty());
  EXPECT_TRUE(host.groups.empty());
  EXPECT_TRUE(host.firmware_dmar);
  EXPECT_FALSE(host.remapped_interrupts_seen);
  EXPECT_FALSE(host.allow_unsafe_interrupts.has_value());
}

TEST(HostIommu, NothingAtAll) {
  const HostIommu host = probe_host_iommu(test::fixture_host("no-iommu"));
  EXPECT_TRUE(host.units.empty());
  EXPECT_FALSE(host.firmware_dmar || host.firmware_ivrs);
  EXPECT_EQ(host.cpu_vendor, "AuthenticAMD");
}

// Captured in the arm64 rig (tools/rig/run --arch arm64, tests/fixtures/capture-sysfs): QEMU's
// virt machine with an SMMUv3 and a GICv3 ITS, Debian's arm64 6.12 kernel, nvme and e1000e on
// their drivers (groups 0 and 1; edu, without a driver, has no group yet on a device-tree host).
TEST(HostIommu, SmmuV3WithItsAsTheArm64RigShowsIt) {
  const HostIommu host = probe_host_iommu(test::fixture_host("arm64-rig"));
  ASSERT_EQ(host.units.size(), 1u);
  EXPECT_EQ(host.units[0].name, "smmu3.0x0000000009050000");
  EXPECT_EQ(host.units[0].vendor, IommuVendor::arm_smmu_v3);
  EXPECT_EQ(to_string(host.units[0].vendor), "Arm SMMUv3");
  EXPECT_FALSE(host.units[0].remapping_capable.has_value());
  EXPECT_EQ(host.groups, (std::vector<unsigned>{0, 1}));
  EXPECT_FALSE(host.firmware_dmar || host.firmware_ivrs);
  EXPECT_FALSE(host.remapped_interrupts_seen);
  EXPECT_TRUE(host.its_msi_seen);  // ITS-PCI-MSIX-0000:00:02.0 (nvme)
  EXPECT_EQ(host.allow_unsafe_interrupts, false);
  EXPECT_EQ(host.cpu_vendor, "");
  EXPECT_EQ(host.cpu_implementer, "0x41");
  EXPECT_TRUE(cmdline_has(host.kernel_cmdline, "iommu.passthrough=1"));
}

TEST(HostIommu, ItsIsSeenInAllocatedIrqChipsWithoutAHandler) {
  const test::FixtureCopy copy(test::fixture("hosts/arm64-rig"));
  // No ITS- chip with a handler in /proc/interrupts: /sys/kernel/irq's chip names still show it.
  std::ofstream(copy.root() / "proc/interrupts") << "           CPU0\n"
                                                    " 11:  1 GICv3  27 Level     arch_timer\n";
  EXPECT_TRUE(probe_host_iommu(copy.paths()).its_msi_seen);
  std::filesystem::remove_all(copy.root() / "sys/kernel/irq");
  EXPECT_FALSE(probe_host_iommu(copy.paths()).its_msi_seen);
}

TEST(HostIommu, SmmuV2UnitsAreNamedByTheirPrefix) {
  const test::FixtureCopy copy(test::fixture("hosts/no-iommu"));
  std::filesystem::create_directories(copy.root() / "sys/class/iommu/smmu.0x0000000009050000");
  const HostIommu host = probe_host_iommu(copy.paths());
  ASSERT_EQ(host.units.size(), 1u);
  EXPECT_EQ(host.units[0].vendor, IommuVendor::arm_smmu);
}

TEST(HostIommu, CmdlineMatchesWholeTokensOnly) {
  EXPECT_TRUE(cmdline_has("ro intel_iommu=on quiet", "intel_iommu=on"));
  EXPECT_TRUE(cmdline_has("intel_iommu=on", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("ro intel_iommu=on,sm_on quiet", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("xintel_iommu=on", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("", "iommu=pt"));
}

}  // namespace
}  // namespace vfiokit::iommu
