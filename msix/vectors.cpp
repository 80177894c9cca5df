#include "vfiokit/msix/vectors.h"

#include <linux/vfio.h>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/vfio/irq_set.h"

namespace vfiokit::msix {

InterruptVectors::InterruptVectors(const vfio::DeviceAccess& device, std::uint32_t index)
    : device_(&device), info_(device.irq_info(index)) {
  if (info_.count == 0 || !info_.eventfd()) {
    throw Error("interrupts", device.bdf().to_string() + " has no " + vfio::irq_index_name(index) +
                                  " vectors to deliver on eventfds")
        .with("bdf", device.bdf().to_string())
        .with("irq_index", vfio::irq_index_name(index));
  }
}

InterruptVectors::~InterruptVectors() {
  if (eventfds_.empty()) return;
  try {
    disable();
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
}

int InterruptVectors::eventfd(std::uint32_t vector) const {
  check_vector(vector, "eventfd of");
  return eventfds_[vector].fd();
}

void InterruptVectors::check_vector(std::uint32_t vector, const char* action) const {
  if (vector >= eventfds_.size()) {
    throw Error("interrupts", std::string(action) + " vector " + std::to_string(vector) + ", but " +
                                  std::to_string(eventfds_.size()) + " are enabled")
        .with("bdf", device_->bdf().to_string())
        .with("irq_index", vfio::irq_index_name(info_.index));
  }
}

void InterruptVectors::set_eventfds(std::uint32_t start, std::uint32_t count) {
  std::vector<std::int32_t> fds;
  for (std::uint32_t v = start; v < start + count; ++v) fds.push_back(eventfds_[v].fd());
  device_->set_irqs(vfio::encode_irq_set(
      info_.index, start, count, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, fds));
}

void InterruptVectors::enable(std::uint32_t count) {
  if (!eventfds_.empty()) {
    throw Error("interrupts", "already enabled; use grow() or disable() first")
        .with("bdf", device_->bdf().to_string());
  }
  grow(count);
}

void InterruptVectors::grow(std::uint32_t count) {
  const auto old = static_cast<std::uint32_t>(eventfds_.size());
  if (count <= old) return;
  if (count > info_.count) {
    throw Error("interrupts", "asked for " + std::to_string(count) + " " +
                                  vfio::irq_index_name(info_.index) + " vectors; the device has " +
                                  std::to_string(info_.count))
        .with("bdf", device_->bdf().to_string());
  }
  for (std::uint32_t v = old; v < count; ++v) {
    eventfds_.push_back(EventFd::create());
    pending_.push_back(0);
    waiter_.add(eventfds_.back().fd(), v);
  }
  const bool reenable = old != 0 && info_.noresize();
  try {
    if (!reenable) {
      set_eventfds(old, count - old);
    } else {
      // vfio-pci takes no vector past the ones enabled (EINVAL): the index goes off, then on
      // again with all of them, the old vectors keeping their eventfds.
      set_none(0, 0, VFIO_IRQ_SET_ACTION_TRIGGER);
      set_eventfds(0, count);
    }
  } catch (...) {
    for (std::uint32_t v = old; v < count; ++v) waiter_.remove(eventfds_[v].fd());
    eventfds_.erase(eventfds_.begin() + old, eventfds_.end());
    pending_.resize(old);
    if (reenable) {
      try {
        set_eventfds(0, old);  // the vectors in use, as they were
      } catch (const Error& e) {
        log::error("{}", e.what());
      }
    }
    throw;
  }
}

void InterruptVectors::set_none(std::uint32_t start, std::uint32_t count, std::uint32_t action) {
  device_->set_irqs(
      vfio::encode_irq_set(info_.index, start, count, VFIO_IRQ_SET_DATA_NONE | action));
}

void InterruptVectors::disable() {
  if (eventfds_.empty()) return;
  set_none(0, 0, VFIO_IRQ_SET_ACTION_TRIGGER);
  for (const auto& fd : eventfds_) waiter_.remove(fd.fd());
  eventfds_.clear();
  pending_.clear();
}

void InterruptVectors::trigger(std::uint32_t vector) {
  check_vector(vector, "trigger");
  set_none(vector, 1, VFIO_IRQ_SET_ACTION_TRIGGER);
}

void InterruptVectors::mask(std::uint32_t vector) {
  check_vector(vector, "mask");
  set_none(vector, 1, VFIO_IRQ_SET_ACTION_MASK);
}

void InterruptVectors::unmask(std::uint32_t vector) {
  check_vector(vector, "unmask");
  set_none(vector, 1, VFIO_IRQ_SET_ACTION_UNMASK);
}

std::uint64_t InterruptVectors::consume(std::uint32_t vector) {
  check_vector(vector, "consume");
  return std::exchange(pending_[vector], 0) + eventfds_[vector].consume();
}

std::vector<FiredVector> InterruptVectors::wait(std::chrono::milliseconds timeout) {
  std::vector<FiredVector> fired;
  for (std::uint32_t v = 0; v < pending_.size(); ++v) {
    if (pending_[v] != 0) fired.push_back({v, std::exchange(pending_[v], 0)});
  }
  if (!fired.empty()) return fired;
  for (std::uint64_t token : waiter_.wait(timeout)) {
    const auto vector = static_cast<std::uint32_t>(token);
    if (const std::uint64_t count = eventfds_[vector].consume()) fired.push_back({vector, count});
  }
  return fired;
}

bool InterruptVectors::wait_for(std::uint32_t vector, std::chrono::milliseconds timeout) {
  check_vector(vector, "wait for");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pending_[vector] != 0 || eventfds_[vector].consume() != 0) {
      pending_[vector] = 0;
      return true;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    for (std::uint64_t token : waiter_.wait(left)) {
      const auto fired = static_cast<std::uint32_t>(token);
      const std::uint64_t count = eventfds_[fired].consume();
      if (fired == vector && count != 0) return true;
      pending_[fired] += count;
    }
  }
}

}  // namespace vfiokit::msix
