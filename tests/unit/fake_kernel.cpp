#include "tests/unit/fake_kernel.h"

#include <linux/vfio.h>

#include <algorithm>
#include <bit>

#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/iommu/group.h"

namespace vfiokit::test {
namespace fs = std::filesystem;

FakeKernel::FakeKernel(HostPaths paths) : paths_(std::move(paths)) {
  for (const auto& bdf : list_dir(paths_.sys / "bus/pci/devices")) {
    if (auto driver = driver_of(bdf)) default_driver_[bdf] = *driver;
  }
}

fs::path FakeKernel::device(const std::string& bdf) const {
  return paths_.sys / "bus/pci/devices" / bdf;
}

std::optional<std::string> FakeKernel::driver_of(const std::string& bdf) const {
  return read_link_name(device(bdf) / "driver");
}

std::optional<std::string> FakeKernel::override_of(const std::string& bdf) const {
  auto value = read_line_if_exists(device(bdf) / "driver_override");
  if (!value || *value == "(null)" || value->empty()) return std::nullopt;
  return value;
}

void FakeKernel::bind_driver(const std::string& bdf, const std::string& driver) {
  if (const auto joins = group_on_probe.find(bdf);
      joins != group_on_probe.end() && !fs::is_symlink(device(bdf) / "iommu_group")) {
    const fs::path group = paths_.sys / "kernel/iommu_groups" / std::to_string(joins->second);
    fs::create_directories(group / "devices");
    fs::create_directory_symlink(fs::canonical(device(bdf)), group / "devices" / bdf);
    fs::create_directory_symlink(group, device(bdf) / "iommu_group");
  }
  fs::create_directory_symlink(paths_.sys / "bus/pci/drivers" / driver, device(bdf) / "driver");
  if (iommu::is_vfio_driver(driver)) {
    if (auto group = read_link_name(device(bdf) / "iommu_group")) {
      fs::create_directories(paths_.dev / "vfio");
      write_file_durable(paths_.dev / "vfio" / *group, "");
    }
  }
}

void FakeKernel::unbind_driver(const std::string& bdf) {
  const bool was_vfio = iommu::is_vfio_driver(driver_of(bdf).value_or(""));
  fs::remove(device(bdf) / "driver");
  if (!was_vfio) return;
  // The group node goes when no member is on a VFIO driver any more.
  if (auto group = read_link_name(device(bdf) / "iommu_group")) {
    for (const auto& member : list_dir(paths_.sys / "kernel/iommu_groups" / *group / "devices")) {
      if (iommu::is_vfio_driver(driver_of(member).value_or(""))) return;
    }
    fs::remove(paths_.dev / "vfio" / *group);
  }
}

void FakeKernel::write(const fs::path& attribute, std::string_view value,
                       std::optional<std::chrono::milliseconds>) {
  const std::string relative = attribute.lexically_relative(paths_.sys).string();
  const std::string text(trim(value));
  const std::size_t index = writes.size();
  writes.push_back({relative, std::string(value)});
  if (fail_write_at == index) {
    throw Error::from_errno(fail_errno, "write").with("path", attribute.string());
  }
  auto fail = [&](int err) {
    throw Error::from_errno(err, "write").with("path", attribute.string()).with("value", text);
  };
  if (relative.ends_with("/driver_override")) {
    write_file_durable(attribute, text.empty() ? "(null)\n" : text + "\n");
  } else if (relative == "bus/pci/drivers_probe") {
    if (!fs::exists(device(text))) fail(ENODEV);
    if (driver_of(text)) return;
    const auto wanted = override_of(text);
    const std::string driver = wanted                        ? *wanted
                               : default_driver_.count(text) ? default_driver_[text]
                                                             : "";
    if (driver.empty() || !fs::exists(paths_.sys / "bus/pci/drivers" / driver)) return;
    if (std::find(refusing_drivers.begin(), refusing_drivers.end(), driver) !=
        refusing_drivers.end())
      return;
    bind_driver(text, driver);
  } else if (relative.starts_with("bus/pci/drivers/") && relative.ends_with("/unbind")) {
    const std::string driver = fs::path(relative).parent_path().filename().string();
    if (driver_of(text) != driver) fail(ENODEV);
    unbind_driver(text);
  } else if (relative.starts_with("bus/pci/drivers/") && relative.ends_with("/bind")) {
    const std::string driver = fs::path(relative).parent_path().filename().string();
    if (driver_of(text)) fail(EBUSY);
    const auto wanted = override_of(text);
    const bool matches =
        wanted ? *wanted == driver : default_driver_.count(text) && default_driver_[text] == driver;
    if (!matches) fail(ENODEV);
    bind_driver(text, driver);
  } else {
    fail(EACCES);  // a write the fake does not model is a test bug
  }
}

void FakeKernel::load_module(std::string_view name) {
  modules_loaded.emplace_back(name);
  const fs::path dir = paths_.sys / "bus/pci/drivers" / name;
  fs::create_directories(dir);
  write_file_durable(dir / "bind", "");
  write_file_durable(dir / "unbind", "");
}

void FakeKernel::set_owner(const fs::path& node, uid_t uid, gid_t gid) {
  owners_set.push_back(node.lexically_relative(paths_.dev).string() + ' ' + std::to_string(uid) +
                       ':' + std::to_string(gid));
}

void FakeKernel::sleep(std::chrono::milliseconds) { ++sleeps; }

FakeType1Backend::~FakeType1Backend() {
  release_dirty_tracking();
  release_all_mappings();
}

std::uint64_t FakeType1Backend::page() const {
  return std::uint64_t{1} << std::countr_zero(pgsize_bitmap);
}

iommu::DirtyTrackingSupport FakeType1Backend::dirty_tracking_support() {
  iommu::Type1Info info;
  info.iova_pgsizes = pgsize_bitmap;
  // The kernel offers only its smallest page size (vfio_iommu_migration_build_caps).
  if (migration_capability)
    info.migration = iommu::Type1Migration{0, page(), max_dirty_bitmap_size};
  return iommu::dirty_tracking_support(info, type1v2);
}

void FakeType1Backend::pin(std::uint64_t iova) { pinned_.insert(iova & ~(page() - 1)); }

void FakeType1Backend::unpin(std::uint64_t iova) { pinned_.erase(iova & ~(page() - 1)); }

void FakeType1Backend::map_raw(std::uint64_t, std::uint64_t iova, std::uint64_t size,
                               iommu::DmaDirection) {
  mappings_[iova] = size;
}

std::uint64_t FakeType1Backend::unmap_raw(std::uint64_t iova, std::uint64_t size) {
  mappings_.erase(iova);
  return size;
}

int FakeType1Backend::dirty_pages_ioctl(iommu::uapi::DirtyPagesRequest& request) {
  Request seen{request.argsz, request.flags};
  if (request.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP) {
    seen.iova = request.range.iova;
    seen.size = request.range.size;
    seen.pgsize = request.range.bitmap.pgsize;
    seen.bitmap_size = request.range.bitmap.size;
    seen.bitmap_data = request.range.bitmap.data != nullptr;
  }
  requests.push_back(seen);
  // vfio_iommu_type1_dirty_pages(), in its order.
  constexpr std::uint32_t kMask = VFIO_IOMMU_DIRTY_PAGES_FLAG_START |
                                  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP |
                                  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;
  if (request.argsz < 8 || (request.flags & ~kMask) != 0) return -EINVAL;
  if (std::popcount(request.flags) != 1) return -EINVAL;  // one flag at a time
  if (!type1v2) return -EACCES;
  if (request.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
    if (tracking) return -EINVAL;
    tracking = true;
    return 0;
  }
  if (request.flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
    tracking = false;
    return 0;
  }
  return get_bitmap(request);
}

int FakeType1Backend::get_bitmap(const iommu::uapi::DirtyPagesRequest& request) {
  if (request.argsz - 8 < sizeof(vfio_iommu_type1_dirty_bitmap_get)) return -EINVAL;
  const auto& range = request.range;
  if (range.iova + range.size < range.iova) return -EINVAL;
  if (range.bitmap.pgsize == 0 || range.bitmap.data == nullptr) return -EINVAL;
  // verify_bitmap_size()
  const std::uint64_t pages = range.size >> std::countr_zero(range.bitmap.pgsize);
  if (pages == 0 || range.bitmap.size == 0 || range.bitmap.size > (std::uint64_t{256} << 20) ||
      range.bitmap.size < iommu::dirty_bitmap_bytes(pages)) {
    return -EINVAL;
  }
  if (range.bitmap.pgsize != page()) return -EINVAL;  // the smallest page size only
  if (range.iova & (page() - 1)) return -EINVAL;
  if (range.size == 0 || (range.size & (page() - 1))) return -EINVAL;
  if (!tracking) return -EINVAL;
  // vfio_iova_dirty_bitmap(): the range must not cut a mapping.
  const std::uint64_t last = range.iova + range.size - 1;
  for (const auto& [iova, size] : mappings_) {
    const std::uint64_t end = iova + size - 1;
    const bool overlaps = iova <= last && end >= range.iova;
    if (overlaps && (iova < range.iova || end > last)) return -EINVAL;
  }
  std::uint64_t* words = reinterpret_cast<std::uint64_t*>(range.bitmap.data);
  for (const auto& [iova, size] : mappings_) {
    if (iova < range.iova || iova > last) continue;
    for (std::uint64_t at = iova; at < iova + size; at += page()) {
      // A vfio-pci group (num_non_pinned_groups) makes every mapped page dirty.
      if (device_reports_dirtying && !pinned_.contains(at)) continue;
      const std::uint64_t bit = (at - range.iova) / page();
      words[bit / 64] |= std::uint64_t{1} << (bit % 64);
    }
  }
  // The kernel then clears its bitmap and repopulates it with what is still pinned: the same
  // pages come back on the next GET while they stay pinned (or mapped, for vfio-pci).
  return 0;
}

}  // namespace vfiokit::test
