// bash and zsh completion, generated from the CLI's model like the manual (manual.h): the
// subcommands and options are written into the scripts; the BDFs come at completion time from
// the hidden `vfiokit [--host-root DIR] __complete KIND`.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::cli {

// The BDFs a subcommand's arguments are: "devices" (every PCI function in sysfs),
// "journalled" (restore), "persisted" (persist --remove); empty when it takes none.
std::string argument_kind(const CLI::App& sub);

// For `__complete KIND`: the BDFs of that kind on the host, sorted. Throws a usage Error for an
// unknown kind. What cannot be read (no journal, an untrusted state folder) gives no BDFs: a
// completion has nowhere to report it.
std::vector<std::string> complete_bdfs(const HostPaths& paths, std::string_view kind);

std::string bash_completion(const CLI::App& app);
std::string zsh_completion(const CLI::App& app);

}  // namespace vfiokit::cli
