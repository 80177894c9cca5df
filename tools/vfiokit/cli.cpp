#include "tools/vfiokit/cli.h"

#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <string_view>

#include <spdlog/spdlog.h>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/privilege.h"
#include "tools/vfiokit/report.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"

namespace vfiokit::cli {
namespace {

// Dynamic initialization runs before main(): as early as vfiokit's own code can see the clock.
const std::chrono::steady_clock::time_point g_process_start = std::chrono::steady_clock::now();

// A CLI11 parse error as vfiokit's usage error, with the help of the subcommand it concerns.
Error usage_error(const CLI::App& app, const CLI::ParseError& parse_error) {
  std::string command = "vfiokit";
  for (const CLI::App* sub : app.get_subcommands()) {
    if (sub->parsed()) command += " " + sub->get_name();
  }
  return Error("parse arguments", parse_error.what())
      .kind(ErrorKind::usage)
      .hint("see `" + command + " --help`");
}

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

  // A reader that goes away (`vfiokit list | head -1`) makes writes fail with EPIPE instead of
  // killing vfiokit, which may be half-way through moving a device. Children get the default
  // back (base/process.cpp).
  ::signal(SIGPIPE, SIG_IGN);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version are answers, printed by CLI11 with status 0.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    // Real mistakes are usage errors, printed like every other error (as JSON with --json,
    // which may come after the mistake, so argv is searched for it).
    const bool json = std::any_of(
        argv + 1, argv + argc, [](const char* arg) { return std::string_view(arg) == "--json"; });
    print_error(usage_error(app, e), json);
    return exit_status_for(ErrorKind::usage);
  }
  init_logging(options.verbosity);
  spdlog::debug("vfiokit {} started", VFIOKIT_VERSION);
  for (auto& command : commands) {
    if (!command.app->parsed()) continue;
    try {
      return command.run();
    } catch (const Error& e) {
      print_error(explain_permission(e, ::geteuid()), options.json);
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
