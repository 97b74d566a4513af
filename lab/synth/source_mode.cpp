// rmig-synth source: fill the guest, start the writers, migrate it through the
// C API (engine/capi/rmig.h) with per-round progress and the convergence
// policy's decision after each round, hand the page hash list over at pause,
// and report.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/units.hpp"
#include "engine/capi/rmig.h"
#include "lab/synth/cancel_on_signal.hpp"
#include "lab/synth/security_setup.hpp"
#include "lab/synth/hash_blob.hpp"
#include "lab/synth/modes.hpp"

namespace rmig::synth {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

struct SourceHandle {
    rmig_source* s = rmig_source_new();
    ~SourceHandle() { rmig_source_free(s); }
    void check(int rc) const {
        if (rc != 0) throw Error(rmig_source_error(s));
    }
};

// Everything the callbacks touch.
struct Guest {
    Guest(const Options& opts, GuestMemory& m, Writers& w, DirtyLog* l) : o(opts), mem(m), writers(w), log(l) {}
    const Options& o;
    GuestMemory& mem;
    Writers& writers;
    DirtyLog* log;
    json rounds = json::array();
    json decisions = json::array();
    uint64_t writes_at_mark = 0;
    std::vector<std::byte> blob;
    double pause_ms = 0;
    uint64_t writes_at_pause = 0;
    std::vector<unsigned> throttles;
    // The decisions of this attempt and the last one's action: the engine
    // announces its switch to post-copy as a decision of its own.
    unsigned decisions_seen = 0;
    int last_action = -1;

    bool pausing_for_postcopy() const { return last_action == RMIG_ACTION_POSTCOPY; }
};

int on_pause(void* opaque, const void** state, size_t* len) {
    auto* g = static_cast<Guest*>(opaque);
    auto t = Clock::now();
    if (!g->o.quiet) {
        if (g->pausing_for_postcopy())
            std::cerr << "rmig-synth source: pausing (post-copy: the guest starts on the destination now, its "
                         "missing pages follow)\n";
        else
            std::cerr << "rmig-synth source: pausing (switchover)\n";
    }
    try {
        g->writers.stop();
        g->writes_at_pause = g->writers.writes();
        std::vector<uint64_t> fresh;
        if (g->o.hash_at_pause) g->mem.hash_all(fresh, g->o.threads);
        encode_hash_blob_into(g->blob, kPageSize, g->writes_at_pause, g->o.hash_at_pause ? fresh : g->mem.hashes());
        // A VMM saving slow devices (the fault soak widens the switchover with it).
        if (g->o.pause_hold_ms > 0)
            std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(g->o.pause_hold_ms));
    } catch (const std::exception& e) {
        std::cerr << "rmig-synth source: pause: " << e.what() << "\n";
        return 1;
    }
    *state = g->blob.data();
    *len = g->blob.size();
    g->pause_ms = ms_since(t);
    return 0;
}

void on_resume(void* opaque) {
    auto* g = static_cast<Guest*>(opaque);
    if (!g->o.quiet) std::cerr << "rmig-synth source: migration failed after pause; writers resume\n";
    g->writers.start();
}

void on_throttle(void* opaque, unsigned percent) {
    auto* g = static_cast<Guest*>(opaque);
    g->writers.throttle(percent);
    g->throttles.push_back(percent);
    if (!g->o.quiet) std::cerr << "rmig-synth source: throttling writers to " << 100 - percent << "% speed\n";
}

void on_round(void* opaque, const rmig_round* r) {
    auto* g = static_cast<Guest*>(opaque);
    uint64_t w = g->writers.writes();
    uint64_t writes = w - g->writes_at_mark;
    g->writes_at_mark = w;
    const double ps = kPageSize;
    double secs = r->seconds > 0 ? r->seconds : 1e-9;
    json row = {{"round", r->round},
                {"pages_sent", r->pages_sent},
                {"page_bytes", r->pages_sent * kPageSize},
                {"dirty_pages", r->dirty_pages},
                {"seconds", r->seconds},
                {"elapsed", r->elapsed},
                {"send_rate", static_cast<double>(r->pages_sent) * ps / secs},
                {"dirty_rate", static_cast<double>(r->dirty_pages) * ps / secs},
                {"write_rate", static_cast<double>(writes) * ps / secs},
                {"throttle_percent", g->writers.throttle_percent()}};
    if (!g->o.quiet)
        std::cerr << "rmig-synth source: round " << r->round << ": sent " << r->pages_sent << " pages ("
                  << format_bytes(static_cast<double>(r->pages_sent) * ps) << ") in " << format_millis(secs * 1000)
                  << " (" << format_rate(row["send_rate"].get<double>()) << "), dirtied " << r->dirty_pages
                  << " pages (" << format_rate(row["dirty_rate"].get<double>()) << " distinct, writes "
                  << format_rate(row["write_rate"].get<double>()) << ")\n";
    g->rounds.push_back(std::move(row));
}

