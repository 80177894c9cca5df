// Pins the numeric ioctl codes vfiokit sends, so a header or macro mistake cannot change them
// silently. The values are the kernel's ABI and never change.
#include <gtest/gtest.h>

#include "iommu/vfio_uapi.h"
#include "kvm/uapi.h"

namespace vfiokit {
namespace {

TEST(UapiCodes, VfioContainer) {
  EXPECT_EQ(vfio_uapi::kGetApiVersion.code, 0x3b64u);
  EXPECT_EQ(vfio_uapi::kGetApiVersion.name, "VFIO_GET_API_VERSION");
  EXPECT_EQ(vfio_uapi::kCheckExtension.code, 0x3b65u);
}

TEST(UapiCodes, Kvm) {
  EXPECT_EQ(kvm_uapi::kGetApiVersion.code, 0xae00u);
  EXPECT_EQ(kvm_uapi::kGetApiVersion.name, "KVM_GET_API_VERSION");
}

}  // namespace
}  // namespace vfiokit
