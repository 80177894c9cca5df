// Where the unit tests' fixture trees live (tests/fixtures/), and writable copies of them.
#pragma once

#include <filesystem>
#include <string>

#include "vfiokit/base/host_paths.h"

namespace vfiokit::test {

inline std::filesystem::path fixture(const std::filesystem::path& relative) {
  return std::filesystem::path(VFIOKIT_FIXTURES) / relative;
}

// tests/fixtures/hosts/NAME: small host roots for doctor and the IOMMU probe.
inline HostPaths fixture_host(const std::filesystem::path& name) {
  return HostPaths::under(fixture("hosts") / name);
}

// tests/fixtures/sysfs/NAME: sysfs device trees (read-only use).
inline HostPaths fixture_sysfs(const std::filesystem::path& name) {
  return HostPaths::under(fixture("sysfs") / name);
}

// A private, writable copy of a fixture tree, links kept as links; removed on destruction.
class FixtureCopy {
 public:
  explicit FixtureCopy(const std::filesystem::path& source);
  ~FixtureCopy();
  FixtureCopy(const FixtureCopy&) = delete;
  FixtureCopy& operator=(const FixtureCopy&) = delete;

  [[nodiscard]] const std::filesystem::path& root() const { return root_; }
  [[nodiscard]] HostPaths paths() const { return HostPaths::under(root_); }

 private:
  std::filesystem::path root_;
};

// A fresh empty directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace vfiokit::test
