// The options bind, unbind, restore, persist and launch share.
#include "tools/vfiokit/binding_report.h"

#include <gtest/gtest.h>

namespace vfiokit::cli {
namespace {

TEST(WaitOption, TakesSecondsFromZeroToADayAndNothingElse) {
  EXPECT_EQ(parse_wait_seconds("0"), 0.0);
  EXPECT_EQ(parse_wait_seconds("2.5"), 2.5);
  EXPECT_EQ(parse_wait_seconds("86400"), 86400.0);
  for (const char* bad : {"", "nan", "NaN", "inf", "-inf", "infinity", "1e300", "-1", "-0.001",
                          "86400.5", "10s", " 1", "1 ", "0x10", "1e"}) {
    EXPECT_FALSE(parse_wait_seconds(bad)) << bad;
  }
  EXPECT_EQ(wait_duration(86400), std::chrono::milliseconds(86400000));
}

TEST(WaitOption, ABadValueIsAParseErrorBeforeTheCommandRuns) {
  for (const char* bad : {"nan", "1e300", "-1"}) {
    CLI::App app;
    double seconds = 30;
    add_wait_option(&app, seconds);
    const char* argv[] = {"vfiokit", "--wait", bad};
    EXPECT_THROW(app.parse(3, argv), CLI::ValidationError) << bad;
  }
  CLI::App app;
  double seconds = 30;
  add_wait_option(&app, seconds);
  const char* argv[] = {"vfiokit", "--wait", "0.25"};
  app.parse(3, argv);
  EXPECT_EQ(seconds, 0.25);
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
