#include "lab/converge_bench.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/args.hpp"
#include "common/error.hpp"
#include "lab/local_pair.hpp"

namespace rmig::lab {

const char* const kConvergeBenchUsage = R"(converge migrate the test guest through rmig with three convergence variants,
         alternating, and print per variant how many runs completed, median total
         time and blackout, and the most QEMU throttled the guest:
           steered       rmig's default: auto-converge with the throttle rmig plans
           qemu-default  --no-auto-converge (QEMU's own default)
           by-hand       --cpu-throttle-initial 20 --cpu-throttle-increment 10
                         (auto-converge as a user would turn it on)
           --runs N        runs per variant (default 3)
           --ram MIB       guest RAM (default 256)
           --blackout-budget MS  (default 300)
           --timeout S     a run not done by then counts as not converged (default 90)
           --multifd N     multifd channels (default 0)
           --variants LIST comma-separated subset (default all three)
           --compress MODE rmig's --compress (default none: the test guest's
                           pages compress to nearly nothing, real ones do not)
           --json FILE     write every run (with rmig's report) and the summary there
           --marker-mib N  each of the guest's serial markers stands for N MiB
                           written (the paced guest, rmig-test-guest-paced.img: 4):
                           time its write rate for 3 s before each run, for the
                           dirty/link ratio (default 0: QEMU's first dirty rate)
         Run it where the link is slower than the guest dirties its memory
         (bench/scripts/convergence_channel.sh); on plain loopback every
         variant converges at once.
)";

namespace {

struct Variant {
    std::string name;
    std::vector<std::string> args;
};

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// The guest's dirty rate before any throttle against the link: how hard
// this run was.
// The link is QEMU's median send rate. The guest's write rate is the lab's
// own measurement when it has one (`guest_rate`), else QEMU's first dirty
// rate, which a round longer than the working set takes to rewrite caps.
std::optional<double> dirty_per_link(const nlohmann::json& report, double guest_rate) {
    if (!report.is_object() || !report.contains("timeline")) return std::nullopt;
    const auto& samples = report["timeline"].value("samples", nlohmann::json::array());
    double dirty = 0;
    std::vector<double> sent;
    for (const auto& s : samples) {
        double d = s.value("dirty_rate_bytes_per_s", 0.0), t = s.value("throughput_bytes_per_s", 0.0);
        if (dirty == 0 && d > 0) dirty = d;
        if (t > 0) sent.push_back(t);
    }
    double link = median(sent);
    if (guest_rate > 0) dirty = guest_rate;
    if (dirty == 0 || link == 0) return std::nullopt;
    return dirty / link;
}

// The paced guest writes a serial marker per `marker_mib` MiB: its write
// rate over 3 s before the migration starts (after its first fill).
double guest_write_rate(QemuVm& vm, uint64_t marker_mib) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (vm.markers() == 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    size_t before = vm.markers();
    auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    size_t after = vm.markers();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return double(after - before) * double(marker_mib << 20) / s;
}

}  // namespace

int converge_bench(const std::vector<std::string>& argv) {
    Args a(argv, {"runs", "ram", "blackout-budget", "timeout", "multifd", "variants", "compress", "json", "marker-mib"},
           {"help"});
    if (a.flag("help")) {
        std::fputs(kConvergeBenchUsage, stdout);
        return 0;
    }
    const int runs = static_cast<int>(a.number("runs", 3));
    const uint64_t budget = a.number("blackout-budget", 300);
    const int timeout_s = static_cast<int>(a.number("timeout", 90));
    const auto multifd = static_cast<uint32_t>(a.number("multifd", 0));
    // The test guest's pages compress to almost nothing: compressed, it would
    // not load a slow link at all. Real guests' pages do not.
    const std::string compress = a.get_or("compress", "none");
    const uint64_t marker_mib = a.number("marker-mib", 0);
    VmSpec spec;
    spec.ram_mib = a.number("ram", 256);
    std::vector<Variant> all = {
        {"steered", {}},
        {"qemu-default", {"--no-auto-converge"}},
        {"by-hand", {"--cpu-throttle-initial", "20", "--cpu-throttle-increment", "10"}}};
    std::vector<Variant> variants;
    std::string wanted = a.get_or("variants", "steered,qemu-default,by-hand") + ",";
    for (const auto& v : all)
        if (wanted.find(v.name + ",") != std::string::npos) variants.push_back(v);
    if (variants.empty()) throw UsageError("--variants: none of steered, qemu-default, by-hand");

    std::printf("convergence benchmark: %d runs per variant, alternating; guest %llu MiB, blackout budget %llu ms, "
                "timeout %d s, rmig --compress %s\n",
                runs, static_cast<unsigned long long>(spec.ram_mib), static_cast<unsigned long long>(budget),
                timeout_s, compress.c_str());
    struct Tally {
        int done = 0, runs = 0;
        std::vector<double> total, blackout, ratio;
        unsigned max_throttle = 0;
    };
    std::map<std::string, Tally> tally;
    nlohmann::json samples = nlohmann::json::array();
    for (int i = 0; i < runs; ++i) {
        for (const auto& v : variants) {
            LocalPair pair(spec);
            RmigRun run;
            run.settings.multifd_channels = multifd;
            run.settings.downtime_limit_ms = budget;
            run.resume = true;
            run.timeout_s = timeout_s;
            run.extra_args = v.args;
            run.extra_args.insert(run.extra_args.end(), {"--compress", compress});
            double guest_rate = marker_mib > 0 ? guest_write_rate(pair.source(), marker_mib) : 0;
            RunResult r = pair.migrate_rmig(run);
            Tally& t = tally[v.name];
            ++t.runs;
            unsigned throttle = 0;
            if (r.report.is_object() && r.report.contains("convergence"))
                throttle = r.report["convergence"].value("max_throttle_percent", 0u);
            t.max_throttle = std::max(t.max_throttle, throttle);
            auto ratio = dirty_per_link(r.report, guest_rate);
            if (ratio) t.ratio.push_back(*ratio);
            char ratio_text[32] = "dirty/link -";
            if (ratio) std::snprintf(ratio_text, sizeof ratio_text, "dirty/link %.2f", *ratio);
            bool ok = r.ok && r.blackout_ms.has_value();
            if (ok) {
                ++t.done;
                t.total.push_back(r.total_ms);
                t.blackout.push_back(*r.blackout_ms);
            }
            samples.push_back({{"variant", v.name}, {"run", i + 1}, {"completed", ok}, {"total_ms", r.total_ms},
                               {"wall_ms", r.wall_ms},
                               {"blackout_ms", r.blackout_ms ? nlohmann::json(*r.blackout_ms) : nlohmann::json()},
                               {"rounds", r.rounds}, {"max_throttle_percent", throttle},
                               {"dirty_per_link", ratio ? nlohmann::json(*ratio) : nlohmann::json()},
                               {"guest_write_bytes_per_s", guest_rate},
                               {"error", ok ? "" : r.error}, {"report", r.report}});
            if (ok)
                std::printf("  run %d %-13s total %7.0f ms  blackout %6.1f ms  rounds %3llu  throttle up to %u%%  %s\n",
                            i + 1, v.name.c_str(), r.total_ms, *r.blackout_ms,
                            static_cast<unsigned long long>(r.rounds), throttle, ratio_text);
            else {
                pair.keep();  // its logs say why
                std::printf("  run %d %-13s not done within %d s (throttle up to %u%%, %s): %s (see %s)\n", i + 1,
                            v.name.c_str(), timeout_s, throttle, ratio_text, r.error.substr(0, 160).c_str(),
                            pair.dir().c_str());
            }
            std::fflush(stdout);
        }
    }
    std::printf("\n%-13s %10s %14s %16s %14s %12s\n", "variant", "completed", "median total", "median blackout",
                "max throttle", "dirty/link");
    nlohmann::json summary = nlohmann::json::array();
    for (const auto& v : variants) {
        const Tally& t = tally[v.name];
        std::printf("%-13s %6d of %d %11.0f ms %13.1f ms %13u%% %12.2f\n", v.name.c_str(), t.done, t.runs,
                    median(t.total), median(t.blackout), t.max_throttle, median(t.ratio));
        summary.push_back({{"variant", v.name}, {"completed", t.done}, {"runs", t.runs},
                           {"median_total_ms", median(t.total)}, {"median_blackout_ms", median(t.blackout)},
                           {"max_throttle_percent", t.max_throttle}, {"blackout_budget_ms", budget},
                           {"median_dirty_per_link", median(t.ratio)}});
    }
    if (auto j = a.get("json"))
        std::ofstream(*j) << nlohmann::json{{"samples", samples}, {"summary", summary}}.dump(2) << "\n";
    return 0;
}

}  // namespace rmig::lab
