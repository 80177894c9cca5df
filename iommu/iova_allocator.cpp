#include "vfiokit/iommu/iova_allocator.h"

#include <algorithm>
#include <bit>

#include "vfiokit/base/error.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {
namespace {

constexpr std::uint64_t kLastIova = ~std::uint64_t{0};

// Rounds up to a multiple of `alignment` (a power of two); false on overflow.
bool round_up(std::uint64_t value, std::uint64_t alignment, std::uint64_t& out) {
  const std::uint64_t mask = alignment - 1;
  if (value > ~std::uint64_t{0} - mask) return false;
  out = (value + mask) & ~mask;
  return true;
}

Error iova_error(std::string message, std::uint64_t size, const IovaAllocatorLimits& limits) {
  return Error("allocate IOVA", std::move(message))
      .with("size", human_size(size))
      .with("dma_mask", hex(limits.dma_mask));
}

}  // namespace

IovaAllocator::IovaAllocator(const std::vector<IovaRange>& usable,
                             const IovaAllocatorLimits& limits)
    : limits_(limits), budget_(limits.mapping_budget) {
  if (!std::has_single_bit(limits_.min_alignment)) {
    throw Error("IOVA allocator",
                "minimum alignment " + hex(limits_.min_alignment) + " is not a power of two");
  }
  // Clip each range to what the device can use (never page 0, nothing above the mask), then
  // merge the ones that overlap or touch: the kernel may list one usable stretch in pieces.
  std::vector<IovaRange> clipped;
  for (const IovaRange& range : usable) {
    const std::uint64_t start = std::max(range.start, limits_.min_alignment);
    const std::uint64_t last = std::min(range.end, limits_.dma_mask);
    if (start <= last) clipped.push_back({start, last});
  }
  std::sort(clipped.begin(), clipped.end(),
            [](const IovaRange& a, const IovaRange& b) { return a.start < b.start; });
  std::vector<IovaRange> merged;
  for (const IovaRange& range : clipped) {
    // Nothing can start after a range that ends at 2^64 - 1, and its `end + 1` would wrap to 0.
    if (!merged.empty() &&
        (merged.back().end == kLastIova || range.start <= merged.back().end + 1)) {
      merged.back().end = std::max(merged.back().end, range.end);
    } else {
      merged.push_back(range);
    }
  }
  for (const IovaRange& range : merged) {
    std::uint64_t start = 0;
    if (!round_up(range.start, limits_.min_alignment, start) || start > range.end) continue;
    // Keep only whole pages: the last byte of the last page must be in range.
    const std::uint64_t whole =
        ((range.end - start + 1) / limits_.min_alignment) * limits_.min_alignment;
    if (whole != 0) free_[start] = start + whole - 1;
  }
  if (free_.empty()) {
    throw Error("IOVA allocator", "no usable IOVA below the device's DMA mask")
        .with("dma_mask", hex(limits_.dma_mask));
  }
}

std::uint64_t IovaAllocator::allocate(std::uint64_t size, std::uint64_t alignment) {
  if (size == 0) throw iova_error("zero-sized allocation", size, limits_);
  alignment = std::max(alignment, limits_.min_alignment);
  if (!std::has_single_bit(alignment)) {
    throw iova_error("alignment " + hex(alignment) + " is not a power of two", size, limits_);
  }
  std::uint64_t length = 0;
  if (!round_up(size, limits_.min_alignment, length)) {
    throw iova_error("size does not fit in the address space", size, limits_);
  }
  if (budget_ == 0) {
    throw iova_error("the container allows no more DMA mappings", size, limits_)
        .hint(
            "unmap something first, or coalesce buffers into fewer, larger mappings "
            "(the kernel's limit is vfio_iommu_type1 dma_entry_limit)");
  }
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const auto [hole_start, hole_last] = *it;
    std::uint64_t start = 0;
    if (!round_up(hole_start, alignment, start) || start > hole_last) continue;
    if (hole_last - start + 1 < length) continue;
    const std::uint64_t last = start + length - 1;
    free_.erase(it);
    if (start > hole_start) free_[hole_start] = start - 1;
    if (last < hole_last) free_[last + 1] = hole_last;
    allocated_[start] = length;
    --budget_;
    return start;
  }
  throw iova_error("no free IOVA range of that size and alignment below the DMA mask", size,
                   limits_)
      .with("largest_free", human_size(largest_free()))
      .hint("free some DMA buffers, or use a device with a wider DMA mask");
}

void IovaAllocator::release(std::uint64_t iova, std::uint64_t size) {
  const auto it = allocated_.find(iova);
  std::uint64_t length = 0;
  if (it == allocated_.end() || !round_up(size, limits_.min_alignment, length) ||
      it->second != length) {
    throw Error("release IOVA", "the range was not handed out by this allocator")
        .with("iova", hex(iova))
        .with("size", human_size(size));
  }
  allocated_.erase(it);
  ++budget_;
  std::uint64_t start = iova;
  std::uint64_t last = iova + length - 1;
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == last + 1) {
    last = next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto previous = std::prev(next);
    if (previous->second + 1 == start) {
      start = previous->first;
      free_.erase(previous);
    }
  }
  free_[start] = last;
}

std::uint64_t IovaAllocator::free_bytes() const noexcept {
  std::uint64_t total = 0;
  for (const auto& [start, last] : free_) total += last - start + 1;
  return total;
}

std::uint64_t IovaAllocator::largest_free() const noexcept {
  std::uint64_t largest = 0;
  for (const auto& [start, last] : free_) largest = std::max(largest, last - start + 1);
  return largest;
}

std::vector<IovaRange> IovaAllocator::free_ranges() const {
  std::vector<IovaRange> ranges;
  for (const auto& [start, last] : free_) ranges.push_back({start, last});
  return ranges;
}

}  // namespace vfiokit::iommu
