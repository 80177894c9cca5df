// Typed VFIO container and group ioctls (<linux/vfio.h>). Device ioctls live in vfio/uapi.h.
#pragma once

#include <linux/vfio.h>

#include "base/ioctl.h"

namespace vfiokit::vfio_uapi {

inline constexpr IoctlNone kGetApiVersion = VFIOKIT_IOCTL_NONE(VFIO_GET_API_VERSION);
// The argument is the extension number itself (VFIO_TYPE1v2_IOMMU, ...), passed by value.
inline constexpr IoctlValue<unsigned long> kCheckExtension =
    VFIOKIT_IOCTL_VALUE(unsigned long, VFIO_CHECK_EXTENSION);

}  // namespace vfiokit::vfio_uapi
