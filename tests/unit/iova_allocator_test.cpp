#include "vfiokit/iommu/iova_allocator.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "vfiokit/base/error.h"

namespace vfiokit::iommu {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kEduMask = (std::uint64_t{1} << 28) - 1;
const std::vector<IovaRange> kRigRanges = {{0, 0xfedfffff}, {0xfef00000, 0x7fffffffff}};

TEST(IovaAllocator, NeverHandsOutPageZeroAndStaysUnderTheMask) {
  IovaAllocator a(kRigRanges, {kEduMask, kPage, 65535});
  EXPECT_EQ(a.allocate(kPage), kPage);
  EXPECT_EQ(a.free_ranges(), (std::vector<IovaRange>{{2 * kPage, kEduMask}}));
  EXPECT_EQ(a.free_bytes(), kEduMask + 1 - 2 * kPage);
}

TEST(IovaAllocator, SkipsTheReservedMsiWindow) {
  const std::vector<IovaRange> ranges = {{0, 0xfedfffff}, {0xfef00000, 0xffffffff}};
  IovaAllocator a(ranges, {0xffffffff, kPage, 65535});
  // Fill everything below the window with one big allocation, then ask for 1 MiB more.
  EXPECT_EQ(a.allocate(0xfedfffff + 1 - kPage), kPage);
  EXPECT_EQ(a.allocate(1 << 20), 0xfef00000u);
}

TEST(IovaAllocator, AlignsAndUsesTheHolesItLeaves) {
  IovaAllocator a(kRigRanges, {kEduMask, kPage, 65535});
  const std::uint64_t small = a.allocate(kPage);            // 0x1000
  const std::uint64_t huge = a.allocate(2 << 20, 2 << 20);  // 0x200000
  EXPECT_EQ(small, 0x1000u);
  EXPECT_EQ(huge, 0x200000u);
  // The hole 0x2000-0x1fffff is used for a request that fits.
  EXPECT_EQ(a.allocate(64 * kPage), 0x2000u);
  EXPECT_EQ(a.allocate(1, 8192), 0x42000u);  // rounded to a page, aligned to 8 KiB
}

TEST(IovaAllocator, ReleaseCoalescesBackToTheStart) {
  IovaAllocator a(kRigRanges, {kEduMask, kPage, 65535});
  const auto free_before = a.free_bytes();
  std::vector<std::uint64_t> iovas;
  for (int i = 0; i < 100; ++i)
    iovas.push_back(a.allocate(kPage * static_cast<std::uint64_t>(i % 7 + 1)));
  // Release in a scrambled order.
  std::mt19937 rng(7);
  std::vector<std::size_t> order(iovas.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  for (std::size_t i : order) a.release(iovas[i], kPage * (i % 7 + 1));
  EXPECT_EQ(a.free_bytes(), free_before);
  EXPECT_EQ(a.free_ranges().size(), 1u);
  EXPECT_EQ(a.mappings_left(), 65535u);
}

TEST(IovaAllocator, FragmentedSpaceFailsWithTheLargestHoleNamed) {
  IovaAllocator a({{0, 16 * kPage - 1}}, {~std::uint64_t{0}, kPage, 65535});
  std::vector<std::uint64_t> pages;
  for (int i = 0; i < 15; ++i) pages.push_back(a.allocate(kPage));
  for (std::size_t i = 0; i < pages.size(); i += 2) a.release(pages[i], kPage);  // every other page
  EXPECT_EQ(a.free_bytes(), 8 * kPage);
  try {
    a.allocate(2 * kPage);
    FAIL() << "a 2-page hole does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.context_value("largest_free"), "4 KiB");
  }
  EXPECT_NO_THROW(a.allocate(kPage));
}

TEST(IovaAllocator, TheMappingBudgetIsHonoured) {
  IovaAllocator a(kRigRanges, {kEduMask, kPage, 3});
  const auto first = a.allocate(kPage);
  a.allocate(kPage);
  a.allocate(kPage);
  EXPECT_EQ(a.mappings_left(), 0u);
  try {
    a.allocate(kPage);
    FAIL() << "budget exceeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no more DMA mappings"), std::string::npos);
    EXPECT_NE(e.hint().find("dma_entry_limit"), std::string::npos);
  }
  a.release(first, kPage);
  EXPECT_EQ(a.allocate(kPage), first);
}

TEST(IovaAllocator, ExhaustionBelowAMaskThatIsTooSmall) {
  IovaAllocator a(kRigRanges, {0xffff, kPage, 65535});  // 64 KiB of address space
  EXPECT_EQ(a.allocate(15 * kPage), kPage);
  EXPECT_THROW(a.allocate(kPage), Error);
  EXPECT_THROW(IovaAllocator({{0xfef00000, 0xffffffff}}, {kEduMask, kPage, 65535}), Error);
}

