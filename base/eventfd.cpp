#include "vfiokit/base/eventfd.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "vfiokit/base/error.h"

namespace vfiokit {

EventFd EventFd::create() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) {
    throw Error::from_last_errno("eventfd");
  }
  return EventFd(std::move(fd));
}

std::uint64_t EventFd::consume() {
  std::uint64_t count = 0;
  const ssize_t n = ::read(fd_.get(), &count, sizeof count);
  if (n == sizeof count) return count;
  const int err = errno;
  if (n < 0 && err == EAGAIN) return 0;
  throw Error::from_errno(err, "read eventfd").with("fd", std::to_string(fd_.get()));
}

void EventFd::signal(std::uint64_t count) {
  if (::write(fd_.get(), &count, sizeof count) != sizeof count) {
    throw Error::from_last_errno("write eventfd").with("fd", std::to_string(fd_.get()));
  }
}

}  // namespace vfiokit
