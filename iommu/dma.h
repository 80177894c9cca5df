// DMA memory: buffers backed by the biggest pages available, IOVA space that respects the
// device, and regions that tie the two together with a mapping, torn down in the safe order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "vfiokit/base/mapped_memory.h"
#include "vfiokit/iommu/backend.h"
#include "vfiokit/iommu/iova_allocator.h"

namespace vfiokit::iommu {

enum class PageBacking {
  hugetlb_2m,        // MAP_HUGETLB from the reserved hugetlbfs pool
  transparent_huge,  // 2 MiB aligned anonymous memory with MADV_HUGEPAGE (best effort)
  small,             // 4 KiB pages
};
std::string_view to_string(PageBacking backing) noexcept;

struct DmaBufferOptions {
  bool allow_huge_pages = true;
  bool prefault = true;           // touch every page before it is mapped
  unsigned prefault_threads = 0;  // 0: one per CPU
};

// Anonymous memory for DMA. Sizes are rounded up to the backing's page size.
class DmaBuffer {
 public:
  static DmaBuffer allocate(std::size_t size, const DmaBufferOptions& options = {});

  [[nodiscard]] std::span<std::uint8_t> bytes() const noexcept { return memory_.bytes(); }
  [[nodiscard]] void* data() const noexcept { return memory_.data(); }
  [[nodiscard]] std::size_t size() const noexcept { return memory_.size(); }
  [[nodiscard]] PageBacking backing() const noexcept { return backing_; }
  [[nodiscard]] std::size_t page_size() const noexcept;

 private:
  DmaBuffer(MappedMemory memory, PageBacking backing)
      : memory_(std::move(memory)), backing_(backing) {}
  MappedMemory memory_;
  PageBacking backing_;
};

// Touches one byte per page of `memory` in `threads` threads, so the page faults happen in
// parallel here instead of one by one inside the kernel's pinning.
void prefault(std::span<std::uint8_t> memory, std::size_t page_size, unsigned threads);

// An IOVA range held from an allocator; given back when it goes.
class IovaLease {
 public:
  IovaLease() = default;
  IovaLease(IovaAllocator& allocator, std::uint64_t iova, std::uint64_t size)
      : allocator_(&allocator), iova_(iova), size_(size) {}
  IovaLease(IovaLease&& other) noexcept;
  IovaLease& operator=(IovaLease&& other) noexcept;
  IovaLease(const IovaLease&) = delete;
  IovaLease& operator=(const IovaLease&) = delete;
  ~IovaLease();
  [[nodiscard]] std::uint64_t iova() const noexcept { return iova_; }

 private:
  void give_back() noexcept;
  IovaAllocator* allocator_ = nullptr;
  std::uint64_t iova_ = 0;
  std::uint64_t size_ = 0;
};

// A buffer, the IOVA it is known by, and the IOMMU mapping between them.
class DmaRegion {
 public:
  DmaRegion(DmaBuffer buffer, IovaLease iova, DmaMapping mapping)
      : buffer_(std::move(buffer)), iova_(std::move(iova)), mapping_(std::move(mapping)) {}

  [[nodiscard]] std::uint64_t iova() const noexcept { return mapping_.iova(); }
  [[nodiscard]] std::size_t size() const noexcept { return buffer_.size(); }
  [[nodiscard]] std::span<std::uint8_t> bytes() const noexcept { return buffer_.bytes(); }
  [[nodiscard]] const DmaBuffer& buffer() const noexcept { return buffer_; }

 private:
  // Members are destroyed bottom-up, which is the only safe order: the IOMMU mapping goes first
  // (the device can no longer reach the memory), then the IOVA returns to the allocator, then
  // the memory is freed.
  DmaBuffer buffer_;
  IovaLease iova_;
  DmaMapping mapping_;
};

// The DMA address space of one device behind one backend: an IOVA allocator built from the
// backend's usable ranges, the device's DMA mask and the mappings it still allows. It must
// outlive the regions it hands out.
class DmaSpace {
 public:
  DmaSpace(IommuBackend& backend, std::uint64_t dma_mask);

  // A buffer of at least `size` bytes, mapped at an IOVA the device can reach. Huge-page
  // buffers get huge-page aligned IOVAs so the IOMMU can map them with huge pages too.
  DmaRegion allocate(std::size_t size, DmaDirection direction = DmaDirection::bidirectional,
                     const DmaBufferOptions& options = {});

  [[nodiscard]] const IovaAllocator& iovas() const noexcept { return allocator_; }
  [[nodiscard]] IommuBackend& backend() const noexcept { return backend_; }

 private:
  IommuBackend& backend_;
  IovaAllocator allocator_;
};

// The host physical address behind a virtual address of this process, from /proc/self/pagemap
// (root only: others see PFN 0). nullopt when the page is not present or unreadable.
std::optional<std::uint64_t> physical_address(const void* address);

}  // namespace vfiokit::iommu
