#include "vfiokit/pci/device.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/pci/names.h"

namespace vfiokit::pci {
namespace {

TEST(PciDevice, ListsEveryFunctionSorted) {
  const auto devices = list_pci_devices(test::fixture_sysfs("rig"));
  ASSERT_EQ(devices.size(), 7u);
  EXPECT_EQ(devices.front().to_string(), "0000:00:00.0");
  EXPECT_EQ(devices.back().to_string(), "0000:00:1f.3");
  EXPECT_TRUE(std::is_sorted(devices.begin(), devices.end()));
}

TEST(PciDevice, ReadsTheRigsNvme) {
  const PciDevice d = read_pci_device(test::fixture_sysfs("rig"), *parse_bdf("0000:00:02.0"));
  EXPECT_EQ(d.vendor_id, 0x1b36);
  EXPECT_EQ(d.device_id, 0x0010);
  EXPECT_EQ(d.subsystem_vendor_id, 0x1af4);
  EXPECT_EQ(d.class_code, 0x010802u);
  EXPECT_EQ(d.driver, "nvme");
  EXPECT_FALSE(d.driver_override);
  EXPECT_EQ(d.iommu_group, 2u);
  EXPECT_EQ(d.reset_methods, std::vector<std::string>{"flr"});
  ASSERT_EQ(d.bars.size(), 1u);
  EXPECT_EQ(d.bars[0].size, 16u * 1024);
  EXPECT_EQ(d.bars[0].kind, BarKind::mem64);
  ASSERT_TRUE(d.config.msix);
  EXPECT_EQ(d.config.msix->table_size, 65u);
  EXPECT_TRUE(d.config.pcie);
  EXPECT_TRUE(d.config.error.empty());
  EXPECT_FALSE(d.is_bridge());
}

TEST(PciDevice, ReadsAGpuBehindARootPort) {
  const HostPaths host = test::fixture_sysfs("gpu-audio-group");
  const PciDevice gpu = read_pci_device(host, *parse_bdf("0000:01:00.0"));
  EXPECT_TRUE(gpu.is_display());
  EXPECT_TRUE(gpu.multifunction());
  EXPECT_FALSE(gpu.boot_vga);
  ASSERT_EQ(gpu.bars.size(), 4u);
  EXPECT_EQ(gpu.bars[1].size, std::uint64_t{32} << 30);
  EXPECT_TRUE(gpu.bars[1].prefetchable);
  EXPECT_EQ(gpu.bars[3].kind, BarKind::io);
  EXPECT_EQ(gpu.rom_size, 512u * 1024);
  const PciDevice port = read_pci_device(host, *parse_bdf("0000:00:01.0"));
  EXPECT_TRUE(port.is_bridge());
  EXPECT_EQ(port.driver, "pcieport");
}

TEST(PciDevice, ReadsSriovPhysicalAndVirtualFunctions) {
  const HostPaths host = test::fixture_sysfs("sriov-pf");
  const PciDevice pf = read_pci_device(host, *parse_bdf("0000:03:00.0"));
  EXPECT_EQ(pf.sriov_total_vfs, 64u);
  EXPECT_EQ(pf.sriov_num_vfs, 2u);
  EXPECT_TRUE(pf.config.sriov);
  const PciDevice vf = read_pci_device(host, *parse_bdf("0000:03:02.1"));
  EXPECT_EQ(vf.physfn, parse_bdf("0000:03:00.0"));
  EXPECT_FALSE(vf.sriov_total_vfs);
}

TEST(PciDevice, AMissingDeviceIsAnErrorThatNamesIt) {
  try {
    read_pci_device(test::fixture_sysfs("rig"), *parse_bdf("0000:00:09.0"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::failed);
    EXPECT_EQ(e.context_value("bdf"), "0000:00:09.0");
    EXPECT_NE(e.hint().find("vfiokit list"), std::string::npos);
  }
}

TEST(PciDevice, HostileAttributesDegradeButNeverThrow) {
  test::FixtureCopy copy(test::fixture("sysfs/rig"));
  const auto dir = device_dir(copy.paths(), *parse_bdf("0000:00:02.0"));
  write_file_durable(dir / "vendor", "banana\n");
  write_file_durable(dir / "class", "0x1234567890\n");
  write_file_durable(dir / "numa_node", "-7\n");
  write_file_durable(dir / "resource", "0x1 0x0 0x200\n");  // end below start
  write_file_durable(dir / "reset_method", "   \n");
  write_file_durable(dir / "config", std::string(10, '\xff'));
  std::filesystem::remove(dir / "iommu_group");
  std::filesystem::create_symlink("../../../kernel/iommu_groups/notanumber", dir / "iommu_group");
  const PciDevice d = read_pci_device(copy.paths(), *parse_bdf("0000:00:02.0"));
  EXPECT_EQ(d.vendor_id, 0xffff);
  EXPECT_EQ(d.class_code, 0u);
  EXPECT_EQ(d.numa_node, -1);
  EXPECT_TRUE(d.bars.empty());
  EXPECT_TRUE(d.reset_methods.empty());
  EXPECT_FALSE(d.iommu_group);
  EXPECT_FALSE(d.config.header);
  EXPECT_NE(d.config.error.find("header"), std::string::npos);
}

TEST(PciDevice, DriverOverrideIsReadAsSet) {
  const PciDevice d =
      read_pci_device(test::fixture_sysfs("vfio-in-use"), *parse_bdf("0000:06:00.0"));
  EXPECT_EQ(d.driver_override, "vfio-pci");
  EXPECT_EQ(d.driver, "vfio-pci");
}

TEST(ResourceFile, ParsesAndRejects) {
  const auto ranges = parse_resource_file(
      "0x00000000feb80000 0x00000000feb83fff 0x0000000000140204\n"
      "0x0000000000000000 0x0000000000000000 0x0000000000000000\n");
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].size(), 0x4000u);
  EXPECT_TRUE(ranges[1].empty());
  const auto bars = bars_from_resources(ranges);
  ASSERT_EQ(bars.size(), 1u);
  EXPECT_EQ(bars[0].kind, BarKind::mem64);
  EXPECT_THROW(parse_resource_file("0x1 0x2\n"), Error);
  EXPECT_THROW(parse_resource_file("0x10 0x1 0x200\n"), Error);
  EXPECT_THROW(parse_resource_file("x y z\n"), Error);
  EXPECT_TRUE(parse_resource_file("").empty());
}

TEST(PciNames, LooksUpPciIds) {
  PciNames names;
  EXPECT_EQ(names.vendor(0x8086), "Intel Corporation");
  EXPECT_EQ(names.device(0x1b36, 0x0010), "QEMU NVM Express Controller");
  EXPECT_EQ(names.class_name(0x010802), "Non-Volatile memory controller");
  EXPECT_EQ(names.vendor(0x0002), "");  // not in pci.ids
}

TEST(PciIds, Formatting) {
  EXPECT_EQ(id_hex(0x1b36), "1b36");
  EXPECT_EQ(id_hex(0x10), "0010");
  EXPECT_EQ(class_hex(0x010802), "0108");
}

}  // namespace
}  // namespace vfiokit::pci

