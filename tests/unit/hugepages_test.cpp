#include "vfiokit/vmm/hugepages.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::vmm {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr std::uint64_t k2M = std::uint64_t{2} << 20;
constexpr std::uint64_t k1G = std::uint64_t{1} << 30;

Error error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

void write_pool(const fs::path& root, std::string_view folder, std::uint64_t total,
                std::uint64_t free, std::uint64_t reserved, std::uint64_t surplus) {
  const fs::path dir = root / "sys/kernel/mm/hugepages" / folder;
  fs::create_directories(dir);
  write_file_durable(dir / "nr_hugepages", std::to_string(total) + "\n");
  write_file_durable(dir / "free_hugepages", std::to_string(free) + "\n");
  write_file_durable(dir / "resv_hugepages", std::to_string(reserved) + "\n");
  write_file_durable(dir / "surplus_hugepages", std::to_string(surplus) + "\n");
}

TEST(HugepageSize, AcceptsANumberWithABinaryUnit) {
  EXPECT_EQ(parse_hugepage_size("2M"), k2M);
  EXPECT_EQ(parse_hugepage_size("2m"), k2M);
  EXPECT_EQ(parse_hugepage_size("2MB"), k2M);
  EXPECT_EQ(parse_hugepage_size("2MiB"), k2M);
  EXPECT_EQ(parse_hugepage_size("2048k"), k2M);
  EXPECT_EQ(parse_hugepage_size("2048kB"), k2M);  // the kernel's own spelling
  EXPECT_EQ(parse_hugepage_size("1G"), k1G);
  EXPECT_EQ(parse_hugepage_size("1g"), k1G);
  EXPECT_EQ(parse_hugepage_size("1048576K"), k1G);
  EXPECT_EQ(parse_hugepage_size("4K"), 4096u);
}

TEST(HugepageSize, RefusesAnythingElseSayingWhatIsAccepted) {
  for (const char* text : {"",
                           "2",
                           "2048",
                           "M",
                           "2T",
                           "2Mb",
                           "2MBB",
                           "2 M",
                           " 2M",
                           "2M ",
                           "+2M",
                           "-2M",
                           "02M",
                           "0M",
                           "3M",
                           "1.5G",
                           "2k",
                           "99999999999999999999G",
                           "17179869184G",
                           "0x2M"}) {
    const Error e = error_of([&] { parse_hugepage_size(text); });
    EXPECT_EQ(e.kind(), ErrorKind::usage) << text;
    EXPECT_EQ(e.operation(), "parse hugepage size") << text;
    EXPECT_THAT(e.hint(), HasSubstr("2M or 1G")) << text;
  }
  EXPECT_THAT(error_of([] { parse_hugepage_size("2048"); }).message(), HasSubstr("has no unit"));
  EXPECT_THAT(error_of([] { parse_hugepage_size("3M"); }).message(),
              HasSubstr("not a power of two"));
  EXPECT_THAT(error_of([] { parse_hugepage_size("2k"); }).message(), HasSubstr("4 KiB"));
}

TEST(HugepageSize, FormatsTheShortestFormTheParserReadsBack) {
  EXPECT_EQ(format_hugepage_size(k2M), "2M");
  EXPECT_EQ(format_hugepage_size(k1G), "1G");
  EXPECT_EQ(format_hugepage_size(64 * 1024), "64K");
  for (const std::uint64_t size : {k2M, k1G, std::uint64_t{64} << 10, std::uint64_t{16} << 30}) {
    EXPECT_EQ(parse_hugepage_size(format_hugepage_size(size)), size);
  }
}

TEST(HugepagePools, FolderNamesAreTheKernels) {
  EXPECT_EQ(parse_pool_folder_name("hugepages-2048kB"), k2M);
  EXPECT_EQ(parse_pool_folder_name("hugepages-1048576kB"), k1G);
  EXPECT_EQ(parse_pool_folder_name("hugepages-kB"), std::nullopt);
  EXPECT_EQ(parse_pool_folder_name("hugepages-2048"), std::nullopt);
  EXPECT_EQ(parse_pool_folder_name("hugepages-02048kB"), std::nullopt);
  EXPECT_EQ(parse_pool_folder_name("hugepages-0kB"), std::nullopt);
  EXPECT_EQ(parse_pool_folder_name("other"), std::nullopt);
}

TEST(HugepagePools, ReadsEveryPoolSmallestFirst) {
  const test::TempDir root;
  write_pool(root.path(), "hugepages-1048576kB", 4, 3, 1, 0);
  write_pool(root.path(), "hugepages-2048kB", 512, 500, 20, 2);
  fs::create_directories(root.path() / "sys/kernel/mm/hugepages/not-a-pool");
  const auto pools = read_hugepage_pools(HostPaths::under(root.path()));
  ASSERT_EQ(pools.size(), 2u);
  EXPECT_EQ(pools[0], (HugepagePool{k2M, 512, 500, 20, 2}));
  EXPECT_EQ(pools[1], (HugepagePool{k1G, 4, 3, 1, 0}));
  EXPECT_EQ(pools[0].available(), 480u);
  EXPECT_EQ(pools[1].available(), 2u);
}

