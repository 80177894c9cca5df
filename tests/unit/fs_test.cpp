#include "vfiokit/base/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "vfiokit/base/error.h"
#include "vfiokit/base/process.h"

namespace vfiokit {
namespace {
namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "vfiokit-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(Fs, TrimAndParse) {
  EXPECT_EQ(trim("  nvme\n"), "nvme");
  EXPECT_EQ(trim("\n"), "");
  EXPECT_EQ(parse_uint("0x1b36\n", 16), 0x1b36u);
  EXPECT_EQ(parse_uint("1b36", 16), 0x1b36u);
  EXPECT_EQ(parse_uint("42"), 42u);
  EXPECT_FALSE(parse_uint("", 16));
  EXPECT_FALSE(parse_uint("0x", 16));
  EXPECT_FALSE(parse_uint("12z"));
  EXPECT_FALSE(parse_uint("-1"));
  EXPECT_FALSE(parse_uint("99999999999999999999999"));
}

TEST(Fs, FindKeyValueReadsStatusAndCpuinfoStyles) {
  EXPECT_EQ(find_key_value("Name:\tx\nCapEff:\t00000000a80425fb\n", "CapEff"), "00000000a80425fb");
  EXPECT_EQ(find_key_value("processor\t: 0\nvendor_id\t: GenuineIntel\n", "vendor_id"),
            "GenuineIntel");
  EXPECT_FALSE(find_key_value("CapEffect: 1\n", "CapEff"));
  EXPECT_FALSE(find_key_value("", "CapEff"));
}

TEST(Fs, ReadHelpersDistinguishMissingFromPresent) {
  TempDir dir;
  EXPECT_FALSE(read_file_if_exists(dir.path() / "absent"));
  EXPECT_FALSE(read_line_if_exists(dir.path() / "absent" / "deeper"));
  EXPECT_THROW(read_file(dir.path() / "absent"), Error);
  write_file_durable(dir.path() / "f", "first line  \nsecond\n");
  EXPECT_EQ(read_line_if_exists(dir.path() / "f"), "first line");
  EXPECT_EQ(read_file(dir.path() / "f"), "first line  \nsecond\n");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"f"});
  EXPECT_TRUE(list_dir(dir.path() / "absent").empty());
}

TEST(Fs, DurableWriteReplacesWholeFileAndLeavesNoTemporary) {
  TempDir dir;
  write_file_durable(dir.path() / "journal", "a much longer first version\n");
  write_file_durable(dir.path() / "journal", "v2\n");
  EXPECT_EQ(read_file(dir.path() / "journal"), "v2\n");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"journal"});
}

TEST(Fs, ReadLinkNameGivesTheTargetsLastComponent) {
  TempDir dir;
  fs::create_symlink("../../bus/pci/drivers/nvme", dir.path() / "driver");
  EXPECT_EQ(read_link_name(dir.path() / "driver"), "nvme");
  EXPECT_FALSE(read_link_name(dir.path() / "missing"));
  write_file_durable(dir.path() / "plain", "x");
  EXPECT_THROW(read_link_name(dir.path() / "plain"), Error);
}

TEST(Fs, WriteAttributeNeedsAnExistingFileAndNamesIt) {
  TempDir dir;
  try {
    write_attribute(dir.path() / "driver_override", "vfio-pci");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.errno_value(), ENOENT);
    EXPECT_EQ(e.context_value("path"), (dir.path() / "driver_override").string());
    EXPECT_EQ(e.context_value("value"), "vfio-pci");
  }
  write_file_durable(dir.path() / "driver_override", "");
  write_attribute(dir.path() / "driver_override", "vfio-pci");
  EXPECT_EQ(read_file(dir.path() / "driver_override"), "vfio-pci");
}

}  // namespace
}  // namespace vfiokit

namespace vfiokit {
namespace {

TEST(FindProgram, SearchesThePathAsExecvpDoes) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("vfiokit-find-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "a");
  std::filesystem::create_directories(dir / "b");
  const auto write = [](const std::filesystem::path& p, std::filesystem::perms perms) {
    std::ofstream(p) << "#!/bin/sh\n";
    std::filesystem::permissions(p, perms);
  };
  write(dir / "a" / "tool", std::filesystem::perms::owner_read);  // not executable
  write(dir / "b" / "tool", std::filesystem::perms::owner_all);
  const std::string path = (dir / "a").string() + ":" + (dir / "b").string();
  EXPECT_EQ(find_program("tool", path), dir / "b" / "tool");
  EXPECT_EQ(find_program("missing", path), std::nullopt);
  EXPECT_EQ(find_program("", path), std::nullopt);
  EXPECT_EQ(find_program((dir / "b" / "tool").string(), ""), dir / "b" / "tool");
  EXPECT_EQ(find_program((dir / "a" / "tool").string(), ""), std::nullopt);
  EXPECT_EQ(find_program("a", dir.string()), std::nullopt);  // a directory is not a program
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vfiokit

namespace vfiokit {
namespace {

// Sets the umask for one scope.
class Umask {
 public:
  explicit Umask(mode_t mask) : saved_(::umask(mask)) {}
  ~Umask() { ::umask(saved_); }
  Umask(const Umask&) = delete;
  Umask& operator=(const Umask&) = delete;

 private:
  mode_t saved_;
};

mode_t mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

struct stat made_up_stat(mode_t type_and_mode, uid_t uid, nlink_t links = 1) {
  struct stat st {};
  st.st_mode = type_and_mode;
  st.st_uid = uid;
  st.st_nlink = links;
  return st;
}

TEST(StateDirTrust, OnlyRootOrThisUserAndNobodyElseWriting) {
  const uid_t me = 1000;
  EXPECT_FALSE(untrusted_state_reason(made_up_stat(S_IFDIR | 0755, 0), true, me));
  EXPECT_FALSE(untrusted_state_reason(made_up_stat(S_IFDIR | 0700, me), true, me));
  EXPECT_FALSE(untrusted_state_reason(made_up_stat(S_IFREG | 0644, 0), false, me));
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFDIR | 0755, 1001), true, me),
            "is owned by uid 1001, neither root nor this user");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFDIR | 0777, 0), true, me),
            "is writable by group or others (mode 0777)");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFDIR | 0775, 0), true, me),
            "is writable by group or others (mode 0775)");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFREG | 0646, 0), false, me),
            "is writable by group or others (mode 0646)");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFREG | 0644, 0, 2), false, me),
            "has 2 hard links");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFIFO | 0600, 0), false, me),
            "is not a regular file");
  EXPECT_EQ(untrusted_state_reason(made_up_stat(S_IFREG | 0755, 0), true, me),
            "is not a directory");
  // Root trusts only root's.
  EXPECT_TRUE(untrusted_state_reason(made_up_stat(S_IFDIR | 0755, 1000), true, 0));
}