namespace vfiokit::iommu {
namespace {

TEST(IommuGroup, ReadsMembers) {
  const IommuGroup group = read_iommu_group(test::fixture_sysfs("gpu-audio-group"), 1);
  ASSERT_EQ(group.devices.size(), 3u);
  EXPECT_EQ(group.devices[0].to_string(), "0000:00:01.0");
  EXPECT_EQ(group.devices[2].to_string(), "0000:01:00.1");
  EXPECT_THROW(read_iommu_group(test::fixture_sysfs("gpu-audio-group"), 77), Error);
}

TEST(IommuGroup, VfioDriverNames) {
  for (const char* driver :
       {"vfio-pci", "mlx5_vfio_pci", "hisi_acc-vfio-pci", "nvgrace-gpu-vfio-pci"}) {
    EXPECT_TRUE(is_vfio_driver(driver)) << driver;
  }
  for (const char* driver : {"nvme", "pci-stub", "vfio", "pcieport"}) {
    EXPECT_FALSE(is_vfio_driver(driver)) << driver;
  }
  EXPECT_TRUE(driver_keeps_group_viable("pci-stub", false));
  EXPECT_TRUE(driver_keeps_group_viable("pcieport", true));
  EXPECT_FALSE(driver_keeps_group_viable("pcieport", false));
  EXPECT_FALSE(driver_keeps_group_viable("shpchp", true));
}

TEST(IommuGroup, BlockersAreTheEndpointsOnHostDrivers) {
  const HostPaths host = test::fixture_sysfs("gpu-audio-group");
  std::vector<pci::PciDevice> members;
  for (const auto& bdf : read_iommu_group(host, 1).devices) {
    members.push_back(pci::read_pci_device(host, bdf));
  }
  const auto blockers = group_blockers(members);
  ASSERT_EQ(blockers.size(), 2u);  // the root port on pcieport is fine
  EXPECT_EQ(blockers[0].driver, "nouveau");
  EXPECT_EQ(blockers[1].driver, "snd_hda_intel");
  for (auto& member : members) {
    if (!member.is_bridge()) member.driver = "vfio-pci";
  }
  EXPECT_TRUE(group_blockers(members).empty());
}

}  // namespace
}  // namespace vfiokit::iommu

namespace vfiokit::pci {
namespace {

TEST(PciDevice, HeaderDepthReadsOnlyTheHeader) {
  const PciDevice d =
      read_pci_device(test::fixture_sysfs("rig"), *parse_bdf("0000:00:02.0"), ConfigDepth::header);
  EXPECT_EQ(d.config.size, 64u);
  ASSERT_TRUE(d.config.header);
  EXPECT_EQ(d.config.header->vendor_id, 0x1b36);
  EXPECT_TRUE(d.config.capabilities.empty());
  EXPECT_FALSE(d.config.msix);
  EXPECT_TRUE(d.config.error.empty());
  const PciDevice bridge = read_pci_device(test::fixture_sysfs("gpu-audio-group"),
                                           *parse_bdf("0000:00:01.0"), ConfigDepth::header);
  EXPECT_TRUE(bridge.is_bridge());
}

}  // namespace
}  // namespace vfiokit::pci
