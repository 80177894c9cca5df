#include "bind/usage.h"

#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"

namespace vfiokit::bind {
namespace {

TEST(Usage, ParsesMountinfo) {
  const auto mounts = parse_mountinfo(
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
      "29 1 253:0 / / rw,relatime - ext4 /dev/mapper/vg-root rw\n"
      "short line\n\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].device_number, "98:0");
  EXPECT_EQ(mounts[0].mount_point, "/mnt2");
  EXPECT_EQ(mounts[0].source, "/dev/root");
  EXPECT_EQ(mounts[1].source, "/dev/mapper/vg-root");
}

TEST(Usage, ParsesRoutesAndSkipsAutomaticIpv6Ones) {
  EXPECT_EQ(parse_ipv4_route_interfaces("Iface\tDestination\tGateway\n"
                                        "eth1\t00000000\t0101A8C0\t0003\n"
                                        "eth1\t0001A8C0\t00000000\t0001\n"
                                        "wlan0\t0002A8C0\t00000000\t0001\n"),
            (std::vector<std::string>{"eth1", "wlan0"}));
  const std::string zeros(32, '0');
  auto route = [&](const std::string& destination, const std::string& iface) {
    return destination + " 40 " + zeros + " 00 " + zeros + " 00000100 00000001 00000000 00000001 " +
           iface + "\n";
  };
  EXPECT_EQ(parse_ipv6_route_interfaces(route("fe800000000000000000000000000000", "eth0") +
                                        route("ff000000000000000000000000000000", "eth0") +
                                        route("20010db8000000000000000000000000", "eth1") +
                                        route("00000000000000000000000000000001", "lo")),
            std::vector<std::string>{"eth1"});
}

TEST(Usage, ParsesSwaps) {
  EXPECT_EQ(
      parse_swap_devices("Filename Type Size Used Priority\n/dev/nvme0n1p3 partition 1 0 -2\n"),
      std::vector<std::string>{"/dev/nvme0n1p3"});
}

TEST(Usage, MountedPartitionAndHeldPartitionOfAnNvme) {
  const DeviceUsage usage =
      probe_device_usage(test::fixture_sysfs("mounted-disk"), *pci::parse_bdf("0000:04:00.0"));
  EXPECT_TRUE(usage.net.empty());
  ASSERT_EQ(usage.block.size(), 3u);  // nvme0n1 and its two partitions
  const auto& disk = usage.block[0];
  EXPECT_EQ(disk.name, "nvme0n1");
  EXPECT_FALSE(disk.in_use());
  const auto& efi = usage.block[1];
  EXPECT_EQ(efi.mount_points, std::vector<std::string>{"/boot/efi"});
  EXPECT_EQ(efi.describe(), "block device nvme0n1p1 is mounted on /boot/efi");
  const auto& lvm = usage.block[2];
  EXPECT_EQ(lvm.holders, std::vector<std::string>{"dm-0"});
  EXPECT_TRUE(lvm.in_use());
}

TEST(Usage, TheIdleNvmeNextToItIsIdle) {
  const DeviceUsage usage =
      probe_device_usage(test::fixture_sysfs("mounted-disk"), *pci::parse_bdf("0000:05:00.0"));
  ASSERT_EQ(usage.block.size(), 1u);
  EXPECT_EQ(usage.block[0].name, "nvme1n1");
  EXPECT_FALSE(usage.block[0].in_use());
}

TEST(Usage, NetworkInterfacesUpRoutedOrEnslaved) {
  const HostPaths host = test::fixture_sysfs("sriov-pf");
  const DeviceUsage port0 = probe_device_usage(host, *pci::parse_bdf("0000:03:00.0"));
  ASSERT_EQ(port0.net.size(), 1u);
  EXPECT_EQ(port0.net[0].describe(),
            "network interface eth1 is up, carries IPv4 routes, carries IPv6 routes");
  const DeviceUsage port1 = probe_device_usage(host, *pci::parse_bdf("0000:03:00.1"));
  ASSERT_EQ(port1.net.size(), 1u);
  EXPECT_FALSE(port1.net[0].up);
  EXPECT_FALSE(port1.net[0].ipv6_routes);  // only a link-local route
  EXPECT_EQ(port1.net[0].master, "bond0");
  EXPECT_TRUE(port1.net[0].in_use());
  EXPECT_TRUE(probe_device_usage(host, *pci::parse_bdf("0000:03:02.0")).net.empty());
}

TEST(Usage, VfioGroupHoldersFromProcFdLinks) {
  const HostPaths host = test::fixture_sysfs("vfio-in-use");
  const auto holders = find_vfio_group_holders(host, 11, 1);
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].pid, 4242);
  EXPECT_EQ(holders[0].command, "qemu-system-x86");
  EXPECT_TRUE(find_vfio_group_holders(host, 11, 4242).empty());  // ourselves
  EXPECT_TRUE(find_vfio_group_holders(host, 12, 1).empty());
}

}  // namespace
}  // namespace vfiokit::bind
