#include "vfiokit/base/kmod.h"

#include <algorithm>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"

namespace vfiokit {
namespace {

// True if `listing` (modules.builtin or modules.dep) names module `canonical`: a line whose
// path ends in "/NAME.ko" with an optional compression suffix, before any ':'.
bool listing_names_module(std::string_view listing, std::string_view canonical) {
  std::size_t pos = 0;
  while (pos < listing.size()) {
    const std::size_t end = std::min(listing.find('\n', pos), listing.size());
    std::string_view line = listing.substr(pos, end - pos);
    pos = end + 1;
    line = line.substr(0, line.find(':'));
    const std::size_t slash = line.rfind('/');
    std::string_view file = slash == std::string_view::npos ? line : line.substr(slash + 1);
    const std::size_t ko = file.find(".ko");
    if (ko == std::string_view::npos) continue;
    if (canonical_module_name(file.substr(0, ko)) == canonical) return true;
  }
  return false;
}

}  // namespace

std::string_view to_string(ModuleState state) noexcept {
  switch (state) {
    case ModuleState::loaded:
      return "loaded";
    case ModuleState::builtin:
      return "built-in";
    case ModuleState::available:
      return "available";
    case ModuleState::missing:
      return "missing";
  }
  return "missing";
}

std::string canonical_module_name(std::string_view name) {
  std::string canonical(name);
  std::replace(canonical.begin(), canonical.end(), '-', '_');
  return canonical;
}

std::string kernel_release(const HostPaths& paths) {
  return read_line_if_exists(paths.proc / "sys/kernel/osrelease").value_or("");
}

ModuleState module_state(const HostPaths& paths, std::string_view name) {
  const std::string canonical = canonical_module_name(name);
  if (read_line_if_exists(paths.sys / "module" / canonical / "initstate") == "live") {
    return ModuleState::loaded;
  }
  const auto module_dir = paths.lib_modules / kernel_release(paths);
  if (const auto builtin = read_file_if_exists(module_dir / "modules.builtin");
      builtin && listing_names_module(*builtin, canonical)) {
    return ModuleState::builtin;
  }
  if (const auto dep = read_file_if_exists(module_dir / "modules.dep");
      dep && listing_names_module(*dep, canonical)) {
    return ModuleState::available;
  }
  return ModuleState::missing;
}

void load_module(std::string_view name) {
  // A name modprobe could take for an option (or a path) is a caller's mistake, never run.
  const bool plausible =
      !name.empty() && name.front() != '-' &&
      std::all_of(name.begin(), name.end(), [](char c) { return c > ' ' && c < 0x7f && c != '/'; });
  if (!plausible) {
    throw Error("modprobe", "'" + std::string(name) + "' is not a module name")
        .with("module", std::string(name))
        .kind(ErrorKind::usage);
  }
  const CommandResult result = run_command({"modprobe", "--", std::string(name)});
  if (result.exit_status != 0) {
    throw Error("modprobe", std::string(trim(result.output)))
        .with("module", std::string(name))
        .with("exit", std::to_string(result.exit_status))
        .hint("install the module for the running kernel (uname -r) or build it in");
  }
}

}  // namespace vfiokit
