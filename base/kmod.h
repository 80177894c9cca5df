// Kernel modules: is one loaded, built in, or loadable, and loading it with modprobe.
#pragma once

#include <string>
#include <string_view>

#include "vfiokit/base/host_paths.h"

namespace vfiokit {

enum class ModuleState {
  loaded,     // /sys/module/NAME/initstate says live
  builtin,    // listed in modules.builtin
  available,  // listed in modules.dep: modprobe can load it
  missing,    // none of the above
};

std::string_view to_string(ModuleState state) noexcept;

// "vfio-pci" and "vfio_pci" name the same module; sysfs uses underscores.
std::string canonical_module_name(std::string_view name);

// The running kernel's release (proc/sys/kernel/osrelease), e.g. "6.12.107+deb12-amd64".
std::string kernel_release(const HostPaths& paths);

ModuleState module_state(const HostPaths& paths, std::string_view name);

// Runs `modprobe NAME`; throws Error naming the module and modprobe's output on failure.
void load_module(std::string_view name);

}  // namespace vfiokit
