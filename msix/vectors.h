// The interrupt vectors of one IRQ index of a VFIO device (INTx, MSI or MSI-X), each delivered
// on its own eventfd, with a waiter for "which vectors fired".
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "vfiokit/base/epoll.h"
#include "vfiokit/base/eventfd.h"
#include "vfiokit/vfio/device.h"

namespace vfiokit::msix {

struct FiredVector {
  std::uint32_t vector = 0;
  std::uint64_t count = 0;  // signals since the last consume
};

class InterruptVectors {
 public:
  // `device` must outlive this. Throws Error if the index has no vectors or no eventfd support.
  InterruptVectors(const vfio::DeviceAccess& device, std::uint32_t index);
  // Disables the vectors before the eventfds close: the kernel must stop signalling them first.
  ~InterruptVectors();
  InterruptVectors(const InterruptVectors&) = delete;
  InterruptVectors& operator=(const InterruptVectors&) = delete;

  [[nodiscard]] const vfio::IrqInfo& info() const noexcept { return info_; }
  [[nodiscard]] std::uint32_t count() const noexcept {
    return static_cast<std::uint32_t>(eventfds_.size());
  }
  [[nodiscard]] int eventfd(std::uint32_t vector) const;

  // Enables vectors 0..count-1, one eventfd each.
  void enable(std::uint32_t count);
  // Enables more vectors without losing the ones in use: where the kernel allows resizing
  // (MSI-X without NORESIZE, Linux 6.5+), only the new vectors are added; otherwise the index
  // is disabled and enabled again, the old vectors with their eventfds (an interrupt in
  // between may be lost).
  void grow(std::uint32_t count);
  void disable();

  // The kernel's loopback: VFIO signals the vector's eventfd as if the device had fired it.
  void trigger(std::uint32_t vector);
  void mask(std::uint32_t vector);
  void unmask(std::uint32_t vector);

  // Reads and resets one vector's counter.
  std::uint64_t consume(std::uint32_t vector);
  // Waits up to `timeout` for any vector; returns those that fired (counters consumed).
  std::vector<FiredVector> wait(std::chrono::milliseconds timeout);
  // Waits until `vector` fires (others' signals are kept for later), or the timeout passes.
  bool wait_for(std::uint32_t vector, std::chrono::milliseconds timeout);

 private:
  void set_eventfds(std::uint32_t start, std::uint32_t count);
  // VFIO_DEVICE_SET_IRQS with DATA_NONE: `action` on vectors start..start+count-1.
  void set_none(std::uint32_t start, std::uint32_t count, std::uint32_t action);
  void check_vector(std::uint32_t vector, const char* action) const;

  const vfio::DeviceAccess* device_;
  vfio::IrqInfo info_;
  // The waiter and the eventfds close after the destructor has disabled the index.
  EpollWaiter waiter_;
  std::vector<EventFd> eventfds_;
  std::vector<std::uint64_t> pending_;  // counts seen by wait_for() for other vectors
};

}  // namespace vfiokit::msix
