// Dirty page tracking of a VFIO type1 container (VFIO_IOMMU_DIRTY_PAGES): start, read the
// bitmap of an IOVA range, stop.
//
// What type1 reports (docs/dma.md, "Dirty pages"). The IOMMU cannot see which pages a device
// writes, so type1 logs what it can prove: the pages pinned for DMA. A device that reports its
// own dirtying (an mdev vendor driver pinning pages one by one through vfio_pin_pages) narrows
// that to what it pinned; a plain vfio-pci device does not, and then every page mapped with
// VFIO_IOMMU_MAP_DMA is reported dirty while tracking is on: the first GET after START returns
// every mapped page, the GET clears the bits, and since the pages are still pinned and mapped,
// the next GET returns every mapped page again, whether or not the device wrote anything in
// between. Unmapped IOVA in the asked range stays 0. The rig proves exactly this
// (tests/hil/dirty_pages_test.cpp, `VfioDirty.*`).
//
// Pure core: the capability's limits, the range checks the kernel would make (so a bad request
// is an Error naming IOVA, size and page size before the ioctl), and the bitmap decoded into
// pages, IOVAs and runs. Thin shell: `DirtyPageTracking`, the RAII owner of tracking being on,
// over the `DirtyPageLog` seam that Type1Backend implements on its container fd and unit tests
// implement on a fake type1 (tests/unit/fake_kernel.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vfiokit/iommu/vfio_caps.h"
#include "vfiokit/iommu/vfio_uapi.h"

namespace vfiokit::iommu {

// Whether a container can log dirty pages, and in what page size; `reason` says why not.
struct DirtyTrackingSupport {
  bool supported = false;
  std::uint64_t page_size = 0;         // the smallest page size the capability offers
  std::uint64_t max_bitmap_bytes = 0;  // the most one GET may ask for (max_dirty_bitmap_size)
  std::string reason;                  // empty when supported
};
// From VFIO_IOMMU_GET_INFO: an absent migration capability, or type1 (not v2), is unsupported
// with the reason and its fix.
DirtyTrackingSupport dirty_tracking_support(const Type1Info& info, bool type1v2);

// Bytes of bitmap the kernel wants for `pages` pages: one bit each, in whole u64 words
// (ceil(pages / 64) * 8), as the kernel's DIRTY_BITMAP_BYTES.
constexpr std::uint64_t dirty_bitmap_bytes(std::uint64_t pages) noexcept {
  return (pages / 64 + (pages % 64 != 0)) * 8;
}

// One GET_BITMAP request, checked.
struct DirtyBitmapRequest {
  std::uint64_t iova = 0;
  std::uint64_t size = 0;
  std::uint64_t page_size = 0;
  std::uint64_t pages = 0;
  std::uint64_t bitmap_bytes = 0;
};
// Checks what the kernel checks, and says how to fix it: `page_size` is the one the
// capability offers, `iova` and `size` are non-zero multiples of it without wrapping, the
// bitmap fits max_dirty_bitmap_size, and no mapping in `mappings` is cut by the range (type1
// refuses a range that covers only part of one VFIO_IOMMU_MAP_DMA mapping). Throws Error with
// iova, size and page_size in its context.
DirtyBitmapRequest check_dirty_bitmap_request(const DirtyTrackingSupport& support,
                                              std::uint64_t iova, std::uint64_t size,
                                              std::uint64_t page_size,
                                              std::span<const IovaRange> mappings);

// The kernel's bitmap: bit (i % 64) of word i / 64 is page i, counted from the range's IOVA.
// Bits at or past `pages` are ignored. Throws Error if the bitmap holds fewer than `pages` bits.
std::vector<std::uint64_t> dirty_page_indices(std::span<const std::uint64_t> bitmap,
                                              std::uint64_t pages);
// The IOVA of each dirty page: iova + index * page_size.
std::vector<std::uint64_t> dirty_iovas(std::span<const std::uint64_t> bitmap, std::uint64_t iova,
                                       std::uint64_t page_size, std::uint64_t pages);
// Runs of consecutive dirty pages as inclusive IOVA ranges, in order.
std::vector<IovaRange> dirty_ranges(std::span<const std::uint64_t> bitmap, std::uint64_t iova,
                                    std::uint64_t page_size, std::uint64_t pages);

// What one GET returned for one range.
struct DirtyBitmap {
  std::uint64_t iova = 0;
  std::uint64_t page_size = 0;
  std::uint64_t pages = 0;
  std::vector<std::uint64_t> words;  // the kernel's bitmap, dirty_bitmap_bytes(pages) bytes

