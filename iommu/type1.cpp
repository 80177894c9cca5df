#include "vfiokit/iommu/type1.h"

#include <fcntl.h>

#include <cerrno>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/log.h"
#include "vfiokit/base/text.h"
#include "vfiokit/iommu/argsz.h"
#include "vfiokit/iommu/group.h"
#include "vfiokit/iommu/vfio_uapi.h"
#include "vfiokit/pci/device.h"

namespace vfiokit::iommu {
namespace {

// Why a group is not viable, from sysfs: the members on drivers VFIO does not accept.
Error not_viable_error(const HostPaths& paths, unsigned number) {
  std::vector<pci::PciDevice> members;
  std::vector<std::string> names;
  for (const auto& bdf : read_iommu_group(paths, number).devices) {
    members.push_back(pci::read_pci_device(paths, bdf, pci::ConfigDepth::header));
  }
  std::vector<std::string> culprits;
  for (const auto& blocker : group_blockers(members)) {
    culprits.push_back(blocker.bdf.to_string() + " is bound to " + blocker.driver);
  }
  return Error("open VFIO group", "IOMMU group " + std::to_string(number) + " is not viable" +
                                      (culprits.empty() ? "" : ": " + join(culprits, ", ")))
      .with("group", std::to_string(number))
      .hint(
          "every device in the group must be on vfio-pci or driverless; `vfiokit bind` "
          "moves the whole group");
}

}  // namespace

VfioContainer VfioContainer::open(const HostPaths& paths) {
  const auto node = paths.dev / "vfio/vfio";
  UniqueFd fd(::open(node.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    Error e = Error::from_last_errno("open VFIO container").with("path", node.string());
    throw e.hint(e.errno_value() == ENOENT
                     ? "load the vfio module (modprobe vfio-pci); see `vfiokit doctor`"
                     : "see `vfiokit doctor`");
  }
  const int version = do_ioctl(fd.get(), uapi::kGetApiVersion);
  if (version != VFIO_API_VERSION) {
    throw Error("open VFIO container", "API version " + std::to_string(version) + ", expected " +
                                           std::to_string(VFIO_API_VERSION));
  }
  return VfioContainer(std::move(fd));
}

bool VfioContainer::has_extension(unsigned long extension) const {
  return try_ioctl(fd_.get(), uapi::kCheckExtension, extension) > 0;
}

VfioGroupFd VfioGroupFd::open(const HostPaths& paths, unsigned number) {
  const auto node = vfio_group_node(paths, number);
  UniqueFd fd(::open(node.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    Error e = Error::from_last_errno("open VFIO group")
                  .with("group", std::to_string(number))
                  .with("path", node.string());
    const int err = e.errno_value();
    if (err == ENOENT) e.hint("no device of the group is on vfio-pci: run `vfiokit bind` first");
    if (err == EBUSY) e.hint("another process has the group open (see `vfiokit show`)");
    throw e;
  }
  vfio_group_status status{};
  status.argsz = sizeof status;
  do_ioctl(fd.get(), uapi::kGroupGetStatus, &status);
  if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) throw not_viable_error(paths, number);
  return VfioGroupFd(std::move(fd), number);
}

void VfioGroupFd::attach(const VfioContainer& container) {
  const std::int32_t container_fd = container.fd();
  try {
    do_ioctl(fd_.get(), uapi::kGroupSetContainer, &container_fd);
  } catch (Error& e) {
    e.with("group", std::to_string(number_));
    throw;
  }
}

UniqueFd VfioGroupFd::device_fd(const pci::Bdf& bdf) const {
  const std::string name = bdf.to_string();
  const int fd = try_ioctl(fd_.get(), uapi::kGroupGetDeviceFd, name.c_str());
  if (fd < 0) {
    throw ioctl_error(fd, uapi::kGroupGetDeviceFd.name)
        .with("bdf", name)
        .with("group", std::to_string(number_));
  }
  return UniqueFd(fd);
}

Type1Backend::Type1Backend(HostPaths paths)
    : paths_(std::move(paths)), container_(VfioContainer::open(paths_)) {}

Type1Backend::~Type1Backend() {
  release_dirty_tracking();
  release_all_mappings();
}

std::string_view Type1Backend::name() const {
  return iommu_type_ == VFIO_TYPE1_IOMMU ? "vfio-type1" : "vfio-type1v2";
}

UniqueFd Type1Backend::open_device(const pci::Bdf& bdf) {
  const auto group_name = read_link_name(pci::device_dir(paths_, bdf) / "iommu_group");
  if (!pci::pci_device_exists(paths_, bdf)) {
    throw Error("open device", "no PCI function " + bdf.to_string()).with("bdf", bdf.to_string());
  }
  const auto number = group_name ? parse_uint(*group_name) : std::nullopt;
  if (!number) {
    throw Error("open device", bdf.to_string() + " has no IOMMU group")
        .with("bdf", bdf.to_string())
        .hint("the IOMMU is off; see `vfiokit doctor`");
  }
  VfioGroupFd* group = nullptr;
  for (auto& attached : groups_) {
    if (attached.number() == *number) group = &attached;
  }
  if (!group) {
    VfioGroupFd opened = VfioGroupFd::open(paths_, static_cast<unsigned>(*number));
    opened.attach(container_);
    groups_.push_back(std::move(opened));
    group = &groups_.back();
    if (iommu_type_ == 0) {
      // VFIO_SET_IOMMU is only accepted once a group is in the container. v2 unmaps exactly what
      // was mapped (no splitting of huge mappings) and is what every current kernel offers.
      iommu_type_ = container_.has_extension(VFIO_TYPE1v2_IOMMU) ? VFIO_TYPE1v2_IOMMU
                    : container_.has_extension(VFIO_TYPE1_IOMMU) ? VFIO_TYPE1_IOMMU
                                                                 : 0;
      if (iommu_type_ == 0) {
        throw Error("set IOMMU", "the container offers neither type1v2 nor type1")
            .hint("load vfio_iommu_type1");
      }
      do_ioctl(container_.fd(), uapi::kSetIommu, iommu_type_);
      log::debug("container uses {}", name());
    }
  }
  return group->device_fd(bdf);
}

Type1Info Type1Backend::type1_info() {
  const auto buffer = query_with_argsz(
      sizeof(vfio_iommu_type1_info),
      [this](std::span<std::uint8_t> bytes) {
        auto* info = reinterpret_cast<vfio_iommu_type1_info*>(bytes.data());
        info->argsz = static_cast<std::uint32_t>(bytes.size());
        do_ioctl(container_.fd(), uapi::kIommuGetInfo, info);
        return info->argsz;
      },
      uapi::kIommuGetInfo.name);
  return parse_type1_info(buffer);
}

IommuInfo Type1Backend::info() {
  const Type1Info parsed = type1_info();
  return {std::string(name()), parsed.iova_pgsizes, parsed.iova_ranges, parsed.dma_available};
}

DirtyTrackingSupport Type1Backend::dirty_tracking_support() {
  if (iommu_type_ == 0) {
    DirtyTrackingSupport support;
    support.reason =
        "no device is open in the container yet: the IOMMU type (and with it dirty tracking) "
        "is set when the first group is attached";
    return support;
  }
  return iommu::dirty_tracking_support(type1_info(), iommu_type_ == VFIO_TYPE1v2_IOMMU);
}

int Type1Backend::dirty_pages_ioctl(uapi::DirtyPagesRequest& request) {
  return try_ioctl(container_.fd(), uapi::kIommuDirtyPages, &request);
}

void Type1Backend::map_raw(std::uint64_t vaddr, std::uint64_t iova, std::uint64_t size,
                           DmaDirection direction) {
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof map;
  map.flags = (direction != DmaDirection::from_device ? VFIO_DMA_MAP_FLAG_READ : 0u) |
              (direction != DmaDirection::to_device ? VFIO_DMA_MAP_FLAG_WRITE : 0u);
  map.vaddr = vaddr;
  map.iova = iova;
  map.size = size;
  const int rc = try_ioctl(container_.fd(), uapi::kIommuMapDma, &map);
  if (rc == 0) return;
  Error e = ioctl_error(rc, uapi::kIommuMapDma.name)
                .with("iova", hex(iova))
                .with("size", human_size(size));
  switch (-rc) {
    case ENOSPC:
      e.hint(
          "the container's DMA mapping limit is reached (vfio_iommu_type1 dma_entry_limit, "
          "65535 by default): map fewer, larger buffers");
      break;
    case ENOMEM:
      e.hint("pinning would exceed RLIMIT_MEMLOCK (see `vfiokit doctor`), or memory ran out");
      break;
    case EEXIST:
      e.hint("the IOVA range overlaps an existing mapping");
      break;
    case EINVAL:
      e.hint(
          "the IOVA is outside the container's usable ranges or not page aligned "
          "(see `vfiokit info`)");
      break;
    default:
      break;
  }
  throw e;
}

std::uint64_t Type1Backend::unmap_raw(std::uint64_t iova, std::uint64_t size) {
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof unmap;
  unmap.iova = iova;
  unmap.size = size;
  const int rc = try_ioctl(container_.fd(), uapi::kIommuUnmapDma, &unmap);
  if (rc < 0) {
    throw ioctl_error(rc, uapi::kIommuUnmapDma.name)
        .with("iova", hex(iova))
        .with("size", human_size(size));
  }
  return unmap.size;
}

}  // namespace vfiokit::iommu
