// One vfiokit process at a time changes driver bindings: an exclusive flock on
// /run/vfiokit/lock, held for the whole operation and dropped by the kernel if the process dies.
// When it is busy, the error says who really holds it (from /proc): another vfiokit at work, a
// process left behind by a vfiokit that has exited, or one blocked in the kernel.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/bind/usage.h"

namespace vfiokit::bind {

struct LockOptions {
  std::chrono::milliseconds wait{0};  // for the holder to finish; zero fails at once
  // Where to look for the holder: the live /proc even on a fixture tree (HostPaths::proc),
  // since whoever holds the lock file is a real process.
  std::filesystem::path proc = "/proc";
  // The signal that asks to stop waiting (0 while none has come): nothing has changed yet.
  std::function<int()> interrupted;
};

class StateLock {
 public:
  // Waits up to `options.wait` for the lock (logging who holds it), then throws
  // lock_busy_error(). `run_dir` is a StateDir (base/fs.h): a symlinked or untrusted folder or
  // lock file is refused.
  StateLock(const std::filesystem::path& run_dir, const LockOptions& options);
  StateLock(const std::filesystem::path& run_dir, std::chrono::milliseconds wait)
      : StateLock(run_dir, LockOptions{wait, "/proc", {}}) {}

 private:
  UniqueFd fd_;
};

// Who holds a busy lock, as far as /proc shows.
struct LockHolders {
  std::optional<int> recorded_pid;      // the pid the holder wrote into the lock file
  std::optional<ProcessInfo> recorded;  // that process, while it exists
  // Processes other than this one whose open lock file holds the flock (a "lock:" line in
  // /proc/PID/fdinfo; a process waiting for the lock has the file open without one). A child
  // that inherited the holder's fd holds it too.
  std::vector<ProcessInfo> holders;
};
LockHolders find_lock_holders(int lock_fd, const std::filesystem::path& proc, int self_pid);

// The error for a busy lock, saying what holds it and what to do: wait for a vfiokit at work;
// end a process a dead vfiokit left behind; for one blocked in the kernel (state D), that only
// the kernel can end it.
Error lock_busy_error(const LockHolders& holders, const std::filesystem::path& lock_path);

}  // namespace vfiokit::bind
