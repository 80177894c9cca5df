#include "vfiokit/base/device_node.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "vfiokit/base/unique_fd.h"

namespace vfiokit {

DeviceNodeStatus probe_device_node(const std::filesystem::path& path,
                                   std::optional<IoctlNone> version_request) {
  DeviceNodeStatus status;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return status;
  status.exists = true;
  status.is_char_device = S_ISCHR(st.st_mode);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) {
    status.open_errno = errno;
    return status;
  }
  if (version_request) {
    const int rc = try_ioctl(fd.get(), *version_request);
    if (rc < 0) {
      status.api_errno = -rc;
    } else {
      status.api_version = rc;
    }
  }
  return status;
}

}  // namespace vfiokit
