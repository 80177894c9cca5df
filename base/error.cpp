#include "vfiokit/base/error.h"

#include <cerrno>
#include <cstring>

namespace vfiokit {

Error::Error(std::string operation, std::string message)
    : operation_(std::move(operation)), message_(std::move(message)) {
  rebuild_what();
}

Error Error::from_errno(int saved_errno, std::string operation, std::string message) {
  Error e(std::move(operation), std::move(message));
  e.errno_ = saved_errno;
  e.rebuild_what();
  return e;
}

Error Error::from_last_errno(std::string_view operation, std::string_view message) {
  const int saved_errno = errno;
  return from_errno(saved_errno, std::string(operation), std::string(message));
}

Error& Error::with(std::string key, std::string value) & {
  context_.push_back({std::move(key), std::move(value)});
  rebuild_what();
  return *this;
}
Error&& Error::with(std::string key, std::string value) && {
  return std::move(with(std::move(key), std::move(value)));
}
Error& Error::hint(std::string fix) & {
  hint_ = std::move(fix);
  return *this;
}
Error&& Error::hint(std::string fix) && { return std::move(hint(std::move(fix))); }
Error& Error::kind(ErrorKind k) & {
  kind_ = k;
  return *this;
}
Error&& Error::kind(ErrorKind k) && { return std::move(kind(k)); }

std::string_view Error::context_value(std::string_view key) const noexcept {
  for (const auto& entry : context_) {
    if (entry.key == key) return entry.value;
  }
  return {};
}

void Error::rebuild_what() {
  std::string text = operation_;
  if (!message_.empty()) text += ": " + message_;
  if (!context_.empty()) {
    text += " [";
    for (std::size_t i = 0; i < context_.size(); ++i) {
      if (i != 0) text += ' ';
      text += context_[i].key + '=' + context_[i].value;
    }
    text += ']';
  }
  if (errno_ != 0) {
    text += ": ";
    text += std::strerror(errno_);
    text += " (" + errno_name(errno_) + ')';
  }
  what_ = std::move(text);
}

std::string errno_name(int err) {
  if (const char* name = strerrorname_np(err)) return name;
  return "errno " + std::to_string(err);
}

int exit_status_for(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::failed:
      return 1;
    case ErrorKind::usage:
      return 2;
    case ErrorKind::refused:
      return 3;
  }
  return 1;
}

std::string_view to_string(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::failed:
      return "failed";
    case ErrorKind::usage:
      return "usage";
    case ErrorKind::refused:
      return "refused";
  }
  return "failed";
}

}  // namespace vfiokit
