// The `vfiokit` command line: CLI11 subcommands over the vfiokit libraries.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <vector>

#include "tools/vfiokit/commands.h"

namespace vfiokit::cli {

// When this process began running vfiokit code (static initialization, before main()).
std::chrono::steady_clock::time_point process_start() noexcept;

// The whole command line on `app`: the program's options, every subcommand, and the hidden
// ones the build and the shell completion use (`__manual`). The one model that --help, the man
// pages, docs/cli.md and the completion scripts come from.
std::vector<Command> make_cli(CLI::App& app, GlobalOptions& options);

// Parses argv, runs one subcommand, and returns the process exit status (docs/cli.md):
// 0 done, 1 failed, 2 usage error, 3 refused by a safety check.
int run(int argc, char** argv);

}  // namespace vfiokit::cli
