#include "vfiokit/base/prometheus.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "vfiokit/base/error.h"

namespace vfiokit {
namespace {

bool name_start(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool name_char(char c) noexcept { return name_start(c) || (c >= '0' && c <= '9'); }

// HELP text escapes backslash and newline; label values also the double quote.
std::string escaped(std::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(const std::variant<std::uint64_t, double>& value) {
  if (const auto* integer = std::get_if<std::uint64_t>(&value)) return std::to_string(*integer);
  const double real = std::get<double>(value);
  if (std::isnan(real)) return "NaN";
  if (std::isinf(real)) return real > 0 ? "+Inf" : "-Inf";
  // The shortest of 15, 16 or 17 significant digits that reads back as the same double: 0.0525,
  // not 0.052499999999999998.
  char text[32];
  for (const int digits : {15, 16, 17}) {
    std::snprintf(text, sizeof text, "%.*g", digits, real);
    if (std::strtod(text, nullptr) == real) break;
  }
  return text;
}

}  // namespace

std::string metric_name(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 1);
  if (text.empty() || !(name_start(text.front()) || text.front() == ':')) out += '_';
  for (const char c : text) out += (name_char(c) || c == ':') ? c : '_';
  return out;
}

bool valid_metric_name(std::string_view name) noexcept {
  if (name.empty() || !(name_start(name.front()) || name.front() == ':')) return false;
  for (const char c : name) {
    if (!name_char(c) && c != ':') return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) noexcept {
  if (name.empty() || !name_start(name.front())) return false;
  // Names beginning with __ are reserved for Prometheus's own use.
  if (name.starts_with("__")) return false;
  for (const char c : name) {
    if (!name_char(c)) return false;
  }
  return true;
}

std::string prometheus_text(std::span<const MetricFamily> families) {
  std::string out;
  std::set<std::string_view> seen;
  for (const MetricFamily& family : families) {
    if (!valid_metric_name(family.name)) {
      throw Error("write metrics", "'" + family.name + "' is not a valid Prometheus metric name");
    }
    if (!seen.insert(family.name).second) {
      throw Error("write metrics", "the metric family " + family.name + " is given twice");
    }
    out += "# HELP " + family.name + ' ' + escaped(family.help, false) + '\n';
    out += "# TYPE " + family.name + ' ' +
           (family.type == MetricType::counter ? "counter" : "gauge") + '\n';
    for (const MetricSample& sample : family.samples) {
      out += family.name;
      if (!sample.labels.empty()) {
        out += '{';
        bool first = true;
        for (const auto& [name, value] : sample.labels) {
          if (!valid_label_name(name)) {
            throw Error("write metrics", "'" + name + "' is not a valid Prometheus label name")
                .with("metric", family.name);
          }
          if (!first) out += ',';
          first = false;
          out += name + "=\"" + escaped(value, true) + '"';
        }
        out += '}';
      }
      out += ' ' + number(sample.value) + '\n';
    }
  }
  return out;
}

}  // namespace vfiokit
