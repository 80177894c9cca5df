#include "tools/vfiokit/manual.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "tools/vfiokit/manual_text.h"

namespace vfiokit::cli {
namespace {

std::string full_name(const CLI::App& app) {
  std::string name = app.get_name();
  for (const CLI::App* parent = app.get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    name = parent->get_name() + " " + name;
  }
  return name;
}

std::string page_name(const CLI::App& app) {
  std::string name = full_name(app);
  std::replace(name.begin(), name.end(), ' ', '-');
  return name;
}

// CLI11's description of the program starts with its name ("vfiokit: find ...").
std::string description_of(const CLI::App& app) {
  std::string text = app.get_description();
  const std::string prefix = app.get_name() + ": ";
  if (text.starts_with(prefix)) text.erase(0, prefix.size());
  return text;
}

// The description as a sentence: capitalized, with a full stop.
std::string sentence(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  if (!text.empty() && text.back() != '.') text += '.';
  return text;
}

// The first clause of a description, for the NAME line: "Move devices, ... to vfio-pci".
std::string summary(const CLI::App& app) {
  std::string text = description_of(app);
  const std::size_t end = std::min(text.find(": "), text.find(". "));
  if (end != std::string::npos) text.resize(end);
  return text;
}

bool is_flag(const CLI::Option& option) { return option.get_expected_max() == 0; }

bool repeats(const CLI::Option& option) { return option.get_items_expected_max() > 1; }

std::string value_name(const CLI::Option& option) {
  const std::string long_name = option.get_lnames().empty() ? "" : "--" + option.get_lnames()[0];
  if (const std::string_view named = option_value_name(long_name); !named.empty()) {
    return std::string(named);
  }
  std::string type = option.get_type_name();
  type = type.substr(0, type.find_first_of(":= "));
  if (!type.empty() && type != "TEXT" && type != "UINT" && type != "INT") return type;
  std::string name = option.get_lnames().empty() ? option.get_name() : option.get_lnames()[0];
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return name;
}

// "-v, --verbose", "--owner USER[:GROUP]", "BDF...": an option as its entry in a list.
std::string option_entry(const CLI::Option& option) {
  if (option.get_positional()) return option_usage(option);
  std::string names;
  for (const auto& name : option.get_snames()) names += (names.empty() ? "-" : ", -") + name;
  for (const auto& name : option.get_lnames()) names += (names.empty() ? "--" : ", --") + name;
  return is_flag(option) ? names : names + " " + value_name(option);
}

std::string option_help(const CLI::Option& option) {
  std::string help = option.get_description();
  if (!help.empty() && help.back() != '.') help += '.';
  if (!is_flag(option) && !option.get_positional() && !option.get_default_str().empty()) {
    help += " Default: " + option.get_default_str() + ".";
  }
  return help;
}

// The groups of options in the order CLI11 shows them: "Options" (and positionals) first.
std::vector<std::pair<std::string, std::vector<const CLI::Option*>>> option_groups(
    const CLI::App& app) {
  std::vector<std::pair<std::string, std::vector<const CLI::Option*>>> groups;
  groups.emplace_back("", std::vector<const CLI::Option*>{});
  for (const CLI::Option* option : visible_options(app)) {
    const std::string group =
        option->get_group() == "Options" || option->get_positional() ? "" : option->get_group();
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& entry) { return entry.first == group; });
    if (it == groups.end()) it = groups.insert(groups.end(), {group, {}});
    it->second.push_back(option);
  }
  return groups;
}

const CommandText* command_text(const CLI::App& app) {
  for (const CommandText& text : manual_text().commands) {
    if (text.name == app.get_name()) return &text;
  }
  return nullptr;
}

std::string upper(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

// Escapes one run of text (no inline code) for roff. A hyphen that starts a word is an option's
// minus (\-); inside code every hyphen is.
std::string roff_escape(std::string_view text, bool code) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-' &&
               (code || i == 0 || std::isspace(static_cast<unsigned char>(text[i - 1])) ||
                text[i - 1] == '-' || text[i - 1] == '(' || text[i - 1] == '[')) {
      out += "\\-";
    } else {
      out += c;
    }
  }
  return out;
}

