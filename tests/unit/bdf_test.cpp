#include "vfiokit/pci/bdf.h"

#include <gtest/gtest.h>

#include "vfiokit/base/error.h"

namespace vfiokit::pci {
namespace {

TEST(Bdf, ParsesFullAndShortForms) {
  EXPECT_EQ(parse_bdf("0000:00:03.0"), (Bdf{0, 0, 3, 0}));
  EXPECT_EQ(parse_bdf("0000:af:1f.7"), (Bdf{0, 0xaf, 0x1f, 7}));
  EXPECT_EQ(parse_bdf("0000:AF:1F.7"), (Bdf{0, 0xaf, 0x1f, 7}));
  EXPECT_EQ(parse_bdf("01:00.1"), (Bdf{0, 1, 0, 1}));
  EXPECT_EQ(parse_bdf("10000:e1:00.0"), (Bdf{0x10000, 0xe1, 0, 0}));  // VMD domain
}

TEST(Bdf, RoundTripsEveryDeviceAndFunctionOnABus) {
  for (unsigned device = 0; device < 32; ++device) {
    for (unsigned function = 0; function < 8; ++function) {
      const Bdf bdf{0x1, 0x42, static_cast<std::uint8_t>(device),
                    static_cast<std::uint8_t>(function)};
      EXPECT_EQ(parse_bdf(bdf.to_string()), bdf) << bdf.to_string();
    }
  }
  EXPECT_EQ((Bdf{0, 1, 2, 3}).to_string(), "0000:01:02.3");
  EXPECT_EQ((Bdf{0x10000, 0xe1, 0, 0}).to_string(), "10000:e1:00.0");
}

TEST(Bdf, RejectsMalformedText) {
  for (const char* bad : {"",
                          ".",
                          "::.",
                          "0000:00:03",
                          "0000:00:03.",
                          "0000:00:03.8",
                          "0000:00:20.0",
                          "0000:100:00.0",
                          "0000::03.0",
                          ":00:03.0",
                          "0000:00:03.0 ",
                          " 0000:00:03.0",
                          "0000:00:03.0x",
                          "0000-00-03.0",
                          "g000:00:03.0",
                          "000000000:00:03.0",
                          "0000:00:+3.0",
                          "0000:00:03.-1",
                          "0x00:00:03.0",
                          "0000:00:03:0",
                          "nvme0",
                          "1:2:3:4.5"}) {
    EXPECT_FALSE(parse_bdf(bad)) << '"' << bad << '"';
  }
}

TEST(Bdf, MalformedTextIsAUsageErrorThatShowsTheForm) {
  try {
    parse_bdf_or_throw("01:00");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::usage);
    EXPECT_NE(std::string(e.what()).find("'01:00'"), std::string::npos);
    EXPECT_NE(e.hint().find("0000:01:00.0"), std::string::npos);
  }
}

TEST(Bdf, OrdersByDomainBusDeviceFunction) {
  EXPECT_LT((Bdf{0, 0, 3, 0}), (Bdf{0, 0, 3, 1}));
  EXPECT_LT((Bdf{0, 0, 31, 7}), (Bdf{0, 1, 0, 0}));
  EXPECT_LT((Bdf{0, 0xff, 0, 0}), (Bdf{1, 0, 0, 0}));
}

}  // namespace
}  // namespace vfiokit::pci
