// Running a vCPU: KVM_RUN in a loop, each exit handed to the handler registered for its port or
// address range, until stop() or an exit that ends the guest.
#pragma once

#include <pthread.h>

#include <csignal>

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "vfiokit/kvm/vcpu.h"

namespace vfiokit::kvm {

class RunLoop {
 public:
  // `data` is the access's bytes in the kvm_run page: read them for an out/write, fill them for
  // an in/read.
  using IoHandler = std::function<void(const IoExit& io, std::span<std::uint8_t> data)>;
  using MmioHandler = std::function<void(const MmioExit& mmio, std::span<std::uint8_t> data)>;

  void on_io(std::uint16_t first_port, std::uint16_t last_port, IoHandler handler);
  void on_mmio(std::uint64_t first, std::uint64_t last, MmioHandler handler);
  // KVM_EXIT_DIRTY_RING_FULL: the handler harvests and resets the rings (on the vCPU's
  // thread, before it enters the guest again); DirtyTracker::ring_full_handler() is one. Without
  // a handler that exit ends the run with an Error.
  using DirtyRingFullHandler = std::function<void(Vcpu& vcpu)>;
  void on_dirty_ring_full(DirtyRingFullHandler handler) { dirty_ring_full_ = std::move(handler); }

  // Runs `vcpu` on this thread until stop(). Throws Error for an exit that ends the guest
  // (shutdown, fail_entry, internal_error, ...) and for I/O or MMIO nobody handles.
  void run(Vcpu& vcpu);
  // From any thread: the vCPU leaves KVM_RUN (immediate_exit and a signal) and run() returns.
  void stop() noexcept;
  [[nodiscard]] bool stopped() const noexcept { return stop_.load(); }
  [[nodiscard]] std::uint64_t exits() const noexcept { return exits_.load(); }

 private:
  struct IoRange {
    std::uint16_t first, last;
    IoHandler handler;
  };
  struct MmioRange {
    std::uint64_t first, last;
    MmioHandler handler;
  };
  std::vector<IoRange> io_;
  std::vector<MmioRange> mmio_;
  DirtyRingFullHandler dirty_ring_full_;
  std::atomic<bool> stop_{false};
  std::atomic<Vcpu*> running_{nullptr};
  std::atomic<bool> have_thread_{false};
  pthread_t thread_{};
  std::atomic<std::uint64_t> exits_{0};
};

// The signal stop() sends to make KVM_RUN return EINTR; installed once with an empty handler.
inline constexpr int kVcpuKickSignal = SIGUSR1;

}  // namespace vfiokit::kvm
