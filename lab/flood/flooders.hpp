// Strangers at a listener's door, for the tests and the benchmark of
// listeners under a flood (docs/security.md, "Listeners under a flood"):
// each kind holds `connections` unfinished handshakes open against a
// listener, opening a new one for each the listener drops, until stopped.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "security/context.hpp"

namespace rmig::lab {

enum class FloodKind {
    silent,         // connect, say nothing (dpdk: a SYN, then nothing)
    partial_hello,  // connect, send 1 of the hello's 64 bytes
    stalled_auth,   // a whole hello asking for authentication, then no TLS
                    // (rdma: a connect request whose connection is never
                    // established: the REP is never answered with an RTU)
    wrong_key,      // whole TLS handshakes with another pre-shared key
};
const char* to_string(FloodKind k);
FloodKind parse_flood_kind(const std::string& s);  // throws UsageError

struct FloodStats {
    std::atomic<uint64_t> opened{0};          // connections opened
    std::atomic<uint64_t> dropped{0};         // ended by the listener
    std::atomic<uint64_t> refused_auth{0};    // wrong_key: handshakes the listener refused
    std::atomic<uint64_t> failed_connect{0};  // could not even connect
    std::atomic<size_t> holding{0};           // open now
};

struct FloodSpec {
    std::string uri;  // tcp:HOST:PORT, rdma:ADDR:PORT or dpdk:DEVARGS
    std::string from;  // tcp: the local IPv4 address to connect from (another "host": 127.0.0.2)
    FloodKind kind = FloodKind::silent;
    size_t connections = 1000;
    size_t wrong_key_threads = 8;
    bool encrypt = true;  // stalled_auth: offer encryption as the listener wants
    double rate = 0;      // tcp: new connections per second at most; 0 = as fast as possible
};

// Runs the flood on its own threads until destroyed.
class Flood {
public:
    Flood(FloodSpec spec, std::shared_ptr<FloodStats> stats);
    ~Flood();
    Flood(const Flood&) = delete;
    Flood& operator=(const Flood&) = delete;

    // Blocks until `connections` have been opened once (or `timeout_ms`).
    bool wait_up(int timeout_ms) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace rmig::lab
