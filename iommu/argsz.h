// VFIO's variable-size replies (VFIO_IOMMU_GET_INFO, VFIO_DEVICE_GET_REGION_INFO, ...): the
// caller says in argsz how big its buffer is; when the capabilities do not fit, the kernel fills
// what it can and raises argsz to the size it needs, and the caller asks again with room.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace vfiokit::iommu {

// Calls `ask` with a zeroed buffer of `initial` bytes (argsz is the caller's to set from the
// span's size); `ask` returns the argsz the kernel wrote back. Grows the buffer and asks again
// while the kernel wants more, up to `attempts` times, and returns the buffer the kernel filled
// whole. A kernel that keeps wanting more (the reply grows between calls, or a hostile argsz)
// is an Error naming `what`, never a zero-filled buffer taken for the answer.
std::vector<std::uint8_t> query_with_argsz(
    std::size_t initial, const std::function<std::uint32_t(std::span<std::uint8_t>)>& ask,
    std::string_view what, int attempts = 4);

// Above this an argsz is not a VFIO reply but damage: the largest real ones (sparse mmap areas
// of a GPU BAR) are a few KiB.
inline constexpr std::uint32_t kMaxArgsz = 1u << 20;

}  // namespace vfiokit::iommu
