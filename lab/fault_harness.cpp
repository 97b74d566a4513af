#include "lab/fault_harness.hpp"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "common/process.hpp"
#include "lab/fault_proxy.hpp"
#include "lab/local_pair.hpp"
#include "qemu-plugin/qemu_info.hpp"

namespace rmig::lab {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const char* to_string(FaultKind k) {
    switch (k) {
    case FaultKind::cut: return "cut";
    case FaultKind::corrupt: return "corrupt";
    case FaultKind::stall: return "stall";
    case FaultKind::delay: return "delay";
    case FaultKind::kill_source_rmig: return "kill-source-rmig";
    case FaultKind::kill_dest_rmig: return "kill-dest-rmig";
    case FaultKind::kill_dest_qemu: return "kill-dest-qemu";
    }
    return "?";
}

const char* to_string(FaultPoint p) {
    switch (p) {
    case FaultPoint::before_first_byte: return "before-first-byte";
    case FaultPoint::mid_round: return "mid-round";
    case FaultPoint::switchover: return "switchover";
    case FaultPoint::after_completion: return "after-completion";
    case FaultPoint::not_reached: return "not-reached";
    }
    return "?";
}

std::string FaultCase::describe() const {
    std::string s = cat(to_string(kind), " @ ", to_string(point), ", multifd ", multifd);
    if (channel >= 0) s += cat(", channel ", channel);
    if (point == FaultPoint::mid_round) s += cat(", after ", after_ram_bytes >> 20, " MiB");
    if (kind == FaultKind::corrupt) s += cat(", skip ", corrupt_skip);
    if (kind == FaultKind::delay) s += cat(", ", delay_ms, " ms");
    if (resume) s += ", resume";
    return s;
}

json FaultCase::to_json() const {
    return {{"kind", to_string(kind)},       {"point", to_string(point)},
            {"multifd", multifd},            {"channel", channel},
            {"after_ram_bytes", after_ram_bytes}, {"corrupt_skip", corrupt_skip},
            {"delay_ms", delay_ms},          {"resume", resume}};
}

json CaseResult::to_json() const {
    return {{"case", fault.to_json()},
            {"observed_point", to_string(observed)},
            {"passed", passed},
            {"failures", failures},
            {"notes", notes},
            {"migrate_exit", migrate_exit},
            {"receive_exit", receive_exit},
            {"migrate_error", migrate_error},
            {"receive_error", receive_error},
            {"operator_resumed", operator_resumed},
            {"retried", retried},
            {"seconds", seconds},
            {"dir", dir}};
}

FaultCase random_case(std::mt19937_64& rng) {
    auto pick = [&](uint64_t lo, uint64_t hi) {
        return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
    };
    FaultCase c;
    c.kind = kAllKinds[pick(0, std::size(kAllKinds) - 1)];
    c.point = kAllPoints[pick(0, std::size(kAllPoints) - 1)];
    c.multifd = pick(0, 1) ? 2 : 0;
    c.after_ram_bytes = pick(1, 80) << 20;
    c.corrupt_skip = pick(0, 200000);
    c.delay_ms = int(pick(200, 2000));
    c.resume = pick(0, 3) == 0;
    // Channel faults: before the first byte and after completion only the
    // control channel carries anything; otherwise any data channel.
    if (c.point == FaultPoint::before_first_byte || c.point == FaultPoint::after_completion)
        c.channel = 0;
    else
        c.channel = int(pick(1, c.multifd + 1));
    if (c.point == FaultPoint::before_first_byte && c.kind == FaultKind::corrupt)
        c.corrupt_skip = pick(0, 63);  // inside the 64-byte hello
    else if (c.channel == 0 && c.kind == FaultKind::corrupt)
        c.corrupt_skip = pick(0, 100);  // the control channel carries little after the start
    return c;
}

std::vector<FaultCase> ci_cases() {
    auto mk = [](FaultKind k, FaultPoint p, uint32_t mf, int ch, uint64_t after_mib = 24) {
        FaultCase c;
        c.kind = k;
        c.point = p;
        c.multifd = mf;
        c.channel = ch;
        c.after_ram_bytes = after_mib << 20;
        c.corrupt_skip = 4096;
        c.delay_ms = 1500;
        return c;
    };
    return {
        mk(FaultKind::cut, FaultPoint::mid_round, 2, 1),
        mk(FaultKind::corrupt, FaultPoint::mid_round, 2, 2),
        mk(FaultKind::stall, FaultPoint::mid_round, 0, 1),
        mk(FaultKind::delay, FaultPoint::mid_round, 2, 3),
        mk(FaultKind::kill_source_rmig, FaultPoint::switchover, 0, 1),
        mk(FaultKind::kill_dest_rmig, FaultPoint::before_first_byte, 0, 0),
        mk(FaultKind::kill_dest_qemu, FaultPoint::mid_round, 2, 1, 8),
        mk(FaultKind::stall, FaultPoint::after_completion, 0, 0),
        // The data path stalls during switchover, with rmig to resume the
        // destination: it cannot load and refuses 'finish'; that refusal is an
        // answer, so the source is resumed (exit 1), in seconds. (It was
        // "after completion" until channel mode's flows, whose send window
        // takes QEMU's last bytes and delivers them before the harness sees
        // "completed" on loopback, so a stall there came too late to bite.)
        [&] {
            auto c = mk(FaultKind::stall, FaultPoint::switchover, 0, 1);
            c.resume = true;
            return c;
        }(),
        mk(FaultKind::cut, FaultPoint::switchover, 2, 0),
        mk(FaultKind::stall, FaultPoint::switchover, 2, 2),
        [&] {
            auto c = mk(FaultKind::corrupt, FaultPoint::before_first_byte, 0, 0);
            c.corrupt_skip = 20;  // inside the control channel's hello
            return c;
        }(),
    };
}

namespace {

bool is_link_fault(FaultKind k) {
    return k == FaultKind::cut || k == FaultKind::corrupt || k == FaultKind::stall ||
           k == FaultKind::delay;
}

LinkFault link_fault(FaultKind k) {
    switch (k) {
    case FaultKind::cut: return LinkFault::cut;
    case FaultKind::corrupt: return LinkFault::corrupt;
    case FaultKind::stall: return LinkFault::stall;
    default: return LinkFault::delay;
    }
}

// What the source QEMU is doing, from the lab's own QMP socket.
struct Phase {
    std::string run_state;  // query-status
    std::string status;     // query-migrate
    uint64_t ram = 0;
    FaultPoint point() const {
        if (status == "completed") return FaultPoint::after_completion;
        if (run_state == "finish-migrate" || status == "device" || status == "pre-switchover")
            return FaultPoint::switchover;
        if (status == "active" && ram > 0) return FaultPoint::mid_round;
        return FaultPoint::before_first_byte;
    }
};

Phase observe(QemuVm& vm) {
    Phase p;
    p.run_state = vm.qmp().execute("query-status").value("status", "");
    auto st = qemu::parse_migration_stats(vm.qmp().execute("query-migrate"));
    p.status = st.status;
    p.ram = st.ram_transferred;
    return p;
}

std::string state_or_gone(QemuVm& vm) {
    if (!vm.alive()) return "gone";
    try {
        return vm.state();
    } catch (const std::exception&) {
        return "gone";
    }
}

std::string read_error(const std::string& json_path, const char* key) {
    std::ifstream in(json_path);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return "";
    return j.value(key, "");
}

// Watches the source QEMU from its own thread (the lab's QMP socket): the
// latest phase, and whether a query is stuck. QEMU answers QMP only under its
// big lock, which the migration thread holds for the whole switchover (VM
// stopped, last pages and device state going out): a query that stays
// unanswered for kBlocked while the migration is active means switchover.
class PhaseMonitor {
public:
    static constexpr milliseconds kBlocked{50};

