#include "vfiokit/vmm/pinning.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::vmm {
namespace {

// Room for the kernel's largest NR_CPUS: sched_getaffinity fails with EINVAL when the mask is
// smaller than the kernel's nr_cpu_ids.
constexpr int kMaskCpus = static_cast<int>(kMaxCpu) + 1;

struct CpuSetDeleter {
  void operator()(cpu_set_t* set) const noexcept { CPU_FREE(set); }
};
using CpuSetPtr = std::unique_ptr<cpu_set_t, CpuSetDeleter>;

CpuSetPtr allocate_mask() {
  CpuSetPtr mask(CPU_ALLOC(kMaskCpus));
  if (!mask) throw Error("allocate CPU mask", "out of memory");
  CPU_ZERO_S(CPU_ALLOC_SIZE(kMaskCpus), mask.get());
  return mask;
}

std::string role_of(const VcpuThread& vcpu) { return "vcpu " + std::to_string(vcpu.cpu_index); }

}  // namespace

std::vector<pid_t> LinuxAffinity::threads_of(pid_t pid) {
  const std::filesystem::path task = paths_.proc / std::to_string(pid) / "task";
  std::error_code ec;
  if (!std::filesystem::is_directory(task, ec)) {
    throw Error("list threads", "process " + std::to_string(pid) + " is gone")
        .with("pid", std::to_string(pid));
  }
  std::vector<pid_t> threads;
  for (const std::string& name : list_dir(task)) {
    if (const auto tid = parse_uint(name)) threads.push_back(static_cast<pid_t>(*tid));
  }
  std::sort(threads.begin(), threads.end());
  return threads;
}

bool LinuxAffinity::set_affinity(pid_t thread_id, const CpuList& cpus) {
  const CpuSetPtr mask = allocate_mask();
  const std::size_t size = CPU_ALLOC_SIZE(kMaskCpus);
  for (const unsigned cpu : cpus) CPU_SET_S(cpu, size, mask.get());
  if (::sched_setaffinity(thread_id, size, mask.get()) == 0) return true;
  const int err = errno;
  if (err == ESRCH) return false;
  throw Error::from_errno(err, "sched_setaffinity")
      .with("thread", std::to_string(thread_id))
      .with("cpus", format_cpu_list(cpus))
      .hint(err == EINVAL ? "none of these CPUs is in the thread's cpuset (its cgroup's "
                            "cpuset.cpus.effective, or taskset around vfiokit): choose from those"
                          : "");
}

std::optional<CpuList> LinuxAffinity::get_affinity(pid_t thread_id) {
  const CpuSetPtr mask = allocate_mask();
  const std::size_t size = CPU_ALLOC_SIZE(kMaskCpus);
  if (::sched_getaffinity(thread_id, size, mask.get()) != 0) {
    const int err = errno;
    if (err == ESRCH) return std::nullopt;
    throw Error::from_errno(err, "sched_getaffinity").with("thread", std::to_string(thread_id));
  }
  CpuList cpus;
  for (std::size_t cpu = 0; cpu < static_cast<std::size_t>(kMaskCpus); ++cpu) {
    if (CPU_ISSET_S(cpu, size, mask.get())) cpus.push_back(static_cast<unsigned>(cpu));
  }
  return cpus;
}

PinningReport pin_guest_threads(AffinitySystem& system, pid_t qemu_pid,
                                const std::vector<VcpuThread>& vcpus, const CpuList& pin,
                                const CpuList& emulator_pin) {
  const auto refuse = [&](const std::string& why) {
    return Error("pin vCPUs", why)
        .with("pid", std::to_string(qemu_pid))
        .with("pin", format_cpu_list(pin));
  };
  if (vcpus.size() != pin.size()) {
    throw refuse("QEMU runs " + std::to_string(vcpus.size()) + " vCPUs but " +
                 std::to_string(pin.size()) + " CPUs were given to pin them to")
        .hint("give -smp and --pin the same count (launch's --cpus does)");
  }
  std::vector<VcpuThread> ordered = vcpus;
  std::sort(ordered.begin(), ordered.end(),
            [](const VcpuThread& a, const VcpuThread& b) { return a.cpu_index < b.cpu_index; });
  const std::vector<pid_t> threads = system.threads_of(qemu_pid);
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    if (i > 0 && ordered[i].cpu_index == ordered[i - 1].cpu_index) {
      throw refuse("QEMU reports vCPU " + std::to_string(ordered[i].cpu_index) + " twice");
    }
    if (!std::binary_search(threads.begin(), threads.end(), ordered[i].thread_id)) {
      throw refuse(role_of(ordered[i]) + "'s thread " + std::to_string(ordered[i].thread_id) +
                   " is not a thread of QEMU (process " + std::to_string(qemu_pid) + ")");
    }
  }

  PinningReport report;
  for (std::size_t i = 0; i < ordered.size(); ++i) {
    const CpuList cpus{pin[i]};
    if (!system.set_affinity(ordered[i].thread_id, cpus)) {
      throw refuse(role_of(ordered[i]) + "'s thread " + std::to_string(ordered[i].thread_id) +
                   " exited while it was pinned: QEMU is stopping");
    }
    report.threads.push_back({ordered[i].thread_id, role_of(ordered[i]), cpus, {}});
  }
  if (!emulator_pin.empty()) {
    for (const pid_t thread : threads) {
      const bool is_vcpu = std::any_of(ordered.begin(), ordered.end(),
                                       [&](const VcpuThread& v) { return v.thread_id == thread; });
      if (is_vcpu || !system.set_affinity(thread, emulator_pin)) continue;
      report.threads.push_back({thread, "emulator", emulator_pin, {}});
    }
  }

  // Read back only once everything is set: what counts is the state QEMU resumes in.
  std::vector<ThreadPinning> read_back;
  report.all_match = true;
  for (ThreadPinning& thread : report.threads) {
    auto actual = system.get_affinity(thread.thread_id);
    // A worker thread that finished its job meanwhile runs nowhere any more: nothing to report.
    if (!actual && thread.role == "emulator") continue;
    thread.actual = actual.value_or(CpuList{});
    report.all_match = report.all_match && thread.matches();
    read_back.push_back(std::move(thread));
  }
  report.threads = std::move(read_back);
  return report;
}

}  // namespace vfiokit::vmm
