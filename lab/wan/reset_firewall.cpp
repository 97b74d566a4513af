#include "lab/wan/reset_firewall.hpp"

#include <cstring>

#include "lab/wan/tcp_segments.hpp"

namespace rmig::wan {

namespace {

uint16_t load16(const unsigned char* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t load32(const unsigned char* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void store16(unsigned char* p, uint32_t v) {
    p[0] = static_cast<unsigned char>(v >> 8);
    p[1] = static_cast<unsigned char>(v);
}
void store32(unsigned char* p, uint32_t v) {
    p[0] = static_cast<unsigned char>(v >> 24);
    p[1] = static_cast<unsigned char>(v >> 16);
    p[2] = static_cast<unsigned char>(v >> 8);
    p[3] = static_cast<unsigned char>(v);
}

}  // namespace

std::optional<TcpPacket> parse_tcp(const unsigned char* ip, size_t len) {
    if (len < 20 || ip[0] >> 4 != 4 || ip[9] != 6) return std::nullopt;
    const size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if (ihl < 20 || ihl + 20 > len) return std::nullopt;
    if ((load16(ip + 6) & 0x1fff) != 0) return std::nullopt;  // a later fragment: no TCP header
    const unsigned char* tcp = ip + ihl;
    const size_t doff = static_cast<size_t>(tcp[12] >> 4) * 4;
    if (doff < 20 || ihl + doff > len) return std::nullopt;
    // The IP length, unless it disagrees with what was read (a TSO packet's
    // covers all its segments, as the read does).
    size_t total = load16(ip + 2);
    if (total < ihl + doff || total > len) total = len;
    TcpPacket p;
    p.src = load32(ip + 12);
    p.dst = load32(ip + 16);
    p.sport = load16(tcp);
    p.dport = load16(tcp + 2);
    p.seq = load32(tcp + 4);
    p.ack = load32(tcp + 8);
    p.flags = tcp[13];
    p.payload = total - ihl - doff;
    return p;
}

uint16_t tcp_checksum(uint32_t src, uint32_t dst, const unsigned char* tcp, size_t tcp_len) {
    uint64_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6u + tcp_len;
    for (size_t i = 0; i < tcp_len; i += 2) {
        if (i == 16) continue;  // the checksum field itself
        sum += i + 1 < tcp_len ? load16(tcp + i) : uint32_t{tcp[i]} << 8;
    }
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(~sum);
}

void build_reset(const TcpPacket& p, unsigned char* out) {
    std::memset(out, 0, kResetLen);
    unsigned char* ip = out;
    ip[0] = 0x45;                // IPv4, 20-byte header
    store16(ip + 2, kResetLen);  // total length
    store16(ip + 6, 0x4000);     // DF, as Linux sends its own resets
    ip[8] = 64;                  // TTL
    ip[9] = 6;                   // TCP
    store32(ip + 12, p.dst);
    store32(ip + 16, p.src);
    store16(ip + 10, ipv4_header_checksum(ip, 20));

    unsigned char* tcp = ip + 20;
    store16(tcp, p.dport);
    store16(tcp + 2, p.sport);
    if (p.flags & kTcpAck) {
        store32(tcp + 4, p.ack);
        tcp[13] = kTcpRst;
    } else {
        uint32_t len =
            static_cast<uint32_t>(p.payload) + ((p.flags & kTcpSyn) ? 1u : 0u) + ((p.flags & kTcpFin) ? 1u : 0u);
        store32(tcp + 8, p.seq + len);  // seq stays 0
        tcp[13] = kTcpRst | kTcpAck;
    }
    tcp[12] = 5 << 4;  // 20-byte header; window, urgent pointer 0
    store16(tcp + 16, tcp_checksum(p.dst, p.src, tcp, 20));
}

size_t ConnectionFirewall::KeyHash::operator()(const Key& k) const {
    uint64_t a = uint64_t{k.src} << 32 | k.dst;
    uint64_t b = uint64_t{k.sport} << 16 | k.dport;
    uint64_t h = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x7F4A7C159E3779B9ULL + (a >> 29));
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ULL;
    return static_cast<size_t>(h ^ (h >> 29));
}

void ConnectionFirewall::remember(const Key& k) {
    if (!known_.insert(k).second) return;  // a retransmitted SYN: already known
    order_.push_back(k);
    if (order_.size() > kMaxConnections) {
        known_.erase(order_.front());
        order_.pop_front();
    }
}

FirewallVerdict ConnectionFirewall::check(const unsigned char* ip, size_t len, uint64_t resets_ended) {
    if (resets_ended != resets_seen_) {
        resets_seen_ = resets_ended;
        known_.clear();
        order_.clear();
    }
    auto p = parse_tcp(ip, len);
    if (!p) return FirewallVerdict::pass;
    const Key k{p->src, p->dst, p->sport, p->dport};
    if (p->flags & kTcpSyn) {
        remember(k);
        return FirewallVerdict::pass;
    }
    if (resets_seen_ == 0 || known_.count(k)) return FirewallVerdict::pass;
    return (p->flags & kTcpRst) ? FirewallVerdict::drop : FirewallVerdict::drop_reset;
}

}  // namespace rmig::wan
