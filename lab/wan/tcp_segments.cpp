#include "lab/wan/tcp_segments.hpp"

#include <algorithm>
#include <cstring>

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
uint16_t host16(const unsigned char* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}
void put_host16(unsigned char* p, uint16_t v) {
    std::memcpy(p, &v, 2);
}

uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

constexpr uint8_t kFin = 0x01, kPsh = 0x08, kCwr = 0x80;

}  // namespace

VnetHdr read_vnet_hdr(const unsigned char* p) {
    VnetHdr h;
    h.flags = p[0];
    h.gso_type = p[1];
    h.hdr_len = host16(p + 2);
    h.gso_size = host16(p + 4);
    h.csum_start = host16(p + 6);
    h.csum_offset = host16(p + 8);
    return h;
}

void write_vnet_hdr(const VnetHdr& h, unsigned char* p) {
    p[0] = h.flags;
    p[1] = h.gso_type;
    put_host16(p + 2, h.hdr_len);
    put_host16(p + 4, h.gso_size);
    put_host16(p + 6, h.csum_start);
    put_host16(p + 8, h.csum_offset);
}

size_t Segments::wire_bytes(size_t i) const {
    if (!tso) return payload;  // a packet not cut: `payload` holds its whole IP length
    size_t body = i + 1 < count ? mss : payload - mss * (count - 1);
    return ip_hdr + tcp_hdr + body;
}

size_t Segments::total_wire_bytes() const {
    return tso ? count * (ip_hdr + tcp_hdr) + payload : payload;
}

std::optional<Segments> inspect(const unsigned char* packet, size_t len) {
    if (len < kVnetHdrLen) return std::nullopt;
    Segments s;
    s.payload = len - kVnetHdrLen;  // unless it proves to be a TSO packet
    VnetHdr h = read_vnet_hdr(packet);
    if ((h.gso_type & ~kGsoEcn) != kGsoTcpV4 || h.gso_size == 0) return s;
    const unsigned char* ip = packet + kVnetHdrLen;
    size_t ip_len = len - kVnetHdrLen;
    if (ip_len < 40 || ip[0] >> 4 != 4 || ip[9] != 6) return s;
    size_t ihl = static_cast<size_t>(ip[0] & 0x0f) * 4;
    if (ihl < 20 || ihl + 20 > ip_len) return s;
    size_t doff = static_cast<size_t>(ip[ihl + 12] >> 4) * 4;
    if (doff < 20 || ihl + doff > ip_len) return s;
    s.tso = true;
    s.ip_hdr = ihl;
    s.tcp_hdr = doff;
    s.payload = ip_len - ihl - doff;
    s.mss = h.gso_size;
    s.count = std::max<size_t>(1, (s.payload + s.mss - 1) / s.mss);
    return s;
}

uint16_t ipv4_header_checksum(const unsigned char* hdr, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        if (i != 10) sum += load16(hdr + i);
    return static_cast<uint16_t>(~fold(sum));
}

size_t build_run(const unsigned char* packet, const Segments& s, size_t first, size_t n, unsigned char* out) {
    const size_t hdrs = s.ip_hdr + s.tcp_hdr;
    const size_t begin = first * s.mss;
    const size_t body = std::min(s.payload, (first + n) * s.mss) - begin;
    const bool has_last = first + n >= s.count;
    const unsigned char* ip = packet + kVnetHdrLen;

    VnetHdr h = read_vnet_hdr(packet);
    if (n == 1) {
        h.gso_type = kGsoNone;
        h.gso_size = 0;
    }
    h.hdr_len = static_cast<uint16_t>(hdrs);
    write_vnet_hdr(h, out);
    unsigned char* oip = out + kVnetHdrLen;
    std::memcpy(oip, ip, hdrs);
    std::memcpy(oip + hdrs, ip + hdrs + begin, body);

    store16(oip + 2, static_cast<uint32_t>(hdrs + body));             // total length
    store16(oip + 4, load16(ip + 4) + static_cast<uint32_t>(first));  // id: one per segment
    store16(oip + 10, ipv4_header_checksum(oip, s.ip_hdr));
    unsigned char* tcp = oip + s.ip_hdr;
    store32(tcp + 4, load32(ip + s.ip_hdr + 4) + static_cast<uint32_t>(begin));  // sequence number
    if (!has_last) tcp[13] = static_cast<unsigned char>(tcp[13] & ~(kFin | kPsh));
    if (first > 0) tcp[13] = static_cast<unsigned char>(tcp[13] & ~kCwr);
    // The pseudo-header sum, not complemented: the receiver adds the segment
    // (NEEDS_CSUM, CHECKSUM_PARTIAL), as for any offloaded checksum.
    uint32_t pseudo = load16(oip + 12) + load16(oip + 14) + load16(oip + 16) + load16(oip + 18) + 6u +
                      static_cast<uint32_t>(s.tcp_hdr + body);
    store16(tcp + 16, fold(pseudo));
    return kVnetHdrLen + hdrs + body;
}

}  // namespace rmig::wan
