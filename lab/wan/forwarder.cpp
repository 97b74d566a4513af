#include "lab/wan/forwarder.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::wan {

Nanos monotonic_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return Nanos(int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec);
}

size_t held_bytes_bound(const LinkShape& shape) {
    if (!shape.rate_bps) return 256u << 20;
    double in_flight = static_cast<double>(shape.queue_limit()) +
                       static_cast<double>(shape.rate_bps) / 8 * std::chrono::duration<double>(shape.delay).count();
    return std::max<size_t>(128u << 20, static_cast<size_t>(3 * in_flight));
}

Forwarder::Forwarder(std::string label, int from, int to, PacketScheduler scheduler, unsigned mtu, bool offload,
                     Nanos coalesce, size_t max_held_bytes)
    : label_(std::move(label)), from_(from), to_(to), scheduler_(std::move(scheduler)), offload_(offload),
      coalesce_(coalesce), max_held_bytes_(max_held_bytes) {
    // The device hands out nothing over its MTU (WanLink sets it; not to be
    // changed by hand), or with offloads a TSO packet of up to 64 KiB.
    const size_t packet = mtu + 64u + (offload ? kVnetHdrLen : 0);
    class_size_.push_back(packet);
    if (offload)
        for (size_t size : {size_t{16} << 10, size_t{32} << 10, size_t{65536 + 256}})
            if (size > class_size_.back()) class_size_.push_back(size);
    free_.resize(class_size_.size());
    if (scheduler_.shape().has_reset_outage()) firewall_.emplace();
    scratch_.resize(class_size_.back());
    stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_) throw_errno(cat("forwarder ", label_, ": eventfd"));
    thread_ = std::thread([this] { run(); });
}

Forwarder::~Forwarder() {
    uint64_t one = 1;
    if (::write(stop_.get(), &one, sizeof one) < 0) log::warn("forwarder ", label_, ": cannot signal stop");
    if (thread_.joinable()) thread_.join();
}

DirectionStats Forwarder::stats() const {
    auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    DirectionStats s;
    s.packets_in = r(packets_in_);
    s.bytes_in = r(bytes_in_);
    s.packets_out = r(packets_out_);
    s.bytes_out = r(bytes_out_);
    s.dropped_queue = r(dropped_queue_);
    s.dropped_loss = r(dropped_loss_);
    s.dropped_outage = r(dropped_outage_);
    s.dropped_reset = r(dropped_reset_);
    s.resets_sent = r(resets_sent_);
    s.dropped_overflow = r(dropped_overflow_);
    s.write_errors = r(write_errors_);
    s.reads = r(reads_);
    s.writes = r(writes_);
    s.held = r(held_count_);
    s.buffer_bytes = r(buffer_bytes_);
    return s;
}

int Forwarder::take_buffer(size_t bytes) {
    size_t c = 0;
    while (c + 1 < class_size_.size() && class_size_[c] < bytes) ++c;
    auto& free = free_[c];
    if (!free.empty()) {
        uint32_t b = free.back();
        free.pop_back();
        return static_cast<int>(b);
    }
    size_t size = class_size_[c];
    if (allocated_bytes_ + size > max_held_bytes_) return -1;
    allocated_bytes_ += size;
    buffer_bytes_.store(allocated_bytes_, std::memory_order_relaxed);
    buffers_.push_back({std::make_unique<unsigned char[]>(size), c});
    return static_cast<int>(buffers_.size() - 1);
}

void Forwarder::give_back(uint32_t buffer) {
    free_[buffers_[buffer].size_class].push_back(buffer);
}

void Forwarder::read_batch() {
    for (int i = 0; i < kReadBatch; ++i) {
        const size_t largest = class_size_.back();
        int b = take_buffer(largest);
        unsigned char* buf = b >= 0 ? buffers_[static_cast<size_t>(b)].data.get() : scratch_.data();
        ssize_t n = ::read(from_, buf, largest);
        if (n <= 0) {
            if (b >= 0) give_back(static_cast<uint32_t>(b));
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log::warn("forwarder ", label_, ": read: ", std::strerror(errno));
            return;
        }
        bump(reads_);
        auto len = static_cast<size_t>(n);
        if (b < 0) {
            auto s = offload_ ? inspect(buf, len) : std::optional<Segments>();
            bump(packets_in_, s ? s->count : 1);
            bump(bytes_in_, s ? s->total_wire_bytes() : len);
            bump(dropped_overflow_, s ? s->count : 1);
            continue;
        }
        // Small packets (ACKs) do not pin a 64 KiB buffer while they wait.
        if (len <= class_size_[0] && class_size_.size() > 1) {
            int small = take_buffer(len);
            if (small >= 0) {
                std::memcpy(buffers_[static_cast<size_t>(small)].data.get(), buf, len);
                give_back(static_cast<uint32_t>(b));
                b = small;
            }
        }
        schedule(static_cast<uint32_t>(b), len);
    }
}

void Forwarder::hold(uint32_t buffer, size_t length, const Run& run) {
    held_.push({run.release, seq_++, buffer, static_cast<uint32_t>(length), static_cast<uint32_t>(run.n),
                static_cast<uint32_t>(run.wire_bytes)});
    held_count_.store(held_.size(), std::memory_order_relaxed);
}

