// rmig-seal-copy-bench: what sealing into rdma's registered slots saves, per
// core and without a NIC. It replays the per-byte work of an encrypted rdma
// channel on a ring of slots in memory, in this thread's CPU time:
//   send, buffered: seal the frame into a channel buffer, copy it slot by slot
//                   into the ring, checksum each slot (rdma's send before);
//   send, in place: seal straight into each slot, checksum it (send_filled);
//   recv, buffered: copy each slot out (checksummed; the first into the
//                   channel buffer, the others gathered into it), open that
//                   into the caller's buffer (SecureChannel before);
//   recv, in place: copy each slot into the caller's buffer (checksummed),
//                   decrypt it there (SecureChannel over recv_into);
// plus memcpy of the same bytes as the raw baseline.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "wire/checksum.hpp"
#include "wire/frame.hpp"
#include "security/frame_cipher.hpp"

using namespace rmig;
using namespace rmig::security;

namespace {

double cpu_now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// GB/s of plaintext for `step` (one frame) run for at least `secs` of CPU time.
double rate(size_t frame, double secs, const std::function<void()>& step) {
    double t0 = cpu_now(), t = 0;
    uint64_t n = 0;
    do {
        step();
        ++n;
        t = cpu_now() - t0;
    } while (t < secs);
    return double(n) * double(frame) / t / 1e9;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: rmig-seal-copy-bench FRAME_BYTES SLOT_BYTES RING_SLOTS SECONDS\n"
                             "  SECONDS of CPU time per variant, split in 15 interleaved rounds\n");
        return 2;
    }
    size_t frame = std::strtoull(argv[1], nullptr, 10), slot = std::strtoull(argv[2], nullptr, 10);
    size_t slots = std::strtoull(argv[3], nullptr, 10);
    double secs = std::strtod(argv[4], nullptr);
    if (frame == 0 || frame > kMaxSealedPlaintext || slot <= wire::kFrameHeaderSize + kSealOverhead || slots < 2 ||
        !(secs > 0)) {
        std::fprintf(stderr, "rmig-seal-copy-bench: bad arguments\n");
        return 2;
    }
    const size_t room = slot - wire::kFrameHeaderSize, sealed_size = frame + kSealOverhead;
    SessionSecret secret;
    std::memset(secret.data(), 0x33, secret.size());
    wire::SessionId session{};
    auto key = derive_frame_key(secret, session, 1, Direction::to_acceptor);
    std::vector<std::byte> plain(frame), out, in, piece, got;
    for (size_t i = 0; i < frame; ++i) plain[i] = std::byte(static_cast<unsigned char>(i * 7));
    std::vector<std::byte> ring(slot * slots);
    size_t head = 0;  // next slot, as the ring wraps
    uint64_t sink = 0;
    auto next_slot = [&] {
        std::byte* s = ring.data() + (head++ % slots) * slot;
        return s + wire::kFrameHeaderSize;
    };

    auto copy = [&] {
        for (size_t off = 0; off < frame; off += room) {
            size_t n = std::min(room, frame - off);
            std::memcpy(next_slot(), plain.data() + off, n);
        }
    };

    FrameSealer s1(key, 1);
    auto send_buffered = [&] {
        s1.seal(wire::FrameType::data, plain, out);
        for (size_t off = 0; off < sealed_size; off += room) {
            size_t n = std::min(room, sealed_size - off);
            std::byte* d = next_slot();
            std::memcpy(d, out.data() + off, n);
            sink += wire::checksum({d, n});
        }
    };
    FrameSealer s2(key, 1);
    auto send_in_place = [&] {
        s2.begin(wire::FrameType::data, plain);
        for (size_t off = 0; off < sealed_size; off += room) {
            size_t n = std::min(room, sealed_size - off);
            std::span<std::byte> d(next_slot(), n);
            s2.write(d, off);
            sink += wire::checksum(d);
        }
    };

    // Receive: put one sealed frame into slots once, and open it
    // over and over with a fresh opener per pass (the counter must match).
    FrameSealer s3(key, 1);
    s3.seal(wire::FrameType::data, plain, out);
    // Its own ring: the send variants run between the receive ones.
    std::vector<std::byte> rx_ring(slot * ((sealed_size + room - 1) / room));
    std::vector<std::pair<std::byte*, size_t>> pieces;
    for (size_t off = 0, i = 0; off < sealed_size; off += room, ++i) {
        size_t n = std::min(room, sealed_size - off);
        std::byte* d = rx_ring.data() + i * slot + wire::kFrameHeaderSize;
        std::memcpy(d, out.data() + off, n);
        pieces.emplace_back(d, n);
    }
    auto recv_buffered = [&] {
        FrameOpener o(key, 1, "bench");
        bool first = true;
        for (auto [p, n] : pieces) {  // the first piece is received into `in`, the others gathered
            auto& dst = first ? in : piece;
            dst.resize(n);
            std::memcpy(dst.data(), p, n);
            sink += wire::checksum(dst);
            if (!first) in.insert(in.end(), piece.begin(), piece.end());
            first = false;
        }
        o.open(in, got);
    };
    auto recv_in_place = [&] {
        FrameOpener o(key, 1, "bench");
        got.resize(frame);
        size_t at = 0;
        std::byte prefix[kSealPrefix], tag[kTagSize];
        for (auto [p, n] : pieces) {
            for (size_t k = 0; k < n;) {
                size_t take;
                if (at < kSealPrefix) {
                    take = std::min(n - k, kSealPrefix - at);
                    std::memcpy(prefix + at, p + k, take);
                    if (at + take == kSealPrefix) o.begin(prefix);
                } else if (at < kSealPrefix + frame) {
                    take = std::min(n - k, kSealPrefix + frame - at);
                    std::span<std::byte> d(got.data() + (at - kSealPrefix), take);
                    std::memcpy(d.data(), p + k, take);
                    sink += wire::checksum(d);
                    o.decrypt_in_place(d);
                } else {
                    take = std::min(n - k, sealed_size - at);
                    std::memcpy(tag + (at - kSealPrefix - frame), p + k, take);
                }
                at += take;
                k += take;
            }
        }
        o.finish(tag);
    };
    // Interleaved rounds: the machine's load changes over seconds, so each
    // round measures every variant back to back and ratios are taken per round.
    constexpr int kRounds = 15;
    std::vector<double> r_copy, r_sb, r_si, r_rb, r_ri, send_ratio, recv_ratio;
    for (int r = 0; r < kRounds; ++r) {
        double slice = secs / kRounds;
        r_copy.push_back(rate(frame, slice, copy));
        r_sb.push_back(rate(frame, slice, send_buffered));
        r_si.push_back(rate(frame, slice, send_in_place));
        r_rb.push_back(rate(frame, slice, recv_buffered));
        r_ri.push_back(rate(frame, slice, recv_in_place));
        send_ratio.push_back(r_si.back() / r_sb.back());
        recv_ratio.push_back(r_ri.back() / r_rb.back());
    }
    if (got != plain) {
        std::fprintf(stderr, "rmig-seal-copy-bench: round trip mismatch\n");
        return 1;
    }
    std::printf("frame %zu B, slot %zu B, ring %zu slots; GB/s of plaintext per core (CPU time, median of %d "
                "interleaved rounds)\n", frame, slot, slots, kRounds);
    std::printf("memcpy into slots      %7.3f\n", median(r_copy));
    std::printf("send: seal, then copy  %7.3f\n", median(r_sb));
    std::printf("send: seal into slots  %7.3f   in place / buffered %.2f (median of per-round ratios)\n",
                median(r_si), median(send_ratio));
    std::printf("recv: gather, open     %7.3f\n", median(r_rb));
    std::printf("recv: copy, open there %7.3f   in place / buffered %.2f\n", median(r_ri), median(recv_ratio));
    return sink == 42 ? 3 : 0;  // keeps the checksums from being optimised away
}
