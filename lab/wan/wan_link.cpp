#include "lab/wan/wan_link.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <sstream>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/log.hpp"

namespace rmig::wan {

namespace {

// rx_dropped and tx_dropped of `device` from a /proc/net/dev fd.
struct DeviceDrops {
    uint64_t rx = 0, tx = 0;
};
DeviceDrops device_drops(int fd, const std::string& device) {
    DeviceDrops d;
    std::string text;
    char buf[4096];
    for (off_t off = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, off);
        if (n <= 0) break;
        text.append(buf, static_cast<size_t>(n));
        off += n;
    }
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        if (name != device) continue;
        std::istringstream fields(line.substr(colon + 1));
        uint64_t v[16] = {};
        for (auto& x : v) fields >> x;
        d.rx = v[3];   // receive: bytes packets errs drop ...
        d.tx = v[11];  // transmit: bytes packets errs drop ...
    }
    return d;
}

// A namespace other than the first may only make a congestion control its
// default if net.ipv4.tcp_allowed_congestion_control (host-wide) lists it;
// Debian's lists only the host default (and reno).
void allow_congestion_control(const std::string& cc) {
    std::string allowed;
    try {
        allowed = read_proc_sys("net/ipv4/tcp_allowed_congestion_control");
    } catch (const Error&) {
        return;  // not in the first namespace: the namespaces' own write will say what is wrong
    }
    std::istringstream in(allowed);
    for (std::string name; in >> name;)
        if (name == cc) return;
    std::string wider = allowed + " " + cc;
    write_proc_sys("net/ipv4/tcp_allowed_congestion_control", wider);
    log::warn("net.ipv4.tcp_allowed_congestion_control (host-wide) is now '", wider, "' so the namespaces can use ", cc,
              "; left so on exit (other links may use it)");
}

nlohmann::json to_json(const DirectionStats& s) {
    return {{"packets_in", s.packets_in},
            {"bytes_in", s.bytes_in},
            {"packets_out", s.packets_out},
            {"bytes_out", s.bytes_out},
            {"dropped_queue", s.dropped_queue},
            {"dropped_loss", s.dropped_loss},
            {"dropped_outage", s.dropped_outage},
            {"dropped_reset", s.dropped_reset},
            {"resets_sent", s.resets_sent},
            {"dropped_overflow", s.dropped_overflow},
            {"write_errors", s.write_errors},
            {"reads", s.reads},
            {"writes", s.writes},
            {"held", s.held},
            {"buffer_bytes", s.buffer_bytes}};
}

double ms(Nanos d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

nlohmann::json to_json(const LinkShape& s) {
    nlohmann::json outages = nlohmann::json::array();
    for (const auto& o : s.outages)
        outages.push_back(
            {{"at_ms", ms(o.at)}, {"length_ms", ms(o.length)}, {"every_ms", ms(o.every)}, {"reset", o.reset}});
    return {{"delay_ms", ms(s.delay)},
            {"rtt_ms", 2 * ms(s.delay)},
            {"rate_bps", s.rate_bps},
            {"queue_bytes", s.rate_bps ? s.queue_limit() : 0},
            {"queue_origin", s.rate_bps ? s.queue_origin() : "none (unlimited rate)"},
            {"loss", s.loss},
            {"burst_loss",
             {{"p_good_to_bad", s.burst.p_good_to_bad},
              {"p_bad_to_good", s.burst.p_bad_to_good},
              {"loss_in_bad", s.burst.loss_in_bad}}},
            {"reorder", {{"probability", s.reorder.probability}, {"gap_ms", ms(s.reorder.gap)}}},
            {"outages", outages},
            {"text", s.describe()}};
}

}  // namespace

struct WanLink::Path {
    std::string device;
    TunDevice tun_a, tun_b;
    // After the devices: destroyed (stopped) before their fds close.
    std::unique_ptr<Forwarder> a_to_b, b_to_a;
};

Nanos default_coalesce(Nanos delay) {
    return std::min<Nanos>(delay / 100, std::chrono::microseconds(200));
}

Ipv4Subnet default_subnet(size_t path) {
    return Ipv4Subnet::parse(cat("10.201.", path, ".0/24"), "default subnet");
}

