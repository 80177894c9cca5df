// The CLI as `vfiokit` builds it, with every subcommand: the model the man pages and the shell
// completions are generated from.
#pragma once

#include <CLI/CLI.hpp>

#include <vector>

#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/commands.h"

namespace vfiokit::cli {

struct CliModel {
  CLI::App app;
  GlobalOptions options;
  std::vector<Command> commands = make_cli(app, options);
};

}  // namespace vfiokit::cli