  [[nodiscard]] std::vector<std::uint64_t> page_indices() const {
    return dirty_page_indices(words, pages);
  }
  [[nodiscard]] std::vector<std::uint64_t> iovas() const {
    return dirty_iovas(words, iova, page_size, pages);
  }
  [[nodiscard]] std::vector<IovaRange> ranges() const {
    return dirty_ranges(words, iova, page_size, pages);
  }
  [[nodiscard]] std::uint64_t dirty_count() const;
};

class DirtyPageTracking;

// The seam: one container's VFIO_IOMMU_DIRTY_PAGES and what it knows of its mappings. At most
// one DirtyPageTracking is alive per log (type1 refuses a second START); whoever owns the log
// calls release_dirty_tracking() first in its destructor, so tracking stops before the
// container closes.
class DirtyPageLog {
 public:
  DirtyPageLog() = default;
  DirtyPageLog(const DirtyPageLog&) = delete;
  DirtyPageLog& operator=(const DirtyPageLog&) = delete;
  virtual ~DirtyPageLog() = default;

  // Whether VFIO_IOMMU_GET_INFO offers dirty tracking now (it needs a group attached).
  virtual DirtyTrackingSupport dirty_tracking_support() = 0;

 protected:
  friend class DirtyPageTracking;
  // Kernel contract: `request` holds request.argsz bytes the kernel reads: argsz and flags,
  // and for GET_BITMAP the vfio_iommu_type1_dirty_bitmap_get after them, whose bitmap.data
  // points at bitmap.size zeroed bytes the kernel writes. Returns 0 or -errno.
  virtual int dirty_pages_ioctl(uapi::DirtyPagesRequest& request) = 0;
  // The mappings alive in the container, to refuse a range that cuts one.
  [[nodiscard]] virtual std::vector<IovaRange> dma_mappings() const = 0;
  // Stops tracking if a DirtyPageTracking is alive and detaches it (it then does nothing).
  void release_dirty_tracking() noexcept;

 private:
  DirtyPageTracking* active_ = nullptr;
};

// Dirty page tracking while it lives: START when made, STOP when it goes (or by stop()).
// Move-only; the DirtyPageLog (the backend) must outlive it or release it first.
class DirtyPageTracking {
 public:
  // Throws Error when `log` does not support tracking (with the reason), when tracking is
  // already on for it, or when the kernel refuses START.
  static DirtyPageTracking start(DirtyPageLog& log);

  DirtyPageTracking() = default;
  DirtyPageTracking(const DirtyPageTracking&) = delete;
  DirtyPageTracking& operator=(const DirtyPageTracking&) = delete;
  DirtyPageTracking(DirtyPageTracking&& other) noexcept;
  DirtyPageTracking& operator=(DirtyPageTracking&& other) noexcept;
  ~DirtyPageTracking();  // stops; a refusal is logged, never thrown

  explicit operator bool() const noexcept { return log_ != nullptr; }
  [[nodiscard]] const DirtyTrackingSupport& support() const noexcept { return support_; }

  // The bitmap of [iova, iova + size) in the capability's page size (check_dirty_bitmap_request
  // first). Reading clears: type1 then reports again the pages still pinned (all mapped ones
  // with a vfio-pci device).
  DirtyBitmap get(std::uint64_t iova, std::uint64_t size);
  // Stops now; throws Error if the kernel refuses.
  void stop();

 private:
  friend class DirtyPageLog;
  DirtyPageTracking(DirtyPageLog& log, DirtyTrackingSupport support);
  void detach() noexcept;

  DirtyPageLog* log_ = nullptr;
  DirtyTrackingSupport support_;
};

}  // namespace vfiokit::iommu
