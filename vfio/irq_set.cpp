#include "vfiokit/vfio/irq_set.h"

#include <linux/vfio.h>

#include <cstring>

#include "vfiokit/base/error.h"

namespace vfiokit::vfio {

std::vector<std::uint8_t> encode_irq_set(std::uint32_t index, std::uint32_t start,
                                         std::uint32_t count, std::uint32_t flags,
                                         std::span<const std::int32_t> eventfds,
                                         std::span<const std::uint8_t> bools) {
  const std::uint32_t data_type = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const std::uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  if (data_type != VFIO_IRQ_SET_DATA_NONE && data_type != VFIO_IRQ_SET_DATA_BOOL &&
      data_type != VFIO_IRQ_SET_DATA_EVENTFD) {
    throw Error("encode vfio_irq_set", "flags must name exactly one data type");
  }
  if (action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK &&
      action != VFIO_IRQ_SET_ACTION_TRIGGER) {
    throw Error("encode vfio_irq_set", "flags must name exactly one action");
  }
  std::size_t data_size = 0;
  if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
    if (eventfds.size() != count) {
      throw Error("encode vfio_irq_set", std::to_string(eventfds.size()) + " eventfds given for " +
                                             std::to_string(count) + " vectors");
    }
    data_size = std::size_t{count} * sizeof(std::int32_t);
  } else if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
    if (bools.size() != count) {
      throw Error("encode vfio_irq_set", std::to_string(bools.size()) + " bools given for " +
                                             std::to_string(count) + " vectors");
    }
    data_size = count;
  } else if (!eventfds.empty() || !bools.empty()) {
    throw Error("encode vfio_irq_set", "DATA_NONE takes no data");
  }
  std::vector<std::uint8_t> bytes(sizeof(vfio_irq_set) + data_size);
  vfio_irq_set header{};
  header.argsz = static_cast<std::uint32_t>(bytes.size());
  header.flags = flags;
  header.index = index;
  header.start = start;
  header.count = count;
  std::memcpy(bytes.data(), &header, sizeof header);
  if (data_type == VFIO_IRQ_SET_DATA_EVENTFD) {
    std::memcpy(bytes.data() + sizeof header, eventfds.data(), data_size);
  } else if (data_type == VFIO_IRQ_SET_DATA_BOOL) {
    std::memcpy(bytes.data() + sizeof header, bools.data(), data_size);
  }
  return bytes;
}

}  // namespace vfiokit::vfio
