#include "tools/vfiokit/options.h"

#include <charconv>
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

std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text, double min_seconds,
                                                       double max_seconds) noexcept {
  double value = 0;
  // Decimal only: from_chars with `fixed` takes neither exponents nor hexadecimal.
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  // NaN fails every comparison, so finiteness is tested first; 1e300 s would overflow.
  if (!std::isfinite(value) || value < min_seconds || value > max_seconds) return std::nullopt;
  return std::chrono::milliseconds(std::llround(value * 1000));
}

CLI::Option* add_seconds_option(CLI::App* sub, const std::string& name,
                                std::chrono::milliseconds& target, double min_seconds,
                                double max_seconds, const std::string& help) {
  const std::string range = seconds_text(min_seconds) + " to " + seconds_text(max_seconds);
  auto* option = sub->add_option_function<std::string>(
      name,
      [&target, name, range, min_seconds, max_seconds](const std::string& text) {
        const auto duration = parse_seconds(text, min_seconds, max_seconds);
        if (!duration) {
          throw CLI::ValidationError(
              name, "wants a number of seconds from " + range + ", not '" + text + "'");
        }
        target = *duration;
      },
      help + " (seconds, " + range + ")");
  option->type_name("SEC");
  option->default_str(seconds_text(static_cast<double>(target.count()) / 1000));
  return option;
}

}  // namespace vfiokit::cli