    explicit PhaseMonitor(QemuVm& vm) : vm_(vm) { thread_ = std::jthread([this] { loop(); }); }
    ~PhaseMonitor() { stop(); }
    void stop() {
        stop_ = true;
        thread_ = {};
    }
    std::optional<Phase> latest() const {
        std::lock_guard lock(mutex_);
        return latest_;
    }
    uint64_t observations() const { return count_; }
    bool blocked() const {
        int64_t since = inflight_since_;
        return since && Clock::now().time_since_epoch().count() - since >
                            std::chrono::duration_cast<Clock::duration>(kBlocked).count();
    }
    std::optional<std::string> error() const {
        std::lock_guard lock(mutex_);
        return error_;
    }

private:
    void loop() {
        while (!stop_) {
            inflight_since_ = Clock::now().time_since_epoch().count();
            try {
                Phase p = observe(vm_);
                inflight_since_ = 0;
                std::lock_guard lock(mutex_);
                latest_ = p;
            } catch (const std::exception& e) {
                // No reply in time: QEMU holds its lock (a stalled switchover);
                // keep asking -- blocked() stays true meanwhile.
                if (std::string(e.what()).find("no reply") != std::string::npos) continue;
                inflight_since_ = 0;
                std::lock_guard lock(mutex_);
                error_ = e.what();
                return;
            }
            ++count_;
            std::this_thread::sleep_for(milliseconds(2));
        }
    }

