// Outages that lose the path's connection state (lab/wan/reset_firewall.hpp):
// the ":reset" option of an outage, when the scheduler says a reset outage
// has ended, the per-direction table of connections seen starting, and the
// TCP reset built to answer a forgotten connection's packet (addresses and
// ports swapped, the RFC 793 sequence rules, both checksums valid). Pure
// logic on bytes: no root, no network.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lab/wan/packet_scheduler.hpp"
#include "lab/wan/reset_firewall.hpp"
#include "lab/wan/tcp_segments.hpp"

using namespace rmig::wan;
using namespace std::chrono_literals;

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
    for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (24 - 8 * i));
}

// The one's-complement sum over `len` bytes plus `initial`, folded: a
// packet whose checksum is right sums to 0xffff (RFC 1071), whatever the
// code under test computed.
uint16_t ones_sum(const unsigned char* p, size_t len, uint32_t initial = 0) {
    uint64_t sum = initial;
    for (size_t i = 0; i < len; i += 2) sum += i + 1 < len ? load16(p + i) : uint32_t{p[i]} << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

constexpr uint32_t kA = 0x0AC90001, kB = 0x0AC90002;  // 10.201.0.1, 10.201.0.2

// An IPv4/TCP packet from A:sport to B:dport with `payload` bytes and TCP
// options (12 bytes of them, as Linux sends timestamps), checksums not set
// (the model does not look at them).
std::vector<unsigned char> tcp_packet(uint8_t flags, uint32_t seq, uint32_t ack, size_t payload, uint16_t sport = 40000,
                                      uint16_t dport = 7070, uint32_t src = kA, uint32_t dst = kB) {
    const size_t ihl = 20, doff = 32;
    std::vector<unsigned char> p(ihl + doff + payload, 0xab);
    p[0] = 0x45;
    p[1] = 0;
    store16(&p[2], static_cast<uint32_t>(p.size()));
    store16(&p[4], 1234);
    store16(&p[6], 0x4000);
    p[8] = 64;
    p[9] = 6;
    store32(&p[12], src);
    store32(&p[16], dst);
    unsigned char* t = &p[ihl];
    store16(t, sport);
    store16(t + 2, dport);
    store32(t + 4, seq);
    store32(t + 8, ack);
    t[12] = static_cast<unsigned char>((doff / 4) << 4);
    t[13] = flags;
    store16(t + 14, 501);
    return p;
}

FirewallVerdict check(ConnectionFirewall& fw, const std::vector<unsigned char>& p, uint64_t resets) {
    return fw.check(p.data(), p.size(), resets);
}

}  // namespace

TEST(WanResetOutage, ParsesShowsAndCountsItsEnds) {
    auto o = parse_outages("8+10:reset,1+0.2/2:RESET,3+1", "--outage");
    ASSERT_EQ(o.size(), 3u);
    EXPECT_TRUE(o[0].reset);
    EXPECT_EQ(o[0].at, 8s);
    EXPECT_EQ(o[0].length, 10s);
    EXPECT_TRUE(o[1].reset);
    EXPECT_EQ(o[1].every, 2s);
    EXPECT_FALSE(o[2].reset);
    try {
        parse_outages("8+10:rest", "--outage");
        FAIL() << "an unknown suffix was accepted";
    } catch (const rmig::UsageError& e) {
        EXPECT_NE(std::string(e.what()).find("only 'reset'"), std::string::npos) << e.what();
    }
    EXPECT_THROW(parse_outages(":reset", "o"), rmig::UsageError);
    EXPECT_THROW(parse_outages("8:reset", "o"), rmig::UsageError);

    PathSpec p = parse_path_spec("delay=5ms,outage=1+1:reset", "--path2");
    ASSERT_EQ(p.shape.outages.size(), 1u);
    EXPECT_TRUE(p.shape.outages[0].reset);
    EXPECT_TRUE(p.shape.has_reset_outage());
    EXPECT_EQ(p.shape.describe(), "delay 5ms, rate unlimited, outage at 1s for 1s resetting connections");
    EXPECT_FALSE(parse_path_spec("outage=1+1", "--path2").shape.has_reset_outage());

    // An occurrence counts once it has ended, not while it lasts.
    Outage once = o[0];
    EXPECT_EQ(once.ended(0s), 0u);
    EXPECT_EQ(once.ended(17999ms), 0u);
    EXPECT_EQ(once.ended(18s), 1u);
    EXPECT_EQ(once.ended(1000s), 1u);
    Outage every = o[1];  // down 1-1.2, 3-3.2, 5-5.2, ...
    EXPECT_EQ(every.ended(1100ms), 0u);
    EXPECT_EQ(every.ended(1200ms), 1u);
    EXPECT_EQ(every.ended(3100ms), 1u);
    EXPECT_EQ(every.ended(3200ms), 2u);
    EXPECT_EQ(every.ended(101300ms), 51u);
}