void check_link_name(const std::string& name) {
    bool ok = !name.empty() && name.size() <= 24;
    for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_');
    if (!ok)
        throw UsageError(cat("link name '", name, "': 1 to 24 letters, digits, '-' or '_' (it names the namespaces ",
                             name, "-a and ", name, "-b)"));
}

WanLink::WanLink(WanConfig config) : config_(std::move(config)) {
    check_link_name(config_.name);
    if (config_.paths.empty()) throw UsageError("a link needs at least one path");
    if (config_.paths.size() > 8) throw UsageError("at most 8 paths");
    if (config_.mtu < 576 || config_.mtu > 65535) throw UsageError(cat("MTU ", config_.mtu, ": 576 to 65535"));
    for (size_t i = 0; i < config_.paths.size(); ++i)
        for (size_t j = 0; j < i; ++j)
            if (config_.paths[i].subnet.overlaps(config_.paths[j].subnet))
                throw UsageError(cat("path ", i + 1, "'s subnet ", config_.paths[i].subnet.text(), " overlaps path ",
                                     j + 1, "'s ", config_.paths[j].subnet.text()));
    lock_.emplace(config_.name);
    if (!config_.congestion_control.empty()) allow_congestion_control(config_.congestion_control);
    a_ = std::make_unique<NetNamespace>(ns_a());
    b_ = std::make_unique<NetNamespace>(ns_b());
    for (size_t i = 0; i < config_.paths.size(); ++i) {
        paths_.push_back(std::make_unique<Path>());
        paths_.back()->device = cat("wan", i);
    }
    set_up_side(*a_, true);
    set_up_side(*b_, false);
    // One time zero for every direction, so an outage takes both directions
    // of its path down together.
    started_ = monotonic_now();
    started_unix_ms_ =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (!config_.outage_clock_on_signal) outage_clock_ = started_.count();
    for (size_t i = 0; i < paths_.size(); ++i) {
        Path& p = *paths_[i];
        const LinkShape& shape = config_.paths[i].shape;
        // Distinct, reproducible draws per path and direction.
        uint64_t seed = config_.seed * 0x9E3779B97F4A7C15ULL + 2 * i;
        Nanos coalesce = config_.coalesce.value_or(default_coalesce(shape.delay));
        p.a_to_b = std::make_unique<Forwarder>(cat(config_.name, " path ", i + 1, " a->b"), p.tun_a.fd(), p.tun_b.fd(),
                                               PacketScheduler(shape, seed, started_, &outage_clock_), config_.mtu,
                                               config_.offload,
                                               coalesce, held_bytes_bound(shape));
        p.b_to_a = std::make_unique<Forwarder>(cat(config_.name, " path ", i + 1, " b->a"), p.tun_b.fd(), p.tun_a.fd(),
                                               PacketScheduler(shape, seed + 1, started_, &outage_clock_), config_.mtu,
                                               config_.offload,
                                               coalesce, held_bytes_bound(shape));
    }
}

WanLink::~WanLink() = default;

void WanLink::set_up_side(const NetNamespace& ns, bool side_a) {
    ns.run_inside([&] {
        (side_a ? dev_stats_a_ : dev_stats_b_) = UniqueFd(::open("/proc/thread-self/net/dev", O_RDONLY | O_CLOEXEC));
        set_interface_up("lo");
        if (!config_.congestion_control.empty()) {
            try {
                write_proc_sys("net/ipv4/tcp_congestion_control", config_.congestion_control);
            } catch (const Error& e) {
                std::string avail;
                try {
                    avail = read_proc_sys("net/ipv4/tcp_available_congestion_control");
                } catch (const Error&) {
                }
                throw Error(cat(ns.name(), ": congestion control '", config_.congestion_control, "' (", e.what(),
                                "); available: ", avail));
            }
        }
        if (config_.tcp_buffer_max) {
            write_proc_sys("net/ipv4/tcp_rmem", cat("4096 131072 ", config_.tcp_buffer_max));
            write_proc_sys("net/ipv4/tcp_wmem", cat("4096 16384 ", config_.tcp_buffer_max));
        }
        for (size_t i = 0; i < paths_.size(); ++i) {
            Path& p = *paths_[i];
            // Created here rather than in the root namespace and moved (which
            // also works, the fd stays attached): the device name then never
            // exists outside the link's namespaces, so links and host devices
            // cannot collide.
            TunDevice tun(p.device, config_.offload);
            try {
                // No IPv6 on the path: no router solicitations or MLD reports
                // in the counters, and none lost to a shaped link.
                write_proc_sys(cat("net/ipv6/conf/", p.device, "/disable_ipv6"), "1");
            } catch (const Error&) {
                // IPv6 absent from this kernel: nothing to quiet.
            }
            const Ipv4Subnet& s = config_.paths[i].subnet;
            configure_interface(p.device, s.host(side_a ? 1 : 2), s.prefix, config_.mtu, config_.txqueuelen);
            (side_a ? p.tun_a : p.tun_b) = std::move(tun);
        }
    });
}

