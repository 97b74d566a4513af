#include "lab/wan/forwarder.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

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

Forwarder::Forwarder(std::string label, int from, int to, PacketScheduler scheduler, unsigned mtu)
    : label_(std::move(label)), from_(from), to_(to), scheduler_(std::move(scheduler)),
      slot_size_(mtu + 64u),  // the device hands out nothing over its MTU (set by WanLink, not to be changed)
      max_slots_(std::max<size_t>(kMaxHeldBytes / (mtu + 64u), 1024)), scratch_(65536) {
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
    s.dropped_overflow = r(dropped_overflow_);
    s.write_errors = r(write_errors_);
    s.held = r(held_count_);
    return s;
}

int Forwarder::take_slot() {
    if (!free_slots_.empty()) {
        int s = static_cast<int>(free_slots_.back());
        free_slots_.pop_back();
        return s;
    }
    if (slots_.size() >= max_slots_) return -1;
    slots_.push_back(std::make_unique<unsigned char[]>(slot_size_));
    return static_cast<int>(slots_.size() - 1);
}

void Forwarder::read_batch() {
    for (int i = 0; i < kReadBatch; ++i) {
        int slot = take_slot();
        unsigned char* buf = slot >= 0 ? slots_[static_cast<size_t>(slot)].get() : scratch_.data();
        size_t cap = slot >= 0 ? slot_size_ : scratch_.size();
        ssize_t n = ::read(from_, buf, cap);
        if (n <= 0) {
            if (slot >= 0) free_slots_.push_back(static_cast<uint32_t>(slot));
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                log::warn("forwarder ", label_, ": read: ", std::strerror(errno));
            return;
        }
        auto len = static_cast<size_t>(n);
        bump(packets_in_);
        bump(bytes_in_, len);
        if (slot < 0) {
            bump(dropped_overflow_);
            continue;
        }
        Decision d = scheduler_.enqueue(len, monotonic_now());
        switch (d.fate) {
        case Fate::forward:
            held_.push({d.release, seq_++, static_cast<uint32_t>(slot), static_cast<uint32_t>(len)});
            bump(held_count_);
            continue;
        case Fate::drop_queue: bump(dropped_queue_); break;
        case Fate::drop_loss: bump(dropped_loss_); break;
        case Fate::drop_outage: bump(dropped_outage_); break;
        }
        free_slots_.push_back(static_cast<uint32_t>(slot));
    }
}

void Forwarder::deliver_due(Nanos now) {
    while (!held_.empty() && held_.top().release <= now) {
        Held h = held_.top();
        held_.pop();
        held_count_.store(held_.size(), std::memory_order_relaxed);
        ssize_t n = ::write(to_, slots_[h.slot].get(), h.length);
        if (n == static_cast<ssize_t>(h.length)) {
            bump(packets_out_);
            bump(bytes_out_, h.length);
        } else {
            bump(write_errors_);  // EIO while the far device is down, e.g. during teardown
        }
        free_slots_.push_back(h.slot);
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
            int64_t wait = (held_.top().release - monotonic_now()).count();
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
