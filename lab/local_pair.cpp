#include "lab/local_pair.hpp"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/error.hpp"
#include "common/temp_dir.hpp"
#include "common/units.hpp"
#include "security/policy.hpp"
#include "guest/guest_check.hpp"
#include "qemu-plugin/blackout.hpp"
#include "qemu-plugin/qemu_info.hpp"

namespace rmig::lab {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string rmig_binary() {
    if (const char* env = std::getenv("RMIG_BINARY")) return env;
    return RMIG_BINARY_PATH;
}

LocalPair::LocalPair(VmSpec spec, std::string dir) : dir_(std::move(dir)), spec_(spec) {
    if (dir_.empty()) {
        std::string tmpl = temp_base() + "/rmig-lab-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw_errno("mkdtemp " + tmpl);
        dir_ = tmpl;
        own_dir_ = true;
    } else {
        std::filesystem::create_directories(dir_);
    }
    VmSpec s = spec_;
    s.destination = false;
    src_ = std::make_unique<QemuVm>(dir_, "source", s);
    restart_destination();
    // Let the source guest get going so there is a dirty working set to chase.
    if (!src_->keeps_running(milliseconds(15000)))
        throw Error(cat("the source guest shows no progress on its serial port (see ", src_->log_path(), ")"));
}

LocalPair::~LocalPair() {
    dst_.reset();
    src_.reset();
    if (own_dir_ && !keep_) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
}

std::vector<std::string> LocalPair::security_args() {
    std::string path = dir_ + "/pair.psk";
    if (!std::filesystem::exists(path)) security::write_random_psk_file(path);
    return {"--psk-file", path};
}

void LocalPair::restart_destination() {
    dst_.reset();
    VmSpec s = spec_;
    s.destination = true;
    dst_ = std::make_unique<QemuVm>(dir_, cat("destination", generation_++ ? cat("-", generation_) : ""), s);
}

RunResult LocalPair::wait_source(int timeout_s) {
    RunResult r;
    auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
        auto st = qemu::parse_migration_stats(src_->qmp().execute("query-migrate"));
        if (st.status == "completed" || st.status == "failed" || st.status == "cancelled") {
            st = qemu::completed_figures(src_->qmp(), st);
            r.ok = st.status == "completed";
            r.error = st.error_desc;
            r.total_ms = double(st.total_time_ms);
            r.downtime_ms = double(st.downtime_ms);
            r.ram_bytes = st.ram_transferred;
            r.rounds = st.dirty_sync_count;
            return r;
        }
        if (Clock::now() > deadline) {
            src_->qmp().execute("migrate_cancel");
            r.error = "direct migration timed out";
            return r;
        }
        std::this_thread::sleep_for(milliseconds(20));
    }
}

// Events seen so far belong to earlier runs.
void LocalPair::forget_events() {
    src_->qmp().take_events();
    dst_->qmp().take_events();
}

void LocalPair::measure_blackout(RunResult& r) {
    // A query first: it reads whatever each QEMU sent meanwhile into the queue.
    src_->qmp().execute("query-status");
    dst_->qmp().execute("query-status");
    qemu::SwitchoverEvents src, dst;
    for (auto& ev : src_->qmp().take_events()) src.note(ev);
    for (auto& ev : dst_->qmp().take_events()) dst.note(ev);
    // One host, one clock: no offset to estimate.
    qemu::ClockOffset same{.known = true, .offset_us = 0, .uncertainty_ms = 0};
    auto b = qemu::measure_blackout(src.stop_us, dst.completed_us, dst.resume_us, same);
    r.blackout_ms = b.ms;
    r.stop_to_loaded_ms = b.stop_to_loaded_ms;
}

RunResult LocalPair::migrate_direct(const qemu::MigrationSettings& s, int timeout_s, const std::string& tcp_address) {
    auto t0 = Clock::now();
    forget_events();
    qemu::apply_settings(dst_->qmp(), s, qemu::Side::destination);
    qemu::apply_settings(src_->qmp(), s, qemu::Side::source);
    std::string uri = tcp_address.empty() ? cat("unix:", dir_, "/direct-", generation_, ".sock")
                                          : "tcp:" + tcp_address;
    dst_->qmp().execute("migrate-incoming", {{"uri", uri}});
    src_->qmp().execute("migrate", {{"uri", uri}});
    // Post-copy at once: every page after the switch.
    double switch_ms = 0;
    if (s.postcopy) {
        src_->qmp().execute("migrate-start-postcopy");
        switch_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    }
    RunResult r = wait_source(timeout_s);
    if (s.postcopy && r.ok) r.postcopy_phase_ms = r.total_ms - switch_ms;
    // The destination has finished loading once it leaves "inmigrate".
    for (int i = 0; i < 200 && r.ok && dst_->state() == "inmigrate"; ++i)
        std::this_thread::sleep_for(milliseconds(20));
    r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (r.ok) measure_blackout(r);
    return r;
}

