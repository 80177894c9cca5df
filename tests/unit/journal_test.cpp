#include "bind/journal.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/fs.h"
#include "bind/lock.h"
#include "tests/unit/fixtures.h"

namespace vfiokit::bind {
namespace {

JournalEntry sample() {
  return {*pci::parse_bdf("0000:01:00.0"), 1,   "nouveau", std::nullopt, "vfio-pci",
          JournalState::binding,           4321};
}

TEST(Journal, FormatIsStableAndRoundTrips) {
  const std::string text = format_journal_entry(sample());
  EXPECT_EQ(text,
            "vfiokit-journal 1\nbdf 0000:01:00.0\ngroup 1\noriginal-driver nouveau\n"
            "original-override -\ntarget-driver vfio-pci\nstate binding\npid 4321\n");
  EXPECT_EQ(parse_journal_entry(text), sample());
  JournalEntry other = sample();
  other.original_driver.reset();
  other.original_override = "pci-stub";
  other.state = JournalState::bound;
  EXPECT_EQ(parse_journal_entry(format_journal_entry(other)), other);
}

TEST(Journal, RejectsEveryKindOfDamage) {
  const std::string good = format_journal_entry(sample());
  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    text.replace(text.find(from), from.size(), to);
    return text;
  };
  const std::vector<std::string> bad = {
      "",
      "vfiokit-journal 2\n",
      replaced("vfiokit-journal 1", "hello"),
      replaced("bdf 0000:01:00.0", "bdf 01:00"),
      replaced("group 1", "group one"),
      replaced("group 1", "group 99999999999"),
      replaced("original-driver nouveau", "original-driver bad/name"),
      replaced("original-driver nouveau", "original-driver nou\x01veau"),
      replaced("state binding", "state maybe"),
      replaced("pid 4321", "pid -1"),
      replaced("pid 4321\n", ""),
      good + "extra-key 1\n",
      good + "pid 5\n",
      replaced("target-driver vfio-pci", "target-driver"),
      replaced("group 1\n", "group1\n"),
  };
  for (const auto& text : bad) {
    EXPECT_THROW(parse_journal_entry(text), Error) << text;
  }
}

TEST(Journal, StoresFindsListsAndRemovesEntries) {
  test::TempDir dir;
  Journal journal(dir.path());
  EXPECT_FALSE(journal.find(sample().bdf));
  EXPECT_TRUE(journal.entries().empty());
  journal.record(sample());
  JournalEntry second = sample();
  second.bdf = *pci::parse_bdf("0000:01:00.1");
  journal.record(second);
  EXPECT_EQ(journal.find(sample().bdf), sample());
  EXPECT_EQ(journal.entries().size(), 2u);
  journal.remove(sample().bdf);
  EXPECT_EQ(journal.entries(), std::vector<JournalEntry>{second});
  EXPECT_EQ(list_dir(dir.path() / "devices"), std::vector<std::string>{"0000:01:00.1"});
}

TEST(Journal, ADamagedEntryIsAnErrorNamingTheFile) {
  test::TempDir dir;
  Journal journal(dir.path());
  std::filesystem::create_directories(dir.path() / "devices");
  write_file_durable(dir.path() / "devices/0000:01:00.0", "garbage");
  try {
    journal.find(sample().bdf);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.context_value("path")).find("0000:01:00.0"), std::string::npos);
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST(StateLock, ASecondHolderFailsAndNamesTheFirst) {
  test::TempDir dir;
  StateLock first(dir.path(), std::chrono::milliseconds(0));
  try {
    StateLock second(dir.path(), std::chrono::milliseconds(100));
    FAIL() << "two holders";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(::getpid())), std::string::npos);
    EXPECT_NE(e.hint().find("--wait"), std::string::npos);
  }
}

TEST(StateLock, IsReleasedWhenItsHolderGoes) {
  test::TempDir dir;
  { StateLock first(dir.path(), std::chrono::milliseconds(0)); }
  EXPECT_NO_THROW(StateLock(dir.path(), std::chrono::milliseconds(0)));
}

}  // namespace
}  // namespace vfiokit::bind