TEST(WanResetOutage, SchedulerCountsOnlyResetOutagesFromItsStart) {
    LinkShape s;
    s.outages = parse_outages("1+1:reset,5+1,10+0.5/2:reset", "--outage");
    const Nanos start = 7s;  // the path's time zero is not the clock's
    PacketScheduler sch(s, 1, start);
    EXPECT_EQ(sch.resets_ended(start + 1500ms), 0u);  // down, not yet ended
    EXPECT_TRUE(sch.down(start + 1500ms));
    EXPECT_EQ(sch.resets_ended(start + 2s), 1u);
    EXPECT_EQ(sch.resets_ended(start + 6500ms), 1u);   // the silent one does not count
    EXPECT_EQ(sch.resets_ended(start + 10500ms), 2u);  // 1+1, and 10+0.5
    EXPECT_EQ(sch.resets_ended(start + 12600ms), 3u);  // and 12+0.5
    // Still silent while down: every packet an outage's.
    EXPECT_EQ(sch.enqueue(1500, start + 1500ms).fate, Fate::drop_outage);
    EXPECT_EQ(sch.enqueue(1500, start + 2500ms).fate, Fate::forward);

    LinkShape silent;
    silent.outages = parse_outages("1+1", "--outage");
    EXPECT_EQ(PacketScheduler(silent, 1, Nanos(0)).resets_ended(100s), 0u);
}

TEST(WanResetOutage, FirewallForgetsConnectionsOnlyAfterAResetEnds) {
    ConnectionFirewall fw;
    auto data = tcp_packet(kTcpAck, 1000, 2000, 100);
    // Before the first reset outage ends, the path knew every connection.
    EXPECT_EQ(check(fw, data, 0), FirewallVerdict::pass);
    // A connection opened before the reset: forgotten after it.
    auto old_syn = tcp_packet(kTcpSyn, 999, 0, 0);
    EXPECT_EQ(check(fw, old_syn, 0), FirewallVerdict::pass);
    EXPECT_EQ(check(fw, data, 1), FirewallVerdict::drop_reset);
    EXPECT_EQ(fw.size(), 0u);
    // Never a reset for a reset: dropped silently.
    EXPECT_EQ(check(fw, tcp_packet(kTcpRst | kTcpAck, 1000, 2000, 0), 1), FirewallVerdict::drop);
    // A FIN, a pure ACK: dropped and answered too.
    EXPECT_EQ(check(fw, tcp_packet(kTcpFin | kTcpAck, 1100, 2000, 0), 1), FirewallVerdict::drop_reset);

    // A connection opened after the outage passes: its SYN here, its SYN-ACK
    // in the other direction's table (the return direction's SYN).
    auto syn = tcp_packet(kTcpSyn, 5000, 0, 0, 40001);
    EXPECT_EQ(check(fw, syn, 1), FirewallVerdict::pass);
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 5001, 9001, 1448, 40001), 1), FirewallVerdict::pass);
    // Only this direction's 4-tuple: the same connection's return traffic
    // is the other direction's table's business.
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 9001, 5001, 0, 7070, 40001, kB, kA), 1), FirewallVerdict::drop_reset);
    ConnectionFirewall back;
    EXPECT_EQ(check(back, tcp_packet(kTcpSyn | kTcpAck, 9000, 5001, 0, 7070, 40001, kB, kA), 1), FirewallVerdict::pass);
    EXPECT_EQ(check(back, tcp_packet(kTcpAck, 9001, 5001, 0, 7070, 40001, kB, kA), 1), FirewallVerdict::pass);
    // The same port from another address is another connection.
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 5001, 9001, 0, 40001, 7070, 0x0AC90003), 1), FirewallVerdict::drop_reset);

    // A second reset outage ends: the table is emptied again.
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 6000, 9001, 0, 40001), 2), FirewallVerdict::drop_reset);
    EXPECT_EQ(fw.resets_seen(), 2u);

    // Not TCP: passes (ICMP; a later fragment of TCP has no TCP header).
    auto icmp = tcp_packet(0, 0, 0, 20);
    icmp[9] = 1;
    EXPECT_EQ(check(fw, icmp, 2), FirewallVerdict::pass);
    auto fragment = tcp_packet(kTcpAck, 1, 1, 100);
    store16(&fragment[6], 0x0010);
    EXPECT_EQ(check(fw, fragment, 2), FirewallVerdict::pass);
    std::vector<unsigned char> short_packet(fragment.begin(), fragment.begin() + 30);
    EXPECT_EQ(check(fw, short_packet, 2), FirewallVerdict::pass);
}

