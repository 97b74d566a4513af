#include "lab/memory_soak.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/args.hpp"
#include "common/error.hpp"
#include "common/process.hpp"
#include "security/policy.hpp"

namespace rmig::lab {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const char* to_string(MemFaultKind k) {
    switch (k) {
    case MemFaultKind::kill_source: return "kill-source";
    case MemFaultKind::kill_dest: return "kill-dest";
    case MemFaultKind::stall_source: return "stall-source";
    case MemFaultKind::stall_dest: return "stall-dest";
    case MemFaultKind::pause_source: return "pause-source";
    case MemFaultKind::pause_dest: return "pause-dest";
    case MemFaultKind::loss: return "loss";
    }
    return "?";
}

const char* to_string(MemFaultPoint p) {
    switch (p) {
    case MemFaultPoint::before_first_byte: return "before-first-byte";
    case MemFaultPoint::mid_round: return "mid-round";
    case MemFaultPoint::switchover: return "switchover";
    case MemFaultPoint::throughout: return "throughout";
    case MemFaultPoint::not_reached: return "not-reached";
    }
    return "?";
}

namespace {

bool on_source(MemFaultKind k) {
    return k == MemFaultKind::kill_source || k == MemFaultKind::stall_source || k == MemFaultKind::pause_source;
}
bool must_survive(MemFaultKind k) {
    return k == MemFaultKind::pause_source || k == MemFaultKind::pause_dest || k == MemFaultKind::loss;
}

std::string slurp(const std::string& path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

// The report is the last line of the process's stdout.
std::optional<json> parse_report(const std::string& path) {
    try {
        std::string text = slurp(path);
        while (!text.empty() && text.back() == '\n') text.pop_back();
        auto nl = text.rfind('\n');
        return json::parse(nl == std::string::npos ? text : text.substr(nl + 1));
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void write_atomically(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    std::ofstream(tmp) << text << "\n";
    std::filesystem::rename(tmp, path);
}

// One `rmig-synth dest` of a case: its listen URI, and the URI a source uses.
struct Endpoints {
    std::string listen;
    std::string connect_from_port_file(const std::string& reported) const { return client.empty() ? reported : client; }
    std::string client;  // dpdk: the memif client URI; tcp/rdma: what the destination reports
};

Endpoints endpoints(const MemSoakOptions& o, const std::string& dir, int n, double loss) {
    Endpoints e;
    if (o.transport == "tcp") {
        e.listen = "tcp:127.0.0.1:0";
    } else if (o.transport == "rdma") {
        const char* ip = std::getenv("RMIG_VM_RDMA_IP");
        e.listen = cat("rdma:", ip ? ip : "10.11.12.1", ":0");
    } else if (o.transport == "dpdk") {
        std::string sock = cat(dir, "/memif", n, ".sock");
        // Paced to 1 Gb/s per channel so a round of 64 MiB lasts long enough
        // (~0.3 s) for a fault to land inside it, as on a real link.
        std::string extra = cat(",rmig.pace_gbps=1", loss > 0 ? cat(",rmig.loss=", loss) : std::string());
        e.listen = cat("dpdk:net_memif", n, ",role=server,socket=", sock, extra);
        e.client = cat("dpdk:net_memif", n, ",role=client,socket=", sock, extra);
    } else {
        throw UsageError(cat("unknown transport '", o.transport, "' (tcp, rdma, dpdk)"));
    }
    return e;
}

class Case {
public:
    Case(const MemFaultCase& c, const MemSoakOptions& o) : c_(c), o_(o) {
        r_.fault = c;
        const char* tmp = std::getenv("TMPDIR");
        std::string templ = cat(tmp && *tmp ? tmp : "/tmp", "/rmig-memsoak-XXXXXX");
        if (!mkdtemp(templ.data())) throw Error(cat("mkdtemp ", templ, ": ", std::strerror(errno)));
        dir_ = templ;
        key_ = dir_ + "/key.psk";
        security::write_random_psk_file(key_);
        deadline_ = Clock::now() + std::chrono::seconds(o.case_deadline_s);
        pages_ = (o.size_mib << 20) / 4096;
    }

    MemCaseResult run() {
        auto t0 = Clock::now();
        try {
            run_faulted();
            if (r_.failures.empty()) retry_check();
        } catch (const std::exception& e) {
            fail(cat("harness: ", e.what()));
        }
        stop_all();
        r_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        r_.passed = r_.failures.empty();
        if ((!r_.passed && o_.keep_failed) || std::getenv("RMIG_SOAK_KEEP_ALL")) {
            r_.dir = keep_copy();
        } else {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
        }
        return r_;
    }

private:
    // A failed case's directory; with $RMIG_SOAK_KEEP_TO (the rdma soak, whose
    // /tmp dies with its VM) copied there, sockets left out.
    std::string keep_copy() {
        const char* to = std::getenv("RMIG_SOAK_KEEP_TO");
        if (!to || !*to) return dir_;
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::path dst = fs::path(to) / fs::path(dir_).filename();
        fs::create_directories(dst, ec);
        for (auto& e : fs::directory_iterator(dir_, ec))
            if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename(), ec);
        fs::remove_all(dir_, ec);
        return dst.string();
    }

    void fail(std::string what) { r_.failures.push_back(std::move(what)); }
    void note(std::string what) { r_.notes.push_back(std::move(what)); }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }
    bool past_deadline() const { return Clock::now() > deadline_; }

    std::vector<std::string> security_args() const { return {"--psk-file", key_, "--no-encrypt"}; }

    Process start_dest(const std::string& tag, const Endpoints& e, const std::string& port_file) {
        std::vector<std::string> argv = {o_.synth, "dest", "--size", cat(o_.size_mib, "M"), "--listen", e.listen,
                                         "--port-file", port_file, "--timeout", "120", "--step-timeout",
                                         cat(o_.step_timeout_s), "--threads", "1", "--json"};
        for (auto& s : security_args()) argv.push_back(s);
        return Process(argv, {path(tag + ".json"), path(tag + ".log")});
    }

    Process start_source(const std::string& tag, const std::string& uri, bool retry) {
        std::vector<std::string> argv = {o_.synth, "source", "--size", cat(o_.size_mib, "M"), "--to", uri,
                                         "--dirty-rate", o_.dirty_rate, "--pattern", "hot", "--hot-fraction", "0.25",
                                         "--workers", cat(c_.workers), "--codec", c_.codec, "--downtime-ms", cat(o_.downtime_ms),
                                         "--max-seconds", "40", "--warmup-ms", "100", "--threads", "1",
                                         "--pause-hold-ms", cat(c_.hold_ms), "--json"};
        if (retry) {
            argv.insert(argv.end(), {"--retry-uri-file", path("retry.uri"), "--retry-wait", "100"});
        }
        for (auto& s : security_args()) argv.push_back(s);
        return Process(argv, {path(tag + ".json"), path(tag + ".log")});
    }

    // Waits for a destination's port file; returns the URI a source connects to.
    std::optional<std::string> wait_listening(Process& dest, const Endpoints& e, const std::string& port_file) {
        auto until = std::min(deadline_, Clock::now() + std::chrono::seconds(60));
        while (Clock::now() < until) {
            std::string text = slurp(port_file);
            if (!text.empty() && text.back() == '\n') return e.connect_from_port_file(text.substr(0, text.size() - 1));
            if (!dest.running()) return std::nullopt;
            std::this_thread::sleep_for(milliseconds(10));
        }
        return std::nullopt;
    }

    // Starts the retry destination once the source waits for one.
    void serve_retry() {
        if (retry_started_ || slurp(path("source.log")).find("waiting for a retry destination") == std::string::npos)
            return;
        retry_started_ = true;
        retry_ep_ = endpoints(o_, dir_, 2, 0);
        retry_dest_ = start_dest("retry-dest", retry_ep_, path("retry.port"));
        auto uri = wait_listening(retry_dest_, retry_ep_, path("retry.port"));
        if (!uri) {
            fail(cat("the retry destination never listened: ", slurp(path("retry-dest.log"))));
            return;
        }
        write_atomically(path("retry.uri"), *uri);
    }

    void fire(MemFaultPoint at) {
        fired_ = true;
        r_.observed = at;
        Process& p = on_source(c_.kind) ? source_ : dest_;
        switch (c_.kind) {
        case MemFaultKind::kill_source:
        case MemFaultKind::kill_dest: p.signal(SIGKILL); break;
        case MemFaultKind::stall_source:
            // Longer than the destination's step timeout: it must give up.
            p.signal(SIGSTOP);
            stopped_ = &p;
            resume_at_ = Clock::now() + milliseconds(static_cast<int>(o_.step_timeout_s * 1000) + 3000);
            break;
        case MemFaultKind::stall_dest:
            // Until the source has given up (its step or dead-peer timeout), at most 80 s.
            p.signal(SIGSTOP);
            stopped_ = &p;
            resume_at_ = Clock::now() + std::chrono::seconds(80);
            break;
        case MemFaultKind::pause_source:
        case MemFaultKind::pause_dest:
            p.signal(SIGSTOP);
            stopped_ = &p;
            resume_at_ = Clock::now() + milliseconds(c_.pause_ms);
            break;
        case MemFaultKind::loss: break;
        }
    }

    void maybe_resume() {
        if (!stopped_) return;
        bool source_done = !source_.running();
        if (Clock::now() >= resume_at_ || (c_.kind == MemFaultKind::stall_dest && source_done)) {
            stopped_->signal(SIGCONT);
            stopped_ = nullptr;
        }
    }

    void run_faulted() {
        Endpoints e = endpoints(o_, dir_, 1, c_.kind == MemFaultKind::loss ? c_.loss : 0);
        dest_ = start_dest("dest", e, path("dest.port"));
        auto uri = wait_listening(dest_, e, path("dest.port"));
        if (!uri) {
            fail(cat("the destination never listened: ", slurp(path("dest.log"))));
            return;
        }
        if (c_.kind == MemFaultKind::loss) {
            fired_ = true;
            r_.observed = MemFaultPoint::throughout;
        } else if (c_.point == MemFaultPoint::before_first_byte && !on_source(c_.kind)) {
            fire(MemFaultPoint::before_first_byte);
        }
        source_ = start_source("source", *uri, true);
        auto source_started = Clock::now();
        std::optional<Clock::time_point> pausing_seen;
        bool source_ended = false, dest_ended = false;
        while (!past_deadline()) {
            // Only the first attempt's lines: a retry's rounds and switchover
            // must not trigger the fault.
            std::string log = slurp(path("source.log"));
            if (auto end = log.find("after the failure:"); end != std::string::npos) log.resize(end);
            if (!fired_ && source_.running()) {
                bool pausing = log.find("pausing (switchover)") != std::string::npos;
                if (pausing && !pausing_seen) pausing_seen = Clock::now();
                if (c_.point == MemFaultPoint::before_first_byte) {
                    if (Clock::now() - source_started >= milliseconds(c_.fire_delay_ms))
                        fire(log.find("round 0") == std::string::npos ? MemFaultPoint::before_first_byte
                                                                      : MemFaultPoint::mid_round);
                } else if (c_.point == MemFaultPoint::mid_round) {
                    if (pausing)
                        fire(MemFaultPoint::switchover);
                    else if (log.find(cat("round ", c_.after_round, ": sent")) != std::string::npos)
                        fire(MemFaultPoint::mid_round);
                } else if (c_.point == MemFaultPoint::switchover && pausing_seen &&
                           Clock::now() - *pausing_seen >= milliseconds(c_.fire_delay_ms)) {
                    fire(MemFaultPoint::switchover);
                }
            }
            maybe_resume();
            serve_retry();
            if (!source_ended) source_ended = !source_.running();
            if (!dest_ended) dest_ended = !dest_.running();
            bool retry_done = !retry_started_ || !retry_dest_.running();
            if (source_ended && dest_ended && retry_done && !stopped_) break;
            std::this_thread::sleep_for(milliseconds(10));
        }
        if (stopped_) {
            stopped_->signal(SIGCONT);
            stopped_ = nullptr;
        }
        if (!fired_) r_.observed = MemFaultPoint::not_reached;
        auto hung = [&](Process& p, const char* who) {
            if (auto rc = p.wait_for(milliseconds(10))) return *rc;
            fail(cat("hang: ", who, " still running at the case deadline (", o_.case_deadline_s, " s)"));
            p.signal(SIGKILL);
            return p.wait_for(milliseconds(5000)).value_or(-1);
        };
        r_.source_exit = hung(source_, "rmig-synth source");
        r_.dest_exit = hung(dest_, "rmig-synth dest");
        int retry_exit = retry_started_ ? hung(retry_dest_, "the retry destination") : -1;
        judge(retry_exit);
    }

    bool dest_verified(const std::optional<json>& d) const {
        return d && d->value("ok", false) && d->value("verified", uint64_t{0}) == pages_ &&
               d->value("mismatches", uint64_t{1}) == 0;
    }

    void judge(int retry_exit) {
        const bool killed_source = fired_ && c_.kind == MemFaultKind::kill_source;
        const bool killed_dest = fired_ && c_.kind == MemFaultKind::kill_dest;
        auto src = parse_report(path("source.json"));
        auto dst = parse_report(path("dest.json"));
        if (src) r_.source_error = src->value("error", "");
        if (dst) r_.dest_error = dst->value("error", "");

        // Exit codes and reports.
        if (killed_source ? r_.source_exit != 137 : (r_.source_exit != 0 && r_.source_exit != 1))
            fail(cat("rmig-synth source exited ", r_.source_exit, killed_source ? " (expected 137, killed)" : ""));
        if (killed_dest ? r_.dest_exit != 137 : (r_.dest_exit != 0 && r_.dest_exit != 1))
            fail(cat("rmig-synth dest exited ", r_.dest_exit,
                     r_.dest_exit == 3 ? ": it took a torn guest (pages differ from the source's)" : ""));
        if (!killed_source && r_.source_exit >= 0 && r_.source_exit <= 1 && !src)
            fail("no JSON report from the source");
        if (!killed_dest && r_.dest_exit >= 0 && r_.dest_exit <= 1 && !dst) fail("no JSON report from the dest");
        const bool source_ok = r_.source_exit == 0 && src && src->value("ok", false);
        const bool dest_ok = r_.dest_exit == 0 && dst && dst->value("ok", false);

        // The destination never reports a guest it did not fully receive.
        if (dest_ok && !dest_verified(dst))
            fail(cat("the destination reported success without every page verified: ", dst->dump()));
        if (source_ok) {
            if (killed_dest)
                note("the destination was killed after it confirmed: the guest was handed over (a host lost "
                     "after the hand-over, not a migration failure)");
            else if (!dest_ok)
                fail(cat("the source reports success but the destination does not (exit ", r_.dest_exit, ": ",
                         r_.dest_error, "): the guest would be lost"));
        } else if (!killed_source) {
            // A failed session: the destination must not hold the guest, and
            // the source runs on with its memory intact.
            if (dest_ok)
                fail(cat("the source failed (", r_.source_error,
                         ") but the destination reports success: two running guests"));
            if (src) check_after_failure(*src, retry_exit);
        } else if (dest_ok) {
            note("the source was killed after the destination had everything: the destination holds the guest");
        }
        if ((must_survive(c_.kind) || !fired_) && !(source_ok && dest_ok))
            fail(cat(fired_ ? "a fault that must be survived" : "a fault that never fired",
                     " ended without a verified migration: source exit ", r_.source_exit, " (", r_.source_error,
                     "), dest exit ", r_.dest_exit, " (", r_.dest_error, ")"));
        if (!source_ok && !killed_source && src && r_.source_error.empty()) fail("the source failed with no error");
    }

    void check_after_failure(const json& src, int retry_exit) {
        json af = src.value("after_failure", json());
        if (af.is_null()) {
            fail("the source failed but reports no after-failure check");
            return;
        }
        if (!af.value("writers_running", false))
            fail(cat("after the failure the source's writers are not running (guest left paused): ", af.dump()));
        if (!af.value("region_intact", false))
            fail(cat("after the failure the source's memory differs from what its writers wrote: ", af.dump()));
        json retry = src.value("retry", json());
        r_.retried = !retry.is_null();
        if (retry.is_null() || !retry.value("ok", false))
            fail(cat("the source's retry to a fresh destination failed: ", retry.dump()));
        auto rd = parse_report(path("retry-dest.json"));
        if (retry_exit != 0 || !dest_verified(rd))
            fail(cat("the retry destination did not verify every page (exit ", retry_exit,
                     "): ", rd ? rd->dump() : slurp(path("retry-dest.log"))));
    }

    // After the source itself was killed (the guest died with it): a fresh
    // pair on the same transport must migrate and verify, so the fault left
    // nothing behind that breaks the next migration.
    void retry_check() {
        if (!(fired_ && c_.kind == MemFaultKind::kill_source)) return;
        Endpoints e = endpoints(o_, dir_, 3, 0);
        Process dest = start_dest("fresh-dest", e, path("fresh.port"));
        auto uri = wait_listening(dest, e, path("fresh.port"));
        if (!uri) {
            fail(cat("the fresh destination never listened: ", slurp(path("fresh-dest.log"))));
            return;
        }
        Process source = start_source("fresh-source", *uri, false);
        auto left = [&] { return std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now()); };
        auto s_exit = source.wait_for(std::max(left(), milliseconds(1))).value_or(-1);
        auto d_exit = dest.wait_for(std::max(left(), milliseconds(1000))).value_or(-1);
        r_.retried = true;
        if (s_exit != 0 || d_exit != 0 || !dest_verified(parse_report(path("fresh-dest.json"))))
            fail(cat("a fresh migration after the kill failed: source exit ", s_exit, ", dest exit ", d_exit, ": ",
                     slurp(path("fresh-dest.json"))));
    }

    void stop_all() {
        for (Process* p : {&source_, &dest_, &retry_dest_})
            if (p->pid() > 0 && p->running()) {
                p->signal(SIGCONT);
                p->signal(SIGKILL);
                p->wait_for(milliseconds(5000));
            }
    }

    const MemFaultCase& c_;
    const MemSoakOptions& o_;
    MemCaseResult r_;
    std::string dir_, key_;
    Clock::time_point deadline_;
    uint64_t pages_ = 0;
    Process dest_, source_, retry_dest_;
    Endpoints retry_ep_;
    bool retry_started_ = false;
    bool fired_ = false;
    Process* stopped_ = nullptr;
    Clock::time_point resume_at_;
};

}  // namespace

std::string MemFaultCase::describe() const {
    std::string s = cat(to_string(kind), " @ ", kind == MemFaultKind::loss ? "throughout" : to_string(point),
                        ", ", workers, " workers, ", codec);
    if (point == MemFaultPoint::mid_round) s += cat(", after round ", after_round);
    if (point != MemFaultPoint::mid_round && kind != MemFaultKind::loss) s += cat(", +", fire_delay_ms, " ms");
    if (kind == MemFaultKind::pause_source || kind == MemFaultKind::pause_dest) s += cat(", stopped ", pause_ms, " ms");
    if (kind == MemFaultKind::loss) s += cat(", loss ", loss);
    return s;
}

json MemFaultCase::to_json() const {
    return {{"kind", to_string(kind)}, {"point", to_string(point)}, {"workers", workers}, {"codec", codec},
            {"after_round", after_round}, {"fire_delay_ms", fire_delay_ms}, {"hold_ms", hold_ms},
            {"pause_ms", pause_ms}, {"loss", loss}};
}

json MemCaseResult::to_json() const {
    return {{"case", fault.to_json()}, {"observed_point", to_string(observed)}, {"passed", passed},
            {"failures", failures}, {"notes", notes}, {"source_exit", source_exit}, {"dest_exit", dest_exit},
            {"source_error", source_error}, {"dest_error", dest_error}, {"retried", retried},
            {"seconds", seconds}, {"dir", dir}};
}

std::vector<MemFaultKind> mem_kinds(const std::string& transport) {
    std::vector<MemFaultKind> k = {MemFaultKind::kill_source, MemFaultKind::kill_dest, MemFaultKind::stall_source,
                                   MemFaultKind::stall_dest, MemFaultKind::pause_source, MemFaultKind::pause_dest};
    if (transport == "dpdk") k.push_back(MemFaultKind::loss);
    return k;
}

MemFaultCase random_mem_case(std::mt19937_64& rng, const std::string& transport) {
    auto pick = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
    auto kinds = mem_kinds(transport);
    static constexpr MemFaultPoint kPoints[] = {MemFaultPoint::before_first_byte, MemFaultPoint::mid_round,
                                                MemFaultPoint::switchover};
    MemFaultCase c;
    c.kind = kinds[pick(0, kinds.size() - 1)];
    c.point = c.kind == MemFaultKind::loss ? MemFaultPoint::throughout : kPoints[pick(0, 2)];
    c.workers = static_cast<unsigned>(pick(1, 2));
    c.codec = pick(0, 3) == 0 ? "lz4" : "none";
    c.after_round = static_cast<unsigned>(pick(0, 1));
    c.hold_ms = static_cast<int>(pick(50, 300));
    c.fire_delay_ms = static_cast<int>(c.point == MemFaultPoint::switchover ? pick(0, c.hold_ms) : pick(0, 150));
    c.pause_ms = static_cast<int>(pick(200, 1500));
    c.loss = static_cast<double>(pick(5, 50)) / 1000;
    return c;
}

std::vector<MemFaultCase> ci_mem_cases(const std::string& transport) {
    auto mk = [](MemFaultKind k, MemFaultPoint p, const char* codec = "none") {
        MemFaultCase c;
        c.kind = k;
        c.point = p;
        c.codec = codec;
        c.fire_delay_ms = 40;
        c.pause_ms = 1000;
        c.loss = 0.02;
        return c;
    };
    std::vector<MemFaultCase> v = {
        mk(MemFaultKind::kill_dest, MemFaultPoint::mid_round),
        mk(MemFaultKind::kill_source, MemFaultPoint::switchover),
        mk(MemFaultKind::stall_source, MemFaultPoint::mid_round, "lz4"),
        mk(MemFaultKind::pause_dest, MemFaultPoint::mid_round),
        mk(MemFaultKind::pause_source, MemFaultPoint::switchover),
        mk(MemFaultKind::kill_dest, MemFaultPoint::before_first_byte),
    };
    if (transport == "dpdk") v.push_back(mk(MemFaultKind::loss, MemFaultPoint::throughout));
    return v;
}

MemSoakOptions default_mem_options(const std::string& transport) {
    MemSoakOptions o;
    o.transport = transport;
    if (transport == "rdma") {
        // Soft-RoCE under TCG: ~30-200 MB/s, and a round of a few pages costs
        // tens of ms of latency; a tighter budget would not converge.
        o.size_mib = 32;
        o.downtime_ms = 100;
        o.step_timeout_s = 15;
        o.case_deadline_s = 240;
    }
    return o;
}

MemCaseResult run_mem_case(const MemFaultCase& c, const MemSoakOptions& o) { return Case(c, o).run(); }

}  // namespace rmig::lab
