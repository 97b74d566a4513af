// Manual measurement (not a ctest): one full round of a static region with 1
// or 2 workers, the send stage pipelined or not, with and without lz4, and
// over rdma one-sided writes against page batches. Prints seconds and GB/s
// per configuration (whole migrate_memory() call: connect, layout, round 0,
// an empty final round, confirm); bounded (a few seconds).
// Usage: memory_rounds_measure [MiB=256] [repeats=3] [listen-uri=tcp:127.0.0.1:0]
// e.g. inside the Soft-RoCE VM: memory_rounds_measure 64 2 rdma:10.11.12.1:0
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>

#include "common/error.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

struct Map {
    explicit Map(size_t n) : size(n) {
        void* q = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED) throw_errno("mmap");
        p = static_cast<std::byte*>(q);
    }
    ~Map() { munmap(p, size); }
    std::byte* p;
    size_t size;
};

std::string g_uri = "tcp:127.0.0.1:0";

double run(Map& src, Map& dst, unsigned workers, unsigned depth, Codec codec, bool one_sided) {
    MemoryDestConfig dc;
    dc.regions = {Region{dst.p, dst.size, 0, "ram"}};
    dc.listen_uri = g_uri;
    dc.timeout = 60s;
    std::promise<std::string> addr;
    dc.on_listening = [&](const std::string& a) { addr.set_value(a); };
    auto dest = std::async(std::launch::async, [&] { return receive_memory(dc); });
    MemorySourceConfig sc;
    sc.regions = {Region{src.p, src.size, 0, "ram"}};
    sc.dest_uri = addr.get_future().get();
    sc.workers = workers;
    sc.pipeline_depth = depth;
    sc.codec = codec;
    sc.one_sided = one_sided;
    sc.convergence.downtime_budget_ms = 1e9;  // switch over after round 0
    sc.pause = [] { return std::vector<std::byte>{}; };
    auto r = migrate_memory(sc);
    auto d = dest.get();
    if (!r.ok || !d.ok) throw Error(cat("migration failed: ", r.error, " / ", d.error));
    if (std::memcmp(src.p, dst.p, src.size) != 0) throw Error("destination differs");
    return r.seconds;
}

}  // namespace

int main(int argc, char** argv) {
    const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
    if (argc > 3) g_uri = argv[3];
    const bool rdma = g_uri.rfind("rdma:", 0) == 0;
    Map src(mib << 20), dst(mib << 20);
    // 3 pages in 4 hold text-like data (compressible ~2x), 1 in 4 is zero.
    for (size_t pg = 0; pg < src.size / 4096; ++pg) {
        if (pg % 4 == 3) continue;
        for (size_t o = 0; o < 4096; o += 8) {
            uint64_t v = (pg * 2654435761u) ^ (o / 64) ^ ((o % 64) << 40);
            std::memcpy(src.p + pg * 4096 + o, &v, 8);
        }
    }
    std::printf("%zu MiB, one full round over %s, best of %d\n", mib, g_uri.c_str(), repeats);
    std::printf("%-6s %-8s %-10s %-8s %10s %10s\n", "codec", "workers", "path", "pipeline", "seconds", "GB/s");
    for (Codec codec : {Codec::none, Codec::lz4})
        for (unsigned workers : {1u, 2u})
            for (int one_sided = rdma && codec == Codec::none; one_sided >= 0; --one_sided)
                for (unsigned depth : {0u, 2u}) {
                    if (one_sided && depth) continue;  // one-sided writes do not use the send stage
                    double best = 1e9;
                    for (int i = 0; i < repeats; ++i)
                        best = std::min(best, run(src, dst, workers, depth, codec, one_sided));
                    std::printf("%-6s %-8u %-10s %-8s %10.3f %10.2f\n", std::string(to_string(codec)).c_str(),
                                workers, one_sided ? "one-sided" : "batches", depth ? "2" : "off", best,
                                static_cast<double>(src.size) / best / 1e9);
                }
}
