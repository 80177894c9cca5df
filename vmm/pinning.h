// Pinning a running QEMU's threads (`launch --qemu --pin/--emulator-pin`): vCPU i's thread onto
// one host CPU, QEMU's other threads onto the emulator set, then every affinity read back, since
// the kernel quietly narrows a mask to the CPUs the thread's cpuset allows.
//
// QEMU must be stopped (-S) while this runs: a thread it starts later inherits its creator's
// affinity, so I/O workers started by the main loop land on the emulator set, and vCPUs are all
// there from the start.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/vmm/cpu_set.h"

namespace vfiokit::vmm {

// A vCPU and the host thread that runs it (QMP's query-cpus-fast).
struct VcpuThread {
  unsigned cpu_index = 0;
  pid_t thread_id = 0;
  bool operator==(const VcpuThread&) const = default;
};

// The seam to the kernel.
class AffinitySystem {
 public:
  virtual ~AffinitySystem() = default;
  // The thread ids of a process (/proc/PID/task). Throws Error when the process is gone.
  virtual std::vector<pid_t> threads_of(pid_t pid) = 0;
  // sched_setaffinity. False when the thread has exited meanwhile (ESRCH); other failures throw
  // Error with errno, the thread and the CPUs.
  virtual bool set_affinity(pid_t thread_id, const CpuList& cpus) = 0;
  // sched_getaffinity; nullopt when the thread has exited. Other failures throw.
  virtual std::optional<CpuList> get_affinity(pid_t thread_id) = 0;
};

// The kernel's: sched_{set,get}affinity on thread ids, threads from paths.proc/PID/task.
class LinuxAffinity final : public AffinitySystem {
 public:
  explicit LinuxAffinity(HostPaths paths) : paths_(std::move(paths)) {}
  std::vector<pid_t> threads_of(pid_t pid) override;
  bool set_affinity(pid_t thread_id, const CpuList& cpus) override;
  std::optional<CpuList> get_affinity(pid_t thread_id) override;

 private:
  HostPaths paths_;
};

struct ThreadPinning {
  pid_t thread_id = 0;
  std::string role;  // "vcpu 0", "vcpu 1", ..., "emulator"
  CpuList requested;
  CpuList actual;  // read back after every thread was set; empty if the thread exited
  [[nodiscard]] bool matches() const { return requested == actual; }
};

struct PinningReport {
  std::vector<ThreadPinning> threads;  // vCPUs by index, then the emulator threads by id
  bool all_match = false;
};

// Pins vcpus[i] (ordered by cpu_index here) to pin[i], then, when emulator_pin is not empty,
// every other thread of `qemu_pid` to emulator_pin; then reads every pinned thread's affinity
// back. Throws Error (failed, operation "pin vCPUs") before changing anything when the counts
// differ, when a vCPU index is repeated, or when a vCPU thread is not one of QEMU's (a stale
// or foreign thread id); and when the kernel refuses a mask (EINVAL: none of its CPUs in the
// thread's cpuset). An emulator thread that exits meanwhile is left out of the report; a vCPU
// thread that exits is an Error.
PinningReport pin_guest_threads(AffinitySystem& system, pid_t qemu_pid,
                                const std::vector<VcpuThread>& vcpus, const CpuList& pin,
                                const CpuList& emulator_pin);

}  // namespace vfiokit::vmm
