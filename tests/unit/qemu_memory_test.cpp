// How much guest RAM a QEMU command line can give its guest: what --run-as raises QEMU's
// memlock limit to, since VFIO pins every page of it.
#include <gtest/gtest.h>

#include "vfiokit/vmm/qemu_command.h"

namespace vfiokit::vmm {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

TEST(QemuMemory, ReadsMAsQemuDoes) {
  EXPECT_EQ(guest_memory_bytes({"-M", "q35"}), 128 * kMiB);  // QEMU's default
  EXPECT_EQ(guest_memory_bytes({"-m", "512"}), 512 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "8G"}), 8192 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "8g"}), 8192 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "262144K"}), 256 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "1T"}), kMiB * kMiB);
  // Memory that can be hot-plugged up to maxmem is pinned when it comes: the larger counts.
  EXPECT_EQ(guest_memory_bytes({"-m", "size=4G,slots=4,maxmem=16G"}), 16384 * kMiB);
  EXPECT_EQ(guest_memory_bytes({"-m", "size=2G"}), 2048 * kMiB);
  // The last -m wins.
  EXPECT_EQ(guest_memory_bytes({"-m", "1G", "-accel", "kvm", "-m", "2G"}), 2048 * kMiB);
}

TEST(QemuMemory, WhatQemuWouldRefuseIsNotGuessed) {
  EXPECT_FALSE(guest_memory_bytes({"-m", "lots"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "1.5G"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "8Q"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "size=4G,colour=blue"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", "99999999999999999T"}));
  EXPECT_FALSE(guest_memory_bytes({"-m", ""}));
}

}  // namespace
}  // namespace vfiokit::vmm
