// Runs inside the rig: what delivering one interrupt into the irq-probe payload costs the host
// VMM, two ways, in alternating blocks of one run:
//   irqfd: the eventfd is KVM_IRQFD-assigned: the kernel injects; no VMM thread wakes
//   relay:  a VMM thread polls the eventfd, reads it and calls KVM_SIGNAL_MSI
// Wall latency under emulation means little; this counts what the VMM spends instead: CPU time
// of the VMM's threads (the vCPU thread and the relay thread; not the main thread, which plays
// the device: it signals the eventfd and waits for the guest's report), their system calls
// (KVM_RUN returns, and the relay's poll/read/ioctl, each counted where it is made), and their
// context switches (/proc/self/task/TID/status). CPU time is the kernel's own per-thread
// accounting (/proc/self/task/TID/schedstat, ns on the CPU). Prints per-interrupt figures and
// the relay/irqfd ratios.
//   irq_cost_bench [BLOCKS] [PER_BLOCK]
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "bench/irq_probe_guest.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/eventfd.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"

using namespace vfiokit;
using namespace std::chrono_literals;

namespace {

struct ThreadCost {
  std::uint64_t cpu_ns = 0;
  std::uint64_t context_switches = 0;
};

// Every thread of this process but the main one (the "device").
ThreadCost vmm_threads_cost(pid_t main_tid) {
  ThreadCost cost;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (task.path().filename() == std::to_string(main_tid)) continue;
    std::ifstream schedstat(task.path() / "schedstat");
    std::uint64_t on_cpu = 0;
    if (schedstat >> on_cpu) cost.cpu_ns += on_cpu;
    std::ifstream status(task.path() / "status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.starts_with("voluntary_ctxt_switches:") ||
          line.starts_with("nonvoluntary_ctxt_switches:")) {
        cost.context_switches += std::strtoull(line.c_str() + line.find(':') + 1, nullptr, 10);
      }
    }
  }
  return cost;
}

struct WayTotals {
  std::uint64_t interrupts = 0;
  std::uint64_t cpu_ns = 0;
  std::uint64_t syscalls = 0;
  std::uint64_t context_switches = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const int blocks = argc > 1 ? std::atoi(argv[1]) : 10;
  const int per_block = argc > 2 ? std::atoi(argv[2]) : 50;
  try {
    const pid_t main_tid = static_cast<pid_t>(::syscall(SYS_gettid));
    const kvm::KvmSystem system = kvm::KvmSystem::open();
    bench::IrqProbeGuest probe(system);
    payloads::PayloadGuest& guest = probe.guest;
    const msix::MsiMessage message = probe.message;
    const std::uint32_t gsi = probe.gsi;
    EventFd direct = EventFd::create();
    EventFd relayed = EventFd::create();
    guest.vm().assign_irqfd(direct.fd(), gsi);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> relay_syscalls{0};
    std::thread relay([&] {
      pollfd waiter{relayed.fd(), POLLIN, 0};
      while (!stop) {
        relay_syscalls.fetch_add(1);  // poll
        if (::poll(&waiter, 1, 100) <= 0) continue;
        relay_syscalls.fetch_add(1);  // read
        if (relayed.consume() == 0) continue;
        relay_syscalls.fetch_add(1);  // ioctl(KVM_SIGNAL_MSI)
        guest.vm().signal_msi(message);
      }
    });
    guest.start();
    if (!guest.wait_for(VFIOKIT_MAILBOX_READY, 10s)) throw Error("bench", "payload not ready");
    WayTotals via_irqfd, via_relay;
    auto block = [&](EventFd& eventfd, WayTotals& totals) {
      const ThreadCost before = vmm_threads_cost(main_tid);
      const std::uint64_t runs_before = guest.run_loop().exits();
      const std::uint64_t relay_before = relay_syscalls.load();
      for (int i = 0; i < per_block; ++i) {
        eventfd.signal();
        if (!guest.wait_for(VFIOKIT_MAILBOX_VECTOR, 5s)) throw Error("bench", "interrupt lost");
      }
      const ThreadCost after = vmm_threads_cost(main_tid);
      totals.interrupts += static_cast<std::uint64_t>(per_block);
      totals.cpu_ns += after.cpu_ns - before.cpu_ns;
      totals.context_switches += after.context_switches - before.context_switches;
      // Each exit handled is one KVM_RUN that returned to the VMM.
      totals.syscalls +=
          (guest.run_loop().exits() - runs_before) + (relay_syscalls.load() - relay_before);
    };
    for (int b = 0; b < blocks; ++b) {
      if (b % 2 == 0) {
        block(direct, via_irqfd);
        block(relayed, via_relay);
      } else {
        block(relayed, via_relay);
        block(direct, via_irqfd);
      }
    }
    stop = true;
    relay.join();
    guest.vm().deassign_irqfd(direct.fd(), gsi);
    auto per = [](std::uint64_t total, const WayTotals& way) {
      return static_cast<double>(total) / static_cast<double>(way.interrupts);
    };
    std::printf(
        "host VMM cost per delivered interrupt (%d blocks of %d each way, alternating; emulated "
        "CPU time: compare ratios)\n",
        blocks, per_block);
    for (const auto& [name, way] : {std::pair{"irqfd (kernel only)      ", &via_irqfd},
                                    std::pair{"relay thread + SIGNAL_MSI", &via_relay}}) {
      std::printf("  %s  CPU %8.1f us   syscalls %5.2f   context switches %5.2f\n", name,
                  per(way->cpu_ns, *way) / 1000.0, per(way->syscalls, *way),
                  per(way->context_switches, *way));
    }
    std::printf(
        "  ratio relay/irqfd  CPU %5.2f   syscalls %5.2f   context switches %5.2f\n",
        per(via_relay.cpu_ns, via_relay) / per(via_irqfd.cpu_ns, via_irqfd),
        per(via_relay.syscalls, via_relay) / per(via_irqfd.syscalls, via_irqfd),
        per(via_relay.context_switches, via_relay) / per(via_irqfd.context_switches, via_irqfd));
  } catch (const Error& e) {
    std::fprintf(stderr, "irq_cost_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
