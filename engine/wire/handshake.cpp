#include "engine/wire/handshake.hpp"

#include <cstring>
#include <random>

#include "common/error.hpp"
#include "engine/wire/byte_order.hpp"
#include "engine/wire/checksum.hpp"

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

Hello decode_hello(std::span<const std::byte, kHelloSize> b, bool reply, const std::string& peer) {
    const char* magic = reply ? kReplyMagic : kHelloMagic;
    if (std::memcmp(b.data(), magic, 8) != 0)
        throw ProtocolError(cat("handshake from ", peer, ": bad magic (expected '",
                                std::string(magic, 8), "'): not an rmig peer"));
    if (get_le<uint64_t>(&b[kChecksumAt]) != checksum(b.first(kChecksumAt)))
        throw ProtocolError(cat("handshake from ", peer, ": checksum mismatch"));
    Hello h;
    h.version = get_le<uint16_t>(&b[8]);
    auto status = get_le<uint16_t>(&b[10]);
    if (status > static_cast<uint16_t>(HelloStatus::internal))
        throw ProtocolError(cat("handshake from ", peer, ": unknown status ", status));
    h.status = static_cast<HelloStatus>(status);
    auto role = std::to_integer<uint8_t>(b[12]);
    auto kind = std::to_integer<uint8_t>(b[13]);
    if (role < 1 || role > 2)
        throw ProtocolError(cat("handshake from ", peer, ": unknown role ", unsigned(role)));
    if (kind < 1 || kind > 2)
        throw ProtocolError(cat("handshake from ", peer, ": unknown channel kind ", unsigned(kind)));
    h.role = static_cast<Role>(role);
    h.kind = static_cast<ChannelKind>(kind);
    h.caps = get_le<uint32_t>(&b[16]);
    h.channel_id = get_le<uint32_t>(&b[20]);
    h.channel_count = get_le<uint32_t>(&b[24]);
    if (h.version == kProtocolVersion) {
        // v1 defines no extensions; later versions may, and are refused by version.
        if (get_le<uint32_t>(&b[28]) != 0 || get_le<uint16_t>(&b[14]) != 0 ||
            get_le<uint64_t>(&b[48]) != 0)
            throw ProtocolError(cat("handshake from ", peer, ": reserved fields set in a v1 hello"));
        if (h.kind == ChannelKind::control && h.channel_id != 0)
            throw ProtocolError(cat("handshake from ", peer, ": control channel with id ",
                                    h.channel_id, " (must be 0)"));
        if (h.kind == ChannelKind::data && h.channel_id == 0)
            throw ProtocolError(cat("handshake from ", peer, ": data channel with id 0"));
    }
    std::memcpy(h.session.data(), &b[32], h.session.size());
    return h;
}

void check_version(const Hello& remote, const std::string& peer) {
    if (remote.version != kProtocolVersion)
        throw ProtocolError(cat(peer, " speaks rmig wire protocol version ", remote.version,
                                ", this build speaks version ", kProtocolVersion,
                                ": run the same rmig release on both hosts"));
}

}  // namespace rmig::wire
