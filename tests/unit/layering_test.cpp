// The layering rule, enforced: every folder's #includes and CMake links stay inside what the
// table in docs/architecture.md allows it, and every library folder is in that table. A new
// edge is a decision to make in the document first, not something that creeps in.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "vfiokit/base/fs.h"
#include "vfiokit/base/text.h"

namespace vfiokit {
namespace {

namespace fs = std::filesystem;

const fs::path kSource = VFIOKIT_SOURCE_DIR;

// folder -> the folders it may use, from the "Who may use whom" table of docs/architecture.md:
// rows "| `folder` | `a`, `b` |".
std::map<std::string, std::set<std::string>> allowed_edges() {
  const std::string doc = read_file(kSource / "docs/architecture.md");
  const std::size_t section = doc.find("## Who may use whom");
  EXPECT_NE(section, std::string::npos) << "docs/architecture.md has no 'Who may use whom' table";
  std::map<std::string, std::set<std::string>> table;
  if (section == std::string::npos) return table;
  const std::regex row(R"(^\| `([a-z0-9/]+)` \|(.*)\|$)");
  const std::regex name("`([a-z0-9/]+)`");
  const std::string rest = doc.substr(section);
  for (const auto line : split_lines(rest)) {
    if (line.starts_with("## ") && line != "## Who may use whom") break;
    std::match_results<std::string_view::const_iterator> m;
    if (!std::regex_match(line.begin(), line.end(), m, row)) continue;
    auto& uses = table[m[1].str()];
    const std::string cell = m[2].str();
    for (std::sregex_iterator it(cell.begin(), cell.end(), name), end; it != end; ++it) {
      uses.insert((*it)[1].str());
    }
  }
  return table;
}

// An #include's path relative to the source root: the libraries' headers are included as
// "vfiokit/LAYER/NAME.h" (the name they are installed under), everything else as is.
std::string source_path_of(const std::string& include) {
  constexpr std::string_view kInstalledPrefix = "vfiokit/";
  return include.starts_with(kInstalledPrefix) ? include.substr(kInstalledPrefix.size()) : include;
}

// The folder a path inside the tree belongs to: its first component, or the first two for
// tools/ ("tools/vfiokit").
std::string folder_of(const std::string& relative) {
  const std::size_t slash = relative.find('/');
  if (slash == std::string::npos) return "";
  if (relative.starts_with("tools/")) {
    const std::size_t second = relative.find('/', slash + 1);
    return second == std::string::npos ? "" : relative.substr(0, second);
  }
  return relative.substr(0, slash);
}

std::vector<fs::path> sources_in(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    const auto ext = entry.path().extension();
    if (entry.is_regular_file() && (ext == ".cpp" || ext == ".h" || ext == ".c")) {
      files.push_back(entry.path());
    }
  }
  return files;
}

TEST(Layering, EveryLibraryFolderHasARowInTheTable) {
  const auto table = allowed_edges();
  ASSERT_FALSE(table.empty());
  for (const auto& entry : fs::recursive_directory_iterator(kSource)) {
    if (!entry.is_regular_file() || entry.path().filename() != "CMakeLists.txt") continue;
    const std::string text = read_file(entry.path());
    if (text.find("vfiokit_library(") == std::string::npos) continue;
    const std::string folder = fs::relative(entry.path().parent_path(), kSource).string();
    if (folder == "cmake") continue;  // the function's definition, not a library
    // Fuzz targets build their own instrumented copies of the layers' pure sources; like tests
    // and benchmarks they may use any library and none uses them.
    if (folder == "fuzz") continue;
    EXPECT_TRUE(table.count(folder)) << folder << " builds a library but has no row in the "
                                     << "'Who may use whom' table of docs/architecture.md";
  }
}

TEST(Layering, IncludesStayWithinTheAllowedFolders) {
  const auto table = allowed_edges();
  ASSERT_FALSE(table.empty());
  const std::regex include_line(R"re(^\s*#\s*include\s+"([^"]+)")re");
  for (const auto& [folder, uses] : table) {
    for (const fs::path& file : sources_in(kSource / folder)) {
      const std::string text = read_file(file);
      for (const auto line : split_lines(text)) {
        std::match_results<std::string_view::const_iterator> m;
        if (!std::regex_search(line.begin(), line.end(), m, include_line)) continue;
        const std::string included = source_path_of(m[1].str());
        const std::string target = folder_of(included);
        if (target.empty() || target == folder) continue;
        // Only the project's own folders are layers; <...> and system headers are not.
        if (!fs::exists(kSource / included)) continue;
        EXPECT_TRUE(uses.count(target))
            << fs::relative(file, kSource).string() << " includes " << m[1].str() << ", but "
            << folder << " may not use " << target << " (docs/architecture.md)";
      }
    }
  }
}

TEST(Layering, CMakeLinksStayWithinTheAllowedFolders) {
  const auto table = allowed_edges();
  ASSERT_FALSE(table.empty());
  // vfiokit::NAME is the library of folder NAME (tools/vfiokit builds vfiokit::cli).
  std::map<std::string, std::string> folder_of_library;
  for (const auto& [folder, uses] : table) {
    folder_of_library[folder == "tools/vfiokit" ? "cli" : folder] = folder;
  }
  const std::regex link("vfiokit::([a-z0-9]+)");
  for (const auto& [folder, uses] : table) {
    const std::string text = read_file(kSource / folder / "CMakeLists.txt");
    for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it) {
      const auto target = folder_of_library.find((*it)[1].str());
      ASSERT_NE(target, folder_of_library.end())
          << folder << "/CMakeLists.txt links " << (*it)[0].str() << ", which no folder builds";
      if (target->second == folder) continue;
      EXPECT_TRUE(uses.count(target->second))
          << folder << "/CMakeLists.txt links " << (*it)[0].str() << ", but " << folder
          << " may not use " << target->second << " (docs/architecture.md)";
    }
  }
}

TEST(Layering, TheTableHasNoCycles) {
  const auto table = allowed_edges();
  // Depth-first search; a folder met again while still on the path closes a cycle.
  std::map<std::string, int> state;  // 0 unseen, 1 on the path, 2 done
  std::vector<std::string> path;
  std::function<void(const std::string&)> visit = [&](const std::string& folder) {
    state[folder] = 1;
    path.push_back(folder);
    const auto it = table.find(folder);
    if (it != table.end()) {
      for (const auto& next : it->second) {
        EXPECT_NE(state[next], 1) << "cycle: " << join(path, " -> ") << " -> " << next;
        if (state[next] == 0) visit(next);
      }
    }
    path.pop_back();
    state[folder] = 2;
  };
  for (const auto& [folder, uses] : table) {
    if (state[folder] == 0) visit(folder);
  }
}

}  // namespace
}  // namespace vfiokit
