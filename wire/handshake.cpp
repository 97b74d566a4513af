#include "wire/handshake.hpp"

#include <cstring>
#include <random>

#include "common/error.hpp"
#include "wire/byte_order.hpp"
#include "wire/checksum.hpp"

namespace rmig::wire {

// Layout (little-endian):
//   0 u8[8] magic  8 u16 version  10 u16 status  12 u8 role  13 u8 kind  14 u16 reserved
//  16 u32 caps    20 u32 channel_id  24 u32 channel_count  28 u32 ext_len (0 in v1)
//  32 u8[16] session  48 u64 reserved  56 u64 checksum of bytes 0..55
namespace {
constexpr char kHelloMagic[8] = {'R', 'M', 'I', 'G', 'H', 'E', 'L', 'O'};
constexpr char kReplyMagic[8] = {'R', 'M', 'I', 'G', 'A', 'C', 'P', 'T'};
constexpr size_t kChecksumAt = 56;
}  // namespace

const char* to_string(HelloStatus s) {
    switch (s) {
    case HelloStatus::ok: return "accepted";
    case HelloStatus::bad_version: return "protocol version not supported";
    case HelloStatus::unknown_session: return "unknown session";
    case HelloStatus::bad_channel: return "channel id out of order or out of range";
    case HelloStatus::busy: return "receiver is busy with another session";
    case HelloStatus::refused: return "refused by the receiver's policy";
    case HelloStatus::internal: return "receiver failed to set the channel up";
    case HelloStatus::auth_required:
        return "receiver requires authentication (give both sides --psk-file or --tls-cert/--tls-key/--tls-ca)";
    case HelloStatus::auth_unsupported:
        return "receiver runs without authentication (it was started with --insecure-plaintext)";
    case HelloStatus::security_mismatch:
        return "sides disagree on encryption (pass --no-encrypt to both or to neither)";
    }
    return "unknown status";
}

SessionId random_session_id() {
    std::random_device rd;
    SessionId id;
    for (size_t i = 0; i < id.size(); i += 4) {
        uint32_t r = rd();
        std::memcpy(&id[i], &r, 4);
    }
    return id;
}

std::string to_hex(const SessionId& id) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (auto b : id) {
        auto v = std::to_integer<unsigned>(b);
        s += digits[v >> 4];
        s += digits[v & 15];
    }
    return s;
}

Hello accepting_reply(const Hello& asked, const Hello& reply) {
    Hello r = reply;
    r.status = HelloStatus::ok;
    r.kind = asked.kind;
    r.channel_id = asked.channel_id;
    return r;
}

Hello refusing_reply(const Hello& asked, HelloStatus status) {
    Hello r = asked;
    r.version = kProtocolVersion;
    r.role = Role::destination;
    r.status = status;
    return r;
}

HelloBytes encode_hello(const Hello& h, bool reply) {
    HelloBytes b{};
    std::memcpy(b.data(), reply ? kReplyMagic : kHelloMagic, 8);
    put_le<uint16_t>(&b[8], h.version);
    put_le<uint16_t>(&b[10], static_cast<uint16_t>(h.status));
    b[12] = static_cast<std::byte>(h.role);
    b[13] = static_cast<std::byte>(h.kind);
    put_le<uint32_t>(&b[16], h.caps);
    put_le<uint32_t>(&b[20], h.channel_id);
    put_le<uint32_t>(&b[24], h.channel_count);
    std::memcpy(&b[32], h.session.data(), h.session.size());
    put_le<uint64_t>(&b[kChecksumAt], checksum(std::span(b).first(kChecksumAt)));
    return b;
}

namespace {

// Checks shared by both encodings once magic and checksum passed.
Hello decode_fields(uint16_t version, uint16_t status, uint8_t role, uint8_t kind, uint32_t caps,
                    uint32_t channel_id, uint32_t channel_count, bool reserved_zero,
                    const std::byte* session, const std::string& peer) {
    if (status > static_cast<uint16_t>(kLastHelloStatus))
        throw ProtocolError(cat("handshake from ", peer, ": unknown status ", status));
    if (role < 1 || role > 2)
        throw ProtocolError(cat("handshake from ", peer, ": unknown role ", unsigned(role)));
    if (kind < 1 || kind > 2)
        throw ProtocolError(cat("handshake from ", peer, ": unknown channel kind ", unsigned(kind)));
    Hello h;
    h.version = version;
    h.status = static_cast<HelloStatus>(status);
    h.role = static_cast<Role>(role);
    h.kind = static_cast<ChannelKind>(kind);
    h.caps = caps;
    h.channel_id = channel_id;
    h.channel_count = channel_count;
    if (h.version == kProtocolVersion) {
        // v1 defines no extensions; later versions may, and are refused by version.
        if (!reserved_zero)
            throw ProtocolError(cat("handshake from ", peer, ": reserved fields set in a v1 hello"));
        if (h.kind == ChannelKind::control && h.channel_id != 0 && h.channel_id < kReopenedControlIds)
            throw ProtocolError(cat("handshake from ", peer, ": control channel with id ", h.channel_id,
                                    " (must be 0, or from ", kReopenedControlIds, " when reopened)"));
        if (h.kind == ChannelKind::data && h.channel_id == 0)
            throw ProtocolError(cat("handshake from ", peer, ": data channel with id 0"));
    }
    std::memcpy(h.session.data(), session, h.session.size());
    return h;
}

}  // namespace

