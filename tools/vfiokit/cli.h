// The `vfiokit` command line: CLI11 subcommands over the vfiokit libraries.
#pragma once

#include <chrono>

namespace vfiokit::cli {

// When this process began running vfiokit code (static initialization, before main()).
std::chrono::steady_clock::time_point process_start() noexcept;

// Parses argv, runs one subcommand, and returns the process exit status (docs/cli.md):
// 0 done, 1 failed, 2 usage error, 3 refused by a safety check.
int run(int argc, char** argv);

}  // namespace vfiokit::cli
