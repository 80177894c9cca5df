#include "vfiokit/iommu/host_iommu.h"

#include <gtest/gtest.h>

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

TEST(HostIommu, CmdlineMatchesWholeTokensOnly) {
  EXPECT_TRUE(cmdline_has("ro intel_iommu=on quiet", "intel_iommu=on"));
  EXPECT_TRUE(cmdline_has("intel_iommu=on", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("ro intel_iommu=on,sm_on quiet", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("xintel_iommu=on", "intel_iommu=on"));
  EXPECT_FALSE(cmdline_has("", "iommu=pt"));
}

}  // namespace
}  // namespace vfiokit::iommu
