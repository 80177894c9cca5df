#include "vfiokit/iommu/dirty_pages.h"

#include <bit>
#include <cerrno>
#include <utility>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {
namespace {

constexpr const char* kGetOperation = "get dirty page bitmap";

Error range_error(std::string message, std::uint64_t iova, std::uint64_t size,
                  std::uint64_t page_size) {
  return Error(kGetOperation, std::move(message))
      .with("iova", hex(iova))
      .with("size", hex(size))
      .with("page_size", human_size(page_size));
}

// The smallest page of a page-size bitmap, or 0.
std::uint64_t smallest_page(std::uint64_t pgsize_bitmap) {
  return pgsize_bitmap == 0 ? 0 : std::uint64_t{1} << std::countr_zero(pgsize_bitmap);
}

}  // namespace

DirtyTrackingSupport dirty_tracking_support(const Type1Info& info, bool type1v2) {
  DirtyTrackingSupport support;
  if (!type1v2) {
    support.reason =
        "the container uses the type1 IOMMU, not type1v2: the kernel logs dirty pages only for "
        "type1v2 (VFIO_IOMMU_DIRTY_PAGES answers EACCES)";
    return support;
  }
  if (!info.migration) {
    support.reason =
        "VFIO_IOMMU_GET_INFO has no migration capability (VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION): "
        "this kernel's vfio_iommu_type1 cannot log dirty pages (it came with Linux 5.8)";
    return support;
  }
  support.page_size = smallest_page(info.migration->pgsize_bitmap);
  support.max_bitmap_bytes = info.migration->max_dirty_bitmap_size;
  if (support.page_size == 0 || support.max_bitmap_bytes == 0) {
    support.reason = "the migration capability offers no page size (pgsize_bitmap " +
                     hex(info.migration->pgsize_bitmap) + ") or no bitmap (max_dirty_bitmap_size " +
                     std::to_string(support.max_bitmap_bytes) + ")";
    support.page_size = 0;
    return support;
  }
  support.supported = true;
  return support;
}

DirtyBitmapRequest check_dirty_bitmap_request(const DirtyTrackingSupport& support,
                                              std::uint64_t iova, std::uint64_t size,
                                              std::uint64_t page_size,
                                              std::span<const IovaRange> mappings) {
  if (!support.supported) {
    throw Error(kGetOperation, "dirty page tracking is not supported: " + support.reason)
        .with("iova", hex(iova))
        .with("size", hex(size));
  }
  if (page_size != support.page_size) {
    throw range_error(
        "page size " + human_size(page_size) + " is not the one the container logs dirty pages in",
        iova, size, page_size)
        .hint("ask in " + human_size(support.page_size) +
              " pages: type1 reports only the smallest page size of its migration capability");
  }
  if (size == 0) {
    throw range_error("the range is empty", iova, size, page_size)
        .hint("ask for at least one " + human_size(page_size) + " page");
  }
  const std::uint64_t mask = page_size - 1;
  if ((iova & mask) != 0 || (size & mask) != 0) {
    const std::uint64_t first = iova & ~mask;
    const std::uint64_t end = iova + size;  // a wrap is caught below with the aligned range
    throw range_error("IOVA " + hex(iova) + " and size " + hex(size) +
                          " must both be multiples of the page size " + human_size(page_size),
                      iova, size, page_size)
        .hint("ask for the whole pages around it: iova " + hex(first) + ", size " +
              hex(((end + mask) & ~mask) - first));
  }
  if (iova + size < iova) {
    throw range_error("the range " + hex(iova) + " + " + hex(size) + " wraps past 2^64", iova, size,
                      page_size)
        .hint("ask for a range that ends at or below 0xffffffffffffffff");
  }
  DirtyBitmapRequest request{iova, size, page_size, size / page_size, 0};
  request.bitmap_bytes = dirty_bitmap_bytes(request.pages);
  if (request.bitmap_bytes > support.max_bitmap_bytes) {
    throw range_error(std::to_string(request.pages) + " pages need a " +
                          human_size(request.bitmap_bytes) +
                          " bitmap, more than the kernel's max_dirty_bitmap_size of " +
                          human_size(support.max_bitmap_bytes),
                      iova, size, page_size)
        .hint("ask in pieces of at most " + hex(support.max_bitmap_bytes * 8 * page_size) +
              " bytes of IOVA, each covering whole mappings");
  }
  const std::uint64_t last = iova + size - 1;
  for (const IovaRange& mapping : mappings) {
    const bool overlaps = mapping.start <= last && mapping.end >= iova;
    const bool inside = mapping.start >= iova && mapping.end <= last;
    if (overlaps && !inside) {
      throw range_error("the range " + hex(iova) + "-" + hex(last) + " cuts the DMA mapping " +
                            hex(mapping.start) + "-" + hex(mapping.end),
                        iova, size, page_size)
          .hint("type1 reports whole mappings only: ask for a range that covers " +
                hex(mapping.start) + "-" + hex(mapping.end) + " whole, or leaves it out");
    }
  }
  return request;
}