// roff reads a line that starts with '.' or '\'' as a request: \& before it makes it text.
std::string protect_line_starts(const std::string& roff) {
  std::string out;
  std::istringstream lines(roff);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && (line[0] == '.' || line[0] == '\'')) out += "\\&";
    out += line + "\n";
  }
  return out;
}

std::vector<std::string> table_cells(std::string_view row) {
  std::vector<std::string> cells;
  std::string_view rest = row;
  if (rest.starts_with('|')) rest.remove_prefix(1);
  if (rest.ends_with('|')) rest.remove_suffix(1);
  std::size_t start = 0;
  while (true) {
    const std::size_t bar = rest.find('|', start);
    std::string cell(rest.substr(start, bar == std::string_view::npos ? rest.npos : bar - start));
    cell.erase(0, cell.find_first_not_of(' '));
    cell.erase(cell.find_last_not_of(' ') + 1);
    cells.push_back(cell);
    if (bar == std::string_view::npos) break;
    start = bar + 1;
  }
  return cells;
}

std::string roff_table(const std::vector<std::string>& rows) {
  std::string out;
  const std::vector<std::string> header = table_cells(rows.at(0));
  for (std::size_t r = 2; r < rows.size(); ++r) {  // rows[1] is the "| --- |" line
    const std::vector<std::string> cells = table_cells(rows[r]);
    out += ".TP\n" + protect_line_starts(roff_text(cells.at(0)));
    for (std::size_t c = 1; c < cells.size(); ++c) {
      if (c > 1) out += ".br\n";
      const std::string text =
          header.size() > 2 && c < header.size() ? header[c] + ": " + cells[c] : cells[c];
      out += protect_line_starts(roff_text(text));
    }
  }
  return out;
}

std::string roff_options(const CLI::App& app) {
  std::string out;
  for (const auto& [group, options] : option_groups(app)) {
    if (options.empty()) continue;
    if (!group.empty()) out += ".SS " + roff_text(group) + "\n";
    for (const CLI::Option* option : options) {
      out += ".TP\n\\fB" + roff_escape(option_entry(*option), true) + "\\fR\n";
      out += protect_line_starts(roff_text(option_help(*option)));
    }
  }
  return out;
}

std::string roff_see_also(std::string_view references) {
  // "vfiokit-bind(1), udev(7)" -> "\fBvfiokit\-bind\fR(1), \fBudev\fR(7)"
  std::string out;
  std::size_t start = 0;
  while (start < references.size()) {
    std::size_t end = references.find(", ", start);
    if (end == std::string_view::npos) end = references.size();
    const std::string_view reference = references.substr(start, end - start);
    const std::size_t paren = reference.find('(');
    if (!out.empty()) out += ",\n";
    out += "\\fB" + roff_escape(reference.substr(0, paren), true) + "\\fR" +
           std::string(reference.substr(paren));
    start = end + 2;
  }
  return out + "\n";
}

std::string roff_page_head(const std::string& name, const std::string& summary_text) {
  return ".TH " + upper(roff_escape(name, true)) +
         " 1 \"\" \"vfiokit " VFIOKIT_VERSION "\" \"vfiokit manual\"\n.SH NAME\n" +
         roff_escape(name, true) + " \\- " + roff_text(summary_text) + "\n";
}

std::string roff_synopsis(const CLI::App& app) {
  std::string out = ".SH SYNOPSIS\n";
  const std::string text = synopsis(app);
  out += protect_line_starts(roff_escape(text, true));
  if (app.get_parent() == nullptr) out += ".br\n\\fBvfiokit \\-\\-version\\fR\n";
  return out;
}

