// KVM's dirty ring: one ring of struct kvm_dirty_gfn per vCPU, shared with the kernel through
// the vCPU fd's mapping, and the harvester that collects it with the memory ordering the kernel
// requires. The harvester is pure (a span of entries and an index): tests drive it with a
// simulated kernel on another thread, also under ThreadSanitizer (tools/test).
//
// ## The memory-order contract (Documentation/virt/kvm/api.rst, KVM_CAP_DIRTY_LOG_RING)
//
// An entry goes 00 (invalid) -> 01 (DIRTY: the kernel published it) -> 1x (RESET: userspace
// harvested it) -> 00 (KVM_RESET_DIRTY_RINGS re-protected the page and freed the entry).
//  1. The kernel writes `slot` and `offset`, then sets `flags` to DIRTY with a release store
//     (smp_store_release in kvm_dirty_gfn_set_dirtied). So userspace loads `flags` with
//     acquire before it reads `slot` and `offset`: a plain or relaxed load lets the CPU (or
//     the compiler) read `slot`/`offset` before `flags`, i.e. the previous lap's values with
//     the new lap's DIRTY bit: a wrong page reported, the written one lost.
//  2. Userspace marks the entry harvested by storing flags | RESET with release: its reads of
//     `slot` and `offset` complete before the kernel can see RESET. The kernel reads `flags`
//     with acquire (kvm_dirty_gfn_harvested) and then reuses the entry; without release the
//     kernel could overwrite the entry while userspace is still reading it.
//  3. Only then KVM_RESET_DIRTY_RINGS: the kernel walks each ring from its reset index while
//     entries say RESET, write-protects their pages again and frees the entries. The ioctl is
//     a full barrier after the release stores. A page's contents are read (copied, checked)
//     after the reset returns: a write between the harvest and the reset does not fault (the
//     page is still writable) but lands before the read; every write after the reset faults
//     and is logged again. Resetting first would lose the writes in between.
//  4. Entries are harvested strictly in ring order from userspace's own fetch index, never
//     skipping one (the kernel resets in order and stops at the first entry not marked RESET).
//
// KVM_CAP_DIRTY_LOG_RING_ACQ_REL (Linux 6.1) promises exactly that pairing; it is the only ring
// capability weakly ordered architectures (arm64) offer. KVM_CAP_DIRTY_LOG_RING alone (Linux
// 5.11 to 6.0) was written for x86's TSO, where loads are not reordered with loads nor stores
// with earlier loads, and userspace then needs no barrier beyond the compiler's; vfiokit then
// uses sequentially consistent accesses (full barriers) rather than rely on the hardware. On
// x86 the two capabilities are the same to the kernel: it offers both (HAVE_KVM_DIRTY_RING_TSO
// and _ACQ_REL), enables either through the one kvm_vm_ioctl_enable_dirty_log_ring() with the
// same size rules, and uses the same acquire/release accessors on its side; the capability
// chooses only userspace's half. On x86 an acquire load and a release store are plain MOVs
// (the ordering costs nothing but the compiler's freedom); a seq_cst store is an XCHG.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "vfiokit/base/mapped_memory.h"

namespace vfiokit::kvm {

// Which promise the ring was enabled with, and so which accesses the harvester uses.
enum class RingOrdering {
  acquire_release,  // KVM_CAP_DIRTY_LOG_RING_ACQ_REL: acquire load, release store
  full_barrier,     // KVM_CAP_DIRTY_LOG_RING: sequentially consistent load and store
};

// One harvested entry: `slot` is KVM's (address space << 16 | slot id), `offset` the page
// within that slot.
struct DirtyEntry {
  std::uint32_t slot = 0;
  std::uint64_t offset = 0;
  friend bool operator==(const DirtyEntry&, const DirtyEntry&) = default;
};

// Collects one ring in order from its fetch index. Pure: the ring is a span (the kernel's
// mapping or a test's array), and nothing here makes a system call. One harvester per ring, used
// by one thread at a time (DirtyTracker holds a lock); the kernel is the other party.
class DirtyRingHarvester {
 public:
  explicit DirtyRingHarvester(RingOrdering ordering = RingOrdering::acquire_release) noexcept
      : ordering_(ordering) {}

