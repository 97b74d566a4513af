#include "qemu-plugin/link_tuning.hpp"

#include <sys/socket.h>

#include <algorithm>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "common/unique_fd.hpp"

namespace rmig::qemu {

LinkTuning tune_link(const LinkTuningInput& in) {
    LinkTuning t;
    bool long_link = in.rtt_ms >= kLongLinkRttMs;
    if (in.congestion == kCongestionAuto) {
        if (long_link && in.bbr_usable) t.congestion_control = "bbr";
    } else if (in.congestion != kCongestionHost) {
        t.congestion_control = in.congestion;
    }
    t.socket_buffer = in.socket_buffer;
    std::string buffer_why = "as configured";
    if (!in.socket_buffer_given && in.rtt_ms > 0 && in.rate_cap > 0) {
        // Twice each connection's share of the bandwidth-delay product: TCP
        // keeps unacknowledged data in the send buffer, and the receiver's
        // window must cover a round trip at full rate with room to spare.
        double bdp = in.rate_cap * in.rtt_ms / 1000.0;
        double share = 2 * bdp / std::max<uint32_t>(1, in.connections);
        t.socket_buffer = static_cast<int>(std::clamp(share, double(in.socket_buffer), double(kMaxAutoSocketBuffer)));
        buffer_why = t.socket_buffer > in.socket_buffer ? "from the round trip" : "the default covers the round trip";
    }
    std::string cc = t.congestion_control.empty() ? "the host's" : t.congestion_control;
    std::string cc_why = in.congestion == kCongestionAuto
                             ? (long_link ? (in.bbr_usable ? " (long link)" : " (long link, but bbr is not available)")
                                          : " (short link)")
                             : " (asked)";
    t.why = cat("congestion control ", cc, cc_why, ", socket buffers ", t.socket_buffer >> 20, " MiB (", buffer_why,
                ")");
    return t;
}

void require_congestion_control(const std::string& name) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket(AF_INET) to try a congestion control");
    net::set_congestion_control(fd.get(), name);
}

bool congestion_control_usable(const std::string& name) {
    try {
        require_congestion_control(name);
        return true;
    } catch (const Error&) {
        return false;
    }
}

}  // namespace rmig::qemu