std::string WanLink::device(size_t path) const {
    return paths_.at(path)->device;
}
std::string WanLink::address_a(size_t path) const {
    return config_.paths.at(path).subnet.host(1);
}
std::string WanLink::address_b(size_t path) const {
    return config_.paths.at(path).subnet.host(2);
}

PathStats WanLink::stats(size_t path) const {
    const Path& p = *paths_.at(path);
    PathStats s{p.a_to_b->stats(), p.b_to_a->stats()};
    if (dev_stats_a_ && dev_stats_b_) {
        DeviceDrops a = device_drops(dev_stats_a_.get(), p.device), b = device_drops(dev_stats_b_.get(), p.device);
        s.device_in_a_to_b = a.tx;  // A's kernel sends into wan0 = the forwarder's input
        s.device_out_a_to_b = b.rx;
        s.device_in_b_to_a = b.tx;
        s.device_out_b_to_a = a.rx;
    }
    return s;
}

double WanLink::seconds_up() const {
    return static_cast<double>((monotonic_now() - started_).count()) / 1e9;
}

nlohmann::json WanLink::describe() const {
    nlohmann::json paths = nlohmann::json::array();
    for (size_t i = 0; i < paths_.size(); ++i) {
        const Ipv4Subnet& s = config_.paths[i].subnet;
        paths.push_back({{"path", i + 1},
                         {"device", device(i)},
                         {"subnet", s.text()},
                         {"a", address_a(i)},
                         {"b", address_b(i)},
                         {"coalesce_us", std::chrono::duration<double, std::micro>(
                                             config_.coalesce.value_or(default_coalesce(config_.paths[i].shape.delay)))
                                             .count()},
                         {"shape", to_json(config_.paths[i].shape)}});
    }
    return {{"name", config_.name},
            {"namespaces", {{"a", ns_a()}, {"b", ns_b()}}},
            {"pid", ::getpid()},
            {"mtu", config_.mtu},
            {"congestion_control", config_.congestion_control.empty() ? "unchanged" : config_.congestion_control},
            {"tcp_buffer_max", config_.tcp_buffer_max},
            {"txqueuelen", config_.txqueuelen},
            {"offload", config_.offload},
            {"seed", config_.seed},
            {"started_unix_ms", started_unix_ms_},
            {"outage_clock", config_.outage_clock_on_signal ? "signal" : "up"},
            {"paths", paths}};
}

void WanLink::start_outage_clock() {
    int64_t expected = PacketScheduler::kNotStarted;
    outage_clock_.compare_exchange_strong(expected, monotonic_now().count());
}

nlohmann::json WanLink::counters() const {
    nlohmann::json paths = nlohmann::json::array();
    for (size_t i = 0; i < paths_.size(); ++i) {
        PathStats s = stats(i);
        nlohmann::json ab = to_json(s.a_to_b), ba = to_json(s.b_to_a);
        ab["dropped_device_in"] = s.device_in_a_to_b;
        ab["dropped_device_out"] = s.device_out_a_to_b;
        ba["dropped_device_in"] = s.device_in_b_to_a;
        ba["dropped_device_out"] = s.device_out_b_to_a;
        paths.push_back({{"path", i + 1}, {"a_to_b", ab}, {"b_to_a", ba}});
    }
    return {{"name", config_.name}, {"seconds", seconds_up()}, {"paths", paths}};
}

void WanLink::remove_stale(const std::string& name) {
    check_link_name(name);
    NameLock lock(name);
    NetNamespace::remove(name + "-a");
    NetNamespace::remove(name + "-b");
}

}  // namespace rmig::wan
