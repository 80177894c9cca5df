#include "bind/sysfs_ops.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/kmod.h"
#include "base/unique_fd.h"

namespace vfiokit::bind {
namespace {

// The write happens in a child process: a sysfs write stuck in a driver's remove() sleeps
// uninterruptibly, and a child can be left behind where a thread would keep this process from
// ever exiting. The child reports errno through its exit status.
void write_in_child(const std::filesystem::path& attribute, std::string_view value,
                    std::chrono::milliseconds timeout) {
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    throw Error::from_errno(err, "fork").with("path", attribute.string());
  }
  if (pid == 0) {
    const int fd = ::open(attribute.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) ::_exit(errno & 0xff);
    const ssize_t n = ::write(fd, value.data(), value.size());
    ::_exit(n < 0 ? (errno & 0xff) : 0);
  }
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw Error::from_errno(err, "pidfd_open").with("path", attribute.string());
  }
  pollfd waiter{pidfd.get(), POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&waiter, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    // Leave the child: it is blocked in the kernel and cannot be killed until the driver lets go.
    throw Error::from_errno(
        ETIMEDOUT, "write",
        "the kernel did not finish the write in " + std::to_string(timeout.count()) + " ms")
        .with("path", attribute.string())
        .with("value", std::string(trim(value)))
        .hint("the driver's remove() is stuck; see dmesg, and the device may need a reboot");
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const int child_errno = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
  if (child_errno != 0) {
    throw Error::from_errno(child_errno, "write")
        .with("path", attribute.string())
        .with("value", std::string(trim(value)));
  }
}

}  // namespace

void LiveSysfsOps::write(const std::filesystem::path& attribute, std::string_view value,
                         std::optional<std::chrono::milliseconds> timeout) {
  spdlog::debug("sysfs: {} <- {}", attribute.string(), trim(value));
  if (timeout) {
    write_in_child(attribute, value, *timeout);
  } else {
    write_attribute(attribute, value);
  }
}

void LiveSysfsOps::load_module(std::string_view name) {
  spdlog::info("loading kernel module {}", name);
  vfiokit::load_module(name);
}

void LiveSysfsOps::set_owner(const std::filesystem::path& node, uid_t uid, gid_t gid) {
  if (::chown(node.c_str(), uid, gid) != 0) {
    const int err = errno;
    throw Error::from_errno(err, "chown").with("path", node.string());
  }
}

void LiveSysfsOps::sleep(std::chrono::milliseconds duration) {
  std::this_thread::sleep_for(duration);
}

}  // namespace vfiokit::bind
