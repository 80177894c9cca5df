#include "vfiokit/kvm/dirty_tracker.h"

#include <algorithm>

#include "vfiokit/base/error.h"
#include "vfiokit/kvm/dirty_bitmap.h"
#include "vfiokit/kvm/vcpu.h"

namespace vfiokit::kvm {
namespace {

constexpr std::uint64_t kPage = 4096;

}  // namespace

DirtyPlan plan_dirty_tracking(const DirtyLogSupport& support, const DirtyTrackerOptions& options) {
  DirtyPlan plan;
  if (options.allow_ring && support.ring_acq_rel_bytes > 0) {
    plan.mechanism = DirtyMechanism::ring;
    plan.ordering = RingOrdering::acquire_release;
  } else if (options.allow_ring && support.ring_bytes > 0) {
    plan.mechanism = DirtyMechanism::ring;
    plan.ordering = RingOrdering::full_barrier;
  } else {
    plan.mechanism = DirtyMechanism::bitmap;
    plan.manual_protect = (support.manual_protect & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) != 0;
  }
  return plan;
}

DirtyTracker::DirtyTracker(Vm& vm, const DirtyTrackerOptions& options) : vm_(vm) {
  const DirtyLogSupport support{vm.check_extension(KVM_CAP_DIRTY_LOG_RING_ACQ_REL),
                                vm.check_extension(KVM_CAP_DIRTY_LOG_RING),
                                vm.check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)};
  plan_ = plan_dirty_tracking(support, options);
  if (plan_.mechanism == DirtyMechanism::ring) {
    vm.enable_dirty_ring(plan_.ordering, options.ring_entries);  // refuses once a vCPU exists
    ring_entries_ = options.ring_entries;
  } else if (plan_.manual_protect) {
    // Not KVM_DIRTY_LOG_INITIALLY_SET: a slot's first harvest reports what was written, not
    // every page.
    vm.enable_capability(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE);
  }
}

std::string DirtyTracker::description() const {
  if (plan_.mechanism == DirtyMechanism::ring) {
    return "dirty ring (" + ring_capability_name(plan_.ordering) + ", " +
           std::to_string(ring_entries_) + " entries per vCPU)";
  }
  return plan_.manual_protect
             ? "dirty bitmap (KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG with manual protect)"
             : "dirty bitmap (KVM_GET_DIRTY_LOG, cleared as it is read)";
}

void DirtyTracker::add_memory(std::uint32_t slot, std::uint64_t guest_address,
                              std::span<std::uint8_t> host) {
  vm_.add_memory(slot, guest_address, host, KVM_MEM_LOG_DIRTY_PAGES);
  track(slot);
}

void DirtyTracker::track(std::uint32_t slot) {
  const MemorySlot* entry = vm_.memory().find(slot);
  if (!entry) throw Error("track dirty pages", "no slot " + std::to_string(slot));
  if (!(entry->flags & KVM_MEM_LOG_DIRTY_PAGES)) {
    throw Error("track dirty pages", "the slot was added without KVM_MEM_LOG_DIRTY_PAGES")
        .with("slot", std::to_string(slot))
        .hint("add it through DirtyTracker::add_memory");
  }
  std::lock_guard lock(mutex_);
  slots_[slot] = *entry;
}

void DirtyTracker::attach(const Vcpu& vcpu) {
  if (plan_.mechanism != DirtyMechanism::ring) return;
  std::lock_guard lock(mutex_);
  for (const auto& ring : rings_) {
    if (ring.vcpu_id() == vcpu.id()) return;
  }
  rings_.push_back(DirtyRing::map(vcpu.fd(), vcpu.id(), ring_entries_, plan_.ordering));
}

void DirtyTracker::record_locked(std::uint32_t slot, std::uint64_t offset) {
  ++counters_.entries;
  // Address space 0 only: x86's address space 1 (SMM) is never used by vfiokit's guests.
  const auto it = (slot >> 16) == 0 ? slots_.find(slot & 0xffff) : slots_.end();
  if (it == slots_.end() || offset >= it->second.size / kPage) {
    ++counters_.unattributed;
    return;
  }
  pending_.push_back(it->second.guest_address / kPage + offset);
}

void DirtyTracker::collect_ring_locked() {
  std::size_t harvested = 0;
  for (auto& ring : rings_) {
    harvested += ring.harvest([this](const DirtyEntry& e) { record_locked(e.slot, e.offset); });
  }
  // (3) of the contract (kvm/dirty_ring.h): after every release store of this harvest. Also
  // when an earlier harvest marked entries but its reset failed: without it a full ring stays
  // full and the vCPU exits with RING_FULL forever.
  if (harvested > 0) reset_owed_ = true;
  if (reset_owed_) {
    vm_.reset_dirty_rings();
    reset_owed_ = false;
    ++counters_.resets;
  }
}

void DirtyTracker::collect_bitmap_locked() {
  for (const auto& [number, slot] : slots_) {
    const std::uint64_t pages = slot.size / kPage;
    bitmap_.assign(dirty_bitmap_words(pages), 0);
    vm_.get_dirty_log(slot, bitmap_);
    const auto dirty = dirty_pages(bitmap_, pages);
    for (const std::uint64_t page : dirty) record_locked(number, page);
    if (!plan_.manual_protect) continue;  // KVM_GET_DIRTY_LOG cleared and re-protected them
    // Manual protect: the bits just read are cleared (and their pages write-protected) now,
    // after they were recorded and before anyone reads the pages.
    for (const ClearRange& range : clear_ranges(bitmap_, pages)) {
      vm_.clear_dirty_log(slot, range,
                          std::span<const std::uint64_t>(bitmap_).subspan(range.first_page / 64));
      ++counters_.resets;
    }
  }
}

std::vector<std::uint64_t> DirtyTracker::harvest() {
  std::lock_guard lock(mutex_);
  ++counters_.harvests;
  if (plan_.mechanism == DirtyMechanism::ring) {
    collect_ring_locked();
  } else {
    collect_bitmap_locked();
  }
  std::vector<std::uint64_t> pages = std::move(pending_);
  pending_.clear();
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

void DirtyTracker::handle_ring_full(Vcpu& vcpu) {
  attach(vcpu);  // a vCPU nobody attached still gets its ring harvested
  std::lock_guard lock(mutex_);
  ++counters_.ring_full_exits;
  collect_ring_locked();
}

DirtyCounters DirtyTracker::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

}  // namespace vfiokit::kvm
