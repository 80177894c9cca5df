// The outcome of one readiness or safety check, as `doctor`, `check` and `bind` report it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vfiokit {

enum class CheckStatus { pass, warn, fail };

struct CheckResult {
  std::string id;  // stable machine name, e.g. "iommu", "interrupt-remapping"
  CheckStatus status = CheckStatus::pass;
  std::string summary;  // one line: what was found
  std::string fix;      // what to do about a warn or fail; empty on pass
};

std::string_view to_string(CheckStatus status) noexcept;

// True when no check failed (warnings allowed).
bool all_passed(const std::vector<CheckResult>& checks) noexcept;

}  // namespace vfiokit
