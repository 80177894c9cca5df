#include "tools/vfiokit/options.h"

#include <cmath>
#include <sstream>

namespace vfiokit::cli {
namespace {

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out << seconds;
  return out.str();
}

}  // namespace

CLI::Option* add_seconds_option(CLI::App* sub, const std::string& name,
                                std::chrono::milliseconds& target, double min_seconds,
                                double max_seconds, const std::string& help) {
  const std::string range = seconds_text(min_seconds) + " to " + seconds_text(max_seconds);
  auto* option = sub->add_option_function<double>(
      name,
      [&target, name, range, min_seconds, max_seconds](const double& seconds) {
        // NaN fails both comparisons, so it is tested first; 1e300 ms would overflow.
        if (!std::isfinite(seconds) || seconds < min_seconds || seconds > max_seconds) {
          throw CLI::ValidationError(name, "wants a number of seconds from " + range);
        }
        target = std::chrono::milliseconds(std::llround(seconds * 1000));
      },
      help + " (seconds, " + range + ")");
  option->type_name("SEC");
  option->default_str(seconds_text(static_cast<double>(target.count()) / 1000));
  return option;
}

}  // namespace vfiokit::cli
