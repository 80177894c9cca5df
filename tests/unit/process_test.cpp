// Child processes: exit statuses and signals, captured output, the environment, what a child
// inherits (nothing but stdin/stdout/stderr), timed waits, and clear errors for programs that
// cannot run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/base/unique_fd.h"

namespace vfiokit {
namespace {

using namespace std::chrono_literals;

ChildOptions capturing() {
  ChildOptions options;
  options.output = ChildOutput::capture;
  return options;
}

TEST(ChildProcess, ReportsExitCodesAndSignals) {
  EXPECT_TRUE(ChildProcess::spawn({"true"}).wait().success());
  ChildProcess failing = ChildProcess::spawn({"sh", "-c", "exit 7"});
  const ExitStatus seven = failing.wait();
  EXPECT_EQ(seven.code, 7);
  EXPECT_EQ(seven.value(), 7);
  EXPECT_EQ(seven.describe(), "exit status 7");
  EXPECT_EQ(failing.wait().code, 7) << "a second wait returns the same status";

  ChildProcess sleeper = ChildProcess::spawn({"sleep", "30"});
  EXPECT_TRUE(sleeper.running());
  sleeper.kill(SIGTERM);
  const ExitStatus killed = sleeper.wait();
  EXPECT_EQ(killed.signal, SIGTERM);
  EXPECT_EQ(killed.value(), 128 + SIGTERM);
  EXPECT_EQ(killed.describe(), "killed by SIGTERM");
  EXPECT_FALSE(sleeper.running());
}

TEST(ChildProcess, CapturesOutputAndPassesExtraEnvironment) {
  ChildOptions options = capturing();
  options.environment = {"VFIOKIT_TEST_VALUE=hello", "PATH=/usr/bin:/bin"};
  ChildProcess child =
      ChildProcess::spawn({"sh", "-c", "echo out $VFIOKIT_TEST_VALUE; echo err >&2"}, options);
  EXPECT_EQ(child.read_output(), "out hello\nerr\n");
  EXPECT_TRUE(child.wait().success());

  ChildOptions stdout_only;
  stdout_only.output = ChildOutput::capture_stdout;
  stdout_only.environment = {"VFIOKIT_TEST_VALUE=x"};
  ChildProcess quiet = ChildProcess::spawn({"sh", "-c", "echo to-stdout"}, stdout_only);
  EXPECT_EQ(quiet.read_output(), "to-stdout\n");
  quiet.wait();
}

TEST(ChildProcess, WritesOutputToAFile) {
  test::TempDir dir;
  ChildOptions options;
  options.output = ChildOutput::file;
  options.output_file = dir.path() / "log";
  ChildProcess::spawn({"sh", "-c", "echo one; echo two >&2"}, options).wait();
  EXPECT_EQ(read_file(dir.path() / "log"), "one\ntwo\n");
}

TEST(ChildProcess, InheritsNoDescriptorButTheStandardThree) {
  // A descriptor without O_CLOEXEC, as a careless library might leave one.
  const UniqueFd leaked(::open("/dev/null", O_RDONLY));
  ASSERT_TRUE(leaked);
  ChildProcess child = ChildProcess::spawn(
      {"sh", "-c", "ls /proc/self/fd | grep -cv '^[012]$' || true"}, capturing());
  // Only the descriptor `ls` itself opens on /proc/self/fd is above 2.
  EXPECT_EQ(child.read_output(), "1\n");
  child.wait();
}

TEST(ChildProcess, TheMemlockLimitIsTheChildsAlone) {
  rlimit mine{};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &mine), 0);
  // Lowering needs no privilege; the child sees the new limit, this process keeps its own.
  const std::uint64_t lower = std::min<std::uint64_t>(mine.rlim_cur, 64 * 1024);
  ChildOptions options = capturing();
  options.memlock_limit = lower;
  ChildProcess child = ChildProcess::spawn({"sh", "-c", "ulimit -l"}, options);
  EXPECT_EQ(child.read_output(), std::to_string(lower / 1024) + "\n");
  child.wait();
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_MEMLOCK, &after), 0);
  EXPECT_EQ(after.rlim_cur, mine.rlim_cur);
}

TEST(ChildProcess, AForkedBodyReturnsItsExitCode) {
  ChildProcess child = ChildProcess::fork([] { return 42; });
  EXPECT_EQ(child.wait().code, 42);
}

TEST(ChildProcess, WaitForTimesOutWhileTheChildRuns) {
  ChildProcess sleeper = ChildProcess::spawn({"sleep", "30"});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(sleeper.wait_for(100ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  sleeper.kill(SIGKILL);
  const auto status = sleeper.wait_for(10s);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->signal, SIGKILL);
}

TEST(ChildProcess, ADroppedHandleKillsItsChild) {
  pid_t pid = 0;
  {
    ChildProcess sleeper = ChildProcess::spawn({"sleep", "30"});
    pid = sleeper.pid();
  }
  // Reaped by the destructor: the pid no longer names our child.
  EXPECT_NE(::kill(pid, 0), 0);
}

TEST(ChildProcess, AMissingProgramIsAClearError) {
  try {
    ChildProcess::spawn({"vfiokit-no-such-program"});
    FAIL() << "spawn did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.errno_value(), ENOENT);
    EXPECT_EQ(e.context_value("program"), "vfiokit-no-such-program");
  }
  EXPECT_THROW(ChildProcess::spawn({}), Error);
}

TEST(ChildProcess, AProgramThatCannotBeExecutedIsAClearError) {
  test::TempDir dir;
  const auto script = dir.path() / "not-a-program";
  write_file_durable(script,
                     "\x7f"
                     "ELF garbage",
                     0755);
  try {
    ChildProcess::spawn({script.string()});
    FAIL() << "spawn did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.operation(), "exec");
    EXPECT_EQ(e.errno_value(), ENOEXEC);
  }
}

TEST(RunCommand, ReturnsStatusAndOutput) {
  const CommandResult result = run_command({"sh", "-c", "echo hi; exit 3"});
  EXPECT_EQ(result.exit_status, 3);
  EXPECT_EQ(result.output, "hi\n");
}

}  // namespace
}  // namespace vfiokit
