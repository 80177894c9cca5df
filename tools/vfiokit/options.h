// Option helpers shared by the subcommands: durations given in seconds on the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace vfiokit::cli {

// A plain decimal number of seconds ("30", "0.25") within [min_seconds, max_seconds], kept to
// the millisecond; nullopt for anything else ("nan", "inf", "1e300", "-1", "10s", "0x10", " 1").
std::optional<std::chrono::milliseconds> parse_seconds(std::string_view text, double min_seconds,
                                                       double max_seconds) noexcept;

// --NAME SECONDS into `target` through parse_seconds: a value outside the range is a usage error
// before anything runs. `target` keeps its value as the default.
CLI::Option* add_seconds_option(CLI::App* sub, const std::string& name,
                                std::chrono::milliseconds& target, double min_seconds,
                                double max_seconds, const std::string& help);

}  // namespace vfiokit::cli
