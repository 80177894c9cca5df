// Which guest pages the vCPUs wrote, through KVM's dirty ring where the kernel has it and the
// caller allows it, else through the per-slot dirty bitmap: one interface for the VMM, set up
// with the VM before its vCPUs (docs/dirty-tracking.md).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/kvm/dirty_ring.h"
#include "vfiokit/kvm/run_loop.h"
#include "vfiokit/kvm/vm.h"

namespace vfiokit::kvm {

enum class DirtyMechanism { ring, bitmap };

struct DirtyTrackerOptions {
  bool allow_ring = true;             // false: the bitmap even where the kernel has the ring
  std::uint32_t ring_entries = 4096;  // per vCPU, a power of two (QEMU's usual dirty-ring-size)
};

// What the kernel offers, as KVM_CHECK_EXTENSION answered on the VM.
struct DirtyLogSupport {
  int ring_acq_rel_bytes = 0;  // KVM_CAP_DIRTY_LOG_RING_ACQ_REL: the largest ring, 0 if absent
  int ring_bytes = 0;          // KVM_CAP_DIRTY_LOG_RING
  int manual_protect = 0;      // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: the flags it takes
};

struct DirtyPlan {
  DirtyMechanism mechanism = DirtyMechanism::bitmap;
  RingOrdering ordering = RingOrdering::acquire_release;  // with the ring
  bool manual_protect = false;                            // with the bitmap
};
// The ring when allowed and offered (ACQ_REL before the plain one), else the bitmap, with
// manual protect when KVM takes KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE. Pure.
DirtyPlan plan_dirty_tracking(const DirtyLogSupport& support, const DirtyTrackerOptions& options);

struct DirtyCounters {
  std::uint64_t harvests = 0;         // harvest() calls
  std::uint64_t entries = 0;          // ring entries or bitmap bits collected
  std::uint64_t ring_full_exits = 0;  // KVM_EXIT_DIRTY_RING_FULL handled
  std::uint64_t resets = 0;           // KVM_RESET_DIRTY_RINGS or KVM_CLEAR_DIRTY_LOG calls
  std::uint64_t unattributed = 0;     // entries naming no tracked slot, or beyond its end
};

class DirtyTracker {
 public:
  // Before the first vCPU of `vm` (the ring is enabled now or never): decides and enables.
  // Throws Error when a vCPU exists already. `vm` outlives the tracker.
  explicit DirtyTracker(Vm& vm, const DirtyTrackerOptions& options = {});
  DirtyTracker(const DirtyTracker&) = delete;
  DirtyTracker& operator=(const DirtyTracker&) = delete;

  [[nodiscard]] DirtyMechanism mechanism() const noexcept { return plan_.mechanism; }
  [[nodiscard]] const DirtyPlan& plan() const noexcept { return plan_; }
  // "dirty ring (KVM_CAP_DIRTY_LOG_RING_ACQ_REL, 4096 entries per vCPU)",
  // "dirty bitmap (KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG with manual protect)", ...
  [[nodiscard]] std::string description() const;

  // Memory whose writes are tracked: Vm::add_memory with KVM_MEM_LOG_DIRTY_PAGES (which the
  // ring needs as much as the bitmap). Kernel contract as Vm::add_memory's.
  void add_memory(std::uint32_t slot, std::uint64_t guest_address, std::span<std::uint8_t> host);
  // A slot the caller added itself; throws Error unless it has KVM_MEM_LOG_DIRTY_PAGES.
  void track(std::uint32_t slot);
  // Each vCPU, once created: with the ring, maps its ring (a no-op with the bitmap).
  void attach(const Vcpu& vcpu);

  // The guest-physical page numbers (address / 4096) written since the last harvest (or since
  // tracking began), sorted, each once. From any thread, also while the vCPUs run. Read the
  // pages' contents after this returns: a write after it is reported by the next harvest.
  std::vector<std::uint64_t> harvest();
  // KVM_EXIT_DIRTY_RING_FULL on `vcpu`'s thread: harvest into what the next harvest() returns,
  // reset, and let the vCPU go on.
  void handle_ring_full(Vcpu& vcpu);
  [[nodiscard]] RunLoop::DirtyRingFullHandler ring_full_handler() {
    return [this](Vcpu& vcpu) { handle_ring_full(vcpu); };
  }
  [[nodiscard]] DirtyCounters counters() const;

 private:
  void collect_ring_locked();
  void collect_bitmap_locked();
  void record_locked(std::uint32_t slot, std::uint64_t offset);

  Vm& vm_;
  DirtyPlan plan_;
  std::uint32_t ring_entries_ = 0;
  mutable std::mutex mutex_;
  std::map<std::uint32_t, MemorySlot> slots_;  // tracked, by KVM slot number
  std::vector<DirtyRing> rings_;               // one per attached vCPU
  bool reset_owed_ = false;  // entries marked RESET that KVM_RESET_DIRTY_RINGS has not freed
  std::vector<std::uint64_t> bitmap_;   // scratch for one slot
  std::vector<std::uint64_t> pending_;  // harvested, not yet returned
  DirtyCounters counters_;
};

}  // namespace vfiokit::kvm