    QemuVm& vm_;
    mutable std::mutex mutex_;
    std::optional<Phase> latest_;
    std::optional<std::string> error_;
    std::atomic<int64_t> inflight_since_{0};
    std::atomic<uint64_t> count_{0};
    std::atomic<bool> stop_{false};
    std::jthread thread_;
};

// Where a process hangs: every thread's backtrace (gdb, if installed), bounded.
void dump_stacks(Process& p, const std::string& out) {
    try {
        Process gdb({"timeout", "20", "gdb", "-p", cat(p.pid()), "-batch", "-ex",
                     "thread apply all bt"},
                    Process::Options{out, "=stdout"});
        gdb.wait_for(milliseconds(25000));
    } catch (const std::exception&) {
        // No gdb: the hang is reported all the same.
    }
}

// What rmig says when bytes were altered on the way: a frame or hello that
// fails its checksum or its format checks.
bool names_integrity_error(const std::string& text) {
    for (const char* w : {"checksum", "bad magic", "bad frame magic", "frame out of order",
                          "unknown frame type", "reserved header bits", "more than the limit",
                          "belongs to channel", "must be empty", "truncated frame"})
        if (text.find(w) != std::string::npos) return true;
    return false;
}

bool log_names_integrity_error(const std::string& log_path) {
    std::ifstream in(log_path);
    std::string line;
    while (std::getline(in, line))
        if (names_integrity_error(line)) return true;
    return false;
}

// `rmig receive` logs "session <id> from <peer>" once it accepts a source.
bool session_started(const std::string& log_path) {
    std::ifstream in(log_path);
    std::string line;
    while (std::getline(in, line))
        if (line.find("session ") != std::string::npos && line.find(" from ") != std::string::npos)
            return true;
    return false;
}

class CaseRun {
public:
    CaseRun(const FaultCase& c, const HarnessOptions& o) : c_(c), o_(o) {}

    CaseResult run() {
        auto t0 = Clock::now();
        deadline_ = t0 + seconds(o_.case_deadline_s);
        r_.fault = c_;
        try {
            VmSpec spec;
            spec.ram_mib = o_.ram_mib;
            pair_ = std::make_unique<LocalPair>(spec);
            faulted_run();
            check_after();
        } catch (const std::exception& e) {
            fail(cat("harness error: ", e.what()));
        }
        // Every path ends every process: the Process and LocalPair destructors SIGKILL.
        migrator_.reset();
        receiver_.reset();
        proxy_.reset();
        r_.passed = r_.failures.empty();
        if (pair_) {
            if (!r_.passed && o_.keep_failed) {
                pair_->keep();
                r_.dir = pair_->dir();
            }
            pair_.reset();
        }
        r_.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        return r_;
    }

private:
    void fail(const std::string& what) { r_.failures.push_back(what); }

    milliseconds left() const {
        return std::max(milliseconds(0),
                        std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now()));
    }

    void start_receiver() {
        std::string dir = pair_->dir();
        std::string addr_file = dir + "/fault-receive.addr";
        recv_json_ = dir + "/fault-receive.json";
        std::vector<std::string> argv = {rmig_binary(), "receive", "--qmp",
                                         pair_->destination().qmp_path(), "--listen", "tcp:127.0.0.1:0",
                                         "--address-file", addr_file, "--timeout",
                                         cat(o_.rmig_timeout_s), "--stall-timeout",
                                         cat(o_.stall_timeout_s), "--json", recv_json_};
        // Faults hit the default, authenticated and encrypted, session.
        for (auto& a : pair_->security_args()) argv.push_back(a);
        receiver_ = std::make_unique<Process>(argv, Process::Options{dir + "/fault-receive.log", "=stdout"});
        for (int i = 0; i < 500 && dest_addr_.empty(); ++i) {
            std::ifstream(addr_file) >> dest_addr_;
            if (dest_addr_.empty()) {
                if (!receiver_->running()) break;
                std::this_thread::sleep_for(milliseconds(10));
            }
        }
        if (dest_addr_.empty()) throw Error("rmig receive did not start listening");
    }

