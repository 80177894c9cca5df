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

namespace vfiokit::bind {
namespace {

// Hostile state folders: what /run/vfiokit looked like to someone who could plant files in it.
TEST(JournalHardening, APlantedSymlinkAtTheTemporaryEntryCannotRedirectTheRecord) {
  test::TempDir dir;
  write_file_durable(dir.path() / "victim", "precious\n");
  Journal journal(dir.path() / "vfiokit");
  journal.record(sample());
  std::filesystem::create_symlink(dir.path() / "victim",
                                  dir.path() / "vfiokit/devices/0000:01:00.0.tmp");
  JournalEntry bound = sample();
  bound.state = JournalState::bound;
  journal.record(bound);
  EXPECT_EQ(read_file(dir.path() / "victim"), "precious\n");
  EXPECT_EQ(journal.find(sample().bdf), bound);
}

TEST(JournalHardening, APlantedSymlinkAtTheLockIsRefusedAndItsTargetKept) {
  test::TempDir dir;
  write_file_durable(dir.path() / "victim", "precious\n");
  std::filesystem::create_directories(dir.path() / "vfiokit");
  std::filesystem::create_symlink(dir.path() / "victim", dir.path() / "vfiokit/lock");
  try {
    StateLock lock(dir.path() / "vfiokit", std::chrono::milliseconds(0));
    FAIL() << "locked through a symlink";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lock is a symbolic link"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_file(dir.path() / "victim"), "precious\n");
}

TEST(JournalHardening, AHardLinkAtTheLockIsRefused) {
  test::TempDir dir;
  write_file_durable(dir.path() / "victim", "precious\n", 0600);
  std::filesystem::create_directories(dir.path() / "vfiokit");
  std::filesystem::create_hard_link(dir.path() / "victim", dir.path() / "vfiokit/lock");
  EXPECT_THROW(StateLock(dir.path() / "vfiokit", std::chrono::milliseconds(0)), Error);
  EXPECT_EQ(read_file(dir.path() / "victim"), "precious\n");
}

TEST(JournalHardening, AStateFolderOthersMayWriteIsRefusedForReadingAndWriting) {
  test::TempDir dir;
  Journal journal(dir.path() / "vfiokit");
  journal.record(sample());
  std::filesystem::permissions(dir.path() / "vfiokit/devices", std::filesystem::perms::all);
  EXPECT_THROW(journal.find(sample().bdf), Error);
  EXPECT_THROW(journal.record(sample()), Error);
  std::filesystem::permissions(dir.path() / "vfiokit/devices", std::filesystem::perms::others_write,
                               std::filesystem::perm_options::remove);
  std::filesystem::permissions(dir.path() / "vfiokit/devices", std::filesystem::perms::group_write,
                               std::filesystem::perm_options::remove);
  EXPECT_EQ(journal.find(sample().bdf), sample());
  std::filesystem::permissions(dir.path() / "vfiokit", std::filesystem::perms::all);
  try {
    StateLock lock(dir.path() / "vfiokit", std::chrono::milliseconds(0));
    FAIL() << "locked in a folder anyone may write";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("writable by group or others"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(dir.path() / "vfiokit/lock"));
  }
}

TEST(JournalHardening, AJournalEntryThatIsASymlinkIsDamageNotData) {
  test::TempDir dir;
  Journal journal(dir.path() / "vfiokit");
  journal.record(sample());
  write_file_durable(dir.path() / "elsewhere", format_journal_entry(sample()));
  std::filesystem::remove(dir.path() / "vfiokit/devices/0000:01:00.0");
  std::filesystem::create_symlink(dir.path() / "elsewhere",
                                  dir.path() / "vfiokit/devices/0000:01:00.0");
  EXPECT_THROW(journal.find(sample().bdf), Error);
}

}  // namespace
}  // namespace vfiokit::bind

namespace vfiokit::bind {
namespace {

std::string truncated_entry() {
  const std::string text = format_journal_entry(sample());
  return text.substr(0, text.find("target-driver"));
}

// One bad file hides nothing else: each is reported with its path and what to do.
TEST(JournalScan, DamagedMisnamedAndForeignFilesAreProblemsTheRestAreEntries) {
  test::TempDir dir;
  Journal journal(dir.path());
  JournalEntry good = sample();
  good.bdf = *pci::parse_bdf("0000:05:00.0");
  journal.record(good);
  const auto devices = dir.path() / "devices";
  write_file_durable(devices / "0000:01:00.0", truncated_entry());
  write_file_durable(devices / "0000:02:00.0", format_journal_entry(sample()));  // names 01:00.0
  write_file_durable(devices / "notes.txt", "hello\n");
  write_file_durable(devices / "0000:05:00.0.tmp", "half a wri");  // an interrupted write
  const JournalScan scan = journal.scan();
  EXPECT_EQ(scan.entries, std::vector<JournalEntry>{good});
  ASSERT_EQ(scan.problems.size(), 3u);
  EXPECT_EQ(scan.problems[0].path, devices / "0000:01:00.0");
  EXPECT_EQ(scan.problems[0].bdf, pci::parse_bdf("0000:01:00.0"));
  EXPECT_EQ(scan.problems[0].problem, "damaged: key 'target-driver' is missing");
  EXPECT_NE(scan.problems[0].fix.find("delete " + (devices / "0000:01:00.0").string()),
            std::string::npos);
  EXPECT_EQ(scan.problems[1].problem,
            "damaged: it is named for 0000:02:00.0 but names 0000:01:00.0 inside");
  EXPECT_EQ(scan.problems[2].path, devices / "notes.txt");
  EXPECT_FALSE(scan.problems[2].bdf);
  EXPECT_THROW(journal.find(*pci::parse_bdf("0000:02:00.0")), Error);
  EXPECT_THROW(journal.entries(), Error);
}

}  // namespace
}  // namespace vfiokit::bind