std::string roff_common_sections(std::string_view examples) {
  const ManualText& text = manual_text();
  std::string out;
  out += ".SH EXIT STATUS\n" + roff_from_markdown(text.exit_status);
  out += ".SH FILES\n" + roff_from_markdown(text.files);
  out += ".SH ENVIRONMENT\n" + roff_from_markdown(text.environment);
  if (!examples.empty()) out += ".SH EXAMPLES\n" + roff_from_markdown(examples);
  return out;
}

ManPage main_page(const CLI::App& app) {
  const ManualText& text = manual_text();
  std::string roff = roff_page_head(app.get_name(), summary(app));
  roff += roff_synopsis(app);
  roff += ".SH DESCRIPTION\n.PP\n" + protect_line_starts(roff_text(sentence(description_of(app))));
  roff += roff_from_markdown(text.overview);
  roff += ".SH OPTIONS\n" + roff_options(app);
  roff += ".SH COMMANDS\n";
  std::string see_also;
  for (const CLI::App* sub : visible_subcommands(app)) {
    roff += ".TP\n\\fB" + roff_escape(page_name(*sub), true) + "\\fR(1)\n" +
            protect_line_starts(roff_text(sentence(sub->get_description())));
    see_also += page_name(*sub) + "(1), ";
  }
  roff += roff_common_sections(text.examples);
  roff += ".SH SEE ALSO\n" + roff_see_also(see_also + std::string(text.see_also));
  return {page_name(app), roff};
}

ManPage command_page(const CLI::App& sub) {
  const CommandText* text = command_text(sub);
  std::string roff = roff_page_head(page_name(sub), summary(sub));
  roff += roff_synopsis(sub);
  roff +=
      ".SH DESCRIPTION\n.PP\n" + protect_line_starts(roff_text(sentence(sub.get_description())));
  if (text != nullptr) roff += roff_from_markdown(text->description);
  roff += ".SH OPTIONS\n" + roff_options(sub);
  roff += ".PP\nThe options of \\fBvfiokit\\fR(1) (\\fB\\-v\\fR, ...) go before the subcommand.\n";
  roff += roff_common_sections(text != nullptr ? text->examples : std::string_view());
  std::string see_also = "vfiokit(1)";
  if (text != nullptr && !text->see_also.empty()) see_also += ", " + std::string(text->see_also);
  roff += ".SH SEE ALSO\n" + roff_see_also(see_also);
  return {page_name(sub), roff};
}

std::string markdown_options(const CLI::App& app) {
  std::string out;
  for (const auto& [group, options] : option_groups(app)) {
    if (options.empty()) continue;
    out += (group.empty() ? std::string("Options") : group) + ":\n\n";
    for (const CLI::Option* option : options) {
      out += "- `" + option_entry(*option) + "`: " + option_help(*option) + "\n";
    }
    out += "\n";
  }
  return out;
}

std::string trimmed(std::string_view text) {
  const std::size_t first = text.find_first_not_of('\n');
  if (first == std::string_view::npos) return {};
  const std::size_t last = text.find_last_not_of('\n');
  return std::string(text.substr(first, last - first + 1));
}

}  // namespace

std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* sub) { return !sub->get_group().empty(); });
}

std::vector<const CLI::Option*> visible_options(const CLI::App& app) {
  const CLI::Option* help = app.get_help_ptr();
  std::vector<const CLI::Option*> options = app.get_options(
      [help](const CLI::Option* option) { return option != help && !option->get_group().empty(); });
  std::stable_partition(options.begin(), options.end(),
                        [](const CLI::Option* option) { return !option->get_positional(); });
  return options;
}

std::string option_usage(const CLI::Option& option) {
  if (option.get_positional()) return option.get_name() + (repeats(option) ? "..." : "");
  const std::string name =
      option.get_snames().empty() ? "--" + option.get_lnames()[0] : "-" + option.get_snames()[0];
  return is_flag(option) ? name : name + " " + value_name(option);
}

