// A fake kernel behind bind::SysfsOps for unit tests: it applies sysfs writes to a writable
// fixture tree the way the PCI core would (driver_override, unbind, bind, drivers_probe, the
// /dev/vfio/GROUP node), records every write in order, and fails on demand.
// FakeType1Backend plays vfio_iommu_type1 behind iommu::IommuBackend for dirty page tracking.
#pragma once

#include <cerrno>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/sysfs_ops.h"
#include "vfiokit/iommu/backend.h"

namespace vfiokit::test {

class FakeKernel final : public bind::SysfsOps {
 public:
  struct Write {
    std::string path;  // relative to sys/, e.g. "bus/pci/drivers/nvme/unbind"
    std::string value;
    bool operator==(const Write&) const = default;
    friend void PrintTo(const Write& w, std::ostream* out) { *out << w.path << " <- " << w.value; }
  };

  // Each device's default driver (what drivers_probe binds without an override) is the driver
  // it is bound to when the fake is created.
  explicit FakeKernel(HostPaths paths);

  void write(const std::filesystem::path& attribute, std::string_view value,
             std::optional<std::chrono::milliseconds> timeout) override;
  void load_module(std::string_view name) override;
  void set_owner(const std::filesystem::path& node, uid_t uid, gid_t gid) override;
  void sleep(std::chrono::milliseconds duration) override;

  // Fail the write with this 0-based index (counting every write) with `error`, unapplied.
  std::optional<std::size_t> fail_write_at;
  int fail_errno = EIO;
  // Drivers whose probe never takes a device (drivers_probe leaves it driverless).
  std::vector<std::string> refusing_drivers;
  // A device-tree host: the IOMMU group (by number) a groupless device joins when a driver
  // probes it, made then as the kernel makes it (the group's devices/ entry, the device's
  // iommu_group link).
  std::map<std::string, unsigned> group_on_probe;

  std::vector<Write> writes;
  std::vector<std::string> modules_loaded;
  std::vector<std::string> owners_set;  // "PATH uid:gid"
  int sleeps = 0;

 private:
  void bind_driver(const std::string& bdf, const std::string& driver);
  void unbind_driver(const std::string& bdf);
  std::optional<std::string> driver_of(const std::string& bdf) const;
  std::optional<std::string> override_of(const std::string& bdf) const;
  std::filesystem::path device(const std::string& bdf) const;

  HostPaths paths_;
  std::map<std::string, std::string> default_driver_;
};

// vfio_iommu_type1's dirty page tracking (drivers/vfio/vfio_iommu_type1.c, Linux 5.8 to 6.12),
// as a backend: VFIO_IOMMU_DIRTY_PAGES checks what the kernel checks in its order and answers
// its errno, and GET_BITMAP reports what the kernel reports for a vfio-pci device (every page of
// every mapping in the range, again on every GET while mapped) or, with
// `device_reports_dirtying`, only the pages pinned through `pin` (an mdev-like device that pins
// pages one by one with vfio_pin_pages), again on every GET until `unpin`. Every request is
// recorded as the kernel read it.
class FakeType1Backend final : public iommu::IommuBackend {
 public:
  struct Request {
    std::uint32_t argsz = 0;
    std::uint32_t flags = 0;
    std::uint64_t iova = 0, size = 0, pgsize = 0, bitmap_size = 0;  // GET_BITMAP only
    bool bitmap_data = false;                                       // a non-null bitmap.data
  };

  FakeType1Backend() = default;
  ~FakeType1Backend() override;

  [[nodiscard]] std::string_view name() const override { return "vfio-type1v2"; }
  UniqueFd open_device(const pci::Bdf&) override { return {}; }
  iommu::IommuInfo info() override { return {"vfio-type1v2", pgsize_bitmap, {}, {}}; }
  iommu::DirtyTrackingSupport dirty_tracking_support() override;

  // Pins the page at `iova` the way vfio_pin_pages does (or lets it go).
  void pin(std::uint64_t iova);
  void unpin(std::uint64_t iova);
  // VFIO_IOMMU_DIRTY_PAGES as it is, with no check of vfiokit's in front.
  int send(iommu::uapi::DirtyPagesRequest& request) { return dirty_pages_ioctl(request); }

  // What VFIO_IOMMU_GET_INFO reports: page sizes, and the migration capability or none.
  std::uint64_t pgsize_bitmap = 0x40201000;  // 4 KiB, 2 MiB, 1 GiB, as the rig's VT-d
  bool migration_capability = true;
  bool type1v2 = true;
  bool device_reports_dirtying = false;
  std::uint64_t max_dirty_bitmap_size = std::uint64_t{256} << 20;  // DIRTY_BITMAP_SIZE_MAX

  bool tracking = false;
  std::vector<Request> requests;

 protected:
  void map_raw(std::uint64_t, std::uint64_t iova, std::uint64_t size, iommu::DmaDirection) override;
  std::uint64_t unmap_raw(std::uint64_t iova, std::uint64_t size) override;
  int dirty_pages_ioctl(iommu::uapi::DirtyPagesRequest& request) override;

 private:
  [[nodiscard]] std::uint64_t page() const;
  int get_bitmap(const iommu::uapi::DirtyPagesRequest& request);
  std::map<std::uint64_t, std::uint64_t> mappings_;  // iova -> size
  std::set<std::uint64_t> pinned_;                   // pages pinned by the "device"
};

}  // namespace vfiokit::test
