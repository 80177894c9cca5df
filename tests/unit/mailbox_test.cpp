// The host side of the payload mailbox: what a guest writes is kept bounded and printable.
#include <gtest/gtest.h>

#include <string>

#include "vfiokit/payloads/guest.h"
#include "vfiokit/payloads/mailbox.h"

namespace vfiokit::payloads {
namespace {

std::string add_all(GuestLog& log, std::string_view bytes) {
  std::string lines;
  for (const char c : bytes) {
    if (const auto line = log.add(static_cast<std::uint8_t>(c))) lines += *line + "|";
  }
  return lines;
}

TEST(GuestLog, KeepsLinesAndHandsEachOneOverWhenItEnds) {
  GuestLog log;
  EXPECT_EQ(add_all(log, "edu-dma: BAR0 at 0xc0000000\n\tindented\nno newline yet"),
            "edu-dma: BAR0 at 0xc0000000|\tindented|");
  EXPECT_EQ(log.text(), "edu-dma: BAR0 at 0xc0000000\n\tindented\nno newline yet");
  EXPECT_EQ(log.dropped(), 0u);
}

TEST(GuestLog, EscapesEverythingThatIsNotPrintable) {
  GuestLog log;
  // Clear the screen, set the window title, ring the bell, a C1 control, a backslash, UTF-8.
  using namespace std::string_literals;
  const std::string hostile = "\x1b[2J\x1b]0;owned\x07\x9b\r\\ \xc3\xa9\0end\n"s;
  EXPECT_EQ(add_all(log, hostile), "\\x1b[2J\\x1b]0;owned\\x07\\x9b\\x0d\\\\ \\xc3\\xa9\\x00end|");
  for (const char c : log.text()) {
    const auto byte = static_cast<unsigned char>(c);
    EXPECT_TRUE((byte >= 0x20 && byte < 0x7f) || byte == '\n') << int{byte};
  }
}

TEST(GuestLog, KeepsAtMost64KiBAndCountsTheRest) {
  GuestLog log;
  const std::string line(99, 'x');
  for (int i = 0; i < 20000; ++i) add_all(log, line + "\n");  // about 2 MB
  const std::string text = log.text();
  EXPECT_LE(text.size(), (std::size_t{64} << 10) + 100);
  EXPECT_EQ(log.dropped(), 20000u * 100 - (std::size_t{64} << 10));
  EXPECT_NE(text.find("[vfiokit: " + std::to_string(log.dropped()) +
                      " more bytes of log dropped; 64 KiB are kept]\n"),
            std::string::npos)
      << text.substr(text.size() - 200);
  // An escaped byte that does not fit whole is dropped whole.
  GuestLog tiny(6);
  add_all(tiny, "ab\x1b\x1b");
  EXPECT_EQ(tiny.dropped(), 1u);
  EXPECT_EQ(tiny.text(), "ab\\x1b\n[vfiokit: 1 more bytes of log dropped; 6 B are kept]\n");
}

TEST(MailboxQueue, KeepsAtMostItsLimitButAlwaysTheFirstDone) {
  MailboxQueue queue(3);
  for (std::uint32_t i = 0; i < 10; ++i) queue.push({VFIOKIT_MAILBOX_VALUE, i, {}});
  EXPECT_EQ(queue.size(), 3u);
  EXPECT_EQ(queue.dropped(), 7u);
  queue.push({VFIOKIT_MAILBOX_DONE, 0, {}});
  queue.push({VFIOKIT_MAILBOX_DONE, 1, {}});  // a second DONE is like any other event
  EXPECT_EQ(queue.size(), 4u);
  EXPECT_EQ(queue.dropped(), 8u);
  const auto done = queue.take(VFIOKIT_MAILBOX_DONE);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->value, 0u);
  EXPECT_EQ(queue.pop()->value, 0u);  // the others in order
  EXPECT_EQ(queue.pop()->value, 1u);
  EXPECT_EQ(queue.pop()->value, 2u);
  EXPECT_FALSE(queue.pop());
}

}  // namespace
}  // namespace vfiokit::payloads