// The run becomes a packet of its own: the source itself if it is all of
// it, else a rebuilt one in a buffer of the right size.
void Forwarder::hold_run(uint32_t source, const Segments& s, const Run& run, bool& source_taken) {
    const unsigned char* src = buffers_[source].data.get();
    if (run.first == 0 && run.n == s.count) {
        source_taken = true;
        hold(source, kVnetHdrLen + s.ip_hdr + s.tcp_hdr + s.payload, run);
        return;
    }
    size_t need = kVnetHdrLen + run.wire_bytes - (run.n - 1) * (s.ip_hdr + s.tcp_hdr);
    int b = take_buffer(need);
    if (b < 0) {
        bump(dropped_overflow_, run.n);
        return;
    }
    size_t len = build_run(src, s, run.first, run.n, buffers_[static_cast<size_t>(b)].data.get());
    hold(static_cast<uint32_t>(b), len, run);
}

void Forwarder::schedule(uint32_t buffer, size_t len) {
    const unsigned char* data = buffers_[buffer].data.get();
    Segments s;
    if (offload_) {
        auto seen = inspect(data, len);
        if (!seen) {  // shorter than its vnet header: nothing a kernel would send
            bump(packets_in_);
            bump(bytes_in_, len);
            bump(dropped_overflow_);
            give_back(buffer);
            return;
        }
        s = *seen;
    } else {
        s.payload = len;  // one packet, `payload` holding its IP length (Segments::wire_bytes)
    }
    bump(packets_in_, s.count);
    bump(bytes_in_, s.total_wire_bytes());
    const Nanos now = monotonic_now();
    // The middlebox sits where the path starts: while the path is down the
    // packet is the outage's (below); a forgotten connection's packet is
    // dropped whole, before the model takes its share of anything.
    if (firewall_ && !scheduler_.down(now)) {
        const size_t hdr = offload_ ? kVnetHdrLen : 0;
        FirewallVerdict v = firewall_->check(data + hdr, len - hdr, scheduler_.resets_ended(now));
        if (v != FirewallVerdict::pass) {
            bump(dropped_reset_, s.count);
            if (v == FirewallVerdict::drop_reset) send_reset(data + hdr, len - hdr);
            give_back(buffer);
            return;
        }
    }
    bool source_taken = false;
    Run run;
    auto close = [&] {
        if (run.n == 0) return;
        if (s.tso)
            hold_run(buffer, s, run, source_taken);
        else {
            source_taken = true;
            hold(buffer, len, run);
        }
        run = Run{};
    };
    for (size_t i = 0; i < s.count; ++i) {
        size_t wire = s.wire_bytes(i);
        Decision d = scheduler_.enqueue(wire, now);
        if (d.fate != Fate::forward) {
            bump(d.fate == Fate::drop_queue  ? dropped_queue_
                 : d.fate == Fate::drop_loss ? dropped_loss_
                                             : dropped_outage_);
            close();
            continue;
        }
        if (d.reordered || (run.n && d.release - run.first_release > kRunSpan)) close();
        if (run.n == 0) {
            run.first = i;
            run.first_release = d.release;
        }
        ++run.n;
        run.release = d.release;
        run.wire_bytes += wire;
        if (d.reordered) close();  // alone: it leaves out of order
    }
    close();
    if (!source_taken) give_back(buffer);
}

void Forwarder::send_reset(const unsigned char* ip, size_t len) {
    auto p = parse_tcp(ip, len);
    if (!p) return;
    // With offloads every packet written carries a vnet header: all zero, no
    // GSO and no NEEDS_CSUM, since both checksums are complete.
    unsigned char out[kVnetHdrLen + kResetLen] = {};
    const size_t hdr = offload_ ? kVnetHdrLen : 0;
    build_reset(*p, out + hdr);
    ssize_t n = ::write(from_, out, hdr + kResetLen);
    if (n == static_cast<ssize_t>(hdr + kResetLen))
        bump(resets_sent_);
    else
        log::warn("forwarder ", label_, ": writing a reset back: ", n < 0 ? std::strerror(errno) : "short write");
}

void Forwarder::deliver_due(Nanos now) {
    while (!held_.empty() && held_.top().release <= now) {
        Held h = held_.top();
        held_.pop();
        held_count_.store(held_.size(), std::memory_order_relaxed);
        ssize_t n = ::write(to_, buffers_[h.buffer].data.get(), h.length);
        bump(writes_);
        if (n == static_cast<ssize_t>(h.length)) {
            bump(packets_out_, h.segments);
            bump(bytes_out_, h.wire_bytes);
        } else {
            bump(write_errors_, h.segments);  // EIO while the far device is down, e.g. during teardown
        }
        give_back(h.buffer);
    }
}

void Forwarder::run() {
    ::prctl(PR_SET_TIMERSLACK, 1000UL);  // 1 us, this thread only
    pollfd fds[2] = {{from_, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    for (;;) {
        Nanos now = monotonic_now();
        deliver_due(now);
        timespec ts{};
        timespec* timeout = nullptr;
        if (!held_.empty()) {
            int64_t wait = (held_.top().release + coalesce_ - monotonic_now()).count();
            if (wait <= 0) continue;
            ts.tv_sec = wait / 1'000'000'000;
            ts.tv_nsec = wait % 1'000'000'000;
            timeout = &ts;
        }
        int n = ::ppoll(fds, 2, timeout, nullptr);
        if (n < 0) {
            if (errno == EINTR) continue;
            log::error("forwarder ", label_, ": ppoll: ", std::strerror(errno), "; this direction stops forwarding");
            return;
        }
        if (fds[1].revents) return;
        if (fds[0].revents & POLLIN) read_batch();
        if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            log::error("forwarder ", label_, ": the TUN device failed (revents ", fds[0].revents,
                       "); this direction stops forwarding");
            return;
        }
    }
}

}  // namespace rmig::wan
