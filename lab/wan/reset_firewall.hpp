// Outages that lose the path's connection state: what a stateful middlebox
// (a firewall or NAT) does after it fails over without its connection table.
// Once a reset outage has ended (each occurrence of a periodic one), the path
// knows only connections it sees start from then on: a TCP packet of any
// other connection is dropped and answered with a reset sent back to its
// sender, which is what ends a long-lived connection (a migration) that a
// silent outage of the same length would only have paused.
//
// Pure logic on packet bytes, tested without root: the per-direction table
// of connections seen starting (ConnectionFirewall) and the reset it answers
// with (build_reset). The Forwarder asks its PacketScheduler how many reset
// outages have ended and writes the reset into the device the packet came
// from. docs/wan-emulator.md describes the model.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_set>

namespace rmig::wan {

inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpAck = 0x10;

// What the model needs of an IPv4/TCP packet (addresses and ports as
// numbers, host order). `payload` is the TCP payload of the whole packet: a
// TSO super-packet's, all of its segments.
struct TcpPacket {
    uint32_t src = 0, dst = 0;
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    size_t payload = 0;
};

// An IPv4 packet (no vnet header) carrying a TCP header; nullopt for
// anything else (other protocols, IPv6, a non-first fragment, truncated).
std::optional<TcpPacket> parse_tcp(const unsigned char* ip, size_t len);

// The reset that answers `p` (RFC 793 "Reset Generation", so that the
// sender's kernel takes it at once under RFC 5961's exact-sequence rule):
// addresses and ports swapped; if `p` has ACK, seq = p.ack and flags RST;
// else seq 0, ack = p.seq + payload (+1 for SYN, +1 for FIN), flags RST|ACK.
// Window 0, TTL 64, DF, both checksums complete (the receiving device is
// given no offload flags). Writes kResetLen bytes (IPv4 + TCP, no vnet
// header) to `out`.
inline constexpr size_t kResetLen = 40;
void build_reset(const TcpPacket& p, unsigned char* out);

// The checksum TCP carries for `tcp_len` bytes of TCP at `tcp` between
// `src` and `dst` (host order), its own field taken as zero.
uint16_t tcp_checksum(uint32_t src, uint32_t dst, const unsigned char* tcp, size_t tcp_len);

enum class FirewallVerdict : uint8_t {
    pass,
    drop,        // a reset of a forgotten connection: dropped, never answered
    drop_reset,  // dropped and answered with build_reset
};

// One direction's table of the connections it saw start, keyed by that
// direction's 4-tuple. Any packet with SYN (a SYN, or a SYN-ACK, which
// starts the connection for the return direction) enters it. Until the
// first reset outage has ended, everything passes (the middlebox knew every
// connection); after each end, the table is emptied and only TCP packets of
// connections entered since pass. Non-TCP always passes. At most
// kMaxConnections entries: beyond that the oldest entry goes (its
// connection is then forgotten as if a reset outage had ended).
class ConnectionFirewall {
public:
    static constexpr size_t kMaxConnections = 65536;

    // `ip`: an IPv4 packet, no vnet header. `resets_ended`: how many reset
    // outages have ended by now (PacketScheduler::resets_ended); the table
    // is emptied whenever it grows.
    FirewallVerdict check(const unsigned char* ip, size_t len, uint64_t resets_ended);

    size_t size() const { return known_.size(); }
    uint64_t resets_seen() const { return resets_seen_; }

private:
    struct Key {
        uint32_t src, dst;
        uint16_t sport, dport;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const;
    };
    void remember(const Key& k);

    uint64_t resets_seen_ = 0;
    std::unordered_set<Key, KeyHash> known_;
    std::deque<Key> order_;  // insertion order, for the oldest out
};

}  // namespace rmig::wan
