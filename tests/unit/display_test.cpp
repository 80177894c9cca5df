#include "vfiokit/bind/display.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::bind {
namespace {

pci::Bdf bdf(const char* text) { return *pci::parse_bdf(text); }

constexpr std::string_view kIomem =
    "00000000-00000fff : Reserved\n"
    "000a0000-000bffff : PCI Bus 0000:00\n"
    "e0000000-efffffff : PCI Bus 0000:00\n"
    "  e0000000-efffffff : 0000:00:02.0\n"
    "    e0000000-e07e8fff : efifb\n"
    "  e8000000-e8000fff : PCI Bus 0000:01\n"
    "f0000000-f0000fff : System RAM\n";

TEST(Iomem, ParsesRangesNamesAndNesting) {
  const auto ranges = parse_iomem(kIomem);
  ASSERT_EQ(ranges.size(), 7u);
  EXPECT_EQ(ranges[1].start, 0xa0000u);
  EXPECT_EQ(ranges[1].end, 0xbffffu);
  EXPECT_EQ(ranges[1].name, "PCI Bus 0000:00");  // names keep their spaces
  EXPECT_FALSE(ranges[2].parent.has_value());
  EXPECT_EQ(ranges[3].depth, 1u);
  EXPECT_EQ(ranges[3].parent, 2u);
  EXPECT_EQ(ranges[4].name, "efifb");
  EXPECT_EQ(ranges[4].depth, 2u);
  EXPECT_EQ(ranges[4].parent, 3u);
  EXPECT_EQ(ranges[5].parent, 2u);  // back up one level
  EXPECT_FALSE(ranges[6].parent.has_value());
}

TEST(Iomem, SkipsBadLinesAndWhatIsNestedBelowThem) {
  const auto ranges = parse_iomem(
      "00000000-00000fff : Reserved\n"
      "garbage\n"
      "e0000000-dfffffff : backwards\n"
      "  e0000000-e0000fff : orphan of the bad line\n"
      "    e0000000-e00000ff : and its child\n"
      "0x1000-0x2000 : prefixed\n"
      "f0000000-f0000fff : kept\n"
      "    f0000000-f00000ff : two levels too deep\n");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].name, "Reserved");
  EXPECT_EQ(ranges[1].name, "kept");
}

TEST(Iomem, UnprivilegedZerosKeepTheNesting) {
  const auto ranges = parse_iomem(
      "00000000-00000000 : PCI Bus 0000:00\n"
      "  00000000-00000000 : 0000:00:02.0\n"
      "    00000000-00000000 : efifb\n");
  ASSERT_EQ(ranges.size(), 3u);
  const std::vector<pci::Bar> bars = {{2, pci::BarKind::mem64, true, 0xe0000000, 256 << 20}};
  const auto found = firmware_framebuffers_on(ranges, bdf("0000:00:02.0"), bars);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_FALSE(found[0].bar.has_value());  // the zeros fit no BAR: nesting alone found it
  EXPECT_EQ(found[0].describe(), "efifb claims part of its memory");
  EXPECT_TRUE(firmware_framebuffers_on(ranges, bdf("0000:01:00.0"), bars).empty());
}

TEST(Iomem, FirmwareFramebufferInsideABarIsFoundWithoutNesting) {
  const auto ranges = parse_iomem("7c00000000-7c007e8fff : BOOTFB\n");
  const std::vector<pci::Bar> bars = {
      {0, pci::BarKind::mem64, true, 0x7c00000000, 256u << 20},
      {4, pci::BarKind::io, false, 0xe000, 256},
  };
  const auto found = firmware_framebuffers_on(ranges, bdf("0000:0a:00.0"), bars);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].bar, 0u);
  EXPECT_EQ(found[0].describe(), "BOOTFB claims 0x7c00000000-0x7c007e8fff in BAR0");
  // Past the BAR's end: not on it.
  const auto outside = parse_iomem("7c0fffff00-7c10000fff : efifb\n");
  EXPECT_TRUE(firmware_framebuffers_on(outside, bdf("0000:0a:00.0"), bars).empty());
}

