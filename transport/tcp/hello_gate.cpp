#include "transport/tcp/hello_gate.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <vector>

#include "common/error.hpp"
#include "common/log_limiter.hpp"
#include "common/socket.hpp"
#include "transport/admission.hpp"

namespace rmig::transport::tcp {

namespace {

using Clock = std::chrono::steady_clock;

void set_blocking(int fd, bool blocking) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

struct Pending {
    UniqueFd fd;
    std::string peer;
    wire::HelloBytes buf{};
    size_t got = 0;
    Clock::time_point deadline;
};

}  // namespace

HelloGate::HelloGate(UniqueFd listen_fd, const Options& opts)
    : listen_fd_(std::move(listen_fd)), opts_(opts), ready_(opts.pending) {
    set_blocking(listen_fd_.get(), false);
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) throw_errno("eventfd for the tcp listener");
    wake_ = UniqueFd(efd);
    thread_ = std::thread([this] { run(); });
}

HelloGate::~HelloGate() {
    stop_ = true;
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
    thread_.join();
}

std::optional<Greeted> HelloGate::next(Millis timeout) { return ready_.pop_newest(timeout); }

void HelloGate::run() {
    log::Limiter dropped("connections dropped before their hello");
    Admission admission(opts_.pending);
    std::map<uint64_t, Pending> pending;  // by arrival: the admission's ids
    uint64_t next_id = 0;
    auto drop = [&](uint64_t id, const std::string& what) {
        auto it = pending.find(id);
        if (it == pending.end()) return;
        dropped.warn("dropped connection from ", it->second.peer, ": ", what);
        admission.remove(id);
        pending.erase(it);
    };
    std::function<void(uint64_t)> read_hello;
    auto accept_all = [&] {
        // Bounded per pass, well under the per-address bound, so that a burst
        // from one address cannot push out its own earlier arrivals (a real
        // peer among them) before they were read.
        size_t burst = std::max<size_t>(1, opts_.pending.per_peer / 4);
        for (size_t k = 0; k < burst; ++k) {
            int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE) {
                    // Out of descriptors: the oldest pending one makes room.
                    if (pending.empty()) return false;
                    drop(pending.begin()->first, "out of file descriptors");
                    continue;
                }
                return true;  // EAGAIN, or a connection that died in the queue
            }
            Pending p{UniqueFd(fd), net::peer_name(fd), {}, 0, Clock::now() + opts_.hello_timeout};
            uint64_t id = next_id++;
            for (uint64_t victim : admission.admit(id, peer_address(p.peer)))
                drop(victim,
                     cat("too many connections waiting to say hello (", admission.limits().total, " in all, ",
                         admission.limits().per_peer, " per address); newer ones go first"));
            pending.emplace(id, std::move(p));
            read_hello(id);  // a real peer's hello is usually there already
        }
        return true;
    };
    read_hello = [&](uint64_t id) {
        auto found = pending.find(id);
        if (found == pending.end()) return;
        Pending& p = found->second;
        ssize_t n = ::read(p.fd.get(), p.buf.data() + p.got, p.buf.size() - p.got);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            drop(id, cat("connection ended after ", p.got, " of ", p.buf.size(), " hello bytes"));
            return;
        }
        p.got += static_cast<size_t>(n);
        if (p.got < p.buf.size()) return;
        set_blocking(p.fd.get(), true);
        std::string address = peer_address(p.peer);
        Greeted g{std::move(p.fd), p.buf, std::move(p.peer)};
        admission.remove(id);
        pending.erase(id);
        for (const Greeted& v : ready_.push(std::move(g), address))
            dropped.warn("dropped connection from ", v.peer, ": the listener's owner fell behind");
    };

    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;
    bool accepting = true;
    for (;;) {
        if (stop_) return;
        auto now = Clock::now();
        std::vector<uint64_t> expired;
        auto wait = Millis(500);
        for (auto& [id, p] : pending) {
            if (p.deadline <= now)
                expired.push_back(id);
            else
                wait = std::min(wait, std::chrono::ceil<Millis>(p.deadline - now));
        }
        for (uint64_t id : expired)
            drop(id, cat("no hello within ", opts_.hello_timeout.count(), " ms (", pending.at(id).got, " of ",
                     wire::kHelloSize, " bytes)"));
        fds.assign({{wake_.get(), POLLIN, 0}, {listen_fd_.get(), short(accepting ? POLLIN : 0), 0}});
        ids.clear();
        for (auto& [id, p] : pending) {
            fds.push_back({p.fd.get(), POLLIN, 0});
            ids.push_back(id);
        }
        int r = ::poll(fds.data(), fds.size(), static_cast<int>(accepting ? wait.count() : 10));
        if (r < 0 && errno != EINTR) {
            log::error("tcp listener: poll failed: ", std::strerror(errno));
            std::this_thread::sleep_for(Millis(10));
            continue;
        }
        accepting = true;
        for (size_t i = 0; i < ids.size(); ++i)
            if (fds[i + 2].revents) read_hello(ids[i]);
        // Out of descriptors with nothing to free: wait a little rather than spin.
        if (fds[1].revents & POLLIN) accepting = accept_all();
    }
}

}  // namespace rmig::transport::tcp
