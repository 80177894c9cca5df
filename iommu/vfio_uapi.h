// Typed VFIO container, group and type1 IOMMU ioctls (<linux/vfio.h>), with every struct
// layout checked against the kernel's. Device ioctls live in vfio/uapi.h.
#pragma once

#include <linux/vfio.h>

#include <cstddef>
#include <cstdint>

#include "vfiokit/base/ioctl.h"

namespace vfiokit::iommu::uapi {

inline constexpr IoctlNone kGetApiVersion = VFIOKIT_IOCTL_NONE(VFIO_GET_API_VERSION);
// The argument is the extension number itself (VFIO_TYPE1v2_IOMMU, ...), passed by value.
inline constexpr IoctlValue<unsigned long> kCheckExtension =
    VFIOKIT_IOCTL_VALUE(unsigned long, VFIO_CHECK_EXTENSION);
// The argument is the IOMMU type itself, passed by value.
inline constexpr IoctlValue<unsigned long> kSetIommu =
    VFIOKIT_IOCTL_VALUE(unsigned long, VFIO_SET_IOMMU);

inline constexpr IoctlPtr<vfio_group_status> kGroupGetStatus =
    VFIOKIT_IOCTL_PTR(vfio_group_status, VFIO_GROUP_GET_STATUS);
// Kernel contract: reads one int, the container fd, through the pointer.
inline constexpr IoctlPtr<const std::int32_t> kGroupSetContainer =
    VFIOKIT_IOCTL_PTR(const std::int32_t, VFIO_GROUP_SET_CONTAINER);
inline constexpr IoctlNone kGroupUnsetContainer = VFIOKIT_IOCTL_NONE(VFIO_GROUP_UNSET_CONTAINER);
// Kernel contract: reads a NUL-terminated device name ("0000:00:02.0") through the pointer.
inline constexpr IoctlPtr<const char> kGroupGetDeviceFd =
    VFIOKIT_IOCTL_PTR(const char, VFIO_GROUP_GET_DEVICE_FD);

// Kernel contract: argsz says how much buffer follows; the kernel writes capabilities into it
// and, when argsz is too small for them, raises argsz to the size it needs.
inline constexpr IoctlPtr<vfio_iommu_type1_info> kIommuGetInfo =
    VFIOKIT_IOCTL_PTR(vfio_iommu_type1_info, VFIO_IOMMU_GET_INFO);
inline constexpr IoctlPtr<const vfio_iommu_type1_dma_map> kIommuMapDma =
    VFIOKIT_IOCTL_PTR(const vfio_iommu_type1_dma_map, VFIO_IOMMU_MAP_DMA);
// The kernel writes back in `size` how much it really unmapped.
inline constexpr IoctlPtr<vfio_iommu_type1_dma_unmap> kIommuUnmapDma =
    VFIOKIT_IOCTL_PTR(vfio_iommu_type1_dma_unmap, VFIO_IOMMU_UNMAP_DMA);

// VFIO_IOMMU_DIRTY_PAGES's argument. struct vfio_iommu_type1_dirty_bitmap is {argsz, flags,
// u8 data[]}: a flexible array, so it is never declared (DEVELOPERS.md); this is its header
// with the GET_BITMAP payload after it, at the offset of `data`. START and STOP send only the
// header (argsz 8); GET_BITMAP sends both (argsz 48: the bitmap itself is not counted).
struct DirtyPagesRequest {
  std::uint32_t argsz = 0;
  std::uint32_t flags = 0;
  vfio_iommu_type1_dirty_bitmap_get range{};
};
inline constexpr std::uint32_t kDirtyPagesHeaderSize = 8;
inline constexpr std::uint32_t kDirtyPagesGetSize = sizeof(DirtyPagesRequest);
// _IO without a size: the kernel reads argsz first, then as much as the flag needs. Kernel
// contract: for GET_BITMAP it writes range.bitmap.size bytes at range.bitmap.data.
inline constexpr IoctlPtr<DirtyPagesRequest> kIommuDirtyPages =
    VFIOKIT_IOCTL_PTR(DirtyPagesRequest, VFIO_IOMMU_DIRTY_PAGES);

// The layouts vfiokit relies on, as the kernel defines them.
static_assert(sizeof(vfio_info_cap_header) == 8);
static_assert(offsetof(vfio_info_cap_header, next) == 4);
static_assert(sizeof(vfio_group_status) == 8);
static_assert(offsetof(vfio_iommu_type1_info, iova_pgsizes) == 8);
static_assert(offsetof(vfio_iommu_type1_info, cap_offset) == 16);
static_assert(sizeof(vfio_iommu_type1_info) == 24);
static_assert(sizeof(vfio_iova_range) == 16);
static_assert(sizeof(vfio_iommu_type1_info_cap_iova_range) == 16);
static_assert(offsetof(vfio_iommu_type1_info_cap_iova_range, nr_iovas) == 8);
static_assert(sizeof(vfio_iommu_type1_info_dma_avail) == 12);
static_assert(offsetof(vfio_iommu_type1_info_dma_avail, avail) == 8);
static_assert(sizeof(vfio_iommu_type1_dma_map) == 32);
static_assert(offsetof(vfio_iommu_type1_dma_map, vaddr) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_map, iova) == 16);
static_assert(offsetof(vfio_iommu_type1_dma_map, size) == 24);
static_assert(sizeof(vfio_iommu_type1_dma_unmap) == 24);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, iova) == 8);
static_assert(offsetof(vfio_iommu_type1_dma_unmap, size) == 16);
static_assert(sizeof(vfio_iommu_type1_info_cap_migration) == 32);
static_assert(offsetof(vfio_iommu_type1_info_cap_migration, flags) == 8);
static_assert(offsetof(vfio_iommu_type1_info_cap_migration, pgsize_bitmap) == 16);
static_assert(offsetof(vfio_iommu_type1_info_cap_migration, max_dirty_bitmap_size) == 24);
static_assert(sizeof(vfio_iommu_type1_dirty_bitmap) == 8);
static_assert(offsetof(vfio_iommu_type1_dirty_bitmap, flags) == 4);
static_assert(offsetof(vfio_iommu_type1_dirty_bitmap, data) == 8);
static_assert(sizeof(vfio_bitmap) == 24);
static_assert(offsetof(vfio_bitmap, size) == 8);
static_assert(offsetof(vfio_bitmap, data) == 16);
static_assert(sizeof(vfio_iommu_type1_dirty_bitmap_get) == 40);
static_assert(offsetof(vfio_iommu_type1_dirty_bitmap_get, size) == 8);
static_assert(offsetof(vfio_iommu_type1_dirty_bitmap_get, bitmap) == 16);
static_assert(offsetof(DirtyPagesRequest, flags) == offsetof(vfio_iommu_type1_dirty_bitmap, flags));
static_assert(offsetof(DirtyPagesRequest, range) == offsetof(vfio_iommu_type1_dirty_bitmap, data));
static_assert(sizeof(DirtyPagesRequest) == 48);

}  // namespace vfiokit::iommu::uapi
