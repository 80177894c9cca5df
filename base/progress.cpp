#include "vfiokit/base/progress.h"

#include <unistd.h>

#include <string>

#include "vfiokit/base/log.h"

namespace vfiokit {
namespace {

// One write(2): a line half-written by a stream buffer would interleave with QEMU's output.
void write_stderr(std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, bytes.data(), bytes.size());
    if (n <= 0) return;  // a closed or broken terminal: progress is not worth an error
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

constexpr std::string_view kEraseLine = "\r\033[K";  // carriage return, erase to end of line

}  // namespace

bool ProgressLine::wanted() noexcept {
  return ::isatty(STDERR_FILENO) == 1 && log::level() == LogLevel::warn;
}

void ProgressLine::show(std::string_view text) noexcept {
  if (!enabled_) return;
  try {
    write_stderr(std::string(kEraseLine) + "vfiokit: " + std::string(text) + "...");
    shown_ = true;
  } catch (...) {
    // Out of memory for a status line: nothing to show.
  }
}

void ProgressLine::clear() noexcept {
  if (!shown_) return;
  write_stderr(kEraseLine);
  shown_ = false;
}

}  // namespace vfiokit
