// Child processes vfiokit starts (modprobe, QEMU, the helper that performs a sysfs write that may
// hang): started without a shell, inheriting no file descriptor but the standard three, waited
// for exactly once with EINTR retried, and never left running by accident.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/unique_fd.h"

namespace vfiokit {

// How a child ended: its exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;
  int signal = 0;  // non-zero when a signal ended it
  // The shell's convention: the exit code, or 128 + the signal number.
  [[nodiscard]] int value() const noexcept { return signal != 0 ? 128 + signal : code; }
  [[nodiscard]] bool success() const noexcept { return signal == 0 && code == 0; }
  [[nodiscard]] std::string describe() const;  // "exit status 1", "killed by SIGTERM"
  static ExitStatus from_wait_status(int status) noexcept;
};

enum class ChildInput { null, inherit };
enum class ChildOutput {
  inherit,         // the parent's stdout and stderr
  capture,         // stdout and stderr into one pipe: read_output()
  capture_stdout,  // stdout into a pipe, stderr inherited
  file,            // stdout and stderr into ChildOptions::output_file (created or truncated)
  null,
};

struct ChildOptions {
  // Sent to the child when this process dies (PR_SET_PDEATHSIG), so a helper never outlives
  // the vfiokit that started it (a QEMU left running would keep the VFIO group open).
  std::optional<int> parent_death_signal;
  std::vector<std::string> environment;  // extra NAME=VALUE entries over this process's own
  // RLIMIT_MEMLOCK for the child (soft and hard), in bytes: VFIO pins a guest's RAM and counts
  // it against this once the child is no longer root. Raising it needs CAP_SYS_RESOURCE.
  std::optional<std::uint64_t> memlock_limit;
  ChildInput input = ChildInput::null;
  ChildOutput output = ChildOutput::inherit;
  std::filesystem::path output_file;
};

class ChildProcess {
 public:
  // Runs argv[0] (looked up in PATH) with argv. Throws Error naming the program when it cannot
  // be started (not installed: ENOENT; not executable: EACCES), before or at exec.
  static ChildProcess spawn(const std::vector<std::string>& argv, const ChildOptions& options = {});
  // Runs `body` in a forked child, which exits with what body returns. The child may only make
  // async-signal-safe calls (the parent may have threads): open, write, close, _exit.
  static ChildProcess fork(const std::function<int()>& body, const ChildOptions& options = {});

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) = delete;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // A child still running is killed (SIGKILL) and reaped; one that does not die within a second
  // (stuck in the kernel, e.g. in a driver's remove()) is left to init, and logged.
  ~ChildProcess();

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running() const noexcept { return !status_ && pid_ > 0; }
  // Blocks until the child ends (EINTR retried).
  ExitStatus wait();
  // nullopt when the child is still running after `timeout`.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // Sends `signal` if the child has not been reaped yet.
  void kill(int signal) noexcept;
  // Everything the child writes to the capture pipe until it closes it (ChildOutput::capture*).
  std::string read_output();
  // Stops owning a child that cannot be reaped (blocked in the kernel): it becomes init's.
  void abandon() noexcept;

 private:
  ChildProcess(pid_t pid, UniqueFd output) noexcept : pid_(pid), output_(std::move(output)) {}

  pid_t pid_ = -1;
  UniqueFd output_;
  std::optional<ExitStatus> status_;
};

struct CommandResult {
  int exit_status = -1;  // the program's exit status, or 128 + signal number if it was killed
  std::string output;    // stdout and stderr together
};

// Runs argv[0] (looked up in PATH) with argv and waits for it. Throws Error if it cannot be
// started (e.g. ENOENT when the program is not installed).
CommandResult run_command(const std::vector<std::string>& argv);

// Where execvp would find `program`: itself if it holds a '/', else the first executable regular
// file of that name in `search_path` (a PATH value). nullopt if there is none.
std::optional<std::filesystem::path> find_program(std::string_view program,
                                                  std::string_view search_path);

}  // namespace vfiokit
