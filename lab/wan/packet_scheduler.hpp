// What happens to each packet on one direction of an emulated path: pure
// logic with the clock passed in, so every property (rate, delay, drop-tail,
// loss, bursts, reordering, outages) is tested without root or a network.
//
// The model, in order, for a packet of `bytes` arriving at `now`:
//   1. the path is down (an outage covers `now`): dropped (outage);
//   2. burst loss (Gilbert-Elliott, one step per packet), then independent
//      loss: dropped (loss). Lost upstream of the bottleneck, so a lost
//      packet does not take its share of the rate;
//   3. the bottleneck: a FIFO drained at `rate`. Its backlog is the bytes not
//      yet serialized; if backlog + bytes would exceed the bound, dropped
//      (queue, drop-tail). Otherwise it leaves the bottleneck at
//      departure = max(now, last departure) + bytes * 8 / rate;
//   4. propagation: release = departure + delay (+/- the reorder gap for a
//      reordered packet). A packet on the wire (from the start of its
//      serialization to its release) at any moment while the path is down
//      is lost with it: dropped (outage). Packets still queued at the
//      bottleneck survive an outage that ends before their turn comes.
// The caller holds forwarded packets and hands each to the far side at its
// release time; releases are in arrival order unless reordering is on.
// Outages marked `reset` also make the path forget its connections when
// they end: the scheduler says how many such ends have passed
// (resets_ended), the caller's ConnectionFirewall (reset_firewall.hpp)
// acts on it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>

#include "lab/wan/link_shape.hpp"

namespace rmig::wan {

enum class Fate : uint8_t { forward, drop_queue, drop_loss, drop_outage };
const char* to_string(Fate f);

struct Decision {
    Fate fate = Fate::forward;
    Nanos release{0};  // when to deliver (forward only), on the caller's clock
    bool reordered = false;
};

class PacketScheduler {
public:
    // `start`: the path's time zero on the caller's clock (outages count from
    // it). `seed`: the loss and reordering draws, so a run can be repeated.
    // `outage_clock`, if given, replaces `start` for outages: the time zero
    // it holds (nanoseconds on the caller's clock), kNotStarted until someone
    // starts it (rmig-wan --outage-clock signal); no outage before that.
    PacketScheduler(LinkShape shape, uint64_t seed, Nanos start,
                    const std::atomic<int64_t>* outage_clock = nullptr);
    static constexpr int64_t kNotStarted = INT64_MAX;

    Decision enqueue(size_t bytes, Nanos now);
    // Bytes in the bottleneck queue (not yet serialized) at `now`.
    uint64_t backlog(Nanos now) const;
    bool down(Nanos now) const;
    // Occurrences of reset outages that have ended by `now`, all outages
    // together: each time it grows, the path has forgotten every connection.
    uint64_t resets_ended(Nanos now) const;
    const LinkShape& shape() const { return shape_; }

private:
    bool lost();
    bool down_during(Nanos from, Nanos to) const;
    std::optional<Nanos> outage_zero() const;  // nullopt: the outage clock has not started
    double uniform();  // [0, 1), the same sequence on every platform for a seed

    LinkShape shape_;
    uint64_t queue_limit_;
    std::mt19937_64 rng_;
    Nanos start_;
    const std::atomic<int64_t>* outage_clock_;
    Nanos last_departure_;
    uint64_t carry_ = 0;  // the remainder of bits*1e9/rate, so rounding never drifts the rate
    bool bad_state_ = false;
};

}  // namespace rmig::wan
