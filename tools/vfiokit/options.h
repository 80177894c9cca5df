// Option helpers shared by the subcommands: durations given in seconds on the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <string>

namespace vfiokit::cli {

// --NAME SECONDS into `target`: a finite number of seconds within [min_seconds, max_seconds]
// (fractions allowed, kept to the millisecond); anything else ("soon", nan, 1e300, a negative
// number) is a usage error before anything runs. `target` keeps its value as the default.
CLI::Option* add_seconds_option(CLI::App* sub, const std::string& name,
                                std::chrono::milliseconds& target, double min_seconds,
                                double max_seconds, const std::string& help);

}  // namespace vfiokit::cli
