// The IOVA allocator under a fuzzed workload: usable ranges as the kernel might report them
// (overlapping, touching, unaligned, reaching 2^64 - 1), any DMA mask, minimum alignment and
// mapping budget, then allocations of any size and alignment and releases good and bad.
//
// Invariants: the allocator starts with every whole page of the usable ranges' union between
// page 1 and the mask free. After every step: free ranges are sorted, disjoint and not touching,
// page-aligned, inside the usable ranges, below the mask and above page 0; live allocations never
// overlap each other or a free range; free bytes plus allocated bytes stay what they were at the
// start; the budget is exact; a failed call changes nothing. Releasing everything restores the
// start.
#include <algorithm>
#include <map>
#include <optional>

#include "fuzz/fuzz.h"
#include "vfiokit/base/error.h"
#include "vfiokit/iommu/iova_allocator.h"

namespace vfiokit::iommu {
namespace {

using u128 = unsigned __int128;
constexpr std::uint64_t kMax = ~std::uint64_t{0};

// The union of the kernel's ranges, merged here independently of the allocator.
std::vector<IovaRange> merged(std::vector<IovaRange> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const IovaRange& a, const IovaRange& b) { return a.start < b.start; });
  std::vector<IovaRange> out;
  for (const IovaRange& r : ranges) {
    if (!out.empty() && (out.back().end == kMax || r.start <= out.back().end + 1)) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// What the allocator should start with, worked out independently: the union, clipped to
// [page 1, mask], trimmed to whole pages.
std::vector<IovaRange> expected_free(const std::vector<IovaRange>& usable,
                                     const IovaAllocatorLimits& limits) {
  std::vector<IovaRange> out;
  const u128 page = limits.min_alignment;
  for (const IovaRange& r : usable) {
    const u128 start = (std::max<u128>(r.start, page) + page - 1) / page * page;
    const u128 end = (u128{std::min(r.end, limits.dma_mask)} + 1) / page * page;  // exclusive
    if (start < end) {
      out.push_back({static_cast<std::uint64_t>(start), static_cast<std::uint64_t>(end - 1)});
    }
  }
  return out;
}

bool inside(const std::vector<IovaRange>& usable, std::uint64_t start, std::uint64_t last) {
  return std::any_of(usable.begin(), usable.end(),
                     [&](const IovaRange& r) { return r.start <= start && last <= r.end; });
}

std::uint64_t page_round(std::uint64_t size, std::uint64_t page) {
  return static_cast<std::uint64_t>((u128{size} + page - 1) / page * page);
}

struct Checker {
  const std::vector<IovaRange>& usable;
  const IovaAllocatorLimits& limits;
  u128 total = 0;
  std::map<std::uint64_t, std::uint64_t> live;  // start -> length

  void check(const IovaAllocator& a) const {
    const auto free = a.free_ranges();
    u128 free_sum = 0;
    for (std::size_t i = 0; i < free.size(); ++i) {
      const IovaRange& r = free[i];
      FUZZ_CHECK(r.start <= r.end);
      if (i > 0) FUZZ_CHECK(free[i - 1].end < r.start && free[i - 1].end + 1 < r.start);
      FUZZ_CHECK(r.start >= limits.min_alignment && r.start % limits.min_alignment == 0);
      FUZZ_CHECK((u128{r.end} + 1) % limits.min_alignment == 0);
      FUZZ_CHECK(r.end <= limits.dma_mask);
      FUZZ_CHECK(inside(usable, r.start, r.end));
      free_sum += u128{r.end} - r.start + 1;
      // No live allocation overlaps this free range.
      auto it = live.upper_bound(r.end);
      if (it != live.begin()) {
        --it;
        FUZZ_CHECK(u128{it->first} + it->second - 1 < r.start);
      }
    }
    FUZZ_CHECK(free_sum == a.free_bytes());
    u128 used = 0;
    for (const auto& [start, length] : live) used += length;
    FUZZ_CHECK(free_sum + used == total);
    FUZZ_CHECK(u128{a.mappings_left()} + live.size() == limits.mapping_budget);
    std::uint64_t largest = 0;
    for (const IovaRange& r : free) largest = std::max(largest, r.end - r.start + 1);
    FUZZ_CHECK(a.largest_free() == largest);
  }
};

std::uint64_t power_of_two(FuzzedDataProvider& data, int low, int high) {
  return std::uint64_t{1} << data.ConsumeIntegralInRange<int>(low, high);
}

void run(FuzzedDataProvider& data) {
  std::vector<IovaRange> ranges;
  const auto count = data.ConsumeIntegralInRange<int>(0, 6);
  for (int i = 0; i < count; ++i) {
    const std::uint64_t a = fuzz::edgy_u64(data), b = fuzz::edgy_u64(data);
    ranges.push_back({std::min(a, b), std::max(a, b)});
  }
  IovaAllocatorLimits limits;
  switch (data.ConsumeIntegralInRange<int>(0, 2)) {
    case 0:
      limits.dma_mask = kMax;
      break;
    case 1:
      limits.dma_mask = power_of_two(data, 12, 63) - 1;
      break;
    default:
      limits.dma_mask = data.ConsumeIntegral<std::uint64_t>();
      break;
  }
  limits.min_alignment = data.ConsumeBool() ? 4096 : power_of_two(data, 0, 40);
  limits.mapping_budget = data.ConsumeIntegralInRange<std::uint32_t>(0, 64);

  std::optional<IovaAllocator> allocator;
  try {
    allocator.emplace(ranges, limits);
  } catch (const Error&) {
    FUZZ_CHECK(expected_free(merged(ranges), limits).empty());  // nothing usable
    return;
  }
  IovaAllocator& a = *allocator;
  const std::vector<IovaRange> usable = merged(ranges);
  Checker checker{usable, limits, 0, {}};
  checker.total = a.free_bytes();
  checker.check(a);
  const auto start_state = a.free_ranges();
  FUZZ_CHECK(start_state == expected_free(usable, limits));

  while (data.remaining_bytes() > 0) {
    const auto before = a.free_ranges();
    const auto budget = a.mappings_left();
    switch (data.ConsumeIntegralInRange<int>(0, 3)) {
      case 0:
      case 1: {
        const std::uint64_t size =
            data.ConsumeBool()
                ? fuzz::edgy_u64(data)
                : limits.min_alignment * data.ConsumeIntegralInRange<std::uint64_t>(1, 64);
        const std::uint64_t alignment =
            data.ConsumeBool()
                ? 0
                : (data.ConsumeBool() ? power_of_two(data, 0, 63) : fuzz::edgy_u64(data));
        std::uint64_t iova = 0;
        try {
          iova = a.allocate(size, alignment);
        } catch (const Error&) {
          FUZZ_CHECK(a.free_ranges() == before && a.mappings_left() == budget);
          break;
        }
        const std::uint64_t length = page_round(size, limits.min_alignment);
        FUZZ_CHECK(length >= size && length != 0);
        FUZZ_CHECK(iova % std::max(alignment, limits.min_alignment) == 0);
        FUZZ_CHECK(iova >= limits.min_alignment);
        FUZZ_CHECK(u128{iova} + length - 1 <= limits.dma_mask);
        FUZZ_CHECK(inside(usable, iova, iova + length - 1));
        const auto next = checker.live.lower_bound(iova);
        if (next != checker.live.end()) FUZZ_CHECK(u128{iova} + length <= next->first);
        if (next != checker.live.begin()) {
          const auto previous = std::prev(next);
          FUZZ_CHECK(u128{previous->first} + previous->second <= iova);
        }
        checker.live[iova] = length;
        FUZZ_CHECK(a.mappings_left() + 1 == budget);
        break;
      }
      case 2: {
        if (checker.live.empty()) break;
        auto it = checker.live.begin();
        std::advance(it, data.ConsumeIntegralInRange<std::size_t>(0, checker.live.size() - 1));
        // Any size that rounds to the same length is the same allocation.
        a.release(it->first, it->second - data.ConsumeIntegralInRange<std::uint64_t>(
                                              0, limits.min_alignment - 1));
        checker.live.erase(it);
        FUZZ_CHECK(a.mappings_left() == budget + 1);
        break;
      }
      default: {
        // Something that was not handed out: a wrong address or a wrong size.
        const std::uint64_t iova = fuzz::edgy_u64(data);
        const std::uint64_t size = fuzz::edgy_u64(data);
        const auto it = checker.live.find(iova);
        if (it != checker.live.end() && size != 0 &&
            page_round(size, limits.min_alignment) == it->second) {
          break;  // that one was handed out
        }
        try {
          a.release(iova, size);
          fuzz::broken("release of a range never handed out succeeded", __FILE__, __LINE__);
        } catch (const Error&) {
          FUZZ_CHECK(a.free_ranges() == before && a.mappings_left() == budget);
        }
        break;
      }
    }
    checker.check(a);
  }

  // Giving everything back in any order restores the allocator to how it started.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> all(checker.live.begin(),
                                                           checker.live.end());
  std::reverse(all.begin(), all.end());
  for (const auto& [iova, length] : all) {
    a.release(iova, length);
    checker.live.erase(iova);
    checker.check(a);
  }
  FUZZ_CHECK(a.free_ranges() == start_state);
  FUZZ_CHECK(a.mappings_left() == limits.mapping_budget);
}

}  // namespace
}  // namespace vfiokit::iommu

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  vfiokit::iommu::run(data);
  return 0;
}
