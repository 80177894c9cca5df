#include "tools/vfiokit/commands.h"

namespace vfiokit::cli {

std::vector<Command> make_commands(CLI::App& app, GlobalOptions& options) {
  return {add_doctor_command(app, options),       add_list_command(app, options),
          add_show_command(app, options),         add_check_command(app, options),
          add_bind_command(app, options),         add_unbind_command(app, options),
          add_restore_command(app, options),      add_persist_command(app, options),
          add_info_command(app, options),         add_selftest_command(app, options),
          add_launch_command(app, options),       add_rom_command(app, options),
          add_device_plugin_command(app, options)};
}

}  // namespace vfiokit::cli
