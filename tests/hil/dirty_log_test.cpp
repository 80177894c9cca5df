// launch --dirty-log on the rig's real kernel: the dirty-pages payload writes a known set of
// pages with its vCPU and has edu write another by DMA; the vCPU's log, through KVM's dirty ring
// and through its bitmap, shows exactly the first set in its window and nothing of the second,
// and type1's log for the device shows what type1 promises: every page pinned for DMA.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "tests/hil/rig_support.h"
#include "vfiokit/payloads/mailbox.h"

namespace vfiokit::hil {
namespace {

using LaunchDirty = RigDeviceTest;

constexpr std::uint64_t kPage = 4096;
constexpr std::uint64_t kGuestRam = 16u << 20;  // launch's default --memory

std::set<std::uint64_t> pages_of(const cli::Json& runs) {
  std::set<std::uint64_t> pages;
  for (const auto& run : runs) {
    const std::uint64_t first = run["address"].get<std::uint64_t>() / kPage;
    for (std::uint64_t i = 0; i < run["pages"].get<std::uint64_t>(); ++i) pages.insert(first + i);
  }
  return pages;
}

// The pages of a window that a mask names.
std::set<std::uint64_t> window_pages(std::uint64_t window, std::uint32_t mask) {
  std::set<std::uint64_t> pages;
  for (std::uint32_t i = 0; i < VFIOKIT_DIRTY_WINDOW_PAGES; ++i) {
    if (mask & (1u << i)) pages.insert(window / kPage + i);
  }
  return pages;
}

std::set<std::uint64_t> in_window(const std::set<std::uint64_t>& pages, std::uint64_t window) {
  std::set<std::uint64_t> inside;
  for (const auto page : pages) {
    if (page >= window / kPage && page < window / kPage + VFIOKIT_DIRTY_WINDOW_PAGES) {
      inside.insert(page);
    }
  }
  return inside;
}

void expect_known_pages(const std::string& edu, const std::string& mechanism,
                        const std::string& expected_text) {
  const auto run =
      vfiokit({"launch", edu, "--payload", "dirty-pages", "--dirty-log", "--dirty-mechanism",
               mechanism, "--interval", "0.1", "--json", "--timeout", "15"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  const auto document = conforming_json(run, "launch.json");
  const auto& log = document["dirty_log"];
  ASSERT_TRUE(log.is_object()) << document.dump(2);
  const std::string used = log["vcpu"]["mechanism"];
  EXPECT_NE(used.find(expected_text), std::string::npos) << used;

  const auto vcpu = pages_of(log["vcpu"]["runs"]);
  EXPECT_EQ(log["vcpu"]["pages"].get<std::size_t>(), vcpu.size());
  EXPECT_EQ(in_window(vcpu, VFIOKIT_DIRTY_CPU_WINDOW),
            window_pages(VFIOKIT_DIRTY_CPU_WINDOW, VFIOKIT_DIRTY_CPU_PAGES));
  // The vCPU only read the pages edu wrote: none of them is the vCPU's.
  EXPECT_TRUE(in_window(vcpu, VFIOKIT_DIRTY_DEVICE_WINDOW).empty());

  // type1 reports every pinned page, which is all of guest RAM, including edu's pages.
  ASSERT_TRUE(log["device"].contains("runs")) << log["device"].dump();
  const auto device = pages_of(log["device"]["runs"]);
  EXPECT_EQ(device.size(), kGuestRam / kPage);
  ASSERT_EQ(log["device"]["runs"].size(), 1u);
  EXPECT_EQ(log["device"]["runs"][0]["address"], 0);
  for (const auto page : window_pages(VFIOKIT_DIRTY_DEVICE_WINDOW, VFIOKIT_DIRTY_DEVICE_PAGES)) {
    EXPECT_TRUE(device.count(page)) << page;
  }
  // Every interval's pages add up to no more than the run's (each page counted in the
  // interval that saw it written), and the last one came after the guest stopped.
  ASSERT_FALSE(log["intervals"].empty());
  std::uint64_t sum = 0;
  for (const auto& interval : log["intervals"]) sum += interval["vcpu_pages"].get<std::uint64_t>();
  EXPECT_GE(sum, vcpu.size());
}

TEST_F(LaunchDirty, TheRingShowsExactlyThePagesTheVcpuWrote) {
  expect_known_pages(edu_, "ring", "ring");
}

TEST_F(LaunchDirty, TheBitmapShowsTheSamePages) { expect_known_pages(edu_, "bitmap", "bitmap"); }

TEST_F(LaunchDirty, ReportsEachIntervalAsTheGuestRuns) {
  const auto run = vfiokit({"launch", edu_, "--payload", "dirty-pages", "--dirty-log", "--interval",
                            "0.05", "--timeout", "15"});
  ASSERT_EQ(run.exit_status, 0) << run.output;
  EXPECT_NE(run.output.find("dirty pages at 0."), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("dirty pages:\n  vCPU: "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("device: VFIO type1"), std::string::npos) << run.output;
  // The six pages of the CPU window in their runs: 0x800000-0x801fff, 0x803000, 0x807000-...
  EXPECT_NE(run.output.find("0x800000-0x801fff, 0x803000, 0x807000-0x808fff, 0x80f000"),
            std::string::npos)
      << run.output;
}

}  // namespace
}  // namespace vfiokit::hil
