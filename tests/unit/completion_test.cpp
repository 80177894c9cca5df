// The bash and zsh completions as a shell runs them: the generated function is called with
// COMP_WORDS/COMP_CWORD (zsh: words/CURRENT) set, and its candidates are what it offers. BDFs
// come from the real `vfiokit __complete` on fixture trees.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "tests/unit/cli_model.h"
#include "tests/unit/fixtures.h"
#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/completion.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/journal.h"
#include "vfiokit/bind/persist.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::cli {
namespace {

using Model = CliModel;

const std::string kGpuAudio = test::fixture("sysfs/gpu-audio-group").string();

// Runs the generated bash completion for `words` (the last one is being completed, as bash
// split them: a BDF's colons are words of their own) and returns COMPREPLY, one per line.
std::string bash_candidates(std::vector<std::string> words, const std::string& line) {
  static const test::TempDir dir;
  const std::filesystem::path script = dir.path() / "vfiokit.bash";
  if (!std::filesystem::exists(script)) {
    Model model;
    std::ofstream(script) << bash_completion(model.app);
  }
  words.insert(words.begin(), VFIOKIT_CLI);
  const std::string full_line = std::string(VFIOKIT_CLI) + " " + line;
  std::vector<std::string> argv = {"bash",
                                   "-c",
                                   "source \"$1\"; shift; COMP_LINE=$1; COMP_POINT=${#1}; shift; "
                                   "COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _vfiokit; "
                                   "printf '%s\\n' \"${COMPREPLY[@]}\" | sort",
                                   "bash",
                                   script.string(),
                                   full_line};
  argv.insert(argv.end(), words.begin(), words.end());
  const auto run = run_command(argv);
  EXPECT_EQ(run.exit_status, 0) << run.output;
  return run.output;
}

TEST(Completion, BashOffersSubcommandsAndEachSubcommandsOptions) {
  EXPECT_EQ(bash_candidates({"b"}, "b"), "bind\n");
  EXPECT_EQ(bash_candidates({"re"}, "re"), "restore\n");
  EXPECT_EQ(bash_candidates({"bind", "--force-n"}, "bind --force-n"), "--force-net\n");
  // persist has no --force-group-in-use, bind has.
  EXPECT_EQ(bash_candidates({"persist", "--force-g"}, "persist --force-g"), "\n");
  EXPECT_EQ(bash_candidates({"bind", "--force-g"}, "bind --force-g"), "--force-group-in-use\n");
  EXPECT_EQ(bash_candidates({"selftest", "0000:00:03.0", "--stage", "irq"},
                            "selftest 0000:00:03.0 --stage irq"),
            "irq-eventfd\nirq-kvm\n");
}

TEST(Completion, BashOffersTheHostsDevicesForCommandsTakingOne) {
  EXPECT_EQ(bash_candidates({"--host-root", kGpuAudio, "show", ""},
                            "--host-root " + kGpuAudio + " show "),
            "0000:00:00.0\n0000:00:01.0\n0000:01:00.0\n0000:01:00.1\n");
  // bash split "0000:01:" at its colons and replaces only what follows the last one.
  EXPECT_EQ(bash_candidates({"--host-root", kGpuAudio, "bind", "0000", ":", "01", ":"},
                            "--host-root " + kGpuAudio + " bind 0000:01:"),
            "00.0\n00.1\n");
  // list takes no device.
  EXPECT_EQ(bash_candidates({"--host-root", kGpuAudio, "list", ""},
                            "--host-root " + kGpuAudio + " list "),
            "\n");
}

TEST(Completion, BashOffersJournalledDevicesForRestoreAndPersistedOnesForPersistRemove) {
  const test::FixtureCopy host(test::fixture("sysfs/gpu-audio-group"));
  bind::Journal(host.root() / "run/vfiokit")
      .record({*pci::parse_bdf("0000:01:00.1"), 1, "snd_hda_intel", std::nullopt, "vfio-pci",
               bind::JournalState::bound, 1});
  bind::PersistStore(host.root() / "etc")
      .add({{*pci::parse_bdf("0000:01:00.0"), 0x10de, 0x2204, "nouveau"}});
  const std::string root = host.root().string();

  EXPECT_EQ(
      bash_candidates({"--host-root", root, "restore", ""}, "--host-root " + root + " restore "),
      "0000:01:00.1\n");
  EXPECT_EQ(bash_candidates({"--host-root", root, "persist", "--remove", ""},
                            "--host-root " + root + " persist --remove "),
            "0000:01:00.0\n");
  // Without --remove, persist takes any device.
  EXPECT_EQ(bash_candidates({"--host-root", root, "persist", "0000", ":", "00", ":"},
                            "--host-root " + root + " persist 0000:00:"),
            "00.0\n01.0\n");
}

TEST(Completion, TheHiddenCompleteCommandListsKindsAndRefusesUnknownOnes) {
  const auto devices =
      run_command({VFIOKIT_CLI, "--host-root", kGpuAudio, "__complete", "devices"});
  EXPECT_EQ(devices.exit_status, 0);
  EXPECT_EQ(devices.output, "0000:00:00.0\n0000:00:01.0\n0000:01:00.0\n0000:01:00.1\n");
  // No journal and no persisted device: nothing, successfully.
  const auto journalled =
      run_command({VFIOKIT_CLI, "--host-root", kGpuAudio, "__complete", "journalled"});
  EXPECT_EQ(journalled.exit_status, 0);
  EXPECT_EQ(journalled.output, "");
  EXPECT_EQ(run_command({VFIOKIT_CLI, "__complete", "everything"}).exit_status, 2);
}

TEST(Completion, ArgumentKindsFollowTheModel) {
  Model model;
  std::map<std::string, std::string> kinds;
  for (const CLI::App* sub :
       model.app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); })) {
    kinds[sub->get_name()] = argument_kind(*sub);
  }
  EXPECT_EQ(kinds["bind"], "devices");
  EXPECT_EQ(kinds["restore"], "journalled");
  EXPECT_EQ(kinds["doctor"], "");
  EXPECT_EQ(kinds["list"], "");
  EXPECT_EQ(kinds.count("__complete"), 0u);
}