TEST(IovaAllocator, BadRequestsAndBadReleases) {
  IovaAllocator a(kRigRanges, {kEduMask, kPage, 65535});
  EXPECT_THROW(a.allocate(0), Error);
  EXPECT_THROW(a.allocate(kPage, 3 * kPage), Error);   // not a power of two
  EXPECT_THROW(a.allocate(~std::uint64_t{0}), Error);  // rounding overflows
  const auto iova = a.allocate(2 * kPage);
  EXPECT_THROW(a.release(iova, kPage), Error);          // wrong size
  EXPECT_THROW(a.release(iova + kPage, kPage), Error);  // not an allocation
  a.release(iova, 2 * kPage);
  EXPECT_THROW(a.release(iova, 2 * kPage), Error);  // twice
  EXPECT_THROW(IovaAllocator(kRigRanges, {kEduMask, 3000, 65535}), Error);
}

TEST(IovaAllocator, RangesThatTouchAreMergedAndUnalignedEdgesTrimmed) {
  IovaAllocator a({{0x10800, 0x1ffff}, {0x20000, 0x2ffff}, {0x30000, 0x30fff}},
                  {~std::uint64_t{0}, kPage, 65535});
  EXPECT_EQ(a.free_ranges(), (std::vector<IovaRange>{{0x11000, 0x30fff}}));
}

// Issue 10, item 9: a range ending at 2^64 - 1 was never merged with the ranges inside it (its
// `end + 1` wraps to 0), so the same IOVAs were free twice and handed out twice.
TEST(IovaAllocator, ARangeEndingAtTheTopMergesWithTheRangesInsideIt) {
  constexpr std::uint64_t kTop = ~std::uint64_t{0};
  IovaAllocator a({{0x1000, kTop}, {0x5000, 0x5fff}}, {kTop, kPage, 65535});
  EXPECT_EQ(a.free_ranges(), (std::vector<IovaRange>{{0x1000, kTop}}));
  EXPECT_EQ(a.free_bytes(), kTop - 0x1000 + 1);
  EXPECT_EQ(a.allocate(kPage), 0x1000u);
  EXPECT_EQ(a.allocate(kPage), 0x2000u);
  EXPECT_EQ(a.allocate(3 * kPage), 0x3000u);  // up to 0x5fff
  EXPECT_EQ(a.allocate(kPage), 0x6000u);      // not 0x5000 a second time
}

TEST(IovaAllocator, RangesThatStartTogetherKeepTheLongerOne) {
  constexpr std::uint64_t kTop = ~std::uint64_t{0};
  IovaAllocator a({{0x1000, kTop}, {0x1000, 0x1fff}}, {kTop, kPage, 65535});
  EXPECT_EQ(a.free_ranges(), (std::vector<IovaRange>{{0x1000, kTop}}));
  IovaAllocator b({{0x1000, 0x4fff}, {0x800, 0x1fff}, {0x1000, 0x2fff}}, {kTop, kPage, 65535});
  EXPECT_EQ(b.free_ranges(), (std::vector<IovaRange>{{0x1000, 0x4fff}}));
}

TEST(IovaAllocator, APageSplitAcrossTwoTouchingRangesIsUsable) {
  IovaAllocator a({{0x1000, 0x17ff}, {0x1800, 0x1fff}}, {~std::uint64_t{0}, kPage, 65535});
  EXPECT_EQ(a.free_ranges(), (std::vector<IovaRange>{{0x1000, 0x1fff}}));
}

// A random workload against a simple model: allocations never overlap each other, never leave
// the usable ranges or the mask, and free bytes always add up.
TEST(IovaAllocator, RandomWorkloadKeepsEveryInvariant) {
  const std::vector<IovaRange> ranges = {{0, 0x3fffff}, {0x500000, 0xffffff}};
  IovaAllocator a(ranges, {0xbfffff, kPage, 1000});
  const std::uint64_t total = a.free_bytes();
  std::mt19937 rng(11);
  std::map<std::uint64_t, std::uint64_t> live;
  for (int step = 0; step < 5000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const std::uint64_t size = kPage * (1 + rng() % 32);
      const std::uint64_t alignment = kPage << (rng() % 4);
      try {
        const std::uint64_t iova = a.allocate(size, alignment);
        EXPECT_EQ(iova % alignment, 0u);
        EXPECT_GE(iova, kPage);
        EXPECT_LE(iova + size - 1, 0xbfffffu);
        EXPECT_TRUE((iova + size - 1 <= 0x3fffff) || (iova >= 0x500000));
        const auto next = live.lower_bound(iova);
        if (next != live.end()) {
          EXPECT_LE(iova + size, next->first);
        }
        if (next != live.begin()) {
          EXPECT_LE(std::prev(next)->first + std::prev(next)->second, iova);
        }
        live[iova] = size;
      } catch (const Error&) {
        // Out of space or budget: allowed, as long as the invariants hold.
      }
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      a.release(it->first, it->second);
      live.erase(it);
    }
    std::uint64_t used = 0;
    for (const auto& [iova, size] : live) used += size;
    ASSERT_EQ(a.free_bytes() + used, total);
    ASSERT_EQ(a.mappings_left() + live.size(), 1000u);
  }
}

}  // namespace
}  // namespace vfiokit::iommu
