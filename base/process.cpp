#include "vfiokit/base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"

extern char** environ;

namespace vfiokit {
namespace {

UniqueFd open_null(int flags) {
  UniqueFd fd(::open("/dev/null", flags | O_CLOEXEC));
  if (!fd) throw Error::from_last_errno("open").with("path", "/dev/null");
  return fd;
}

struct Pipe {
  UniqueFd read_end;
  UniqueFd write_end;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error::from_last_errno("pipe2");
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// What every child does first, before exec or its body: die with the parent if asked, and undo
// what it inherited that a program does not expect (blocked signals, ignored SIGPIPE).
// Async-signal-safe calls only.
void prepare_child(const ChildOptions& options, pid_t parent) {
  if (options.parent_death_signal) {
    ::prctl(PR_SET_PDEATHSIG, *options.parent_death_signal);
    if (::getppid() != parent) ::_exit(127);  // the parent is already gone
  }
  if (options.memlock_limit) {
    const rlimit limit{*options.memlock_limit, *options.memlock_limit};
    if (::setrlimit(RLIMIT_MEMLOCK, &limit) != 0) ::_exit(126);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (const int signal : {SIGPIPE, SIGINT, SIGTERM, SIGHUP}) {
    ::sigaction(signal, &default_action, nullptr);
  }
}

// Environment entries: the extra ones first, then this process's own unless overridden.
std::vector<std::string> child_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> entries(extra);
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool overridden = std::any_of(extra.begin(), extra.end(), [&](const std::string& x) {
      return x.size() > name.size() && x.compare(0, name.size(), name) == 0 &&
             x[name.size()] == '=';
    });
    if (!overridden) entries.emplace_back(entry);
  }
  return entries;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (signal != 0) {
    const char* name = sigabbrev_np(signal);
    return std::string("killed by ") +
           (name ? "SIG" + std::string(name) : "signal " + std::to_string(signal));
  }
  return "exit status " + std::to_string(code);
}

ExitStatus ExitStatus::from_wait_status(int status) noexcept {
  if (WIFSIGNALED(status)) return {0, WTERMSIG(status)};
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 0, 0};
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv,
                                 const ChildOptions& options) {
  if (argv.empty()) throw Error("spawn", "empty command line");
  const char* search_path = std::getenv("PATH");
  const auto program = find_program(argv[0], search_path ? search_path : "/usr/bin:/bin");
  if (!program) {
    throw Error::from_errno(ENOENT, "spawn", "not found in PATH or not executable")
        .with("program", argv[0]);
  }
  // Everything the child needs is prepared here: after fork() it may not allocate.
  const std::string path = program->string();
  std::vector<std::string> args(argv);
  std::vector<std::string> environment = child_environment(options.environment);
  const std::vector<char*> arg_pointers = pointers(args);
  const std::vector<char*> env_pointers = pointers(environment);

  UniqueFd input;
  if (options.input == ChildInput::null) input = open_null(O_RDONLY);
  UniqueFd output_read, output_write;
  switch (options.output) {
    case ChildOutput::inherit:
      break;
    case ChildOutput::capture:
    case ChildOutput::capture_stdout: {
      Pipe pipe = make_pipe();
      output_read = std::move(pipe.read_end);
      output_write = std::move(pipe.write_end);
      break;
    }
    case ChildOutput::file:
      output_write.reset(
          ::open(options.output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!output_write) {
        throw Error::from_last_errno("open").with("path", options.output_file.string());
      }
      break;
    case ChildOutput::null:
      output_write = open_null(O_WRONLY);
      break;
  }
  const bool merge_stderr =
      options.output != ChildOutput::inherit && options.output != ChildOutput::capture_stdout;
  // The child reports a failed exec's errno here; a successful exec closes it (O_CLOEXEC).
  Pipe exec_error = make_pipe();

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error::from_last_errno("fork").with("program", argv[0]);
  if (pid == 0) {
    prepare_child(options, parent);
    if (input) ::dup2(input.get(), STDIN_FILENO);
    if (output_write) {
      ::dup2(output_write.get(), STDOUT_FILENO);
      if (merge_stderr) ::dup2(output_write.get(), STDERR_FILENO);
    }
    // Nothing but the standard three reaches the program (the state lock, VFIO and KVM fds
    // stay with vfiokit). Kernels before 5.11 lack the flag; O_CLOEXEC covers vfiokit's own.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(path.c_str(), arg_pointers.data(), env_pointers.data());
    const int err = errno;
    [[maybe_unused]] const ssize_t n = ::write(exec_error.write_end.get(), &err, sizeof err);
    ::_exit(127);
  }
  exec_error.write_end.reset();
  output_write.reset();
  ChildProcess child(pid, std::move(output_read));
  int exec_errno = 0;
  ssize_t n;
  while ((n = ::read(exec_error.read_end.get(), &exec_errno, sizeof exec_errno)) < 0 &&
         errno == EINTR) {
  }
  if (n == sizeof exec_errno) {
    child.wait();
    throw Error::from_errno(exec_errno, "exec").with("program", path);
  }
  return child;
}

ChildProcess ChildProcess::fork(const std::function<int()>& body, const ChildOptions& options) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error::from_last_errno("fork");
  if (pid == 0) {
    prepare_child(options, parent);
    ::_exit(body());
  }
  return ChildProcess(pid, UniqueFd());
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      output_(std::move(other.output_)),
      status_(other.status_) {}

ChildProcess::~ChildProcess() {
  if (!running()) return;
  kill(SIGKILL);
  try {
    if (wait_for(std::chrono::seconds(1))) return;
  } catch (const Error& e) {
    log::debug("{}", e.what());
  }
  log::warn("process {} does not end (blocked in the kernel); leaving it", pid_);
  abandon();
}

ExitStatus ChildProcess::wait() {
  if (status_) return *status_;
  if (pid_ <= 0) throw Error("waitpid", "no child process to wait for");
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) throw Error::from_last_errno("waitpid").with("pid", std::to_string(pid_));
  }
  status_ = ExitStatus::from_wait_status(status);
  return *status_;
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) throw Error("waitpid", "no child process to wait for");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // A pidfd turns readable when the child ends, so the wait needs no polling loop.
  const UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  for (;;) {
    // Rounded up: a wait never ends before its deadline.
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (pidfd) {
      pollfd waiter{pidfd.get(), POLLIN, 0};
      const int ready = ::poll(&waiter, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
      if (ready > 0) return wait();
      if (ready < 0 && errno != EINTR) throw Error::from_last_errno("poll pidfd");
    } else {  // kernels before 5.3
      int status = 0;
      const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
      if (reaped == pid_) {
        status_ = ExitStatus::from_wait_status(status);
        return status_;
      }
      if (reaped < 0 && errno != EINTR) {
        throw Error::from_last_errno("waitpid").with("pid", std::to_string(pid_));
      }
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(10)));
    }
    if (left.count() <= 0) return std::nullopt;
  }
}

