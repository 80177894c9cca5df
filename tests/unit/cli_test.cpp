// The vfiokit program as users run it: exit statuses, text and --json output.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <thread>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/lock.h"

namespace vfiokit {
namespace {

CommandResult vfiokit_cli(std::vector<std::string> args) {
  args.insert(args.begin(), VFIOKIT_CLI);
  return run_command(args);
}

std::string host_root(const char* name) { return test::fixture("hosts").append(name).string(); }
std::string sysfs_root(const char* name) { return test::fixture("sysfs").append(name).string(); }

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
  ASSERT_EQ(json["checks"].size(), 9u);
  EXPECT_EQ(json["checks"][0]["id"], "iommu");
  EXPECT_EQ(json["checks"][0]["status"], "fail");
  EXPECT_TRUE(json["checks"][0].contains("fix"));
  // No usable /dev/kvm in the tree: KVM's features are unknown, not claimed.
  EXPECT_TRUE(json["kvm_features"].is_null());
  EXPECT_EQ(json["checks"][5]["id"], "kvm-features");
  EXPECT_EQ(json["checks"][5]["status"], "warn");
  // This host tree has neither hugepage pools nor OVMF: warnings, with their fixes.
  EXPECT_EQ(json["checks"][7]["id"], "hugepages");
  EXPECT_EQ(json["checks"][7]["status"], "warn");
  EXPECT_EQ(json["checks"][8]["id"], "ovmf");
  EXPECT_EQ(json["checks"][8]["fix"], "apt-get install ovmf");
}

TEST(Cli, HostRootMustExist) {
  EXPECT_EQ(vfiokit_cli({"--host-root", "/nonexistent/vfiokit", "doctor"}).exit_status, 2);
}

TEST(Cli, ListGroupsDevicesByIommuGroup) {
  const auto result = vfiokit_cli({"--host-root", sysfs_root("gpu-audio-group"), "list"});
  EXPECT_EQ(result.exit_status, 0);
  EXPECT_NE(result.output.find("IOMMU group 1  (not viable: 0000:01:00.0 on nouveau, 0000:01:00.1 "
                               "on snd_hda_intel)\n  0000:00:01.0  8086:1901  pcieport"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("IOMMU group 0  (viable)\n"), std::string::npos) << result.output;
  const auto json = nlohmann::json::parse(
      vfiokit_cli({"--host-root", sysfs_root("gpu-audio-group"), "list", "--json"}).output);
  ASSERT_EQ(json["groups"].size(), 2u);
  EXPECT_EQ(json["groups"][1]["group"], 1);
  EXPECT_EQ(json["groups"][1]["viable"], false);
  EXPECT_EQ(json["groups"][1]["blockers"].size(), 2u);
  EXPECT_EQ(json["groups"][1]["devices"][1]["driver"], "nouveau");
}

// lspci's -s and -d (libpci's parsers), --class names, and what a narrowed group header says.
TEST(Cli, ListSelectsAsLspciDoes) {
  const auto list = [](std::vector<std::string> selection) {
    std::vector<std::string> args{"--host-root", sysfs_root("gpu-audio-group"), "list", "--json"};
    args.insert(args.end(), selection.begin(), selection.end());
    const auto result = vfiokit_cli(args);
    EXPECT_EQ(result.exit_status, 0) << result.output;
    std::vector<std::string> bdfs;
    const auto json = nlohmann::json::parse(result.output);
    for (const auto& group : json["groups"]) {
      for (const auto& device : group["devices"]) bdfs.push_back(device["bdf"]);
    }
    return bdfs;
  };
  using Bdfs = std::vector<std::string>;
  EXPECT_EQ(list({"-s", "01:00"}), (Bdfs{"0000:01:00.0", "0000:01:00.1"}));
  EXPECT_EQ(list({"-s", "01:00.1"}), (Bdfs{"0000:01:00.1"}));
  EXPECT_EQ(list({"-s", ".1"}), (Bdfs{"0000:01:00.1"}));
  EXPECT_EQ(list({"-d", "10de:"}), (Bdfs{"0000:01:00.0", "0000:01:00.1"}));
  EXPECT_EQ(list({"-d", "::0300"}), (Bdfs{"0000:01:00.0"}));
  EXPECT_EQ(list({"-d", "::06xx"}), (Bdfs{"0000:00:00.0", "0000:00:01.0"}));
  EXPECT_EQ(list({"--class", "display,multimedia"}), (Bdfs{"0000:01:00.0", "0000:01:00.1"}));
  EXPECT_EQ(list({"--class", "04"}), (Bdfs{"0000:01:00.1"}));
  EXPECT_EQ(list({"-d", "10de:", "-s", ".0"}), (Bdfs{"0000:01:00.0"}));  // both must match
  EXPECT_EQ(list({"--class", "storage"}), Bdfs{});

  const auto text =
      vfiokit_cli({"--host-root", sysfs_root("gpu-audio-group"), "list", "--class", "display"});
  EXPECT_NE(text.output.find("IOMMU group 1  (not viable: 0000:01:00.0 on nouveau, 0000:01:00.1 "
                             "on snd_hda_intel; 2 more devices not selected)"),
            std::string::npos)
      << text.output;
  const auto none =
      vfiokit_cli({"--host-root", sysfs_root("gpu-audio-group"), "list", "--class", "storage"});
  EXPECT_EQ(none.output, "no PCI device matches the selection\n");

  for (const auto& bad : std::vector<std::vector<std::string>>{
           {"-s", "zz"}, {"-s", "1:2:3:4"}, {"-d", "10de"}, {"--class", "toaster"}}) {
    std::vector<std::string> args{"--host-root", sysfs_root("gpu-audio-group"), "list"};
    args.insert(args.end(), bad.begin(), bad.end());
    const auto result = vfiokit_cli(args);
    EXPECT_EQ(result.exit_status, 2) << bad[0] << " " << bad[1] << ": " << result.output;
    EXPECT_NE(result.output.find(bad[1]), std::string::npos) << result.output;
  }
}

// A network interface name stands for its PCI function wherever a BDF is accepted.
TEST(Cli, AnInterfaceNameStandsForItsPciFunction) {
  const auto show = vfiokit_cli({"--host-root", sysfs_root("rig"), "show", "eth0", "--json"});
  ASSERT_EQ(show.exit_status, 0) << show.output;
  EXPECT_EQ(nlohmann::json::parse(show.output)["device"]["bdf"], "0000:00:03.0");
  const auto loopback = vfiokit_cli({"--host-root", sysfs_root("rig"), "check", "lo"});
  EXPECT_EQ(loopback.exit_status, 2);
  EXPECT_NE(loopback.output.find("network interface lo is virtual"), std::string::npos)
      << loopback.output;
  const auto dry =
      vfiokit_cli({"--host-root", sysfs_root("sriov-pf"), "bind", "--dry-run", "--json", "eth1"});
  EXPECT_NE(dry.output.find("\"0000:03:"), std::string::npos) << dry.output;
}

// IDs pci.ids does not know are named as lspci names them.
TEST(Cli, UnknownIdsAreNamedAsLspciNamesThem) {
  const auto edu = vfiokit_cli({"--host-root", sysfs_root("rig"), "show", "00:01.0"});
  ASSERT_EQ(edu.exit_status, 0) << edu.output;
  EXPECT_NE(edu.output.find("Unclassified device [00ff]: Device 1234:11e8 [1234:11e8]"),
            std::string::npos)
      << edu.output;
  EXPECT_NE(edu.output.find("Subsystem:      Red Hat, Inc. Device 1100 [1af4:1100]"),
            std::string::npos)
      << edu.output;
}

TEST(Cli, ShowJsonHasTheParsedFacts) {
  const auto result = vfiokit_cli({"--host-root", sysfs_root("rig"), "show", "00:02.0", "--json"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  const auto json = nlohmann::json::parse(result.output)["device"];
  EXPECT_EQ(json["bdf"], "0000:00:02.0");
  EXPECT_EQ(json["vendor_id"], "0x1b36");
  EXPECT_EQ(json["device_id"], "0x0010");
  EXPECT_EQ(json["class"], "0x010802");
  EXPECT_EQ(json["revision"], "0x02");
  EXPECT_EQ(json["device"], "QEMU NVM Express Controller");
  EXPECT_EQ(json["msix"]["vectors"], 65);
  EXPECT_EQ(json["msix"]["table_offset"], "0x2000");
  EXPECT_EQ(json["iommu_group_devices"], nlohmann::json::array({"0000:00:02.0"}));
  EXPECT_EQ(json["host_use"]["block"][0]["name"], "nvme0n1");
}

TEST(Cli, MalformedBdfIsAUsageErrorAndAMissingDeviceAFailure) {
  const auto malformed = vfiokit_cli({"--host-root", sysfs_root("rig"), "show", "00:02"});
  EXPECT_EQ(malformed.exit_status, 2);
  EXPECT_NE(malformed.output.find("'00:02' is neither a PCI address nor a network interface"),
            std::string::npos)
      << malformed.output;
  const auto missing = vfiokit_cli({"--host-root", sysfs_root("rig"), "check", "0000:00:09.0"});
  EXPECT_EQ(missing.exit_status, 1);
  EXPECT_NE(missing.output.find("no PCI function 0000:00:09.0"), std::string::npos);
  const auto json = vfiokit_cli({"--host-root", sysfs_root("rig"), "bind", "zz", "--json"});
  EXPECT_EQ(json.exit_status, 2);
  EXPECT_EQ(nlohmann::json::parse(json.output)["error"]["kind"], "usage");
}

TEST(Cli, CheckExitsOneWhenAnythingFails) {
  EXPECT_EQ(vfiokit_cli({"--host-root", sysfs_root("rig"), "check", "0000:00:02.0"}).exit_status,
            0);
  const auto json =
      vfiokit_cli({"--host-root", sysfs_root("boot-vga"), "check", "0000:00:02.0", "--json"});
  EXPECT_EQ(json.exit_status, 1);
  EXPECT_EQ(nlohmann::json::parse(json.output)["ready"], false);
}

TEST(Cli, BindDryRunShowsThePlanAndRefusesWithExitThree) {
  const auto ok = vfiokit_cli(
      {"--host-root", sysfs_root("gpu-audio-group"), "bind", "--dry-run", "0000:01:00.0"});
  EXPECT_EQ(ok.exit_status, 0) << ok.output;
  EXPECT_NE(ok.output.find("0000:01:00.1  snd_hda_intel -> vfio-pci"), std::string::npos)
      << ok.output;
  const auto refused =
      vfiokit_cli({"--host-root", sysfs_root("mounted-disk"), "bind", "--dry-run", "0000:04:00.0"});
  EXPECT_EQ(refused.exit_status, 3);
  EXPECT_NE(refused.output.find("override with --force-block"), std::string::npos);
  const auto json = vfiokit_cli(
      {"--host-root", sysfs_root("mounted-disk"), "bind", "--dry-run", "--json", "0000:04:00.0"});
  EXPECT_EQ(json.exit_status, 3);
  const auto document = nlohmann::json::parse(json.output);
  EXPECT_EQ(document["plan"]["refused"][0]["check"], "block");
  EXPECT_EQ(document["plan"]["refused"][0]["force_flag"], "--force-block");
  EXPECT_EQ(vfiokit_cli({"--host-root", sysfs_root("mounted-disk"), "bind", "--dry-run",
                         "--force-block", "0000:04:00.0"})
                .exit_status,
            0);
}

TEST(Cli, WaitMustBeSecondsFromZeroToADay) {
  const std::string root = sysfs_root("gpu-audio-group");
  for (const char* bad : {"nan", "inf", "1e300", "-1", "86401", "10s"}) {
    SCOPED_TRACE(bad);
    for (const std::vector<std::string>& command :
         {std::vector<std::string>{"bind", "--dry-run", "0000:01:00.0"},
          std::vector<std::string>{"unbind", "--dry-run", "0000:01:00.0"},
          std::vector<std::string>{"restore", "--dry-run", "--all"},
          std::vector<std::string>{"persist", "--dry-run", "0000:01:00.0"},
          std::vector<std::string>{"launch", "0000:01:00.0", "--qemu", "--dry-run", "--qemu-binary",
                                   "/bin/true"}}) {
      std::vector<std::string> args{"--host-root", root};
      args.insert(args.end(), command.begin(), command.end());
      args.insert(args.end(), {"--wait", bad});
      const auto result = vfiokit_cli(args);
      EXPECT_EQ(result.exit_status, 2) << command[0] << ": " << result.output;
    }
  }
  EXPECT_EQ(vfiokit_cli({"--host-root", root, "bind", "--dry-run", "0000:01:00.0", "--wait", "0.5"})
                .exit_status,
            0);
}

TEST(Cli, PersistWaitsForTheStateLock) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  {
    const bind::StateLock held(copy.paths().run / "vfiokit", std::chrono::milliseconds(0));
    const auto refused =
        vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0", "--wait", "0"});
    EXPECT_EQ(refused.exit_status, 1) << refused.output;
    EXPECT_NE(refused.output.find("another vfiokit process"), std::string::npos) << refused.output;
    EXPECT_TRUE(list_dir(copy.root() / "etc/udev/rules.d").empty());
  }
  EXPECT_EQ(
      vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0", "--wait", "0"}).exit_status, 0);
  EXPECT_EQ(list_dir(copy.root() / "etc/udev/rules.d").size(), 2u);
}

TEST(Cli, RestoreNeedsDevicesOrAll) {
  EXPECT_EQ(vfiokit_cli({"--host-root", sysfs_root("rig"), "restore"}).exit_status, 2);
  EXPECT_EQ(vfiokit_cli({"--host-root", sysfs_root("rig"), "restore", "--all", "0000:00:02.0"})
                .exit_status,
            2);
  const auto empty =
      vfiokit_cli({"--host-root", sysfs_root("rig"), "restore", "--all", "--dry-run"});
  EXPECT_EQ(empty.exit_status, 0);
  EXPECT_NE(empty.output.find("nothing to restore"), std::string::npos);
}

// restore --all on a fixture tree: the GPU's entry is usable (and the GPU already home, so no
// write is needed), its audio function's entry is truncated, and a VF's entry outlived the VF.
TEST(Cli, RestoreTakesHomeWhatItCanAndReportsEachEntryItCannot) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const auto devices = copy.root() / "run/vfiokit/devices";
  std::filesystem::create_directories(devices);
  auto entry = [](const char* bdf, const char* driver) {
    return std::string("vfiokit-journal 1\nbdf ") + bdf + "\ngroup 1\noriginal-driver " + driver +
           "\noriginal-override -\ntarget-driver vfio-pci\nstate bound\npid 1\n";
  };
  write_file_durable(devices / "0000:01:00.0", entry("0000:01:00.0", "nouveau"));
  write_file_durable(devices / "0000:01:00.1", "vfiokit-journal 1\nbdf 0000:01:00.1\ngr");
  write_file_durable(devices / "0000:0a:00.0", entry("0000:0a:00.0", "ixgbevf"));

  const auto named = vfiokit_cli({"--host-root", root, "restore", "0000:01:00.0", "--json"});
  EXPECT_EQ(named.exit_status, 0) << named.output;
  EXPECT_EQ(list_dir(devices), (std::vector<std::string>{"0000:01:00.1", "0000:0a:00.0"}));

  write_file_durable(devices / "0000:01:00.0", entry("0000:01:00.0", "nouveau"));
  const auto all = vfiokit_cli({"--host-root", root, "restore", "--all"});
  EXPECT_EQ(all.exit_status, 1) << all.output;
  EXPECT_NE(all.output.find("0000:01:00.0  already on nouveau"), std::string::npos) << all.output;
  EXPECT_NE(all.output.find("left in the journal:\n  " + (devices / "0000:01:00.1").string() +
                            ": damaged"),
            std::string::npos)
      << all.output;
  EXPECT_NE(all.output.find("0000:0a:00.0 is not on this host any more"), std::string::npos);
  EXPECT_EQ(list_dir(devices), (std::vector<std::string>{"0000:01:00.1", "0000:0a:00.0"}));

  const auto json = vfiokit_cli({"--host-root", root, "restore", "--all", "--json"});
  EXPECT_EQ(json.exit_status, 1);
  const auto document = nlohmann::json::parse(json.output);
  ASSERT_EQ(document["left"].size(), 2u);
  EXPECT_EQ(document["left"][0]["bdf"], "0000:01:00.1");
  EXPECT_EQ(document["left"][1]["path"], (devices / "0000:0a:00.0").string());
  EXPECT_FALSE(document["left"][1]["fix"].get<std::string>().empty());
}

// vfiokit started in the background with VFIOKIT_DEBUG_STOP_AT, stopped there, then sent
// `signal` and continued: what a Ctrl-C in the middle of a change looks like.
CommandResult signalled_midway(std::vector<std::string> args, const std::string& stop_at,
                               int signal) {
  args.insert(args.begin(), VFIOKIT_CLI);
  ChildOptions options;
  options.environment = {"VFIOKIT_DEBUG_STOP_AT=" + stop_at};
  options.output = ChildOutput::capture;
  ChildProcess child = ChildProcess::spawn(args, options);
  const std::string stat = "/proc/" + std::to_string(child.pid()) + "/stat";
  for (int tries = 0;; ++tries) {
    const std::string text = read_file_if_exists(stat).value_or(")  ");
    if (text.substr(text.rfind(')') + 2, 1) == "T") break;
    if (tries > 1000) return {-1, "never stopped at " + stop_at + ": " + child.read_output()};
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  child.kill(signal);
  child.kill(SIGCONT);
  CommandResult result;
  result.output = child.read_output();
  result.exit_status = child.wait().value();
  return result;
}

TEST(Cli, ASignalDuringABindRollsItBackAndExits128PlusTheSignal) {
  test::FixtureCopy copy(test::fixture("sysfs/mounted-disk"));
  const auto result = signalled_midway(
      {"--host-root", copy.root().string(), "bind", "0000:05:00.0"}, "unbind", SIGINT);
  EXPECT_EQ(result.exit_status, 130) << result.output;
  EXPECT_NE(result.output.find("stopped by SIGINT before it finished"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("0000:05:00.0=rolled back: back on nvme"), std::string::npos)
      << result.output;
  EXPECT_TRUE(list_dir(copy.root() / "run/vfiokit/devices").empty());
}

TEST(Cli, ASignalDuringAnUnbindLetsItFinishAndSaysSo) {
  test::FixtureCopy copy(test::fixture("sysfs/vfio-in-use"));
  const auto result = signalled_midway({"--host-root", copy.root().string(), "unbind",
                                        "0000:06:00.0", "--force-group-in-use", "--json"},
                                       "unbind", SIGTERM);
  EXPECT_EQ(result.exit_status, 143) << result.output;
  // The document follows the hook's own line on stderr.
  const auto document = nlohmann::json::parse(result.output.substr(result.output.find('{')));
  EXPECT_EQ(document["signal"], "SIGTERM");
  ASSERT_EQ(document["result"].size(), 1u);
  EXPECT_EQ(document["result"][0]["ok"], true);
}

// `vfiokit persist ... | head -1`: the reader is gone by the time vfiokit writes its report.
TEST(Cli, AClosedOutputPipeDoesNotKillAChange) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);
  const std::string root = copy.root().string();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::signal(SIGPIPE, SIG_DFL);
    const char* argv[] = {VFIOKIT_CLI, "--host-root",  root.c_str(),
                          "persist",   "0000:01:00.0", nullptr};
    ::execv(VFIOKIT_CLI, const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(list_dir(copy.root() / "etc/udev/rules.d").size(), 2u);
}

TEST(Cli, PersistWritesRulesUnderTheHostRoot) {
  test::FixtureCopy copy(test::fixture("sysfs/gpu-audio-group"));
  const std::string root = copy.root().string();
  const auto result = vfiokit_cli({"--host-root", root, "persist", "0000:01:00.0"});
  EXPECT_EQ(result.exit_status, 0) << result.output;
  const auto list = nlohmann::json::parse(
      vfiokit_cli({"--host-root", root, "persist", "--list", "--json"}).output);
  ASSERT_EQ(list["persisted"].size(), 2u);  // the GPU and its audio function
  EXPECT_EQ(list["persisted"][1]["host_driver"], "snd_hda_intel");
  EXPECT_EQ(
      vfiokit_cli({"--host-root", root, "persist", "--remove", "0000:01:00.0", "0000:01:00.1"})
          .exit_status,
      0);
  EXPECT_NE(vfiokit_cli({"--host-root", root, "persist", "--list"}).output.find("no devices"),
            std::string::npos);
}

}  // namespace
}  // namespace vfiokit

namespace vfiokit {
namespace {

TEST(CliLaunch, NeedsAPayloadOrQemuAndChecksItsArgumentsFirst) {
  const std::string root = test::fixture("sysfs").append("gpu-audio-group").string();
  EXPECT_EQ(vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0"}).exit_status, 2);
  EXPECT_EQ(vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "edu-dma",
                         "--dry-run"})
                .exit_status,
            2);
  EXPECT_EQ(
      vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "edu-dma", "--qemu"})
          .exit_status,
      2);
  const auto unknown =
      vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "no-such"});
  EXPECT_EQ(unknown.exit_status, 2);
  EXPECT_NE(unknown.output.find(
                "vfiokit carries edu-dma, dirty-pages, edu-intx, nvme-identify, faulty, silent"),
            std::string::npos)
      << unknown.output;
  const auto probe =
      vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "irq-probe"});
  EXPECT_EQ(probe.exit_status, 2);
  EXPECT_NE(probe.output.find("selftest BDF --stage irq-kvm"), std::string::npos) << probe.output;
  const auto long_serial = vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload",
                                        "nvme-identify", "--expect-serial", std::string(21, 'x')});
  EXPECT_EQ(long_serial.exit_status, 2) << long_serial.output;
  const auto no_qemu = vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--qemu",
                                    "--qemu-binary", "/nonexistent/qemu"});
  EXPECT_EQ(no_qemu.exit_status, 2);
  EXPECT_NE(no_qemu.output.find("fix: install it"), std::string::npos) << no_qemu.output;
}

