// The dirty ring's harvester (kvm/dirty_ring.h) against a simulated kernel: single-threaded for
// its rules, and with a producer thread that publishes entries as KVM does. tools/test also runs
// this file alone under ThreadSanitizer (build-tsan/, target vfiokit_dirty_ring_tests): a
// harvester that read an entry before its acquire, or marked it without release, races with
// the producer's writes there. It uses only header-only code, so that build stays small.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "vfiokit/kvm/dirty_ring.h"

namespace vfiokit::kvm {
namespace {

constexpr std::uint32_t kDirty = KVM_DIRTY_GFN_F_DIRTY;
constexpr std::uint32_t kReset = KVM_DIRTY_GFN_F_RESET;

std::vector<DirtyEntry> harvest_all(DirtyRingHarvester& harvester, std::span<kvm_dirty_gfn> ring) {
  std::vector<DirtyEntry> out;
  harvester.harvest(ring, [&](const DirtyEntry& e) { out.push_back(e); });
  return out;
}

TEST(DirtyRingHarvester, TakesPublishedEntriesInOrderAndMarksEachReset) {
  std::vector<kvm_dirty_gfn> ring(8);
  ring[0] = {kDirty, 1, 10};
  ring[1] = {kDirty, 2, 20};
  ring[2] = {0, 3, 30};  // not published yet: the harvest stops here
  ring[3] = {kDirty, 4, 40};
  DirtyRingHarvester harvester;
  EXPECT_EQ(harvest_all(harvester, ring), (std::vector<DirtyEntry>{{1, 10}, {2, 20}}));
  EXPECT_EQ(ring[0].flags, kDirty | kReset);
  EXPECT_EQ(ring[1].flags, kDirty | kReset);
  EXPECT_EQ(ring[2].flags, 0u);
  EXPECT_EQ(ring[3].flags, kDirty) << "an entry after a gap was taken";
  EXPECT_EQ(harvester.fetch_index(), 2u);
  // Nothing new: nothing harvested, entries already marked are not taken again.
  EXPECT_TRUE(harvest_all(harvester, ring).empty());
  ring[2].flags = kDirty;
  EXPECT_EQ(harvest_all(harvester, ring), (std::vector<DirtyEntry>{{3, 30}, {4, 40}}));
  EXPECT_EQ(harvester.fetch_index(), 4u);
}

TEST(DirtyRingHarvester, WrapsAroundAndNeverTakesMoreThanALap) {
  std::vector<kvm_dirty_gfn> ring(4);
  DirtyRingHarvester harvester;
  for (std::uint32_t lap = 0; lap < 3; ++lap) {
    for (std::uint32_t i = 0; i < 4; ++i) ring[i] = {kDirty, lap, i};  // the kernel after a reset
    const auto got = harvest_all(harvester, ring);
    ASSERT_EQ(got.size(), 4u) << "lap " << lap;
    EXPECT_EQ(got.front(), (DirtyEntry{lap, 0}));
    EXPECT_EQ(got.back(), (DirtyEntry{lap, 3}));
  }
  EXPECT_EQ(harvester.fetch_index(), 12u);
  // An entry still marked RESET (the kernel has not reset it) is not published: not taken.
  ring[0].flags = kDirty | kReset;
  EXPECT_TRUE(harvest_all(harvester, ring).empty());
}

// A simulated kernel on its own thread: entry k goes to index k % size once the consumer has
// marked that index's previous entry RESET (the kernel frees entries only after
// KVM_RESET_DIRTY_RINGS, which comes after the marks); slot and offset are written plainly,
// then flags with a release store, as kvm_dirty_ring_push does. Every entry carries its
// sequence number in both fields, so one read before it was published shows up as a value
// that is not k's.
void run_concurrent(RingOrdering ordering, std::size_t ring_size, std::uint64_t total) {
  std::vector<kvm_dirty_gfn> ring(ring_size);
  std::atomic<bool> failed{false};
  std::thread producer([&] {
    for (std::uint64_t k = 0; k < total && !failed; ++k) {
      kvm_dirty_gfn& entry = ring[k % ring_size];
      std::atomic_ref<std::uint32_t> flags(entry.flags);
      if (k >= ring_size) {
        // The kernel reuses an entry only after userspace's RESET (acquire, as the kernel's
        // kvm_dirty_gfn_harvested); then it clears it.
        while (!(flags.load(std::memory_order_acquire) & kReset)) {
          if (failed) return;
          std::this_thread::yield();
        }
        flags.store(0, std::memory_order_relaxed);
      }
      entry.slot = static_cast<std::uint32_t>(k * 7 + 1);
      entry.offset = k;
      flags.store(kDirty, std::memory_order_release);
    }
  });
  DirtyRingHarvester harvester(ordering);
  std::uint64_t next = 0;
  std::uint64_t empty_polls = 0;
  while (next < total && !failed) {
    const std::size_t n = harvester.harvest(ring, [&](const DirtyEntry& e) {
      if (e.offset != next || e.slot != static_cast<std::uint32_t>(next * 7 + 1)) {
        ADD_FAILURE() << "expected entry " << next << ", read slot " << e.slot << " offset "
                      << e.offset;
        failed = true;
      }
      ++next;
    });
    if (n == 0 && ++empty_polls % 64 == 0) std::this_thread::yield();
  }
  producer.join();
  EXPECT_EQ(next, total) << "every produced entry harvested exactly once";
  EXPECT_EQ(harvester.fetch_index(), total);
  EXPECT_FALSE(failed);
}

TEST(DirtyRingHarvester, ConcurrentProducerAcquireRelease) {
  run_concurrent(RingOrdering::acquire_release, 16, 200000);
}

TEST(DirtyRingHarvester, ConcurrentProducerFullBarriers) {
  run_concurrent(RingOrdering::full_barrier, 16, 200000);
}

TEST(DirtyRingHarvester, ConcurrentProducerTinyRing) {
  run_concurrent(RingOrdering::acquire_release, 2, 100000);
}

}  // namespace
}  // namespace vfiokit::kvm
