#include "vfiokit/bind/lock.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/signals.h"

namespace vfiokit::bind {
namespace fs = std::filesystem;
namespace {

// The pid the holder wrote, read through our own fd: the path is not looked up twice.
std::optional<int> read_recorded_pid(int fd) {
  char buffer[32];
  const ssize_t n = ::pread(fd, buffer, sizeof buffer - 1, 0);
  if (n <= 0) return std::nullopt;
  const auto pid = parse_uint(std::string_view(buffer, static_cast<std::size_t>(n)));
  if (!pid || *pid == 0 || *pid > 0x7fffffff) return std::nullopt;
  return static_cast<int>(*pid);
}

std::string describe(const ProcessInfo& process) {
  return "pid " + std::to_string(process.pid) + " (" + process.command + ")";
}

bool fdinfo_holds_a_lock(const std::string& fdinfo) {
  return fdinfo.starts_with("lock:") || fdinfo.find("\nlock:") != std::string::npos;
}

}  // namespace

LockHolders find_lock_holders(int lock_fd, const fs::path& proc, int self_pid) {
  LockHolders found;
  found.recorded_pid = read_recorded_pid(lock_fd);
  if (found.recorded_pid) found.recorded = read_process(proc, *found.recorded_pid);
  struct stat lock {};
  if (::fstat(lock_fd, &lock) != 0) return found;
  for_each_open_fd(proc, self_pid, [&](int pid, const fs::path& link, const std::string&) {
    struct stat target {};
    // stat() follows /proc/PID/fd/N to the open file itself, deleted or renamed as it may be.
    if (::stat(link.c_str(), &target) != 0 || target.st_dev != lock.st_dev ||
        target.st_ino != lock.st_ino) {
      return;
    }
    std::string fdinfo;
    try {
      fdinfo = read_file_if_exists(link.parent_path().parent_path() / "fdinfo" / link.filename())
                   .value_or("");
    } catch (const Error&) {
      return;  // gone meanwhile, or not ours to read
    }
    if (!fdinfo_holds_a_lock(fdinfo)) return;
    const bool known = std::any_of(found.holders.begin(), found.holders.end(),
                                   [&](const ProcessInfo& p) { return p.pid == pid; });
    if (known) return;
    if (auto process = read_process(proc, pid)) found.holders.push_back(std::move(*process));
  });
  return found;
}

Error lock_busy_error(const LockHolders& facts, const fs::path& lock_path) {
  const std::string path = lock_path.string();
  const std::string recorded =
      facts.recorded_pid ? "vfiokit pid " + std::to_string(*facts.recorded_pid) : "";
  const bool recorded_gone = facts.recorded_pid && !facts.recorded;
  auto error = [&](const std::string& message, const std::string& fix) {
    Error e("lock", message);
    e.with("path", path);
    for (const auto& holder : facts.holders) {
      e.with("holder", describe(holder) + ", state " + std::string(1, holder.state));
    }
    return e.hint(fix);
  };
  auto at_work = [&](int pid) {
    return error(
        "another vfiokit process (pid " + std::to_string(pid) + ") is changing driver bindings",
        "wait for it to finish, or pass --wait SECONDS to queue behind it");
  };
  const auto stuck = std::find_if(facts.holders.begin(), facts.holders.end(),
                                  [](const ProcessInfo& p) { return p.state == 'D'; });
  if (stuck != facts.holders.end()) {
    const bool left_behind = recorded_gone && stuck->pid != *facts.recorded_pid;
    return error(
        "the lock is held by " + describe(*stuck) + ", which is blocked in the kernel (state D)" +
            (left_behind ? ", left behind by " + recorded + ", which has exited" : ""),
        "a write the kernel never finishes (a driver's remove() that hangs) keeps it there, and "
        "it lets go only when the kernel does: see dmesg and /proc/" +
            std::to_string(stuck->pid) +
            "/stack. It cannot be killed before that, and the device it was writing to may need "
            "a reboot");
  }
  if (facts.recorded) return at_work(facts.recorded->pid);
  if (!facts.holders.empty()) {
    const ProcessInfo& holder = facts.holders.front();
    if (!facts.recorded_pid) return at_work(holder.pid);
    return error("the lock is held by " + describe(holder) + ", which " + recorded +
                     " left behind; " + recorded + " has exited",
                 "it is changing no binding: end it (kill " + std::to_string(holder.pid) +
                     "), then run this again; `vfiokit restore --all` brings back whatever " +
                     recorded + " left half-way");
  }
  return error("the lock is held, but " +
                   (recorded_gone ? recorded + " that took it has exited and " : "") +
                   "no process this user can see holds it",
               "run as root to see every process, or find the holder with `fuser -v " + path +
                   "` (a process in another PID namespace, such as a container, may hold it)");
}

StateLock::StateLock(const fs::path& run_dir, const LockOptions& options) {
  // The folder is the journal's too: readable by all, writable by root alone.
  fd_ = StateDir::create(run_dir, 0755).open_file("lock", 0600);
  const fs::path path = run_dir / "lock";
  const auto deadline = std::chrono::steady_clock::now() + options.wait;
  bool announced = false;
  while (::flock(fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) throw Error::from_errno(err, "flock").with("path", path.string());
    if (const int signal = options.interrupted ? options.interrupted() : 0) {
      throw Error("lock", "stopped by " + signal_name(signal) +
                              " while waiting for another vfiokit process; nothing was changed")
          .with("path", path.string())
          .with("signal", signal_name(signal));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      throw lock_busy_error(find_lock_holders(fd_.get(), options.proc, ::getpid()), path);
    }
    if (!announced) {
      const auto pid = read_recorded_pid(fd_.get());
      log::warn("waiting for another vfiokit process (pid {}) to finish",
                pid ? std::to_string(*pid) : "?");
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