TEST(CliLaunch, StatisticsOptionsAreCheckedBeforeAnythingMoves) {
  const std::string root = test::fixture("sysfs").append("gpu-audio-group").string();
  const auto with_qemu = vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--qemu",
                                      "--stats", "--qemu-binary", "/bin/true"});
  EXPECT_EQ(with_qemu.exit_status, 2);
  EXPECT_NE(with_qemu.output.find("--stats, --metrics-file and --dirty-log go with --payload"),
            std::string::npos)
      << with_qemu.output;
  const auto no_folder =
      vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "edu-dma",
                   "--metrics-file", "/nonexistent-folder/vfiokit.prom"});
  EXPECT_EQ(no_folder.exit_status, 2);
  EXPECT_NE(no_folder.output.find("the folder /nonexistent-folder does not exist"),
            std::string::npos)
      << no_folder.output;
  const auto folder = vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload",
                                   "edu-dma", "--metrics-file", "/tmp"});
  EXPECT_EQ(folder.exit_status, 2);
  EXPECT_NE(folder.output.find("name a file in it, such as /tmp/vfiokit.prom"), std::string::npos)
      << folder.output;
  EXPECT_EQ(vfiokit_cli({"--host-root", root, "launch", "0000:01:00.0", "--payload", "edu-dma",
                         "--dirty-log", "--interval", "0"})
                .exit_status,
            2);
  const auto lone_interval = vfiokit_cli(
      {"--host-root", root, "launch", "0000:01:00.0", "--payload", "edu-dma", "--interval", "1"});
  EXPECT_EQ(lone_interval.exit_status, 2);
  EXPECT_NE(lone_interval.output.find("--interval goes with --dirty-log or --metrics-file"),
            std::string::npos)
      << lone_interval.output;
}

