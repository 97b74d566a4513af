#include "common/metrics/text_format.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::metrics;

TEST(MetricsTextFormat, NamesFollowThePrometheusRules) {
    EXPECT_TRUE(valid_metric_name("rmig_relay_sent_bytes_total"));
    EXPECT_TRUE(valid_metric_name("_x:y1"));
    EXPECT_TRUE(valid_metric_name(":recorded"));
    EXPECT_FALSE(valid_metric_name(""));
    EXPECT_FALSE(valid_metric_name("1st"));
    EXPECT_FALSE(valid_metric_name("a-b"));
    EXPECT_FALSE(valid_metric_name("a b"));
    EXPECT_TRUE(valid_label_name("session"));
    EXPECT_TRUE(valid_label_name("_x1"));
    EXPECT_FALSE(valid_label_name("__name__"));  // reserved
    EXPECT_FALSE(valid_label_name("a:b"));       // colons only in metric names
    EXPECT_FALSE(valid_label_name("9"));
    EXPECT_FALSE(valid_label_name(""));
    EXPECT_THROW(check_metric_name("bad-name"), Error);
    EXPECT_THROW(check_labels("m", {{"a", "1"}, {"a", "2"}}), Error);
    EXPECT_THROW(check_labels("m", {{"bad label", "1"}}), Error);
    EXPECT_NO_THROW(check_labels("m", {{"a", "1"}, {"b", "1"}}));
}

TEST(MetricsTextFormat, LabelValuesEscapeBackslashQuoteAndNewline) {
    EXPECT_EQ(escape_label_value(R"(C:\dir "x")" "\nend"), R"(C:\\dir \"x\"\nend)");
    EXPECT_EQ(escape_label_value("plain"), "plain");
    // HELP keeps quotes as they are.
    EXPECT_EQ(escape_help("a \"b\" \\ c\nd"), "a \"b\" \\\\ c\\nd");
}

TEST(MetricsTextFormat, ValuesAreExactAndSpecialValuesAreNamed) {
    EXPECT_EQ(format_value(uint64_t{18446744073709551615ull}), "18446744073709551615");  // no rounding via double
    EXPECT_EQ(format_value(0.5), "0.5");
    EXPECT_EQ(format_value(1234567.0), "1234567");
    EXPECT_EQ(format_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(std::stod(format_value(0.1 + 0.2)), 0.1 + 0.2);
}

TEST(MetricsTextFormat, RendersHelpTypeAndOneLinePerSample) {
    std::vector<FamilySnapshot> families = {
        {"rmig_relay_sent_bytes_total", "Bytes sent.\nAll of them.", Type::counter,
         {{{{"session", "ab"}, {"channel", "0"}}, uint64_t{10}}, {{{"session", "ab"}, {"channel", "1"}}, uint64_t{20}}}},
        {"rmig_empty", "never set", Type::gauge, {}},
        {"rmig_up", "up", Type::gauge, {{{}, 1.0}}},
        {"rmig_path", "odd label", Type::gauge, {{{{"dir", "a\"b\\c\nd"}}, 2.5}}},
    };
    EXPECT_EQ(render(families),
              "# HELP rmig_relay_sent_bytes_total Bytes sent.\\nAll of them.\n"
              "# TYPE rmig_relay_sent_bytes_total counter\n"
              "rmig_relay_sent_bytes_total{session=\"ab\",channel=\"0\"} 10\n"
              "rmig_relay_sent_bytes_total{session=\"ab\",channel=\"1\"} 20\n"
              "# HELP rmig_up up\n"
              "# TYPE rmig_up gauge\n"
              "rmig_up 1\n"
              "# HELP rmig_path odd label\n"
              "# TYPE rmig_path gauge\n"
              "rmig_path{dir=\"a\\\"b\\\\c\\nd\"} 2.5\n");
}
