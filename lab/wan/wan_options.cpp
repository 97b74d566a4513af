#include "lab/wan/wan_options.hpp"

#include "common/error.hpp"

namespace rmig::wan {

namespace {

using K = OptionKind;

constexpr std::string_view kAbout = R"(rmig-wan: a WAN link between two network namespaces, for the lab.

`up` creates namespaces NAME-a and NAME-b joined by TUN devices (wan0; wan1
for --path2) and forwards every packet between them in user space, delaying,
rate-limiting and dropping it as the shape says, so kernel TCP in the
namespaces sees a real RTT, bottleneck and loss. Run programs on each side
with `ip netns exec NAME-a ...` / `ip netns exec NAME-b ...`; path 1 is
10.201.0.1 (A) <-> 10.201.0.2 (B). A shape applies to both directions; the
delay is one way (RTT = 2 x delay). It runs until SIGINT/SIGTERM or
--duration, then prints the counters and deletes the namespaces.
`down --name NAME` deletes the namespaces a killed `up` left behind.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and /dev/net/tun. More in
docs/wan-emulator.md.

Exit: 0 ok, 1 failed (setup, or another link holds the name), 2 bad arguments.
)";

std::span<const OptionSpec> shape_options() {
    static const OptionSpec kOptions[] = {
        {.name = "delay", .metavar = "TIME", .help = "one-way delay (25ms, 1.5s, 250us)", .text_default = "0"},
        {.name = "rate",
         .metavar = "RATE",
         .help = "bottleneck rate in bits/s (1gbit, 500mbit, 64kbit; 0 = unlimited, and then no queue)",
         .text_default = "0"},
        {.name = "queue",
         .metavar = "BYTES|TIME",
         .help = "drop-tail bound of the bottleneck queue, bytes (150000, 4M) or time at the rate (100ms)",
         .default_note = "one bandwidth-delay product, rate x 2 x delay, at least 150000 bytes"},
        {.name = "loss",
         .metavar = "PCT",
         .help = "independent random loss per packet (0.1% or 0.1)",
         .text_default = "0"},
        {.name = "burst-loss",
         .metavar = "GB:BG[:LB]",
         .help = "Gilbert-Elliott burst loss, in percent: p(good->bad), p(bad->good), loss in bad (default 100); "
                 "mean burst 1/p(bad->good) packets",
         .default_note = "off"},
        {.name = "reorder",
         .metavar = "PCT[:GAP]",
         .help = "a share of packets gets GAP more delay (negative: less), so others overtake it",
         .default_note = "off; GAP 1ms"},
        {.name = "outage",
         .metavar = "AT+LEN[/EVERY][:reset]",
         .help = "the path is down (everything dropped, both directions) from AT for LEN, seconds from when the "
                 "link is up (or with units), repeating every EVERY if given; repeat the option or separate with "
                 "commas for more. :reset: the path also forgets its connections (a firewall failing over): once "
                 "it is back, packets of connections opened before are dropped and answered with a TCP reset",
         .default_note = "none"},
        {.name = "outage-clock",
         .kind = K::choice,
         .metavar = "up|signal",
         .help = "what outages count from: up, the link coming up; signal, the first SIGUSR1 to rmig-wan (no "
                 "outage before it), so a benchmark can start them with its migration (rmig-lab wan "
                 "--outage-signal)",
         .text_default = "up",
         .choices = "up|signal"},
        {.name = "subnet",
         .metavar = "CIDR",
         .help = "path 1's subnet: host .1 in NAME-a, .2 in NAME-b",
         .text_default = "10.201.0.0/24"},
        {.name = "path2",
         .metavar = "SPEC",
         .help = "a second path (device wan1) with its own shape: comma-separated delay=, rate=, queue=, loss=, "
                 "burst-loss=, reorder=, outage= (repeatable, :reset too), subnet= (default 10.201.1.0/24); "
                 "unset keys mean no delay, unlimited, no loss",
         .default_note = "none"},
    };
    return kOptions;
}

std::span<const OptionSpec> host_options() {
    static const OptionSpec kOptions[] = {
        {.name = "name", .metavar = "NAME", .help = "the link: namespaces NAME-a and NAME-b", .required = true},
        {.name = "mtu",
         .kind = K::whole,
         .metavar = "BYTES",
         .help = "MTU of the TUN devices",
         .number_default = 1500,
         .min = 576,
         .max = 65535},
        {.name = "cc",
         .kind = K::choice,
         .metavar = "CC",
         .help = "net.ipv4.tcp_congestion_control in both namespaces (a per-namespace setting)",
         .default_note = "as a new namespace starts (the host's)",
         .choices = "bbr|cubic|reno"},
        {.name = "tcp-buffer",
         .kind = K::size,
         .metavar = "SIZE",
         .help = "the max of net.ipv4.tcp_rmem and tcp_wmem in both namespaces (autotuning's ceiling; a window "
                 "must hold the bandwidth-delay product)",
         .default_note = "the kernel's"},
        {.name = "txqueuelen",
         .kind = K::whole,
         .metavar = "N",
         .help = "transmit queue of the TUN devices: packets the kernel holds for the forwarder; beyond it they "
                 "are dropped before it sees them (counted as dropped_device_in)",
         .number_default = kDefaultTxQueueLen,
         .min = 1,
         .max = 1000000},
        {.name = "offload",
         .kind = K::choice,
         .metavar = "on|off",
         .help = "TCP segmentation offload through the link: the sender's 64 KiB TSO packets cross in one read and "
                 "one write, and are cut where the model drops, reorders or spaces segments apart (it still acts "
                 "on every segment); off: one packet per read and write, ~10x less throughput",
         .text_default = "on",
         .choices = "on|off"},
        {.name = "coalesce",
         .metavar = "TIME",
         .help = "a packet may leave up to TIME after its time, so one wake-up of the forwarder writes several "
                 "(less CPU; adds at most TIME to each one-way delay)",
         .default_note = "1% of the path's delay, at most 200us"},
        {.name = "seed",
         .kind = K::whole,
         .metavar = "N",
         .help = "seed of the loss and reordering draws",
         .number_default = 1},
    };
    return kOptions;
}

std::span<const OptionSpec> run_options() {
    static const OptionSpec kOptions[] = {
        {.name = "duration",
         .kind = K::real,
         .metavar = "S",
         .help = "stop after S seconds",
         .default_note = "until SIGINT/SIGTERM"},
        {.name = "ready-file",
         .metavar = "PATH",
         .help = "once the link forwards, write JSON there (namespaces, addresses, shapes); removed on exit"},
        {.name = "json", .kind = K::flag, .help = "print the counters on exit as JSON on stdout"},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

std::span<const OptionSpec> down_options() {
    static const OptionSpec kOptions[] = {
        {.name = "name", .metavar = "NAME", .help = "the link whose namespaces to delete", .required = true},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

// Args keeps the last value of a repeated option; --outage adds up instead.
std::vector<std::string> merge_outages(const std::vector<std::string>& argv) {
    std::vector<std::string> out;
    std::string outages;
    bool any = false;
    for (size_t i = 0; i < argv.size(); ++i) {
        const std::string& a = argv[i];
        std::string value;
        if (a == "--outage") {
            if (i + 1 >= argv.size())
                throw UsageError("option --outage needs a value: --outage AT+LEN[/EVERY][:reset]");
            value = argv[++i];
        } else if (a.rfind("--outage=", 0) == 0) {
            value = a.substr(9);
        } else {
            out.push_back(a);
            continue;
        }
        outages += (any ? "," : "") + value;
        any = true;
    }
    if (any) out.insert(out.end(), {"--outage", outages});
    return out;
}

LinkShape shape_from(const Args& a) {
    LinkShape s;
    for (const char* key : {"delay", "rate", "queue", "loss", "burst-loss", "reorder", "outage"})
        if (auto v = a.get(key)) apply_setting(s, key, *v, "");
    return s;
}

}  // namespace

const ProgramSpec& wan_program() {
    static const ProgramSpec kProgram{"rmig-wan",
                                      {
                                          {"up",
                                           "--name NAME [--delay 25ms] [--rate 1gbit] [--loss 0.1%] [options]",
                                           "bring an emulated WAN link up between NAME-a and NAME-b",
                                           "",
                                           {{"shape (both directions of path 1)", shape_options()},
                                            {"namespaces", host_options()},
                                            {"run", run_options()}}},
                                          {"down",
                                           "--name NAME",
                                           "delete the namespaces of a link a killed `up` left behind",
                                           "",
                                           {{"down options", down_options()}}},
                                      }};
    return kProgram;
}

std::string wan_help() {
    return program_help(wan_program(), kAbout);
}

WanCommand parse_wan_command(const std::vector<std::string>& argv) {
    WanCommand c;
    if (argv.empty()) throw UsageError("missing command: up or down (see --help)");
    const std::string& cmd = argv[0];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") return c;
    const CommandSpec* spec = wan_program().find(cmd);
    if (!spec) throw UsageError(cat("unknown command '", cmd, "': up or down"));
    std::vector<std::string> rest(argv.begin() + 1, argv.end());
    for (const auto& a : rest)
        if (a == "-h") return c;
    if (cmd == "up") rest = merge_outages(rest);
    Args a(rest, wan_program(), *spec);
    if (a.flag("help")) return c;
    if (!a.positional().empty()) throw UsageError(cat("unexpected argument '", a.positional()[0], "' (see --help)"));
    a.check_required();
    if (cmd == "down") {
        c.kind = WanCommand::Kind::down;
        c.name = a.text("name");
        check_link_name(c.name);
        return c;
    }
    c.kind = WanCommand::Kind::up;
    UpOptions& o = c.up;
    o.link.name = a.text("name");
    check_link_name(o.link.name);
    o.link.mtu = static_cast<unsigned>(a.whole("mtu"));
    o.link.congestion_control = a.text("cc");
    o.link.tcp_buffer_max = a.whole("tcp-buffer");
    o.link.seed = a.whole("seed");
    o.link.txqueuelen = static_cast<unsigned>(a.whole("txqueuelen"));
    o.link.offload = a.text("offload") == "on";
    o.link.outage_clock_on_signal = a.text("outage-clock") == "signal";
    if (auto co = a.get("coalesce")) o.link.coalesce = parse_duration(*co, "--coalesce");
    o.duration_s = a.real("duration");
    o.ready_file = a.text("ready-file");
    o.json = a.flag("json");
    o.link.paths.push_back({shape_from(a), Ipv4Subnet::parse(a.text("subnet"), "--subnet")});
    if (auto p2 = a.get("path2")) {
        PathSpec spec2 = parse_path_spec(*p2, "--path2");
        Ipv4Subnet subnet = spec2.subnet ? Ipv4Subnet::parse(*spec2.subnet, "--path2 subnet") : default_subnet(1);
        o.link.paths.push_back({spec2.shape, subnet});
    }
    return c;
}

}  // namespace rmig::wan
