#include "common/units.hpp"

#include <gtest/gtest.h>

#include "common/error.hpp"

using namespace rmig;

TEST(Units, ParsesSizesWithBinarySuffixes) {
    EXPECT_EQ(parse_size("4096", "x"), 4096u);
    EXPECT_EQ(parse_size("64K", "x"), 64u << 10);
    EXPECT_EQ(parse_size("10M", "x"), 10u << 20);
    EXPECT_EQ(parse_size("1G", "x"), 1ull << 30);
    EXPECT_EQ(parse_size("2GiB", "x"), 2ull << 30);
}

TEST(Units, RejectsBadSizesNamingTheOption) {
    for (const char* bad : {"", "-1", "ten", "5X", "99999999999999999999", "20000000000T"}) {
        try {
            parse_size(bad, "--chunk");
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("--chunk"), std::string::npos) << e.what();
        }
    }
}

TEST(Units, FormatsForHumans) {
    EXPECT_EQ(format_bytes(512), "512 B");
    EXPECT_EQ(format_bytes(1536), "1.50 KiB");
    EXPECT_EQ(format_bytes(3.0 * (1 << 30)), "3.00 GiB");
    EXPECT_EQ(format_rate(1.25e9), "1.25 GB/s");
    EXPECT_EQ(format_millis(850), "850 ms");
    EXPECT_EQ(format_millis(2410), "2.41 s");
}
