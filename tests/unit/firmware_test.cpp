#include "vfiokit/vmm/firmware.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::vmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr std::uint64_t kCode4M = 3653632;  // Debian 12's ovmf, as installed
constexpr std::uint64_t kVars4M = 540672;
constexpr std::uint64_t kCode2M = 1966080;
constexpr std::uint64_t kVars2M = 131072;

// A host root with the ovmf files asked for; VARS templates start with a marker so copies can be
// told from the template's size alone.
class OvmfHost {
 public:
  void add(std::string_view name, std::uint64_t size, std::string_view marker = "") {
    const fs::path path = ovmf_folder() / name;
    fs::create_directories(path.parent_path());
    {
      std::ofstream out(path, std::ios::binary);
      out << marker;
    }
    fs::resize_file(path, size);
  }
  void add_4m() {
    add("OVMF_CODE_4M.fd", kCode4M);
    add("OVMF_VARS_4M.fd", kVars4M, "vars-4M");
  }
  void add_2m() {
    add("OVMF_CODE.fd", kCode2M);
    add("OVMF_VARS.fd", kVars2M, "vars-2M");
  }
  [[nodiscard]] fs::path ovmf_folder() const { return dir_.path() / "usr/share/OVMF"; }
  [[nodiscard]] HostPaths paths() const { return HostPaths::under(dir_.path()); }
  [[nodiscard]] fs::path guest_folder(std::string_view name) const {
    return dir_.path() / "var/lib/vfiokit/guests" / name;
  }

 private:
  test::TempDir dir_;
};

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

Error error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

TEST(OvmfPair, AMatchingPairFillsItsFlashExactly) {
  const OvmfLayout& four = ovmf_layouts().at(0);
  const OvmfLayout& two = ovmf_layouts().at(1);
  EXPECT_EQ(four.name, "4M");
  EXPECT_EQ(two.name, "2M");
  EXPECT_EQ(ovmf_pair_problem(four, kCode4M, kVars4M), std::nullopt);
  EXPECT_EQ(ovmf_pair_problem(two, kCode2M, kVars2M), std::nullopt);
  // Crossed pairs: the code of one layout with the other's store.
  EXPECT_THAT(ovmf_pair_problem(four, kCode4M, kVars2M).value_or(""),
              HasSubstr("not a matching pair"));
  EXPECT_THAT(ovmf_pair_problem(two, kCode2M, kVars4M).value_or(""),
              HasSubstr("not a matching pair"));
  EXPECT_THAT(ovmf_pair_problem(four, 0, std::uint64_t{4} << 20).value_or(""),
              HasSubstr("not a matching pair"));
  EXPECT_EQ(ovmf_pair_problem(four, kCode4M, std::nullopt),
            "OVMF_CODE_4M.fd is there but OVMF_VARS_4M.fd is missing");
  EXPECT_EQ(ovmf_pair_problem(four, std::nullopt, kVars4M),
            "OVMF_VARS_4M.fd is there but OVMF_CODE_4M.fd is missing");
}

TEST(FindOvmf, PrefersThe4MPairWhenBothAreInstalled) {
  OvmfHost host;
  host.add_2m();
  host.add_4m();
  const OvmfLookup lookup = find_ovmf(host.paths());
  ASSERT_TRUE(lookup.firmware);
  EXPECT_EQ(lookup.firmware->layout, "4M");
  EXPECT_EQ(lookup.firmware->code, host.ovmf_folder() / "OVMF_CODE_4M.fd");
  EXPECT_EQ(lookup.firmware->vars_template, host.ovmf_folder() / "OVMF_VARS_4M.fd");
  EXPECT_EQ(lookup.firmware->vars_bytes, kVars4M);
  EXPECT_TRUE(lookup.problems.empty());
}

TEST(FindOvmf, FallsBackTo2MAndSaysWhatIsWrongWithThe4MPair) {
  OvmfHost host;
  host.add_2m();
  host.add("OVMF_CODE_4M.fd", kCode4M);
  const OvmfLookup lookup = find_ovmf(host.paths());
  ASSERT_TRUE(lookup.firmware);
  EXPECT_EQ(lookup.firmware->layout, "2M");
  EXPECT_EQ(lookup.firmware->code, host.ovmf_folder() / "OVMF_CODE.fd");
  EXPECT_THAT(lookup.problems, ::testing::ElementsAre(HasSubstr("OVMF_VARS_4M.fd is missing")));
}

TEST(FindOvmf, FollowsTheSymlinksAPackageMayUse) {
  OvmfHost host;
  host.add("OVMF_CODE_4M.secboot.fd", kCode4M);
  fs::create_symlink("OVMF_CODE_4M.secboot.fd", host.ovmf_folder() / "OVMF_CODE_4M.fd");
  host.add("OVMF_VARS_4M.fd", kVars4M);
  EXPECT_EQ(find_ovmf(host.paths()).firmware.value().layout, "4M");
}

TEST(RequireOvmf, NotInstalledIsAUsageErrorWithTheInstallCommand) {
  OvmfHost host;
  const Error e = error_of([&] { require_ovmf(host.paths()); });
  EXPECT_EQ(e.kind(), ErrorKind::usage);
  EXPECT_EQ(e.operation(), "find UEFI firmware");
  EXPECT_THAT(e.message(), HasSubstr("OVMF is not installed"));
  EXPECT_THAT(e.hint(), HasSubstr("apt-get install ovmf"));
}

