// The guest's real blackout: from the source QEMU's STOP event (switchover
// begins) to the destination QEMU's RESUME event (the guest runs again).
//
// QEMU's own "downtime" is measured on the source and ends when the source has
// written its last byte -- into rmig's UNIX socket. Whatever rmig still holds
// in flight then, and the time to resume the destination, is blackout that
// QEMU's figure does not show. rmig reads both QMP event timestamps (each the
// wall clock of its host) and puts them on one clock with the offset between
// the hosts, estimated from control-channel pings (NTP's method): the error is
// at most half the round trip of the best ping, reported beside the figure.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include <nlohmann/json.hpp>

namespace rmig::qemu {

// This host's wall clock, microseconds since the epoch (what QMP events carry).
int64_t wall_clock_us();
// A QMP event's "timestamp" in microseconds since the epoch; 0 if it has none.
int64_t event_time_us(const nlohmann::json& event);

// The switchover's QMP events, as event_time_us() (0: not seen): the first
// STOP (the guest stopped), MIGRATION "completed" (the source wrote its last
// byte / the destination loaded the guest) and RESUME.
struct SwitchoverEvents {
    int64_t stop_us = 0;
    int64_t completed_us = 0;
    int64_t resume_us = 0;
    void note(const nlohmann::json& event);
};

// One ping: our clock when sent and when answered, the peer's clock in between.
struct ClockSample {
    int64_t sent_us = 0;
    int64_t peer_us = 0;
    int64_t received_us = 0;
};

// peer clock - our clock. From the sample with the shortest round trip:
// the peer read its clock somewhere within it, so the error is <= RTT / 2.
struct ClockOffset {
    bool known = false;
    int64_t offset_us = 0;
    double uncertainty_ms = 0;
};
ClockOffset estimate_offset(std::span<const ClockSample> samples);

struct Blackout {
    std::optional<double> ms;                 // source STOP -> destination RESUME
    std::optional<double> stop_to_loaded_ms;  // source STOP -> destination finished loading
    double uncertainty_ms = 0;                // from the clock offset
    // Where the time went, each from the source's STOP: QEMU wrote its last
    // byte (source MIGRATION completed), the destination got 'finish'.
    std::optional<double> source_done_ms;
    std::optional<double> finish_received_ms;
    nlohmann::json to_json() const;
};

// Times in each host's own clock (0: not seen); `offset` is destination - source.
Blackout measure_blackout(int64_t source_stop_us, int64_t dest_loaded_us, int64_t dest_resume_us,
                          const ClockOffset& offset);
// The phases: source_done_us on the source's clock, finish_us on the destination's.
void add_phases(Blackout& b, int64_t source_stop_us, int64_t source_done_us, int64_t finish_us,
                const ClockOffset& offset);

}  // namespace rmig::qemu
