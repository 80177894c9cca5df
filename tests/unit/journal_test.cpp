#include "vfiokit/bind/journal.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <thread>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"
#include "vfiokit/base/process.h"
#include "vfiokit/bind/lock.h"

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

TEST(StateLock, ASignalEndsTheWaitAndNothingIsTaken) {
  test::TempDir dir;
  StateLock first(dir.path(), std::chrono::milliseconds(0));
  // A 30 s wait that the signal ends at once.
  const LockOptions options{std::chrono::seconds(30), "/proc", [] { return SIGHUP; }};
  const auto start = std::chrono::steady_clock::now();
  try {
    StateLock second(dir.path(), options);
    FAIL() << "two holders";
  } catch (const Error& e) {
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_LT(waited, std::chrono::seconds(5));
    EXPECT_EQ(e.message(),
              "stopped by SIGHUP while waiting for another vfiokit process; nothing was changed");
    EXPECT_EQ(e.context_value("signal"), "SIGHUP");
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

namespace vfiokit::bind {
namespace {

ProcessInfo process(int pid, const char* command, char state) { return {pid, command, state}; }

// What a holder writes into the lock file: in place, as the lock is on this very inode.
void write_recorded_pid(const std::filesystem::path& lock, pid_t pid) {
  const UniqueFd fd(::open(lock.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  ASSERT_TRUE(fd);
  const std::string text = std::to_string(pid) + "\n";
  ASSERT_EQ(::write(fd.get(), text.data(), text.size()), static_cast<ssize_t>(text.size()));
}

TEST(LockHolder, AVfiokitAtWorkIsWaitedFor) {
  LockHolders facts;
  facts.recorded_pid = 100;
  facts.recorded = process(100, "vfiokit", 'S');
  facts.holders = {process(100, "vfiokit", 'S')};
  const Error e = lock_busy_error(facts, "/run/vfiokit/lock");
  EXPECT_EQ(e.message(), "another vfiokit process (pid 100) is changing driver bindings");
  EXPECT_NE(e.hint().find("--wait"), std::string::npos);
}

TEST(LockHolder, AProcessLeftBehindByADeadVfiokitIsNamedWithTheFix) {
  LockHolders facts;
  facts.recorded_pid = 100;  // gone: no facts.recorded
  facts.holders = {process(123, "vfiokit", 'S')};
  const Error e = lock_busy_error(facts, "/run/vfiokit/lock");
  EXPECT_EQ(e.message(),
            "the lock is held by pid 123 (vfiokit), which vfiokit pid 100 left behind; vfiokit "
            "pid 100 has exited");
  EXPECT_NE(e.hint().find("kill 123"), std::string::npos);
  EXPECT_NE(e.hint().find("restore --all"), std::string::npos);
}

TEST(LockHolder, AStuckChildIsBlockedInTheKernelAndOnlyTheKernelEndsIt) {
  LockHolders facts;
  facts.recorded_pid = 100;
  facts.holders = {process(123, "vfiokit", 'D')};
  const Error e = lock_busy_error(facts, "/run/vfiokit/lock");
  EXPECT_EQ(e.message(),
            "the lock is held by pid 123 (vfiokit), which is blocked in the kernel (state D), "
            "left behind by vfiokit pid 100, which has exited");
  EXPECT_NE(e.hint().find("/proc/123/stack"), std::string::npos);
  EXPECT_NE(e.hint().find("cannot be killed"), std::string::npos);
  EXPECT_EQ(e.context_value("holder"), "pid 123 (vfiokit), state D");
}

TEST(LockHolder, AHolderNobodyCanSeeSaysHowToFindIt) {
  LockHolders facts;
  facts.recorded_pid = 100;
  const Error e = lock_busy_error(facts, "/run/vfiokit/lock");
  EXPECT_EQ(e.message(),
            "the lock is held, but vfiokit pid 100 that took it has exited and no process this "
            "user can see holds it");
  EXPECT_NE(e.hint().find("fuser -v /run/vfiokit/lock"), std::string::npos);
}

// A real holder on this machine's /proc: a child that took the lock, under the name of a pid
// that has exited (what an orphaned child of a dead vfiokit looks like).
TEST(LockHolder, FoundThroughProcWhateverPidTheFileNames) {
  test::TempDir dir;
  { StateLock make(dir.path(), std::chrono::milliseconds(0)); }
  const std::string lock_path = (dir.path() / "lock").string();
  ChildProcess holder = ChildProcess::fork([&lock_path]() -> int {
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) return 1;
    for (;;) ::pause();
  });
  {
    const UniqueFd probe(::open(lock_path.c_str(), O_RDWR | O_CLOEXEC));
    int tries = 0;
    while (::flock(probe.get(), LOCK_EX | LOCK_NB) == 0) {
      ::flock(probe.get(), LOCK_UN);
      ASSERT_LT(++tries, 500) << "the child never took the lock";
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ChildProcess exited = ChildProcess::fork([] { return 0; });
  const pid_t dead = exited.pid();
  exited.wait();
  write_recorded_pid(dir.path() / "lock", dead);
  try {
    StateLock second(dir.path(), std::chrono::milliseconds(0));
    FAIL() << "two holders";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.message()).find("held by pid " + std::to_string(holder.pid())),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.message()).find("vfiokit pid " + std::to_string(dead) + " left behind"),
              std::string::npos)
        << e.what();
  }
  write_recorded_pid(dir.path() / "lock", holder.pid());
  try {
    StateLock second(dir.path(), std::chrono::milliseconds(0));
    FAIL() << "two holders";
  } catch (const Error& e) {
    EXPECT_EQ(e.message(), "another vfiokit process (pid " + std::to_string(holder.pid()) +
                               ") is changing driver bindings");
  }
}

}  // namespace
}  // namespace vfiokit::bind
