#include "vfiokit/base/signals.h"

#include <signal.h>
#include <string.h>

#include <atomic>
#include <cerrno>
#include <iterator>

namespace vfiokit {
namespace {

constexpr int kRecorded[] = {SIGINT, SIGTERM, SIGHUP};

// Lock-free atomics: the only state a signal handler may touch.
std::atomic<int> g_received{0};
std::atomic<pid_t> g_forward{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<pid_t>::is_always_lock_free);

// Guards nest (bind inside a command that already holds one); only the outermost one resets.
int g_depth = 0;
struct sigaction g_saved[std::size(kRecorded) + 1];  // + SIGPIPE

void record(int signal) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  int none = 0;
  g_received.compare_exchange_strong(none, signal);
  if (const pid_t child = g_forward.load(); child > 0) ::kill(child, signal);
  errno = saved_errno;
}

}  // namespace

SignalGuard::SignalGuard() {
  if (g_depth++ > 0) return;
  g_received = 0;
  struct sigaction action {};
  action.sa_handler = record;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (std::size_t i = 0; i < std::size(kRecorded); ++i) {
    ::sigaction(kRecorded[i], &action, &g_saved[i]);
  }
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGPIPE, &ignore, &g_saved[std::size(kRecorded)]);
}

SignalGuard::~SignalGuard() {
  if (--g_depth > 0) return;
  g_forward = 0;
  for (std::size_t i = 0; i < std::size(kRecorded); ++i) {
    ::sigaction(kRecorded[i], &g_saved[i], nullptr);
  }
  ::sigaction(SIGPIPE, &g_saved[std::size(kRecorded)], nullptr);
}

int SignalGuard::received() noexcept { return g_received.load(); }

void SignalGuard::forward_to(pid_t child) noexcept { g_forward = child; }

std::string signal_name(int signal) {
  if (const char* name = ::sigabbrev_np(signal)) return std::string("SIG") + name;
  return "signal " + std::to_string(signal);
}

}  // namespace vfiokit
