// Logging: spdlog on stderr, quiet by default (warnings and errors only); each -v adds a level,
// -q leaves errors only. Logs go to stderr, so stdout stays clean for tables and --json.
//
// Callers write `log::debug("{} joined group {}", bdf, group)`: fmt's format strings, checked at
// compile time. Only base/log.cpp includes spdlog. A line is formatted there, through fmt's
// type-erased arguments, and only when its level is on, so a source that logs pays for
// <fmt/core.h> alone instead of compiling spdlog and all of fmt (header-only, for the static
// runtime: cmake/dependencies.cmake), which cost 10-15 s of compile time per file.
#pragma once

#include <string_view>
#include <utility>

#include <fmt/core.h>

namespace vfiokit {

// spdlog's levels, in its order (base/log.cpp checks the correspondence).
enum class LogLevel { trace, debug, info, warn, error, off };

struct LogSettings {
  int verbosity = 0;    // 0: warnings and errors; 1: info; 2: debug; 3 or more: trace
  bool quiet = false;   // errors only: no warnings, no progress (-q)
  bool colour = false;  // the level in colour: see colour_wanted
};

// The lowest level logged with these settings.
LogLevel log_level(const LogSettings& settings) noexcept;

void init_logging(const LogSettings& settings);

// Whether the logging was set up quiet (-q): what shows progress on stderr stays silent too.
bool logging_is_quiet() noexcept;

// Colour only on a terminal, and never while NO_COLOR is set to anything but the empty string
// (no-color.org). `no_color` is NO_COLOR's value, or null when it is unset.
bool colour_wanted(bool is_terminal, const char* no_color) noexcept;

// colour_wanted for this process's file descriptor `fd` and its environment.
bool colour_wanted_for(int fd) noexcept;

namespace log {

// The lowest level the default logger writes now.
LogLevel level() noexcept;
void set_level(LogLevel level) noexcept;
[[nodiscard]] inline bool enabled(LogLevel at) noexcept { return at >= level(); }

// One line at `at`: `format` with `args`, formatted only if that level is on.
void write(LogLevel at, fmt::string_view format, fmt::format_args args);

template <typename... Args>
void trace(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(LogLevel::trace)) write(LogLevel::trace, format, fmt::make_format_args(args...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(LogLevel::debug)) write(LogLevel::debug, format, fmt::make_format_args(args...));
}
template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(LogLevel::info)) write(LogLevel::info, format, fmt::make_format_args(args...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(LogLevel::warn)) write(LogLevel::warn, format, fmt::make_format_args(args...));
}
template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(LogLevel::error)) write(LogLevel::error, format, fmt::make_format_args(args...));
}

}  // namespace log
}  // namespace vfiokit
