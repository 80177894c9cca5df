// The Prometheus text exposition format (version 0.0.4), as node_exporter's textfile collector
// and every Prometheus scraper read it: per metric family a # HELP and a # TYPE line, then one
// line per sample, `name{label="value",...} number`. Pure: the caller writes the text where it
// goes (atomically: the collector may read the file at any moment).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace vfiokit {

struct MetricSample {
  std::vector<std::pair<std::string, std::string>> labels;  // in the order they are printed
  // Counters from the kernel are 64-bit integers: kept exact, never rounded through a double.
  std::variant<std::uint64_t, double> value;
};

enum class MetricType { counter, gauge };

struct MetricFamily {
  std::string name;  // [a-zA-Z_:][a-zA-Z0-9_:]*; a counter's ends in _total
  std::string help;
  MetricType type = MetricType::gauge;
  std::vector<MetricSample> samples;
};

// `text` with every character a metric name may not hold turned into '_' (and a leading digit
// prefixed by '_'): KVM's statistic names become metric names this way.
std::string metric_name(std::string_view text);
[[nodiscard]] bool valid_metric_name(std::string_view name) noexcept;
[[nodiscard]] bool valid_label_name(std::string_view name) noexcept;

// The exposition text of `families`, in order, each ending with a newline. Throws Error on a
// name or label name the format does not allow, or a family name given twice (a scraper
// rejects the whole file for either).
std::string prometheus_text(std::span<const MetricFamily> families);

}  // namespace vfiokit