TEST(WanResetOutage, FirewallTableIsBoundedOldestOut) {
    ConnectionFirewall fw;
    const size_t n = ConnectionFirewall::kMaxConnections;
    for (size_t i = 0; i <= n; ++i) {  // one more than fits
        auto sport = static_cast<uint16_t>(1024 + i % 60000);
        uint32_t src = kA + static_cast<uint32_t>(i / 60000) * 256;
        ASSERT_EQ(check(fw, tcp_packet(kTcpSyn, 1, 0, 0, sport, 7070, src), 1), FirewallVerdict::pass);
    }
    EXPECT_EQ(fw.size(), n);
    // The first one went; the second and the last are known.
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 2, 1, 0, 1024), 1), FirewallVerdict::drop_reset);
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 2, 1, 0, 1025), 1), FirewallVerdict::pass);
    auto last_sport = static_cast<uint16_t>(1024 + n % 60000);
    EXPECT_EQ(check(fw, tcp_packet(kTcpAck, 2, 1, 0, last_sport, 7070, kA + 256), 1), FirewallVerdict::pass);
    // A retransmitted SYN does not take a second place.
    check(fw, tcp_packet(kTcpSyn, 1, 0, 0, 1025), 1);
    EXPECT_EQ(fw.size(), n);
}

namespace {

struct Rst {
    uint32_t src, dst, seq, ack;
    uint16_t sport, dport, window;
    uint8_t flags, ttl;
};

// Builds the reset answering `packet` and checks what every reset must be.
Rst reset_for(const std::vector<unsigned char>& packet) {
    auto p = parse_tcp(packet.data(), packet.size());
    EXPECT_TRUE(p.has_value());
    unsigned char out[kResetLen];
    build_reset(*p, out);
    EXPECT_EQ(out[0], 0x45);
    EXPECT_EQ(load16(out + 2), kResetLen);
    EXPECT_EQ(out[9], 6);
    EXPECT_EQ(ones_sum(out, 20), 0xffff) << "IPv4 header checksum";
    EXPECT_EQ(ipv4_header_checksum(out, 20), load16(out + 10));
    Rst r{load32(out + 12), load32(out + 16), load32(out + 24),
          load32(out + 28), load16(out + 20), load16(out + 22),
          load16(out + 34), out[33],          out[8]};
    EXPECT_EQ(out[32] >> 4, 5);  // no options
    // The TCP checksum with the pseudo-header (addresses, protocol, length).
    uint32_t pseudo = (r.src >> 16) + (r.src & 0xffff) + (r.dst >> 16) + (r.dst & 0xffff) + 6 + 20;
    EXPECT_EQ(ones_sum(out + 20, 20, pseudo), 0xffff) << "TCP checksum";
    return r;
}

}  // namespace

TEST(WanResetOutage, ResetSwapsTheEndsAndFollowsRfc793) {
    // With ACK: seq = the packet's ack, RST alone.
    Rst r = reset_for(tcp_packet(kTcpAck | 0x08, 0x10000000, 0xfffffff0, 1448, 40000, 7070));
    EXPECT_EQ(r.src, kB);
    EXPECT_EQ(r.dst, kA);
    EXPECT_EQ(r.sport, 7070);
    EXPECT_EQ(r.dport, 40000);
    EXPECT_EQ(r.seq, 0xfffffff0u);
    EXPECT_EQ(r.ack, 0u);
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.window, 0);
    EXPECT_EQ(r.ttl, 64);

    // Without ACK: seq 0, ack = seq + payload (+1 for SYN, FIN), RST|ACK.
    Rst plain = reset_for(tcp_packet(0x08, 0xffffff00, 0, 0x200));
    EXPECT_EQ(plain.seq, 0u);
    EXPECT_EQ(plain.ack, 0x100u);  // wraps
    EXPECT_EQ(plain.flags, kTcpRst | kTcpAck);
    EXPECT_EQ(reset_for(tcp_packet(kTcpFin, 100, 0, 10)).ack, 111u);
    EXPECT_EQ(reset_for(tcp_packet(kTcpSyn | kTcpFin, 100, 0, 0)).ack, 102u);

    // A TSO super-packet (its IP length covers every segment) is answered
    // once, from its first sequence number's point of view: its ack.
    auto tso = tcp_packet(kTcpAck, 7, 77, 60000);
    auto parsed = parse_tcp(tso.data(), tso.size());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->payload, 60000u);
    EXPECT_EQ(reset_for(tso).seq, 77u);
    // An IP length that disagrees with what was read: what was read.
    store16(&tso[2], 0);
    EXPECT_EQ(parse_tcp(tso.data(), tso.size())->payload, 60000u);

    // Many random-looking packets: the checksums always hold (odd sums, carries).
    for (uint32_t i = 0; i < 2000; ++i) {
        uint32_t x = i * 2654435761u;
        reset_for(tcp_packet(static_cast<uint8_t>(x & 0x10), x, ~x, i % 3, static_cast<uint16_t>(x >> 7),
                             static_cast<uint16_t>(x >> 13), x ^ 0x5a5a5a5a, x * 31));
    }
    EXPECT_FALSE(::testing::Test::HasFailure());
}
