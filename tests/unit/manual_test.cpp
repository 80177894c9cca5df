// The manual is generated from the CLI's own model: docs/cli.md must be exactly what the model
// generates, every option must reach the pages, and every page must be clean roff.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "tests/unit/cli_model.h"
#include "tests/unit/fixtures.h"
#include "tools/vfiokit/cli.h"
#include "tools/vfiokit/manual.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/process.h"

namespace vfiokit::cli {
namespace {

using Model = CliModel;

std::filesystem::path docs_cli_md() {
  return std::filesystem::path(VFIOKIT_SOURCE_DIR) / "docs/cli.md";
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(Manual, DocsCliMdIsWhatTheModelGenerates) {
  Model model;
  const std::vector<std::string> committed = lines_of(read_text(docs_cli_md()));
  const std::vector<std::string> generated = lines_of(cli_markdown(model.app));
  ASSERT_FALSE(committed.empty()) << docs_cli_md() << " is missing or empty";
  for (std::size_t i = 0; i < std::max(committed.size(), generated.size()); ++i) {
    const std::string in_file = i < committed.size() ? committed[i] : "(end of file)";
    const std::string from_model = i < generated.size() ? generated[i] : "(end of file)";
    ASSERT_EQ(in_file, from_model)
        << "docs/cli.md line " << i + 1 << " differs from what the CLI's model generates. "
        << "Edit tools/vfiokit/manual_text.cpp or the options' help, then run "
        << "`cmake --build build --target cli-docs`";
  }
}

TEST(Manual, EverySubcommandAndOptionIsInItsPageAndInCliMd) {
  Model model;
  const std::string markdown = read_text(docs_cli_md());
  const std::vector<ManPage> pages = man_pages(model.app);
  const std::vector<const CLI::App*> subcommands = visible_subcommands(model.app);
  ASSERT_EQ(pages.size(), subcommands.size() + 1);  // vfiokit(1) and one page per subcommand
  EXPECT_GE(subcommands.size(), 11u);

  for (std::size_t i = 0; i < subcommands.size(); ++i) {
    const CLI::App& sub = *subcommands[i];
    const ManPage& page = pages[i + 1];
    EXPECT_EQ(page.name, "vfiokit-" + sub.get_name());
    EXPECT_NE(markdown.find("\n## `vfiokit " + sub.get_name() + "`\n"), std::string::npos)
        << "docs/cli.md has no section for " << sub.get_name();
    EXPECT_NE(markdown.find(synopsis(sub)), std::string::npos)
        << "docs/cli.md lacks the synopsis " << synopsis(sub);
    for (const CLI::Option* option : visible_options(sub)) {
      const std::string usage = option_usage(*option);
      EXPECT_NE(markdown.find("- `" + usage), std::string::npos)
          << "docs/cli.md does not list " << sub.get_name() << " " << usage;
      EXPECT_NE(markdown.find(option->get_description()), std::string::npos)
          << "docs/cli.md lacks the help of " << sub.get_name() << " " << usage;
      EXPECT_NE(page.roff.find(roff_text("`" + usage + "`")), std::string::npos)
          << page.name << "(1) does not list " << usage;
      EXPECT_NE(page.roff.find(roff_text(option->get_description())), std::string::npos)
          << page.name << "(1) lacks the help of " << usage;
    }
    for (const char* section :
         {".SH NAME\n", ".SH SYNOPSIS\n", ".SH DESCRIPTION\n", ".SH OPTIONS\n", ".SH EXIT STATUS\n",
          ".SH FILES\n", ".SH ENVIRONMENT\n", ".SH EXAMPLES\n", ".SH SEE ALSO\n"}) {
      EXPECT_NE(page.roff.find(section), std::string::npos) << page.name << " lacks " << section;
    }
  }
}

TEST(Manual, HiddenSubcommandsAndOptionsStayOutOfTheManual) {
  Model model;
  for (const ManPage& page : man_pages(model.app)) {
    EXPECT_EQ(page.name.find("__"), std::string::npos);
    EXPECT_EQ(page.roff.find("__manual"), std::string::npos) << page.name;
    EXPECT_EQ(page.roff.find("host\\-root"), std::string::npos) << page.name;
  }
  EXPECT_EQ(cli_markdown(model.app).find("__manual"), std::string::npos);
}

TEST(Manual, EveryPageIsCleanForGroffWithAllWarnings) {
  Model model;
  const test::TempDir dir;
  for (const ManPage& page : man_pages(model.app)) {
    const std::filesystem::path file = dir.path() / (page.name + ".1");
    std::ofstream(file) << page.roff;
    for (const char* device : {"-Tutf8", "-Tascii"}) {
      CommandResult result;
      try {
        result = run_command({"groff", "-man", "-ww", "-z", device, file.string()});
      } catch (const Error& e) {
        FAIL() << "groff is needed (tools/install-deps installs groff-base): " << e.what();
      }
      EXPECT_EQ(result.exit_status, 0) << page.name << " " << device;
      EXPECT_EQ(result.output, "") << page.name << "(1) " << device;
    }
  }
}

TEST(Manual, RoffTextEscapesWhatRoffWouldInterpret) {
  EXPECT_EQ(roff_from_markdown(".so /etc/passwd\n'br\nback\\slash `--all` and pass-through\n"),
            ".PP\n\\&.so /etc/passwd\n\\&'br\nback\\eslash \\fB\\-\\-all\\fR and pass-through\n");
  // Code that goes on over a line break stays bold to its end.
  EXPECT_EQ(roff_text("a `b\nc` d"), "a \\fBb\nc\\fR d");
  EXPECT_EQ(roff_text("an unterminated `code"), "an unterminated \\fBcode\\fR");
}

TEST(Manual, TablesBecomeTaggedParagraphsWithTheirHeadings) {
  EXPECT_EQ(roff_from_markdown("| check | refuses when | override |\n| --- | --- | --- |\n"
                               "| net | up | `--force-net` |\n"),
            ".TP\nnet\nrefuses when: up\n.br\noverride: \\fB\\-\\-force\\-net\\fR\n");
  EXPECT_EQ(roff_from_markdown("| status | meaning |\n| --- | --- |\n| 0 | done |\n"),
            ".TP\n0\ndone\n");
  EXPECT_EQ(roff_from_markdown("```\n.x \\\n```\n"), ".PP\n.RS 4\n.nf\n\\&.x \\e\n.fi\n.RE\n");
}

TEST(Manual, TheProgramWritesEveryPage) {
  const test::TempDir dir;
  const auto result = run_command({VFIOKIT_CLI, "__manual", "--man", dir.path().string()});
  ASSERT_EQ(result.exit_status, 0) << result.output;
  for (const char* name :
       {"vfiokit.1", "vfiokit-bind.1", "vfiokit-persist.1", "vfiokit-launch.1"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(dir.path() / name)) << name;
  }
  EXPECT_NE(read_text(dir.path() / "vfiokit-bind.1").find(".TH VFIOKIT\\-BIND 1"),
            std::string::npos);
}

}  // namespace
}  // namespace vfiokit::cli
