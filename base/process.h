// Running helper programs (modprobe, and later QEMU) without a shell in between.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vfiokit {

struct CommandResult {
  int exit_status = -1;  // the program's exit status, or 128 + signal number if it was killed
  std::string output;    // stdout and stderr together
};

// Runs argv[0] (looked up in PATH) with argv and waits for it. Throws Error if it cannot be
// started (e.g. ENOENT when the program is not installed).
CommandResult run_command(const std::vector<std::string>& argv);

// Where execvp would find `program`: itself if it holds a '/', else the first executable regular
// file of that name in `search_path` (a PATH value). nullopt if there is none.
std::optional<std::filesystem::path> find_program(std::string_view program,
                                                  std::string_view search_path);

}  // namespace vfiokit
