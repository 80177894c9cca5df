#include "vfiokit/base/signals.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"

namespace vfiokit {
namespace {

sighandler_t current_handler(int signal) {
  struct sigaction now {};
  ::sigaction(signal, nullptr, &now);
  return now.sa_handler;
}

TEST(SignalGuard, RecordsTheFirstTerminationSignalInsteadOfDying) {
  const sighandler_t before = current_handler(SIGINT);
  {
    const SignalGuard guard;
    EXPECT_EQ(SignalGuard::received(), 0);
    ASSERT_EQ(::raise(SIGINT), 0);
    ASSERT_EQ(::raise(SIGTERM), 0);
    ASSERT_EQ(::raise(SIGHUP), 0);
    EXPECT_EQ(SignalGuard::received(), SIGINT);
    {
      const SignalGuard nested;  // a guard inside a guard keeps what came
      EXPECT_EQ(SignalGuard::received(), SIGINT);
    }
    EXPECT_NE(current_handler(SIGINT), before);  // still the outer guard's
  }
  EXPECT_EQ(current_handler(SIGINT), before);
  const SignalGuard fresh;
  EXPECT_EQ(SignalGuard::received(), 0);
}

TEST(SignalGuard, AWriteToAClosedPipeFailsInsteadOfKillingTheProcess) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);
  {
    const SignalGuard guard;
    EXPECT_EQ(::write(fds[1], "x", 1), -1);
    EXPECT_EQ(errno, EPIPE);
  }
  ::close(fds[1]);
}

TEST(SignalGuard, PassesSignalsOnToAChild) {
  const SignalGuard guard;
  ChildProcess child = ChildProcess::fork([]() -> int {
    for (;;) ::pause();
  });
  // Until it sleeps in pause() the child may still run the handler it inherited.
  const std::string stat = "/proc/" + std::to_string(child.pid()) + "/stat";
  for (int tries = 0;; ++tries) {
    const std::string text = read_file(stat);
    if (text.substr(text.rfind(')') + 2, 1) == "S") break;
    ASSERT_LT(tries, 500) << text;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  SignalGuard::forward_to(child.pid());
  ASSERT_EQ(::raise(SIGTERM), 0);
  SignalGuard::forward_to(0);
  const auto status = child.wait_for(std::chrono::seconds(5));
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_EQ(SignalGuard::received(), SIGTERM);
}

TEST(SignalGuard, NamesSignals) {
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGHUP), "SIGHUP");
  EXPECT_EQ(signal_name(12345), "signal 12345");
}

}  // namespace
}  // namespace vfiokit
