// Pins the numeric ioctl codes vfiokit sends, so a header or macro mistake cannot change them
// silently. The values are the kernel's ABI and never change: VFIO ioctls are _IO(';', 100 + n).
#include <gtest/gtest.h>

#include "iommu/vfio_uapi.h"
#include "kvm/uapi.h"
#include "vfio/uapi.h"

namespace vfiokit {
namespace {

TEST(UapiCodes, VfioContainerAndGroup) {
  EXPECT_EQ(vfio_uapi::kGetApiVersion.code, 0x3b64u);
  EXPECT_EQ(vfio_uapi::kGetApiVersion.name, "VFIO_GET_API_VERSION");
  EXPECT_EQ(vfio_uapi::kCheckExtension.code, 0x3b65u);
  EXPECT_EQ(vfio_uapi::kSetIommu.code, 0x3b66u);
  EXPECT_EQ(vfio_uapi::kGroupGetStatus.code, 0x3b67u);
  EXPECT_EQ(vfio_uapi::kGroupSetContainer.code, 0x3b68u);
  EXPECT_EQ(vfio_uapi::kGroupUnsetContainer.code, 0x3b69u);
  EXPECT_EQ(vfio_uapi::kGroupGetDeviceFd.code, 0x3b6au);
  EXPECT_EQ(vfio_uapi::kIommuGetInfo.code, 0x3b70u);
  EXPECT_EQ(vfio_uapi::kIommuMapDma.code, 0x3b71u);
  EXPECT_EQ(vfio_uapi::kIommuUnmapDma.code, 0x3b72u);
  EXPECT_EQ(vfio_uapi::kIommuMapDma.name, "VFIO_IOMMU_MAP_DMA");
}

TEST(UapiCodes, VfioDevice) {
  EXPECT_EQ(vfio_uapi::kDeviceGetInfo.code, 0x3b6bu);
  EXPECT_EQ(vfio_uapi::kDeviceGetRegionInfo.code, 0x3b6cu);
  EXPECT_EQ(vfio_uapi::kDeviceGetIrqInfo.code, 0x3b6du);
  EXPECT_EQ(vfio_uapi::kDeviceSetIrqs.code, 0x3b6eu);
  EXPECT_EQ(vfio_uapi::kDeviceReset.code, 0x3b6fu);
  EXPECT_EQ(vfio_uapi::kDeviceGetPciHotResetInfo.code, 0x3b70u);
  EXPECT_EQ(vfio_uapi::kDeviceSetIrqs.name, "VFIO_DEVICE_SET_IRQS");
}

TEST(UapiCodes, Kvm) {
  EXPECT_EQ(kvm_uapi::kGetApiVersion.code, 0xae00u);
  EXPECT_EQ(kvm_uapi::kGetApiVersion.name, "KVM_GET_API_VERSION");
  EXPECT_EQ(kvm_uapi::kGetMpState.code, 0x8004ae98u);
  EXPECT_EQ(kvm_uapi::kGetMpState.name, "KVM_GET_MP_STATE");
}

}  // namespace
}  // namespace vfiokit
