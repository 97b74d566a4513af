#include "lab/synth/options.hpp"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "common/error.hpp"
#include "common/units.hpp"
#include "lab/synth/hash_blob.hpp"

namespace rmig::synth {

const char* help_text() {
    return R"(rmig-synth: a synthetic guest migrated live with rmig's memory mode.

  rmig-synth source --size 4G --dirty-rate 200M --pattern hot --to tcp:HOST:PORT [options]
  rmig-synth dest   --size 4G --listen tcp:ADDR:PORT [options]

The source owns --size bytes (mmap, populated, every page filled with content
derived from its index and write count, a --zero-fraction share left zero),
runs --writers threads rewriting whole pages at --dirty-rate, and migrates it
to the destination. At switchover the writers stop and the XXH3 hash of every
page travels as the device state; the destination checks every page against
it and fails (exit 3) on any mismatch. Progress per round goes to stderr.

Source options:
  --to URI              destination (tcp:HOST:PORT)
  --size SIZE           guest memory (K/M/G suffixes; at most ~8G, the hash list
                        must fit one device-state frame); default 1G
  --dirty-rate RATE     page writes per second as bytes/s ("200M" = 200 MiB/s of
                        4 KiB pages) or pages/s ("50000p"); default 0 (idle guest)
  --pattern P           uniform | hot | sequential (default uniform)
  --hot-fraction F      hot set as a share of memory (default 0.1)
  --hot-writes F        share of writes that go to the hot set (default 0.9)
  --writers N           writer threads (default 1)
  --workers N           engine workers = data channels (default 2)
  --codec C             none | lz4 | zstd (default none); --codec-level N
  --downtime-ms MS      downtime budget (default 300)
  --max-rounds N        give up after N rounds (default 30)
  --max-seconds S       give up after S seconds (default 600)
  --dirty-log L         uffd (userfaultfd write-protect, default) | bitmap
                        (writers keep a KVM_GET_DIRTY_LOG-style bitmap)
  --zero-fraction F     share of pages left zero at start (default 0.25)
  --warmup-ms MS        writers run this long before migrating (default 200)
  --hash-at-pause       hash all memory inside pause() (adds to downtime)
                        instead of keeping the list current with each write
                        and re-checking it against memory after the migration
Destination options:
  --listen URI          where to listen (tcp:ADDR:PORT; port 0 picks one)
  --size SIZE           must equal the source's
  --expect-workers N    refuse other channel counts (default: as announced)
  --timeout S           whole session (default 600)
  --port-file PATH      write the listening address there once listening
Both (security: the same options and policy as `rmig migrate/receive`, see below):
  --threads N           threads that fill, hash and verify memory (default 2)
  --json                print one JSON object on stdout
  --quiet               no progress on stderr
  --help

Exit: 0 ok, 1 migration failed, 2 usage, 3 destination pages differ.
)";
}

namespace {

double parse_number(const std::string& v, const std::string& what) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d < 0)
        throw UsageError(cat("bad ", what, " '", v, "': expected a number >= 0"));
    return d;
}

unsigned parse_count(const std::string& v, const std::string& what, unsigned lo, unsigned hi) {
    double d = parse_number(v, what);
    if (d != std::floor(d) || d < lo || d > hi) throw UsageError(cat(what, " must be an integer in ", lo, "..", hi));
    return static_cast<unsigned>(d);
}

}  // namespace

