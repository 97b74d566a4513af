#include "common/metrics/http_exporter.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "tests/support/http_get.hpp"

using namespace rmig;
using namespace rmig::metrics;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

void fill(Registry& r) {
    r.counter("rmig_relay_sent_bytes_total", "Bytes read from QEMU and sent, by channel.",
              {{"session", "0011"}, {"role", "source"}, {"channel", "0"}})
        ->inc(123456);
    r.gauge("rmig_qemu_remaining_bytes", "Guest RAM QEMU still has to send.", {{"session", "0011"}})->set(4096);
    r.gauge("rmig_odd_labels", "A label value with \"quotes\", a \\ and a\nnewline.",
            {{"path", "C:\\a \"b\"\nc"}})
        ->set(1);
}

}  // namespace

TEST(MetricsHttpExporter, ServesTheRegistryAtSlashMetrics) {
    Registry r;
    fill(r);
    HttpExporter ex("127.0.0.1:0", r);
    ASSERT_NE(ex.port(), 0);
    EXPECT_EQ(ex.address(), cat("127.0.0.1:", ex.port()));
    auto a = test::http_get(ex.address());
    EXPECT_EQ(a.status, 200) << a.raw;
    EXPECT_NE(a.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos)
        << a.headers;
    EXPECT_NE(a.headers.find("Connection: close\r\n"), std::string::npos) << a.headers;
    EXPECT_NE(a.headers.find(cat("Content-Length: ", a.body.size(), "\r\n")), std::string::npos) << a.headers;
    EXPECT_EQ(a.body, r.expose());
    EXPECT_NE(a.body.find("rmig_relay_sent_bytes_total{session=\"0011\",role=\"source\",channel=\"0\"} 123456\n"),
              std::string::npos)
        << a.body;
    // A query string is allowed; HEAD gets the headers only.
    EXPECT_EQ(test::http_get(ex.address(), "/metrics?x=1").status, 200);
    auto head = test::http_exchange(ex.address(), "HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_EQ(head.status, 200);
    EXPECT_TRUE(head.body.empty()) << head.raw;
    EXPECT_EQ(ex.scrapes(), 3u);
    // Values change between scrapes.
    r.counter("rmig_relay_sent_bytes_total", "", {{"session", "0011"}, {"role", "source"}, {"channel", "0"}})->inc();
    EXPECT_NE(test::http_get(ex.address()).body.find("} 123457\n"), std::string::npos);
}

// The scrape passes Prometheus' own checker (Debian's prometheus package).
TEST(MetricsHttpExporter, ScrapePassesPromtool) {
#ifndef RMIG_PROMTOOL
    GTEST_SKIP() << "promtool not found at configure time (Debian package prometheus; scripts/deps.sh installs it)";
#else
    Registry r;
    fill(r);
    HttpExporter ex("127.0.0.1:0", r);
    auto a = test::http_get(ex.address());
    ASSERT_EQ(a.status, 200);
    std::string file = cat(::testing::TempDir(), "/scrape-", ::getpid(), ".txt");
    std::ofstream(file) << a.body;
    std::string out = file + ".promtool";
    int rc = std::system(cat(RMIG_PROMTOOL, " check metrics < ", file, " > ", out, " 2>&1").c_str());
    std::stringstream said;
    said << std::ifstream(out).rdbuf();
    EXPECT_EQ(rc, 0) << said.str() << "\nscrape:\n" << a.body;
    std::remove(file.c_str());
    std::remove(out.c_str());
#endif
}

TEST(MetricsHttpExporter, OtherPathsMethodsAndGarbageAreRefused) {
    Registry r;
    fill(r);
    HttpExporter ex("127.0.0.1:0", r);
    EXPECT_EQ(test::http_get(ex.address(), "/").status, 404);
    EXPECT_EQ(test::http_get(ex.address(), "/metricsx").status, 404);
    auto post = test::http_exchange(ex.address(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(post.status, 405) << post.raw;
    EXPECT_NE(post.headers.find("Allow: GET, HEAD\r\n"), std::string::npos) << post.headers;
    EXPECT_EQ(test::http_exchange(ex.address(), "hello\r\n\r\n").status, 400);
    EXPECT_EQ(test::http_exchange(ex.address(), "GET /metrics SPDY/3\r\n\r\n").status, 400);
    EXPECT_EQ(ex.scrapes(), 0u);
}

TEST(MetricsHttpExporter, RequestSizeIsLimited) {
    Registry r;
    ExporterLimits limits;
    limits.max_request_bytes = 1024;
    HttpExporter ex("127.0.0.1:0", r, limits);
    std::string big = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(4000, 'a') + "\r\n\r\n";
    EXPECT_EQ(test::http_exchange(ex.address(), big).status, 431);
    // Just under the limit is fine.
    std::string fits = "GET /metrics HTTP/1.1\r\nX-Pad: " + std::string(900, 'a') + "\r\n\r\n";
    EXPECT_EQ(test::http_exchange(ex.address(), fits).status, 200);
}

// A client that never finishes its request is answered 408 at the read
// deadline, not held forever.
TEST(MetricsHttpExporter, ASlowRequestIsCutAtTheReadDeadline) {
    Registry r;
    ExporterLimits limits;
    limits.read_deadline = 300ms;
    HttpExporter ex("127.0.0.1:0", r, limits);
    auto t0 = Clock::now();
    auto a = test::http_exchange(ex.address(), "GET /metr", 5000ms);
    auto took = Clock::now() - t0;
    EXPECT_EQ(a.status, 408) << a.raw;
    EXPECT_GE(took, 250ms);
    EXPECT_LT(took, 3000ms);
}

// More scrapes at once than allowed: the extra one is answered 503 at once,
// and the exporter serves again when the others are gone.
TEST(MetricsHttpExporter, ConcurrentScrapesAreBounded) {
    Registry r;
    fill(r);
    ExporterLimits limits;
    limits.max_connections = 2;
    limits.read_deadline = 10000ms;
    HttpExporter ex("127.0.0.1:0", r, limits);
    auto where = net::parse_host_port(ex.address());
    std::vector<UniqueFd> idle;
    for (int i = 0; i < 2; ++i) {
        idle.push_back(net::tcp_connect(where, 2000ms));
        net::write_full(idle.back().get(), "GET /met", 8);
    }
    auto busy = test::http_get(ex.address());
    EXPECT_EQ(busy.status, 503) << busy.raw;
    EXPECT_NE(busy.headers.find("Retry-After: 1\r\n"), std::string::npos);
    // The idle ones finish their requests and are served.
    for (auto& fd : idle) {
        net::write_full(fd.get(), "rics HTTP/1.1\r\n\r\n", 17);
        std::string got(64, '\0');
        ASSERT_TRUE(net::wait_readable(fd.get(), 5000ms));
        got.resize(net::read_some(fd.get(), got.data(), got.size()));
        EXPECT_EQ(got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << got;
    }
    idle.clear();
    // Their threads are reaped within the accept loop's tick; then a scrape works.
    int status = 0;
    for (auto until = Clock::now() + 5s; Clock::now() < until && status != 200;) {
        status = test::http_get(ex.address()).status;
        if (status != 200) std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(status, 200);
}

// stop() ends scrapes in progress at once and closes the port.
TEST(MetricsHttpExporter, StopsCleanlyWithAConnectionOpen) {
    Registry r;
    ExporterLimits limits;
    limits.read_deadline = 60000ms;
    auto ex = std::make_unique<HttpExporter>("127.0.0.1:0", r, limits);
    auto where = net::parse_host_port(ex->address());
    UniqueFd hanging = net::tcp_connect(where, 2000ms);
    net::write_full(hanging.get(), "GET", 3);
    std::this_thread::sleep_for(100ms);  // accepted and being read
    auto t0 = Clock::now();
    ex->stop();
    EXPECT_LT(Clock::now() - t0, 2000ms) << "stop() waited for the slow client";
    ex->stop();  // idempotent
    char c;
    ASSERT_TRUE(net::wait_readable(hanging.get(), 2000ms));
    EXPECT_EQ(net::read_some(hanging.get(), &c, 1), 0u) << "the connection stayed open";
    EXPECT_THROW(net::tcp_connect(where, 500ms), std::exception) << "still listening after stop()";
    ex.reset();
}

TEST(MetricsHttpExporter, ABadOrBusyAddressSaysWhich) {
    Registry r;
    try {
        HttpExporter ex("nonsense", r);
        FAIL() << "accepted an address without a port";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'nonsense'"), std::string::npos) << e.what();
    }
    HttpExporter first("127.0.0.1:0", r);
    EXPECT_THROW(HttpExporter second(first.address(), r), Error);
}