const char* action_name(rmig_action a) {
    switch (a) {
        case RMIG_ACTION_ROUND: return "round";
        case RMIG_ACTION_THROTTLE: return "throttle";
        case RMIG_ACTION_SWITCHOVER: return "switchover";
        case RMIG_ACTION_GIVE_UP: return "give_up";
        case RMIG_ACTION_POSTCOPY: return "postcopy";
    }
    return "unknown";
}

// One line per decision on the progress output, one entry in the report's
// "decisions" (null for what the policy does not know yet).
void on_decision(void* opaque, const rmig_decision* d) {
    auto* g = static_cast<Guest*>(opaque);
    g->last_action = d->action;
    ++g->decisions_seen;
    try {
        const bool forecast = d->forecast_seconds >= 0, predicted = d->predicted_downtime_ms >= 0;
        json row = {{"round", d->round},
                    {"action", action_name(d->action)},
                    {"remaining_pages", d->remaining_pages},
                    {"remaining_bytes", d->remaining_bytes},
                    {"predicted_downtime_ms", predicted ? json(d->predicted_downtime_ms) : json(nullptr)},
                    {"throttle_percent", d->throttle_percent},
                    {"converging", d->converging != 0},
                    {"forecast_seconds", forecast ? json(d->forecast_seconds) : json(nullptr)},
                    {"reason", d->reason ? d->reason : ""}};
        if (!g->o.quiet) {
            std::string verdict = !d->converging ? std::string("not converging")
                                  : d->forecast_seconds > 0
                                      ? cat("converging, switchover in ~", format_millis(d->forecast_seconds * 1000))
                                      : std::string("converging");
            std::cerr << "rmig-synth source: round " << d->round << " decision: " << action_name(d->action)
                      << "; remaining " << d->remaining_pages << " pages ("
                      << format_bytes(static_cast<double>(d->remaining_bytes)) << "), downtime now "
                      << (predicted ? format_millis(d->predicted_downtime_ms) : std::string("unknown")) << ", throttle "
                      << d->throttle_percent << "%, " << verdict << "\n";
        }
        g->decisions.push_back(std::move(row));
    } catch (const std::exception& e) {  // a report line is not worth failing the migration for
        std::cerr << "rmig-synth source: decision after round " << d->round << ": " << e.what() << "\n";
    }
}

int take_log(void* opaque, unsigned region, uint64_t* words, size_t nwords) {
    auto* g = static_cast<Guest*>(opaque);
    if (region != 0 || !g->log || nwords != g->log->words()) return 22;
    g->log->take(words, nwords);
    return 0;
}

rmig_codec codec_of(const std::string& c) {
    if (c == "none" || c == "off") return RMIG_CODEC_NONE;
    if (c == "lz4") return RMIG_CODEC_LZ4;
    if (c == "zstd") return RMIG_CODEC_ZSTD;
    throw UsageError(cat("unknown codec '", c, "' (none, lz4, zstd)"));
}

// After a failed migration: are the writers running (the guest was resumed,
// or never paused), and is every page what its writers last wrote? Stops
// the writers.
json check_after_failure(GuestMemory& mem, Writers& writers, const Options& o) {
    uint64_t w0 = writers.writes();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    uint64_t w1 = writers.writes();
    writers.stop();
    std::vector<uint64_t> now;
    mem.hash_all(now, o.threads);
    uint64_t bad = 0;
    for (size_t p = 0; p < now.size(); ++p) bad += now[p] != mem.hashes()[p];
    json r = {{"writes_in_300ms", w1 - w0},
              {"writers_running", o.writer.pages_per_second <= 0 || w1 > w0},
              {"region_mismatches", bad},
              {"region_intact", bad == 0}};
    if (!o.quiet) std::cerr << "rmig-synth source: after the failure: " << r.dump() << "\n";
    return r;
}

