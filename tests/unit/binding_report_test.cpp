// The options bind, unbind, restore, persist and launch share.
#include "tools/vfiokit/binding_report.h"

#include <gtest/gtest.h>

#include "tools/vfiokit/options.h"

namespace vfiokit::cli {
namespace {

TEST(WaitOption, TakesSecondsFromZeroToADayAndNothingElse) {
  using std::chrono::milliseconds;
  EXPECT_EQ(parse_seconds("0", 0, kMaxWaitSeconds), milliseconds(0));
  EXPECT_EQ(parse_seconds("2.5", 0, kMaxWaitSeconds), milliseconds(2500));
  EXPECT_EQ(parse_seconds("86400", 0, kMaxWaitSeconds), milliseconds(86400000));
  for (const char* bad : {"", "nan", "NaN", "inf", "-inf", "infinity", "1e300", "-1", "-0.001",
                          "86400.5", "10s", " 1", "1 ", "0x10", "1e"}) {
    EXPECT_FALSE(parse_seconds(bad, 0, kMaxWaitSeconds)) << bad;
  }
}

TEST(WaitOption, ABadValueIsAParseErrorBeforeTheCommandRuns) {
  for (const char* bad : {"nan", "1e300", "-1"}) {
    CLI::App app;
    std::chrono::milliseconds wait{30000};
    add_wait_option(&app, wait);
    const char* argv[] = {"vfiokit", "--wait", bad};
    EXPECT_THROW(app.parse(3, argv), CLI::ValidationError) << bad;
  }
  CLI::App app;
  std::chrono::milliseconds wait{30000};
  add_wait_option(&app, wait);
  const char* argv[] = {"vfiokit", "--wait", "0.25"};
  app.parse(3, argv);
  EXPECT_EQ(wait, std::chrono::milliseconds(250));
}

TEST(ForceOptions, OneFlagPerOverridableCheck) {
  CLI::App app;
  bind::ForceFlags force;
  add_force_options(&app, force, {bind::Check::net, bind::Check::sriov, bind::Check::iommu});
  const char* argv[] = {"vfiokit", "--force-net", "--force-sriov"};
  app.parse(3, argv);
  EXPECT_TRUE(force.net);
  EXPECT_TRUE(force.sriov);
  EXPECT_FALSE(force.block);
  EXPECT_EQ(app.get_option_no_throw("--force-block"), nullptr);
  EXPECT_EQ(app.get_option_no_throw("--force-iommu"), nullptr);
}

}  // namespace
}  // namespace vfiokit::cli
