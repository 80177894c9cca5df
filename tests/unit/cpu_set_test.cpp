#include "vfiokit/vmm/cpu_set.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "tests/unit/fixtures.h"
#include "vfiokit/base/error.h"
#include "vfiokit/base/fs.h"

namespace vfiokit::vmm {
namespace {

using ::testing::HasSubstr;

Error error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no Error thrown";
  return Error("none", "none");
}

TEST(CpuList, ParsesTheKernelsSyntax) {
  EXPECT_EQ(parse_cpu_list("0"), (CpuList{0}));
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11"), (CpuList{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("5-5"), (CpuList{5}));
  EXPECT_EQ(parse_cpu_list("8191"), (CpuList{8191}));
}

TEST(CpuList, IsStrict) {
  for (const char* text :
       {"",  ",",  "0,", ",0", "1,,2", "3,1", "1-3,2", "1-3,3",  "3-1",   "a",   "-1",         "1-",
        "-", "01", " 1", "1 ", "1, 2", "+1",  "8192",  "0-8192", "1-2-3", "0x1", "99999999999"}) {
    const Error e = error_of([&] { parse_cpu_list(text, "--pin"); });
    EXPECT_EQ(e.kind(), ErrorKind::usage) << text;
    EXPECT_EQ(e.operation(), "parse CPU list") << text;
    EXPECT_EQ(e.context_value("list"), text);
    EXPECT_THAT(e.message(), HasSubstr("--pin '")) << text;
  }
  EXPECT_THAT(error_of([] { parse_cpu_list("1-3,2"); }).message(),
              HasSubstr("'2' is not above CPU 3"));
  EXPECT_THAT(error_of([] { parse_cpu_list("3-1"); }).message(), HasSubstr("runs backwards"));
  EXPECT_THAT(error_of([] { parse_cpu_list("9000"); }).message(), HasSubstr("above 8191"));
  EXPECT_THAT(error_of([] { parse_cpu_list("1,,2"); }).message(), HasSubstr("empty item"));
}

TEST(CpuList, FormatsRangesAndReadsBack) {
  EXPECT_EQ(format_cpu_list({}), "");
  EXPECT_EQ(format_cpu_list({4}), "4");
  EXPECT_EQ(format_cpu_list({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(format_cpu_list({11, 10, 3, 3, 0, 1, 2}), "0-3,10-11");
  for (const char* text : {"0", "0-3,8,10-11", "1,3,5", "0-8191"}) {
    EXPECT_EQ(format_cpu_list(parse_cpu_list(text)), text);
  }
}

TEST(CpuList, OnlineCpusComeFromSysfs) {
  const test::TempDir root;
  const HostPaths paths = HostPaths::under(root.path());
  EXPECT_EQ(error_of([&] { online_cpus(paths); }).operation(), "read online CPUs");
  std::filesystem::create_directories(paths.sys / "devices/system/cpu");
  write_file_durable(paths.sys / "devices/system/cpu/online", "0-5,7\n");
  EXPECT_EQ(online_cpus(paths), (CpuList{0, 1, 2, 3, 4, 5, 7}));
  write_file_durable(paths.sys / "devices/system/cpu/online", "junk\n");
  EXPECT_EQ(error_of([&] { online_cpus(paths); }).kind(), ErrorKind::failed);
}

TEST(CpuPinning, OneOnlineCpuPerVcpu) {
  const CpuList online = {0, 1, 2, 3, 4, 5, 7};
  EXPECT_NO_THROW(check_cpu_pinning(4, {2, 3, 4, 5}, {0, 1}, online));
  EXPECT_NO_THROW(check_cpu_pinning(2, {4, 5}, {}, online));
  EXPECT_NO_THROW(check_cpu_pinning(2, {4, 5}, {4, 5, 7}, online));  // overlap is allowed

  const Error count = error_of([&] { check_cpu_pinning(4, {2, 3}, {}, online); });
  EXPECT_EQ(count.kind(), ErrorKind::usage);
  EXPECT_EQ(count.operation(), "check CPU pinning");
  EXPECT_THAT(count.message(), HasSubstr("--pin names 2 CPUs for 4 vCPUs"));
  EXPECT_THAT(count.hint(), HasSubstr("0-5,7"));

  const Error offline = error_of([&] { check_cpu_pinning(2, {5, 6}, {}, online); });
  EXPECT_EQ(offline.kind(), ErrorKind::usage);
  EXPECT_THAT(offline.message(), HasSubstr("--pin names CPU 6, which is not online (online: "
                                           "0-5,7)"));
  EXPECT_EQ(offline.context_value("cpu"), "6");
  EXPECT_EQ(offline.context_value("pin"), "5-6");

  const Error emulator = error_of([&] { check_cpu_pinning(2, {4, 5}, {0, 8}, online); });
  EXPECT_THAT(emulator.message(), HasSubstr("--emulator-pin names CPU 8"));
  EXPECT_EQ(emulator.context_value("emulator-pin"), "0,8");
}

}  // namespace
}  // namespace vfiokit::vmm
