// rmig-flood: holds unfinished handshakes open against an rmig listener (the
// strangers of docs/security.md, "Listeners under a flood") and, with
// --probe, measures how long a legitimate peer then takes to get in.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "lab/flood/flooders.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"

using namespace rmig;

namespace {

const char* kUsage = R"(usage: rmig-flood --to URI [options]

Holds --connections unfinished handshakes open against the rmig listener at
URI (tcp:HOST:PORT; rdma:ADDR:PORT for --kind stalled-auth; dpdk:DEVARGS for
--kind silent; any of them for wrong-key), opening a new one for
each the listener drops, for --seconds. With --probe, once the flood is up, a
legitimate peer opens a control channel (and, with --probe-bytes, data
channel 1 carrying that many pattern bytes) and the time it took is reported.

  --to URI            the listener; required
  --kind K            silent (connect, say nothing), partial-hello (1 byte of
                      the 64-byte hello), stalled-auth (a whole hello asking
                      for authentication, then no TLS; over rdma a connect
                      request that is never established), wrong-key (TLS
                      handshakes with a random pre-shared key); default silent
  --from ADDR         tcp: connect from this local IPv4 address (127.0.0.2
                      plays another host on loopback); default the kernel's
  --connections N     held at once (wrong-key: handshakes in a row on 8
                      threads); default 1000; 0 = no flood (an idle baseline)
  --rate R            tcp: new connections per second at most (default: as
                      fast as the listener drops them)
  --seconds S         how long to flood after the probe, or in all without
                      one; default 5 (SIGTERM ends it sooner, with the report)
  --probe             connect as a legitimate peer once the flood is up
  --probe-bytes N     bytes the probe sends on data channel 1; default 0
  --psk-file F        the probe's key (as rmig migrate --psk-file)
  --insecure-plaintext  the probe runs without authentication
  --ready-file F      write "up" there once the flood is up (for scripts)
  --json              print one JSON object on stdout
  --help              this text

exit codes: 0 done (the probe, if asked, got in), 1 the probe failed,
2 bad arguments
)";

using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// SIGTERM/SIGINT end the flood early; the report is still written.
volatile std::sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

struct Probe {
    bool ok = false;
    double connect_ms = 0, total_ms = 0;
    std::string error;
};

Probe probe(const std::string& uri, std::shared_ptr<const security::Context> ctx, uint64_t bytes) {
    Probe p;
    auto t0 = Clock::now();
    try {
        transport::Options o;
        wire::Hello h;
        h.kind = wire::ChannelKind::control;
        h.session = wire::random_session_id();
        h.channel_count = 1;  // what a memory-mode destination expects; data channel 1 only with --probe-bytes
        auto control = security::connect(uri, h, o, ctx);
        p.connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (bytes) {
            wire::Hello d = h;
            d.kind = wire::ChannelKind::data;
            d.channel_id = 1;
            auto data = security::connect(uri, d, o, ctx);
            std::vector<std::byte> chunk(1 << 20);
            for (uint64_t sent = 0; sent < bytes;) {
                size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), bytes - sent));
                for (size_t i = 0; i < n; ++i) chunk[i] = std::byte((sent + i) * 131 % 251);
                data->send(wire::FrameType::data, std::span(chunk.data(), n));
                sent += n;
            }
            data->send(wire::FrameType::end, {});
            std::vector<std::byte> ack;
            data->recv(ack);  // the listener's word that it has them all
        }
        p.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        p.ok = true;
    } catch (const std::exception& e) {
        p.error = e.what();
    }
    return p;
}

int run(const std::vector<std::string>& argv) {
    Args a(argv, {"to", "from", "kind", "connections", "seconds", "probe-bytes", "psk-file", "ready-file", "rate"},
           {"probe", "insecure-plaintext", "json", "help"});
    if (a.flag("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    auto to = a.get("to");
    if (!to) throw UsageError("--to URI is required (see --help)");
    lab::FloodSpec spec;
    spec.uri = *to;
    spec.kind = lab::parse_flood_kind(a.get_or("kind", "silent"));
    spec.from = a.get_or("from", "");
    spec.rate = static_cast<double>(a.number("rate", 0));
    spec.connections = a.number("connections", 1000);
    auto seconds = a.number("seconds", 5);
    std::shared_ptr<const security::Context> ctx;
    if (a.flag("probe")) {
        if (auto f = a.get("psk-file")) {
            security::Config c;
            c.psk = security::read_psk_file(*f);
            ctx = security::Context::create(c);
        } else if (!a.flag("insecure-plaintext")) {
            throw UsageError("--probe needs --psk-file F or --insecure-plaintext");
        }
    }
    auto stats = std::make_shared<lab::FloodStats>();
    std::unique_ptr<lab::Flood> flood;
    bool up = true;
    if (spec.connections > 0) {
        if (spec.kind == lab::FloodKind::wrong_key) spec.wrong_key_threads = std::min<size_t>(spec.connections, 8);
        flood = std::make_unique<lab::Flood>(spec, stats);
        up = flood->wait_up(30000);
        log::info("flood ", to_string(spec.kind), ": ", stats->opened.load(), " opened, ", stats->holding.load(),
                  " held", up ? "" : " (not all came up within 30 s)");
    }
    if (auto f = a.get("ready-file")) std::ofstream(*f) << (up ? "up\n" : "partly up\n");
    Probe p;
    if (a.flag("probe")) p = probe(*to, ctx, a.number("probe-bytes", 0));
    for (auto until = Clock::now() + std::chrono::seconds(seconds); !g_stop && Clock::now() < until;)
        std::this_thread::sleep_for(Millis(50));
    size_t holding = stats->holding;
    flood.reset();
    nlohmann::json j{{"kind", to_string(spec.kind)},        {"connections", spec.connections},
                     {"flood_up", up},                      {"opened", stats->opened.load()},
                     {"dropped_by_listener", stats->dropped.load()},
                     {"refused_auth", stats->refused_auth.load()},
                     {"failed_connect", stats->failed_connect.load()}, {"holding_at_end", holding}};
    if (a.flag("probe"))
        j["probe"] = {{"ok", p.ok}, {"connect_ms", p.connect_ms}, {"total_ms", p.total_ms}, {"error", p.error}};
    if (a.flag("json")) std::printf("%s\n", j.dump().c_str());
    else std::fprintf(stderr, "%s\n", j.dump(2).c_str());
    return a.flag("probe") && !p.ok ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    log::set_prefix("rmig-flood");
    std::signal(SIGTERM, on_stop);
    std::signal(SIGINT, on_stop);
    try {
        return run(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const UsageError& e) {
        std::fprintf(stderr, "rmig-flood: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig-flood: %s\n", e.what());
        return 1;
    }
}
