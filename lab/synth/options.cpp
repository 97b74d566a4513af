#include "lab/synth/options.hpp"

#include <vector>

#include "common/error.hpp"
#include "common/units.hpp"
#include "engine/convergence/convergence_policy.hpp"
#include "lab/synth/hash_blob.hpp"

namespace rmig::synth {

namespace {

using K = OptionKind;

constexpr std::string_view kAbout =
    R"(rmig-synth: a synthetic guest migrated live with rmig's memory mode.

The source owns --size bytes (mmap, populated, every page filled with content
derived from its index and write count, a --zero-fraction share left zero),
runs --writers threads rewriting whole pages at --dirty-rate, and migrates it
to the destination. At switchover the writers stop and the XXH3 hash of every
page travels as the device state; the destination checks every page against
it and fails (exit 3) on any mismatch. Progress per round goes to stderr,
with the convergence policy's decision after it (round, action, remaining,
predicted downtime, throttle, converging and the forecast time to
switchover); the source's --json report has them as "round_log" and
"decisions" (the last a switchover when the migration switched over).

With --postcopy (or --postcopy-after N) the source may switch to post-copy:
pause() stops the writers as for a switchover, but the guest starts on the
destination at once, where --guest-readers threads act as its vCPUs and read
pages in random order, checking each (a page not there yet blocks its reader
until rmig places it: a fault); the pages still missing follow, those
faulted on first. One progress line marks the switch on each side and one
summary line ends it (pages pending, faults, fetched, fault latency p50/p99,
the phase's time and push rate); both --json reports carry "postcopy". Every
page is still checked against the hash list once the destination has them
all.

After a failed migration the source checks that its writers run on and that
every page is what they last wrote (the report's "after_failure"); after a
failure past the switch to post-copy the guest stays paused (it ran on the
destination: the source's copy is stale) and nothing is retried.

Exit: 0 ok, 1 migration failed, 2 usage, 3 destination pages differ.
)";

std::span<const OptionSpec> source_options() {
    static const WriterConfig writer;
    static const engine::ConvergenceConfig convergence;
    static const OptionSpec kOptions[] = {
        {.name = "to", .metavar = "URI", .help = "destination (tcp:HOST:PORT)", .required = true},
        {.name = "dirty-rate", .metavar = "RATE",
         .help = "page writes per second as bytes/s (\"200M\" = 200 MiB/s of 4 KiB pages) or pages/s "
                 "(\"50000p\")",
         .text_default = "0", .default_note = "0 (idle guest)"},
        {.name = "pattern", .kind = K::choice, .metavar = "P", .help = "where the writers write",
         .text_default = to_string(writer.pattern), .choices = "uniform|hot|sequential"},
        {.name = "hot-fraction", .kind = K::real, .metavar = "F", .help = "hot set as a share of memory",
         .number_default = writer.hot_fraction},
        {.name = "hot-writes", .kind = K::real, .metavar = "F", .help = "share of writes that go to the hot set",
         .number_default = writer.hot_writes},
        {.name = "writers", .kind = K::whole, .metavar = "N", .help = "writer threads",
         .number_default = static_cast<double>(writer.writers), .min = 1, .max = 64},
        {.name = "workers", .kind = K::whole, .metavar = "N", .help = "engine workers = data channels",
         .number_default = 2, .min = 1, .max = 64},
        {.name = "codec", .kind = K::choice, .metavar = "C", .help = "page compression", .text_default = "none",
         .choices = "none|off|lz4|zstd"},
        {.name = "codec-level", .kind = K::integer, .metavar = "N", .help = "the codec's level (0: its default)",
         .number_default = 0, .min = -100, .max = 100},
        {.name = "downtime-ms", .kind = K::real, .metavar = "MS", .help = "downtime budget",
         .number_default = convergence.downtime_budget_ms},
        {.name = "max-rounds", .kind = K::whole, .metavar = "N", .help = "give up after N rounds",
         .number_default = static_cast<double>(convergence.max_rounds), .min = 1, .max = 100000},
        {.name = "max-seconds", .kind = K::real, .metavar = "S", .help = "give up after S seconds",
         .number_default = convergence.max_total_seconds},
        {.name = "dirty-log", .kind = K::choice, .metavar = "L",
         .help = "how writes are tracked: uffd is userfaultfd write-protect, bitmap a KVM_GET_DIRTY_LOG-style "
                 "bitmap the writers keep",
         .text_default = "uffd", .choices = "uffd|bitmap"},
        {.name = "zero-fraction", .kind = K::real, .metavar = "F", .help = "share of pages left zero at start",
         .number_default = 0.25, .max = 1},
        {.name = "warmup-ms", .kind = K::real, .metavar = "MS", .help = "writers run this long before migrating",
         .number_default = 200},
        {.name = "hash-at-pause", .kind = K::flag,
         .help = "hash all memory inside pause() (adds to downtime) instead of keeping the list current with "
                 "each write and re-checking it against memory after the migration"},
        {.name = "pause-hold-ms", .kind = K::real, .metavar = "MS",
         .help = "stay this long inside pause(), as a VMM saving slow devices would (widens the switchover "
                 "for fault injection)",
         .number_default = 0},
        {.name = "retry-uri-file", .metavar = "PATH",
         .help = "after a failed migration, wait for a destination URI to appear in PATH and migrate the same "
                 "guest there (the report's \"retry\"); the fault soak uses it to show the source survived"},
        {.name = "retry-wait", .kind = K::real, .metavar = "S", .help = "how long to wait for --retry-uri-file",
         .number_default = 60},
        {.name = "postcopy", .kind = K::flag,
         .help = "allow post-copy: once the convergence policy finds pre-copy will not fit the downtime budget "
                 "(instead of throttling the writers), pause them and start the guest on the destination at "
                 "once; its missing pages follow, those its readers touch first (a pre-copy that converges "
                 "first still switches over as usual)"},
        {.name = "postcopy-after", .kind = K::whole, .metavar = "N",
         .help = "switch to post-copy after N pre-copy rounds (1: after the full first round), whatever "
                 "pre-copy would do; implies --postcopy",
         .default_note = "when pre-copy will not converge", .min = 1, .max = 100000},
        {.name = "no-postcopy-pull", .kind = K::flag,
         .help = "post-copy over rdma: push the pending pages instead of letting the destination read them "
                 "itself (RDMA READ); for comparing the two"},
    };
    return kOptions;
}

std::span<const OptionSpec> dest_options() {
    static const OptionSpec kOptions[] = {
        {.name = "listen", .metavar = "URI", .help = "where to listen (tcp:ADDR:PORT; port 0 picks one)",
         .required = true},
        {.name = "expect-workers", .kind = K::whole, .metavar = "N", .help = "refuse other channel counts",
         .number_default = 0, .default_note = "as announced", .max = 64},
        {.name = "timeout", .kind = K::real, .metavar = "S", .help = "whole session (a destination waits this long for its source)", .number_default = 600,
         .min = 0.001},
        {.name = "step-timeout", .kind = K::real, .metavar = "S",
         .help = "longest one step may block once the source came (its data channels, a round, a "
                 "message): a silent source is given up after it",
         .number_default = 0, .default_note = "the engine's (60)"},
        {.name = "port-file", .metavar = "PATH", .help = "write the listening address there once listening"},
        {.name = "guest-readers", .kind = K::whole, .metavar = "N",
         .help = "post-copy (the destination always accepts it): threads that run the guest here from the "
                 "switch until the session ends, reading pages in random order (a missing page blocks the "
                 "reader until rmig places it) and checking each against its index and the source's hash "
                 "list; a bad page is exit 3",
         .number_default = 2, .max = 64},
        {.name = "guest-read-rate", .metavar = "RATE",
         .help = "pages each guest reader reads per second, as bytes/s (\"100M\") or pages/s (\"20000p\"); 0: as "
                 "fast as it can",
         .text_default = "20000p"},
    };
    return kOptions;
}

std::span<const OptionSpec> both_options() {
    static const OptionSpec kOptions[] = {
        {.name = "size", .kind = K::size, .metavar = "SIZE",
         .help = "guest memory, the same on both sides (a multiple of 4K; at most ~8G, the hash list must fit "
                 "one device-state frame)",
         .number_default = 1 << 30, .min = kPageSize},
        {.name = "threads", .kind = K::whole, .metavar = "N", .help = "threads that fill, hash and verify memory",
         .number_default = 2, .min = 1, .max = 64},
        {.name = "postcopy-recover", .kind = K::real, .metavar = "S",
         .help = "post-copy: after a lost link, keep the guest running on the destination and retry new "
                 "channels this long (source: reconnect; destination: listen for the same session); 0: fail "
                 "at once",
         .number_default = 120},
        {.name = "json", .kind = K::flag, .help = "print one JSON object on stdout"},
        {.name = "quiet", .kind = K::flag, .help = "no progress on stderr"},
        {.name = "help", .kind = K::flag, .help = "this text"},
    };
    return kOptions;
}

constexpr std::string_view kBothHeading =
    "both (security: the same options and policy as `rmig migrate/receive`, below)";

// A rate of pages as bytes/s ("200M") or pages/s ("50000p"), in bytes/s.
double page_rate(const std::string& r, const std::string& option) {
    if (!r.empty() && r.back() == 'p') {
        OptionSpec pages{.name = option, .kind = K::real};
        std::string n = r.substr(0, r.size() - 1);
        check_option_value(pages, n);
        return option_number(pages, n) * kPageSize;
    }
    try {
        return static_cast<double>(parse_size(r, "--" + option));
    } catch (const Error& e) {
        throw UsageError(cat(e.what(), " (or pages/s, like 50000p)"));
    }
}

}  // namespace

const ProgramSpec& synth_program() {
    static const ProgramSpec kProgram{
        "rmig-synth",
        {
            {"source", "--size 4G --dirty-rate 200M --pattern hot --to tcp:HOST:PORT [options]",
             "the guest that migrates", "",
             {{"source options", source_options()}, {kBothHeading, both_options()}, security::settings_options()}},
            {"dest", "  --size 4G --listen tcp:ADDR:PORT [options]", "the guest that arrives", "",
             {{"destination options", dest_options()}, {kBothHeading, both_options()},
              security::settings_options()}},
        }};
    return kProgram;
}

std::string help_text() { return program_help(synth_program(), kAbout); }

bool parse_options(int argc, char** argv, Options& o) {
    if (argc < 2) throw UsageError("missing mode: source or dest (see --help)");
    std::string mode = argv[1];
    if (mode == "--help" || mode == "-h" || mode == "help") return false;
    const CommandSpec* command = synth_program().find(mode);
    if (!command) throw UsageError(cat("unknown mode '", mode, "': source or dest"));
    std::vector<std::string> argv_rest(argv + 2, argv + argc);
    for (const auto& a : argv_rest)
        if (a == "-h") return false;
    Args a(argv_rest, synth_program(), *command);
    if (a.flag("help")) return false;
    if (!a.positional().empty()) throw UsageError(cat("unexpected argument '", a.positional()[0], "' (see --help)"));
    a.check_required();

    o.source = mode == "source";
    o.size = a.whole("size");
    o.threads = static_cast<unsigned>(a.whole("threads"));
    o.json = a.flag("json");
    o.quiet = a.flag("quiet");
    o.postcopy_recover_s = a.real("postcopy-recover");
    o.security = security::settings_from_args(a);
    if (o.source) {
        o.uri = a.text("to");
        o.dirty_bytes_per_second = page_rate(a.text("dirty-rate"), "dirty-rate");
        o.writer.pattern = parse_pattern(a.text("pattern"));
        o.writer.hot_fraction = a.real("hot-fraction");
        o.writer.hot_writes = a.real("hot-writes");
        o.writer.writers = static_cast<unsigned>(a.whole("writers"));
        o.workers = static_cast<unsigned>(a.whole("workers"));
        o.codec = a.text("codec");
        o.codec_level = static_cast<int>(a.integer("codec-level"));
        o.downtime_ms = a.real("downtime-ms");
        o.max_rounds = static_cast<unsigned>(a.whole("max-rounds"));
        o.max_seconds = a.real("max-seconds");
        o.dirty_log = a.text("dirty-log");
        o.zero_fraction = a.real("zero-fraction");
        o.warmup_ms = a.real("warmup-ms");
        o.hash_at_pause = a.flag("hash-at-pause");
        o.pause_hold_ms = a.real("pause-hold-ms");
        o.retry_uri_file = a.text("retry-uri-file");
        o.retry_wait_s = a.real("retry-wait");
        o.postcopy = a.flag("postcopy") || a.get("postcopy-after").has_value();
        o.postcopy_after = a.get("postcopy-after") ? static_cast<unsigned>(a.whole("postcopy-after")) : 0;
        o.postcopy_pull = !a.flag("no-postcopy-pull");
    } else {
        o.uri = a.text("listen");
        o.expect_workers = static_cast<unsigned>(a.whole("expect-workers"));
        o.timeout_s = a.real("timeout");
        o.step_timeout_s = a.real("step-timeout");
        o.port_file = a.text("port-file");
        o.guest_readers = static_cast<unsigned>(a.whole("guest-readers"));
        o.guest_read_pages_per_second = page_rate(a.text("guest-read-rate"), "guest-read-rate") / kPageSize;
    }
    if (o.size % kPageSize != 0) throw UsageError(cat("--size must be a positive multiple of ", kPageSize));
    if (o.size > max_guest_bytes())
        throw UsageError(cat("--size ", o.size, " is over ", max_guest_bytes(),
                             " bytes: the hash list must fit one device-state frame"));
    o.writer.pages_per_second = o.dirty_bytes_per_second / kPageSize;
    try {  // refused here (exit 2), before any memory is filled
        security::check_settings(o.security, o.uri, o.source ? "--to" : "--listen");
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    return true;
}

}  // namespace rmig::synth
