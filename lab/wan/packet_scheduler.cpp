#include "lab/wan/packet_scheduler.hpp"

#include <algorithm>

namespace rmig::wan {

const char* to_string(Fate f) {
    switch (f) {
        case Fate::forward:
            return "forward";
        case Fate::drop_queue:
            return "drop_queue";
        case Fate::drop_loss:
            return "drop_loss";
        case Fate::drop_outage:
            return "drop_outage";
    }
    return "?";
}

PacketScheduler::PacketScheduler(LinkShape shape, uint64_t seed, Nanos start,
                                 const std::atomic<int64_t>* outage_clock)
    : shape_(std::move(shape)),
      queue_limit_(shape_.queue_limit()),
      rng_(seed),
      start_(start),
      outage_clock_(outage_clock),
      last_departure_(start) {}

std::optional<Nanos> PacketScheduler::outage_zero() const {
    if (!outage_clock_) return start_;
    int64_t z = outage_clock_->load(std::memory_order_relaxed);
    if (z == kNotStarted) return std::nullopt;
    return Nanos(z);
}

double PacketScheduler::uniform() {
    return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

bool PacketScheduler::down(Nanos now) const {
    auto zero = outage_zero();
    return zero && std::any_of(shape_.outages.begin(), shape_.outages.end(),
                               [&](const Outage& o) { return o.covers(now - *zero); });
}

uint64_t PacketScheduler::resets_ended(Nanos now) const {
    auto zero = outage_zero();
    uint64_t n = 0;
    if (!zero) return 0;
    for (const Outage& o : shape_.outages)
        if (o.reset) n += o.ended(now - *zero);
    return n;
}

bool PacketScheduler::down_during(Nanos from, Nanos to) const {
    auto zero = outage_zero();
    return zero && std::any_of(shape_.outages.begin(), shape_.outages.end(),
                               [&](const Outage& o) { return o.overlaps(from - *zero, to - *zero); });
}

bool PacketScheduler::lost() {
    bool lose = false;
    if (shape_.burst.enabled()) {
        // Step the chain first, so the packet that enters the bad state is the
        // first of its burst.
        bad_state_ = bad_state_ ? uniform() >= shape_.burst.p_bad_to_good : uniform() < shape_.burst.p_good_to_bad;
        if (bad_state_ && uniform() < shape_.burst.loss_in_bad) lose = true;
    }
    if (shape_.loss > 0 && uniform() < shape_.loss) lose = true;
    return lose;
}

uint64_t PacketScheduler::backlog(Nanos now) const {
    if (shape_.rate_bps == 0 || last_departure_ <= now) return 0;
    // In double: exact enough (well under a byte) and no overflow for any rate x time.
    double ns = static_cast<double>((last_departure_ - now).count());
    return static_cast<uint64_t>(ns * static_cast<double>(shape_.rate_bps) / 8e9);
}

Decision PacketScheduler::enqueue(size_t bytes, Nanos now) {
    Decision d;
    if (down(now)) {
        d.fate = Fate::drop_outage;
        return d;
    }
    if (lost()) {
        d.fate = Fate::drop_loss;
        return d;
    }
    Nanos departure = now, on_wire = now;
    if (shape_.rate_bps) {
        if (backlog(now) + bytes > queue_limit_) {
            d.fate = Fate::drop_queue;
            return d;
        }
        // Exact in integers: bytes * 8e9 fits 64 bits for any packet, and the
        // remainder carries into the next packet's serialization.
        uint64_t num = static_cast<uint64_t>(bytes) * 8'000'000'000ULL + carry_;
        carry_ = num % shape_.rate_bps;
        on_wire = std::max(now, last_departure_);
        departure = on_wire + Nanos(static_cast<int64_t>(num / shape_.rate_bps));
        last_departure_ = departure;
    }
    Nanos delay = shape_.delay;
    if (shape_.reorder.probability > 0 && uniform() < shape_.reorder.probability) {
        delay = std::max(Nanos::zero(), delay + shape_.reorder.gap);
        d.reordered = true;
    }
    d.release = departure + delay;
    if (down_during(on_wire, d.release)) {
        d.fate = Fate::drop_outage;
        return d;
    }
    return d;
}

}  // namespace rmig::wan
