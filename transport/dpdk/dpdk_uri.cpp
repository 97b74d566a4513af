#include "transport/dpdk/dpdk_uri.hpp"

#include <charconv>
#include <regex>
#include <sstream>

#include "common/error.hpp"

namespace rmig::transport::dpdk {

namespace {

double number(const std::string& key, const std::string& v, double lo, double hi) {
    double d = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
    if (ec != std::errc() || p != v.data() + v.size() || d < lo || d > hi)
        throw Error(cat("dpdk URI option ", key, "=", v, ": expected a number in [", lo, ", ", hi,
                        "]"));
    return d;
}

}  // namespace

DpdkUri parse_uri(const std::string& rest, const DpdkOptions& defaults) {
    DpdkUri u;
    u.opts = defaults;
    std::stringstream in(rest);
    std::string item, devargs;
    while (std::getline(in, item, ',')) {
        if (item.rfind("rmig.", 0) != 0) {
            devargs += (devargs.empty() ? "" : ",") + item;
            continue;
        }
        auto eq = item.find('=');
        if (eq == std::string::npos) throw Error(cat("dpdk URI option '", item, "' has no value"));
        std::string key = item.substr(5, eq - 5), v = item.substr(eq + 1);
        if (key == "window")
            u.opts.window_segments = static_cast<uint32_t>(number(item, v, 1, 1 << 20));
        else if (key == "gbps")
            u.opts.link_gbps = number(item, v, 0.001, 10000);
        else if (key == "rtt_us")
            u.opts.rtt_us = number(item, v, 0.1, 1e7);
        else if (key == "pace_gbps")
            u.opts.pace_gbps = number(item, v, 0, 10000);
        else if (key == "mtu")
            u.opts.mtu = static_cast<uint32_t>(number(item, v, 128, 65535));
        else if (key == "loss")
            u.opts.tx_loss = number(item, v, 0, 0.5);
        else if (key == "queues")
            u.opts.queues = static_cast<uint32_t>(number(item, v, 1, 16));
        else if (key == "peer")
            u.peer_mac = v;
        else
            throw Error(cat("dpdk URI: unknown option rmig.", key,
                            " (known: window, gbps, rtt_us, pace_gbps, mtu, loss, queues, peer)"));
    }
    if (devargs.empty())
        throw Error(cat("dpdk URI '", rest, "' names no port: use dpdk:<vdev or PCI address>[,...]"));
    u.devargs = devargs;
    u.port_name = devargs.substr(0, devargs.find(','));
    static const std::regex pci("([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]");
    if (!u.is_vdev() && !std::regex_match(u.port_name, pci))
        throw Error(cat("dpdk URI names '", u.port_name,
                        "', which is neither a DPDK virtual device (net_memif0, net_af_packet0, ...) "
                        "nor a PCI address (0000:3b:00.0)"));
    return u;
}

}  // namespace rmig::transport::dpdk
