#include "vfiokit/base/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace vfiokit {

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_logger_st("vfiokit");
  // Debug output carries microsecond timestamps: it is what one reads to see where time goes.
  logger->set_pattern(verbosity >= 2 ? "vfiokit: %H:%M:%S.%f %l: %v" : "vfiokit: %l: %v");
  switch (verbosity) {
    case 0:
      logger->set_level(spdlog::level::warn);
      break;
    case 1:
      logger->set_level(spdlog::level::info);
      break;
    case 2:
      logger->set_level(spdlog::level::debug);
      break;
    default:
      logger->set_level(spdlog::level::trace);
      break;
  }
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace vfiokit
