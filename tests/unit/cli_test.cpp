// The vfiokit program as users run it: exit statuses, text and --json output.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "base/process.h"
#include "tests/unit/fixtures.h"

namespace vfiokit {
namespace {

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

std::string host_root(const char* name) { return test::fixture("hosts").append(name).string(); }

TEST(Cli, VersionPrintsTheProjectVersion) {
  const auto result = vfiokit_cli({"--version"});
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_EQ(result.output, std::string("vfiokit ") + VFIOKIT_VERSION + "\n");
}

TEST(Cli, NoSubcommandOrAnUnknownOneIsAUsageError) {
  EXPECT_EQ(vfiokit_cli({}).exit_status, 2);
  EXPECT_EQ(vfiokit_cli({"frobnicate"}).exit_status, 2);
  EXPECT_EQ(vfiokit_cli({"doctor", "--no-such-flag"}).exit_status, 2);
}

TEST(Cli, DoctorOnAReadyFixtureReportsTextAndExitStatus) {
  const auto result = vfiokit_cli({"--host-root", host_root("dmar-disabled"), "doctor"});
  EXPECT_EQ(result.exit_status, 1);
  EXPECT_NE(result.output.find("FAIL  iommu"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("fix: add intel_iommu=on"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("not ready"), std::string::npos);
}

TEST(Cli, DoctorJsonCarriesTheSameChecks) {
  const auto result = vfiokit_cli({"--host-root", host_root("dmar-disabled"), "doctor", "--json"});
  EXPECT_EQ(result.exit_status, 1);
  const auto json = nlohmann::json::parse(result.output);
  EXPECT_EQ(json["ready"], false);
  EXPECT_EQ(json["kernel"], "6.1.0-18-amd64");
  ASSERT_EQ(json["checks"].size(), 6u);
  EXPECT_EQ(json["checks"][0]["id"], "iommu");
  EXPECT_EQ(json["checks"][0]["status"], "fail");
  EXPECT_TRUE(json["checks"][0].contains("fix"));
}

TEST(Cli, HostRootMustExist) {
  EXPECT_EQ(vfiokit_cli({"--host-root", "/nonexistent/vfiokit", "doctor"}).exit_status, 2);
}

}  // namespace
}  // namespace vfiokit
