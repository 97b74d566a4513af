// TCP segmentation offload through the emulator. With offloads on, the TUN
// devices hand the forwarder what the sender's TCP built: one IPv4/TCP packet
// of up to 64 KiB behind a virtio_net_hdr that says "cut me into segments of
// gso_size" (TSO), and take such packets back, delivering them to the
// receiver's stack whole, as a NIC's GRO would. One read and one write then
// carry up to ~44 segments instead of one, which is what lets this 2-core
// machine forward above 1 Gbit/s (docs/wan-emulator.md).
//
// The link's model still acts on every segment (its bytes, its loss, its
// place in the queue). Here are the pieces that make that possible: the
// segments a packet stands for, and a packet rebuilt from a run of them
// (headers fixed up as the kernel's own segmentation would) when the model
// dropped, reordered or spaced some of its segments apart.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace rmig::wan {

// struct virtio_net_hdr, as TUN reads and writes it with IFF_VNET_HDR (the
// legacy header, host byte order; this code runs on little-endian x86).
inline constexpr size_t kVnetHdrLen = 10;
inline constexpr uint8_t kVnetNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr uint8_t kGsoNone = 0, kGsoTcpV4 = 1, kGsoEcn = 0x80;

struct VnetHdr {
    uint8_t flags = 0;
    uint8_t gso_type = kGsoNone;
    uint16_t hdr_len = 0, gso_size = 0, csum_start = 0, csum_offset = 0;
};
VnetHdr read_vnet_hdr(const unsigned char* p);
void write_vnet_hdr(const VnetHdr& h, unsigned char* p);

// What one packet read from the device (vnet header first) stands for.
struct Segments {
    size_t count = 1;  // segments on the wire
    size_t ip_hdr = 0, tcp_hdr = 0;
    size_t payload = 0;                 // TCP payload bytes of the whole packet
    size_t mss = 0;                     // gso_size; 0 for a packet that is not cut
    bool tso = false;                   // an IPv4/TCP packet to be cut into `count`
    size_t wire_bytes(size_t i) const;  // IP bytes of segment i
    size_t total_wire_bytes() const;
};

// `len` includes the vnet header. A packet that is not a well-formed
// IPv4/TCP TSO packet counts as one segment of its own size (it is passed on
// as it is); nullopt only if `len` cannot even hold the vnet header.
std::optional<Segments> inspect(const unsigned char* packet, size_t len);

// Writes segments [first, first + n) of `packet` as one packet into `out`
// (room for the original's length): a TSO packet if n > 1, a plain one if
// n == 1. IPv4 total length, id (+first, as the kernel's segmentation
// counts) and header checksum, TCP sequence number, FIN/PSH (last segment
// only), CWR (first only) and the pseudo-header checksum the receiver
// completes are rewritten. Returns the bytes written (vnet header included).
size_t build_run(const unsigned char* packet, const Segments& s, size_t first, size_t n, unsigned char* out);

// The IPv4 header checksum of `hdr` (its checksum field taken as zero).
uint16_t ipv4_header_checksum(const unsigned char* hdr, size_t len);

}  // namespace rmig::wan
