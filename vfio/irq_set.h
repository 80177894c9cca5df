// The bytes of a struct vfio_irq_set for VFIO_DEVICE_SET_IRQS: a 20-byte header (argsz, flags,
// index, start, count) followed by the data, 4 bytes per eventfd or 1 per bool. Pure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace vfiokit::vfio {

// Throws Error if `flags` names no data type or several, or if the data does not match it
// (DATA_EVENTFD needs one fd per vector, DATA_BOOL one byte per vector, DATA_NONE none).
std::vector<std::uint8_t> encode_irq_set(std::uint32_t index, std::uint32_t start,
                                         std::uint32_t count, std::uint32_t flags,
                                         std::span<const std::int32_t> eventfds = {},
                                         std::span<const std::uint8_t> bools = {});

}  // namespace vfiokit::vfio
