// How the source tunes its data connections for the link it measured (the
// control channel's round trip), before opening them: the TCP congestion
// control and the socket buffers. QEMU's own migration has neither knob; a
// long link needs both (docs/flows.md, "Long links").
#pragma once

#include <cstdint>
#include <string>

namespace rmig::qemu {

// `--cc` values besides a kernel module's name.
inline constexpr const char* kCongestionAuto = "auto";        // bbr on long links
inline constexpr const char* kCongestionHost = "default";     // the host's own
// From this round trip on a link counts as long: loss recovery and slow start
// take long enough that BBR's rate model beats loss-driven control.
inline constexpr double kLongLinkRttMs = 10;
// Buffers sized from the round trip never go above this per connection.
inline constexpr int kMaxAutoSocketBuffer = 64 << 20;

struct LinkTuningInput {
    double rtt_ms = 0;                 // measured; 0: unknown
    double rate_cap = 0;               // bytes/s the link could carry at most (QEMU's max-bandwidth)
    uint32_t connections = 1;          // data connections sharing the link (streams x flows)
    std::string congestion = kCongestionAuto;  // the user's choice
    bool bbr_usable = false;           // this host can give a socket bbr
    int socket_buffer = 8 << 20;       // configured (or the default)
    bool socket_buffer_given = false;  // by the user or a profile: kept as is
};

struct LinkTuning {
    std::string congestion_control;    // for the sockets; empty: the host's
    int socket_buffer = 0;
    std::string why;                   // one line for the report
};

LinkTuning tune_link(const LinkTuningInput& in);

// Whether a TCP socket on this host may use `name` (tries it on a scratch
// socket); require_ throws net::set_congestion_control's error instead.
bool congestion_control_usable(const std::string& name);
void require_congestion_control(const std::string& name);

}  // namespace rmig::qemu
