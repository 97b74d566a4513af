// The dpdk backend's description: built whether or not libdpdk is, so its
// options are accepted (and hw-configs profiles that set them load) everywhere.
#include "transport/dpdk/dpdk_backend.hpp"

namespace rmig::transport::dpdk {

namespace {

using K = OptionKind;

// Ranges take in both what the command line and what a dpdk: URI accepted
// before the two read this one table (gbps and rtt with fractions; window 0
// meaning "from the BDP"; mtu 0 meaning "the port's").
std::span<const OptionSpec> option_table() {
    static const DpdkOptions defaults;
    static const OptionSpec kOptions[] = {
        {.name = "dpdk-eal", .metavar = "ARGS", .help = "dpdk: EAL arguments",
         .default_note = "$RMIG_DPDK_EAL_ARGS, else no-hugepage defaults (docs/dpdk-protocol.md)",
         .profile = true},
        {.name = "dpdk-window", .kind = K::whole, .metavar = "N", .help = "dpdk: segments in flight per channel",
         .number_default = static_cast<double>(defaults.window_segments),
         .default_note = "0, from the BDP of --dpdk-gbps and --dpdk-rtt-us", .max = 1 << 20, .profile = true},
        {.name = "dpdk-gbps", .kind = K::real, .metavar = "G", .help = "dpdk: link rate for the BDP window",
         .number_default = defaults.link_gbps, .min = 0.001, .profile = true},
        {.name = "dpdk-rtt-us", .kind = K::real, .metavar = "US", .help = "dpdk: round-trip time for the BDP window",
         .number_default = defaults.rtt_us, .min = 0.1, .profile = true},
        {.name = "dpdk-mtu", .kind = K::whole, .metavar = "N", .help = "dpdk: frame MTU (9000: jumbo frames)",
         .number_default = static_cast<double>(defaults.mtu), .default_note = "0, the port's", .max = 65535,
         .profile = true},
        {.name = "dpdk-queues", .kind = K::whole, .metavar = "N",
         .help = "dpdk: rx/tx queue pairs, one poller each (one per channel; both sides alike)",
         .number_default = static_cast<double>(defaults.queues), .min = 1, .max = 16, .profile = true},
    };
    return kOptions;
}

}  // namespace

const BackendDescription& description() {
    static const BackendDescription kDescription{
        .scheme = "dpdk",
        .uri = "dpdk:DEVARGS[,rmig.KEY=VALUE...]",
        .summary = "reliable delivery of our own over a DPDK port (docs/dpdk-protocol.md)",
        .options = {"dpdk transport", option_table()},
        .build_hint = "rebuild with libdpdk installed: apt-get install libdpdk-dev, or scripts/deps.sh",
    };
    return kDescription;
}

DpdkOptions dpdk_options(const BackendSettings& tuning) {
    const OptionGroup& table = description().options;
    DpdkOptions o;
    o.eal_args = tuning.text(table, "dpdk-eal");
    o.window_segments = static_cast<uint32_t>(tuning.whole(table, "dpdk-window"));
    o.link_gbps = tuning.real(table, "dpdk-gbps");
    o.rtt_us = tuning.real(table, "dpdk-rtt-us");
    o.mtu = static_cast<uint32_t>(tuning.whole(table, "dpdk-mtu"));
    o.queues = static_cast<uint32_t>(tuning.whole(table, "dpdk-queues"));
    return o;
}

}  // namespace rmig::transport::dpdk