// Waits (bounded) for the harness to write a retry destination's URI to
// --retry-uri-file, then migrates the same memory there with the writers
// running, as the first attempt did.
template <class Attempt>
json retry_from_file(const Options& o, GuestMemory& mem, Writers& writers, Guest& g, Attempt& attempt) {
    if (!o.quiet) std::cerr << "rmig-synth source: waiting for a retry destination in " << o.retry_uri_file << "\n";
    auto deadline = Clock::now() + std::chrono::duration<double>(o.retry_wait_s);
    std::string uri;
    while (Clock::now() < deadline) {
        std::ifstream f(o.retry_uri_file);
        if (f && std::getline(f, uri) && !uri.empty()) break;
        uri.clear();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (uri.empty()) return {{"ok", false}, {"error", cat("no retry destination within ", o.retry_wait_s, " s")}};
    writers.start();
    g.writes_at_pause = 0;
    auto r = attempt(uri, false);
    writers.stop();
    int64_t list_mismatches = -1;
    std::string error = r.error;
    if (r.rc == 0 && !o.hash_at_pause) {
        std::vector<uint64_t> now;
        mem.hash_all(now, o.threads);
        HashList shipped = decode_hash_blob(g.blob);
        list_mismatches = 0;
        for (size_t p = 0; p < now.size(); ++p) list_mismatches += now[p] != shipped.hashes[p];
        if (list_mismatches != 0) error = cat(list_mismatches, " pages differ from the hash list sent at pause");
    }
    if (!o.quiet) std::cerr << "rmig-synth source: retry " << (r.rc == 0 && error.empty() ? "ok" : "FAILED") << "\n";
    return {{"ok", r.rc == 0 && error.empty()}, {"error", error}, {"uri", uri}, {"rounds", r.st.rounds},
            {"pages_sent", r.st.pages_sent}, {"hash_list_mismatches", list_mismatches}};
}

}  // namespace

