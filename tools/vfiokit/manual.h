// The manual, generated from one source: CLI11's model of the command line (names, options,
// help) and manual_text.h (what CLI11 does not hold). It renders vfiokit(1) and a page per
// subcommand in roff, and docs/cli.md, so `--help`, the man pages and the docs cannot drift.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit::cli {

struct ManPage {
  std::string name;  // "vfiokit", "vfiokit-bind": the file is NAME.1
  std::string roff;
};

// The subcommands users see: CLI11's, less the hidden ones (group "").
std::vector<const CLI::App*> visible_subcommands(const CLI::App& app);

// The options users see, positionals last, without --help.
std::vector<const CLI::Option*> visible_options(const CLI::App& app);

// "--owner USER[:GROUP]", "--dry-run", "BDF..." as in a synopsis (without brackets).
std::string option_usage(const CLI::Option& option);

// "vfiokit bind [--dry-run] ... BDF...".
std::string synopsis(const CLI::App& app);

std::vector<ManPage> man_pages(const CLI::App& app);
std::string cli_markdown(const CLI::App& app);

// The Markdown subset of manual_text.h as man(7) roff: paragraphs, `code` (bold), fenced code
// blocks, tables (one tagged paragraph per row) and "### " headings. Escapes what roff would
// read as requests or escapes.
std::string roff_from_markdown(std::string_view markdown);

// Text as roff: backslashes and hyphens escaped, `code` in bold.
std::string roff_text(std::string_view text);

}  // namespace vfiokit::cli
