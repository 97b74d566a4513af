// What the connecting side (secure_channel.cpp) and the listener
// (secure_listener.cpp) agree on beyond the wire hello (docs/security.md).
#pragma once

#include <charconv>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "security/context.hpp"
#include "wire/handshake.hpp"

namespace rmig::security::rules {

inline constexpr uint32_t kAuthCaps = wire::kCapAuth | wire::kCapEncrypt;
inline constexpr char kChannelOk[] = "rmig-channel-ok";

inline std::span<const std::byte> bytes_of(const char* s, size_t n) {
    return {reinterpret_cast<const std::byte*>(s), n};
}
inline std::span<const std::byte> bytes_of(const std::string& s) { return bytes_of(s.data(), s.size()); }
inline std::string text_of(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// The first control channel of a session opens it (TLS, which yields the
// session secret); a control channel with an id of its own reopens the
// session's control after its connection was lost, and proves itself with a
// token like a data channel: the secret already exists and the data channels'
// keys hang off it.
inline bool opens_session(const wire::Hello& h) {
    return h.kind == wire::ChannelKind::control && h.channel_id == 0;
}

// Control frames are always encrypted; data frames as the context says.
inline bool sealed(const Context& ctx, const wire::Hello& h) {
    return ctx.encrypt() || h.kind == wire::ChannelKind::control;
}

inline std::string what_channel(const wire::Hello& h) {
    if (h.kind != wire::ChannelKind::control) return cat("channel ", h.channel_id);
    return h.channel_id == 0 ? std::string("the control channel")
                             : cat("the control channel (reopened as ", h.channel_id, ")");
}

// A listener authenticates a peer before its owner looks at the channel; an
// owner that then turns it away (busy, unknown session) answers with an
// ABORT frame in place of the confirmation, carrying the hello status.
inline std::string refusal_text(wire::HelloStatus s) {
    return cat("rmig-refused ", static_cast<int>(s), ": ", wire::to_string(s));
}
inline std::optional<wire::HelloStatus> parse_refusal(const std::string& text) {
    constexpr std::string_view prefix = "rmig-refused ";
    if (text.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    int v = -1;
    auto [end, ec] = std::from_chars(text.data() + prefix.size(), text.data() + text.size(), v);
    (void)end;
    if (ec != std::errc() || v <= 0 || v > static_cast<int>(wire::kLastHelloStatus)) return std::nullopt;
    return static_cast<wire::HelloStatus>(v);
}

}  // namespace rmig::security::rules
