// The VFIO container backend (vfio_iommu_type1): a container fd and the group fds attached to
// it, set up in the order the kernel requires (group -> container, then the IOMMU type).
#pragma once

#include <memory>
#include <vector>

#include "vfiokit/iommu/backend.h"

namespace vfiokit::iommu {

// /dev/vfio/vfio, checked for API version 0.
class VfioContainer {
 public:
  static VfioContainer open(const HostPaths& paths);
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  [[nodiscard]] bool has_extension(unsigned long extension) const;

 private:
  explicit VfioContainer(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// /dev/vfio/GROUP.
class VfioGroupFd {
 public:
  // Throws Error naming the devices that make the group unviable, or how to get it bound.
  static VfioGroupFd open(const HostPaths& paths, unsigned number);
  [[nodiscard]] unsigned number() const noexcept { return number_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }
  void attach(const VfioContainer& container);
  UniqueFd device_fd(const pci::Bdf& bdf) const;

 private:
  VfioGroupFd(UniqueFd fd, unsigned number) : fd_(std::move(fd)), number_(number) {}
  UniqueFd fd_;
  unsigned number_;
};

class Type1Backend final : public IommuBackend {
 public:
  explicit Type1Backend(HostPaths paths);
  ~Type1Backend() override;

  [[nodiscard]] std::string_view name() const override;
  UniqueFd open_device(const pci::Bdf& bdf) override;
  IommuInfo info() override;
  // From VFIO_IOMMU_GET_INFO's migration capability; unsupported before a device is open (the
  // container has no IOMMU type yet) or with type1 (not v2).
  DirtyTrackingSupport dirty_tracking_support() override;

 protected:
  void map_raw(std::uint64_t vaddr, std::uint64_t iova, std::uint64_t size,
               DmaDirection direction) override;
  std::uint64_t unmap_raw(std::uint64_t iova, std::uint64_t size) override;
  int dirty_pages_ioctl(uapi::DirtyPagesRequest& request) override;

 private:
  Type1Info type1_info();

  HostPaths paths_;
  // Teardown in the kernel's order: the destructor stops dirty page tracking and unmaps every
  // DMA mapping first; then the
  // groups (declared after the container, so destroyed before it) leave the container; then
  // the container closes.
  VfioContainer container_;
  std::vector<VfioGroupFd> groups_;
  unsigned long iommu_type_ = 0;  // chosen when the first group is attached
};

}  // namespace vfiokit::iommu
