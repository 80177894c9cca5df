// Pins the numeric ioctl codes vfiokit sends, so a header or macro mistake cannot change them
// silently. The values are the kernel's ABI and never change: VFIO ioctls are _IO(';', 100 + n).
#include <gtest/gtest.h>

#include "vfiokit/iommu/vfio_uapi.h"
#include "vfiokit/kvm/uapi.h"
#include "vfiokit/vfio/uapi.h"

namespace vfiokit {
namespace {

TEST(UapiCodes, VfioContainerAndGroup) {
  EXPECT_EQ(iommu::uapi::kGetApiVersion.code, 0x3b64u);
  EXPECT_EQ(iommu::uapi::kGetApiVersion.name, "VFIO_GET_API_VERSION");
  EXPECT_EQ(iommu::uapi::kCheckExtension.code, 0x3b65u);
  EXPECT_EQ(iommu::uapi::kSetIommu.code, 0x3b66u);
  EXPECT_EQ(iommu::uapi::kGroupGetStatus.code, 0x3b67u);
  EXPECT_EQ(iommu::uapi::kGroupSetContainer.code, 0x3b68u);
  EXPECT_EQ(iommu::uapi::kGroupUnsetContainer.code, 0x3b69u);
  EXPECT_EQ(iommu::uapi::kGroupGetDeviceFd.code, 0x3b6au);
  EXPECT_EQ(iommu::uapi::kIommuGetInfo.code, 0x3b70u);
  EXPECT_EQ(iommu::uapi::kIommuMapDma.code, 0x3b71u);
  EXPECT_EQ(iommu::uapi::kIommuUnmapDma.code, 0x3b72u);
  EXPECT_EQ(iommu::uapi::kIommuMapDma.name, "VFIO_IOMMU_MAP_DMA");
}

// Type1 dirty page tracking (issue 14): _IO(';', 100 + 17), the size not encoded.
TEST(UapiCodes, VfioDirtyPages) {
  EXPECT_EQ(iommu::uapi::kIommuDirtyPages.code, 0x3b75u);
  EXPECT_EQ(iommu::uapi::kIommuDirtyPages.name, "VFIO_IOMMU_DIRTY_PAGES");
  EXPECT_EQ(iommu::uapi::kDirtyPagesHeaderSize, 8u);
  EXPECT_EQ(iommu::uapi::kDirtyPagesGetSize, 48u);
}

TEST(UapiCodes, VfioDevice) {
  EXPECT_EQ(vfio::uapi::kDeviceGetInfo.code, 0x3b6bu);
  EXPECT_EQ(vfio::uapi::kDeviceGetRegionInfo.code, 0x3b6cu);
  EXPECT_EQ(vfio::uapi::kDeviceGetIrqInfo.code, 0x3b6du);
  EXPECT_EQ(vfio::uapi::kDeviceSetIrqs.code, 0x3b6eu);
  EXPECT_EQ(vfio::uapi::kDeviceReset.code, 0x3b6fu);
  EXPECT_EQ(vfio::uapi::kDeviceGetPciHotResetInfo.code, 0x3b70u);
  EXPECT_EQ(vfio::uapi::kDeviceSetIrqs.name, "VFIO_DEVICE_SET_IRQS");
}

TEST(UapiCodes, Kvm) {
  using namespace kvm::uapi;
  EXPECT_EQ(kGetApiVersion.code, 0xae00u);
  EXPECT_EQ(kGetApiVersion.name, "KVM_GET_API_VERSION");
  EXPECT_EQ(kCreateVm.code, 0xae01u);
  EXPECT_EQ(kCheckExtension.code, 0xae03u);
  EXPECT_EQ(kGetVcpuMmapSize.code, 0xae04u);
  EXPECT_EQ(kCreateVcpu.code, 0xae41u);
  EXPECT_EQ(kSetUserMemoryRegion.code, 0x4020ae46u);
  EXPECT_EQ(kCreateIrqchip.code, 0xae60u);
  EXPECT_EQ(kSetTssAddr.code, 0xae47u);
  // The kernel's (C) value; the 6.1 header's macro gives 0x4010ae6a under C++ (kvm/uapi.h).
  EXPECT_EQ(kSetGsiRouting.code, 0x4008ae6au);
  EXPECT_EQ(kIrqfd.code, 0x4020ae76u);  // 0x20: a 32-byte struct kvm_irqfd
  EXPECT_EQ(kSignalMsi.code, 0x4020aea5u);
  EXPECT_EQ(kRun.code, 0xae80u);
  EXPECT_EQ(kGetRegs.code, 0x8090ae81u);
  EXPECT_EQ(kSetRegs.code, 0x4090ae82u);
  EXPECT_EQ(kGetSregs.code, 0x8138ae83u);
  EXPECT_EQ(kSetSregs.code, 0x4138ae84u);
  EXPECT_EQ(kGetMpState.code, 0x8004ae98u);
  EXPECT_EQ(kGetMpState.name, "KVM_GET_MP_STATE");
  EXPECT_EQ(kGetStatsFd.code, 0xaeceu);
  EXPECT_EQ(kGetLapic.code, 0x8400ae8eu);
  EXPECT_EQ(kGetSupportedCpuid.code, 0xc008ae05u);
  EXPECT_EQ(kGetSupportedCpuid.name, "KVM_GET_SUPPORTED_CPUID");
  EXPECT_EQ(kSetCpuid2.code, 0x4008ae90u);
  // Dirty tracking (kvm/dirty_tracker.h).
  EXPECT_EQ(kEnableCap.code, 0x4068aea3u);  // 0x68: a 104-byte struct kvm_enable_cap
  EXPECT_EQ(kEnableCap.name, "KVM_ENABLE_CAP");
  EXPECT_EQ(kGetDirtyLog.code, 0x4010ae42u);
  EXPECT_EQ(kClearDirtyLog.code, 0xc018aec0u);
  EXPECT_EQ(kClearDirtyLog.name, "KVM_CLEAR_DIRTY_LOG");
  EXPECT_EQ(kResetDirtyRings.code, 0xaec7u);
  // In-kernel devices (arm64's vGICv3 and ITS).
  EXPECT_EQ(kCreateDevice.code, 0xc00caee0u);  // 0x0c: a 12-byte struct kvm_create_device
  EXPECT_EQ(kSetDeviceAttr.code, 0x4018aee1u);
  EXPECT_EQ(kSetDeviceAttr.name, "KVM_SET_DEVICE_ATTR");
}

#if defined(__aarch64__)
TEST(UapiCodes, KvmArm64) {
  using namespace kvm::uapi;
  EXPECT_EQ(kArmVcpuInit.code, 0x4020aeaeu);
  EXPECT_EQ(kArmPreferredTarget.code, 0x8020aeafu);
  EXPECT_EQ(kSetOneReg.code, 0x4010aeacu);
  EXPECT_EQ(kGetOneReg.code, 0x4010aeabu);
  EXPECT_EQ(kArmVcpuInit.name, "KVM_ARM_VCPU_INIT");
}
#endif

}  // namespace
}  // namespace vfiokit