std::vector<std::uint64_t> dirty_page_indices(std::span<const std::uint64_t> bitmap,
                                              std::uint64_t pages) {
  if (bitmap.size() < pages / 64 + (pages % 64 != 0)) {
    throw Error(kGetOperation, "a bitmap of " + std::to_string(bitmap.size()) +
                                   " words is too short for " + std::to_string(pages) + " pages");
  }
  std::vector<std::uint64_t> indices;
  for (std::size_t word = 0; word < bitmap.size() && word * 64 < pages; ++word) {
    std::uint64_t bits = bitmap[word];
    while (bits != 0) {
      const std::uint64_t index = word * 64 + static_cast<unsigned>(std::countr_zero(bits));
      if (index >= pages) break;  // bits go up within a word: the rest are past the range too
      indices.push_back(index);
      bits &= bits - 1;
    }
  }
  return indices;
}

std::vector<std::uint64_t> dirty_iovas(std::span<const std::uint64_t> bitmap, std::uint64_t iova,
                                       std::uint64_t page_size, std::uint64_t pages) {
  std::vector<std::uint64_t> iovas = dirty_page_indices(bitmap, pages);
  for (auto& page : iovas) page = iova + page * page_size;
  return iovas;
}

std::vector<IovaRange> dirty_ranges(std::span<const std::uint64_t> bitmap, std::uint64_t iova,
                                    std::uint64_t page_size, std::uint64_t pages) {
  std::vector<IovaRange> ranges;
  std::uint64_t previous = 0;
  for (const std::uint64_t page : dirty_page_indices(bitmap, pages)) {
    const std::uint64_t start = iova + page * page_size;
    if (!ranges.empty() && page == previous + 1) {
      ranges.back().end = start + page_size - 1;
    } else {
      ranges.push_back({start, start + page_size - 1});
    }
    previous = page;
  }
  return ranges;
}

std::uint64_t DirtyBitmap::dirty_count() const { return page_indices().size(); }

void DirtyPageLog::release_dirty_tracking() noexcept {
  if (active_ == nullptr) return;
  DirtyPageTracking* tracking = active_;
  try {
    tracking->stop();
  } catch (const Error& e) {
    log::warn("{}", e.what());
    tracking->detach();
  }
}

DirtyPageTracking DirtyPageTracking::start(DirtyPageLog& log) {
  DirtyTrackingSupport support = log.dirty_tracking_support();
  if (!support.supported) {
    throw Error("start dirty page tracking", support.reason)
        .hint("dirty pages of a VFIO device need vfio_iommu_type1 with type1v2 (Linux 5.8+)");
  }
  if (log.active_ != nullptr) {
    throw Error("start dirty page tracking", "tracking is already on for this container")
        .hint("use the DirtyPageTracking that started it: one per container");
  }
  uapi::DirtyPagesRequest request{};
  request.argsz = uapi::kDirtyPagesHeaderSize;
  request.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
  const int rc = log.dirty_pages_ioctl(request);
  if (rc < 0) {
    Error e = ioctl_error(rc, uapi::kIommuDirtyPages.name).with("flags", "START");
    if (rc == -EINVAL) e.hint("tracking may already be on for this container (another process?)");
    if (rc == -ENOMEM) e.hint("the kernel could not allocate a bitmap for every mapping");
    throw e;
  }
  return DirtyPageTracking(log, std::move(support));
}

