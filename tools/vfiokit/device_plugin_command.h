// `vfiokit device-plugin`: its options live in the CLI's one model (help, man page, completion),
// but the serving is a program of its own, vfiokit-device-plugin, the only one that links gRPC.
// Every other command stays a small, statically linked start-up (docs/performance.md), and
// gRPC's shared libstdc++ never meets vfiokit's static one in one process. `vfiokit
// device-plugin ...` runs that program with the same command line (as git runs git-NAME); the
// program sets its own runner, which serves.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "tools/vfiokit/commands.h"

namespace vfiokit::cli {

struct DevicePluginArgs {
  std::string config;
  std::string plugin_dir = "/var/lib/kubelet/device-plugins";
  std::chrono::milliseconds health_interval{5000};
  std::chrono::milliseconds wait{30000};
  bool keep_bound = false;
  bool dry_run = false;
};

using DevicePluginRunner = int (*)(const GlobalOptions& options, const DevicePluginArgs& args);

// vfiokit-device-plugin's main() sets the runner that serves; without one, the command runs
// that program.
void set_device_plugin_runner(DevicePluginRunner runner) noexcept;

// vfiokit-device-plugin next to this program (the build tree, bin/), else where it is
// installed (LIBEXECDIR/vfiokit/). Throws Error naming both places when it is in neither.
std::filesystem::path device_plugin_program();

}  // namespace vfiokit::cli
