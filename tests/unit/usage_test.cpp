#include "vfiokit/bind/usage.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "vfiokit/base/fs.h"

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
  const std::vector<pci::Bdf> members{*pci::parse_bdf("0000:06:00.0")};
  const auto holders = find_vfio_holders(host, 11, members, 1);
  ASSERT_EQ(holders.size(), 1u);
  EXPECT_EQ(holders[0].pid, 4242);
  EXPECT_EQ(holders[0].command, "qemu-system-x86");
  EXPECT_TRUE(holders[0].certain);
  EXPECT_EQ(holders[0].describe(), "/dev/vfio/11 (qemu-system-x86, pid 4242)");
  EXPECT_TRUE(find_vfio_holders(host, 11, members, 4242).empty());  // ourselves
  EXPECT_TRUE(find_vfio_holders(host, 12, {}, 1).empty());
}

// Processes that closed the group node but keep a device: through a device fd the kernel names
// in fdinfo, or through the device's cdev. /dev/iommu alone holds nothing.
TEST(Usage, VfioDeviceFdsAndCdevsHoldTheirGroups) {
  const HostPaths host = test::fixture_sysfs("vfio-device-fds");
  const std::vector<pci::Bdf> first{*pci::parse_bdf("0000:08:00.0")};
  const std::vector<pci::Bdf> second{*pci::parse_bdf("0000:09:00.0")};
  const auto by_fd = find_vfio_holders(host, 12, first, 1);
  ASSERT_EQ(by_fd.size(), 1u);
  EXPECT_EQ(by_fd[0].describe(), "a VFIO device fd for 0000:08:00.0 (cloud-hyperviso, pid 5001)");
  EXPECT_TRUE(by_fd[0].certain);
  const auto by_cdev = find_vfio_holders(host, 13, second, 1);
  ASSERT_EQ(by_cdev.size(), 1u);
  EXPECT_EQ(by_cdev[0].describe(),
            "/dev/vfio/devices/vfio1 (0000:09:00.0) (qemu-system-x86, pid 5002)");
}

TEST(Usage, AVfioDeviceFdTheKernelDoesNotNameMayHoldAnyGroup) {
  test::FixtureCopy copy(test::fixture("sysfs/vfio-device-fds"));
  const std::filesystem::path proc = copy.paths().proc / "5004";
  std::filesystem::create_directories(proc / "fd");
  std::filesystem::create_directories(proc / "fdinfo");
  std::filesystem::create_symlink("anon_inode:[vfio-device]", proc / "fd/4");
  write_file_durable(proc / "fdinfo/4", "pos:\t0\nflags:\t02000002\n");
  write_file_durable(proc / "comm", "old-vmm\n");
  for (const char* device : {"0000:08:00.0", "0000:09:00.0"}) {
    const std::vector<pci::Bdf> members{*pci::parse_bdf(device)};
    const auto holders = find_vfio_holders(copy.paths(), 12, members, 1);
    const auto unnamed = std::find_if(holders.begin(), holders.end(),
                                      [](const VfioHolder& h) { return h.pid == 5004; });
    ASSERT_NE(unnamed, holders.end()) << device;
    EXPECT_FALSE(unnamed->certain);
    EXPECT_EQ(unnamed->what, "a VFIO device fd the kernel does not name");
  }
}

TEST(Usage, FdinfoNamesTheDeviceOfAVfioDeviceFd) {
  EXPECT_EQ(vfio_device_of_fdinfo("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\n"
                                  "vfio-device-syspath: /sys/devices/pci0000:00/0000:00:02.0\n"),
            pci::parse_bdf("0000:00:02.0"));
  EXPECT_FALSE(vfio_device_of_fdinfo("pos:\t0\nflags:\t02000002\n"));
  EXPECT_FALSE(vfio_device_of_fdinfo("vfio-device-syspath: /sys/devices/virtual/mdev0\n"));
}

TEST(Usage, ProcessStateComesAfterTheCommandWhateverItHolds) {
  EXPECT_EQ(parse_process_state("1234 (vfiokit) D 1 1234 1234 0 -1"), 'D');
  EXPECT_EQ(parse_process_state("1234 (a) b) (c) S 1 1234"), 'S');
  EXPECT_FALSE(parse_process_state("1234 (vfiokit"));
  EXPECT_FALSE(parse_process_state(""));
  const auto self = read_process("/proc", ::getpid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->state, 'R');
  EXPECT_FALSE(read_process("/proc", 0x7ffffffe));
}

}  // namespace
}  // namespace vfiokit::bind
