// The subcommands; each lives in its own command_*.cpp and registers itself in make_commands().
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::cli {

struct GlobalOptions {
  int verbosity = 0;
  bool quiet = false;     // -q: errors only on stderr
  std::string host_root;  // empty: the live system
  bool json = false;      // set by the subcommand that ran, so errors come out as JSON too
  // argv as given: `vfiokit device-plugin` runs its own program with it.
  std::vector<std::string> command_line;

  [[nodiscard]] HostPaths paths() const {
    return host_root.empty() ? HostPaths{} : HostPaths::under(host_root);
  }
};

struct Command {
  CLI::App* app;
  std::function<int()> run;  // returns the exit status; throws vfiokit::Error on failure
};

std::vector<Command> make_commands(CLI::App& app, GlobalOptions& options);

Command add_doctor_command(CLI::App& app, GlobalOptions& options);
Command add_list_command(CLI::App& app, GlobalOptions& options);
Command add_show_command(CLI::App& app, GlobalOptions& options);
Command add_check_command(CLI::App& app, GlobalOptions& options);
Command add_bind_command(CLI::App& app, GlobalOptions& options);
Command add_unbind_command(CLI::App& app, GlobalOptions& options);
Command add_restore_command(CLI::App& app, GlobalOptions& options);
Command add_persist_command(CLI::App& app, GlobalOptions& options);
Command add_info_command(CLI::App& app, GlobalOptions& options);
Command add_selftest_command(CLI::App& app, GlobalOptions& options);
Command add_launch_command(CLI::App& app, GlobalOptions& options);
Command add_rom_command(CLI::App& app, GlobalOptions& options);
Command add_device_plugin_command(CLI::App& app, GlobalOptions& options);

}  // namespace vfiokit::cli
