#include "vfiokit/base/progress.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace vfiokit {
namespace {

// Runs `body` with stderr redirected into a pipe and returns what it wrote.
template <typename Body>
std::string stderr_of(Body body) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fds[1], STDERR_FILENO);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[1]);
  std::string out;
  char buffer[256];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  return out;
}

TEST(ProgressLine, ShownLinesAreErasedWhenDone) {
  const std::string out = stderr_of([] {
    ProgressLine progress(true);
    progress.show("0000:01:00.0: unbinding");
    progress.show("0000:01:00.0: probing");
  });
  EXPECT_EQ(out,
            "\r\033[Kvfiokit: 0000:01:00.0: unbinding...\r\033[Kvfiokit: 0000:01:00.0: "
            "probing...\r\033[K");
}

TEST(ProgressLine, NothingWhenNotWantedOrNeverShown) {
  EXPECT_EQ(stderr_of([] { ProgressLine(false).show("hidden"); }), "");
  EXPECT_EQ(stderr_of([] { ProgressLine progress(true); }), "");
  // Into a pipe, as here, it is not wanted: a log or a script never sees status lines.
  EXPECT_EQ(stderr_of([] { EXPECT_FALSE(ProgressLine::wanted()); }), "");
}

}  // namespace
}  // namespace vfiokit
