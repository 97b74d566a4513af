// dpdk/: what the backend says about itself (transport/backend.hpp), its
// typed options and its entry points. Reliable delivery of our own over
// Ethernet frames (docs/dpdk-protocol.md). URIs:
// "dpdk:DEVARGS[,rmig.KEY=VALUE...]". This header needs no DPDK.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "transport/backend.hpp"
#include "transport/backend_settings.hpp"
#include "transport/channel.hpp"

namespace rmig::transport::dpdk {

// The defaults of the option table (dpdk_backend.cpp); "rmig.*" options in a
// dpdk: URI override them (dpdk_uri.hpp).
struct DpdkOptions {
    std::string eal_args;          // --dpdk-eal; empty: $RMIG_DPDK_EAL_ARGS, else the defaults of the doc
    uint32_t window_segments = 0;  // --dpdk-window; 0: 2 x bandwidth-delay product of link_gbps and rtt_us
    double link_gbps = 10;         // --dpdk-gbps
    double rtt_us = 500;           // --dpdk-rtt-us
    double pace_gbps = 0;          // sender pacing (URI only); 0: unpaced
    uint32_t mtu = 0;              // --dpdk-mtu; 0: the port's MTU; e.g. 9000 for jumbo frames
    double tx_loss = 0;            // testing (URI only): drop this fraction of outgoing data frames
    uint32_t queues = 1;           // --dpdk-queues: rx/tx queue pairs (one poller each), 1..16; capped by the port
};

// Options "dpdk-eal", "dpdk-window", "dpdk-gbps", "dpdk-rtt-us", "dpdk-mtu",
// "dpdk-queues"; the numeric ones are also URI keys (rmig.window, rmig.gbps,
// rmig.rtt_us, rmig.mtu, rmig.queues).
const BackendDescription& description();
// `tuning` (checked against the table) over the defaults.
DpdkOptions dpdk_options(const BackendSettings& tuning);

std::unique_ptr<Listener> listen(const std::string& rest, const Options& opts);
std::unique_ptr<Channel> connect(const std::string& rest, const wire::Hello& hello,
                                 const Options& opts);

}  // namespace rmig::transport::dpdk
