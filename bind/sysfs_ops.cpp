#include "vfiokit/bind/sysfs_ops.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/kmod.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/process.h"

namespace vfiokit::bind {
namespace {

// The write happens in a child process: a sysfs write stuck in a driver's remove() sleeps
// uninterruptibly, and a child can be left behind where a thread would keep this process from
// ever exiting. The child reports errno through its exit status, and keeps no descriptor but the
// attribute: a child stuck in the kernel must not hold the state lock, a VFIO node or a pipe of
// whoever runs vfiokit.
void write_in_child(const std::filesystem::path& attribute, std::string_view value,
                    std::chrono::milliseconds timeout) {
  const std::string path = attribute.string();  // prepared here: the child may not allocate
  ChildProcess child = ChildProcess::fork([&path, value]() -> int {
    // Ctrl-C reaches the whole foreground process group: the write must not die with it (after
    // an unbind the kernel completed, that would read as a failure). vfiokit itself decides
    // what a signal means, and waits for this write whatever it is.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    for (const int signal : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(signal, &ignore, nullptr);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno & 0xff;
    if (fd > 0) ::close_range(0, static_cast<unsigned>(fd) - 1, 0);
    ::close_range(static_cast<unsigned>(fd) + 1, ~0U, 0);
    const ssize_t n = ::write(fd, value.data(), value.size());
    return n < 0 ? (errno & 0xff) : 0;
  });
  const std::optional<ExitStatus> status = child.wait_for(timeout);
  if (!status) {
    // It is blocked in the kernel and dies only when the driver lets go: leave it to init.
    child.kill(SIGKILL);
    child.abandon();
    throw Error::from_errno(
        ETIMEDOUT, "write",
        "the kernel did not finish the write in " + std::to_string(timeout.count()) + " ms")
        .with("path", path)
        .with("value", std::string(trim(value)))
        .hint("the driver's remove() is stuck; see dmesg, and the device may need a reboot");
  }
  const int child_errno = status->signal != 0 ? EIO : status->code;
  if (child_errno != 0) {
    throw Error::from_errno(child_errno, "write")
        .with("path", path)
        .with("value", std::string(trim(value)));
  }
}

}  // namespace

void LiveSysfsOps::write(const std::filesystem::path& attribute, std::string_view value,
                         std::optional<std::chrono::milliseconds> timeout) {
  log::debug("sysfs: {} <- {}", attribute.string(), trim(value));
  if (timeout) {
    write_in_child(attribute, value, *timeout);
  } else {
    write_attribute(attribute, value);
  }
}

void LiveSysfsOps::load_module(std::string_view name) {
  log::info("loading kernel module {}", name);
  vfiokit::load_module(name);
}

void LiveSysfsOps::set_owner(const std::filesystem::path& node, uid_t uid, gid_t gid) {
  if (::chown(node.c_str(), uid, gid) != 0) {
    throw Error::from_last_errno("chown").with("path", node.string());
  }
}

void LiveSysfsOps::sleep(std::chrono::milliseconds duration) {
  std::this_thread::sleep_for(duration);
}

}  // namespace vfiokit::bind
