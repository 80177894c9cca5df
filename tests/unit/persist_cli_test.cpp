// `vfiokit persist` as users and vfiokit.service run it: --dry-run changes nothing and says so,
// the initramfs rebuild hint, and --apply's choice of devices on a fixture tree.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/persist.h"

namespace vfiokit {
namespace {

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

TEST(PersistCli, ADryRunWritesNothingAndSaysSo) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const auto text = vfiokit_cli({"--host-root", root, "persist", "--dry-run", "0000:01:00.0"});
  EXPECT_EQ(text.exit_status, 0) << text.output;
  EXPECT_TRUE(contains(text.output, "0000:01:00.0  would be persisted to vfio-pci")) << text.output;
  EXPECT_TRUE(contains(text.output, "dry run: nothing was written or removed")) << text.output;
  EXPECT_FALSE(contains(text.output, "  wrote ")) << text.output;
  EXPECT_FALSE(contains(text.output, "takes effect")) << text.output;

  const auto json = nlohmann::json::parse(
      vfiokit_cli({"--host-root", root, "persist", "--dry-run", "--json", "0000:01:00.0"}).output);
  EXPECT_EQ(json["dry_run"], true);
  EXPECT_EQ(json["changed"], false);
  EXPECT_TRUE(json["files"].empty());
  EXPECT_EQ(json["would_change"].size(), 3u);  // two rules and the softdep file
  EXPECT_TRUE(json["persisted"].empty());
  EXPECT_FALSE(std::filesystem::exists(copy.root() / "etc/udev"));
  EXPECT_FALSE(std::filesystem::exists(copy.root() / "etc/modprobe.d"));
}

TEST(PersistCli, ADryRunRemoveLeavesTheRules) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  ASSERT_EQ(vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0"}).exit_status, 0);
  const auto text =
      vfiokit_cli({"--host-root", root, "persist", "--remove", "--dry-run", "0000:01:00.0"});
  EXPECT_EQ(text.exit_status, 0) << text.output;
  EXPECT_TRUE(contains(text.output,
                       "would change " + root + "/etc/udev/rules.d/61-vfiokit-0000:01:00.0.rules"))
      << text.output;
  EXPECT_TRUE(contains(text.output, "dry run: nothing was written or removed")) << text.output;
  const auto json = nlohmann::json::parse(vfiokit_cli({"--host-root", root, "persist", "--remove",
                                                       "--dry-run", "--json", "0000:01:00.0"})
                                              .output);
  EXPECT_EQ(json["changed"], false);
  EXPECT_EQ(json["persisted"].size(), 2u);
  EXPECT_EQ(bind::PersistStore(copy.paths().etc).entries().size(), 2u);
}

TEST(PersistCli, SaysHowToRebuildTheHostsInitramfs) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const auto none = vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0"});
  EXPECT_TRUE(contains(none.output, "No initramfs generator found")) << none.output;
  std::filesystem::create_directories(copy.root() / "etc/initramfs-tools");
  write_file_durable(copy.root() / "etc/initramfs-tools/initramfs.conf", "MODULES=most\n");
  const auto json = nlohmann::json::parse(
      vfiokit_cli({"--host-root", root, "persist", "--json", "0000:01:00.0"}).output);
  EXPECT_EQ(json["changed"], true);
  EXPECT_EQ(json["initramfs"]["generator"], "initramfs-tools");
  EXPECT_EQ(json["initramfs"]["rebuild_command"], "update-initramfs -u -k all");
  const auto removed =
      vfiokit_cli({"--host-root", root, "persist", "--remove", "0000:01:00.0", "0000:01:00.1"});
  EXPECT_EQ(removed.exit_status, 0) << removed.output;
  EXPECT_TRUE(contains(removed.output,
                       "the initramfs still holds the removed rules until it is "
                       "rebuilt: run `update-initramfs -u -k all`"))
      << removed.output;
}

TEST(PersistCli, ApplyPlansABindOfWhatHostDriversTookAtBoot) {
  test::FixtureCopy copy(test::fixture("sysfs/boot-apply"));
  const std::string root = copy.root().string();
  bind::PersistStore(copy.paths().etc)
      .add({{*pci::parse_bdf("0000:03:00.0"), 0x1b36, 0x0010, "nvme"},
            {*pci::parse_bdf("0000:04:00.0"), 0x8086, 0x10d3, "e1000e"},
            {*pci::parse_bdf("0000:05:00.0"), 0x1b36, 0x0010, "nvme"},
            {*pci::parse_bdf("0000:07:00.0"), 0x1b36, 0x0010, "nvme"},
            {*pci::parse_bdf("0000:09:00.0"), 0x1b36, 0x0010, "nvme"}});
  const auto result =
      vfiokit_cli({"--host-root", root, "persist", "--apply", "--dry-run", "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = nlohmann::json::parse(result.output);
  EXPECT_EQ(json["operation"], "persist-apply");
  std::vector<std::string> actions;
  for (const auto& d : json["devices"]) actions.push_back(d["action"]);
  EXPECT_EQ(actions, (std::vector<std::string>{"bind", "bind", "already", "other-card", "absent"}));
  std::vector<std::string> moved;
  for (const auto& d : json["plan"]["devices"]) {
    if (d["action"] == "move") moved.push_back(d["bdf"]);
  }
  EXPECT_EQ(moved, (std::vector<std::string>{"0000:03:00.0", "0000:04:00.0"}));
  EXPECT_TRUE(json["result"].is_null());

  const auto text = vfiokit_cli({"--host-root", root, "persist", "--apply", "--dry-run"});
  EXPECT_TRUE(contains(text.output, "0000:04:00.0  bind: bound to e1000e (built into the kernel)"))
      << text.output;
  EXPECT_TRUE(contains(text.output, "dry run: nothing was changed")) << text.output;
}

TEST(PersistCli, ApplyWithNothingPersistedDoesNothing) {
  test::FixtureCopy copy(test::fixture("sysfs/boot-apply"));
  const auto result =
      vfiokit_cli({"--host-root", copy.root().string(), "persist", "--apply", "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = nlohmann::json::parse(result.output);
  EXPECT_TRUE(json["devices"].empty());
  EXPECT_TRUE(json["plan"].is_null());
}

TEST(PersistCli, ApplyTakesNoDevicesOfItsOwn) {
  const auto result = vfiokit_cli({"--host-root", test::fixture("sysfs/boot-apply").string(),
                                   "persist", "--apply", "0000:03:00.0"});
  EXPECT_EQ(result.exit_status, 2) << result.output;
}

}  // namespace
}  // namespace vfiokit
