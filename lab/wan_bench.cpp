#include "lab/wan_bench.hpp"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/units.hpp"
#include "lab/local_pair.hpp"
#include "lab/memory_mix.hpp"

namespace rmig::lab {

const char* const kWanBenchUsage = R"(wan      QEMU's own TCP migration against rmig across an emulated WAN that
         the caller brought up (rmig-wan up --name LINK; namespaces LINK-a,
         LINK-b, path 1 10.201.0.1 -> 10.201.0.2); the guest's RAM holds a
         realistic mix loaded from a file; every run verified byte for byte.
           --link NAME     the rmig-wan link (required)
           --modes LIST    comma-separated, run in this order (default
                           direct-1,direct-mf4,direct-mf8,direct-mf8-zstd,rmig):
                           direct-1 / direct-mfN: QEMU to QEMU over TCP, main
                           stream / N multifd channels; -zstd: multifd-compression
                           zstd; rmig: rmig migrate/receive with --rmig-args;
                           direct-postcopy / rmig-postcopy: post-copy from the
                           start (QEMU's migrate-start-postcopy at once; rmig
                           --postcopy-after 0, no multifd), the destination kept
                           paused: the post-copy phase is the time until it has
                           every page
           --rmig-args "ARGS"  options for rmig migrate (space-separated)
           --multifd N     rmig's multifd channels (default 4)
           --ram MIB       guest RAM (default 2048)
           --mix FILE      the memory mix (made if missing: RAM less 512 MiB,
                           loaded at 256 MiB)
           --downtime-limit MS  for every mode (default 1000)
           --link-mbit M   the link's rate, for the link-busy share (default 1000)
           --timeout S     per run (default 900)
           --json FILE     every run and the comparison
           --outage-signal PID  SIGUSR1 to PID (rmig-wan up --outage-clock
                           signal) as each migration starts, so its outages
                           count from there, not from the guests' boot
)";

namespace {

struct Result {
    std::string mode;
    RunResult run;
    bool verified = false;
    std::string detail;
    uint64_t wire_bytes = 0;
};

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    for (std::string w; std::getline(in, w, sep);)
        if (!w.empty()) out.push_back(w);
    return out;
}

std::vector<std::string> words(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

}  // namespace

