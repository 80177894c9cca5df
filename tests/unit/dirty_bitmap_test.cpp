// KVM's dirty bitmap decoding and the ranges KVM_CLEAR_DIRTY_LOG accepts (kvm/dirty_bitmap.h),
// exhaustively over small slots; and which mechanism DirtyTracker picks (kvm/dirty_tracker.h).
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "vfiokit/kvm/dirty_bitmap.h"
#include "vfiokit/kvm/dirty_tracker.h"
#include "vfiokit/kvm/vcpu.h"

namespace vfiokit::kvm {
namespace {

TEST(DirtyBitmap, DecodesBitsAsPagesAndIgnoresBitsBeyondTheSlot) {
  EXPECT_EQ(dirty_bitmap_words(0), 0u);
  EXPECT_EQ(dirty_bitmap_words(1), 1u);
  EXPECT_EQ(dirty_bitmap_words(64), 1u);
  EXPECT_EQ(dirty_bitmap_words(65), 2u);
  const std::vector<std::uint64_t> bitmap{0x8000000000000001ull, 0x6ull};
  EXPECT_EQ(dirty_pages(bitmap, 128), (std::vector<std::uint64_t>{0, 63, 65, 66}));
  EXPECT_EQ(dirty_pages(bitmap, 66), (std::vector<std::uint64_t>{0, 63, 65}));
  EXPECT_EQ(dirty_pages(bitmap, 64), (std::vector<std::uint64_t>{0, 63}));
  EXPECT_EQ(dirty_pages(bitmap, 1000), (std::vector<std::uint64_t>{0, 63, 65, 66}))
      << "a short bitmap is read as far as it goes";
  EXPECT_TRUE(dirty_pages({}, 64).empty());
}

TEST(DirtyBitmap, EveryPagePatternOfSmallSlotsDecodesExactly) {
  // Every subset of a 10-page slot, and every one of a slot straddling a word boundary.
  for (std::uint64_t pages : {10u, 70u}) {
    const std::uint64_t shift = pages - 10;  // the 10 pages looked at: [shift, shift + 10)
    for (std::uint32_t subset = 0; subset < (1u << 10); ++subset) {
      std::vector<std::uint64_t> bitmap(dirty_bitmap_words(pages), 0);
      std::vector<std::uint64_t> expected;
      for (std::uint64_t i = 0; i < 10; ++i) {
        if (!(subset & (1u << i))) continue;
        const std::uint64_t page = shift + i;
        bitmap[page / 64] |= std::uint64_t{1} << (page % 64);
        expected.push_back(page);
      }
      ASSERT_EQ(dirty_pages(bitmap, pages), expected) << pages << " pages, subset " << subset;
    }
  }
}

// The kernel's rule, written out from kvm_clear_dirty_log_protect() independently.
TEST(DirtyBitmap, ClearRangeValidityIsTheKernels) {
  EXPECT_TRUE(clear_range_valid(0, 64, 128));
  EXPECT_TRUE(clear_range_valid(64, 64, 128));
  EXPECT_TRUE(clear_range_valid(64, 36, 100)) << "a partial count that ends at the slot's end";
  EXPECT_TRUE(clear_range_valid(0, 100, 100));
  EXPECT_FALSE(clear_range_valid(0, 36, 100)) << "partial, not at the end";
  EXPECT_FALSE(clear_range_valid(1, 63, 128)) << "first page not a multiple of 64";
  EXPECT_FALSE(clear_range_valid(64, 128, 128)) << "past the end";
  EXPECT_FALSE(clear_range_valid(192, 64, 128)) << "starts past the end";
  EXPECT_FALSE(clear_range_valid(0, 0, 128)) << "empty";
}

void check_ranges(const std::vector<std::uint64_t>& bitmap, std::uint64_t pages,
                  std::uint32_t max_pages, std::size_t max_gap) {
  const auto ranges = clear_ranges(bitmap, pages, max_pages, max_gap);
  std::set<std::uint64_t> covered;
  std::uint64_t previous_end = 0;
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const ClearRange& r = ranges[i];
    ASSERT_TRUE(clear_range_valid(r.first_page, r.pages, pages))
        << r.first_page << "+" << r.pages << " of " << pages;
    ASSERT_LE(r.pages, max_pages);
    ASSERT_GE(r.first_page, previous_end) << "ranges overlap or are out of order";
    const std::uint64_t first_word = r.first_page / 64;
    const std::uint64_t last_word = (r.first_page + r.pages - 1) / 64;
    // A range starts and ends on a dirty word, and bridges no gap longer than max_gap.
    ASSERT_NE(bitmap[first_word], 0u) << "starts on a clean word";
    ASSERT_NE(bitmap[last_word], 0u) << "ends on a clean word";
    std::size_t gap = 0;
    for (std::uint64_t w = first_word; w <= last_word; ++w) {
      gap = bitmap[w] == 0 ? gap + 1 : 0;
      ASSERT_LE(gap, max_gap) << "a range bridges a longer clean gap";
    }
    // Two ranges are apart by more than max_gap clean words, unless one range for both would
    // be longer than the limit.
    if (i > 0 && r.first_page + r.pages - ranges[i - 1].first_page <= max_pages) {
      ASSERT_GT(first_word - (previous_end + 63) / 64, max_gap) << "ranges that should be one";
    }
    previous_end = r.first_page + r.pages;
    for (std::uint64_t p = r.first_page; p < r.first_page + r.pages; ++p) covered.insert(p);
  }
  for (const std::uint64_t page : dirty_pages(bitmap, pages)) {
    ASSERT_TRUE(covered.count(page)) << "dirty page " << page << " not cleared";
  }
}

TEST(DirtyBitmap, ClearRangesAreValidAndCoverEveryDirtyPageForEveryWordPattern) {
  // Every pattern of clean and dirty words for slots of 1 to 6 words, every ninth slot length
  // in the last word, and each of those for three range limits and four gap limits.
  for (std::size_t words = 1; words <= 6; ++words) {
    for (std::uint32_t pattern = 0; pattern < (1u << words); ++pattern) {
      for (std::uint64_t tail = 1; tail <= 64; tail += 9) {
        const std::uint64_t pages = (words - 1) * 64 + tail;
        std::vector<std::uint64_t> bitmap(words, 0);
        for (std::size_t w = 0; w < words; ++w) {
          if (!(pattern & (1u << w))) continue;
          // A bit inside the slot (the last word may be short).
          const std::uint64_t limit = w + 1 == words ? tail : 64;
          bitmap[w] = std::uint64_t{1} << ((w * 13 + pattern) % limit);
        }
        for (std::uint32_t max_pages : {64u, 128u, 1u << 31}) {
          for (std::size_t max_gap : {0u, 1u, 2u, 64u}) {
            check_ranges(bitmap, pages, max_pages, max_gap);
            if (testing::Test::HasFatalFailure()) {
              FAIL() << words << " words, pattern " << pattern << ", " << pages << " pages, max "
                     << max_pages << ", gap " << max_gap;
            }
          }
        }
      }
    }
  }
}

TEST(DirtyBitmap, ClearRangesOfRandomSparseAndDenseBitmaps) {
  std::mt19937_64 random(14);
  for (int round = 0; round < 300; ++round) {
    const std::uint64_t pages = 1 + random() % 2000;
    std::vector<std::uint64_t> bitmap(dirty_bitmap_words(pages), 0);
    const std::uint64_t density = random() % 4;  // 0: none ... 3: every other page or so
    for (std::uint64_t p = 0; p < pages; ++p) {
      if (density && random() % (1u << (8 - 2 * density)) == 0) {
        bitmap[p / 64] |= std::uint64_t{1} << (p % 64);
      }
    }
    check_ranges(bitmap, pages, 128, 0);
    check_ranges(bitmap, pages, 1u << 31, 3);
    if (HasFatalFailure()) FAIL() << "round " << round << ", " << pages << " pages";
  }
  EXPECT_TRUE(clear_ranges(std::vector<std::uint64_t>(4, 0), 256).empty());
  // Adjacent dirty words make one range; a clean word splits them unless gaps may be bridged.
  EXPECT_EQ(clear_ranges(std::vector<std::uint64_t>{1, 1, 0, 1}, 200, 1u << 31, 0),
            (std::vector<ClearRange>{{0, 128}, {192, 8}}));
  EXPECT_EQ(clear_ranges(std::vector<std::uint64_t>{1, 1, 0, 1}, 200),
            (std::vector<ClearRange>{{0, 200}}));
  EXPECT_EQ(clear_ranges(std::vector<std::uint64_t>{1, 0, 0, 1, 0}, 320, 1u << 31, 1),
            (std::vector<ClearRange>{{0, 64}, {192, 64}}));
}

TEST(DirtyTracking, PlanPrefersTheAcqRelRingThenThePlainRingThenTheBitmap) {
  DirtyTrackerOptions allow;
  DirtyTrackerOptions bitmap_only;
  bitmap_only.allow_ring = false;
  const DirtyLogSupport both{1 << 20, 1 << 20, 3};
  EXPECT_EQ(plan_dirty_tracking(both, allow).mechanism, DirtyMechanism::ring);
  EXPECT_EQ(plan_dirty_tracking(both, allow).ordering, RingOrdering::acquire_release);
  // Linux 5.11 to 6.0: the plain ring only, harvested with full barriers.
  const DirtyLogSupport plain_ring{0, 1 << 20, 3};
  EXPECT_EQ(plan_dirty_tracking(plain_ring, allow).mechanism, DirtyMechanism::ring);
  EXPECT_EQ(plan_dirty_tracking(plain_ring, allow).ordering, RingOrdering::full_barrier);
  // The caller forces the bitmap; manual protect where KVM takes its enable bit.
  EXPECT_EQ(plan_dirty_tracking(both, bitmap_only).mechanism, DirtyMechanism::bitmap);
  EXPECT_TRUE(plan_dirty_tracking(both, bitmap_only).manual_protect);
  const DirtyLogSupport old_kernel{0, 0, 0};
  EXPECT_EQ(plan_dirty_tracking(old_kernel, allow).mechanism, DirtyMechanism::bitmap);
  EXPECT_FALSE(plan_dirty_tracking(old_kernel, allow).manual_protect);
  EXPECT_EQ(ring_capability_name(RingOrdering::acquire_release), "KVM_CAP_DIRTY_LOG_RING_ACQ_REL");
  EXPECT_EQ(ring_capability_name(RingOrdering::full_barrier), "KVM_CAP_DIRTY_LOG_RING");
}

TEST(DirtyTracking, ARingFullExitIsClassifiedAndNamesItsFix) {
  kvm_run run{};
  run.exit_reason = KVM_EXIT_DIRTY_RING_FULL;
  const VcpuExit exit = classify_exit(run);
  EXPECT_EQ(exit.kind, ExitKind::dirty_ring_full);
  EXPECT_EQ(exit.reason, 31u);
  EXPECT_EQ(exit_reason_name(exit.reason), "KVM_EXIT_DIRTY_RING_FULL");
  EXPECT_NE(exit_error(exit, 0).hint().find("on_dirty_ring_full"), std::string::npos);
}

}  // namespace
}  // namespace vfiokit::kvm