namespace {

// `ip netns exec NS` in front of a command (NS empty: nothing).
void in_netns(const std::string& ns, std::vector<std::string>& argv) {
    if (ns.empty()) return;
    argv.insert(argv.begin(), {"ip", "netns", "exec", ns});
}

}  // namespace

RunResult LocalPair::migrate_rmig(const RmigRun& run) {
    RunResult r;
    auto t0 = Clock::now();
    forget_events();
    std::string tag = cat(generation_);
    std::string addr_file = cat(dir_, "/receive-", tag, ".addr");
    std::string recv_json = cat(dir_, "/receive-", tag, ".json");
    std::string mig_json = cat(dir_, "/migrate-", tag, ".json");
    ::unlink(addr_file.c_str());
    std::vector<std::string> sec = run.plaintext ? std::vector<std::string>{"--insecure-plaintext"} : security_args();
    if (!run.plaintext && !run.encrypt) sec.push_back("--no-encrypt");
    std::vector<std::string> recv_argv = {rmig_binary(), "receive", "--qmp", dst_->qmp_path(), "--listen",
                                          run.listen_uri, "--address-file", addr_file, "--timeout",
                                          cat(run.timeout_s), "--json", recv_json};
    recv_argv.insert(recv_argv.end(), sec.begin(), sec.end());
    recv_argv.insert(recv_argv.end(), run.receive_extra_args.begin(), run.receive_extra_args.end());
    in_netns(run.dest_netns, recv_argv);
    Process receiver(recv_argv, {cat(dir_, "/receive-", tag, ".log"), "=stdout"});
    std::string addr;
    for (int i = 0; i < 500 && addr.empty(); ++i) {
        std::ifstream(addr_file) >> addr;
        if (addr.empty()) {
            if (!receiver.running()) break;
            std::this_thread::sleep_for(milliseconds(10));
        }
    }
    if (addr.empty()) {
        r.error = cat("rmig receive did not start listening (see ", dir_, "/receive-", tag, ".log)");
        return r;
    }
    if (run.before_migrate) run.before_migrate(addr);
    std::vector<std::string> argv = {
        rmig_binary(), "migrate", "--qmp", src_->qmp_path(), "--to",
        run.connect_uri.empty() ? addr : run.connect_uri,
        "--multifd", cat(run.settings.multifd_channels),
        "--max-bandwidth", cat(run.settings.max_bandwidth),
        "--blackout-budget", cat(run.settings.downtime_limit_ms),
        "--timeout", cat(run.timeout_s), "--json", mig_json,
        "--progress", run.show_progress ? "auto" : "line"};
    if (!run.resume) argv.push_back("--no-resume");
    argv.insert(argv.end(), sec.begin(), sec.end());
    argv.insert(argv.end(), run.extra_args.begin(), run.extra_args.end());
    in_netns(run.source_netns, argv);
    Process::Options out;
    if (!run.show_progress) out = {cat(dir_, "/migrate-", tag, ".log"), "=stdout"};
    Process migrator(argv, out);

    auto deadline = Clock::now() + std::chrono::seconds(run.timeout_s + 30);
    std::optional<int> code;
    bool frozen = false;
    std::optional<Clock::time_point> receiver_killed, migrator_killed;
    bool receiver_kill_done = false, migrator_kill_done = false;  // once each
    auto moved = [&] { return qemu::parse_migration_stats(src_->qmp().execute("query-migrate")).ram_transferred; };
    for (;;) {
        code = migrator.wait_for(milliseconds(20));
        if (code && migrator_killed && run.restart_killed_after) {
            // The killed `rmig migrate` again, as an operator would start it.
            std::this_thread::sleep_for(*run.restart_killed_after);
            Process::Options again = out;
            if (!again.stdout_path.empty()) again.stdout_path = cat(dir_, "/migrate-", tag, "-again.log");
            migrator = Process(argv, again);
            migrator_killed.reset();
            code.reset();
            continue;
        }
        if (code) break;
        if (Clock::now() > deadline) {
            r.error = "rmig migrate did not exit in time";
            migrator.stop();
            break;
        }
        if (run.kill_migrator_after && !migrator_kill_done && moved() >= *run.kill_migrator_after) {
            migrator.signal(SIGKILL);
            migrator_killed = Clock::now();
            migrator_kill_done = true;
        }
        if (run.kill_receiver_after && !receiver_kill_done && receiver.running() && moved() >= *run.kill_receiver_after) {
            receiver.signal(SIGKILL);
            receiver_killed = Clock::now();
            receiver_kill_done = true;
        }
        if (receiver_killed && run.restart_killed_after && Clock::now() - *receiver_killed >= *run.restart_killed_after) {
            receiver.wait_for(milliseconds(2000));
            std::vector<std::string> again = recv_argv;
            for (size_t i = 0; i + 1 < again.size(); ++i) {
                if (again[i] == "--listen") again[i + 1] = addr;  // the same port: the source retries there
                if (again[i] == "--address-file") again[i + 1] = addr_file + ".again";
            }
            receiver = Process(again, {cat(dir_, "/receive-", tag, "-again.log"), "=stdout"});
            receiver_killed.reset();
        }
        if (run.freeze_destination_after && !frozen) {
            auto st = qemu::parse_migration_stats(src_->qmp().execute("query-migrate"));
            if (st.ram_transferred >= *run.freeze_destination_after) {
                dst_->signal(SIGSTOP);
                frozen = true;
            }
        }
    }
    r.exit_code = code.value_or(-1);
    r.receive_exit_code = receiver.wait_for(milliseconds(20000)).value_or(-1);
    r.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    std::ifstream in(mig_json);
    r.report = json::parse(in, nullptr, false);
    if (!r.report.is_discarded() && r.report.is_object()) {
        const json& q = r.report["qemu"];
        r.total_ms = q.value("total_time_ms", 0.0);
        r.downtime_ms = q.value("downtime_ms", 0.0);
        r.ram_bytes = q.value("ram_transferred_bytes", uint64_t{0});
        r.rounds = q.value("dirty_sync_count", uint64_t{0});
        if (r.error.empty()) r.error = r.report.value("error", "");
        const json& b = r.report["blackout"];
        if (b.is_object() && b["ms"].is_number()) r.rmig_blackout_ms = b["ms"].get<double>();
    } else {
        // No report: rmig stopped before writing one (a usage error, most
        // likely); its log says why.
        r.report = json::object();
        if (r.error.empty())
            r.error = cat("rmig migrate exited ", r.exit_code, " without a report (see ", dir_, "/migrate-", tag, ".log)");
    }
    r.ok = r.exit_code == 0;
    if (r.ok) measure_blackout(r);
    return r;
}

