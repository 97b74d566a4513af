#include "wire/control.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::wire;
using nlohmann::json;

namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
    auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

template <class E> std::string error_of(FrameType type, const std::string& payload) {
    try {
        decode_control(type, bytes_of(payload), "control channel");
    } catch (const E& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST(WireControl, RoundTrip) {
    json msg = {{"op", "round_end"}, {"round", 3}, {"pages", 4096}};
    EXPECT_EQ(decode_control(FrameType::control, bytes_of(encode_control(msg)), "c"), msg);
}

TEST(WireControl, AbortEndAndOtherFramesAreNamed) {
    EXPECT_EQ(error_of<Error>(FrameType::abort, "disk full"), "control channel: peer aborted: disk full");
    EXPECT_EQ(error_of<LinkError>(FrameType::end, ""), "control channel: peer closed the control channel");
    EXPECT_NE(error_of<ProtocolError>(FrameType::data, "{}").find("on the control channel"), std::string::npos);
}

TEST(WireControl, OnlyOneJsonObjectIsAMessage) {
    for (const char* bad : {"", "[1,2]", "42", "{\"op\":", "not json"})
        EXPECT_NE(error_of<ProtocolError>(FrameType::control, bad).find("not a JSON object"), std::string::npos)
            << bad;
}

TEST(WireControl, RefusedRepliesBecomeErrors) {
    json req = {{"op", "layout"}};
    EXPECT_NO_THROW(check_reply(req, {{"ok", true}}));
    try {
        check_reply(req, {{"ok", false}, {"error", "region sizes differ"}});
        FAIL() << "a refusal was accepted";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "destination refused 'layout': region sizes differ");
    }
    EXPECT_THROW(check_reply(req, json::object()), Error);
}
