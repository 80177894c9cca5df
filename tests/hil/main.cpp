// The hil test runner. Inside the rig a skipped test, or a filter that selects nothing, is a
// failure: a rig test that does not run proves nothing.
#include <gtest/gtest.h>

#include <iostream>

#include "tests/hil/rig_support.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  if (!vfiokit::hil::in_rig()) return status;
  // Every retry is shown, with its cause, in the summary tools/test prints.
  const auto& retries = vfiokit::hil::rig_retries();
  std::cerr << "hil: " << retries.size() << " retr" << (retries.size() == 1 ? "y" : "ies")
            << " after hangs of the emulated rig\n";
  for (const auto& retry : retries) std::cerr << "hil:   " << retry << '\n';
  const testing::UnitTest& tests = *testing::UnitTest::GetInstance();
  if (tests.test_to_run_count() == 0) {
    std::cerr << "hil: the filter selected no tests\n";
    return 1;
  }
  if (tests.skipped_test_count() > 0) {
    std::cerr << "hil: " << tests.skipped_test_count()
              << " test(s) skipped inside the rig; rig tests must run here\n";
    return 1;
  }
  return status;
}
