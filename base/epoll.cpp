#include "vfiokit/base/epoll.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>

#include "vfiokit/base/error.h"

namespace vfiokit {

EpollWaiter::EpollWaiter() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_) {
    throw Error::from_last_errno("epoll_create1");
  }
}

void EpollWaiter::add(int fd, std::uint64_t token) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = token;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    throw Error::from_last_errno("epoll_ctl add").with("fd", std::to_string(fd));
  }
}

void EpollWaiter::remove(int fd) {
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr) != 0) {
    throw Error::from_last_errno("epoll_ctl del").with("fd", std::to_string(fd));
  }
}

std::vector<std::uint64_t> EpollWaiter::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  epoll_event events[64];
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int n = ::epoll_wait(epoll_.get(), events, 64,
                               static_cast<int>(std::max<long long>(left.count(), 0)));
    if (n < 0) {
      const int err = errno;
      if (err == EINTR) continue;
      throw Error::from_errno(err, "epoll_wait");
    }
    std::vector<std::uint64_t> ready;
    for (int i = 0; i < n; ++i) ready.push_back(events[i].data.u64);
    return ready;
  }
}

}  // namespace vfiokit
