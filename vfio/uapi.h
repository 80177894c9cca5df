// Typed VFIO device ioctls (<linux/vfio.h>), with every struct layout checked against the
// kernel's.
#pragma once

#include <linux/vfio.h>

#include <cstddef>

#include "vfiokit/base/ioctl.h"

namespace vfiokit::vfio::uapi {

inline constexpr IoctlPtr<vfio_device_info> kDeviceGetInfo =
    VFIOKIT_IOCTL_PTR(vfio_device_info, VFIO_DEVICE_GET_INFO);
// Kernel contract: argsz covers the whole buffer; capabilities are written after the struct and
// argsz is raised when they do not fit.
inline constexpr IoctlPtr<vfio_region_info> kDeviceGetRegionInfo =
    VFIOKIT_IOCTL_PTR(vfio_region_info, VFIO_DEVICE_GET_REGION_INFO);
inline constexpr IoctlPtr<vfio_irq_info> kDeviceGetIrqInfo =
    VFIOKIT_IOCTL_PTR(vfio_irq_info, VFIO_DEVICE_GET_IRQ_INFO);
// Kernel contract: argsz = sizeof(vfio_irq_set) + count * (4 per eventfd | 1 per bool | 0).
inline constexpr IoctlPtr<const vfio_irq_set> kDeviceSetIrqs =
    VFIOKIT_IOCTL_PTR(const vfio_irq_set, VFIO_DEVICE_SET_IRQS);
inline constexpr IoctlNone kDeviceReset = VFIOKIT_IOCTL_NONE(VFIO_DEVICE_RESET);
// Kernel contract: argsz covers `count` dependent-device entries; ENOSPC means more are needed
// and `count` says how many.
inline constexpr IoctlPtr<vfio_pci_hot_reset_info> kDeviceGetPciHotResetInfo =
    VFIOKIT_IOCTL_PTR(vfio_pci_hot_reset_info, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);

static_assert(sizeof(vfio_device_info) == 20);
static_assert(offsetof(vfio_device_info, num_regions) == 8);
static_assert(offsetof(vfio_device_info, num_irqs) == 12);
static_assert(offsetof(vfio_device_info, cap_offset) == 16);
static_assert(sizeof(vfio_region_info) == 32);
static_assert(offsetof(vfio_region_info, index) == 8);
static_assert(offsetof(vfio_region_info, cap_offset) == 12);
static_assert(offsetof(vfio_region_info, size) == 16);
static_assert(offsetof(vfio_region_info, offset) == 24);
static_assert(sizeof(vfio_region_sparse_mmap_area) == 16);
static_assert(sizeof(vfio_region_info_cap_sparse_mmap) == 16);
static_assert(offsetof(vfio_region_info_cap_sparse_mmap, nr_areas) == 8);
static_assert(sizeof(vfio_region_info_cap_type) == 16);
static_assert(offsetof(vfio_region_info_cap_type, type) == 8);
static_assert(offsetof(vfio_region_info_cap_type, subtype) == 12);
static_assert(sizeof(vfio_irq_info) == 16);
static_assert(offsetof(vfio_irq_info, index) == 8);
static_assert(offsetof(vfio_irq_info, count) == 12);
// VFIO_DEVICE_SET_IRQS: a 20-byte header, then the data (4 bytes per eventfd).
static_assert(sizeof(vfio_irq_set) == 20);
static_assert(offsetof(vfio_irq_set, index) == 8);
static_assert(offsetof(vfio_irq_set, start) == 12);
static_assert(offsetof(vfio_irq_set, count) == 16);
static_assert(offsetof(vfio_irq_set, data) == 20);
static_assert(sizeof(vfio_pci_dependent_device) == 8);
static_assert(sizeof(vfio_pci_hot_reset_info) == 12);

// The fixed region and IRQ indexes of a vfio-pci device.
static_assert(VFIO_PCI_BAR0_REGION_INDEX == 0 && VFIO_PCI_BAR5_REGION_INDEX == 5);
static_assert(VFIO_PCI_ROM_REGION_INDEX == 6 && VFIO_PCI_CONFIG_REGION_INDEX == 7);
static_assert(VFIO_PCI_INTX_IRQ_INDEX == 0 && VFIO_PCI_MSI_IRQ_INDEX == 1 &&
              VFIO_PCI_MSIX_IRQ_INDEX == 2);

}  // namespace vfiokit::vfio::uapi
