#include "vfiokit/base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include <spdlog/sinks/ansicolor_sink.h>
#include <spdlog/spdlog.h>

namespace vfiokit {
namespace {

std::atomic<bool> g_quiet{false};

}  // namespace

spdlog::level::level_enum log_level(const LogSettings& settings) noexcept {
  if (settings.quiet) return spdlog::level::err;
  switch (settings.verbosity) {
    case 0:
      return spdlog::level::warn;
    case 1:
      return spdlog::level::info;
    case 2:
      return spdlog::level::debug;
    default:
      return settings.verbosity < 0 ? spdlog::level::warn : spdlog::level::trace;
  }
}

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
  logger->set_level(log_level(settings));
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
