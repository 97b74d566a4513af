#include "transport/dpdk/dpdk_uri.hpp"

#include <cmath>
#include <optional>
#include <regex>
#include <sstream>

#include "common/args.hpp"
#include "common/error.hpp"

namespace rmig::transport::dpdk {

namespace {

using K = OptionKind;

// Options only a URI sets (per-link tuning and a testing knob), not the
// command line; checked like the table's.
std::span<const OptionSpec> uri_only_options() {
    static const DpdkOptions defaults;
    static const OptionSpec kOptions[] = {
        {.name = "pace_gbps", .kind = K::real, .number_default = defaults.pace_gbps, .max = 10000},
        {.name = "loss", .kind = K::real, .number_default = defaults.tx_loss, .max = 0.5},
        {.name = "peer"},
    };
    return kOptions;
}

// "window" for "dpdk-window", "rtt_us" for "dpdk-rtt-us".
std::string uri_key(std::string_view option) {
    std::string key(option.substr(option.find('-') + 1));
    for (char& c : key)
        if (c == '-') c = '_';
    return key;
}

// The table's option (or a URI-only one) that rmig.`key` sets; nullptr if none.
const OptionSpec* find_key(const std::string& key) {
    for (const auto& o : description().options.options)
        if (o.kind != K::text && uri_key(o.name) == key) return &o;
    for (const auto& o : uri_only_options())
        if (o.name == key) return &o;
    return nullptr;
}

std::string known_keys() {
    std::string out;
    for (const auto& o : description().options.options)
        if (o.kind != K::text) out += cat(out.empty() ? "" : ", ", uri_key(o.name));
    for (const auto& o : uri_only_options()) out += cat(", ", o.name);
    return out;
}

// `v` checked against `spec`; "dpdk URI option rmig.loss=0.9: expected a number in [0, 0.5]".
double number(const OptionSpec& spec, const std::string& item, const std::string& v) {
    try {
        check_option_value(spec, v, "");
    } catch (const UsageError&) {
        std::string range = std::isfinite(spec.max) ? cat("in [", spec.min, ", ", spec.max, "]")
                                                     : cat("of at least ", spec.min);
        throw Error(cat("dpdk URI option ", item, ": expected ",
                        spec.kind == K::real ? "a number " : "a whole number ", range));
    }
    return option_number(spec, v);
}

}  // namespace

DpdkUri parse_uri(const std::string& rest, const BackendSettings& tuning) {
    DpdkUri u;
    BackendSettings with_uri = tuning;
    std::optional<double> pace_gbps, loss;
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
        const OptionSpec* spec = find_key(key);
        if (!spec) throw Error(cat("dpdk URI: unknown option rmig.", key, " (known: ", known_keys(), ")"));
        if (key == "peer") {
            u.peer_mac = v;
            continue;
        }
        double d = number(*spec, item, v);
        if (key == "pace_gbps")
            pace_gbps = d;
        else if (key == "loss")
            loss = d;
        else
            with_uri.set(spec->name, v);  // a table option: read by dpdk_options() below
    }
    u.opts = dpdk_options(with_uri);
    if (pace_gbps) u.opts.pace_gbps = *pace_gbps;
    if (loss) u.opts.tx_loss = *loss;
    // Below 128 bytes no frame holds our headers; 0 means the port's MTU.
    if (u.opts.mtu != 0 && u.opts.mtu < 128)
        throw Error(cat("dpdk MTU ", u.opts.mtu, " (rmig.mtu or --dpdk-mtu): give 0 (the port's) or 128 to 65535"));
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