  // Hands every entry the kernel has published since the last call to `record(DirtyEntry)`, in
  // ring order, marking each harvested (RESET) right after reading it; stops at the first entry
  // not published yet. `ring.size()` is a power of two. Returns how many it harvested: the
  // caller then issues KVM_RESET_DIRTY_RINGS (when more than zero).
  template <typename Record>
  std::size_t harvest(std::span<kvm_dirty_gfn> ring, Record&& record) {
    const std::size_t mask = ring.size() - 1;
    std::size_t harvested = 0;
    // A full lap at most: the kernel never has more than ring.size() entries published.
    while (harvested < ring.size()) {
      kvm_dirty_gfn& entry = ring[fetch_index_ & mask];
      std::atomic_ref<std::uint32_t> flags(entry.flags);
      // (1) acquire: `slot` and `offset` below are the ones the kernel wrote before DIRTY.
      const std::uint32_t state = flags.load(load_order());
      if ((state & KVM_DIRTY_GFN_F_MASK) != KVM_DIRTY_GFN_F_DIRTY) break;
      record(DirtyEntry{entry.slot, entry.offset});
      // (2) release: the reads above are done before the kernel may see RESET and reuse it.
      flags.store(state | static_cast<std::uint32_t>(KVM_DIRTY_GFN_F_RESET), store_order());
      ++fetch_index_;
      ++harvested;
    }
    return harvested;
  }

  [[nodiscard]] std::uint64_t fetch_index() const noexcept { return fetch_index_; }
  [[nodiscard]] RingOrdering ordering() const noexcept { return ordering_; }

 private:
  [[nodiscard]] std::memory_order load_order() const noexcept {
    return ordering_ == RingOrdering::acquire_release ? std::memory_order_acquire
                                                      : std::memory_order_seq_cst;
  }
  [[nodiscard]] std::memory_order store_order() const noexcept {
    return ordering_ == RingOrdering::acquire_release ? std::memory_order_release
                                                      : std::memory_order_seq_cst;
  }

  RingOrdering ordering_;
  // Userspace's own position: the kernel keeps its reset index to itself.
  std::uint64_t fetch_index_ = 0;
};

// One vCPU's ring, mapped from its fd at KVM_DIRTY_LOG_PAGE_OFFSET pages, with its harvester.
// Move-only; the mapping holds a reference to the vCPU file, so it stays valid even after the
// Vcpu object closes its fd.
class DirtyRing {
 public:
  // Kernel contract: the ring is enabled on the VM (entries * 16 bytes, a power of two) before
  // the vCPU was created; the kernel then backs exactly that many bytes at that offset.
  static DirtyRing map(int vcpu_fd, std::uint32_t vcpu_id, std::uint32_t entries,
                       RingOrdering ordering);

  [[nodiscard]] std::uint32_t vcpu_id() const noexcept { return vcpu_id_; }
  [[nodiscard]] std::span<kvm_dirty_gfn> entries() const noexcept {
    return {static_cast<kvm_dirty_gfn*>(mapping_.data()), mapping_.size() / sizeof(kvm_dirty_gfn)};
  }
  template <typename Record>
  std::size_t harvest(Record&& record) {
    return harvester_.harvest(entries(), std::forward<Record>(record));
  }

 private:
  DirtyRing(MappedMemory mapping, std::uint32_t vcpu_id, RingOrdering ordering)
      : mapping_(std::move(mapping)), vcpu_id_(vcpu_id), harvester_(ordering) {}
  MappedMemory mapping_;
  std::uint32_t vcpu_id_;
  DirtyRingHarvester harvester_;
};

// "KVM_CAP_DIRTY_LOG_RING_ACQ_REL" or "KVM_CAP_DIRTY_LOG_RING".
std::string ring_capability_name(RingOrdering ordering);

}  // namespace vfiokit::kvm
