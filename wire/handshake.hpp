// rmig wire protocol v1: the handshake that opens every channel
// (docs/wire-protocol.md). The connecting side sends a Hello; the accepting
// side answers with a Hello of its own whose `status` says whether the channel
// is accepted. Both are 64 bytes with fixed offsets, so any future version can
// still read the version field and refuse cleanly.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace rmig::wire {

inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHelloSize = 64;

enum class Role : uint8_t { source = 1, destination = 2 };
enum class ChannelKind : uint8_t { control = 1, data = 2 };

// A session's control channel is id 0. When its connection is lost (within
// the reconnect grace) the source reopens it as a control channel with an id
// from this range, a new one each time (each id keys its own encryption).
inline constexpr uint32_t kReopenedControlIds = 0x80000000u;

// Capability bits, negotiated as the intersection of both sides' sets.
// Reserved now so later versions add them without changing the layout.
enum Capability : uint32_t {
    kCapAuth = 1u << 0,      // authenticated session (TLS / PSK)
    kCapEncrypt = 1u << 1,   // AES-GCM per frame
    kCapCompress = 1u << 2,  // compressed data frames
};

enum class HelloStatus : uint16_t {
    ok = 0,
    bad_version = 1,      // responder speaks another protocol version
    unknown_session = 2,  // data channel for a session the responder does not run
    bad_channel = 3,      // channel id out of order or out of range
    busy = 4,             // responder already runs a session
    refused = 5,          // responder's policy (e.g. authentication) refuses
    internal = 6,         // responder failed to set the channel up (e.g. QEMU socket)
    // security/ (docs/security.md):
    auth_required = 7,     // responder authenticates; the hello did not offer kCapAuth
    auth_unsupported = 8,  // responder runs plaintext; the hello asked for kCapAuth
    security_mismatch = 9, // both authenticate but disagree on kCapEncrypt
};
inline constexpr HelloStatus kLastHelloStatus = HelloStatus::security_mismatch;
const char* to_string(HelloStatus s);

using SessionId = std::array<std::byte, 16>;
SessionId random_session_id();
std::string to_hex(const SessionId& id);

struct Hello {
    uint16_t version = kProtocolVersion;
    HelloStatus status = HelloStatus::ok;  // only meaningful in a reply
    Role role = Role::source;
    ChannelKind kind = ChannelKind::data;
    uint32_t caps = 0;
    uint32_t channel_id = 0;     // 0 = control channel, 1..N = data channels in order
    uint32_t channel_count = 0;  // data channels in the session
    SessionId session{};
};

using HelloBytes = std::array<std::byte, kHelloSize>;

// The answers a responder sends to `asked`: an acceptance keeps the asked
// channel's kind and id (whatever `reply` says); a refusal carries `status`,
// this build's version and the destination role.
Hello accepting_reply(const Hello& asked, const Hello& reply);
Hello refusing_reply(const Hello& asked, HelloStatus status);

// `reply` selects the magic: "RMIGHELO" for the opening, "RMIGACPT" for the answer.
HelloBytes encode_hello(const Hello& h, bool reply);
// Checks magic, size fields, reserved bytes and checksum; throws rmig::ProtocolError
// naming `peer`. Does not judge the version: see check_version.
Hello decode_hello(std::span<const std::byte, kHelloSize> bytes, bool reply, const std::string& peer);
// The compact form, for transports whose connection request carries only a
// few bytes (rdma_cm private data: 56 bytes in a connect request). Same fields
// and rules, no extension area, 48 bytes.
inline constexpr size_t kCompactHelloSize = 48;
using CompactHelloBytes = std::array<std::byte, kCompactHelloSize>;
CompactHelloBytes encode_hello_compact(const Hello& h, bool reply);
Hello decode_hello_compact(std::span<const std::byte> bytes, bool reply, const std::string& peer);

// Throws ProtocolError with both versions if `remote` cannot be spoken to.
void check_version(const Hello& remote, const std::string& peer);

}  // namespace rmig::wire
