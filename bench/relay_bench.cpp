// Channel-mode relay throughput against its raw baseline, in one run:
//   raw    : one process writes N bytes into a UNIX socket, another reads them
//            (what a direct QEMU-to-QEMU migration over unix: costs)
//   relay  : the same bytes through SourceRelay -> TCP loopback -> DestRelay
//            (what rmig adds between the two QEMUs)
// with S parallel streams. Prints GB/s of both and the ratio relay/raw.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/units.hpp"
#include "qemu-plugin/dest_relay.hpp"
#include "qemu-plugin/source_relay.hpp"

using namespace rmig;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Writes `bytes` on each of `out`, reads them on each of `in`; returns seconds.
double pump(std::vector<UniqueFd>& out, std::vector<UniqueFd>& in, size_t bytes) {
    auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (auto& fd : out)
        threads.emplace_back([&, f = fd.get()] {
            std::vector<char> buf(256 << 10, 'x');
            for (size_t done = 0; done < bytes; done += buf.size())
                net::write_full(f, buf.data(), std::min(buf.size(), bytes - done));
            ::shutdown(f, SHUT_WR);
        });
    for (auto& fd : in)
        threads.emplace_back([&, f = fd.get()] {
            std::vector<char> buf(256 << 10);
            size_t got = 0;
            while (size_t n = net::read_some(f, buf.data(), buf.size())) got += n;
            if (got != bytes) std::fprintf(stderr, "short stream: %zu of %zu\n", got, bytes);
        });
    for (auto& t : threads) t.join();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double raw(const std::string& dir, uint32_t streams, size_t bytes) {
    UniqueFd l = net::unix_listen(dir + "/raw.sock");
    std::vector<UniqueFd> out, in;
    for (uint32_t i = 0; i < streams; ++i) {
        out.push_back(net::unix_connect(dir + "/raw.sock", milliseconds(1000)));
        in.push_back(net::accept_for(l.get(), milliseconds(1000)));
    }
    return pump(out, in, bytes);
}

double relay(const std::string& dir, uint32_t streams, size_t bytes, size_t chunk) {
    auto session = wire::random_session_id();
    UniqueFd dest_qemu = net::unix_listen(dir + "/dest.sock");
    auto listener = transport::listen("tcp:127.0.0.1:0");
    qemu::DestRelay dest(dir + "/dest.sock", session, streams, chunk);
    std::jthread acceptor([&](std::stop_token st) {
        while (!st.stop_requested())
            if (auto in = listener->next(milliseconds(50))) dest.offer(std::move(in));
    });
    qemu::RelayConfig rc;
    rc.dest_uri = listener->address();
    rc.session = session;
    rc.channels = streams;
    rc.chunk = chunk;
    qemu::SourceRelay src(dir + "/src.sock", rc);
    src.start();
    std::vector<UniqueFd> out, in;
    for (uint32_t i = 0; i < streams; ++i) {
        out.push_back(net::unix_connect(dir + "/src.sock", milliseconds(1000)));
        in.push_back(net::accept_for(dest_qemu.get(), milliseconds(5000)));
        if (!in.back()) throw Error("relay did not connect the destination side");
    }
    double s = pump(out, in, bytes);
    if (auto e = src.bridges().error()) throw Error(*e);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    uint32_t streams = argc > 1 ? static_cast<uint32_t>(std::atoi(argv[1])) : 1;
    size_t bytes = (argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024) << 20;
    int runs = argc > 3 ? std::atoi(argv[3]) : 3;
    if (streams == 0 || runs <= 0) {
        std::fprintf(stderr, "usage: rmig-relay-bench [STREAMS=1] [MIB_PER_STREAM=1024] [RUNS=3]\n");
        return 2;
    }
    std::string dir = "/tmp/rmig-relay-bench-XXXXXX";
    if (!::mkdtemp(dir.data())) return 1;
    try {
        std::vector<double> r, x;
        for (int i = 0; i < runs; ++i) {
            r.push_back(raw(dir, streams, bytes));
            x.push_back(relay(dir, streams, bytes, 1 << 20));
        }
        std::sort(r.begin(), r.end());
        std::sort(x.begin(), x.end());
        double total = double(bytes) * streams;
        double rr = total / r[r.size() / 2], xr = total / x[x.size() / 2];
        std::printf("streams %u, %s each, median of %d\n", streams, format_bytes(double(bytes)).c_str(), runs);
        std::printf("  raw unix socket   %s\n", format_rate(rr).c_str());
        std::printf("  rmig relay (tcp)  %s\n", format_rate(xr).c_str());
        std::printf("  ratio relay/raw   %.3f\n", xr / rr);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig-relay-bench: %s\n", e.what());
        std::system(("rm -rf " + dir).c_str());
        return 1;
    }
    std::system(("rm -rf " + dir).c_str());
    return 0;
}
