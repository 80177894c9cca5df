// How the CLI shows results and errors: text for people, JSON (--json) with the same facts.
#pragma once

#include <iosfwd>
#include <string_view>
#include <vector>

#include "tools/vfiokit/json.h"
#include "vfiokit/base/check.h"
#include "vfiokit/base/error.h"

namespace vfiokit::cli {

// A check list as aligned lines: status, id, summary, and "fix:" under each warn or fail.
void print_checks(std::ostream& out, const std::vector<CheckResult>& checks);

Json to_json(const CheckResult& check);
Json to_json(const std::vector<CheckResult>& checks);
Json to_json(const Error& error);

// The one place errors are formatted: text on stderr, or {"error": {...}} on stdout with --json.
void print_error(const Error& error, bool json) noexcept;

}  // namespace vfiokit::cli
