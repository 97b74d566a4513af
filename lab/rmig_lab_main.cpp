// rmig-lab: the main job (demo) and the migration benchmark, on a real local
// QEMU pair running rmig's test guest.
#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "common/args.hpp"
#include "common/process.hpp"
#include "common/units.hpp"
#include "lab/fault_harness.hpp"
#include "lab/local_pair.hpp"
#include "lab/memory_soak.hpp"
#include "lab/converge_bench.hpp"
#include "lab/wan_bench.hpp"

using namespace rmig;
using rmig::Args;

namespace {

const char* kUsage = R"(usage: rmig-lab <demo|bench|faults|wan> [options]

demo     boot a test guest in QEMU, live-migrate it to a second local QEMU
         through rmig over TCP (rmig receive + rmig migrate as separate
         processes), then verify the guest's memory and that it runs on the
         destination.
           --multifd N     multifd channels (default 4; 0 = main stream only)
           --ram MIB       guest RAM (default 1024)
           --keep          keep the lab directory (logs, reports)
           --json FILE     write the rmig migrate report there too
           --plaintext     run rmig with --insecure-plaintext instead of a random
                           pre-shared key (authenticated + AES-256-GCM)
bench    migrate the same guest directly (QEMU to QEMU) and through rmig,
         with 1 stream and with multifd, alternating, and print medians
         and the ratios rmig/direct.
           --runs N        runs per mode (default 5)
           --multifd N     channels of the multifd modes (default 4)
           --ram MIB       guest RAM (default 256)
           --json FILE     write all samples and medians there
           --plaintext     rmig runs without authentication and encryption
           --downtime-limit MS  the blackout limit given to both (default 300)
           --qemu-downtime-limit MS  rmig gives QEMU exactly this and does not
                           steer it (the behaviour before the blackout budget)
           --rmig-only     only the rmig modes (a throttled link slows only
                           rmig's TCP: bench/scripts/blackout_throttled.sh)
         blackout: source STOP -> destination RESUME (rmig resumes); for direct,
         source STOP -> destination loaded (QEMU's autostart point)
faults   fault injection: migrate through a fault-injecting proxy, break the
         link (cut, corrupt, stall, delay) or kill -9 a side (source rmig,
         destination rmig, destination QEMU) before the first byte, mid-round,
         during switchover or after completion; check the source keeps running,
         the destination never runs a partial guest, nothing hangs, and a retry
         verifies. Prints a tally; exits 1 on any failed case.
           --cases N       random cases (default 20)
           --seed S        random seed (default 1)
           --ci            the fixed CI set instead (every kind at least once)
           --only K        run only case K of that set (to reproduce a failure)
           --max-minutes M stop starting new cases after M minutes
           --stall-timeout S  rmig --stall-timeout in faulted runs (default 4)
           --json FILE     write every case and the tally there

exit codes: 0 success, 1 failure (details on stderr), 2 bad arguments
)";

void step(int n, int of, const std::string& what) {
    std::printf("[%d/%d] %s\n", n, of, what.c_str());
    std::fflush(stdout);
}

int demo(const std::vector<std::string>& argv) {
    Args a(argv, {"multifd", "ram", "json"}, {"keep", "help", "plaintext"});
    if (a.flag("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    lab::VmSpec spec;
    spec.ram_mib = a.number("ram", 1024);
    lab::RmigRun run;
    run.settings.multifd_channels = static_cast<uint32_t>(a.number("multifd", 4));
    run.show_progress = true;
    run.plaintext = a.flag("plaintext");

    std::printf("rmig demo: live migration of a real QEMU guest through rmig over TCP on loopback\n");
    step(1, 4, cat("starting the source QEMU (TCG, ", spec.ram_mib,
                   " MiB) with the test guest, which rewrites 99 MiB per pass"));
    lab::LocalPair pair(spec);
    if (a.flag("keep")) pair.keep();
    size_t m0 = pair.source().markers();
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    std::printf("      guest running: %zu passes in the last second\n", pair.source().markers() - m0);
    step(2, 4, "destination QEMU waiting with -S -incoming defer");
    step(3, 4, cat("migrating: rmig receive (destination side) <- TCP <- rmig migrate (source side), ",
                   run.settings.multifd_channels
                       ? cat("multifd with ", run.settings.multifd_channels, " channels")
                       : std::string("main stream only")));
    std::fflush(stdout);
    lab::RunResult r = pair.migrate_rmig(run);
    if (auto j = a.get("json")) std::ofstream(*j) << r.report.dump(2) << "\n";
    if (!r.ok) {
        std::fprintf(stderr, "rmig-lab demo: migration failed (rmig migrate exit %d): %s\n"
                             "  logs in %s\n", r.exit_code, r.error.c_str(), pair.dir().c_str());
        pair.keep();
        return 1;
    }
    step(4, 4, "verifying: source and destination memory byte for byte, the guest's pattern, "
               "then resuming the destination");
    lab::VerifyResult v = pair.verify();
    if (!v.ok) {
        std::fprintf(stderr, "rmig-lab demo: verification FAILED: %s\n  logs in %s\n",
                     v.detail.c_str(), pair.dir().c_str());
        pair.keep();
        return 1;
    }
    std::printf("      %s\n", v.detail.c_str());
    std::printf("\nguest verified and running on the destination "
                "(total %s, downtime %s, %s moved)\n",
                format_millis(r.total_ms).c_str(), format_millis(r.downtime_ms).c_str(),
                format_bytes(double(r.ram_bytes)).c_str());
    if (a.flag("keep")) std::printf("lab directory kept: %s\n", pair.dir().c_str());
    return 0;
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int bench(const std::vector<std::string>& argv) {
    Args a(argv, {"runs", "multifd", "ram", "json", "downtime-limit", "qemu-downtime-limit"},
           {"help", "plaintext", "rmig-only"});
    if (a.flag("help")) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    int runs = static_cast<int>(a.number("runs", 5));
    auto limit = static_cast<uint64_t>(a.number("downtime-limit", 300));
    auto qemu_limit = a.get("qemu-downtime-limit");
    bool plaintext = a.flag("plaintext");
    auto mf = static_cast<uint32_t>(a.number("multifd", 4));
    lab::VmSpec spec;
    spec.ram_mib = a.number("ram", 256);
    struct Mode {
        std::string name;
        bool rmig;
        uint32_t multifd;
    };
    std::vector<Mode> modes = {{"direct-1", false, 0}, {"rmig-1", true, 0},
                               {cat("direct-mf", mf), false, mf}, {cat("rmig-mf", mf), true, mf}};
    // A throttled link (bench/scripts/blackout_throttled.sh) slows rmig's TCP
    // only; a direct migration's UNIX socket would not see it.
    if (a.flag("rmig-only")) modes = {{"rmig-1", true, 0}, {cat("rmig-mf", mf), true, mf}};
    std::map<std::string, std::vector<double>> total, down, black;
    nlohmann::json samples = nlohmann::json::array();
    auto opt = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); };
    const char* image = std::getenv("RMIG_GUEST_IMAGE");
    std::printf("migration benchmark: %d runs per mode, alternating; guest %llu MiB, %s\n"
                "blackout: source STOP -> destination RESUME (rmig resumes it); for direct, source STOP ->\n"
                "destination loaded, where QEMU would resume with autostart. QMP event timestamps, read by\n"
                "the lab from its own monitors.\n",
                runs, static_cast<unsigned long long>(spec.ram_mib),
                image ? cat("image ", image).c_str() : "rewriting 99 MiB per pass");
    for (int i = 0; i < runs; ++i) {
        for (auto& m : modes) {
            lab::LocalPair pair(spec);
            qemu::MigrationSettings s;
            s.multifd_channels = m.multifd;
            s.downtime_limit_ms = limit;
            lab::RunResult r;
            if (m.rmig) {
                lab::RmigRun run;
                run.settings = s;
                run.plaintext = plaintext;
                run.resume = true;
                if (qemu_limit) run.extra_args = {"--qemu-downtime-limit", *qemu_limit};
                r = pair.migrate_rmig(run);
            } else {
                r = pair.migrate_direct(s);
            }
            if (!r.ok) {
                std::fprintf(stderr, "run %d %s failed: %s\n", i + 1, m.name.c_str(), r.error.c_str());
                return 1;
            }
            auto blackout = m.rmig ? r.blackout_ms : r.stop_to_loaded_ms;
            if (!blackout) {
                std::fprintf(stderr, "run %d %s: no blackout measured (QMP events missing)\n", i + 1,
                             m.name.c_str());
                return 1;
            }
            total[m.name].push_back(r.total_ms);
            down[m.name].push_back(r.downtime_ms);
            black[m.name].push_back(*blackout);
            samples.push_back({{"mode", m.name}, {"run", i + 1}, {"total_ms", r.total_ms},
                               {"downtime_ms", r.downtime_ms}, {"blackout_ms", *blackout},
                               {"stop_to_loaded_ms", opt(r.stop_to_loaded_ms)},
                               {"rmig_reported_blackout_ms", opt(r.rmig_blackout_ms)},
                               {"ram_bytes", r.ram_bytes}, {"rounds", r.rounds}});
            std::printf("  run %d %-10s total %7.0f ms  QEMU downtime %5.0f ms  blackout %6.1f ms", i + 1,
                        m.name.c_str(), r.total_ms, r.downtime_ms, *blackout);
            if (r.rmig_blackout_ms) std::printf(" (rmig says %.1f)", *r.rmig_blackout_ms);
            std::printf("  rounds %2llu  %s\n", static_cast<unsigned long long>(r.rounds),
                        format_bytes(double(r.ram_bytes)).c_str());
            std::fflush(stdout);
        }
    }
    std::printf("\n%-12s %14s %16s %16s %14s %12s\n", "mode", "median total", "QEMU downtime", "blackout",
                "max blackout", "within limit");
    nlohmann::json modes_json = nlohmann::json::array();
    for (auto& m : modes) {
        const auto& b = black[m.name];
        auto within = std::count_if(b.begin(), b.end(), [&](double v) { return v <= double(limit); });
        double worst = b.empty() ? 0 : *std::max_element(b.begin(), b.end());
        std::printf("%-12s %11.0f ms %13.0f ms %13.1f ms %11.1f ms %7zu of %zu\n", m.name.c_str(),
                    median(total[m.name]), median(down[m.name]), median(b), worst, size_t(within), b.size());
        modes_json.push_back({{"mode", m.name}, {"median_total_ms", median(total[m.name])},
                              {"median_qemu_downtime_ms", median(down[m.name])}, {"median_blackout_ms", median(b)},
                              {"max_blackout_ms", worst}, {"within_limit", within}, {"runs", b.size()},
                              {"limit_ms", limit}});
    }
    if (a.flag("rmig-only")) {
        if (auto j = a.get("json"))
            std::ofstream(*j) << nlohmann::json{{"samples", samples}, {"modes", modes_json}}.dump(2) << "\n";
        return 0;
    }
    nlohmann::json summary = nlohmann::json::array();
    std::printf("\n%-22s %12s %20s\n", "comparison", "total ratio", "blackout difference");
    for (size_t k = 0; k + 1 < modes.size(); k += 2) {
        auto& d = modes[k].name;
        auto& r = modes[k + 1].name;
        double ratio = median(total[r]) / std::max(1.0, median(total[d]));
        double diff = median(black[r]) - median(black[d]);
        std::printf("%-22s %12.3f %17.1f ms   (targets: <= 1.25, <= +10 ms)\n", (r + " / " + d).c_str(), ratio,
                    diff);
        summary.push_back({{"rmig", r}, {"direct", d}, {"total_ratio", ratio},
                           {"median_blackout_rmig_ms", median(black[r])},
                           {"median_blackout_direct_ms", median(black[d])}, {"blackout_diff_ms", diff},
                           {"downtime_diff_ms", median(down[r]) - median(down[d])}});
    }
    if (auto j = a.get("json"))
        std::ofstream(*j) << nlohmann::json{{"samples", samples}, {"modes", modes_json}, {"comparisons", summary}}
                                 .dump(2)
                          << "\n";
    return 0;
}

int faults(const std::vector<std::string>& argv) {
    for (size_t i = 0; i + 1 < argv.size(); ++i)
        if (argv[i] == "--mode" && argv[i + 1] == "memory") return lab::memory_faults(argv);
    Args a(argv, {"cases", "seed", "max-minutes", "stall-timeout", "json", "only"}, {"ci", "help"});
    if (a.flag("help")) {
        std::fputs(kUsage, stdout);
        std::fputs(lab::kMemorySoakUsage, stdout);
        return 0;
    }
    lab::HarnessOptions o;
    o.stall_timeout_s = static_cast<int>(a.number("stall-timeout", 4));
    std::vector<lab::FaultCase> cases;
    uint64_t seed = a.number("seed", 1);
    if (a.flag("ci")) {
        cases = lab::ci_cases();
    } else {
        std::mt19937_64 rng(seed);
        for (uint64_t i = 0, n = a.number("cases", 20); i < n; ++i) cases.push_back(lab::random_case(rng));
    }
    if (auto only = a.number("only", 0)) {  // reproduce one case of a run: same seed, its number
        if (only > cases.size()) throw UsageError("--only: no such case");
        cases = {cases[only - 1]};
    }
    auto t0 = std::chrono::steady_clock::now();
    auto budget = std::chrono::minutes(a.number("max-minutes", 0));
    struct Cell {
        int passed = 0, failed = 0;
    };
    std::map<std::pair<std::string, std::string>, Cell> tally;
    nlohmann::json results = nlohmann::json::array();
    int passed = 0, failed = 0;
    size_t skipped = 0;
    std::printf("fault injection: %zu cases%s\n", cases.size(),
                a.flag("ci") ? " (CI set)" : cat(", seed ", seed).c_str());
    for (size_t i = 0; i < cases.size(); ++i) {
        if (budget.count() && std::chrono::steady_clock::now() - t0 > budget) {
            skipped = cases.size() - i;
            std::printf("time budget of %lld min used up: %zu cases not run\n",
                        static_cast<long long>(budget.count()), skipped);
            break;
        }
        lab::CaseResult r = lab::run_case(cases[i], o);
        auto& cell = tally[{lab::to_string(r.fault.kind), lab::to_string(r.observed)}];
        (r.passed ? cell.passed : cell.failed)++;
        (r.passed ? passed : failed)++;
        std::printf("case %3zu %-4s %-62s fired %-17s migrate %3d receive %3d %5.1f s%s\n", i + 1,
                    r.passed ? "ok" : "FAIL", r.fault.describe().c_str(), lab::to_string(r.observed),
                    r.migrate_exit, r.receive_exit, r.seconds,
                    r.operator_resumed ? " (operator resumed source)" : "");
        for (auto& f : r.failures) std::printf("         - %s\n", f.c_str());
        for (auto& n : r.notes) std::printf("         note: %s\n", n.c_str());
        if (!r.passed) std::printf("         lab dir kept: %s\n", r.dir.c_str());
        std::fflush(stdout);
        results.push_back(r.to_json());
    }
    std::printf("\n%-18s %-18s %7s %7s\n", "fault", "fired at", "passed", "failed");
    nlohmann::json jt = nlohmann::json::array();
    for (auto& [key, cell] : tally) {
        std::printf("%-18s %-18s %7d %7d\n", key.first.c_str(), key.second.c_str(), cell.passed,
                    cell.failed);
        jt.push_back({{"kind", key.first}, {"point", key.second}, {"passed", cell.passed},
                      {"failed", cell.failed}});
    }
    double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60;
    std::printf("total: %d passed, %d failed, %zu not run, %.1f min\n", passed, failed, skipped, minutes);
    if (auto j = a.get("json"))
        std::ofstream(*j) << nlohmann::json{{"cases", results}, {"tally", jt}, {"passed", passed},
                                            {"failed", failed}, {"not_run", skipped},
                                            {"minutes", minutes}, {"seed", seed}}
                                 .dump(2)
                          << "\n";
    return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "--help" || args[0] == "help" || args[0] == "-h") {
        std::fputs(kUsage, args.empty() ? stderr : stdout);
        std::fputs(lab::kMemorySoakUsage, args.empty() ? stderr : stdout);
        std::fputs(lab::kWanBenchUsage, args.empty() ? stderr : stdout);
        std::fputs(lab::kConvergeBenchUsage, args.empty() ? stderr : stdout);
        return args.empty() ? 2 : 0;
    }
    std::vector<std::string> rest(args.begin() + 1, args.end());
    // Killed by a timeout (scripts/soak.sh) or ^C: take the QEMUs and rmigs along.
    Process::children_die_with_parent(true);
    try {
        if (args[0] == "demo") return demo(rest);
        if (args[0] == "bench") return bench(rest);
        if (args[0] == "faults") return faults(rest);
        if (args[0] == "wan") return lab::wan_bench(rest);
        if (args[0] == "converge") return lab::converge_bench(rest);
        std::fprintf(stderr, "rmig-lab: unknown command '%s'\n%s", args[0].c_str(), kUsage);
        return 2;
    } catch (const UsageError& e) {
        std::fprintf(stderr, "rmig-lab: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "rmig-lab: error: %s\n", e.what());
        return 1;
    }
}