TEST(RequireOvmf, ADamagedPairSaysWhichAndToReinstall) {
  OvmfHost host;
  host.add("OVMF_CODE_4M.fd", kCode4M);
  host.add("OVMF_VARS_4M.fd", kVars2M);
  const Error e = error_of([&] { require_ovmf(host.paths()); });
  EXPECT_EQ(e.kind(), ErrorKind::usage);
  EXPECT_THAT(e.message(), HasSubstr("not a matching pair"));
  EXPECT_THAT(e.hint(), HasSubstr("apt-get install --reinstall ovmf"));
  host.add_2m();
  EXPECT_EQ(require_ovmf(host.paths()).layout, "2M");
}

TEST(GuestName, LettersDigitsDashUnderscoreDotUpTo64) {
  const std::vector<std::string> good = {"win11", "gpu-guest_2.test", "A", std::string(64, 'x'),
                                         "..."};
  for (const std::string& name : good) EXPECT_NO_THROW(validate_guest_name(name)) << name;
  const std::vector<std::string> bad = {"",    ".",    "..",         "a/b", std::string(65, 'x'),
                                        "a b", "a\nb", "caf\xc3\xa9"};
  for (const std::string& name : bad) {
    const Error e = error_of([&] { validate_guest_name(name); });
    EXPECT_EQ(e.kind(), ErrorKind::usage) << name;
    EXPECT_EQ(e.operation(), "check guest name") << name;
  }
  EXPECT_THAT(error_of([] { validate_guest_name("a/b"); }).message(), HasSubstr("holds '/'"));
  EXPECT_THAT(error_of([] { validate_guest_name("a\nb"); }).message(),
              HasSubstr("holds the byte 0xa"));
  EXPECT_THAT(error_of([] { validate_guest_name(std::string(65, 'x')); }).message(),
              HasSubstr("65 characters"));
}

TEST(GuestVars, TheFirstRunCopiesTheTemplatePrivatelyLaterRunsKeepTheGuestsChanges) {
  OvmfHost host;
  host.add_4m();
  const OvmfFirmware firmware = require_ovmf(host.paths());
  const ::mode_t old_umask = ::umask(0);  // exact modes whatever the umask
  const GuestVars first = guest_vars(host.paths(), "win11", firmware);
  ::umask(old_umask);
  EXPECT_TRUE(first.created);
  EXPECT_EQ(first.path, host.guest_folder("win11") / "OVMF_VARS.fd");
  EXPECT_EQ(read_file(first.path), read_file(firmware.vars_template));
  EXPECT_EQ(mode_of(first.path), 0600u);
  EXPECT_EQ(mode_of(first.path.parent_path()), 0700u);
  EXPECT_EQ(mode_of(first.path.parent_path().parent_path()), 0700u);

  // The guest writes its settings; the next run must hand them back, not a fresh template.
  std::string changed = read_file(first.path);
  changed.replace(0, 7, "guest's");
  write_file_durable(first.path, changed, 0600);
  const GuestVars second = guest_vars(host.paths(), "win11", firmware);
  EXPECT_FALSE(second.created);
  EXPECT_EQ(second.path, first.path);
  EXPECT_EQ(read_file(second.path).substr(0, 7), "guest's");

  // Another guest has its own.
  EXPECT_TRUE(guest_vars(host.paths(), "linux", firmware).created);
}

TEST(GuestVars, AStoreMadeForTheOtherLayoutIsRefusedAndKept) {
  OvmfHost host;
  host.add_2m();
  const GuestVars old = guest_vars(host.paths(), "g", require_ovmf(host.paths()));
  host.add_4m();  // the package now has the 4M pair, which is preferred
  const OvmfFirmware firmware = require_ovmf(host.paths());
  ASSERT_EQ(firmware.layout, "4M");
  const Error e = error_of([&] { guest_vars(host.paths(), "g", firmware); });
  EXPECT_EQ(e.kind(), ErrorKind::refused);
  EXPECT_THAT(e.message(), HasSubstr("131072 bytes (the size of the 2M firmware's store)"));
  EXPECT_THAT(e.message(), HasSubstr("OVMF_VARS_4M.fd is 540672"));
  EXPECT_THAT(e.hint(), HasSubstr("remove " + old.path.string()));
  EXPECT_EQ(fs::file_size(old.path), kVars2M);
  EXPECT_EQ(read_file(old.path).substr(0, 7), "vars-2M");
}

TEST(GuestVars, ASymlinkOrAForeignlyWritableFolderIsRefusedAndNothingIsWrittenThrough) {
  OvmfHost host;
  host.add_4m();
  const OvmfFirmware firmware = require_ovmf(host.paths());
  guest_vars(host.paths(), "g", firmware);
  const fs::path vars = host.guest_folder("g") / "OVMF_VARS.fd";
  const fs::path victim = host.guest_folder("g").parent_path() / "victim";
  write_file_durable(victim, "precious", 0600);
  fs::remove(vars);
  fs::create_symlink(victim, vars);
  EXPECT_THAT(error_of([&] { guest_vars(host.paths(), "g", firmware); }).message(),
              HasSubstr("symbolic link"));
  EXPECT_EQ(read_file(victim), "precious");

  fs::permissions(host.guest_folder("g"), fs::perms(0777));
  EXPECT_THAT(error_of([&] { guest_vars(host.paths(), "g", firmware); }).message(),
              HasSubstr("writable by group or others"));
}

TEST(GuestVars, ABadNameCreatesNothing) {
  OvmfHost host;
  host.add_4m();
  const OvmfFirmware firmware = require_ovmf(host.paths());
  EXPECT_EQ(error_of([&] { guest_vars(host.paths(), "../escape", firmware); }).kind(),
            ErrorKind::usage);
  EXPECT_FALSE(fs::exists(host.paths().var_lib / "vfiokit"));
}

}  // namespace
}  // namespace vfiokit::vmm
