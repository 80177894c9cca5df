// Typed KVM ioctls (<linux/kvm.h>).
#pragma once

#include <linux/kvm.h>

#include "base/ioctl.h"

namespace vfiokit::kvm_uapi {

// KVM_API_VERSION: every kernel since 2.6.22 answers 12; anything else is not a usable KVM.
inline constexpr int kExpectedApiVersion = 12;
inline constexpr IoctlNone kGetApiVersion = VFIOKIT_IOCTL_NONE(KVM_GET_API_VERSION);

}  // namespace vfiokit::kvm_uapi
