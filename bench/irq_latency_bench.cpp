// Runs inside the rig: the round trip of one interrupt into the irq-probe payload and its report
// back, two ways, interleaved in one run:
//   irqfd: the host signals an eventfd that is KVM_IRQFD-assigned: the kernel injects
//   relay:  the eventfd is watched by a user-space thread, which reads it and calls
//           KVM_SIGNAL_MSI
// From the eventfd write to the guest's mailbox report arriving on the host. Prints medians and
// 90th percentiles of N round trips each.
//   irq_latency_bench [N]
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/irq_probe_guest.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/eventfd.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"

using namespace vfiokit;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 300;
  try {
    const kvm::KvmSystem system = kvm::KvmSystem::open();
    bench::IrqProbeGuest probe(system);
    payloads::PayloadGuest& guest = probe.guest;
    const msix::MsiMessage message = probe.message;
    const std::uint32_t gsi = probe.gsi;
    EventFd direct = EventFd::create();
    EventFd relayed = EventFd::create();
    guest.vm().assign_irqfd(direct.fd(), gsi);
    std::atomic<bool> stop{false};
    std::thread relay([&] {
      pollfd waiter{relayed.fd(), POLLIN, 0};
      while (!stop) {
        if (::poll(&waiter, 1, 100) > 0 && relayed.consume() != 0) guest.vm().signal_msi(message);
      }
    });
    guest.start();
    if (!guest.wait_for(VFIOKIT_MAILBOX_READY, 10s)) throw Error("bench", "payload not ready");
    std::vector<double> via_irqfd, via_relay;
    auto round_trip = [&](EventFd& eventfd) {
      const auto start = Clock::now();
      eventfd.signal();
      if (!guest.wait_for(VFIOKIT_MAILBOX_VECTOR, 5s)) throw Error("bench", "interrupt lost");
      return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    };
    for (int i = 0; i < rounds; ++i) {
      if (i % 2 == 0) {
        via_irqfd.push_back(round_trip(direct));
        via_relay.push_back(round_trip(relayed));
      } else {
        via_relay.push_back(round_trip(relayed));
        via_irqfd.push_back(round_trip(direct));
      }
    }
    stop = true;
    relay.join();
    guest.vm().deassign_irqfd(direct.fd(), gsi);
    std::printf(
        "interrupt round trip into the guest and back (%d each; emulated time: compare ratios)\n",
        rounds);
    std::printf("  irqfd (kernel only)         median %8.1f us   p90 %8.1f us\n",
                percentile(via_irqfd, 0.5), percentile(via_irqfd, 0.9));
    std::printf("  relay thread + SIGNAL_MSI   median %8.1f us   p90 %8.1f us\n",
                percentile(via_relay, 0.5), percentile(via_relay, 0.9));
    std::printf("  ratio relay/irqfd  median %5.2f   p90 %5.2f\n",
                percentile(via_relay, 0.5) / percentile(via_irqfd, 0.5),
                percentile(via_relay, 0.9) / percentile(via_irqfd, 0.9));
  } catch (const Error& e) {
    std::fprintf(stderr, "irq_latency_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