    void start_migrator() {
        std::string dir = pair_->dir();
        mig_json_ = dir + "/fault-migrate.json";
        std::vector<std::string> argv = {
            rmig_binary(), "migrate", "--qmp", pair_->source().qmp_path(), "--to",
            proxy_->address(), "--multifd", cat(c_.multifd), "--timeout", cat(o_.rmig_timeout_s),
            "--stall-timeout", cat(o_.stall_timeout_s), "--json", mig_json_, "--progress", "none",
            // The cases test the failure path: a broken link fails the run.
            "--reconnect-grace", "0"};
        if (!c_.resume) argv.push_back("--no-resume");
        for (auto& a : pair_->security_args()) argv.push_back(a);
        migrator_ = std::make_unique<Process>(argv,
                                              Process::Options{dir + "/fault-migrate.log", "=stdout"});
    }

    bool due(const Phase& ph, bool blocked) const {
        switch (c_.point) {
        case FaultPoint::before_first_byte: return proxy_->connections() >= 1;
        case FaultPoint::mid_round:
            return ph.status == "active" && ph.run_state == "running" &&
                   ph.ram >= c_.after_ram_bytes &&
                   (!is_link_fault(c_.kind) || proxy_->connections() > size_t(c_.channel));
        case FaultPoint::switchover:
            // The first pass must be mostly out: earlier blocks are bitmap syncs
            // or a loaded machine, not the switchover.
            return ph.point() == FaultPoint::switchover ||
                   (blocked && ph.status == "active" && ph.ram >= (o_.ram_mib << 20) / 2);
        case FaultPoint::after_completion: return ph.status == "completed";
        case FaultPoint::not_reached: return false;
        }
        return false;
    }

    void fire() {
        switch (c_.kind) {
        case FaultKind::kill_source_rmig: migrator_->signal(SIGKILL); break;
        case FaultKind::kill_dest_rmig: receiver_->signal(SIGKILL); break;
        case FaultKind::kill_dest_qemu: pair_->destination().signal(SIGKILL); break;
        default:
            proxy_->apply(link_fault(c_.kind), size_t(std::max(0, c_.channel)), c_.corrupt_skip,
                          milliseconds(c_.delay_ms));
        }
    }

