// Proves the rig itself: the devices are there, each in an IOMMU group, VFIO and KVM are usable,
// and nvme starts on its kernel driver (so there is a real original driver to restore).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/hil/rig_support.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::hil {
namespace {

const std::filesystem::path kDevices = "/sys/bus/pci/devices";

bool is_char_device(const char* path) {
  struct stat st {};
  return ::stat(path, &st) == 0 && S_ISCHR(st.st_mode);
}

TEST(Rig, EduAndNvmeEachSitInTheirOwnIommuGroup) {
  VFIOKIT_REQUIRE_RIG();
  const auto edu = find_pci_function(kEduVendor, kEduDevice);
  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(edu) << "edu (1234:11e8) is not on the rig's PCI bus";
  ASSERT_TRUE(nvme) << "nvme (1b36:0010) is not on the rig's PCI bus";
  const auto edu_group = read_link_name(kDevices / *edu / "iommu_group");
  const auto nvme_group = read_link_name(kDevices / *nvme / "iommu_group");
  ASSERT_TRUE(edu_group) << *edu << " has no iommu_group link";
  ASSERT_TRUE(nvme_group) << *nvme << " has no iommu_group link";
  EXPECT_NE(*edu_group, *nvme_group);
  EXPECT_EQ(list_dir("/sys/kernel/iommu_groups/" + *edu_group + "/devices"),
            std::vector<std::string>{*edu});
  EXPECT_EQ(list_dir("/sys/kernel/iommu_groups/" + *nvme_group + "/devices"),
            std::vector<std::string>{*nvme});
}

TEST(Rig, E1000eIsPresent) {
  VFIOKIT_REQUIRE_RIG();
  EXPECT_TRUE(find_pci_function(kE1000eVendor, kE1000eDevice));
}

TEST(Rig, VfioContainerAndKvmNodesExist) {
  VFIOKIT_REQUIRE_RIG();
  EXPECT_TRUE(is_char_device("/dev/vfio/vfio"));
  EXPECT_TRUE(is_char_device("/dev/kvm"));
}

TEST(Rig, NvmeStartsOnTheKernelNvmeDriverWithItsDisk) {
  VFIOKIT_REQUIRE_RIG();
  const auto nvme = find_pci_function(kNvmeVendor, kNvmeDevice);
  ASSERT_TRUE(nvme);
  EXPECT_EQ(read_link_name(kDevices / *nvme / "driver"), "nvme");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/nvme0n1", &st), 0) << "the nvme driver did not create /dev/nvme0n1";
  EXPECT_TRUE(S_ISBLK(st.st_mode));
}

TEST(Rig, InterruptRemappingIsActive) {
  VFIOKIT_REQUIRE_RIG();
  EXPECT_NE(read_file("/proc/interrupts").find(" IR-"), std::string::npos)
      << "no remapped interrupt chips: QEMU's intel-iommu needs intremap=on";
}

}  // namespace
}  // namespace vfiokit::hil