TEST(Iomem, NamesOfFirmwareFramebuffersAndGpuDrivers) {
  for (const char* name : {"efifb", "simplefb", "simpledrm", "vesafb", "BOOTFB",
                           "simple-framebuffer.0", "efi-framebuffer.0"}) {
    EXPECT_TRUE(is_firmware_framebuffer(name)) << name;
  }
  for (const char* name : {"amdgpu", "System RAM", "0000:00:02.0", "efi", ""}) {
    EXPECT_FALSE(is_firmware_framebuffer(name)) << name;
  }
  EXPECT_TRUE(is_gpu_driver("amdgpu"));
  EXPECT_TRUE(is_gpu_driver("nvidia"));
  EXPECT_FALSE(is_gpu_driver("vfio-pci"));
  EXPECT_FALSE(is_gpu_driver("snd_hda_intel"));
  EXPECT_TRUE(is_fbcon("(M) frame buffer device"));
  EXPECT_FALSE(is_fbcon("(S) dummy device"));
}

DisplayUsage probe(const char* fixture, const char* device) {
  const HostPaths paths = test::fixture_sysfs(fixture);
  return probe_display_usage(paths, pci::read_pci_device(paths, bdf(device)), 1);
}

TEST(DisplayUsage, FindsEveryUserOfAGpuInUse) {
  const DisplayUsage usage = probe("gpu-in-use", "0000:0a:00.0");
  EXPECT_TRUE(usage.in_use());
  EXPECT_EQ(usage.drm_nodes, (std::vector<std::string>{"card0", "renderD128"}));
  // Xorg's two fds on card0 are one user; pid 1 (this process in the probe) is none.
  ASSERT_EQ(usage.drm_clients.size(), 2u);
  const auto users = usage.users();
  EXPECT_NE(std::find(users.begin(), users.end(), "Xorg (pid 812) holds /dev/dri/card0"),
            users.end());
  EXPECT_NE(
      std::find(users.begin(), users.end(), "gnome-shell (pid 1400) holds /dev/dri/renderD128"),
      users.end());
  EXPECT_EQ(usage.framebuffers, std::vector<std::string>{"fb0"});
  ASSERT_EQ(usage.consoles.size(), 1u);
  EXPECT_EQ(usage.consoles[0].vtconsole, "vtcon1");
  ASSERT_EQ(usage.firmware_framebuffers.size(), 1u);
  EXPECT_EQ(usage.firmware_framebuffers[0].name, "efifb");
  EXPECT_EQ(usage.firmware_framebuffers[0].bar, 0u);
  EXPECT_EQ(usage.gpu_driver, "amdgpu");
  const std::string text = usage.describe();
  EXPECT_NE(text.find("systemctl stop display-manager"), std::string::npos) << text;
  EXPECT_NE(text.find("echo 0 > /sys/class/vtconsole/vtcon1/bind"), std::string::npos) << text;
  EXPECT_NE(text.find("video=efifb:off"), std::string::npos) << text;
  EXPECT_NE(text.find("its driver is amdgpu"), std::string::npos) << text;
}

TEST(DisplayUsage, IdleGpuWithADriverIsNotInUse) {
  // Its nodes exist but nobody holds them; fbcon and efifb are on another GPU.
  const DisplayUsage usage = probe("gpu-audio-group", "0000:01:00.0");
  EXPECT_EQ(usage.drm_nodes, (std::vector<std::string>{"card1", "renderD129"}));
  EXPECT_TRUE(usage.drm_clients.empty());
  EXPECT_TRUE(usage.framebuffers.empty());
  EXPECT_TRUE(usage.consoles.empty());
  EXPECT_TRUE(usage.firmware_framebuffers.empty());
  EXPECT_EQ(usage.gpu_driver, "nouveau");
  EXPECT_FALSE(usage.in_use());
}

TEST(DisplayUsage, NvidiasOwnDriverIsHeldThroughDevNvidiaN) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const auto gpu_info = copy.root() / "proc/driver/nvidia/gpus/0000:01:00.0/information";
  std::filesystem::create_directories(gpu_info.parent_path());
  write_file_durable(gpu_info, "Model: \t\t NVIDIA GeForce RTX 3090\nDevice Minor: \t 1\n");
  std::filesystem::create_directories(copy.root() / "proc/2222/fd");
  write_file_durable(copy.root() / "proc/2222/comm", "nvidia-persiste\n");
  std::filesystem::create_symlink("/dev/nvidia1", copy.root() / "proc/2222/fd/4");
  std::filesystem::create_symlink("/dev/nvidia0", copy.root() / "proc/2222/fd/5");  // another GPU
  const HostPaths paths = copy.paths();
  const DisplayUsage usage =
      probe_display_usage(paths, pci::read_pci_device(paths, bdf("0000:01:00.0")), 1);
  ASSERT_EQ(usage.drm_clients.size(), 1u);
  EXPECT_EQ(usage.drm_clients[0].describe(), "nvidia-persiste (pid 2222) holds /dev/nvidia1");
}

}  // namespace
}  // namespace vfiokit::bind
