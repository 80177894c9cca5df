// Logging: spdlog, quiet by default (warnings and errors only); each -v adds a level.
#pragma once

namespace vfiokit {

// 0: warnings and errors; 1: info; 2: debug; 3 or more: trace. Logs go to stderr, so stdout
// stays clean for tables and --json.
void init_logging(int verbosity);

}  // namespace vfiokit
