// `rmig-lab faults --mode memory --transport tcp|rdma|dpdk`: the memory-mode
// fault soak (lab/memory_soak.hpp), its tally and JSON.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "common/args.hpp"
#include "common/error.hpp"
#include "lab/memory_soak.hpp"

#ifndef RMIG_SYNTH_PATH
#define RMIG_SYNTH_PATH "rmig-synth"
#endif

namespace rmig::lab {

const char* const kMemorySoakUsage = R"(
faults --mode memory   the same promises for memory mode: rmig-synth source and
         dest as two processes over --transport; kill -9 or stop (SIGSTOP past
         every timeout) either side, stop it briefly (must be survived), or
         drop dpdk frames, before the first byte, mid-round or during the
         switchover; a failed source must run on with its memory intact and
         migrate again to a fresh destination, verified page by page.
           --transport T   tcp (default), rdma (run it inside scripts/rdma-vm.sh)
                           or dpdk (memif, no hugepages needed)
           --cases N --seed S --ci --only K --max-minutes M --json FILE  as above
           --size MIB      guest memory (default 64; rdma 32)
           --downtime-ms MS  the source's downtime budget (default 20; rdma 100)
           --step-timeout S  the destination's --step-timeout (default 8; rdma 15)
           --deadline S    hard limit per case (default 150; rdma 240)
           --jobs N        run N cases at a time (default 1; each in its own
                           directory, sockets and ports)
           env RMIG_SYNTH  the rmig-synth binary (default: the one built with this)
)";

int memory_faults(const std::vector<std::string>& argv) {
    Args a(argv, {"mode", "transport", "cases", "seed", "max-minutes", "json", "only", "size", "step-timeout",
                  "deadline", "downtime-ms", "jobs"},
           {"ci", "help"});
    const std::string transport = a.get_or("transport", "tcp");
    if (transport != "tcp" && transport != "rdma" && transport != "dpdk")
        throw UsageError(cat("--transport: tcp, rdma or dpdk, not '", transport, "'"));
    MemSoakOptions o = default_mem_options(transport);
    const char* synth = std::getenv("RMIG_SYNTH");
    o.synth = synth && *synth ? synth : RMIG_SYNTH_PATH;
    o.size_mib = a.number("size", o.size_mib);
    if (auto st = a.get("step-timeout")) o.step_timeout_s = std::stod(*st);
    if (auto dt = a.get("downtime-ms")) o.downtime_ms = std::stod(*dt);
    o.case_deadline_s = static_cast<int>(a.number("deadline", static_cast<uint64_t>(o.case_deadline_s)));

    std::vector<MemFaultCase> cases;
    uint64_t seed = a.number("seed", 1);
    if (a.flag("ci")) {
        cases = ci_mem_cases(o.transport);
    } else {
        std::mt19937_64 rng(seed);
        for (uint64_t i = 0, n = a.number("cases", 20); i < n; ++i) cases.push_back(random_mem_case(rng, o.transport));
    }
    std::vector<size_t> numbers;
    for (size_t i = 0; i < cases.size(); ++i) numbers.push_back(i + 1);
    if (auto only = a.number("only", 0)) {
        if (only > cases.size()) throw UsageError("--only: no such case");
        cases = {cases[only - 1]};
        numbers = {only};
    }
    const auto jobs = static_cast<unsigned>(std::clamp<uint64_t>(a.number("jobs", 1), 1, 8));
    auto t0 = std::chrono::steady_clock::now();
    auto budget = std::chrono::minutes(a.number("max-minutes", 0));
    std::map<std::pair<std::string, std::string>, std::pair<int, int>> tally;
    nlohmann::json results = nlohmann::json::array();
    int passed = 0, failed = 0;
    size_t skipped = 0;
    std::printf("memory-mode fault injection over %s: %zu cases%s, %llu MiB guest, downtime budget %g ms, "
                "destination step timeout %g s, %u at a time\n",
                o.transport.c_str(), cases.size(), a.flag("ci") ? " (CI set)" : cat(", seed ", seed).c_str(),
                static_cast<unsigned long long>(o.size_mib), o.downtime_ms, o.step_timeout_s, jobs);
    std::fflush(stdout);
    // --jobs N: cases run N at a time (most of a long case is a side waiting
    // out a timeout); each runs alone in its own directory, sockets and ports.
    std::mutex mu;
    std::vector<nlohmann::json> by_index(cases.size());
    std::atomic<size_t> next{0};
    std::atomic<bool> out_of_time{false};
    auto worker = [&] {
        for (size_t i; (i = next++) < cases.size();) {
            if (budget.count() && std::chrono::steady_clock::now() - t0 > budget) {
                out_of_time = true;
                return;
            }
            MemCaseResult r = run_mem_case(cases[i], o);
            std::lock_guard lock(mu);
            auto& cell = tally[{to_string(r.fault.kind), to_string(r.observed)}];
            (r.passed ? cell.first : cell.second)++;
            (r.passed ? passed : failed)++;
            std::printf("case %3zu %-4s %-66s fired %-17s source %3d dest %3d %5.1f s%s\n", numbers[i],
                        r.passed ? "ok" : "FAIL", r.fault.describe().c_str(), to_string(r.observed), r.source_exit,
                        r.dest_exit, r.seconds, r.retried ? " (retried)" : "");
            for (auto& f : r.failures) std::printf("         - %s\n", f.c_str());
            for (auto& n : r.notes) std::printf("         note: %s\n", n.c_str());
            if (!r.passed && !r.dir.empty()) std::printf("         case dir kept: %s\n", r.dir.c_str());
            std::fflush(stdout);
            by_index[i] = r.to_json();
            by_index[i]["number"] = numbers[i];
        }
    };
    {
        // Each worker thread starts its own cases' processes, which die with
        // it (Process::children_die_with_parent); it lives until its last case ends.
        std::vector<std::thread> pool;
        for (unsigned j = 0; j < jobs; ++j) pool.emplace_back(worker);
        for (auto& t : pool) t.join();
    }
    for (auto& j : by_index)
        if (j.is_null())
            ++skipped;
        else
            results.push_back(j);
    if (out_of_time)
        std::printf("time budget of %lld min used up: %zu cases not run\n", static_cast<long long>(budget.count()),
                    skipped);
    std::printf("\n%-14s %-18s %7s %7s\n", "fault", "fired at", "passed", "failed");
    nlohmann::json jt = nlohmann::json::array();
    for (auto& [key, cell] : tally) {
        std::printf("%-14s %-18s %7d %7d\n", key.first.c_str(), key.second.c_str(), cell.first, cell.second);
        jt.push_back({{"kind", key.first}, {"point", key.second}, {"passed", cell.first}, {"failed", cell.second}});
    }
    double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60;
    std::printf("total over %s: %d passed, %d failed, %zu not run, %.1f min\n", o.transport.c_str(), passed, failed,
                skipped, minutes);
    if (auto j = a.get("json"))
        std::ofstream(*j) << nlohmann::json{{"mode", "memory"}, {"transport", o.transport}, {"cases", results},
                                            {"tally", jt}, {"passed", passed}, {"failed", failed},
                                            {"not_run", skipped}, {"minutes", minutes}, {"seed", seed},
                                            {"ci", a.flag("ci")}, {"size_mib", o.size_mib},
                                            {"downtime_ms", o.downtime_ms}, {"step_timeout_s", o.step_timeout_s},
                                            {"jobs", jobs}}
                                 .dump(2)
                          << "\n";
    return failed || passed == 0 ? 1 : 0;
}

}  // namespace rmig::lab