// zsh's completion system is stubbed: compadd and _describe print what they are given.
std::string zsh_candidates(const std::vector<std::string>& words) {
  static const test::TempDir dir;
  const std::filesystem::path script = dir.path() / "_vfiokit";
  if (!std::filesystem::exists(script)) {
    Model model;
    std::ofstream(script) << zsh_completion(model.app);
  }
  std::vector<std::string> argv = {
      "zsh",
      "-f",
      "-c",
      "compadd() { while [[ $1 == -* && $1 != -- ]]; do shift; done; [[ $1 == -- ]] && shift; "
      "print -l -- \"$@\"; }; "
      "_describe() { local -a list; list=(\"${(@P)4}\"); print -l -- \"${list[@]%%:*}\"; }; "
      "script=$1; shift; words=(\"$@\"); CURRENT=$#; PREFIX=${words[CURRENT]}; source $script",
      "zsh",
      script.string(),
      VFIOKIT_CLI};
  argv.insert(argv.end(), words.begin(), words.end());
  const auto run = run_command(argv);
  EXPECT_EQ(run.exit_status, 0) << run.output;
  return run.output;
}

bool have_zsh() {
  try {
    return run_command({"zsh", "-fc", "true"}).exit_status == 0;
  } catch (const Error&) {
    return false;
  }
}

TEST(Completion, ZshScriptParsesAndOffersTheSameCandidates) {
  if (!have_zsh()) GTEST_SKIP() << "no zsh (tools/install-deps installs it)";
  Model model;
  const test::TempDir dir;
  std::ofstream(dir.path() / "_vfiokit") << zsh_completion(model.app);
  const auto syntax = run_command({"zsh", "-n", (dir.path() / "_vfiokit").string()});
  EXPECT_EQ(syntax.exit_status, 0) << syntax.output;

  const std::string subcommands = zsh_candidates({""});
  EXPECT_NE(subcommands.find("bind\n"), std::string::npos) << subcommands;
  EXPECT_NE(subcommands.find("restore\n"), std::string::npos) << subcommands;
  EXPECT_EQ(subcommands.find("__"), std::string::npos) << subcommands;
  EXPECT_NE(zsh_candidates({"bind", "--"}).find("--force-net\n"), std::string::npos);
  EXPECT_EQ(zsh_candidates({"--host-root", kGpuAudio, "show", ""}),
            "0000:00:00.0\n0000:00:01.0\n0000:01:00.0\n0000:01:00.1\n");
}

}  // namespace
}  // namespace vfiokit::cli