int run_source(const Options& o) {
    const bool say = !o.quiet;
    auto t_fill = Clock::now();
    GuestMemory mem(o.size, o.zero_fraction, o.threads);
    double fill_ms = ms_since(t_fill);
    if (say)
        std::cerr << "rmig-synth source: " << format_bytes(static_cast<double>(o.size)) << " filled in "
                  << format_millis(fill_ms) << "; writers: " << o.writer.writers << " x "
                  << to_string(o.writer.pattern) << " at " << format_rate(o.dirty_bytes_per_second) << "\n";
    std::unique_ptr<DirtyLog> log;
    if (o.dirty_log == "bitmap") log = std::make_unique<DirtyLog>(mem.pages());
    Writers writers(mem, o.writer, log.get());
    Guest g(o, mem, writers, log.get());
    g.blob = encode_hash_blob(kPageSize, 0, mem.hashes());  // touched now, rewritten in pause()

    // One migration to `uri` with a fresh handle; the writers keep running
    // while it connects (they are started before the first attempt).
    struct Attempt {
        int rc = -1;
        std::string error;
        rmig_source_stats st{};
        rmig_switchover sw{};
        int cancelled_by = 0;
        uint64_t writes_before = 0;
        rmig_source_postcopy pc{};
        std::string pc_reason;  // pc.reason lives with the handle
        rmig_postcopy_recovery rec{};
        std::string rec_broke;  // rec.broke lives with the handle
    };
    auto attempt = [&](const std::string& uri, bool first) {
        Attempt r;
        SourceHandle h;
        if (!h.s) throw Error("out of memory");
        h.check(rmig_source_add_region(h.s, mem.mapping().data(), o.size, 0, "ram"));
        h.check(rmig_source_set_uri(h.s, uri.c_str()));
        h.check(rmig_source_set_workers(h.s, o.workers));
        h.check(rmig_source_set_codec(h.s, codec_of(o.codec), o.codec_level));
        h.check(rmig_source_set_downtime_ms(h.s, o.downtime_ms));
        h.check(rmig_source_set_limits(h.s, o.max_rounds, o.max_seconds));
        apply_security(o.security, h.s, [&](int rc) { h.check(rc); }, rmig_source_set_psk_file,
                       rmig_source_set_tls, rmig_source_set_encrypt, rmig_source_set_insecure_plaintext);
        if (log)
            h.check(rmig_source_set_dirty_log(h.s, RMIG_DIRTY_CALLER, take_log, &g));
        else
            h.check(rmig_source_set_dirty_log(h.s, RMIG_DIRTY_UFFD_WP, nullptr, nullptr));
        rmig_source_callbacks cb{&g, on_pause, on_resume, on_throttle, on_round};
        h.check(rmig_source_set_callbacks(h.s, &cb));
        h.check(rmig_source_set_on_decision(h.s, on_decision, &g));
        h.check(rmig_source_set_postcopy(h.s, o.postcopy ? 1 : 0, o.postcopy_after));
        h.check(rmig_source_set_postcopy_recover_ms(h.s, static_cast<uint64_t>(o.postcopy_recover_s * 1000)));
        h.check(rmig_source_set_postcopy_pull(h.s, o.postcopy_pull ? 1 : 0));
        g.last_action = -1;
        g.decisions_seen = 0;
        {
            CancelOnSignal on_signal(h.s);  // before any thread starts: they inherit its signal mask
            if (first) {
                writers.start();
                std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(o.warmup_ms));
            }
            r.writes_before = g.writes_at_mark = writers.writes();
            r.rc = rmig_source_migrate(h.s);
            r.cancelled_by = on_signal.signal();
        }
        r.error = r.rc == 0 ? "" : rmig_source_error(h.s);
        rmig_source_get_stats(h.s, &r.st);
        rmig_source_get_switchover(h.s, &r.sw);
        rmig_source_get_postcopy(h.s, &r.pc);
        r.pc_reason = r.pc.reason ? r.pc.reason : "";
        r.pc.reason = nullptr;
        rmig_source_get_postcopy_recovery(h.s, &r.rec);
        r.rec_broke = r.rec.broke ? r.rec.broke : "";
        r.rec.broke = nullptr;
        return r;
    };

    auto t0 = Clock::now();
    Attempt a = attempt(o.uri, true);
    double wall = ms_since(t0) / 1000;
    const int rc = a.rc;
    std::string error = a.error;
    const rmig_source_stats& st = a.st;
    const rmig_switchover& sw = a.sw;
    const int cancelled_by = a.cancelled_by;
    const uint64_t writes_before = a.writes_before;
    const uint64_t writes_at_pause = g.writes_at_pause;
    const double pause_ms = g.pause_ms;
    const rmig_source_postcopy& pc = a.pc;
    json after_failure;
    json retry;
    if (rc != 0 && pc.switched) {
        // Past the switch to post-copy the guest ran on the destination: the
        // source's copy is stale, so it stays paused (resume() never came).
        after_failure = {{"postcopy", true}, {"writers_running", false}};
        if (!o.quiet)
            std::cerr << "rmig-synth source: post-copy failed after the switch; the guest stays paused here\n";
    } else if (rc != 0) {
        // The promise after a failure: the guest runs on (its writers still,
        // or again, writing) and its memory is exactly what they made it.
        after_failure = check_after_failure(mem, writers, o);
        if (!o.retry_uri_file.empty()) retry = retry_from_file(o, mem, writers, g, attempt);
    }
    writers.stop();

    // Incremental hash lists are checked against memory once the guest stands
    // still: the list shipped must be what memory held at pause.
    int64_t list_mismatches = -1;
    if (rc == 0 && !o.hash_at_pause) {
        std::vector<uint64_t> now;
        mem.hash_all(now, o.threads);
        HashList shipped = decode_hash_blob(g.blob);
        list_mismatches = 0;
        for (size_t p = 0; p < now.size(); ++p) list_mismatches += now[p] != shipped.hashes[p];
        if (list_mismatches != 0) error = cat(list_mismatches, " pages differ from the hash list sent at pause");
    }
    uint64_t writes = writes_at_pause ? writes_at_pause - writes_before : writers.writes() - writes_before;
    double mig_secs = st.seconds > 0 ? st.seconds : wall;
    // The pages that followed the switch, over the phase they took.
    const double push_rate =
        pc.phase_s > 0 ? static_cast<double>(pc.pending_pages) * kPageSize / pc.phase_s : 0;
    json postcopy = {{"enabled", o.postcopy},
                     {"after_rounds", o.postcopy_after},
                     {"switched", pc.switched != 0},
                     {"reason", a.pc_reason},
                     {"pending_pages", pc.pending_pages},
                     {"served_pages", pc.served_pages},
                     {"pushed_bytes", pc.pushed_bytes},
                     {"rdma_reads", pc.rdma_reads != 0},
                     {"phase_s", pc.phase_s},
                     {"push_rate", push_rate},
                     {"resumed", a.rec.resumed},
                     {"broke", a.rec_broke}};
    json out = {{"role", "source"},
                {"ok", rc == 0 && error.empty()},
                {"error", error},
                {"size", o.size},
                {"page_size", kPageSize},
                {"pattern", to_string(o.writer.pattern)},
                {"writers", o.writer.writers},
                {"dirty_rate_target", o.dirty_bytes_per_second},
                {"write_rate", static_cast<double>(writes) * kPageSize / mig_secs},
                {"dirty_log", o.dirty_log},
                {"workers", o.workers},
                {"codec", o.codec},
                {"security", security::describe(o.security)},
                {"cancelled_by_signal", cancelled_by},
                {"downtime_budget_ms", o.downtime_ms},
                {"rounds", st.rounds},
                {"pages_sent", st.pages_sent},
                {"zero_pages", st.zero_pages},
                {"compressed_pages", st.compressed_pages},
                {"bytes_sent", st.bytes_sent},
                {"final_pages", st.final_pages},
                {"seconds", st.seconds},
                {"downtime_ms", st.downtime_ms},
                {"pause_ms", pause_ms},
                {"switchover_ms", {{"pause", sw.pause_ms},
                                   {"collect", sw.collect_ms},
                                   {"final_round", sw.final_round_ms},
                                   {"device_state", sw.device_state_ms},
                                   {"placed", sw.placed_ms},
                                   {"confirm", sw.confirm_ms}}},
                {"throttle_percent", st.throttle_percent},
                {"fill_ms", fill_ms},
                {"hash_at_pause", o.hash_at_pause},
                {"hash_list_mismatches", list_mismatches},
                {"session", st.session},
                {"round_log", g.rounds},
                {"decisions", g.decisions},
                {"postcopy", postcopy}};
    if (!after_failure.is_null()) out["after_failure"] = after_failure;
    if (!retry.is_null()) out["retry"] = retry;
    // The post-copy summary: with the report on stdout, or on stderr beside the JSON.
    std::string pc_line;
    if (pc.switched) {
        std::ostringstream line;
        line << "post-copy (" << a.pc_reason << "): " << pc.pending_pages << " pages pending at the switch, "
             << pc.served_pages << " served on request" << (pc.rdma_reads ? " (rdma reads)" : "") << ", phase "
             << format_millis(pc.phase_s * 1000) << ", " << std::fixed << std::setprecision(1) << push_rate / 1e6
             << " MB/s over the phase" << (rc == 0 ? "" : " (failed)");
        if (a.rec.resumed > 0) line << "; resumed " << a.rec.resumed << "x after a lost link (" << a.rec_broke << ")";
        line << "\n";
        pc_line = line.str();
    }
    if (o.json && !o.quiet && !pc_line.empty()) std::cerr << "rmig-synth source: " << pc_line;
    if (o.json) {
        std::cout << out.dump() << "\n";
    } else {
        std::cout << "source " << (out["ok"].get<bool>() ? "ok" : "FAILED") << ": " << st.rounds << " rounds, "
                  << format_bytes(static_cast<double>(st.bytes_sent)) << " sent (" << st.pages_sent << " pages, "
                  << st.zero_pages << " zero, " << st.compressed_pages << " compressed), "
                  << format_millis(st.seconds * 1000) << " total, " << format_millis(st.downtime_ms)
                  << " downtime (pause " << format_millis(g.pause_ms) << ", final round " << st.final_pages
                  << " pages), writes " << format_rate(out["write_rate"].get<double>()) << "\n";
        std::cout << pc_line;
        if (!error.empty()) std::cout << "error: " << error << "\n";
        if (!after_failure.is_null()) std::cout << "after the failure: " << after_failure.dump() << "\n";
        if (!retry.is_null()) std::cout << "retry: " << retry.dump() << "\n";
    }
    return out["ok"].get<bool>() ? exit_code::kOk : exit_code::kFailed;
}

}  // namespace rmig::synth