VerifyResult LocalPair::verify() {
    VerifyResult v;
    std::string src_state = src_->state(), dst_state = dst_->state();
    if (src_state != "postmigrate") {
        v.detail = cat("source is '", src_state, "', expected 'postmigrate'");
        return v;
    }
    if (dst_state != "paused") {
        v.detail = cat("destination is '", dst_state, "', expected 'paused' (loaded, not resumed)");
        return v;
    }
    std::string a = dir_ + "/source.mem", b = dir_ + "/destination.mem";
    src_->dump_memory(a);
    dst_->dump_memory(b);
    auto ma = guest::load_dump(a), mb = guest::load_dump(b);
    std::filesystem::remove(a);
    std::filesystem::remove(b);
    auto same = guest::compare_dumps(ma, mb);
    if (!same) {
        v.detail = "destination memory differs from the source: " + same.detail;
        return v;
    }
    // All first bytes 0 is also the state right after a multiple of 256
    // passes, and a paused vCPU is most often caught at the pass boundary
    // (the serial write exits to QEMU): about 1 in 256 migrations (seen in
    // the fault soak, 256 markers). The source's markers show the guest ran;
    // the dumps were equal above.
    guest::PatternOptions po;
    po.require_progress = guest::serial_marker_count(src_->serial_path()) == 0;
    auto pattern = guest::check_pattern(mb, po);
    if (!pattern) {
        v.detail = "destination memory breaks the guest's pattern: " + pattern.detail;
        return v;
    }
    dst_->qmp().execute("cont");
    if (!dst_->keeps_running()) {
        v.detail = cat("destination guest does not run after 'cont' (state '", dst_->state(), "')");
        return v;
    }
    v.ok = true;
    v.detail = cat(format_bytes(double(ma.size())), " identical, pattern intact (pass ",
                   unsigned(pattern.low_value), "), destination guest running");
    return v;
}

}  // namespace rmig::lab
