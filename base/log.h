// Logging: spdlog on stderr, quiet by default (warnings and errors only); each -v adds a level,
// -q leaves errors only. Logs go to stderr, so stdout stays clean for tables and --json.
#pragma once

#include <spdlog/common.h>

namespace vfiokit {

struct LogSettings {
  int verbosity = 0;    // 0: warnings and errors; 1: info; 2: debug; 3 or more: trace
  bool quiet = false;   // errors only: no warnings, no progress (-q)
  bool colour = false;  // the level in colour: see colour_wanted
};

// The lowest level logged with these settings.
spdlog::level::level_enum log_level(const LogSettings& settings) noexcept;

void init_logging(const LogSettings& settings);

// Whether the logging was set up quiet (-q): what shows progress on stderr stays silent too.
bool logging_is_quiet() noexcept;

// Colour only on a terminal, and never while NO_COLOR is set to anything but the empty string
// (no-color.org). `no_color` is NO_COLOR's value, or null when it is unset.
bool colour_wanted(bool is_terminal, const char* no_color) noexcept;

// colour_wanted for this process's file descriptor `fd` and its environment.
bool colour_wanted_for(int fd) noexcept;

}  // namespace vfiokit
