#include "vfiokit/bind/readiness.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tests/unit/fixtures.h"
#include "tests/unit/rom_builder.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace {

std::vector<CheckResult> assess_on(const HostPaths& paths, const char* device) {
  const Journal journal(paths.run / "vfiokit");
  const std::vector<pci::Bdf> requested{*pci::parse_bdf(device)};
  const HostView view = gather_host_view(paths, requested, journal, 1, pci::ConfigDepth::full);
  return assess_readiness(view, requested[0], iommu::probe_host_iommu(paths));
}

std::vector<CheckResult> assess(const char* fixture, const char* device) {
  return assess_on(test::fixture_sysfs(fixture), device);
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
  // Its HDMI audio function shares the group: bind moves it along, nothing to warn about.
  EXPECT_EQ(find(checks, "gpu-functions").status, CheckStatus::pass);
  EXPECT_NE(find(checks, "gpu-functions").summary.find("0000:01:00.1 (class 0403, snd_hda_intel)"),
            std::string::npos);
  EXPECT_EQ(find(checks, "display").status, CheckStatus::pass);
  EXPECT_NE(find(checks, "display").summary.find("its driver nouveau is idle"), std::string::npos);
  // Only a bus reset, and what else it resets moves with the GPU.
  EXPECT_EQ(find(checks, "reset").status, CheckStatus::pass);
  EXPECT_EQ(find(checks, "reset").summary,
            "reset methods: bus (a bus reset also resets 0000:01:00.1, which moves with it)");
  EXPECT_NE(find(checks, "large-bars").summary.find("BAR1 32 GiB"), std::string::npos);
  EXPECT_EQ(find(checks, "rom").status, CheckStatus::pass);
  EXPECT_EQ(find(checks, "rom").summary,
            "option ROM BAR of 512 KiB; valid for this device: 2 images (x86, efi x64)");
  EXPECT_NE(find(checks, "group-viable").fix.find("vfiokit bind 0000:01:00.0"), std::string::npos);
}

// check's rom item from the ROM's contents, gathered with the host view.
struct GpuRom : testing::Test {
  test::FixtureCopy copy{test::fixture("sysfs/gpu-audio-group")};
  const pci::Bdf gpu = *pci::parse_bdf("0000:01:00.0");

  HostView view() const {
    const Journal journal(copy.paths().run / "vfiokit");
    return gather_host_view(copy.paths(), std::vector<pci::Bdf>{gpu}, journal, 1,
                            pci::ConfigDepth::full);
  }
  CheckResult rom_item(const HostView& host) const {
    return find(assess_readiness(host, gpu, iommu::probe_host_iommu(copy.paths())), "rom");
  }
  void write_rom(const std::vector<std::uint8_t>& bytes) const {
    write_file_durable(copy.root() / "sys/bus/pci/devices/0000:01:00.0/rom",
                       std::string(bytes.begin(), bytes.end()), 0600);
  }
};

TEST_F(GpuRom, OnlyTheFullDepthReadsIt) {
  const Journal journal(copy.paths().run / "vfiokit");
  const HostView header = gather_host_view(copy.paths(), std::vector<pci::Bdf>{gpu}, journal, 1);
  EXPECT_FALSE(header.devices.at(gpu).rom.has_value());
  const HostView full = view();
  ASSERT_TRUE(full.devices.at(gpu).rom.has_value());
  ASSERT_TRUE(full.devices.at(gpu).rom->layout.has_value());
  EXPECT_TRUE(full.devices.at(gpu).rom->layout->valid());
  // The HDMI audio function is no display device: its ROM is nobody's concern here.
  EXPECT_FALSE(full.devices.at(*pci::parse_bdf("0000:01:00.1")).rom.has_value());
}

TEST_F(GpuRom, AnotherCardsRomIsAWarningWithRomfile) {
  write_rom(test::make_x86_and_efi_rom(0x10de, 0x1e84));
  const CheckResult item = rom_item(view());
  EXPECT_EQ(item.status, CheckStatus::warn);
  EXPECT_NE(item.summary.find("not for this device 10de:2204"), std::string::npos) << item.summary;
  EXPECT_NE(item.summary.find("(and 1 more)"), std::string::npos) << item.summary;
  EXPECT_NE(item.fix.find("romfile=FILE"), std::string::npos);
  EXPECT_NE(item.fix.find("vfiokit rom 0000:01:00.0 --output FILE"), std::string::npos);
}

