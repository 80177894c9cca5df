// -q, -v and colour: the levels they select, when colour is used, and the program honouring
// both on a pipe and on a terminal.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/lock.h"

namespace vfiokit {
namespace {

TEST(Log, QuietLeavesErrorsOnlyWhateverTheVerbosity) {
  EXPECT_EQ(log_level({.verbosity = 0}), LogLevel::warn);
  EXPECT_EQ(log_level({.verbosity = 1}), LogLevel::info);
  EXPECT_EQ(log_level({.verbosity = 2}), LogLevel::debug);
  EXPECT_EQ(log_level({.verbosity = 7}), LogLevel::trace);
  EXPECT_EQ(log_level({.verbosity = 0, .quiet = true}), LogLevel::error);
  EXPECT_EQ(log_level({.verbosity = 2, .quiet = true}), LogLevel::error);
}

// log::level and LogLevel's order are what log::enabled compares: a level is on from the
// logger's level up.
TEST(Log, ALevelIsOnFromTheLoggersLevelUp) {
  const LogLevel before = log::level();
  log::set_level(LogLevel::info);
  EXPECT_EQ(log::level(), LogLevel::info);
  EXPECT_FALSE(log::enabled(LogLevel::debug));
  EXPECT_TRUE(log::enabled(LogLevel::info));
  EXPECT_TRUE(log::enabled(LogLevel::error));
  log::set_level(LogLevel::off);
  EXPECT_EQ(log::level(), LogLevel::off);
  EXPECT_FALSE(log::enabled(LogLevel::error));
  log::set_level(before);
}

TEST(Log, ColourOnlyOnATerminalAndNeverWithNoColor) {
  EXPECT_TRUE(colour_wanted(true, nullptr));
  EXPECT_TRUE(colour_wanted(true, ""));  // NO_COLOR= (empty) does not count
  EXPECT_FALSE(colour_wanted(true, "1"));
  EXPECT_FALSE(colour_wanted(true, "0"));  // any non-empty value
  EXPECT_FALSE(colour_wanted(false, nullptr));
  EXPECT_FALSE(colour_wanted(false, "1"));
}

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

TEST(Log, QuietSilencesWarningsButNotTheResultOrTheError) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const bind::StateLock held(copy.paths().run / "vfiokit", std::chrono::milliseconds(0));

  const auto loud = vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0", "--wait", "0.2"});
  EXPECT_EQ(loud.exit_status, 1);
  EXPECT_NE(loud.output.find("warning: waiting for another vfiokit"), std::string::npos)
      << loud.output;

  const auto quiet =
      vfiokit_cli({"-q", "--host-root", root, "persist", "0000:01:00.0", "--wait", "0.2"});
  EXPECT_EQ(quiet.exit_status, 1);
  EXPECT_EQ(quiet.output.find("waiting for another vfiokit"), std::string::npos) << quiet.output;
  EXPECT_NE(quiet.output.find("vfiokit: error:"), std::string::npos) << quiet.output;

  // The result stays: -q is about stderr's chatter.
  const auto listed = vfiokit_cli({"--quiet", "--host-root", root, "list"});
  EXPECT_EQ(listed.exit_status, 0);
  EXPECT_NE(listed.output.find("0000:01:00.0"), std::string::npos) << listed.output;
  EXPECT_EQ(vfiokit_cli({"-q", "-v", "--host-root", root, "list"}).exit_status, 2);
}

// Runs vfiokit with stdout and stderr on a new pseudo-terminal, NO_COLOR as given (null:
// unset), and returns what it wrote there.
std::string run_on_terminal(const std::vector<std::string>& args, const char* no_color) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) {
    ADD_FAILURE() << "no pseudo-terminal: " << errno;
    return "";
  }
  const std::string slave_name = ::ptsname(master);
  std::vector<std::string> argv{VFIOKIT_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> pointers;
  for (auto& arg : argv) pointers.push_back(arg.data());
  pointers.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid == 0) {
    const int slave = ::open(slave_name.c_str(), O_RDWR | O_NOCTTY);
    if (slave < 0) ::_exit(126);
    ::dup2(slave, STDOUT_FILENO);
    ::dup2(slave, STDERR_FILENO);
    if (no_color == nullptr) {
      ::unsetenv("NO_COLOR");
    } else {
      ::setenv("NO_COLOR", no_color, 1);
    }
    ::execv(pointers[0], pointers.data());
    ::_exit(127);
  }
  // Read until the last holder of the terminal's other side is gone (EIO), then reap: waiting
  // first could leave the child blocked on a full terminal.
  std::string output;
  char buffer[4096];
  for (ssize_t n; (n = ::read(master, buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    output.append(buffer, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  return output;
}

TEST(Log, TheLevelIsColouredOnATerminalUnlessNoColorIsSet) {
  const std::string root = test::fixture("sysfs/gpu-audio-group").string();
  const std::vector<std::string> args{"-vv", "--host-root", root, "list"};
  const std::string coloured = run_on_terminal(args, nullptr);
  EXPECT_NE(coloured.find("debug"), std::string::npos) << coloured;
  EXPECT_NE(coloured.find("\x1b["), std::string::npos) << coloured;

  EXPECT_EQ(run_on_terminal(args, "1").find('\x1b'), std::string::npos);
  EXPECT_NE(run_on_terminal(args, "").find("\x1b["), std::string::npos);

  // Not a terminal: no colour.
  const auto piped = run_command({VFIOKIT_CLI, "-vv", "--host-root", root, "list"});
  EXPECT_NE(piped.output.find("debug"), std::string::npos);
  EXPECT_EQ(piped.output.find('\x1b'), std::string::npos) << piped.output;
}

}  // namespace
}  // namespace vfiokit
