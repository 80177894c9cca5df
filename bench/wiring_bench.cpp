// Wiring N vectors into a VM, two ways, side by side (runs on any host KVM: routing and irqfds
// need no running guest):
//   batched:    every route staged, one KVM_SET_GSI_ROUTING, then one KVM_IRQFD per vector
//   per vector: stage one route, KVM_SET_GSI_ROUTING, KVM_IRQFD, and again for the next one
// KVM replaces its whole table on each KVM_SET_GSI_ROUTING, so the second way copies a growing
// table N times. Prints medians of 5 interleaved rounds for 64, 512 and 2048 vectors.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/eventfd.h"
#include "vfiokit/kvm/system.h"
#include "vfiokit/kvm/vm.h"
#include "vfiokit/msix/msi.h"
#include "vfiokit/msix/routing.h"

using namespace vfiokit;
using Clock = std::chrono::steady_clock;

namespace {

double wire(const kvm::KvmSystem& system, std::uint32_t count, bool batched) {
  kvm::Vm vm = system.create_vm();
  vm.create_irqchip();
  msix::RouteTable routes(vm);
  std::vector<EventFd> eventfds;
  for (std::uint32_t i = 0; i < count; ++i) eventfds.push_back(EventFd::create());
  const auto gsis = routes.gsis().allocate(count);
  const auto start = Clock::now();
  if (batched) {
    for (std::uint32_t i = 0; i < count; ++i) {
      routes.stage(gsis[i], msix::encode_msi({0, static_cast<std::uint8_t>(0x30 + i % 200)}));
    }
    routes.commit();
    for (std::uint32_t i = 0; i < count; ++i) vm.assign_irqfd(eventfds[i].fd(), gsis[i]);
  } else {
    for (std::uint32_t i = 0; i < count; ++i) {
      routes.stage(gsis[i], msix::encode_msi({0, static_cast<std::uint8_t>(0x30 + i % 200)}));
      routes.commit();
      vm.assign_irqfd(eventfds[i].fd(), gsis[i]);
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  for (std::uint32_t i = 0; i < count; ++i) vm.deassign_irqfd(eventfds[i].fd(), gsis[i]);
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  try {
    const kvm::KvmSystem system = kvm::KvmSystem::open();
    std::printf("wiring N vectors: routes + irqfds (medians of 5 interleaved rounds)\n");
    for (const std::uint32_t count : {64u, 512u, 2048u}) {
      std::vector<double> batched, single;
      for (int round = 0; round < 5; ++round) {
        if (round % 2 == 0) {
          batched.push_back(wire(system, count, true));
          single.push_back(wire(system, count, false));
        } else {
          single.push_back(wire(system, count, false));
          batched.push_back(wire(system, count, true));
        }
      }
      std::printf(
          "  %5u vectors  batched %9.2f ms   one update per vector %9.2f ms   ratio %7.1f\n", count,
          median(batched), median(single), median(single) / median(batched));
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "wiring_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