TEST_F(GpuRom, ADamagedRomIsAWarning) {
  auto bytes = test::make_x86_and_efi_rom(0x10de, 0x2204);
  bytes[0x100] ^= 0x40;  // the x86 image's checksum
  write_rom(bytes);
  const CheckResult item = rom_item(view());
  EXPECT_EQ(item.status, CheckStatus::warn);
  EXPECT_NE(item.summary.find("x86 checksum"), std::string::npos) << item.summary;
}

TEST_F(GpuRom, UnreadableWithoutRootSaysSo) {
  HostView host = view();
  host.devices.at(gpu).rom = RomFacts{std::nullopt, Error::from_errno(EACCES, "read"), {}};
  const CheckResult item = rom_item(host);
  EXPECT_EQ(item.status, CheckStatus::warn);
  EXPECT_NE(item.summary.find("reading a ROM needs root"), std::string::npos) << item.summary;
  EXPECT_NE(item.fix.find("as root"), std::string::npos);
}

TEST_F(GpuRom, AMissingRomAttributeIsUnreadable) {
  std::filesystem::remove(copy.root() / "sys/bus/pci/devices/0000:01:00.0/rom");
  const CheckResult item = rom_item(view());
  EXPECT_EQ(item.status, CheckStatus::warn);
  EXPECT_NE(item.summary.find("could not be read"), std::string::npos) << item.summary;
}

TEST_F(GpuRom, NotReadUnderAGuest) {
  HostView host = view();
  host.devices.at(gpu).rom =
      RomFacts{std::nullopt, std::nullopt, "not read while a VFIO user holds its group: x"};
  const CheckResult item = rom_item(host);
  EXPECT_EQ(item.status, CheckStatus::pass);
  EXPECT_NE(item.summary.find("not read while a VFIO user"), std::string::npos);
}

TEST(Readiness, GpuInUseFailsTheDisplayItemAndWarnsAboutItsSlotAndReset) {
  const auto checks = assess("gpu-in-use", "0000:0a:00.0");
  const CheckResult display = find(checks, "display");
  EXPECT_EQ(display.status, CheckStatus::fail);  // bind refuses it
  EXPECT_NE(display.summary.find("Xorg (pid 812) holds /dev/dri/card0"), std::string::npos);
  EXPECT_NE(display.fix.find("--force-display"), std::string::npos);
  // The audio function is in a group of its own: the slot cannot move as one.
  const CheckResult functions = find(checks, "gpu-functions");
  EXPECT_EQ(functions.status, CheckStatus::warn);
  EXPECT_NE(functions.summary.find("0000:0a:00.1 (class 0403, snd_hda_intel) is in IOMMU group 4"),
            std::string::npos)
      << functions.summary;
  EXPECT_NE(functions.fix.find("vfiokit bind 0000:0a:00.0 0000:0a:00.1"), std::string::npos);
  // No FLR, PM keeps state: only a bus reset, which would hit the audio function too.
  const CheckResult reset = find(checks, "reset");
  EXPECT_EQ(reset.status, CheckStatus::warn);
  EXPECT_NE(reset.summary.find("only a bus reset, which also resets 0000:0a:00.1"),
            std::string::npos)
      << reset.summary;
  EXPECT_NE(reset.summary.find("GPUs often fail to initialise on the second boot"),
            std::string::npos);
  EXPECT_NE(reset.fix.find("vfiokit bind 0000:0a:00.1"), std::string::npos);
}

TEST(Readiness, TheAudioFunctionAloneIsNotADisplay) {
  const auto checks = assess("gpu-in-use", "0000:0a:00.1");
  EXPECT_EQ(find(checks, "display").id, "missing");
  EXPECT_EQ(find(checks, "gpu-functions").id, "missing");
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
  EXPECT_EQ(find(pf, "host-use").status, CheckStatus::fail);  // bind refuses: --force-net
  EXPECT_NE(find(pf, "host-use").fix.find("--force-net"), std::string::npos);
  const auto vf = assess("sriov-pf", "0000:03:02.0");
  EXPECT_EQ(find(vf, "sriov").summary, "virtual function of 0000:03:00.0");
}

