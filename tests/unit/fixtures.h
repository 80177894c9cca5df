// Where the unit tests' fixture trees live (tests/fixtures/).
#pragma once

#include <filesystem>

#include "base/host_paths.h"

namespace vfiokit::test {

inline std::filesystem::path fixture(const std::filesystem::path& relative) {
  return std::filesystem::path(VFIOKIT_FIXTURES) / relative;
}

inline HostPaths fixture_host(const std::filesystem::path& name) {
  return HostPaths::under(fixture("hosts") / name);
}

}  // namespace vfiokit::test