TEST(StateDir, IsCreatedWithExactlyItsModeWhateverTheUmask) {
  TempDir dir;
  for (const mode_t mask : {mode_t{0}, mode_t{077}}) {
    SCOPED_TRACE(mask);
    const Umask umask(mask);
    const fs::path root = dir.path() / ("run-" + std::to_string(mask));
    const StateDir state = StateDir::create(root / "vfiokit", 0755);
    const StateDir devices = state.create_subdir("devices", 0755);
    devices.write_file_durable("0000:01:00.0", "entry\n", 0644);
    EXPECT_EQ(mode_of(root / "vfiokit"), 0755u);
    EXPECT_EQ(mode_of(root / "vfiokit/devices"), 0755u);
    EXPECT_EQ(mode_of(root / "vfiokit/devices/0000:01:00.0"), 0644u);
    EXPECT_EQ(devices.read_file("0000:01:00.0", 100), "entry\n");
    EXPECT_EQ(devices.list(), std::vector<std::string>{"0000:01:00.0"});
    EXPECT_TRUE(devices.remove("0000:01:00.0"));
    EXPECT_FALSE(devices.remove("0000:01:00.0"));
    EXPECT_FALSE(devices.read_file("0000:01:00.0", 100));
  }
}

TEST(StateDir, ATemporaryFilePlantedAsASymlinkIsReplacedNeverWrittenThrough) {
  TempDir dir;
  write_file_durable(dir.path() / "victim", "precious\n");
  const StateDir state = StateDir::create(dir.path() / "vfiokit", 0755);
  fs::create_symlink(dir.path() / "victim", dir.path() / "vfiokit/entry.tmp");
  state.write_file_durable("entry", "new\n", 0644);
  EXPECT_EQ(read_file(dir.path() / "victim"), "precious\n");
  EXPECT_EQ(read_file(dir.path() / "vfiokit/entry"), "new\n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir.path() / "vfiokit/entry.tmp")));
  // The path-based write does the same.
  fs::create_symlink(dir.path() / "victim", dir.path() / "rules.tmp");
  write_file_durable(dir.path() / "rules", "rule\n");
  EXPECT_EQ(read_file(dir.path() / "victim"), "precious\n");
  EXPECT_EQ(read_file(dir.path() / "rules"), "rule\n");
}

TEST(StateDir, ASymlinkedOrOpenToAllFolderOrFileIsRefusedAndLeftAlone) {
  TempDir dir;
  fs::create_directories(dir.path() / "elsewhere");
  fs::create_directory_symlink(dir.path() / "elsewhere", dir.path() / "vfiokit");
  try {
    StateDir::create(dir.path() / "vfiokit", 0755);
    FAIL() << "a symlinked state folder was used";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a symbolic link"), std::string::npos) << e.what();
    EXPECT_EQ(e.context_value("path"), (dir.path() / "vfiokit").string());
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_THROW(StateDir::open(dir.path() / "vfiokit"), Error);

  fs::create_directories(dir.path() / "open");
  fs::permissions(dir.path() / "open", fs::perms::all);
  try {
    StateDir::create(dir.path() / "open", 0755);
    FAIL() << "a folder anyone may write was used";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("writable by group or others (mode 0777)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(mode_of(dir.path() / "open"), 0777u);  // refused, not quietly changed

  const StateDir state = StateDir::create(dir.path() / "state", 0755);
  write_file_durable(dir.path() / "victim", "precious\n");
  fs::create_symlink(dir.path() / "victim", dir.path() / "state/entry");
  EXPECT_THROW(state.read_file("entry", 100), Error);
  EXPECT_THROW(state.open_file("entry", 0600), Error);
  fs::remove(dir.path() / "state/entry");
  write_file_durable(dir.path() / "state/big", std::string(101, 'x'));
  EXPECT_THROW(state.read_file("big", 100), Error);
  ::mkfifo((dir.path() / "state/fifo").c_str(), 0600);
  EXPECT_THROW(state.read_file("fifo", 100), Error);  // refused, without blocking on it
  EXPECT_THROW(state.open_file("fifo", 0600), Error);
}

}  // namespace
}  // namespace vfiokit
