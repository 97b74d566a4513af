// rmig-crypto-bench: AES-256-GCM throughput of security/'s frame cipher on one
// core in CPU time (seal = encrypt + tag, open = verify + decrypt), for comparison with
// `openssl speed -evp aes-256-gcm -bytes N` (bench/scripts/crypto_vs_openssl.sh).
#include <time.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "security/frame_cipher.hpp"

using namespace rmig;

namespace {

// Per-core figures: CPU time of this thread, as `openssl speed` counts user
// CPU time by default, so a busy shared machine skews neither side.
double cpu_now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: rmig-crypto-bench BLOCK_BYTES SECONDS\n"
                             "prints: seal_gbps open_gbps (10^9 bytes of plaintext per second, one core)\n");
        return 2;
    }
    size_t block = std::strtoull(argv[1], nullptr, 10);
    double secs = std::strtod(argv[2], nullptr);
    if (block == 0 || block > security::kMaxSealedPlaintext || !(secs > 0)) {
        std::fprintf(stderr, "rmig-crypto-bench: bad block size or duration\n");
        return 2;
    }
    security::SessionSecret secret;
    std::memset(secret.data(), 0x33, secret.size());
    wire::SessionId session{};
    auto key = security::derive_frame_key(secret, session, 1, security::Direction::to_acceptor);
    security::FrameSealer sealer(key, 1);
    security::FrameOpener opener(key, 1, "bench");
    std::vector<std::byte> plain(block, std::byte{0x5a}), sealed, out;

    // Seal for `secs`, keeping every sealed frame's counter so open can replay them in order.
    double t0 = cpu_now(), seal_s = 0;
    uint64_t n = 0;
    do {
        for (int i = 0; i < 16; ++i, ++n) sealer.seal(wire::FrameType::data, plain, sealed);
        seal_s = cpu_now() - t0;
    } while (seal_s < secs);

    // Open needs frames in counter order: re-seal each from a second sealer and open it,
    // timing only the opens.
    security::FrameSealer feeder(key, 1);
    double open_s = 0;
    uint64_t m = 0;
    while (open_s < secs) {
        feeder.seal(wire::FrameType::data, plain, sealed);
        double a = cpu_now();
        opener.open(sealed, out);
        open_s += cpu_now() - a;
        ++m;
    }
    if (out != plain) {
        std::fprintf(stderr, "rmig-crypto-bench: round trip mismatch\n");
        return 1;
    }
    std::printf("%.3f %.3f\n", double(n) * double(block) / seal_s / 1e9, double(m) * double(block) / open_s / 1e9);
    return 0;
}
