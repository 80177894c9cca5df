#include "tools/vfiokit/report.h"

#include <algorithm>
#include <cstdio>
#include <iostream>

namespace vfiokit::cli {

namespace {

// Passes stay quiet ("ok"); what needs attention is in capitals so it stands out in a column.
std::string_view status_word(CheckStatus status) {
  switch (status) {
    case CheckStatus::pass:
      return "ok";
    case CheckStatus::warn:
      return "WARN";
    case CheckStatus::fail:
      return "FAIL";
  }
  return "FAIL";
}

}  // namespace

void print_checks(std::ostream& out, const std::vector<CheckResult>& checks) {
  constexpr std::size_t kStatusWidth = 6;
  std::size_t id_width = 0;
  for (const auto& check : checks) id_width = std::max(id_width, check.id.size());
  const std::string fix_indent(2 + kStatusWidth + id_width + 2, ' ');
  for (const auto& check : checks) {
    const std::string_view word = status_word(check.status);
    out << "  " << word << std::string(kStatusWidth - word.size(), ' ') << check.id
        << std::string(id_width + 2 - check.id.size(), ' ') << check.summary << '\n';
    if (!check.fix.empty()) out << fix_indent << "fix: " << check.fix << '\n';
  }
}

Json to_json(const CheckResult& check) {
  return {{"id", check.id},
          {"status", to_string(check.status)},
          {"summary", check.summary},
          {"fix", check.fix.empty() ? Json(nullptr) : Json(check.fix)}};
}

Json to_json(const std::vector<CheckResult>& checks) {
  Json list = Json::array();
  for (const auto& check : checks) list.push_back(to_json(check));
  return list;
}

Json to_json(const Error& error) {
  Json context = Json::object();
  for (const auto& entry : error.context()) context[entry.key] = entry.value;
  const bool has_errno = error.errno_value() != 0;
  return {{"kind", to_string(error.kind())},
          {"exit_status", exit_status_for(error.kind())},
          {"operation", error.operation()},
          {"message", error.message()},
          {"errno", has_errno ? Json(error.errno_value()) : Json(nullptr)},
          {"errno_name", has_errno ? Json(errno_name(error.errno_value())) : Json(nullptr)},
          {"context", context},
          {"fix", error.hint().empty() ? Json(nullptr) : Json(error.hint())},
          {"text", error.what()}};
}

std::string json_hex(std::uint64_t value, int digits) {
  char buffer[24];
  std::snprintf(buffer, sizeof buffer, "0x%0*llx", digits, static_cast<unsigned long long>(value));
  return buffer;
}

Json versioned(const Json& document) {
  Json out{{"schema_version", kJsonSchemaVersion}};
  for (const auto& [key, value] : document.items()) out[key] = value;
  return out;
}

void print_json(std::ostream& out, const Json& document) {
  out << versioned(document).dump(2, ' ', false, Json::error_handler_t::replace) << '\n';
}

void print_error(const Error& error, bool json) noexcept {
  // The last thing a failing command does: it must not fail itself (a stdout that is gone,
  // text that is not UTF-8, memory that ran out).
  try {
    if (json) {
      print_json(std::cout, Json{{"error", to_json(error)}});
      return;
    }
    std::cerr << "vfiokit: error: " << error.what() << '\n';
    if (!error.hint().empty()) std::cerr << "  fix: " << error.hint() << '\n';
  } catch (...) {
    std::fputs("vfiokit: error: ", stderr);
    std::fputs(error.what(), stderr);
    std::fputs("\n", stderr);
  }
}

}  // namespace vfiokit::cli
