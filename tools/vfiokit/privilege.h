// Permission failures as an ordinary user: the fix is root, whatever else the error says.
#pragma once

#include <sys/types.h>

#include "vfiokit/base/error.h"

namespace vfiokit::cli {

// When `effective_uid` is not root and `error` is EACCES or EPERM, its hint says that vfiokit
// needs root (first, ahead of any other advice it had), so an ordinary user is not sent after
// the device or the kernel. Other errors are returned unchanged.
Error explain_permission(Error error, uid_t effective_uid);

}  // namespace vfiokit::cli
