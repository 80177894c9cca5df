#include "vfiokit/iommu/dma.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>
#include <vector>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/iommu/dma_sync.h"

namespace vfiokit::iommu {
namespace {

constexpr std::size_t kSmallPage = 4096;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t value, std::size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

MappedMemory map_anonymous(std::size_t size, int extra_flags) {
  void* address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  if (address == MAP_FAILED) return {};
  return MappedMemory(address, size);
}

bool transparent_huge_pages_enabled() {
  const auto setting = read_line_if_exists("/sys/kernel/mm/transparent_hugepage/enabled");
  return setting && setting->find("[never]") == std::string::npos;
}

// `size` bytes starting on a 2 MiB boundary: map 2 MiB more, then trim both ends.
MappedMemory map_huge_aligned(std::size_t size) {
  MappedMemory over = map_anonymous(size + kHugePage, 0);
  if (!over) return {};
  const std::uintptr_t start = over.address();
  const std::uintptr_t aligned = (start + kHugePage - 1) & ~(std::uintptr_t{kHugePage} - 1);
  const auto [base, total] = over.release_without_unmap();
  if (aligned > start) ::munmap(base, aligned - start);
  const std::uintptr_t end = aligned + size;
  if (start + total > end) ::munmap(reinterpret_cast<void*>(end), start + total - end);
  return MappedMemory(reinterpret_cast<void*>(aligned), size);
}

}  // namespace

std::string_view to_string(PageBacking backing) noexcept {
  switch (backing) {
    case PageBacking::hugetlb_2m:
      return "hugetlb-2M";
    case PageBacking::transparent_huge:
      return "thp";
    case PageBacking::small:
      return "4K";
  }
  return "?";
}

std::size_t DmaBuffer::page_size() const noexcept {
  return backing_ == PageBacking::small ? kSmallPage : kHugePage;
}

void prefault(std::span<std::uint8_t> memory, std::size_t page_size, unsigned threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t pages = memory.size() / page_size;
  threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(pages, 1)));
  auto touch = [&](std::size_t first, std::size_t last) {
    for (std::size_t page = first; page < last; ++page) {
      // A volatile store: the write fault allocates the page, and the compiler may not drop it.
      *static_cast<volatile std::uint8_t*>(&memory[page * page_size]) = 0;
    }
  };
  if (threads == 1) {
    touch(0, pages);
    return;
  }
  std::vector<std::thread> workers;
  const std::size_t per = (pages + threads - 1) / threads;
  for (unsigned t = 0; t < threads; ++t) {
    const std::size_t first = std::min(pages, t * per);
    const std::size_t last = std::min(pages, first + per);
    workers.emplace_back(touch, first, last);
  }
  for (auto& worker : workers) worker.join();
}

DmaBuffer DmaBuffer::allocate(std::size_t size, const DmaBufferOptions& options) {
  if (size == 0) throw Error("allocate DMA buffer", "zero-sized buffer");
  MappedMemory memory;
  PageBacking backing = PageBacking::small;
  if (options.allow_huge_pages && size >= kHugePage) {
    memory = map_anonymous(round_up(size, kHugePage), MAP_HUGETLB | (21 << MAP_HUGE_SHIFT));
    if (memory) {
      backing = PageBacking::hugetlb_2m;
    } else if (transparent_huge_pages_enabled()) {
      memory = map_huge_aligned(round_up(size, kHugePage));
      if (memory && ::madvise(memory.data(), memory.size(), MADV_HUGEPAGE) == 0) {
        backing = PageBacking::transparent_huge;
      }
    }
  }
  if (!memory) memory = map_anonymous(round_up(size, kSmallPage), 0);
  if (!memory) {
    throw Error::from_last_errno("allocate DMA buffer").with("size", human_size(size));
  }
  DmaBuffer buffer(std::move(memory), backing);
  if (options.prefault) prefault(buffer.bytes(), buffer.page_size(), options.prefault_threads);
  log::debug("DMA buffer: {} in {} pages", human_size(buffer.size()), to_string(backing));
  return buffer;
}

IovaLease::IovaLease(IovaLease&& other) noexcept
    : allocator_(std::exchange(other.allocator_, nullptr)),
      iova_(other.iova_),
      size_(other.size_) {}

IovaLease& IovaLease::operator=(IovaLease&& other) noexcept {
  if (this != &other) {
    give_back();
    allocator_ = std::exchange(other.allocator_, nullptr);
    iova_ = other.iova_;
    size_ = other.size_;
  }
  return *this;
}

IovaLease::~IovaLease() { give_back(); }

void IovaLease::give_back() noexcept {
  if (!allocator_) return;
  try {
    allocator_->release(iova_, size_);
  } catch (const Error& e) {
    log::error("{}", e.what());
  }
  allocator_ = nullptr;
}

namespace {

IovaAllocator make_allocator(IommuBackend& backend, std::uint64_t dma_mask) {
  const IommuInfo info = backend.info();
  IovaAllocatorLimits limits;
  limits.dma_mask = dma_mask;
  // The smallest IOMMU page the container supports (bit 12 for 4 KiB).
  if (info.page_sizes != 0) limits.min_alignment = info.page_sizes & (~info.page_sizes + 1);
  limits.mapping_budget = info.dma_available.value_or(65535);
  std::vector<IovaRange> ranges = info.iova_ranges;
  if (ranges.empty()) ranges.push_back({0, ~std::uint64_t{0}});  // older kernels: no range cap
  return IovaAllocator(ranges, limits);
}

}  // namespace

DmaSpace::DmaSpace(IommuBackend& backend, std::uint64_t dma_mask)
    : backend_(backend), allocator_(make_allocator(backend, dma_mask)) {}

DmaRegion DmaSpace::allocate(std::size_t size, DmaDirection direction,
                             const DmaBufferOptions& options) {
  DmaBuffer buffer = DmaBuffer::allocate(size, options);
  const std::uint64_t iova = allocator_.allocate(buffer.size(), buffer.page_size());
  IovaLease lease(allocator_, iova, buffer.size());
  sync_for_device({reinterpret_cast<const std::byte*>(buffer.data()), buffer.size()});
  DmaMapping mapping = backend_.map(buffer.data(), iova, buffer.size(), direction);
  return DmaRegion(std::move(buffer), std::move(lease), std::move(mapping));
}

std::optional<std::uint64_t> physical_address(const void* address) {
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto virt = reinterpret_cast<std::uintptr_t>(address);
  UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::uint64_t entry = 0;
  // One 64-bit entry per virtual page: bit 63 present, bits 0-54 the page frame number.
  if (::pread(fd.get(), &entry, sizeof entry, static_cast<off_t>(virt / page * sizeof entry)) !=
      sizeof entry) {
    return std::nullopt;
  }
  const std::uint64_t pfn = entry & ((std::uint64_t{1} << 55) - 1);
  if (!(entry >> 63) || pfn == 0) return std::nullopt;
  return pfn * page + virt % page;
}

}  // namespace vfiokit::iommu
