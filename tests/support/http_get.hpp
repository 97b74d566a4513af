// A minimal HTTP/1.1 client for tests of rmig's /metrics endpoint: sends one
// request (any bytes), reads the whole answer until the server closes, all
// within a deadline, and splits status, headers and body.
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "common/error.hpp"
#include "common/socket.hpp"

namespace rmig::test {

struct HttpAnswer {
    int status = 0;  // 0: no status line (closed, or not HTTP)
    std::string headers;
    std::string body;
    std::string raw;
};

inline HttpAnswer parse_http_answer(std::string raw) {
    HttpAnswer a;
    a.raw = std::move(raw);
    std::sscanf(a.raw.c_str(), "HTTP/1.1 %d", &a.status);
    auto end = a.raw.find("\r\n\r\n");
    if (end != std::string::npos) {
        a.headers = a.raw.substr(0, end + 2);
        a.body = a.raw.substr(end + 4);
    }
    return a;
}

// `request` as is ("" sends nothing and only waits).
inline HttpAnswer http_exchange(const std::string& host_port, const std::string& request,
                                std::chrono::milliseconds deadline = std::chrono::milliseconds(10000)) {
    auto until = std::chrono::steady_clock::now() + deadline;
    UniqueFd fd = net::tcp_connect(net::parse_host_port(host_port), deadline);
    if (!request.empty()) net::write_full(fd.get(), request.data(), request.size());
    std::string raw;
    char buf[4096];
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
        if (left.count() <= 0) throw Error(cat("HTTP exchange with ", host_port, " did not end within the deadline"));
        if (!net::wait_readable(fd.get(), left)) continue;
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) break;  // closed (or reset)
        raw.append(buf, static_cast<size_t>(n));
    }
    return parse_http_answer(std::move(raw));
}

inline HttpAnswer http_get(const std::string& host_port, const std::string& path = "/metrics") {
    return http_exchange(host_port, "GET " + path + " HTTP/1.1\r\nHost: " + host_port + "\r\nConnection: close\r\n\r\n");
}

}  // namespace rmig::test
