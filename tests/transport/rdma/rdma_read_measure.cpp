// Manual measurement (not a ctest): one-sided RDMA READ throughput by read
// size, reads in flight per channel (OneSided::start_read / wait_read) and
// channels, against one region exposed for reads, for post-copy's pull.
// Usage: rdma_read_measure [MiB=64] [ADDR=10.11.12.1]
// e.g. inside the Soft-RoCE VM:
//   tests/rdma/vm/run-in-vm.sh -- build/tests/transport/rdma/rdma_read_measure 64
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "transport/channel.hpp"

using namespace rmig;
using namespace rmig::transport;

namespace {

struct Map {
    explicit Map(size_t n) : size(n) {
        void* q = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (q == MAP_FAILED) throw_errno("mmap");
        p = static_cast<std::byte*>(q);
        std::memset(p, 0x5a, n);
    }
    ~Map() { munmap(p, size); }
    std::byte* p;
    size_t size;
};

wire::Hello hello_for(const wire::SessionId& s, uint32_t id, uint32_t count) {
    wire::Hello h;
    h.kind = wire::ChannelKind::data;
    h.session = s;
    h.channel_id = id;
    h.channel_count = count;
    return h;
}

// Reads the whole region once over `lanes` channels (each its own thread, its
// own share), `depth` reads of `size` bytes in flight each; returns MB/s.
double measure(std::vector<std::unique_ptr<Channel>>& clients, const std::vector<RemoteRegion>& regions,
               size_t total, size_t size, unsigned depth, unsigned lanes) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (unsigned l = 0; l < lanes; ++l)
        threads.emplace_back([&, l] {
            OneSided& os = *clients[l]->one_sided();
            Map buf(size * depth);
            os.register_local(buf.p, buf.size);
            const size_t share = total / lanes, begin = l * share;
            std::deque<std::pair<uint64_t, unsigned>> flights;
            std::vector<unsigned> free;
            for (unsigned k = 0; k < depth; ++k) free.push_back(k);
            size_t at = begin;
            while (at < begin + share || !flights.empty()) {
                while (!free.empty() && at < begin + share) {
                    const size_t n = std::min(size, begin + share - at);
                    unsigned k = free.back();
                    free.pop_back();
                    flights.emplace_back(os.start_read(regions[l], at, buf.p + k * size, n), k);
                    at += n;
                }
                os.wait_read(flights.front().first);
                free.push_back(flights.front().second);
                flights.pop_front();
            }
        });
    for (auto& t : threads) t.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return static_cast<double>(total) / s / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
    const std::string addr = argc > 2 ? argv[2] : "10.11.12.1";
    try {
        Map src(mib << 20);
        auto listener = listen("rdma:" + addr + ":0");
        const wire::SessionId session = wire::random_session_id();
        std::vector<std::unique_ptr<Channel>> clients, servers;
        std::vector<RemoteRegion> regions;
        for (uint32_t c = 1; c <= 2; ++c) {
            auto fut = std::async(std::launch::async, [&] {
                auto in = listener->next(std::chrono::milliseconds(10000));
                if (!in) throw Error("no connection");
                wire::Hello r = in->hello();
                r.role = wire::Role::destination;
                return in->accept(r);
            });
            clients.push_back(connect(listener->address(), hello_for(session, c, 2)));
            servers.push_back(fut.get());
            regions.push_back(servers.back()->one_sided()->expose_for_read(src.p, src.size));
        }
        std::printf("%zu MiB read one-sided over %s\n%-10s %-6s %-6s %10s\n", mib, addr.c_str(), "read", "depth",
                    "lanes", "MB/s");
        for (size_t size : {size_t{4096}, size_t{64} << 10, size_t{256} << 10, size_t{1} << 20})
            for (unsigned depth : {1u, 4u, 16u})
                for (unsigned lanes : {1u, 2u})
                    std::printf("%-10zu %-6u %-6u %10.1f\n", size, depth, lanes,
                                measure(clients, regions, src.size, size, depth, lanes));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rdma_read_measure: %s\n", e.what());
        return 1;
    }
}
