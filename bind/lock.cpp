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

StateLock::StateLock(const fs::path& run_dir, std::chrono::milliseconds wait) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw Error::from_errno(ec.value(), "create state folder").with("path", run_dir.string());
  const fs::path path = run_dir / "lock";
  fd_.reset(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) {
    throw Error::from_last_errno("open lock").with("path", path.string());
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  bool announced = false;
  while (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) throw Error::from_errno(err, "flock").with("path", path.string());
    const std::string holder_text = read_file_if_exists(path).value_or("");
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
