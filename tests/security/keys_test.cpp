// Channel tokens and their frame; PSK files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "common/error.hpp"
#include "common/temp_dir.hpp"
#include "security/context.hpp"
#include "security/keys.hpp"

using namespace rmig;
using namespace rmig::security;

TEST(ChannelToken, FrameRoundTripsAndBindsSessionAndChannel) {
    SessionSecret s;
    std::memset(s.data(), 7, s.size());
    wire::SessionId id = wire::random_session_id();
    TokenFrame t{3, id, channel_token(s, id, 3)};
    TokenFrame back = decode_token_frame(encode_token_frame(t), "peer");
    EXPECT_EQ(back.channel, 3u);
    EXPECT_EQ(back.session, id);
    EXPECT_TRUE(token_matches(back, s));
    back.channel = 4;
    EXPECT_FALSE(token_matches(back, s));
    SessionSecret other = s;
    other.data()[0] ^= 1;
    EXPECT_FALSE(token_matches(t, other));
}

TEST(ChannelToken, MalformedFramesAreProtocolErrors) {
    SessionSecret s;
    TokenFrame t{1, wire::random_session_id(), {}};
    auto good = encode_token_frame(t);
    EXPECT_THROW(decode_token_frame(std::span(good).first(59), "p"), ProtocolError);
    for (size_t pos : {size_t(0), size_t(4), size_t(6)}) {
        auto bad = good;
        bad[pos] ^= std::byte{1};
        EXPECT_THROW(decode_token_frame(bad, "p"), ProtocolError) << pos;
    }
}

TEST(PskFile, ReadsHexAndBase64AndRejectsShortOrGarbage) {
    TempDir dir("rmig-psk-test");
    auto write = [&](const std::string& name, const std::string& body) {
        std::ofstream(dir.path() + "/" + name) << body;
        return dir.path() + "/" + name;
    };
    auto hex = read_psk_file(write("hex", "00112233445566778899aabbccddeeff\n00112233445566778899aabbccddeeff\n"));
    EXPECT_EQ(hex.size(), 32u);
    EXPECT_EQ(hex[1], 0x11);
    auto b64 = read_psk_file(write("b64", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"));
    ASSERT_EQ(b64.size(), 32u);
    EXPECT_EQ(b64[31], 31);
    EXPECT_THROW(read_psk_file(write("short", "0011")), Error);
    EXPECT_THROW(read_psk_file(write("junk", "not a key at all!")), Error);
    EXPECT_THROW(read_psk_file(dir.path() + "/missing"), Error);
}