std::string synopsis(const CLI::App& app) {
  std::string out = full_name(app);
  for (const CLI::Option* option : visible_options(app)) {
    if (option == app.get_version_ptr()) continue;  // a synopsis line of its own
    const std::string usage = option_usage(*option);
    if (option->get_positional() && option->get_required()) {
      out += " " + usage;
    } else {
      out += " [" + usage + "]";
    }
  }
  if (!visible_subcommands(app).empty()) out += " SUBCOMMAND [OPTIONS]";
  return out + "\n";
}

std::string roff_text(std::string_view text) {
  std::string out;
  bool code = false;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t tick = text.find('`', start);
    const std::string_view run =
        text.substr(start, tick == std::string_view::npos ? text.npos : tick - start);
    out += roff_escape(run, code);
    if (tick == std::string_view::npos) break;
    out += code ? "\\fR" : "\\fB";
    code = !code;
    start = tick + 1;
  }
  if (code) out += "\\fR";
  return out;
}

std::string roff_from_markdown(std::string_view markdown) {
  std::vector<std::string> lines;
  std::istringstream in{std::string(markdown)};
  for (std::string line; std::getline(in, line);) lines.push_back(line);

  std::string out;
  std::size_t i = 0;
  while (i < lines.size()) {
    const std::string& line = lines[i];
    if (line.empty()) {
      ++i;
    } else if (line.starts_with("```")) {
      out += ".PP\n.RS 4\n.nf\n";
      for (++i; i < lines.size() && !lines[i].starts_with("```"); ++i) {
        out += protect_line_starts(roff_escape(lines[i], true));
      }
      ++i;
      out += ".fi\n.RE\n";
    } else if (line.starts_with("### ")) {
      out += ".SS " + roff_text(line.substr(4)) + "\n";
      ++i;
    } else if (line.starts_with('|')) {
      std::vector<std::string> rows;
      for (; i < lines.size() && lines[i].starts_with('|'); ++i) rows.push_back(lines[i]);
      out += roff_table(rows);
    } else {
      std::string paragraph;
      for (; i < lines.size() && !lines[i].empty(); ++i) paragraph += lines[i] + "\n";
      out += ".PP\n" + protect_line_starts(roff_text(paragraph));
    }
  }
  return out;
}

std::vector<ManPage> man_pages(const CLI::App& app) {
  std::vector<ManPage> pages{main_page(app)};
  for (const CLI::App* sub : visible_subcommands(app)) pages.push_back(command_page(*sub));
  return pages;
}

std::string cli_markdown(const CLI::App& app) {
  const ManualText& text = manual_text();
  std::string out = "# The `vfiokit` command line\n\n";
  out +=
      "<!-- Generated from the CLI's options (tools/vfiokit/command_*.cpp, cli.cpp) and "
      "tools/vfiokit/manual_text.cpp,\n     which the man pages come from too. Edit those, then "
      "run `cmake --build build --target cli-docs`;\n     a unit test (Manual.*) fails while this "
      "file differs. -->\n\n";
  out += "```\n" + synopsis(app) + "vfiokit --version\n```\n\n";
  out += sentence(description_of(app)) + "\n\n";
  out += trimmed(text.overview) + "\n\n";
  out += markdown_options(app);
  out += "## Exit statuses\n\n" + trimmed(text.exit_status) + "\n\n";
  out += "## Files\n\n" + trimmed(text.files) + "\n\n";
  out += "## Environment\n\n" + trimmed(text.environment) + "\n\n";
  out += "## Examples\n\n" + trimmed(text.examples) + "\n";
  for (const CLI::App* sub : visible_subcommands(app)) {
    const CommandText* command = command_text(*sub);
    out += "\n## `" + full_name(*sub) + "`\n\n";
    out += "```\n" + synopsis(*sub) + "```\n\n";
    out += sentence(sub->get_description()) + "\n\n";
    out += markdown_options(*sub);
    if (command == nullptr) continue;
    out += trimmed(command->description) + "\n";
    if (!command->examples.empty()) out += "\nExamples:\n\n" + trimmed(command->examples) + "\n";
  }
  return out;
}

}  // namespace vfiokit::cli
