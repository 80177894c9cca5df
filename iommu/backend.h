// The IOMMU behind a VFIO device, behind one interface: IommuBackend. Type1Backend drives the
// VFIO container (/dev/vfio/vfio + /dev/vfio/GROUP). An iommufd backend (/dev/iommu +
// /dev/vfio/devices/vfioX) fits the same interface; Debian's kernels are built without
// IOMMUFD, so it is left until it can be tested (docs/hil.md).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/base/unique_fd.h"
#include "vfiokit/iommu/dirty_pages.h"
#include "vfiokit/iommu/vfio_caps.h"
#include "vfiokit/pci/bdf.h"

namespace vfiokit::iommu {

enum class DmaDirection {
  to_device,    // the device reads it
  from_device,  // the device writes it
  bidirectional,
};

struct IommuInfo {
  std::string backend;                         // "vfio-type1v2", "vfio-type1"
  std::uint64_t page_sizes = 0;                // bitmap of IOMMU page sizes
  std::vector<IovaRange> iova_ranges;          // where DMA may be mapped
  std::optional<std::uint32_t> dma_available;  // mappings still allowed
};

class DmaMapping;

// Every backend is a DirtyPageLog, so `DirtyPageTracking::start(backend)` works on any of them:
// one without dirty tracking says so (dirty_tracking_support().reason) and START is refused.
class IommuBackend : public DirtyPageLog {
 public:
  // A concrete backend releases tracking and mappings first in its own destructor; this only
  // detaches a tracking left alive by one that did not.
  ~IommuBackend() override { release_dirty_tracking(); }
  IommuBackend() = default;
  IommuBackend(const IommuBackend&) = delete;
  IommuBackend& operator=(const IommuBackend&) = delete;

  [[nodiscard]] virtual std::string_view name() const = 0;
  // A device fd for `bdf`, its group attached to this backend first if it is not yet.
  virtual UniqueFd open_device(const pci::Bdf& bdf) = 0;
  virtual IommuInfo info() = 0;

  // Maps [vaddr, vaddr + size) at `iova`. Kernel contract: the memory stays mapped in this
  // process for as long as the mapping lives; the kernel pins it until the unmap.
  [[nodiscard]] DmaMapping map(const void* vaddr, std::uint64_t iova, std::uint64_t size,
                               DmaDirection direction);
  [[nodiscard]] std::size_t live_mappings() const noexcept { return live_.size(); }

  // Unsupported unless the backend overrides it (Type1Backend does).
  DirtyTrackingSupport dirty_tracking_support() override;

 protected:
  virtual void map_raw(std::uint64_t vaddr, std::uint64_t iova, std::uint64_t size,
                       DmaDirection direction) = 0;
  // Returns the bytes the kernel really unmapped.
  virtual std::uint64_t unmap_raw(std::uint64_t iova, std::uint64_t size) = 0;
  // Unmaps every mapping still alive and detaches it. A concrete backend calls this first in
  // its destructor: mappings must go before the container does.
  void release_all_mappings() noexcept;

  // -ENOTTY unless the backend overrides it.
  int dirty_pages_ioctl(uapi::DirtyPagesRequest& request) override;
  // The live DmaMappings' ranges.
  [[nodiscard]] std::vector<IovaRange> dma_mappings() const override;

 private:
  friend class DmaMapping;
  std::set<DmaMapping*> live_;
};

// One IOVA range mapped to memory; unmapped when it goes.
class DmaMapping {
 public:
  DmaMapping() = default;
  DmaMapping(const DmaMapping&) = delete;
  DmaMapping& operator=(const DmaMapping&) = delete;
  DmaMapping(DmaMapping&& other) noexcept;
  DmaMapping& operator=(DmaMapping&& other) noexcept;
  ~DmaMapping();

  [[nodiscard]] std::uint64_t iova() const noexcept { return iova_; }
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return backend_ != nullptr; }
  // Unmaps now; throws Error if the kernel refuses or unmaps a different size.
  void unmap();

 private:
  friend class IommuBackend;
  DmaMapping(IommuBackend* backend, std::uint64_t iova, std::uint64_t size);
  void detach() noexcept;

  IommuBackend* backend_ = nullptr;
  std::uint64_t iova_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace vfiokit::iommu
