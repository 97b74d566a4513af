#include "qemu-plugin/blackout.hpp"

#include <chrono>
#include <limits>
#include <string>

namespace rmig::qemu {

int64_t wall_clock_us() {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

int64_t event_time_us(const nlohmann::json& event) {
    auto it = event.find("timestamp");
    if (it == event.end() || !it->is_object()) return 0;
    int64_t s = it->value("seconds", int64_t{0}), us = it->value("microseconds", int64_t{0});
    // QEMU stamps events it could not time with -1.
    if (s <= 0 || us < 0) return 0;
    return s * 1'000'000 + us;
}

void SwitchoverEvents::note(const nlohmann::json& event) {
    std::string name = event.value("event", "");
    int64_t* slot = name == "STOP"     ? &stop_us
                    : name == "RESUME" ? &resume_us
                    : name == "MIGRATION" &&
                              event.value("data", nlohmann::json::object()).value("status", "") == "completed"
                        ? &completed_us
                        : nullptr;
    if (slot && *slot == 0) *slot = event_time_us(event);
}

ClockOffset estimate_offset(std::span<const ClockSample> samples) {
    ClockOffset best;
    int64_t best_rtt = std::numeric_limits<int64_t>::max();
    for (const auto& s : samples) {
        int64_t rtt = s.received_us - s.sent_us;
        if (rtt < 0 || s.peer_us == 0 || rtt >= best_rtt) continue;
        best_rtt = rtt;
        best.known = true;
        best.offset_us = s.peer_us - (s.sent_us + rtt / 2);
        best.uncertainty_ms = double(rtt) / 2000.0;
    }
    return best;
}

Blackout measure_blackout(int64_t source_stop_us, int64_t dest_loaded_us, int64_t dest_resume_us,
                          const ClockOffset& offset) {
    Blackout b;
    if (source_stop_us == 0 || !offset.known) return b;
    b.uncertainty_ms = offset.uncertainty_ms;
    auto since_stop = [&](int64_t dest_us) -> std::optional<double> {
        if (dest_us == 0) return std::nullopt;
        return double(dest_us - offset.offset_us - source_stop_us) / 1000.0;
    };
    b.ms = since_stop(dest_resume_us);
    b.stop_to_loaded_ms = since_stop(dest_loaded_us);
    return b;
}

void add_phases(Blackout& b, int64_t source_stop_us, int64_t source_done_us, int64_t finish_us,
                const ClockOffset& offset) {
    if (source_stop_us == 0 || !offset.known) return;
    if (source_done_us) b.source_done_ms = double(source_done_us - source_stop_us) / 1000.0;
    if (finish_us) b.finish_received_ms = double(finish_us - offset.offset_us - source_stop_us) / 1000.0;
}

nlohmann::json Blackout::to_json() const {
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    return {{"ms", opt(ms)},
            {"stop_to_loaded_ms", opt(stop_to_loaded_ms)},
            {"uncertainty_ms", uncertainty_ms},
            {"source_done_ms", opt(source_done_ms)},
            {"finish_received_ms", opt(finish_received_ms)},
            {"measured", "source QMP STOP -> destination QMP RESUME, event timestamps"}};
}

}  // namespace rmig::qemu
