#include "wire/frame.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::wire;

namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> v(s.size());
    for (size_t i = 0; i < s.size(); ++i) v[i] = static_cast<std::byte>(s[i]);
    return v;
}

// Expects `fn` to throw ProtocolError whose message contains every `needle`.
template <class F> void expect_protocol_error(F fn, std::initializer_list<const char*> needles) {
    try {
        fn();
        FAIL() << "no ProtocolError thrown";
    } catch (const ProtocolError& e) {
        for (auto* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
            << "message '" << e.what() << "' lacks '" << n << "'";
    }
}

struct FrameTest : ::testing::Test {
    FrameEncoder enc{3};
    FrameDecoder dec{3, "channel 3"};
};

}  // namespace

TEST_F(FrameTest, RoundTripsFramesInOrder) {
    auto a = bytes_of("first payload");
    auto b = bytes_of("");
    for (auto* p : {&a, &b, &a}) {
        auto h = enc.encode(FrameType::data, *p);
        auto hdr = dec.decode_header(h);
        EXPECT_EQ(hdr.type, FrameType::data);
        EXPECT_EQ(hdr.length, p->size());
        EXPECT_EQ(hdr.channel, 3u);
        dec.verify_payload(hdr, *p);
    }
    EXPECT_EQ(dec.expected_seq(), 3u);
    auto end = enc.encode(FrameType::end, {});
    EXPECT_EQ(dec.decode_header(end).type, FrameType::end);
}

TEST_F(FrameTest, BadMagicIsRejected) {
    auto h = enc.encode(FrameType::data, {});
    h[0] = std::byte{0x47};  // "GET " from an HTTP client, say
    expect_protocol_error([&] { dec.decode_header(h); }, {"channel 3", "bad frame magic"});
}

TEST_F(FrameTest, UnknownTypeIsRejected) {
    auto h = enc.encode(FrameType::data, {});
    h[4] = std::byte{9};
    expect_protocol_error([&] { dec.decode_header(h); }, {"channel 3", "unknown frame type 9"});
}

TEST_F(FrameTest, ReservedBitsAreRejected) {
    auto h = enc.encode(FrameType::data, {});
    h[5] = std::byte{1};
    expect_protocol_error([&] { dec.decode_header(h); }, {"reserved header bits"});
}

TEST_F(FrameTest, FrameOfAnotherChannelIsRejected) {
    FrameEncoder other(4);
    auto h = other.encode(FrameType::data, {});
    expect_protocol_error([&] { dec.decode_header(h); }, {"belongs to channel 4"});
}

TEST_F(FrameTest, OversizedLengthIsRejectedBeforeReadingPayload) {
    auto h = enc.encode(FrameType::data, {});
    h[12] = std::byte{0xff};
    h[13] = std::byte{0xff};
    h[14] = std::byte{0xff};
    h[15] = std::byte{0x7f};
    expect_protocol_error([&] { dec.decode_header(h); }, {"more than the limit"});
}

TEST_F(FrameTest, EndFrameWithPayloadIsRejected) {
    auto p = bytes_of("x");
    auto h = enc.encode(FrameType::end, p);
    expect_protocol_error([&] { dec.decode_header(h); }, {"end frame", "must be empty"});
}

TEST_F(FrameTest, LostFrameIsDetected) {
    auto p = bytes_of("abc");
    enc.encode(FrameType::data, p);  // frame 0 never arrives
    auto h1 = enc.encode(FrameType::data, p);
    expect_protocol_error([&] { dec.decode_header(h1); }, {"out of order", "expected sequence 0",
                                                          "got 1", "lost"});
}

TEST_F(FrameTest, ReplayedFrameIsDetected) {
    auto p = bytes_of("abc");
    auto h0 = enc.encode(FrameType::data, p);
    dec.verify_payload(dec.decode_header(h0), p);
    expect_protocol_error([&] { dec.decode_header(h0); }, {"out of order", "replayed"});
}

TEST_F(FrameTest, CorruptPayloadFailsChecksum) {
    auto p = bytes_of("guest page bytes");
    auto h = enc.encode(FrameType::data, p);
    auto hdr = dec.decode_header(h);
    p[5] ^= std::byte{1};
    expect_protocol_error([&] { dec.verify_payload(hdr, p); }, {"channel 3", "checksum mismatch"});
}

TEST_F(FrameTest, CorruptHeaderFieldFailsChecksum) {
    auto p = bytes_of("abcd");
    auto h = enc.encode(FrameType::data, p);
    h[4] = static_cast<std::byte>(FrameType::control);  // type flipped in transit
    auto hdr = dec.decode_header(h);
    expect_protocol_error([&] { dec.verify_payload(hdr, p); }, {"checksum mismatch"});
}

TEST_F(FrameTest, ShortPayloadFailsChecksum) {
    auto p = bytes_of("abcd");
    auto h = enc.encode(FrameType::data, p);
    auto hdr = dec.decode_header(h);
    std::vector<std::byte> shorter(p.begin(), p.end() - 1);
    expect_protocol_error([&] { dec.verify_payload(hdr, shorter); }, {"checksum mismatch"});
}

TEST_F(FrameTest, TruncationNamesWhatWasMissing) {
    expect_protocol_error([&] { dec.truncated("payload", 10, 4096); },
                          {"channel 3", "truncated frame 0", "10 of 4096 payload bytes"});
}

TEST_F(FrameTest, ErrorLeavesDecoderUnadvanced) {
    auto p = bytes_of("abc");
    auto h = enc.encode(FrameType::data, p);
    auto hdr = dec.decode_header(h);
    auto bad = p;
    bad[0] = std::byte{0};
    EXPECT_THROW(dec.verify_payload(hdr, bad), ProtocolError);
    EXPECT_EQ(dec.expected_seq(), 0u);
}