bool parse_options(int argc, char** argv, Options& o) {
    if (argc < 2) throw UsageError("missing mode: source or dest (see --help)");
    std::string mode = argv[1];
    if (mode == "--help" || mode == "-h" || mode == "help") return false;
    if (mode != "source" && mode != "dest") throw UsageError(cat("unknown mode '", mode, "': source or dest"));
    o.source = mode == "source";
    std::vector<std::string> args(argv + 2, argv + argc);
    for (size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i];
        std::string v;
        if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
            v = a.substr(eq + 1);
            a = a.substr(0, eq);
            args.insert(args.begin() + static_cast<long>(i) + 1, v);
        }
        auto need = [&]() -> std::string {
            if (i + 1 >= args.size()) throw UsageError(cat(a, " needs a value"));
            return args[++i];
        };
        auto source_only = [&] {
            if (!o.source) throw UsageError(cat(a, " is a source option"));
        };
        if (a == "--help" || a == "-h") return false;
        if (a == "--json") o.json = true;
        else if (a == "--quiet") o.quiet = true;
        else if (a == "--size") {
            try {
                o.size = parse_size(need(), "--size");
            } catch (const Error& e) {
                throw UsageError(e.what());
            }
        } else if (a == "--threads") o.threads = parse_count(need(), a, 1, 64);
        else if (a == "--to") { source_only(); o.uri = need(); }
        else if (a == "--listen") {
            if (o.source) throw UsageError("--listen is a dest option");
            o.uri = need();
        } else if (a == "--dirty-rate") {
            source_only();
            std::string r = need();
            if (!r.empty() && r.back() == 'p') {
                o.dirty_bytes_per_second = parse_number(r.substr(0, r.size() - 1), a) * kPageSize;
            } else {
                try {
                    o.dirty_bytes_per_second = static_cast<double>(parse_size(r, a));
                } catch (const Error& e) {
                    throw UsageError(e.what());
                }
            }
        } else if (a == "--pattern") {
            source_only();
            try {
                o.writer.pattern = parse_pattern(need());
            } catch (const Error& e) {
                throw UsageError(e.what());
            }
        } else if (a == "--hot-fraction") { source_only(); o.writer.hot_fraction = parse_number(need(), a); }
        else if (a == "--hot-writes") { source_only(); o.writer.hot_writes = parse_number(need(), a); }
        else if (a == "--writers") { source_only(); o.writer.writers = parse_count(need(), a, 1, 64); }
        else if (a == "--workers") { source_only(); o.workers = parse_count(need(), a, 1, 64); }
        else if (a == "--codec") { source_only(); o.codec = need(); }
        else if (a == "--codec-level") {
            source_only();
            std::string v2 = need();
            char* end = nullptr;
            long l = std::strtol(v2.c_str(), &end, 10);
            if (v2.empty() || *end || l < -100 || l > 100) throw UsageError("--codec-level must be an integer");
            o.codec_level = static_cast<int>(l);
        } else if (a == "--downtime-ms") { source_only(); o.downtime_ms = parse_number(need(), a); }
        else if (a == "--max-rounds") { source_only(); o.max_rounds = parse_count(need(), a, 1, 100000); }
        else if (a == "--max-seconds") { source_only(); o.max_seconds = parse_number(need(), a); }
        else if (a == "--dirty-log") { source_only(); o.dirty_log = need(); }
        else if (a == "--zero-fraction") { source_only(); o.zero_fraction = parse_number(need(), a); }
        else if (a == "--warmup-ms") { source_only(); o.warmup_ms = parse_number(need(), a); }
        else if (a == "--hash-at-pause") { source_only(); o.hash_at_pause = true; }
        else if (a == "--expect-workers") {
            if (o.source) throw UsageError("--expect-workers is a dest option");
            o.expect_workers = parse_count(need(), a, 0, 64);
        } else if (a == "--timeout") {
            if (o.source) throw UsageError("--timeout is a dest option");
            o.timeout_s = parse_number(need(), a);
        } else if (a == "--port-file") {
            if (o.source) throw UsageError("--port-file is a dest option");
            o.port_file = need();
        } else if (a.rfind("--", 0) == 0 && security::Settings::takes_value(a.substr(2))) {
            o.security.set(a.substr(2), need());
        } else if (a.rfind("--", 0) == 0 && security::Settings::is_flag(a.substr(2))) {
            o.security.set(a.substr(2));
        } else {
            throw UsageError(cat("unknown option '", args[i], "' (see --help)"));
        }
    }
    if (o.uri.empty()) throw UsageError(o.source ? "--to URI is required" : "--listen URI is required");
    if (o.size == 0 || o.size % kPageSize != 0) throw UsageError(cat("--size must be a positive multiple of ", kPageSize));
    if (o.size > max_guest_bytes())
        throw UsageError(cat("--size ", o.size, " is over ", max_guest_bytes(),
                             " bytes: the hash list must fit one device-state frame"));
    if (o.dirty_log != "uffd" && o.dirty_log != "bitmap") throw UsageError("--dirty-log must be uffd or bitmap");
    if (o.zero_fraction > 1) throw UsageError("--zero-fraction must be in [0, 1]");
    if (o.timeout_s <= 0) throw UsageError("--timeout must be > 0");
    o.writer.pages_per_second = o.dirty_bytes_per_second / kPageSize;
    try {  // refused here (exit 2), before any memory is filled
        security::check_settings(o.security, o.uri, o.source ? "--to" : "--listen");
    } catch (const Error& e) {
        throw UsageError(e.what());
    }
    return true;
}

}  // namespace rmig::synth
