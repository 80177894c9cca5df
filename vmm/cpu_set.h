// Host CPU lists for `launch --qemu --pin/--emulator-pin`, in the kernel's cpu list syntax
// (sys/devices/system/cpu/online, cpuset.cpus, taskset -c): "0-3,8,10-11".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::vmm {

// CPUs ascending, each once.
using CpuList = std::vector<unsigned>;

// The highest CPU number accepted: the kernel's largest NR_CPUS is 8192.
inline constexpr unsigned kMaxCpu = 8191;

// Strict: items N or A-B (A <= B) in decimal without signs, spaces or leading zeros, separated
// by single commas, each item above the one before it (ascending, no CPU twice), none above
// kMaxCpu, not empty. Throws a usage Error (operation "parse CPU list", context the list) that
// names `what` ("--pin") and the item at fault. Pure.
CpuList parse_cpu_list(std::string_view text, std::string_view what = "CPU list");

// The kernel's form, consecutive CPUs as ranges: {0,1,2,3,8} -> "0-3,8"; {} -> "". Any order
// and repeats are accepted. Pure.
std::string format_cpu_list(std::vector<unsigned> cpus);

// paths.sys/devices/system/cpu/online, parsed. Throws Error (failed) when it is missing or
// malformed.
CpuList online_cpus(const HostPaths& paths);

// The rules for --cpus N --pin LIST [--emulator-pin LIST] (an empty emulator list: not given):
// --pin has exactly N CPUs (vCPU i runs on the i-th; one host CPU per vCPU, since a list holds
// each CPU once), and every CPU of both lists is online. The emulator set may overlap the vCPUs'
// (it is often the host's housekeeping CPUs, but that is the user's choice). Throws a usage
// Error (operation "check CPU pinning") naming the bad CPU or the counts, and the online list.
// Pure.
void check_cpu_pinning(unsigned vcpus, const CpuList& pin, const CpuList& emulator_pin,
                       const CpuList& online);

}  // namespace vfiokit::vmm
