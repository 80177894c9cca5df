#include "vfiokit/base/check.h"

#include <algorithm>

namespace vfiokit {

std::string_view to_string(CheckStatus status) noexcept {
  switch (status) {
    case CheckStatus::pass:
      return "pass";
    case CheckStatus::warn:
      return "warn";
    case CheckStatus::fail:
      return "fail";
  }
  return "fail";
}

bool all_passed(const std::vector<CheckResult>& checks) noexcept {
  return std::none_of(checks.begin(), checks.end(),
                      [](const CheckResult& c) { return c.status == CheckStatus::fail; });
}

}  // namespace vfiokit