    void faulted_run() {
        start_receiver();
        proxy_ = std::make_unique<FaultProxy>(dest_addr_, c_.point == FaultPoint::before_first_byte);
        PhaseMonitor monitor(pair_->source());
        start_migrator();
        bool fired = false;
        uint64_t fired_at_observation = 0;
        std::optional<int> code;
        while (!(code = migrator_->wait_for(milliseconds(2)))) {
            if (Clock::now() >= deadline_) {
                fail(cat("hang: rmig migrate still running at the case deadline (",
                         o_.case_deadline_s, " s)"));
                break;
            }
            if (auto e = monitor.error()) {
                fail(cat("source QEMU's QMP failed: ", *e));
                break;
            }
            if (fired) continue;
            auto ph = monitor.latest();
            if (!ph && c_.point != FaultPoint::before_first_byte) continue;
            bool blocked = monitor.blocked();
            if (!due(ph.value_or(Phase{}), blocked)) continue;
            fire();
            fired = true;
            fired_at_observation = monitor.observations();
            proxy_->open_gate();
            if (c_.point == FaultPoint::before_first_byte)
                r_.observed = FaultPoint::before_first_byte;
            else if (!blocked)
                r_.observed = ph->point();
        }
        // A fault fired while QEMU held its lock: the first answer after it
        // says whether that was the switchover or just a round's bitmap sync.
        if (fired && r_.observed == FaultPoint::not_reached) {
            for (int i = 0; i < 2000 && monitor.observations() <= fired_at_observation &&
                            !monitor.error();
                 ++i)
                std::this_thread::sleep_for(milliseconds(5));
            auto after = monitor.latest();
            bool still_precopy = after && after->status == "active" && after->run_state == "running" &&
                                 monitor.observations() > fired_at_observation;
            r_.observed = still_precopy ? FaultPoint::mid_round : FaultPoint::switchover;
        }
        monitor.stop();
        proxy_->open_gate();
        r_.migrate_exit = code.value_or(-1);
        if (!code) migrator_->stop(milliseconds(500));
        // The destination gives up on its own: at once on the source's abort or
        // a broken link, after --stall-timeout on a silent one.
        // A link broken, or the source killed, before the first byte (or in
        // the middle of the authentication handshake) means the destination
        // never saw a session: it rightly turns that peer away and goes on
        // waiting for a source (until --timeout).
        bool may_wait = c_.point == FaultPoint::before_first_byte && c_.kind != FaultKind::delay &&
                        (is_link_fault(c_.kind) || c_.kind == FaultKind::kill_source_rmig) &&
                        r_.migrate_exit != 0 &&
                        !session_started(pair_->dir() + "/fault-receive.log");
        auto recv_wait = may_wait ? milliseconds(1000)
                                  : std::min(left(), milliseconds((o_.stall_timeout_s + 15) * 1000));
        auto rc = receiver_->wait_for(recv_wait);
        r_.receive_exit = rc.value_or(-1);
        if (!rc && may_wait) {
            receiver_->stop(milliseconds(500));
        } else if (!rc) {
            fail(cat("hang: rmig receive still running ", recv_wait.count() / 1000,
                     " s after rmig migrate ended (backtraces in fault-receive-hang.bt)"));
            dump_stacks(*receiver_, pair_->dir() + "/fault-receive-hang.bt");
            receiver_->stop(milliseconds(500));
        }
        r_.migrate_error = read_error(mig_json_, "error");
        r_.receive_error = read_error(recv_json_, "error");
        // A corrupt fault waits for traffic; it may never have touched the stream.
        if (fired && c_.kind == FaultKind::corrupt && !proxy_->applied())
            r_.observed = FaultPoint::not_reached;
    }

    void check_after() {
        QemuVm& src = pair_->source();
        QemuVm& dst = pair_->destination();
        int code = r_.migrate_exit;
        bool source_killed = c_.kind == FaultKind::kill_source_rmig && code == 128 + SIGKILL;
        std::string dst_state = state_or_gone(dst);
        std::string src_state = src.state();
        // The destination confirmed and resumed the guest, and then the source
        // side lost the answer (its rmig killed, or exit 4: "the destination
        // may have resumed the guest"): the guest lives on the destination.
        bool handed_over = c_.resume && r_.receive_exit == 0 && dst_state == "running" &&
                           (source_killed || code == 4);
        bool completed = code == 0 || handed_over;

        // Exit 4 with resume on and 'finish' unanswered: rmig rightly leaves the
        // source paused; the operator checks the destination, finds it not
        // running, and resumes the source.
        bool unanswered_finish = code == 4 && c_.resume &&
                                 r_.migrate_error.find("may have resumed") != std::string::npos &&
                                 dst_state != "running";
        if (unanswered_finish) r_.notes.push_back("finish unanswered: source left paused for the operator");
        // With the control channel untouched and the destination's rmig
        // alive, 'finish' is always answered -- a refusal included -- so
        // leaving the source paused (exit 4) would strand a guest nobody runs.
        bool control_intact = !(is_link_fault(c_.kind) && c_.channel == 0) && c_.kind != FaultKind::kill_dest_rmig &&
                              c_.kind != FaultKind::kill_source_rmig;
        if (code == 4 && control_intact)
            fail(cat("exit 4 (source left paused) although the destination could answer 'finish': ",
                     r_.migrate_error));
        if (!completed && !source_killed && !unanswered_finish && code != 1 && code != 3)
            fail(cat("rmig migrate exit ", code, " (want 0, 1, or 3): ", r_.migrate_error));
        if (!completed && dst_state == "running")
            fail("the destination guest runs although the migration did not complete");
        // The destination confirmed a whole guest but the answer was lost on the
        // way back: the source (authoritative) failed and resumed; the
        // destination keeps its copy paused. Not a split brain; noted.
        if (c_.kind != FaultKind::kill_dest_rmig && !completed && r_.receive_exit == 0)
            r_.notes.push_back("destination confirmed (paused), source failed and kept the guest");

        if (completed) {
            if (c_.resume) {
                if (dst_state != "running") fail(cat("completed with resume, but the destination is '", dst_state, "'"));
                else if (!dst.keeps_running()) fail("completed with resume, but the destination guest makes no progress");
                if (src_state != "postmigrate") fail(cat("completed, but the source is '", src_state, "'"));
                return;  // the guest lives on the destination now
            }
            if (c_.kind == FaultKind::kill_dest_qemu && dst_state == "gone") {
                // The destination was lost after rmig confirmed it: an operator resumes the source.
                operator_resume();
            } else {
                VerifyResult v = pair_->verify();
                if (!v.ok) fail("completed, but verification failed: " + v.detail);
                return;
            }
        } else if (source_killed || unanswered_finish) {
            // Nobody is left to resume the source if QEMU had already completed.
            if (src_state != "running") operator_resume();
        } else {
            // rmig itself must have left the source running.
            if (src_state != "running") fail(cat("migration failed but the source is '", src_state, "'"));
            std::ifstream in(mig_json_);
            json rep = json::parse(in, nullptr, false);
            if (rep.is_object() && rep.value("source_state", "") != "running" && code == 1)
                fail(cat("rmig's report says the source is '", rep.value("source_state", ""), "'"));
        }
        if (!src.keeps_running()) fail("the source guest makes no progress after the failed migration");
        if (c_.kind == FaultKind::corrupt && r_.observed != FaultPoint::not_reached &&
            !names_integrity_error(r_.migrate_error) && !names_integrity_error(r_.receive_error) &&
            !log_names_integrity_error(pair_->dir() + "/fault-receive.log"))
            fail(cat("a corrupted frame did not end with a clear integrity error (source: '",
                     r_.migrate_error, "', destination: '", r_.receive_error, "')"));
        retry();
    }

