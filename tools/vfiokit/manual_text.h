// What the manual says beyond CLI11's model (tools/vfiokit/manual.h renders both): the long
// description of each subcommand, exit statuses, files, environment and examples. Written in
// the small Markdown subset manual.cpp turns into roff: paragraphs, `code`, fenced code blocks,
// tables and "### " sub-headings.
#pragma once

#include <span>
#include <string_view>

namespace vfiokit::cli {

struct CommandText {
  std::string_view name;         // the subcommand, e.g. "bind"
  std::string_view description;  // after CLI11's one-line description
  std::string_view examples;     // a fenced code block, or empty
  std::string_view see_also;     // other pages, e.g. "vfiokit-unbind(1), vfiokit-restore(1)"
};

struct ManualText {
  std::string_view overview;     // vfiokit(1)'s DESCRIPTION, after CLI11's description
  std::string_view exit_status;  // every page's EXIT STATUS
  std::string_view files;
  std::string_view environment;
  std::string_view examples;  // vfiokit(1)'s EXAMPLES
  std::string_view see_also;  // vfiokit(1)'s other references, besides the subcommands' pages
  std::span<const CommandText> commands;
};

const ManualText& manual_text();

// A value's name in synopses and option lists where CLI11's type name says too little
// ("TEXT"): "--owner" -> "USER[:GROUP]". Empty when there is none.
std::string_view option_value_name(std::string_view long_name);

}  // namespace vfiokit::cli
