// Hands out IOVA ranges that a device can really use: inside the ranges the kernel reports as
// usable (VFIO's IOVA range capability, which leaves out reserved regions such as the MSI
// window), at or below the device's DMA mask (edu addresses only 28 bits), aligned, and within
// the number of mappings the container still allows (dma_entry_limit). Page 0 is never handed
// out, so a zero IOVA in a descriptor is always a bug that shows.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "vfiokit/iommu/vfio_caps.h"

namespace vfiokit::iommu {

struct IovaAllocatorLimits {
  std::uint64_t dma_mask = ~std::uint64_t{0};  // highest address the device can generate
  std::uint64_t min_alignment = 4096;          // the IOMMU's smallest page
  std::uint32_t mapping_budget = 65535;        // mappings the container still allows
};

class IovaAllocator {
 public:
  // Throws Error if nothing usable is left once the mask and page 0 are taken out.
  IovaAllocator(const std::vector<IovaRange>& usable, const IovaAllocatorLimits& limits);

  // The lowest free IOVA of `size` bytes aligned to `alignment` (at least min_alignment; both
  // rounded up to it). Throws Error naming the size, the mask and why: no hole big enough,
  // or the mapping budget spent.
  std::uint64_t allocate(std::uint64_t size, std::uint64_t alignment = 0);
  // Gives back exactly what allocate() returned; merges with free neighbours. Throws Error on a
  // range that was not handed out.
  void release(std::uint64_t iova, std::uint64_t size);

  [[nodiscard]] std::uint64_t free_bytes() const noexcept;
  [[nodiscard]] std::uint64_t largest_free() const noexcept;
  [[nodiscard]] std::uint32_t mappings_left() const noexcept { return budget_; }
  [[nodiscard]] const IovaAllocatorLimits& limits() const noexcept { return limits_; }
  [[nodiscard]] std::vector<IovaRange> free_ranges() const;

 private:
  std::map<std::uint64_t, std::uint64_t> free_;       // start -> last (inclusive)
  std::map<std::uint64_t, std::uint64_t> allocated_;  // start -> size, as handed out
  IovaAllocatorLimits limits_;
  std::uint32_t budget_;
};

}  // namespace vfiokit::iommu
