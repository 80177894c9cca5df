// A move-only eventfd: the kernel's counter that VFIO and KVM signal interrupts through.
#pragma once

#include <cstdint>

#include "vfiokit/base/unique_fd.h"

namespace vfiokit {

class EventFd {
 public:
  // Non-blocking and close-on-exec; throws Error if the kernel refuses (EMFILE...).
  static EventFd create();

  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  // Reads and resets the counter: how many signals arrived since the last read (0 if none).
  std::uint64_t consume();
  // Adds `count` to the counter, waking anyone waiting on it.
  void signal(std::uint64_t count = 1);

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace vfiokit
