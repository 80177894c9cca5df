// The Prometheus text exposition format as scrapers and node_exporter's textfile collector read
// it: names and label names they accept, escaping, exact integers.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "vfiokit/base/error.h"
#include "vfiokit/base/prometheus.h"

namespace vfiokit {
namespace {

TEST(Prometheus, WritesHelpTypeAndOneLinePerSample) {
  const std::vector<MetricFamily> families{
      {"vfiokit_trapped_accesses_total",
       "Trapped accesses",
       MetricType::counter,
       {{{{"bar", "0"}, {"access", "read"}}, std::uint64_t{12}},
        {{{"bar", "0"}, {"access", "write"}}, std::uint64_t{3}}}},
      {"vfiokit_guest_elapsed_seconds", "Time", MetricType::gauge, {{{}, 1.5}}}};
  EXPECT_EQ(prometheus_text(families),
            "# HELP vfiokit_trapped_accesses_total Trapped accesses\n"
            "# TYPE vfiokit_trapped_accesses_total counter\n"
            "vfiokit_trapped_accesses_total{bar=\"0\",access=\"read\"} 12\n"
            "vfiokit_trapped_accesses_total{bar=\"0\",access=\"write\"} 3\n"
            "# HELP vfiokit_guest_elapsed_seconds Time\n"
            "# TYPE vfiokit_guest_elapsed_seconds gauge\n"
            "vfiokit_guest_elapsed_seconds 1.5\n");
}

TEST(Prometheus, KeepsSixtyFourBitCountersExact) {
  const std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
  const std::vector<MetricFamily> families{{"c_total", "h", MetricType::counter, {{{}, big}}}};
  EXPECT_NE(prometheus_text(families).find(" 18446744073709551615\n"), std::string::npos);
}

TEST(Prometheus, WritesSpecialFloatsAsTheFormatSpellsThem) {
  const std::vector<MetricFamily> families{{"g",
                                            "h",
                                            MetricType::gauge,
                                            {{{{"k", "nan"}}, std::nan("")},
                                             {{{"k", "inf"}}, INFINITY},
                                             {{{"k", "-inf"}}, -INFINITY},
                                             {{{"k", "third"}}, 1.0 / 3}}}};
  const std::string text = prometheus_text(families);
  EXPECT_NE(text.find("g{k=\"nan\"} NaN\n"), std::string::npos);
  EXPECT_NE(text.find("g{k=\"inf\"} +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("g{k=\"-inf\"} -Inf\n"), std::string::npos);
  // The fewest digits (here 16) that read back as exactly the same double.
  EXPECT_NE(text.find("g{k=\"third\"} 0.3333333333333333\n"), std::string::npos);
}

TEST(Prometheus, EscapesLabelValuesAndHelp) {
  const std::vector<MetricFamily> families{
      {"m", "a \\ b\nc \"q\"", MetricType::gauge, {{{{"v", "x\\y\n\"z\""}}, std::uint64_t{1}}}}};
  EXPECT_EQ(prometheus_text(families),
            "# HELP m a \\\\ b\\nc \"q\"\n"
            "# TYPE m gauge\n"
            "m{v=\"x\\\\y\\n\\\"z\\\"\"} 1\n");
}

TEST(Prometheus, RefusesWhatAScraperWouldReject) {
  auto text_of = [](MetricFamily family) {
    const std::vector<MetricFamily> families{std::move(family)};
    return prometheus_text(families);
  };
  EXPECT_THROW(text_of({"9lives", "h", MetricType::gauge, {}}), Error);
  EXPECT_THROW(text_of({"has-dash", "h", MetricType::gauge, {}}), Error);
  EXPECT_THROW(text_of({"", "h", MetricType::gauge, {}}), Error);
  EXPECT_THROW(text_of({"ok", "h", MetricType::gauge, {{{{"__reserved", "v"}}, 1.0}}}), Error);
  EXPECT_THROW(text_of({"ok", "h", MetricType::gauge, {{{{"a:b", "v"}}, 1.0}}}), Error);
  const std::vector<MetricFamily> twice{{"m", "h", MetricType::gauge, {}},
                                        {"m", "h", MetricType::gauge, {}}};
  EXPECT_THROW((void)prometheus_text(twice), Error);
}

TEST(Prometheus, NamesAndLabelNamesFollowTheFormat) {
  EXPECT_TRUE(valid_metric_name("a"));
  EXPECT_TRUE(valid_metric_name("_a:b_9"));
  EXPECT_TRUE(valid_metric_name(":recording"));
  EXPECT_FALSE(valid_metric_name("0a"));
  EXPECT_FALSE(valid_metric_name("a.b"));
  EXPECT_TRUE(valid_label_name("vcpu"));
  EXPECT_TRUE(valid_label_name("_x1"));
  EXPECT_FALSE(valid_label_name("1x"));
  EXPECT_FALSE(valid_label_name("__name__"));
  EXPECT_FALSE(valid_label_name(""));
}

TEST(Prometheus, MetricNameTurnsAnyTextIntoAValidName) {
  EXPECT_EQ(metric_name("halt_poll_success_ns"), "halt_poll_success_ns");
  EXPECT_EQ(metric_name("a-b.c d"), "a_b_c_d");
  EXPECT_EQ(metric_name("9x"), "_9x");
  EXPECT_EQ(metric_name(""), "_");
  for (const char* text : {"", "0", "-", "a\nb", "\xff", "ok:name"}) {
    EXPECT_TRUE(valid_metric_name(metric_name(text))) << text;
  }
}

}  // namespace
}  // namespace vfiokit
