#include "vfiokit/iommu/backend.h"

#include <cerrno>

#include "vfiokit/base/error.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"

namespace vfiokit::iommu {

DmaMapping IommuBackend::map(const void* vaddr, std::uint64_t iova, std::uint64_t size,
                             DmaDirection direction) {
  map_raw(reinterpret_cast<std::uintptr_t>(vaddr), iova, size, direction);
  return DmaMapping(this, iova, size);
}

void IommuBackend::release_all_mappings() noexcept {
  while (!live_.empty()) {
    DmaMapping* mapping = *live_.begin();
    log::warn("DMA mapping at IOVA {} ({} bytes) outlived its IOMMU backend; unmapping it",
              hex(mapping->iova()), mapping->size());
    try {
      unmap_raw(mapping->iova(), mapping->size());
    } catch (const Error& e) {
      log::error("{}", e.what());
    }
    mapping->detach();
  }
}

DirtyTrackingSupport IommuBackend::dirty_tracking_support() {
  DirtyTrackingSupport support;
  support.reason = "the " + std::string(name()) + " IOMMU backend does not log dirty pages";
  return support;
}

int IommuBackend::dirty_pages_ioctl(uapi::DirtyPagesRequest&) { return -ENOTTY; }

std::vector<IovaRange> IommuBackend::dma_mappings() const {
  std::vector<IovaRange> ranges;
  ranges.reserve(live_.size());
  for (const DmaMapping* mapping : live_) {
    ranges.push_back({mapping->iova(), mapping->iova() + mapping->size() - 1});
  }
  return ranges;
}

DmaMapping::DmaMapping(IommuBackend* backend, std::uint64_t iova, std::uint64_t size)
    : backend_(backend), iova_(iova), size_(size) {
  backend_->live_.insert(this);
}

DmaMapping::DmaMapping(DmaMapping&& other) noexcept
    : backend_(other.backend_), iova_(other.iova_), size_(other.size_) {
  if (backend_) {
    backend_->live_.erase(&other);
    backend_->live_.insert(this);
  }
  other.backend_ = nullptr;
}

DmaMapping& DmaMapping::operator=(DmaMapping&& other) noexcept {
  if (this == &other) return *this;
  if (backend_) {
    try {
      unmap();
    } catch (const Error& e) {
      log::error("{}", e.what());
      detach();
    }
  }
  backend_ = other.backend_;
  iova_ = other.iova_;
  size_ = other.size_;
  if (backend_) {
    backend_->live_.erase(&other);
    backend_->live_.insert(this);
  }
  other.backend_ = nullptr;
  return *this;
}

DmaMapping::~DmaMapping() {
  if (!backend_) return;
  try {
    unmap();
  } catch (const Error& e) {
    // A destructor cannot throw; the pages stay pinned until the container closes.
    log::error("{}", e.what());
    detach();
  }
}

void DmaMapping::unmap() {
  if (!backend_) return;
  const std::uint64_t unmapped = backend_->unmap_raw(iova_, size_);
  detach();
  if (unmapped != size_) {
    throw Error("VFIO_IOMMU_UNMAP_DMA", "the kernel unmapped " + std::to_string(unmapped) +
                                            " bytes, not " + std::to_string(size_))
        .with("iova", hex(iova_))
        .with("size", std::to_string(size_));
  }
}

void DmaMapping::detach() noexcept {
  if (backend_) backend_->live_.erase(this);
  backend_ = nullptr;
}

}  // namespace vfiokit::iommu