void ChildProcess::kill(int signal) noexcept {
  if (running()) ::kill(pid_, signal);
}

std::string ChildProcess::read_output() {
  std::string output;
  char buffer[4096];
  while (output_) {
    const ssize_t n = ::read(output_.get(), buffer, sizeof buffer);
    if (n > 0) {
      output.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      output_.reset();
    }
  }
  return output;
}

void ChildProcess::abandon() noexcept { pid_ = -1; }

CommandResult run_command(const std::vector<std::string>& argv) {
  ChildOptions options;
  options.output = ChildOutput::capture;
  ChildProcess child = ChildProcess::spawn(argv, options);
  CommandResult result;
  result.output = child.read_output();
  result.exit_status = child.wait().value();
  return result;
}

std::optional<std::filesystem::path> find_program(std::string_view program,
                                                  std::string_view search_path) {
  auto runnable = [](const std::filesystem::path& p) {
    std::error_code ec;
    return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
  };
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string_view::npos) {
    if (runnable(program)) return std::filesystem::path(program);
    return std::nullopt;
  }
  while (true) {
    const auto colon = search_path.find(':');
    const std::string_view dir = search_path.substr(0, colon);
    // An empty PATH entry means the current directory, as execvp reads it.
    const std::filesystem::path candidate =
        std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (runnable(candidate)) return candidate;
    if (colon == std::string_view::npos) return std::nullopt;
    search_path.remove_prefix(colon + 1);
  }
}

}  // namespace vfiokit
