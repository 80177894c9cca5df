// `launch --qemu --run-as`: who QEMU becomes, the -runas it is given, its locked-memory limit,
// and the group nodes lent to it for the run.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/vmm/qemu_command.h"

namespace vfiokit {
namespace {

// Debian's passwd and group databases always hold nobody (65534) and nogroup (65534).
TEST(RunAs, NamesAndNumbersResolveAsQemuWouldTakeThem) {
  EXPECT_EQ(vmm::resolve_run_as("nobody"), (vmm::RunAs{65534, 65534, "nobody"}));
  EXPECT_EQ(vmm::resolve_run_as("nobody:nogroup"), (vmm::RunAs{65534, 65534, "nobody"}));
  EXPECT_EQ(vmm::resolve_run_as("65534"), (vmm::RunAs{65534, 65534, "nobody"}));
  // Ids without an entry, as in a container's minimal passwd: both must be given.
  EXPECT_EQ(vmm::resolve_run_as("4000123:4000124"), (vmm::RunAs{4000123, 4000124, "4000123"}));
}

TEST(RunAs, WhatCannotBeResolvedIsAUsageErrorThatSaysWhat) {
  const auto message = [](const char* text) {
    try {
      (void)vmm::resolve_run_as(text);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << text;
      return std::string(e.what());
    }
    ADD_FAILURE() << text << " resolved";
    return std::string();
  };
  EXPECT_NE(message("no-such-user-here").find("there is no user 'no-such-user-here'"),
            std::string::npos);
  EXPECT_NE(message("nobody:no-such-group").find("there is no group 'no-such-group'"),
            std::string::npos);
  EXPECT_NE(message("4000123").find("there is no user '4000123'"), std::string::npos);
  EXPECT_NE(message("root").find("root's rights"), std::string::npos);
  EXPECT_NE(message("nobody:root").find("root's rights"), std::string::npos);
  EXPECT_NE(message("0:65534").find("root's rights"), std::string::npos);
  EXPECT_NE(message(":65534").find("wants USER[:GROUP]"), std::string::npos);
  EXPECT_NE(message("nobody:").find("wants USER[:GROUP]"), std::string::npos);
  // (uid_t)-1 means "leave unchanged" to setresuid: never a user.
  EXPECT_NE(message("4294967295:65534").find("there is no user"), std::string::npos);
}

TEST(RunAs, QemuGetsTheNumbersAfterTheDevices) {
  vmm::QemuLaunch launch;
  launch.user_arguments = {"-m", "2G"};
  launch.devices = {{*pci::parse_bdf("0000:01:00.0"), 0x020000, {}}};
  launch.run_as = vmm::RunAs{65534, 65534, "nobody"};
  EXPECT_EQ(vmm::build_qemu_command(launch).arguments,
            (std::vector<std::string>{"qemu-system-x86_64", "-m", "2G", "-device",
                                      "vfio-pci,host=0000:01:00.0", "-runas", "65534:65534"}));
}

TEST(RunAs, TheMemlockLimitCoversGuestRamAndAGibibyte) {
  constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;
  EXPECT_EQ(vmm::run_as_memlock_limit(2 * kGiB), 3 * kGiB);
  EXPECT_EQ(vmm::run_as_memlock_limit(0), kGiB);
  EXPECT_EQ(vmm::run_as_memlock_limit(~std::uint64_t{0} - 5), ~std::uint64_t{0});  // saturates
}

TEST(GroupNodeLease, RefusesWhatIsNotACharacterDevice) {
  test::TempDir dir;
  const auto file = dir.path() / "12";
  std::ofstream(file).put('x');
  EXPECT_THROW(iommu::GroupNodeLease(file, 65534, 65534), Error);
  std::filesystem::create_symlink(file, dir.path() / "13");
  EXPECT_THROW(iommu::GroupNodeLease(dir.path() / "13", 65534, 65534), Error);
  EXPECT_THROW(iommu::GroupNodeLease(dir.path() / "14", 65534, 65534), Error);  // missing
}

TEST(GroupNodeLease, LendsTheNodeForItsLifetimeAndGivesItBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a device node and chown it";
  test::TempDir dir;
  const auto node = dir.path() / "12";
  // A character device like /dev/vfio/12 (the number does not matter: it is never opened).
  ASSERT_EQ(::mknod(node.c_str(), S_IFCHR | 0600, ::makedev(1, 3)), 0);
  ASSERT_EQ(::chown(node.c_str(), 0, 0), 0);
  struct stat st {};
  {
    iommu::GroupNodeLease lease(node, 65534, 65533);
    ASSERT_EQ(::stat(node.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_gid, 65533u);
    iommu::GroupNodeLease moved(std::move(lease));  // only one of them gives it back
  }
  ASSERT_EQ(::stat(node.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  {
    // The node may be gone when the lease ends (the group left vfio-pci): nothing to give back.
    iommu::GroupNodeLease lease(node, 65534, 65534);
    std::filesystem::remove(node);
  }
  EXPECT_FALSE(std::filesystem::exists(node));
}

}  // namespace
}  // namespace vfiokit
