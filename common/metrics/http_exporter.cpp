#include "common/metrics/http_exporter.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"

namespace rmig::metrics {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

HttpResponse plain(int status, std::string reason, std::string body) {
    return {status, std::move(reason), std::move(body) + "\n", "", false};
}

// Waits until `fd` is ready for `events` or stop_fd is readable; false on
// stop, deadline or error.
bool wait_ready(int fd, short events, int stop_fd, Clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
        int n = ::poll(p, 2, static_cast<int>(left));
        if ((n < 0 && errno == EINTR) || n == 0) continue;  // a timeout ends at the deadline check
        if (n < 0 || p[1].revents) return false;
        return (p[0].revents & (events | POLLHUP | POLLERR)) != 0;
    }
}

// Best effort within the deadline; a scraper that stops reading loses its answer.
void send_all(int fd, std::string_view data, int stop_fd, Clock::time_point deadline) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && wait_ready(fd, POLLOUT, stop_fd, deadline))
            continue;
        return;
    }
}

}  // namespace

HttpResponse respond(std::string_view head, const Registry& registry) {
    auto line_end = head.find("\r\n");
    std::string_view line = head.substr(0, line_end);
    auto sp1 = line.find(' ');
    auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || !line.substr(sp2 + 1).starts_with("HTTP/1."))
        return plain(400, "Bad Request", "expected an HTTP/1.x request line: GET /metrics HTTP/1.1");
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics") return plain(404, "Not Found", "not found; metrics are at /metrics");
    if (method != "GET" && method != "HEAD") {
        auto r = plain(405, "Method Not Allowed", "only GET and HEAD are served");
        r.extra_headers = "Allow: GET, HEAD\r\n";
        return r;
    }
    HttpResponse r{200, "OK", registry.expose(), cat("Content-Type: ", kContentType, "\r\n"), method == "HEAD"};
    return r;
}

std::string serialize(const HttpResponse& r) {
    std::string out = cat("HTTP/1.1 ", r.status, ' ', r.reason, "\r\n", r.extra_headers);
    if (r.extra_headers.find("Content-Type:") == std::string::npos)
        out += "Content-Type: text/plain; charset=utf-8\r\n";
    out += cat("Content-Length: ", r.body.size(), "\r\nConnection: close\r\n\r\n");
    if (!r.head_only) out += r.body;
    return out;
}

std::unique_ptr<HttpExporter> serve_process_metrics(const std::optional<std::string>& address) {
    if (!address) return nullptr;
    auto exporter = std::make_unique<HttpExporter>(*address, process_registry());
    log::info("metrics at http://", exporter->address(), "/metrics");
    return exporter;
}

HttpExporter::HttpExporter(const std::string& address, Registry& registry, ExporterLimits limits)
    : registry_(registry), limits_(limits) {
    net::HostPort where;
    try {
        where = net::parse_host_port(address);
        listen_fd_ = net::tcp_listen(where, 16);
    } catch (const std::exception& e) {
        throw Error(cat("metrics: cannot serve on '", address, "': ", e.what(),
                        " (give --metrics HOST:PORT with a free port, e.g. 127.0.0.1:9464)"));
    }
    port_ = net::local_port(listen_fd_.get());
    where.port = port_;
    address_ = where.str();
    stop_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd_) throw_errno("metrics: eventfd");
    acceptor_ = std::thread([this] { accept_loop(); });
}

HttpExporter::~HttpExporter() { stop(); }

void HttpExporter::stop() {
    if (stopped_.exchange(true)) return;
    uint64_t one = 1;
    if (::write(stop_fd_.get(), &one, sizeof one) < 0) log::warn("metrics: cannot signal the exporter to stop");
    if (acceptor_.joinable()) acceptor_.join();
    reap(true);
    listen_fd_.reset();
}

void HttpExporter::reap(bool all) {
    for (auto it = connections_.begin(); it != connections_.end();) {
        if (all || (*it)->done) {
            (*it)->thread.join();
            it = connections_.erase(it);
        } else {
            ++it;
        }
    }
}

void HttpExporter::accept_loop() {
    for (;;) {
        pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
        int n = ::poll(p, 2, 1000);
        if (n < 0 && errno != EINTR) {
            log::warn("metrics: poll on the listener failed: ", std::strerror(errno), "; no more scrapes");
            return;
        }
        if (p[1].revents) return;
        reap(false);
        if (n <= 0 || !(p[0].revents & POLLIN)) continue;
        UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd) continue;  // the client went away, or out of descriptors for a moment
        if (connections_.size() >= limits_.max_connections) {
            HttpResponse busy = plain(503, "Service Unavailable", "too many scrapes at once; try again");
            busy.extra_headers = "Retry-After: 1\r\n";
            std::string out = serialize(busy);
            (void)::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            continue;
        }
        auto c = std::make_unique<Connection>();
        c->fd = std::move(fd);
        Connection* raw = c.get();
        connections_.push_back(std::move(c));
        raw->thread = std::thread([this, raw] {
            serve(*raw);
            raw->fd.reset();
            raw->done = true;
        });
    }
}

void HttpExporter::serve(Connection& c) {
    int fd = c.fd.get();
    auto deadline = Clock::now() + limits_.read_deadline;
    std::string head;
    std::optional<HttpResponse> answer;
    char buf[1024];
    while (!answer) {
        if (auto end = head.find("\r\n\r\n"); end != std::string::npos && end <= limits_.max_request_bytes) {
            answer = respond(head, registry_);
            break;
        }
        if (head.size() > limits_.max_request_bytes) {
            answer = plain(431, "Request Header Fields Too Large",
                           cat("the request head is longer than ", limits_.max_request_bytes, " bytes"));
            break;
        }
        if (!wait_ready(fd, POLLIN, stop_fd_.get(), deadline)) {
            if (Clock::now() >= deadline) answer = plain(408, "Request Timeout", "the request took too long");
            break;
        }
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) return;  // closed or reset before a whole request
        head.append(buf, static_cast<size_t>(n));
    }
    if (!answer) return;  // stopping
    if (answer->status == 200) ++scrapes_;
    send_all(fd, serialize(*answer), stop_fd_.get(), Clock::now() + limits_.write_deadline);
    // Closing with unread request bytes would reset the connection and could
    // destroy the response on its way: end our side, then take what the
    // client still sends, briefly.
    ::shutdown(fd, SHUT_WR);
    auto linger = Clock::now() + milliseconds(200);
    while (wait_ready(fd, POLLIN, stop_fd_.get(), linger) && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

}  // namespace rmig::metrics
