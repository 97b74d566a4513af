// The flow protocol's payloads (wire/stream_segment.hpp): round trips, and
// every malformed field refused with the channel named.
#include <gtest/gtest.h>

#include "common/error.hpp"
#include "wire/stream_segment.hpp"

using namespace rmig;
using namespace rmig::wire;

namespace {

std::vector<std::byte> segment(const SegmentHeader& h, size_t body) {
    std::vector<std::byte> p(kSegmentHeaderSize + body, std::byte{7});
    encode_segment_header(h, std::span(p).first<kSegmentHeaderSize>());
    return p;
}

void expect_refused(const std::function<void()>& f, const std::string& words) {
    try {
        f();
        FAIL() << "accepted; expected: " << words;
    } catch (const ProtocolError& e) {
        EXPECT_NE(std::string(e.what()).find("flow 3"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(StreamSegment, HeaderRoundTrips) {
    auto p = segment({1ull << 40, 4096, SegmentCodec::none, false}, 4096);
    auto h = decode_segment_header(p, 1 << 20, "flow 3");
    EXPECT_EQ(h.offset, 1ull << 40);
    EXPECT_EQ(h.raw_len, 4096u);
    EXPECT_FALSE(h.fin);
    auto fin = decode_segment_header(segment({77, 0, SegmentCodec::none, true}, 0), 1 << 20, "flow 3");
    EXPECT_TRUE(fin.fin);
    EXPECT_EQ(fin.offset, 77u);
    auto z = decode_segment_header(segment({0, 65536, SegmentCodec::zstd, false}, 100), 1 << 20, "flow 3");
    EXPECT_EQ(z.codec, SegmentCodec::zstd);
}

TEST(StreamSegment, MalformedHeadersAreRefused) {
    expect_refused([] { decode_segment_header(std::vector<std::byte>(5), 1 << 20, "flow 3"); }, "shorter");
    auto p = segment({0, 10, SegmentCodec::none, false}, 10);
    p[12] = std::byte{9};
    expect_refused([&] { decode_segment_header(p, 1 << 20, "flow 3"); }, "unknown codec 9");
    p = segment({0, 10, SegmentCodec::none, false}, 10);
    p[13] = std::byte{2};
    expect_refused([&] { decode_segment_header(p, 1 << 20, "flow 3"); }, "reserved");
    expect_refused([] { decode_segment_header(segment({0, 10, SegmentCodec::none, false}, 9), 1 << 20, "flow 3"); },
                   "carries 9");
    expect_refused([] { decode_segment_header(segment({0, 0, SegmentCodec::none, true}, 3), 1 << 20, "flow 3"); },
                   "end-of-stream");
    expect_refused([] { decode_segment_header(segment({0, 2 << 20, SegmentCodec::lz4, false}, 9), 1 << 20, "flow 3"); },
                   "claims");
    expect_refused([] { decode_segment_header(segment({~0ull - 4, 10, SegmentCodec::none, false}, 10), 1 << 20, "flow 3"); },
                   "overflows");
}

TEST(StreamSegment, AckAndAttachRoundTripAndRefuseJunk) {
    auto a = decode_ack(encode_ack({123456789, true}), "flow 3");
    EXPECT_EQ(a.delivered, 123456789u);
    EXPECT_TRUE(a.fin);
    auto bad = encode_ack({1, false});
    bad[9] = std::byte{1};
    expect_refused([&] { decode_ack(bad, "flow 3"); }, "reserved");
    expect_refused([] { decode_ack(std::vector<std::byte>(3), "flow 3"); }, "expected 16");

    auto t = decode_attach(encode_attach({2, 5, 4, 99}), "flow 3");
    EXPECT_EQ(t.stream, 2u);
    EXPECT_EQ(t.flow, 5u);
    EXPECT_EQ(t.streams, 4u);
    EXPECT_EQ(t.delivered, 99u);
    expect_refused([] { decode_attach(encode_attach({5, 0, 4, 0}), "flow 3"); }, "stream 5 of 4");
    auto v = encode_attach({1, 0, 1, 0});
    v[0] = std::byte{2};
    expect_refused([&] { decode_attach(v, "flow 3"); }, "version 2");
}