DirtyPageTracking::DirtyPageTracking(DirtyPageLog& log, DirtyTrackingSupport support)
    : log_(&log), support_(std::move(support)) {
  log_->active_ = this;
}

DirtyPageTracking::DirtyPageTracking(DirtyPageTracking&& other) noexcept
    : log_(std::exchange(other.log_, nullptr)), support_(std::move(other.support_)) {
  if (log_ != nullptr) log_->active_ = this;
}

DirtyPageTracking& DirtyPageTracking::operator=(DirtyPageTracking&& other) noexcept {
  if (this != &other) {
    if (log_ != nullptr) log_->release_dirty_tracking();
    log_ = std::exchange(other.log_, nullptr);
    support_ = std::move(other.support_);
    if (log_ != nullptr) log_->active_ = this;
  }
  return *this;
}

DirtyPageTracking::~DirtyPageTracking() {
  if (log_ != nullptr) log_->release_dirty_tracking();
}

void DirtyPageTracking::detach() noexcept {
  if (log_ != nullptr && log_->active_ == this) log_->active_ = nullptr;
  log_ = nullptr;
}

DirtyBitmap DirtyPageTracking::get(std::uint64_t iova, std::uint64_t size) {
  if (log_ == nullptr) {
    throw Error(kGetOperation, "dirty page tracking is not on")
        .with("iova", hex(iova))
        .with("size", hex(size))
        .hint("start it first (DirtyPageTracking::start)");
  }
  const std::vector<IovaRange> mappings = log_->dma_mappings();
  const DirtyBitmapRequest checked =
      check_dirty_bitmap_request(support_, iova, size, support_.page_size, mappings);
  DirtyBitmap bitmap{iova, checked.page_size, checked.pages,
                     std::vector<std::uint64_t>(checked.bitmap_bytes / 8, 0)};
  uapi::DirtyPagesRequest request{};
  request.argsz = uapi::kDirtyPagesGetSize;
  request.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  request.range.iova = iova;
  request.range.size = size;
  request.range.bitmap.pgsize = checked.page_size;
  request.range.bitmap.size = checked.bitmap_bytes;
  // Kernel contract: the kernel writes up to bitmap.size bytes here and leaves the bits of
  // unmapped IOVA as they are, so they must start zeroed (they do: the vector is zero-filled);
  // `words` outlives the call.
  request.range.bitmap.data = reinterpret_cast<__u64*>(bitmap.words.data());
  const int rc = log_->dirty_pages_ioctl(request);
  if (rc < 0) {
    Error e = ioctl_error(rc, uapi::kIommuDirtyPages.name)
                  .with("flags", "GET_BITMAP")
                  .with("iova", hex(iova))
                  .with("size", hex(size))
                  .with("page_size", human_size(checked.page_size));
    if (rc == -EINVAL) {
      e.hint(
          "type1 refuses a range that cuts a mapping made outside this process's view, or "
          "tracking was stopped underneath (another process holding the container?)");
    }
    throw e;
  }
  return bitmap;
}

void DirtyPageTracking::stop() {
  if (log_ == nullptr) return;
  uapi::DirtyPagesRequest request{};
  request.argsz = uapi::kDirtyPagesHeaderSize;
  request.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
  const int rc = log_->dirty_pages_ioctl(request);
  if (rc < 0) throw ioctl_error(rc, uapi::kIommuDirtyPages.name).with("flags", "STOP");
  detach();
}

}  // namespace vfiokit::iommu