TEST(Readiness, MountedDiskFailsWithTheBlockOverride) {
  const auto checks = assess("mounted-disk", "0000:04:00.0");
  EXPECT_EQ(find(checks, "host-use").status, CheckStatus::fail);
  EXPECT_NE(find(checks, "host-use").fix.find("--force-block"), std::string::npos);
}

TEST(Readiness, NoIommuFails) {
  const auto checks = assess("no-iommu", "0000:00:1f.6");
  EXPECT_EQ(find(checks, "iommu").status, CheckStatus::fail);
  EXPECT_EQ(find(checks, "interrupt-remapping").status, CheckStatus::fail);
  EXPECT_FALSE(all_passed(checks));
}

// The arm64 rig (tests/fixtures/hosts/arm64-rig): its nvme's MSI-X goes through the GICv3 ITS,
// which isolates MSIs as interrupt remapping does on x86.
TEST(Readiness, Arm64NvmeBehindSmmuV3AndItsIsReady) {
  const auto checks = assess_on(test::fixture_host("arm64-rig"), "0000:00:02.0");
  EXPECT_EQ(find(checks, "iommu").summary, "in IOMMU group 0");
  EXPECT_EQ(find(checks, "interrupt-remapping").status, CheckStatus::pass);
  EXPECT_EQ(find(checks, "interrupt-remapping").summary, "MSIs isolated by the GICv3 ITS");
}

// edu in the arm64 rig has no group until a driver probes it: a warning that says bind probes
// it, not a failure (tests/unit/plan_test.cpp has the plan).
TEST(Readiness, Arm64EduWithoutAGroupYetIsAWarningThatSaysBindProbesIt) {
  const auto checks = assess_on(test::fixture_host("arm64-rig"), "0000:00:01.0");
  EXPECT_EQ(find(checks, "iommu").status, CheckStatus::warn);
  EXPECT_NE(find(checks, "iommu").fix.find("`vfiokit bind 0000:00:01.0` lets vfio-pci probe it"),
            std::string::npos);
  EXPECT_EQ(find(checks, "group-viable").status, CheckStatus::warn);
}

TEST(Readiness, BridgeFailsTheHeaderCheck) {
  EXPECT_EQ(find(assess("gpu-audio-group", "0000:00:01.0"), "header-type").status,
            CheckStatus::fail);
}

// `check` and `bind` agree: on every device of every fixture host, whatever bind's own plan
// refuses is a FAIL in check, under the refusal's item; and a device bind would move without
// refusing has no FAIL that bind does not share, other than the structural readiness items.
TEST(Readiness, CheckFailsEverythingBindRefuses) {
  int refused_devices = 0;
  for (const auto& tree : std::filesystem::directory_iterator(test::fixture("sysfs"))) {
    const HostPaths paths = test::fixture_sysfs(tree.path().filename());
    const Journal journal(paths.run / "vfiokit");
    for (const pci::Bdf& bdf : pci::list_pci_devices(paths)) {
      const std::vector<pci::Bdf> requested{bdf};
      const HostView view = gather_host_view(paths, requested, journal, 1, pci::ConfigDepth::full);
      const Plan plan = plan_bind(view, requested, ForceFlags{});
      const auto checks = assess_readiness(view, bdf, iommu::probe_host_iommu(paths));
      const std::string where = tree.path().filename().string() + " " + bdf.to_string();
      if (!plan.refused()) continue;
      ++refused_devices;
      EXPECT_FALSE(all_passed(checks)) << where << ": bind refuses, check passes";
      for (const Refusal& refusal : plan.refusals) {
        const bool covered = std::any_of(checks.begin(), checks.end(), [&](const CheckResult& c) {
          return c.status == CheckStatus::fail &&
                 (c.id == to_string(refusal.check) ||
                  (c.id == "host-use" &&
                   (refusal.check == Check::net || refusal.check == Check::block)) ||
                  (c.id == "header-type" && refusal.check == Check::bridge));
        });
        EXPECT_TRUE(covered) << where << ": bind refuses (" << to_string(refusal.check) << ": "
                             << refusal.reason << ") but no check item fails for it";
      }
    }
  }
  EXPECT_GE(refused_devices, 5);  // the fixtures do hold refusals: boot VGA, SR-IOV, disks, ...
}

}  // namespace
}  // namespace vfiokit::bind
