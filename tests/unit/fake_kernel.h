// A fake kernel behind bind::SysfsOps for unit tests: it applies sysfs writes to a writable
// fixture tree the way the PCI core would (driver_override, unbind, bind, drivers_probe, the
// /dev/vfio/GROUP node), records every write in order, and fails on demand.
#pragma once

#include <cerrno>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "vfiokit/base/host_paths.h"
#include "vfiokit/bind/sysfs_ops.h"

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

}  // namespace vfiokit::test
