#include "vfiokit/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include <spdlog/sinks/ansicolor_sink.h>
#include <spdlog/spdlog.h>

namespace vfiokit {
namespace {

std::atomic<bool> g_quiet{false};

// LogLevel is spdlog's level_enum without spdlog's header: the same values, in the same order
// (spdlog's critical, which vfiokit never uses, sits between error and off).
constexpr spdlog::level::level_enum to_spdlog(LogLevel level) noexcept {
  return level == LogLevel::off ? spdlog::level::off
                                : static_cast<spdlog::level::level_enum>(static_cast<int>(level));
}
constexpr LogLevel from_spdlog(spdlog::level::level_enum level) noexcept {
  if (level >= spdlog::level::critical) return LogLevel::off;
  return static_cast<LogLevel>(static_cast<int>(level));
}
static_assert(to_spdlog(LogLevel::trace) == spdlog::level::trace);
static_assert(to_spdlog(LogLevel::debug) == spdlog::level::debug);
static_assert(to_spdlog(LogLevel::info) == spdlog::level::info);
static_assert(to_spdlog(LogLevel::warn) == spdlog::level::warn);
static_assert(to_spdlog(LogLevel::error) == spdlog::level::err);
static_assert(from_spdlog(spdlog::level::err) == LogLevel::error);

}  // namespace

LogLevel log_level(const LogSettings& settings) noexcept {
  if (settings.quiet) return LogLevel::error;
  switch (settings.verbosity) {
    case 0:
      return LogLevel::warn;
    case 1:
      return LogLevel::info;
    case 2:
      return LogLevel::debug;
    default:
      return settings.verbosity < 0 ? LogLevel::warn : LogLevel::trace;
  }
}

namespace log {

LogLevel level() noexcept { return from_spdlog(spdlog::get_level()); }

void set_level(LogLevel level) noexcept { spdlog::set_level(to_spdlog(level)); }

void write(LogLevel at, fmt::string_view format, fmt::format_args args) {
  const std::string line = fmt::vformat(format, args);
  spdlog::default_logger_raw()->log(to_spdlog(at), spdlog::string_view_t(line));
}

}  // namespace log

void init_logging(const LogSettings& settings) {
  // spdlog's own "automatic" mode looks at the terminal but not at NO_COLOR: vfiokit decides.
  // The _mt sink: the device plugin logs from gRPC's threads beside its own, and the VMM from
  // vCPU threads; a mutex per line costs nothing next to the write.
  auto sink = std::make_shared<spdlog::sinks::ansicolor_stderr_sink_mt>(
      settings.colour ? spdlog::color_mode::always : spdlog::color_mode::never);
  auto logger = std::make_shared<spdlog::logger>("vfiokit", std::move(sink));
  // Debug output carries microsecond timestamps: it is what one reads to see where time goes.
  logger->set_pattern(settings.verbosity >= 2 && !settings.quiet ? "vfiokit: %H:%M:%S.%f %^%l%$: %v"
                                                                 : "vfiokit: %^%l%$: %v");
  logger->set_level(to_spdlog(log_level(settings)));
  g_quiet = settings.quiet;
  spdlog::set_default_logger(std::move(logger));
}

bool logging_is_quiet() noexcept { return g_quiet; }

bool colour_wanted(bool is_terminal, const char* no_color) noexcept {
  const bool no_color_set = no_color != nullptr && no_color[0] != '\0';
  return is_terminal && !no_color_set;
}

bool colour_wanted_for(int fd) noexcept {
  return colour_wanted(::isatty(fd) == 1, std::getenv("NO_COLOR"));
}

}  // namespace vfiokit
