// Choosing a payload to launch: vfiokit's own by name, a user's flat binary by path, and every
// way that can be wrong found before anything is bound (usage errors, exit 2).
#include <gtest/gtest.h>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/payloads/mailbox.h"
#include "vfiokit/payloads/payloads.h"

namespace vfiokit::payloads {
namespace {

ErrorKind kind_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.kind();
  }
  ADD_FAILURE() << "no error";
  return ErrorKind::failed;
}

TEST(LaunchablePayload, BuiltInPayloadsByNameAndFilesByPath) {
  const LaunchablePayload edu = load_for_launch("edu-dma");
  EXPECT_EQ(edu.name, "edu-dma");
  EXPECT_EQ(edu.image.size(), find("edu-dma")->image.size());
  test::TempDir dir;
  const auto path = dir.path() / "mine.bin";
  write_file_durable(path, std::string(4096, '\x90'));
  const LaunchablePayload mine = load_for_launch(path.string());
  EXPECT_EQ(mine.name, path.string());
  EXPECT_EQ(mine.image.size(), 4096u);
}

TEST(LaunchablePayload, MistakesAreUsageErrors) {
  EXPECT_EQ(kind_of([] { load_for_launch("irq-probe"); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([] { load_for_launch("no-such-payload"); }), ErrorKind::usage);
  EXPECT_EQ(kind_of([] { load_for_launch("/nonexistent/payload.bin"); }), ErrorKind::usage);
  test::TempDir dir;
  write_file_durable(dir.path() / "empty.bin", "");
  EXPECT_EQ(kind_of([&] { load_for_launch((dir.path() / "empty.bin").string()); }),
            ErrorKind::usage);
}

TEST(LaunchablePayload, AnImageAboveTheLimitIsRefusedNotTruncated) {
  test::TempDir dir;
  const auto at_limit = dir.path() / "at-limit.bin";
  const auto above = dir.path() / "above.bin";
  write_file_durable(at_limit, std::string(kMaxImageSize, '\0'));
  write_file_durable(above, std::string(kMaxImageSize + 1, '\0'));
  EXPECT_EQ(load_for_launch(at_limit.string()).image.size(), kMaxImageSize);
  try {
    load_for_launch(above.string());
    FAIL() << "a 8 MiB + 1 image was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("larger than 8 MiB"), std::string::npos) << e.what();
  }
}

TEST(LaunchablePayload, TheImageMustFitTheGuestRam) {
  EXPECT_EQ(required_memory(0), std::size_t{1} << 20);
  EXPECT_EQ(required_memory(1), std::size_t{2} << 20);
  EXPECT_EQ(required_memory(kMaxImageSize), std::size_t{9} << 20);
  LaunchablePayload big{"big", std::vector<std::uint8_t>(std::size_t{6} << 20)};
  EXPECT_NO_THROW(require_fits(big, std::size_t{7} << 20));
  try {
    require_fits(big, std::size_t{4} << 20);
    FAIL() << "a 6 MiB image fit in 4 MiB of RAM";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.hint(), "give it --memory 7 or more");
  }
}

TEST(LaunchablePayload, APayloadsOwnRamUseMustFitToo) {
  const LaunchablePayload dirty = load_for_launch("dirty-pages");
  EXPECT_EQ(dirty.memory_used, 0xa10000u);
  EXPECT_NO_THROW(require_fits(dirty, std::size_t{11} << 20));
  try {
    require_fits(dirty, std::size_t{10} << 20);
    FAIL() << "dirty-pages, which writes at 10 MiB + 60 KiB, fit in 10 MiB";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_EQ(e.hint(), "give it --memory 11 or more");
  }
  EXPECT_EQ(load_for_launch("edu-dma").memory_used, 0u);
}

}  // namespace
}  // namespace vfiokit::payloads