Hello decode_hello(std::span<const std::byte, kHelloSize> b, bool reply, const std::string& peer) {
    const char* magic = reply ? kReplyMagic : kHelloMagic;
    if (std::memcmp(b.data(), magic, 8) != 0)
        throw ProtocolError(cat("handshake from ", peer, ": bad magic (expected '",
                                std::string(magic, 8), "'): not an rmig peer"));
    if (get_le<uint64_t>(&b[kChecksumAt]) != checksum(b.first(kChecksumAt)))
        throw ProtocolError(cat("handshake from ", peer, ": checksum mismatch"));
    bool reserved_zero = get_le<uint32_t>(&b[28]) == 0 && get_le<uint16_t>(&b[14]) == 0 &&
                         get_le<uint64_t>(&b[48]) == 0;
    return decode_fields(get_le<uint16_t>(&b[8]), get_le<uint16_t>(&b[10]),
                         std::to_integer<uint8_t>(b[12]), std::to_integer<uint8_t>(b[13]),
                         get_le<uint32_t>(&b[16]), get_le<uint32_t>(&b[20]),
                         get_le<uint32_t>(&b[24]), reserved_zero, &b[32], peer);
}

// Compact layout (little-endian):
//   0 u32 magic "RMH1" (hello) / "RMA1" (reply)  4 u16 version  6 u16 status
//   8 u8 role  9 u8 kind  10 u16 reserved  12 u32 caps  16 u32 channel_id
//  20 u32 channel_count  24 u8[16] session  40 u64 checksum of bytes 0..39
namespace {
constexpr uint32_t kCompactHelloMagic = 0x31484d52;  // "RMH1"
constexpr uint32_t kCompactReplyMagic = 0x31414d52;  // "RMA1"
constexpr size_t kCompactChecksumAt = 40;
}  // namespace

CompactHelloBytes encode_hello_compact(const Hello& h, bool reply) {
    CompactHelloBytes b{};
    put_le<uint32_t>(&b[0], reply ? kCompactReplyMagic : kCompactHelloMagic);
    put_le<uint16_t>(&b[4], h.version);
    put_le<uint16_t>(&b[6], static_cast<uint16_t>(h.status));
    b[8] = static_cast<std::byte>(h.role);
    b[9] = static_cast<std::byte>(h.kind);
    put_le<uint32_t>(&b[12], h.caps);
    put_le<uint32_t>(&b[16], h.channel_id);
    put_le<uint32_t>(&b[20], h.channel_count);
    std::memcpy(&b[24], h.session.data(), h.session.size());
    put_le<uint64_t>(&b[kCompactChecksumAt], checksum(std::span(b).first(kCompactChecksumAt)));
    return b;
}

Hello decode_hello_compact(std::span<const std::byte> b, bool reply, const std::string& peer) {
    if (b.size() < kCompactHelloSize)
        throw ProtocolError(cat("handshake from ", peer, ": ", b.size(), " bytes of private data, ",
                                "expected at least ", kCompactHelloSize, ": not an rmig peer"));
    if (get_le<uint32_t>(&b[0]) != (reply ? kCompactReplyMagic : kCompactHelloMagic))
        throw ProtocolError(cat("handshake from ", peer, ": bad magic: not an rmig peer"));
    if (get_le<uint64_t>(&b[kCompactChecksumAt]) != checksum(b.first(kCompactChecksumAt)))
        throw ProtocolError(cat("handshake from ", peer, ": checksum mismatch"));
    return decode_fields(get_le<uint16_t>(&b[4]), get_le<uint16_t>(&b[6]),
                         std::to_integer<uint8_t>(b[8]), std::to_integer<uint8_t>(b[9]),
                         get_le<uint32_t>(&b[12]), get_le<uint32_t>(&b[16]),
                         get_le<uint32_t>(&b[20]), get_le<uint16_t>(&b[10]) == 0, &b[24], peer);
}

void check_version(const Hello& remote, const std::string& peer) {
    if (remote.version != kProtocolVersion)
        throw ProtocolError(cat(peer, " speaks rmig wire protocol version ", remote.version,
                                ", this build speaks version ", kProtocolVersion,
                                ": run the same rmig release on both hosts"));
}

}  // namespace rmig::wire
