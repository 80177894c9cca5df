#include "bind/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/fs.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

// The pid the holder wrote, read through our own fd: the path may not be trusted twice.
std::string read_fd_text(int fd) {
  char buffer[64];
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

StateLock::StateLock(const fs::path& run_dir, std::chrono::milliseconds wait) {
  // The folder is the journal's too: readable by all, writable by root alone.
  fd_ = StateDir::create(run_dir, 0755).open_file("lock", 0600);
  const fs::path path = run_dir / "lock";
  const auto deadline = std::chrono::steady_clock::now() + wait;
  bool announced = false;
  while (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) throw Error::from_errno(err, "flock").with("path", path.string());
    const std::string holder_text = read_fd_text(fd_.get());
    const std::string holder(trim(holder_text));
    if (std::chrono::steady_clock::now() >= deadline) {
      throw Error("lock", "another vfiokit process (pid " + (holder.empty() ? "?" : holder) +
                              ") is changing driver bindings")
          .with("path", path.string())
          .hint("wait for it to finish, or pass --wait SECONDS to queue behind it");
    }
    if (!announced) {
      spdlog::warn("waiting for another vfiokit process (pid {}) to finish", holder);
      announced = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The holder's pid, for the message a waiting process prints; advisory only.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_.get(), 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(fd_.get(), pid.data(), pid.size(), 0);
  }
}

}  // namespace vfiokit::bind
