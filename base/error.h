// The one error type of vfiokit: what failed (operation), why (errno and message), where (context
// such as BDF, IOVA, size, group), and what the user can do about it (hint).
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vfiokit {

// How the CLI turns an error into an exit status (see docs/cli.md).
enum class ErrorKind {
  failed,   // exit 1: the operation failed (anything changed has been rolled back)
  usage,    // exit 2: the request itself is malformed (bad BDF, unknown option)
  refused,  // exit 3: a safety check refused the request
};

struct ContextEntry {
  std::string key;
  std::string value;
};

class Error : public std::exception {
 public:
  Error(std::string operation, std::string message);

  // `saved_errno` must be captured right after the failing call, before anything (logging
  // included) can overwrite errno.
  static Error from_errno(int saved_errno, std::string operation, std::string message = {});
  // The same with errno as it is now: call it first thing after the failing call. The views are
  // copied only after errno is saved, so building the Error cannot disturb it.
  static Error from_last_errno(std::string_view operation, std::string_view message = {});

  Error& with(std::string key, std::string value) &;
  Error&& with(std::string key, std::string value) &&;
  Error& hint(std::string fix) &;
  Error&& hint(std::string fix) &&;
  Error& kind(ErrorKind k) &;
  Error&& kind(ErrorKind k) &&;

  [[nodiscard]] int errno_value() const noexcept { return errno_; }
  [[nodiscard]] const std::string& operation() const noexcept { return operation_; }
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] const std::string& hint() const noexcept { return hint_; }
  [[nodiscard]] ErrorKind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::vector<ContextEntry>& context() const noexcept { return context_; }
  // The value of a context key, or an empty view.
  [[nodiscard]] std::string_view context_value(std::string_view key) const noexcept;

  // "operation: message [key=value ...]: strerror (ENAME)", built once per change.
  [[nodiscard]] const char* what() const noexcept override { return what_.c_str(); }

 private:
  void rebuild_what();

  std::string operation_;
  std::string message_;
  int errno_ = 0;
  std::vector<ContextEntry> context_;
  std::string hint_;
  ErrorKind kind_ = ErrorKind::failed;
  std::string what_;
};

// "EBUSY" for EBUSY; "errno 1234" for values the C library does not name.
std::string errno_name(int err);

// Exit status for an error kind: failed 1, usage 2, refused 3.
int exit_status_for(ErrorKind kind) noexcept;
std::string_view to_string(ErrorKind kind) noexcept;

}  // namespace vfiokit
