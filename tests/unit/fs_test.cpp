#include "base/fs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "base/error.h"
#include "base/process.h"

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