    void operator_resume() {
        QemuVm& src = pair_->source();
        for (int i = 0; i < 100; ++i) {
            auto st = qemu::parse_migration_stats(src.qmp().execute("query-migrate")).status;
            if (st != "active" && st != "setup" && st != "cancelling" && st != "device") break;
            std::this_thread::sleep_for(milliseconds(50));
        }
        std::string s = src.state();
        if (s == "running") return;
        src.qmp().execute("cont");
        r_.operator_resumed = true;
        if (src.state() != "running") fail(cat("the source stays '", src.state(), "' after cont"));
    }

    void retry() {
        // Let QEMU finish failing before trying again on the same source.
        QemuVm& src = pair_->source();
        for (int i = 0; i < 200; ++i) {
            auto st = qemu::parse_migration_stats(src.qmp().execute("query-migrate")).status;
            if (st != "active" && st != "setup" && st != "cancelling" && st != "device") break;
            std::this_thread::sleep_for(milliseconds(50));
        }
        pair_->restart_destination();
        RmigRun again;
        again.settings.multifd_channels = c_.multifd;
        again.timeout_s = int(std::max<int64_t>(10, std::min<int64_t>(60, left().count() / 1000 - 5)));
        r_.retried = true;
        RunResult rr = pair_->migrate_rmig(again);
        if (!rr.ok) {
            std::string qemu_side;
            try {
                qemu_side = cat(" [source query-migrate ", src.qmp().execute("query-migrate").dump(),
                                ", query-yank ", src.qmp().execute("query-yank").dump(), "]");
            } catch (const std::exception& e) {
                qemu_side = cat(" [source QMP: ", e.what(), "]");
            }
            fail(cat("retry failed: exit ", rr.exit_code, ": ", rr.error, qemu_side));
            return;
        }
        VerifyResult v = pair_->verify();
        if (!v.ok) fail("retry completed, but verification failed: " + v.detail);
    }

    const FaultCase& c_;
    const HarnessOptions& o_;
    CaseResult r_;
    Clock::time_point deadline_;
    std::unique_ptr<LocalPair> pair_;
    std::unique_ptr<Process> receiver_, migrator_;
    std::unique_ptr<FaultProxy> proxy_;
    std::string dest_addr_, recv_json_, mig_json_;
};

}  // namespace

CaseResult run_case(const FaultCase& c, const HarnessOptions& o) { return CaseRun(c, o).run(); }

}  // namespace rmig::lab
