#include "tools/vfiokit/cli.h"

#include <signal.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <string_view>

#include "tools/vfiokit/commands.h"
#include "tools/vfiokit/completion.h"
#include "tools/vfiokit/manual.h"
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

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw Error::from_last_errno("write").with("path", path);
}

// Writes `text` to `path`, or to stdout for "-"; nothing for an empty path.
void write_output(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text;
  } else if (!path.empty()) {
    write_file(path, text);
  }
}

// `vfiokit __manual`: what the build generates from the model (man pages, docs/cli.md, the
// completion scripts).
Command add_manual_command(CLI::App& app) {
  struct Args {
    std::string man_dir;
    std::string markdown;
    std::string bash;
    std::string zsh;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("__manual", "Write the manual generated from this model");
  sub->group("");
  sub->add_option("--man", args->man_dir, "Write NAME.1 for every page into this folder");
  sub->add_option("--markdown", args->markdown, "Write docs/cli.md here ('-': stdout)");
  sub->add_option("--bash", args->bash, "Write the bash completion here ('-': stdout)");
  sub->add_option("--zsh", args->zsh, "Write the zsh completion here ('-': stdout)");
  return {sub, [&app, args] {
            if (!args->man_dir.empty()) {
              for (const ManPage& page : man_pages(app)) {
                write_file(args->man_dir + "/" + page.name + ".1", page.roff);
              }
            }
            write_output(args->markdown, cli_markdown(app));
            write_output(args->bash, bash_completion(app));
            write_output(args->zsh, zsh_completion(app));
            return 0;
          }};
}

// `vfiokit [--host-root DIR] __complete KIND`: the BDFs the completion scripts offer.
Command add_complete_command(CLI::App& app, GlobalOptions& options) {
  auto kind = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("__complete", "Print the BDFs of a kind, one a line");
  sub->group("");
  sub->add_option("KIND", *kind, "devices, journalled or persisted")->required();
  return {sub, [&options, kind] {
            for (const std::string& bdf : complete_bdfs(options.paths(), *kind)) {
              std::cout << bdf << "\n";
            }
            return 0;
          }};
}

}  // namespace

std::chrono::steady_clock::time_point process_start() noexcept { return g_process_start; }

std::vector<Command> make_cli(CLI::App& app, GlobalOptions& options) {
  app.name("vfiokit");
  app.description(
      "vfiokit: find PCI devices, hand them to VFIO safely, and drive them from user space");
  app.set_version_flag("--version", std::string("vfiokit ") + VFIOKIT_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  auto* verbose = app.add_flag("-v,--verbose", options.verbosity,
                               "More log output on stderr (repeat for more)");
  app.add_flag("-q,--quiet", options.quiet,
               "Errors only on stderr: no warnings, no progress. Results still go to stdout")
      ->excludes(verbose);
  app.add_option("--host-root", options.host_root,
                 "Read sys/, proc/, dev/... below this folder instead of / (for tests)")
      ->check(CLI::ExistingDirectory)
      ->group("");

  std::vector<Command> commands = make_commands(app, options);
  commands.push_back(add_manual_command(app));
  commands.push_back(add_complete_command(app, options));
  return commands;
}

int run(int argc, char** argv) {
  CLI::App app;
  GlobalOptions options;
  options.command_line.assign(argv, argv + argc);
  const std::vector<Command> commands = make_cli(app, options);

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
  init_logging({.verbosity = options.verbosity,
                .quiet = options.quiet,
                .colour = colour_wanted_for(STDERR_FILENO)});
  log::debug("vfiokit {} started", VFIOKIT_VERSION);
  for (const auto& command : commands) {
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
