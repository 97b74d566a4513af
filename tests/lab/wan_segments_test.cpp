// Cutting a TSO packet into runs of segments (lab/wan/tcp_segments.hpp): the
// pieces carry exactly the original's bytes, with the headers the kernel's
// own segmentation would give them. (That the receiving kernel takes them is
// checked end to end in wan_link_test, under loss and reordering.)
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "lab/wan/tcp_segments.hpp"

using namespace rmig::wan;

namespace {

constexpr size_t kIp = 20, kTcp = 32, kMss = 1448, kPayload = 10000;  // 7 segments, the last 1312 bytes
constexpr uint32_t kSeq = 0xfffff000;                                 // wraps inside the packet

uint16_t be16(const unsigned char* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const unsigned char* p) {
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

// What a sender's kernel hands the TUN device: vnet header, IPv4, TCP with
// 12 bytes of options, PSH|FIN|CWR|ACK, partial checksum.
std::vector<unsigned char> tso_packet(size_t payload = kPayload) {
    std::vector<unsigned char> p(kVnetHdrLen + kIp + kTcp + payload);
    VnetHdr h;
    h.flags = kVnetNeedsCsum;
    h.gso_type = kGsoTcpV4;
    h.hdr_len = kIp + kTcp;
    h.gso_size = kMss;
    h.csum_start = kIp;
    h.csum_offset = 16;
    write_vnet_hdr(h, p.data());
    unsigned char* ip = p.data() + kVnetHdrLen;
    ip[0] = 0x45;
    size_t total = kIp + kTcp + payload;
    ip[2] = static_cast<unsigned char>(total >> 8);
    ip[3] = static_cast<unsigned char>(total);
    ip[4] = 0xff;  // id 0xfffe: wraps too
    ip[5] = 0xfe;
    ip[6] = 0x40;  // DF
    ip[8] = 64;
    ip[9] = 6;
    const unsigned char addrs[8] = {10, 201, 0, 1, 10, 201, 0, 2};
    std::memcpy(ip + 12, addrs, 8);
    uint16_t c = ipv4_header_checksum(ip, kIp);
    ip[10] = static_cast<unsigned char>(c >> 8);
    ip[11] = static_cast<unsigned char>(c);
    unsigned char* tcp = ip + kIp;
    tcp[0] = 0x9c;  // ports 40000 -> 5201
    tcp[1] = 0x40;
    tcp[2] = 0x14;
    tcp[3] = 0x51;
    for (int i = 0; i < 4; ++i) tcp[4 + i] = static_cast<unsigned char>(kSeq >> (24 - 8 * i));
    tcp[12] = (kTcp / 4) << 4;
    tcp[13] = 0x80 | 0x10 | 0x08 | 0x01;  // CWR ACK PSH FIN
    for (size_t i = 0; i < payload; ++i) ip[kIp + kTcp + i] = static_cast<unsigned char>(i * 7 + i / 1000);
    return p;
}

}  // namespace

TEST(WanSegments, InspectCountsTheSegmentsAndTheirWireBytes) {
    auto p = tso_packet();
    auto s = inspect(p.data(), p.size());
    ASSERT_TRUE(s);
    EXPECT_TRUE(s->tso);
    EXPECT_EQ(s->count, 7u);
    EXPECT_EQ(s->mss, kMss);
    EXPECT_EQ(s->wire_bytes(0), kIp + kTcp + kMss);
    EXPECT_EQ(s->wire_bytes(6), kIp + kTcp + kPayload - 6 * kMss);
    size_t sum = 0;
    for (size_t i = 0; i < s->count; ++i) sum += s->wire_bytes(i);
    EXPECT_EQ(sum, s->total_wire_bytes());
    EXPECT_EQ(sum, 7 * (kIp + kTcp) + kPayload);
}

TEST(WanSegments, APacketThatIsNotTsoIsOneSegmentOfItsOwnSize) {
    auto p = tso_packet(100);
    VnetHdr h = read_vnet_hdr(p.data());
    h.gso_type = kGsoNone;
    h.gso_size = 0;
    write_vnet_hdr(h, p.data());
    auto s = inspect(p.data(), p.size());
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->tso);
    EXPECT_EQ(s->count, 1u);
    EXPECT_EQ(s->wire_bytes(0), p.size() - kVnetHdrLen);
    // Claims TSO but is not IPv4/TCP: passed on whole, never cut.
    auto q = tso_packet();
    q[kVnetHdrLen] = 0x60;
    EXPECT_FALSE(inspect(q.data(), q.size())->tso);
    q = tso_packet();
    q[kVnetHdrLen + 9] = 17;  // UDP
    EXPECT_FALSE(inspect(q.data(), q.size())->tso);
    EXPECT_FALSE(inspect(q.data(), 5));  // not even a vnet header
}