TEST(HugepagePools, NoHugetlbfsIsNoPoolsAndABrokenFileIsAnError) {
  const test::TempDir root;
  EXPECT_TRUE(read_hugepage_pools(HostPaths::under(root.path())).empty());
  write_pool(root.path(), "hugepages-2048kB", 1, 1, 0, 0);
  write_file_durable(root.path() / "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
                     "lots\n");
  EXPECT_THAT(error_of([&] { read_hugepage_pools(HostPaths::under(root.path())); }).message(),
              HasSubstr("not a page count"));
}

TEST(HugepageCheck, EnoughAvailablePagesPass) {
  const std::vector<HugepagePool> pools = {{k2M, 1024, 1024, 0, 0}, {k1G, 8, 8, 0, 0}};
  EXPECT_EQ(check_hugepages(pools, k2M, k1G * 2).page_bytes, k2M);  // exactly 1024 pages
  EXPECT_EQ(check_hugepages(pools, k1G, k1G * 8).page_bytes, k1G);
}

TEST(HugepageCheck, GuestMemoryMustBeWholePages) {
  const std::vector<HugepagePool> pools = {{k1G, 8, 8, 0, 0}};
  const Error e = error_of([&] { check_hugepages(pools, k1G, (std::uint64_t{1536}) << 20); });
  EXPECT_EQ(e.kind(), ErrorKind::usage);
  EXPECT_THAT(e.message(), HasSubstr("1536 MiB is not a whole number of 1G pages"));
  EXPECT_THAT(e.hint(), HasSubstr("multiple of 1 GiB"));
  EXPECT_EQ(error_of([&] { check_hugepages(pools, k1G, 0); }).kind(), ErrorKind::usage);
}

TEST(HugepageCheck, ASizeTheHostLacksListsTheSizesItHas) {
  const Error e = error_of([] { check_hugepages({{k2M, 0, 0, 0, 0}}, k1G, k1G); });
  EXPECT_EQ(e.kind(), ErrorKind::usage);
  EXPECT_THAT(e.message(), HasSubstr("no 1G hugepages; it has 2M"));
  EXPECT_THAT(e.hint(), HasSubstr("--hugepages 2M"));
  const Error none = error_of([] { check_hugepages({}, k2M, k1G); });
  EXPECT_EQ(none.kind(), ErrorKind::usage);
  EXPECT_THAT(none.message(), HasSubstr("no hugepages"));
  EXPECT_THAT(none.hint(), HasSubstr("CONFIG_HUGETLBFS"));
}

TEST(HugepageCheck, TooFewFree2MPagesAreRefusedWithThePoolSizeToSet) {
  // 1 GiB guest = 512 pages; 300 free of which 100 reserved: 200 available, 312 short.
  const std::vector<HugepagePool> pools = {{k2M, 400, 300, 100, 0}};
  const Error e = error_of([&] { check_hugepages(pools, k2M, k1G); });
  EXPECT_EQ(e.kind(), ErrorKind::refused);
  EXPECT_EQ(e.operation(), "check hugepages");
  EXPECT_THAT(e.message(), HasSubstr("needs 512 2M pages but only 200 are free"));
  EXPECT_EQ(e.context_value("needed"), "512");
  EXPECT_EQ(e.context_value("free"), "300");
  EXPECT_EQ(e.context_value("reserved"), "100");
  EXPECT_THAT(e.hint(),
              HasSubstr("echo 712 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"));
  EXPECT_THAT(e.hint(), HasSubstr("sysctl vm.nr_hugepages=712"));
}

TEST(HugepageCheck, TooFew1GPagesPointAtTheBootOptions) {
  const std::vector<HugepagePool> pools = {{k2M, 0, 0, 0, 0}, {k1G, 2, 2, 0, 0}};
  const Error e = error_of([&] { check_hugepages(pools, k1G, k1G * 6); });
  EXPECT_EQ(e.kind(), ErrorKind::refused);
  EXPECT_THAT(e.hint(), HasSubstr("hugepagesz=1G hugepages=6"));
  EXPECT_THAT(e.hint(), HasSubstr("reboot"));
  EXPECT_THAT(e.hint(), ::testing::Not(HasSubstr("sysctl")));
}

TEST(HugepageCheck, RequireReadsTheHostsPools) {
  const test::TempDir root;
  write_pool(root.path(), "hugepages-2048kB", 8, 8, 0, 0);
  const HostPaths paths = HostPaths::under(root.path());
  EXPECT_EQ(require_hugepages(paths, k2M, 8 * k2M).total, 8u);
  EXPECT_EQ(error_of([&] { require_hugepages(paths, k2M, 9 * k2M); }).kind(), ErrorKind::refused);
}

}  // namespace
}  // namespace vfiokit::vmm
