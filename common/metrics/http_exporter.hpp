// Serves a Registry over HTTP for Prometheus: GET /metrics on an address of
// the operator's choosing (opt-in; `--metrics ADDR:PORT`). Small and bounded
// on purpose, since it runs beside a migration: a few scrapes at once (more
// get 503), each request read within a deadline and within a size limit,
// HTTP/1.1 with one response per connection (Connection: close), 404 for any
// other path and 405 for any other method. stop() (and the destructor) end
// it cleanly: no thread or descriptor outlives it. docs/metrics.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "common/metrics/registry.hpp"
#include "common/unique_fd.hpp"

namespace rmig::metrics {

struct ExporterLimits {
    size_t max_connections = 4;  // scrapes served at once; one more is answered 503 and closed
    std::chrono::milliseconds read_deadline{5000};   // for the whole request head
    std::chrono::milliseconds write_deadline{5000};  // for the whole response
    size_t max_request_bytes = 8192;                 // request line and headers (431 beyond)
};

class HttpExporter {
public:
    // Listens on "HOST:PORT" ("[v6]:PORT"; port 0: any free port) and serves
    // `registry`, which must outlive the exporter. Throws Error naming the
    // address if it is malformed or cannot be bound.
    HttpExporter(const std::string& address, Registry& registry, ExporterLimits limits = {});
    ~HttpExporter();
    HttpExporter(const HttpExporter&) = delete;
    HttpExporter& operator=(const HttpExporter&) = delete;

    // Stops accepting, cuts the scrapes in progress, joins every thread.
    // Idempotent.
    void stop();

    std::string address() const { return address_; }  // as bound, with the real port
    uint16_t port() const { return port_; }
    uint64_t scrapes() const { return scrapes_.load(); }  // 200 responses sent

private:
    struct Connection {
        UniqueFd fd;
        std::thread thread;
        std::atomic<bool> done{false};
    };
    void accept_loop();
    void reap(bool all);
    void serve(Connection& c);

    Registry& registry_;
    ExporterLimits limits_;
    UniqueFd listen_fd_;
    UniqueFd stop_fd_;  // an eventfd: readable once stop() was called
    std::string address_;
    uint16_t port_ = 0;
    std::atomic<uint64_t> scrapes_{0};
    std::list<std::unique_ptr<Connection>> connections_;  // the accept thread's only
    std::thread acceptor_;
    std::atomic<bool> stopped_{false};
};

// A command's `--metrics ADDR:PORT`: process_registry() served at `address`
// (and the address logged), or nothing when no address was given.
std::unique_ptr<HttpExporter> serve_process_metrics(const std::optional<std::string>& address);

// The parsed head of an HTTP request, and the response the exporter gives
// it (status line, headers, body): apart from the sockets, for tests.
struct HttpResponse {
    int status = 0;
    std::string reason;
    std::string body;
    std::string extra_headers;  // "Name: value\r\n" lines
    bool head_only = false;     // a HEAD request: headers without the body
};
HttpResponse respond(std::string_view request_head, const Registry& registry);
std::string serialize(const HttpResponse& r);

}  // namespace rmig::metrics
