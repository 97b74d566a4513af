// Everything derived from a session secret: the AES-256-GCM key and nonce salt
// of each channel direction (HKDF-SHA256), and the token a data channel shows
// to prove it belongs to the session (HMAC-SHA256). docs/security.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/handshake.hpp"
#include "security/secret.hpp"

namespace rmig::security {

// Which way frames flow on a channel: from the side that connected to the
// side that accepted, or back.
enum class Direction : uint8_t { to_acceptor = 1, to_connector = 2 };

struct FrameKey {
    SecretBytes<32> key;   // AES-256
    SecretBytes<4> salt;   // the nonce's first 4 bytes; the counter is the other 8
};

// HKDF-SHA256(ikm = secret, salt = session id, info = "rmig v1 frame key" ||
// direction || channel id LE32): one key per session, channel and direction.
FrameKey derive_frame_key(const SessionSecret& secret, const wire::SessionId& session,
                          uint32_t channel, Direction dir);

using ChannelToken = std::array<unsigned char, 32>;
// HMAC-SHA256(secret, "rmig-channel" || session id || channel id LE32).
ChannelToken channel_token(const SessionSecret& secret, const wire::SessionId& session, uint32_t channel);

// The token frame (payload of the first CONTROL frame on a data channel):
//   0 "RMAT"  4 u16 version (1)  6 u16 reserved (0)  8 u32 channel id
//  12 u8[16] session id  28 u8[32] token                       = 60 bytes
inline constexpr size_t kTokenFrameSize = 60;
struct TokenFrame {
    uint32_t channel = 0;
    wire::SessionId session{};
    ChannelToken token{};
};
std::vector<std::byte> encode_token_frame(const TokenFrame& t);
// Checks size, magic, version and reserved bytes; throws ProtocolError naming `peer`.
TokenFrame decode_token_frame(std::span<const std::byte> bytes, const std::string& peer);
// Constant-time comparison against the token the secret gives.
bool token_matches(const TokenFrame& t, const SessionSecret& secret);

}  // namespace rmig::security