int wan_bench(const std::vector<std::string>& argv) {
    Args a(argv, {"link", "modes", "rmig-args", "multifd", "ram", "mix", "downtime-limit", "link-mbit", "timeout", "json",
            "outage-signal"},
           {"help"});
    if (a.flag("help")) {
        std::fputs(kWanBenchUsage, stdout);
        return 0;
    }
    auto link = a.get("link");
    if (!link) throw UsageError("wan: --link NAME is required (the rmig-wan link to run across)");
    uint64_t ram = a.number("ram", 2048);
    if (ram < 1024) throw UsageError("wan: --ram must be at least 1024 (MiB)");
    std::string mix = a.get_or("mix", cat("/tmp/rmig-memory-mix-", ram - 512, "M.bin"));
    if (!std::filesystem::exists(mix)) {
        std::printf("writing the memory mix %s (%llu MiB) ...\n", mix.c_str(),
                    static_cast<unsigned long long>(ram - 512));
        write_memory_mix(mix, (ram - 512) << 20);
    }
    auto modes = split(a.get_or("modes", "direct-1,direct-mf4,direct-mf8,direct-mf8-zstd,rmig"), ',');
    uint64_t limit = a.number("downtime-limit", 1000);
    double link_rate = double(a.number("link-mbit", 1000)) * 1e6 / 8;
    int timeout = static_cast<int>(a.number("timeout", 900));
    auto rmig_multifd = static_cast<uint32_t>(a.number("multifd", 4));
    std::string ns_a = *link + "-a", ns_b = *link + "-b";
    auto outage_pid = static_cast<pid_t>(a.number("outage-signal", 0));
    auto start_outages = [&] {
        if (outage_pid > 0 && ::kill(outage_pid, SIGUSR1) != 0)
            throw Error(cat("wan: cannot signal rmig-wan (pid ", outage_pid, "): ", std::strerror(errno)));
    };

    std::vector<Result> results;
    for (const auto& mode : modes) {
        VmSpec spec;
        spec.ram_mib = ram;
        spec.preload = {{mix, uint64_t{256} << 20}};
        bool rmig = mode == "rmig" || mode == "rmig-postcopy";
        bool postcopy = mode == "rmig-postcopy" || mode == "direct-postcopy";
        if (!rmig) {
            spec.source_netns = ns_a;
            spec.dest_netns = ns_b;
        }
        LocalPair pair(spec);
        qemu::MigrationSettings s;
        s.downtime_limit_ms = limit;
        Result res;
        res.mode = mode;
        if (rmig) {
            RmigRun run;
            s.multifd_channels = postcopy ? 0 : rmig_multifd;
            run.settings = s;
            run.source_netns = ns_a;
            run.dest_netns = ns_b;
            run.listen_uri = "tcp:0.0.0.0:7411";
            run.connect_uri = "tcp:10.201.0.2:7411";
            run.timeout_s = timeout;
            run.extra_args = words(a.get_or("rmig-args", ""));
            if (postcopy) run.extra_args.insert(run.extra_args.end(), {"--postcopy-after", "0"});
            start_outages();
            res.run = pair.migrate_rmig(run);
            if (const auto& pc = res.run.report.value("postcopy", nlohmann::json::object());
                pc.value("switched", false) && pc["phase_s"].is_number())
                res.run.postcopy_phase_ms = pc["phase_s"].get<double>() * 1000;
            for (auto& c : res.run.report.value("channels", nlohmann::json::array()))
                res.wire_bytes += c.value("wire_bytes", uint64_t{0});
        } else {
            auto parts = split(mode, '-');  // direct, 1 | mfN | postcopy, [zstd]
            if (postcopy) s.postcopy = true;
            else if (parts.size() < 2 || parts[0] != "direct")
                throw UsageError(cat("wan: unknown mode '", mode, "' (direct-1, direct-mfN[-zstd], rmig)"));
            if (parts[1].rfind("mf", 0) == 0) s.multifd_channels = static_cast<uint32_t>(std::stoul(parts[1].substr(2)));
            if (parts.size() > 2 && parts[2] == "zstd") {
                if (!s.multifd_channels) throw UsageError("wan: -zstd needs multifd (direct-mfN-zstd)");
                for (auto* vm : {&pair.source(), &pair.destination()})
                    vm->qmp().execute("migrate-set-parameters", {{"multifd-compression", "zstd"}});
            }
            start_outages();
            res.run = pair.migrate_direct(s, timeout, "10.201.0.2:7400");
            res.wire_bytes = res.run.ram_bytes;  // QEMU's own count (after its zstd, if any)
        }
        if (res.run.ok) {
            auto v = pair.verify();
            res.verified = v.ok;
            res.detail = v.detail;
            if (!v.ok) pair.keep();
        } else {
            res.detail = res.run.error;
            pair.keep();
        }
        const auto& r = res.run;
        double busy = r.total_ms > 0 ? double(res.wire_bytes) / link_rate / (r.total_ms / 1000) : 0;
        char phase[48] = "";
        if (r.postcopy_phase_ms) std::snprintf(phase, sizeof phase, "  post-copy phase %7.0f ms", *r.postcopy_phase_ms);
        std::printf("  %-16s %s  total %8.0f ms  blackout %7.1f ms%s  wire %10s  link busy %3.0f%%  %s\n",
                    mode.c_str(), r.ok ? "completed" : "FAILED   ", r.total_ms, r.stop_to_loaded_ms.value_or(0), phase,
                    format_bytes(double(res.wire_bytes)).c_str(), busy * 100,
                    res.verified ? "verified" : res.detail.c_str());
        std::fflush(stdout);
        results.push_back(std::move(res));
    }
    // QEMU's best completed and verified run against rmig's.
    const Result* best = nullptr;
    const Result* ours = nullptr;
    for (auto& r : results) {
        if (!r.run.ok || !r.verified) continue;
        if (r.mode == "rmig")
            ours = &r;
        else if (r.mode.rfind("direct-", 0) == 0 && r.mode != "direct-postcopy" &&
                 (!best || r.run.total_ms < best->run.total_ms))
            best = &r;
    }
    nlohmann::json runs = nlohmann::json::array();
    for (auto& r : results)
        runs.push_back({{"mode", r.mode}, {"completed", r.run.ok}, {"verified", r.verified}, {"detail", r.detail},
                        {"total_ms", r.run.total_ms}, {"wall_ms", r.run.wall_ms},
                        {"blackout_ms", r.run.stop_to_loaded_ms ? nlohmann::json(*r.run.stop_to_loaded_ms) : nullptr},
                        {"qemu_downtime_ms", r.run.downtime_ms}, {"ram_bytes", r.run.ram_bytes},
                        {"postcopy_phase_ms",
                         r.run.postcopy_phase_ms ? nlohmann::json(*r.run.postcopy_phase_ms) : nullptr},
                        {"wire_bytes", r.wire_bytes}, {"rounds", r.run.rounds},
                        {"link_busy", r.run.total_ms > 0 ? double(r.wire_bytes) / link_rate / (r.run.total_ms / 1000) : 0},
                        {"rmig_report", r.run.report}});
    nlohmann::json cmp;
    if (best && ours) {
        double ratio = ours->run.total_ms / best->run.total_ms;
        std::printf("\nrmig total / QEMU's best (%s): %.2f  (%.0f ms / %.0f ms)\n", best->mode.c_str(), ratio,
                    ours->run.total_ms, best->run.total_ms);
        cmp = {{"qemu_best", best->mode}, {"total_ratio", ratio}};
    } else if (ours) {
        bool any_qemu = std::any_of(results.begin(), results.end(), [](const Result& r) { return r.mode != "rmig"; });
        std::printf(any_qemu ? "\nrmig completed and verified; no QEMU mode did\n"
                             : "\nrmig completed and verified (no QEMU mode in this run)\n");
        cmp = {{"qemu_best", nullptr}, {"total_ratio", nullptr}};
    }
    // Post-copy: rmig's phase against QEMU's own, the same link.
    const Result* pc_direct = nullptr;
    const Result* pc_rmig = nullptr;
    for (auto& r : results) {
        if (!r.run.ok || !r.verified || !r.run.postcopy_phase_ms) continue;
        (r.mode == "rmig-postcopy" ? pc_rmig : pc_direct) = &r;
    }
    if (pc_direct && pc_rmig) {
        double ratio = *pc_rmig->run.postcopy_phase_ms / *pc_direct->run.postcopy_phase_ms;
        std::printf("rmig post-copy phase / QEMU's: %.2f  (%.0f ms / %.0f ms)\n", ratio,
                    *pc_rmig->run.postcopy_phase_ms, *pc_direct->run.postcopy_phase_ms);
        cmp["postcopy_phase_ratio"] = ratio;
    }
    if (auto j = a.get("json"))
        std::ofstream(*j) << nlohmann::json{{"link", *link}, {"runs", runs}, {"comparison", cmp}}.dump(2) << "\n";
    bool all_ours_ok = !std::any_of(results.begin(), results.end(),
                                    [](const Result& r) { return r.mode == "rmig" && !(r.run.ok && r.verified); });
    return all_ours_ok ? 0 : 1;
}

}  // namespace rmig::lab
