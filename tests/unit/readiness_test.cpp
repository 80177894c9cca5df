#include "vfiokit/bind/readiness.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"

namespace vfiokit::bind {
namespace {

std::vector<CheckResult> assess(const char* fixture, const char* device) {
  const HostPaths paths = test::fixture_sysfs(fixture);
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{*pci::parse_bdf(device)};
  const HostView view = gather_host_view(paths, requested, journal, 1, pci::ConfigDepth::full);
  return assess_readiness(view, requested[0], iommu::probe_host_iommu(paths));
}

CheckResult find(const std::vector<CheckResult>& checks, std::string_view id) {
  for (const auto& check : checks) {
    if (check.id == id) return check;
  }
  return {"missing", CheckStatus::fail, "no check " + std::string(id), {}};
}

TEST(Readiness, RigNvmeIsReady) {
  const auto checks = assess("rig", "0000:00:02.0");
  EXPECT_TRUE(all_passed(checks));
  EXPECT_EQ(find(checks, "reset").summary, "reset methods: flr");
  EXPECT_EQ(find(checks, "group-viable").status, CheckStatus::warn);  // nvme is on its driver
  EXPECT_EQ(find(checks, "gpu-functions").id, "missing");             // not a display device
}

TEST(Readiness, EduHasNoResetMethod) {
  const auto checks = assess("rig", "0000:00:01.0");
  EXPECT_EQ(find(checks, "reset").status, CheckStatus::warn);
  EXPECT_EQ(find(checks, "group-viable").status, CheckStatus::pass);  // driverless alone
}

TEST(Readiness, GpuGetsTheGpuFacts) {
  const auto checks = assess("gpu-audio-group", "0000:01:00.0");
  EXPECT_TRUE(all_passed(checks));
  EXPECT_NE(find(checks, "gpu-functions").summary.find("0000:01:00.1 (class 0403, snd_hda_intel)"),
            std::string::npos);
  EXPECT_NE(find(checks, "large-bars").summary.find("BAR1 32 GiB"), std::string::npos);
  EXPECT_EQ(find(checks, "rom").status, CheckStatus::pass);
  EXPECT_NE(find(checks, "group-viable").fix.find("vfiokit bind 0000:01:00.0"), std::string::npos);
}

TEST(Readiness, BootVgaFails) {
  const auto checks = assess("boot-vga", "0000:00:02.0");
  EXPECT_EQ(find(checks, "boot-vga").status, CheckStatus::fail);
  EXPECT_NE(find(checks, "boot-vga").fix.find("--force-boot-vga"), std::string::npos);
  EXPECT_EQ(find(checks, "reset").summary, "reset methods: flr");
  EXPECT_EQ(find(checks, "rom").status, CheckStatus::warn);
}

TEST(Readiness, SriovAndHostUse) {
  const auto pf = assess("sriov-pf", "0000:03:00.0");
  EXPECT_EQ(find(pf, "sriov").status, CheckStatus::fail);
  EXPECT_NE(find(pf, "sriov").fix.find("sriov_numvfs"), std::string::npos);
  EXPECT_EQ(find(pf, "host-use").status, CheckStatus::warn);
  EXPECT_NE(find(pf, "host-use").fix.find("--force-net"), std::string::npos);
  const auto vf = assess("sriov-pf", "0000:03:02.0");
  EXPECT_EQ(find(vf, "sriov").summary, "virtual function of 0000:03:00.0");
}

TEST(Readiness, MountedDiskWarnsWithTheBlockOverride) {
  const auto checks = assess("mounted-disk", "0000:04:00.0");
  EXPECT_EQ(find(checks, "host-use").status, CheckStatus::warn);
  EXPECT_NE(find(checks, "host-use").fix.find("--force-block"), std::string::npos);
}

TEST(Readiness, NoIommuFails) {
  const auto checks = assess("no-iommu", "0000:00:1f.6");
  EXPECT_EQ(find(checks, "iommu").status, CheckStatus::fail);
  EXPECT_EQ(find(checks, "interrupt-remapping").status, CheckStatus::fail);
  EXPECT_FALSE(all_passed(checks));
}

TEST(Readiness, BridgeFailsTheHeaderCheck) {
  EXPECT_EQ(find(assess("gpu-audio-group", "0000:00:01.0"), "header-type").status,
            CheckStatus::fail);
}

}  // namespace
}  // namespace vfiokit::bind
