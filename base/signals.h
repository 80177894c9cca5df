// SIGINT, SIGTERM and SIGHUP while vfiokit changes something that must not be left half-done
// (a device between two drivers): recorded, never acted on at once, so the change can finish or
// roll back and say so. SIGPIPE is ignored meanwhile, so output to a closed pipe (`vfiokit ... |
// head -1`) fails harmlessly instead of killing the process mid-change.
#pragma once

#include <sys/types.h>

#include <string>

namespace vfiokit {

class SignalGuard {
 public:
  // Installs the recording handlers (with SA_RESTART: only the checks between steps see the
  // signal). Guards nest; the outermost one starts with nothing received.
  SignalGuard();
  // Puts back what was there before.
  ~SignalGuard();
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

  // The first of SIGINT, SIGTERM, SIGHUP received since the outermost guard was installed, or 0.
  [[nodiscard]] static int received() noexcept;
  // Each signal received from now on is also sent to `child` (a QEMU that must stop with us);
  // 0 stops passing them on.
  static void forward_to(pid_t child) noexcept;
};

// "SIGINT" for SIGINT; "signal 42" for one without a name.
std::string signal_name(int signal);

}  // namespace vfiokit
