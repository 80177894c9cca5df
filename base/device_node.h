// Looking at a character device node (/dev/vfio/vfio, /dev/kvm) without keeping it open.
#pragma once

#include <filesystem>
#include <optional>

#include "vfiokit/base/ioctl.h"

namespace vfiokit {

struct DeviceNodeStatus {
  bool exists = false;
  bool is_char_device = false;
  int open_errno = 0;              // 0 when open(O_RDWR) succeeded
  std::optional<int> api_version;  // what the version ioctl returned, when it was asked
  int api_errno = 0;               // why the version ioctl failed, if it did
};

// Opens `path` read-write and, if `version_request` is given, issues it and records the result.
DeviceNodeStatus probe_device_node(const std::filesystem::path& path,
                                   std::optional<IoctlNone> version_request);

}  // namespace vfiokit
