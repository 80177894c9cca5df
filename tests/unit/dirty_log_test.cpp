// launch --dirty-log's pure parts: pages merged over a run, runs of pages, the device's IOVAs
// as guest pages, and what people read.
#include <gtest/gtest.h>

#include "vfiokit/vmm/dirty_log.h"

namespace vfiokit::vmm {
namespace {

using Pages = std::vector<std::uint64_t>;

TEST(DirtyLog, PageRunsJoinConsecutivePagesOnly) {
  EXPECT_TRUE(page_runs(Pages{}).empty());
  EXPECT_EQ(page_runs(Pages{5}), (std::vector<PageRun>{{5, 1}}));
  EXPECT_EQ(page_runs(Pages{0, 1, 2, 4, 7, 8}), (std::vector<PageRun>{{0, 3}, {4, 1}, {7, 2}}));
  EXPECT_EQ(page_runs(Pages{~std::uint64_t{0} - 1, ~std::uint64_t{0}}),
            (std::vector<PageRun>{{~std::uint64_t{0} - 1, 2}}));
}

TEST(DirtyLog, MergeKeepsEveryPageOnceInOrder) {
  Pages run{1, 5, 9};
  merge_pages(run, Pages{0, 5, 10});
  EXPECT_EQ(run, (Pages{0, 1, 5, 9, 10}));
  merge_pages(run, Pages{});
  EXPECT_EQ(run, (Pages{0, 1, 5, 9, 10}));
  Pages empty;
  merge_pages(empty, Pages{3});
  EXPECT_EQ(empty, Pages{3});
}

TEST(DirtyLog, DeviceIovasBecomeGuestPages) {
  EXPECT_EQ(guest_pages_of(Pages{0x0, 0x3000}, 4096), (Pages{0, 3}));
  // A 2 MiB IOMMU page covers 512 guest pages; duplicates collapse.
  const Pages huge = guest_pages_of(Pages{0x200000, 0x200000}, 0x200000);
  ASSERT_EQ(huge.size(), 512u);
  EXPECT_EQ(huge.front(), 0x200u);
  EXPECT_EQ(huge.back(), 0x3ffu);
  EXPECT_EQ(guest_pages_of(Pages{0x5000, 0x1000}, 4096), (Pages{1, 5}));
}

TEST(DirtyLog, DescribesMechanismsTotalsAndRuns) {
  DirtyLogResult log;
  log.vcpu_mechanism = "dirty ring";
  log.vcpu_pages = {0x800, 0x801, 0x803};
  log.device_mechanism = "VFIO type1";
  log.device_pages = Pages{0, 1, 2, 3};
  const auto lines = describe_dirty_log(log);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "vCPU: dirty ring");
  EXPECT_EQ(lines[1], "  3 pages written: 0x800000-0x801fff, 0x803000");
  EXPECT_EQ(lines[2], "device: VFIO type1");
  EXPECT_EQ(lines[3], "  4 pages reported: 0x0-0x3fff");
  log.device_pages.reset();
  log.device_missing = "no migration capability";
  log.vcpu_pages = {1, 3, 5, 7};
  const auto fewer = describe_dirty_log(log, 2);
  EXPECT_EQ(fewer[1], "  4 pages written: 0x1000, 0x3000, and 2 more runs");
  EXPECT_EQ(fewer[2], "device: not logged: no migration capability");
}

TEST(DirtyLog, DescribesAnInterval) {
  EXPECT_EQ(describe_interval({1.0, 12, 4096}), "1.00 s: vCPU 12 pages, device 4096 pages");
  EXPECT_EQ(describe_interval({0.25, 1, std::nullopt}), "0.25 s: vCPU 1 page");
}

}  // namespace
}  // namespace vfiokit::vmm
