#include "tools/vfiokit/commands.h"

namespace vfiokit::cli {

std::vector<Command> make_commands(CLI::App& app, GlobalOptions& options) {
  return {add_doctor_command(app, options)};
}

}  // namespace vfiokit::cli
