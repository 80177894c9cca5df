// What the CLI prints when the input is wrong or strange: argument mistakes in the documented
// error format (JSON with --json), and --json documents that stay valid JSON whatever bytes the
// host or the user hand it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"

namespace vfiokit {
namespace {

CommandResult vfiokit_cli(std::vector<std::string> args,
                          ChildOutput output = ChildOutput::capture) {
  args.insert(args.begin(), VFIOKIT_CLI);
  ChildOptions options;
  options.output = output;
  ChildProcess child = ChildProcess::spawn(args, options);
  CommandResult result;
  result.output = child.read_output();
  result.exit_status = child.wait().value();
  return result;
}

// --json's stdout only, so it must parse on its own.
nlohmann::json json_of(std::vector<std::string> args, int expected_status) {
  const CommandResult result = vfiokit_cli(std::move(args), ChildOutput::capture_stdout);
  EXPECT_EQ(result.exit_status, expected_status) << result.output;
  return nlohmann::json::parse(result.output);
}

TEST(CliOutput, AnArgumentMistakeIsAUsageErrorInTheDocumentedFormat) {
  const CommandResult result = vfiokit_cli({"bind", "0000:00:01.0", "--wait", "soon"});
  EXPECT_EQ(result.exit_status, 2);
  EXPECT_NE(result.output.find("vfiokit: error: parse arguments: --wait"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("fix: see `vfiokit bind --help`"), std::string::npos)
      << result.output;
}

TEST(CliOutput, AnArgumentMistakeWithJsonIsAJsonError) {
  // --json after the mistake counts too.
  const auto json = json_of({"bind", "--wait", "soon", "0000:00:01.0", "--json"}, 2);
  EXPECT_EQ(json["error"]["kind"], "usage");
  EXPECT_EQ(json["error"]["exit_status"], 2);
  EXPECT_EQ(json["error"]["operation"], "parse arguments");
  const auto unknown = json_of({"frobnicate", "--json"}, 2);
  EXPECT_EQ(unknown["error"]["kind"], "usage");
}

TEST(CliOutput, DurationsMustBeFiniteAndInRange) {
  // Were accepted: nan passes "> 0" checks, and 1e300 s overflows into undefined behaviour.
  for (const char* bad : {"nan", "1e300", "-1", "0", "inf", "soon"}) {
    const CommandResult result = vfiokit_cli({"selftest", "0000:00:01.0", "--timeout", bad});
    EXPECT_EQ(result.exit_status, 2) << bad << ": " << result.output;
    EXPECT_NE(result.output.find("--timeout"), std::string::npos) << result.output;
  }
  const CommandResult help = vfiokit_cli({"selftest", "--help"});
  EXPECT_NE(help.output.find("seconds, 0.001 to 3600"), std::string::npos) << help.output;
}

TEST(CliOutput, HelpIsNotAnError) {
  const CommandResult result = vfiokit_cli({"bind", "--help"});
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_NE(result.output.find("--dry-run"), std::string::npos);
}

TEST(CliOutput, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  // Was SIGABRT (exit 134): nlohmann::json throws on invalid UTF-8 when it dumps.
  const auto json = json_of({"show", "\xff", "--json"}, 2);
  const std::string text = json["error"]["message"];
  EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos) << text;  // U+FFFD
}

TEST(CliOutput, ALatin1MountPointStillGivesValidJson) {
  test::FixtureCopy host(test::fixture("sysfs/mounted-disk"));
  write_file_durable(host.root() / "proc/self/mountinfo",
                     "31 29 259:1 / /mnt/caf\xe9 rw,relatime - vfat /dev/nvme0n1p1 rw\n");
  const auto json =
      json_of({"--host-root", host.root().string(), "show", "0000:04:00.0", "--json"}, 0);
  const std::string dump = json.dump();
  EXPECT_NE(dump.find("/mnt/caf\xef\xbf\xbd"), std::string::npos) << dump;
}

}  // namespace
}  // namespace vfiokit
