// How much of the user's downtime limit QEMU may spend.
//
// QEMU decides to switch over when it estimates (pending bytes / the rate it
// writes) that it can send the rest within its downtime-limit. That estimate
// ends when its last byte is in rmig's UNIX socket; then rmig still has to
// drain everything it holds in flight across the link, and the destination
// has to be resumed. So rmig gives QEMU the user's limit minus the drain time
// (bytes in flight / the rate the destination takes them in) and minus an
// allowance for the resume handshake, and keeps it current while the
// migration runs (docs/blackout.md).
#pragma once

#include <cstdint>
#include <deque>
#include <utility>

namespace rmig::qemu {

struct DowntimeBudget {
    uint64_t qemu_limit_ms = 0;  // QEMU's downtime-limit
    double drain_ms = 0;         // rmig's in-flight bytes at the measured rate
    double resume_ms = 0;        // the allowance for finishing and resuming
    bool floored = false;        // drain + resume leave less than the floor: QEMU got the floor
};

// The smallest share of the user's limit QEMU is given, so that a guest can
// still converge when rmig's own drain eats the budget (the blackout then
// exceeds the limit, and the report says why).
inline constexpr double kQemuFloorShare = 0.1;

// `drain_rate` in bytes/s; 0 (not measured yet) assumes no drain time.
DowntimeBudget plan_downtime(uint64_t user_limit_ms, uint64_t in_flight_bytes, double drain_rate,
                             double resume_ms);

// Bytes per second over a sliding time window of cumulative byte counts.
class RateMeter {
public:
    explicit RateMeter(double window_s = 1.0) : window_(window_s) {}
    void add(double t_s, uint64_t total_bytes);
    // 0 until the samples span a quarter of the window.
    double rate() const;

private:
    double window_;
    std::deque<std::pair<double, uint64_t>> samples_;
};

}  // namespace rmig::qemu
