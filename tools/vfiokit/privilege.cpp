#include "tools/vfiokit/privilege.h"

#include <cerrno>
#include <string>

namespace vfiokit::cli {

Error explain_permission(Error error, uid_t effective_uid) {
  const int err = error.errno_value();
  if (effective_uid == 0 || (err != EACCES && err != EPERM)) return error;
  if (error.hint().find("root") != std::string::npos) return error;  // it says so already
  const std::string other = error.hint();
  error.hint(
      "run vfiokit as root (e.g. with sudo): binding devices, VFIO and the state under "
      "/run/vfiokit need it" +
      (other.empty() ? std::string() : "; " + other));
  return error;
}

}  // namespace vfiokit::cli
