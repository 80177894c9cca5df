// Waiting on many file descriptors at once (eventfds of interrupt vectors) with a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "vfiokit/base/unique_fd.h"

namespace vfiokit {

class EpollWaiter {
 public:
  EpollWaiter();

  // Watches `fd` for readability; `token` comes back from wait() when it is ready.
  void add(int fd, std::uint64_t token);
  void remove(int fd);
  // The tokens of the descriptors that became readable, or none when `timeout` passed first.
  // EINTR is retried with the time that is left.
  std::vector<std::uint64_t> wait(std::chrono::milliseconds timeout);

 private:
  UniqueFd epoll_;
};

}  // namespace vfiokit
