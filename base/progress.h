// A status line on stderr while something slow runs (an unbind that waits for the driver, QEMU
// pinning guest memory), for a person at a terminal.
#pragma once

#include <string_view>

namespace vfiokit {

class ProgressLine {
 public:
  // Shown only when stderr is a terminal and the log level is the default one: -v prints log
  // lines that say the same, -q asks for errors only, and a pipe or a log file gets nothing.
  [[nodiscard]] static bool wanted() noexcept;

  explicit ProgressLine(bool enabled = wanted()) noexcept : enabled_(enabled) {}
  ~ProgressLine() { clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Replaces the line with "vfiokit: TEXT...".
  void show(std::string_view text) noexcept;
  // Erases the line, so what is printed next starts on a clean one.
  void clear() noexcept;

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace vfiokit
