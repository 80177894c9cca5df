// One vfiokit process at a time changes driver bindings: an exclusive flock on
// /run/vfiokit/lock, held for the whole operation and dropped by the kernel if the process dies.
#pragma once

#include <chrono>
#include <filesystem>

#include "base/unique_fd.h"

namespace vfiokit::bind {

class StateLock {
 public:
  // Waits up to `wait` for the lock (logging who holds it), then throws Error naming the
  // holder's pid. A zero wait fails at once if another process holds it.
  StateLock(const std::filesystem::path& run_dir, std::chrono::milliseconds wait);

 private:
  UniqueFd fd_;
};

}  // namespace vfiokit::bind