TEST(WanSegments, EverySingleSegmentHasTheHeadersTheKernelWouldGiveIt) {
    auto p = tso_packet();
    Segments s = *inspect(p.data(), p.size());
    std::vector<unsigned char> payload;
    for (size_t i = 0; i < s.count; ++i) {
        std::vector<unsigned char> out(p.size());
        size_t len = build_run(p.data(), s, i, 1, out.data());
        size_t body = i + 1 < s.count ? kMss : kPayload - 6 * kMss;
        ASSERT_EQ(len, kVnetHdrLen + kIp + kTcp + body);
        VnetHdr h = read_vnet_hdr(out.data());
        EXPECT_EQ(h.gso_type, kGsoNone);
        EXPECT_EQ(h.gso_size, 0);
        EXPECT_EQ(h.flags, kVnetNeedsCsum);
        EXPECT_EQ(h.csum_start, kIp);
        EXPECT_EQ(h.csum_offset, 16);
        const unsigned char* ip = out.data() + kVnetHdrLen;
        EXPECT_EQ(be16(ip + 2), kIp + kTcp + body);
        EXPECT_EQ(be16(ip + 4), static_cast<uint16_t>(0xfffe + i));
        EXPECT_EQ(be16(ip + 10), ipv4_header_checksum(ip, kIp));
        const unsigned char* tcp = ip + kIp;
        EXPECT_EQ(be32(tcp + 4), static_cast<uint32_t>(kSeq + i * kMss));
        uint8_t flags = tcp[13];
        EXPECT_EQ((flags & 0x01) != 0, i == 6) << "FIN on segment " << i;
        EXPECT_EQ((flags & 0x08) != 0, i == 6) << "PSH on segment " << i;
        EXPECT_EQ((flags & 0x80) != 0, i == 0) << "CWR on segment " << i;
        EXPECT_TRUE(flags & 0x10);
        // Partial checksum: the pseudo header (addresses, protocol, TCP length), folded.
        size_t pseudo = 0x0ac9 + 0x0001 + 0x0ac9 + 0x0002 + 6 + kTcp + body;
        EXPECT_EQ(be16(tcp + 16), pseudo);
        EXPECT_EQ(std::memcmp(tcp + 20, p.data() + kVnetHdrLen + kIp + 20, 12), 0);  // options kept
        payload.insert(payload.end(), tcp + kTcp, tcp + kTcp + body);
    }
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), p.begin() + kVnetHdrLen + kIp + kTcp));
}

TEST(WanSegments, ARunOfSeveralStaysOneTsoPacket) {
    auto p = tso_packet();
    Segments s = *inspect(p.data(), p.size());
    std::vector<unsigned char> out(p.size());
    size_t len = build_run(p.data(), s, 2, 3, out.data());
    ASSERT_EQ(len, kVnetHdrLen + kIp + kTcp + 3 * kMss);
    VnetHdr h = read_vnet_hdr(out.data());
    EXPECT_EQ(h.gso_type, kGsoTcpV4);
    EXPECT_EQ(h.gso_size, kMss);
    EXPECT_EQ(h.hdr_len, kIp + kTcp);
    const unsigned char* tcp = out.data() + kVnetHdrLen + kIp;
    EXPECT_EQ(be32(tcp + 4), static_cast<uint32_t>(kSeq + 2 * kMss));
    EXPECT_EQ(tcp[13], 0x10);  // ACK only: not first (CWR), not last (PSH, FIN)
    EXPECT_EQ(std::memcmp(tcp + kTcp, p.data() + kVnetHdrLen + kIp + kTcp + 2 * kMss, 3 * kMss), 0);
    auto again = inspect(out.data(), len);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->count, 3u);

    // The tail run keeps FIN and PSH, and its short last segment.
    len = build_run(p.data(), s, 5, 2, out.data());
    EXPECT_EQ(len, kVnetHdrLen + kIp + kTcp + kPayload - 5 * kMss);
    EXPECT_EQ(tcp[13], 0x10 | 0x08 | 0x01);
}
