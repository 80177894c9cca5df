// Typed ioctls that carry their own name, so that every failure says which request failed.
//
// An Ioctl<Arg, Passing> binds a request code to the C type the kernel expects and to how that
// argument travels: none, by value (e.g. VFIO_SET_IOMMU takes an int), or by pointer to a struct
// the kernel reads and/or writes. Calling one with the wrong argument type does not compile.
#pragma once

#include <sys/ioctl.h>

#include <cerrno>
#include <string_view>
#include <type_traits>

#include "vfiokit/base/error.h"

namespace vfiokit {

enum class IoctlPassing { none, value, pointer };

template <typename Arg, IoctlPassing Passing>
struct Ioctl {
  unsigned long code;
  std::string_view name;
};

struct NoArg {};
using IoctlNone = Ioctl<NoArg, IoctlPassing::none>;
template <typename Arg>
using IoctlValue = Ioctl<Arg, IoctlPassing::value>;
template <typename Arg>
using IoctlPtr = Ioctl<Arg, IoctlPassing::pointer>;

// Declares a typed ioctl whose name is the request macro's own spelling.
#define VFIOKIT_IOCTL_NONE(request) \
  ::vfiokit::IoctlNone { request, #request }
#define VFIOKIT_IOCTL_VALUE(type, request) \
  ::vfiokit::IoctlValue<type> { request, #request }
#define VFIOKIT_IOCTL_PTR(type, request) \
  ::vfiokit::IoctlPtr<type> { request, #request }

// The raw result: >= 0 on success, -errno on failure. For callers that interpret errors
// (KVM_RUN's EINTR, CHECK_EXTENSION's probing); everyone else uses the throwing forms below.
inline int try_ioctl(int fd, IoctlNone request) noexcept {
  // Kernel contract: "no argument" still means an argument of 0; KVM rejects anything else
  // (KVM_GET_API_VERSION, KVM_GET_VCPU_MMAP_SIZE: if (arg) return -EINVAL).
  const int rc = ::ioctl(fd, request.code, 0UL);
  return rc < 0 ? -errno : rc;
}
template <typename Arg>
int try_ioctl(int fd, IoctlValue<Arg> request, Arg value) noexcept {
  const int rc = ::ioctl(fd, request.code, value);
  return rc < 0 ? -errno : rc;
}
// The argument type is not deduced from it, so a T* fits a request declared on const T.
template <typename Arg>
int try_ioctl(int fd, IoctlPtr<Arg> request, std::type_identity_t<Arg>* arg) noexcept {
  // Kernel contract: arg points to a complete, correctly sized Arg for the whole call.
  const int rc = ::ioctl(fd, request.code, arg);
  return rc < 0 ? -errno : rc;
}

// The throwing forms: the Error names the request and carries errno; callers add context.
inline Error ioctl_error(int negative_errno, std::string_view name) {
  return Error::from_errno(-negative_errno, std::string(name));
}
inline int do_ioctl(int fd, IoctlNone request) {
  const int rc = try_ioctl(fd, request);
  if (rc < 0) throw ioctl_error(rc, request.name);
  return rc;
}
template <typename Arg>
int do_ioctl(int fd, IoctlValue<Arg> request, Arg value) {
  const int rc = try_ioctl(fd, request, value);
  if (rc < 0) throw ioctl_error(rc, request.name);
  return rc;
}
template <typename Arg>
int do_ioctl(int fd, IoctlPtr<Arg> request, std::type_identity_t<Arg>* arg) {
  const int rc = try_ioctl(fd, request, arg);
  if (rc < 0) throw ioctl_error(rc, request.name);
  return rc;
}

}  // namespace vfiokit