TEST(CliLaunch, QemuDryRunKeepsTheGpuAndItsAudioOnOneSlot) {
  const auto result =
      vfiokit_cli({"--host-root", test::fixture("sysfs").append("gpu-audio-group").string(),
                   "launch", "0000:01:00.0", "--qemu", "--dry-run", "--qemu-binary", "/bin/true",
                   "--", "-m", "4G", "-append", "a b"});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  EXPECT_NE(result.output.find("0000:01:00.1  snd_hda_intel -> vfio-pci  shares IOMMU group 1"),
            std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("/bin/true -m 4G -append 'a b' -device "
                               "vfio-pci,host=0000:01:00.0,addr=0x10.0,multifunction=on -device "
                               "vfio-pci,host=0000:01:00.1,addr=0x10.1"),
            std::string::npos)
      << result.output;
}

TEST(CliLaunch, QemuDryRunShowsThePlanExactlyAsBindDoes) {
  const std::string root = test::fixture("sysfs").append("sriov-pf").string();
  const auto launch =
      vfiokit_cli({"--host-root", root, "launch", "0000:03:00.0", "--qemu", "--dry-run", "--json",
                   "--force-net", "--qemu-binary", "/bin/true"});
  const auto bind = vfiokit_cli(
      {"--host-root", root, "bind", "0000:03:00.0", "--dry-run", "--json", "--force-net"});
  EXPECT_EQ(launch.exit_status, 3) << launch.output;
  EXPECT_EQ(bind.exit_status, 3) << bind.output;
  const auto launched = nlohmann::json::parse(launch.output);
  const auto bound = nlohmann::json::parse(bind.output);
  EXPECT_EQ(launched["plan"], bound["plan"]);
  EXPECT_EQ(launched["plan"]["forced"][0]["check"], "net");
  EXPECT_EQ(launched["command"][0], "/bin/true");
  // A group another process holds cannot be opened for a guest: launch has no override for it.
  EXPECT_EQ(vfiokit_cli({"--host-root", root, "launch", "0000:03:00.0", "--qemu", "--dry-run",
                         "--force-group-in-use", "--qemu-binary", "/bin/true"})
                .exit_status,
            2);
}

TEST(CliLaunch, QemuDryRunOfTheBootVgaIsRefused) {
  const auto result =
      vfiokit_cli({"--host-root", test::fixture("sysfs").append("boot-vga").string(), "launch",
                   "0000:00:02.0", "--qemu", "--dry-run", "--json", "--qemu-binary", "/bin/true"});
  EXPECT_EQ(result.exit_status, 3) << result.output;
  const auto json = nlohmann::json::parse(result.output);
  ASSERT_EQ(json["plan"]["refused"].size(), 1u);
  EXPECT_EQ(json["plan"]["refused"][0]["check"], "boot-vga");
  EXPECT_EQ(json["plan"]["refused"][0]["force_flag"], "--force-boot-vga");
}

}  // namespace
}  // namespace vfiokit
