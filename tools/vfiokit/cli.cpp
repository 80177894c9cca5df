#include "tools/vfiokit/cli.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/log.h"
#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/report.h"

namespace vfiokit::cli {
namespace {

// Dynamic initialization runs before main(): as early as vfiokit's own code can see the clock.
const std::chrono::steady_clock::time_point g_process_start = std::chrono::steady_clock::now();

}  // namespace

std::chrono::steady_clock::time_point process_start() noexcept { return g_process_start; }

int run(int argc, char** argv) {
  CLI::App app{
      "vfiokit: find PCI devices, hand them to VFIO safely, and drive them from user space",
      "vfiokit"};
  app.set_version_flag("--version", std::string("vfiokit ") + VFIOKIT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions options;
  app.add_flag("-v,--verbose", options.verbosity, "More log output on stderr (repeat for more)");
  app.add_option("--host-root", options.host_root,
                 "Read sys/, proc/, dev/... below this folder instead of / (for tests)")
      ->check(CLI::ExistingDirectory)
      ->group("");

  std::vector<Command> commands = make_commands(app, options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help and --version itself with status 0; real mistakes are usage errors (2).
    const int status = app.exit(e);
    return status == 0 ? 0 : exit_status_for(ErrorKind::usage);
  }
  init_logging(options.verbosity);
  spdlog::debug("vfiokit {} started", VFIOKIT_VERSION);
  for (auto& command : commands) {
    if (!command.app->parsed()) continue;
    try {
      return command.run();
    } catch (const Error& e) {
      print_error(e, options.json);
      return exit_status_for(e.kind());
    } catch (const std::exception& e) {
      print_error(Error(command.app->get_name(), std::string("internal error: ") + e.what()),
                  options.json);
      return 1;
    }
  }
  return exit_status_for(ErrorKind::usage);
}

}  // namespace vfiokit::cli
