// The seam between binding logic and the kernel: every side effect bind, unbind and restore
// have goes through SysfsOps. LiveSysfsOps does it for real; unit tests substitute a fake
// kernel that records each write, simulates driver binding on a fixture tree, and fails on
// demand.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string_view>

#include <sys/types.h>

namespace vfiokit::bind {

class SysfsOps {
 public:
  virtual ~SysfsOps() = default;
  // One write of `value` to a sysfs attribute. With a timeout, a write the kernel does not
  // finish in time (a driver's remove() that hangs) fails with ETIMEDOUT instead of blocking.
  virtual void write(const std::filesystem::path& attribute, std::string_view value,
                     std::optional<std::chrono::milliseconds> timeout = std::nullopt) = 0;
  virtual void load_module(std::string_view name) = 0;
  virtual void set_owner(const std::filesystem::path& node, uid_t uid, gid_t gid) = 0;
  virtual void sleep(std::chrono::milliseconds duration) = 0;
};

class LiveSysfsOps final : public SysfsOps {
 public:
  void write(const std::filesystem::path& attribute, std::string_view value,
             std::optional<std::chrono::milliseconds> timeout) override;
  void load_module(std::string_view name) override;
  void set_owner(const std::filesystem::path& node, uid_t uid, gid_t gid) override;
  void sleep(std::chrono::milliseconds duration) override;
};

}  // namespace vfiokit::bind
