// The C API (rmig.h) over the engine's C++ memory-mode API: handles hold a
// MemorySourceConfig / MemoryDestConfig plus the last error text; every entry
// point catches everything, so nothing throws across the C boundary.
//
// Both dirty-log kinds reach the engine as caller-fed DirtySources (one
// TrackedSource per region): for uffd-wp each wraps its own UffdWpSource,
// for caller bitmaps it calls the VMM's function. Wrapping lets us observe
// round boundaries (the engine collects every region's log once per round,
// in region order) for the round callback and the final-round page count,
// and gives the decision callback its round and remaining pages (the
// engine's Decision carries neither; it follows the round's collection).
#include "engine/capi/rmig.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "engine/dirty/uffd_wp_source.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "engine/pages/compressor.hpp"
#include "security/settings.hpp"

using namespace rmig;
using namespace rmig::engine;
using Clock = std::chrono::steady_clock;

namespace {

// A recovery window from the C API: at most 30 days, so that "forever"
// (UINT64_MAX) neither wraps negative nor overflows the clock.
std::chrono::milliseconds recover_window(uint64_t ms) {
    constexpr uint64_t kMax = uint64_t{30} * 24 * 3600 * 1000;
    return std::chrono::milliseconds(static_cast<int64_t>(std::min(ms, kMax)));
}

constexpr size_t kStateCopyPretouch = size_t{16} << 20;  // device state bytes copied without faulting

double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

void copy_session(char (&out)[40], const std::string& s) {
    std::memset(out, 0, sizeof out);
    std::memcpy(out, s.data(), std::min(s.size(), sizeof out - 1));
}

// Round boundaries, seen from the dirty-log collections of all regions.
class RoundTracker {
public:
    void reset(const std::vector<Region>& regions, const rmig_source_callbacks& cb) {
        cb_ = cb;
        prev_.clear();
        dirty_.assign(regions.size(), 0);
        total_pages_ = 0;
        for (const auto& r : regions) {
            total_pages_ += r.size / RMIG_PAGE_SIZE;
            prev_.emplace_back((r.size / RMIG_PAGE_SIZE + 63) / 64, 0);
        }
        round_ = 0;
        next_pages_ = total_pages_;
        paused_ = false;
        final_pages_ = 0;
    }

    void started() { start_ = mark_ = Clock::now(); }
    void pausing() { paused_ = true; }

    // After region `index` collected `snap` (the pages dirtied since its previous collect).
    void collected(size_t index, const DirtyBitmap& snap) {
        auto& prev = prev_[index];
        if (paused_) {
            // The final round sends this on top of the previous, unsent snapshot.
            for (size_t w = 0; w < prev.size(); ++w)
                final_pages_ += static_cast<uint64_t>(std::popcount(prev[w] | snap.word(w)));
            return;
        }
        for (size_t w = 0; w < prev.size(); ++w) prev[w] = snap.word(w);
        dirty_[index] = snap.count();
        if (index + 1 != prev_.size()) return;
        auto now = Clock::now();
        rmig_round r{};
        r.round = round_++;
        r.pages_sent = next_pages_;
        r.dirty_pages = 0;
        for (auto d : dirty_) r.dirty_pages += d;
        r.seconds = seconds_between(mark_, now);
        r.elapsed = seconds_between(start_, now);
        mark_ = now;
        next_pages_ = r.dirty_pages;
        if (cb_.round) cb_.round(cb_.opaque, &r);
    }

    uint64_t final_pages() const { return final_pages_; }
    // The last pre-copy round whose log was collected, and the pages it left dirty.
    unsigned last_round() const { return round_ > 0 ? round_ - 1 : 0; }
    uint64_t last_dirty_pages() const { return next_pages_; }

private:
    rmig_source_callbacks cb_{};
    std::vector<std::vector<uint64_t>> prev_;
    std::vector<uint64_t> dirty_;
    uint64_t total_pages_ = 0, next_pages_ = 0, final_pages_ = 0;
    unsigned round_ = 0;
    bool paused_ = false;
    Clock::time_point start_{}, mark_{};
};

class TrackedSource final : public DirtySource {
public:
    // uffd-wp over the region
    TrackedSource(RoundTracker& t, size_t index, const Region& r)
        : tracker_(t), index_(index), region_(r), uffd_(std::make_unique<UffdWpSource>(r.base, r.size)) {
        if (uffd_->page_size() != RMIG_PAGE_SIZE)
            throw Error(cat("region '", r.name, "': uffd tracks ", uffd_->page_size(), "-byte pages, not ",
                            RMIG_PAGE_SIZE));
    }
    // the VMM's dirty log
    TrackedSource(RoundTracker& t, size_t index, const Region& r, rmig_dirty_log_fn fn, void* opaque)
        : tracker_(t), index_(index), region_(r), fn_(fn), opaque_(opaque),
          words_((r.size / RMIG_PAGE_SIZE + 63) / 64) {}

    void start() override {
        if (index_ == 0) tracker_.started();
        if (uffd_) {
            uffd_->start();
        } else {
            call_fn();  // drop what was logged before: round 0 sends everything
        }
    }

    void collect(DirtyBitmap& snapshot) override { collect(snapshot, false); }
    void collect_final(DirtyBitmap& snapshot) override { collect(snapshot, true); }

    void collect(DirtyBitmap& snapshot, bool final) {
        if (uffd_) {
            if (final) uffd_->collect_final(snapshot);
            else uffd_->collect(snapshot);
        } else {
            call_fn();
            snapshot.clear_all();
            snapshot.merge_from(words_.data(), words_.size());
        }
        tracker_.collected(index_, snapshot);
    }

    void stop() override {
        if (uffd_) uffd_->stop();
    }

private:
    void call_fn() {
        std::fill(words_.begin(), words_.end(), 0);
        int rc = fn_(opaque_, static_cast<unsigned>(index_), words_.data(), words_.size());
        if (rc != 0)
            throw Error(cat("dirty log callback for region '", region_.name, "' failed (returned ", rc, ")"));
    }

    RoundTracker& tracker_;
    size_t index_;
    Region region_;
    std::unique_ptr<UffdWpSource> uffd_;
    rmig_dirty_log_fn fn_ = nullptr;
    void* opaque_ = nullptr;
    std::vector<uint64_t> words_;
};

rmig_action action_of(Action a) {
    switch (a) {
        case Action::next_round: return RMIG_ACTION_ROUND;
        case Action::throttle: return RMIG_ACTION_THROTTLE;
        case Action::switchover: return RMIG_ACTION_SWITCHOVER;
        case Action::give_up: return RMIG_ACTION_GIVE_UP;
        case Action::postcopy: return RMIG_ACTION_POSTCOPY;
    }
    return RMIG_ACTION_ROUND;
}

// The engine's decision for the round `tracker` collected last, as rmig.h
// describes it (-1 for what is unknown). Allocates nothing: d.reason is
// handed out as it is, valid while the callback runs.
rmig_decision to_c(const Decision& d, const RoundTracker& tracker) {
    rmig_decision out{};
    out.round = tracker.last_round();
    out.action = action_of(d.action);
    out.remaining_pages = tracker.last_dirty_pages();
    out.remaining_bytes = out.remaining_pages * RMIG_PAGE_SIZE;
    out.predicted_downtime_ms = std::isfinite(d.predicted_downtime_ms) ? d.predicted_downtime_ms : -1;
    out.throttle_percent = d.throttle_percent;
    out.converging = d.converging ? 1 : 0;
    out.forecast_seconds = d.converging && std::isfinite(d.forecast_seconds) ? d.forecast_seconds : -1;
    out.reason = d.reason.empty() ? to_string(d.action) : d.reason.c_str();
    return out;
}

template <class Fn>
int guarded(std::string& error, Fn&& fn) {
    try {
        error.clear();
        fn();
        return 0;
    } catch (const std::bad_alloc&) {
        error = "out of memory";
    } catch (const std::exception& e) {
        error = e.what();
    } catch (...) {
        error = "unknown error";
    }
    return -1;
}

Region make_region(void* host, size_t size, uint64_t gpa, const char* name, size_t existing) {
    if (!host) throw Error("add_region: host pointer is NULL");
    if (!name || !*name) throw Error("add_region: a region needs a non-empty name");
    if (reinterpret_cast<uintptr_t>(host) % RMIG_PAGE_SIZE != 0 || size == 0 || size % RMIG_PAGE_SIZE != 0)
        throw Error(cat("add_region '", name, "': pointer and size must be multiples of ", RMIG_PAGE_SIZE,
                        " and size > 0 (got ", host, ", ", size, ")"));
    if (existing >= 1024) throw Error("add_region: at most 1024 regions");
    return Region{host, size, gpa, name};
}

// The setters' side of security/settings.hpp. Each replaces the credentials
// set before and checks its input now, so a bad key file or certificate is
// reported by the call that named it.
void clear_credentials(security::Settings& s) {
    s.psk_file.reset();
    s.psk.reset();
    s.psk_identity.reset();
    s.tls_cert.reset();
    s.tls_key.reset();
    s.tls_ca.reset();
    s.tls_peer_name.reset();
}

void set_psk(security::Settings& s, std::vector<unsigned char> key, const char* identity) {
    if (key.size() < 16) throw Error(cat("set_psk: a key of ", key.size(), " bytes is too short (at least 16)"));
    if (identity && !*identity) throw Error("set_psk: empty identity (NULL means \"rmig\")");
    clear_credentials(s);
    s.psk = std::move(key);
    if (identity) s.psk_identity = identity;
}

void set_psk_bytes(security::Settings& s, const void* key, size_t len, const char* identity) {
    if (!key) throw Error("set_psk: key is NULL");
    if (len > 4096) throw Error(cat("set_psk: a key of ", len, " bytes is too long (at most 4096)"));
    auto* p = static_cast<const unsigned char*>(key);
    set_psk(s, std::vector<unsigned char>(p, p + len), identity);
}

void set_psk_file(security::Settings& s, const char* path, const char* identity) {
    if (!path || !*path) throw Error("set_psk_file: no path");
    set_psk(s, security::read_psk_file(path), identity);
}

void set_tls(security::Settings& s, const char* cert, const char* key, const char* ca, const char* peer) {
    if (!cert || !*cert || !key || !*key || !ca || !*ca)
        throw Error("set_tls: the certificate, key and CA files are all required");
    security::Config c;
    c.mode = security::Config::Mode::x509;
    c.cert_file = cert;
    c.key_file = key;
    c.ca_file = ca;
    c.peer_name = peer ? peer : "";
    security::Context::create(c);  // loads the files and checks that key and certificate match
    clear_credentials(s);
    s.tls_cert = cert;
    s.tls_key = key;
    s.tls_ca = ca;
    if (peer && *peer) s.tls_peer_name = peer;
}

// The command's policy for the handle's URI, worded for a C caller too.
std::shared_ptr<security::Context> context_for(const security::Settings& s, const std::string& uri,
                                               const char* fn) {
    try {
        return security::context_from_settings(s, uri, "URI");
    } catch (const Error& e) {
        throw Error(cat(fn, ": ", e.what(),
                        " [C API: rmig_*_set_psk, rmig_*_set_psk_file or rmig_*_set_tls; on loopback "
                        "rmig_*_set_insecure_plaintext]"));
    }
}

}  // namespace

struct rmig_source {
    MemorySourceConfig cfg;
    std::stop_source stop;
    security::Settings security;
    rmig_source_callbacks cb{};
    void (*on_decision)(void*, const rmig_decision*) = nullptr;
    void* decision_opaque = nullptr;
    rmig_dirty_log kind = RMIG_DIRTY_UFFD_WP;
    rmig_dirty_log_fn log_fn = nullptr;
    void* log_opaque = nullptr;
    bool used = false;
    unsigned throttle = 0;
    RoundTracker tracker;
    std::vector<std::unique_ptr<TrackedSource>> sources;
    MemorySourceResult result;
    std::string error;
    // The device state's copy, made inside the downtime: into memory touched
    // before the migration started, not fresh pages (faulting in 8 MiB took
    // 15-27 ms in this VM).
    std::vector<std::byte> state_copy;
};

struct rmig_dest {
    MemoryDestConfig cfg;
    std::stop_source stop;
    security::Settings security;
    void (*on_listening)(void*, const char*) = nullptr;
    void* listening_opaque = nullptr;
    void (*on_round)(void*, unsigned, uint64_t) = nullptr;
    void* round_opaque = nullptr;
    void (*postcopy_start)(void*, const void*, size_t) = nullptr;
    void (*postcopy_failed)(void*, const char*) = nullptr;
    void* postcopy_opaque = nullptr;
    bool used = false;
    double seconds = 0;
    MemoryDestResult result;
    std::string error;
};

extern "C" {

rmig_source* rmig_source_new(void) {
    auto* s = new (std::nothrow) rmig_source();
    if (s) s->cfg.stop = s->stop.get_token();
    return s;
}

void rmig_source_free(rmig_source* s) {
    delete s;
}

int rmig_source_add_region(rmig_source* s, void* host, size_t size, uint64_t gpa, const char* name) {
    return guarded(s->error, [&] { s->cfg.regions.push_back(make_region(host, size, gpa, name, s->cfg.regions.size())); });
}

int rmig_source_set_uri(rmig_source* s, const char* uri) {
    return guarded(s->error, [&] {
        if (!uri || !*uri) throw Error("set_uri: empty URI");
        s->cfg.dest_uri = uri;
    });
}

int rmig_source_set_workers(rmig_source* s, unsigned workers) {
    return guarded(s->error, [&] {
        if (workers < 1 || workers > 64) throw Error(cat("set_workers: ", workers, " is not in 1..64"));
        s->cfg.workers = workers;
    });
}

int rmig_source_set_codec(rmig_source* s, rmig_codec codec, int level) {
    return guarded(s->error, [&] {
        Codec c;
        switch (codec) {
        case RMIG_CODEC_NONE: c = Codec::none; break;
        case RMIG_CODEC_LZ4: c = Codec::lz4; break;
        case RMIG_CODEC_ZSTD: c = Codec::zstd; break;
        default: throw Error(cat("set_codec: unknown codec ", static_cast<int>(codec)));
        }
        Compressor check(c, level);  // throws on an out-of-range level
        s->cfg.codec = c;
        s->cfg.codec_level = level;
    });
}

int rmig_source_set_downtime_ms(rmig_source* s, double budget_ms) {
    return guarded(s->error, [&] {
        if (!(budget_ms > 0) || budget_ms > 3.6e6) throw Error(cat("set_downtime_ms: ", budget_ms, " is not in (0, 3600000]"));
        s->cfg.convergence.downtime_budget_ms = budget_ms;
    });
}

int rmig_source_set_limits(rmig_source* s, unsigned max_rounds, double max_seconds) {
    return guarded(s->error, [&] {
        if (max_rounds < 1 || !(max_seconds > 0))
            throw Error(cat("set_limits: max_rounds ", max_rounds, " and max_seconds ", max_seconds, " must be > 0"));
        s->cfg.convergence.max_rounds = max_rounds;
        s->cfg.convergence.max_total_seconds = max_seconds;
    });
}

int rmig_source_set_dirty_log(rmig_source* s, rmig_dirty_log kind, rmig_dirty_log_fn fn, void* opaque) {
    return guarded(s->error, [&] {
        if (kind != RMIG_DIRTY_UFFD_WP && kind != RMIG_DIRTY_CALLER)
            throw Error(cat("set_dirty_log: unknown kind ", static_cast<int>(kind)));
        if (kind == RMIG_DIRTY_CALLER && !fn) throw Error("set_dirty_log: RMIG_DIRTY_CALLER needs a function");
        s->kind = kind;
        s->log_fn = fn;
        s->log_opaque = opaque;
    });
}

int rmig_source_set_callbacks(rmig_source* s, const rmig_source_callbacks* cb) {
    return guarded(s->error, [&] {
        if (!cb || !cb->pause) throw Error("set_callbacks: pause is required");
        s->cb = *cb;
    });
}

int rmig_source_set_on_decision(rmig_source* s, void (*fn)(void*, const rmig_decision*), void* opaque) {
    return guarded(s->error, [&] {
        s->on_decision = fn;
        s->decision_opaque = opaque;
    });
}

int rmig_source_set_postcopy(rmig_source* s, int enable, unsigned after_rounds) {
    return guarded(s->error, [&] {
        s->cfg.postcopy.enabled = enable != 0;
        s->cfg.postcopy.after_rounds = enable ? after_rounds : 0;
    });
}

int rmig_source_set_postcopy_recover_ms(rmig_source* s, uint64_t ms) {
    return guarded(s->error, [&] { s->cfg.postcopy.recover = recover_window(ms); });
}

int rmig_source_set_postcopy_pull(rmig_source* s, int enable) {
    return guarded(s->error, [&] { s->cfg.postcopy.pull = enable != 0; });
}

int rmig_source_set_psk(rmig_source* s, const void* key, size_t len, const char* identity) {
    return guarded(s->error, [&] { set_psk_bytes(s->security, key, len, identity); });
}

int rmig_source_set_psk_file(rmig_source* s, const char* path, const char* identity) {
    return guarded(s->error, [&] { set_psk_file(s->security, path, identity); });
}

int rmig_source_set_tls(rmig_source* s, const char* cert_file, const char* key_file, const char* ca_file,
                        const char* peer_name) {
    return guarded(s->error, [&] { set_tls(s->security, cert_file, key_file, ca_file, peer_name); });
}

int rmig_source_set_encrypt(rmig_source* s, int encrypt) {
    return guarded(s->error, [&] { s->security.no_encrypt = encrypt == 0; });
}

int rmig_source_set_insecure_plaintext(rmig_source* s, int plaintext) {
    return guarded(s->error, [&] { s->security.insecure_plaintext = plaintext != 0; });
}

void rmig_source_cancel(rmig_source* s) {
    s->stop.request_stop();
}

int rmig_source_migrate(rmig_source* s) {
    int rc = guarded(s->error, [&] {
        if (s->used) throw Error("migrate: a source handle migrates once; make a new one");
        s->used = true;
        if (s->cfg.regions.empty()) throw Error("migrate: no regions registered");
        if (s->cfg.dest_uri.empty()) throw Error("migrate: no destination URI (rmig_source_set_uri)");
        if (!s->cb.pause) throw Error("migrate: no pause callback (rmig_source_set_callbacks)");
        MemorySourceConfig& cfg = s->cfg;
        cfg.security = context_for(s->security, cfg.dest_uri, "migrate");
        cfg.page_size = RMIG_PAGE_SIZE;
        s->tracker.reset(cfg.regions, s->cb);
        for (size_t i = 0; i < cfg.regions.size(); ++i) {
            if (s->kind == RMIG_DIRTY_CALLER)
                s->sources.push_back(
                    std::make_unique<TrackedSource>(s->tracker, i, cfg.regions[i], s->log_fn, s->log_opaque));
            else
                s->sources.push_back(std::make_unique<TrackedSource>(s->tracker, i, cfg.regions[i]));
            cfg.caller_sources.push_back(s->sources.back().get());
        }
        cfg.dirty_log = DirtyLog::caller;
        const rmig_source_callbacks cb = s->cb;
        cfg.pause = [s, cb] {
            s->tracker.pausing();
            const void* state = nullptr;
            size_t len = 0;
            int r = cb.pause(cb.opaque, &state, &len);
            if (r != 0) throw Error(cat("pause callback failed (returned ", r, ")"));
            if (len > 0 && !state) throw Error("pause callback gave a NULL device state of nonzero length");
            auto* p = static_cast<const std::byte*>(state);
            s->state_copy.assign(p, p + len);  // within the touched capacity unless larger
            return std::move(s->state_copy);
        };
        s->state_copy.resize(kStateCopyPretouch);  // touches the pages ...
        s->state_copy.clear();                     // ... and keeps them
        if (cb.resume) cfg.on_failure_resume = [cb] { cb.resume(cb.opaque); };
        if (cb.throttle)
            cfg.throttle = [s, cb](unsigned percent) {
                s->throttle = percent;
                cb.throttle(cb.opaque, percent);
            };
        // After the policy decided, before the engine acts on it. What a C++
        // caller's function might throw fails the migration, as from the
        // other callbacks (the engine catches it; guarded() catches the rest).
        if (s->on_decision)
            cfg.on_decision = [s](const Decision& d) {
                const rmig_decision out = to_c(d, s->tracker);
                s->on_decision(s->decision_opaque, &out);
            };
        s->result = migrate_memory(cfg);
        s->sources.clear();  // the engine stopped them; unregister uffd now
        if (!s->result.ok) throw Error(s->result.error);
    });
    return rc;
}

int rmig_source_get_stats(const rmig_source* s, struct rmig_source_stats* out) {
    if (!out) return -1;
    *out = {};
    const auto& r = s->result;
    out->ok = r.ok ? 1 : 0;
    out->paused = r.paused ? 1 : 0;
    out->rounds = r.rounds;
    out->pages_sent = r.pages_sent;
    out->zero_pages = r.zero_pages;
    out->compressed_pages = r.compressed_pages;
    out->bytes_sent = r.bytes_sent;
    // After a switch to post-copy nothing is sent while paused: the pages
    // collected at pause are the post-copy phase's (rmig_source_get_postcopy).
    out->final_pages = r.postcopy.switched ? 0 : s->tracker.final_pages();
    out->seconds = r.seconds;
    out->downtime_ms = r.downtime_ms;
    out->throttle_percent = s->throttle;
    copy_session(out->session, r.session);
    return 0;
}

int rmig_source_get_switchover(const rmig_source* s, struct rmig_switchover* out) {
    if (!s || !out) return -1;
    const SwitchoverTimes& t = s->result.switchover;
    *out = {t.pause_ms, t.collect_ms, t.final_round_ms, t.device_state_ms, t.placed_ms, t.confirm_ms, t.final_pages};
    return 0;
}

int rmig_source_get_postcopy(const rmig_source* s, struct rmig_source_postcopy* out) {
    if (!s || !out) return -1;
    const SourcePostcopy& p = s->result.postcopy;
    *out = {};
    out->switched = p.switched ? 1 : 0;
    out->pending_pages = p.pending_pages;
    out->served_pages = p.served_pages;
    out->rdma_reads = p.rdma_reads ? 1 : 0;
    out->phase_s = p.phase_s;
    out->pushed_bytes = p.pushed_bytes;
    out->reason = p.reason.c_str();  // the result is set once per handle: valid until it is freed
    return 0;
}

int rmig_source_get_postcopy_recovery(const rmig_source* s, struct rmig_postcopy_recovery* out) {
    if (!s || !out) return -1;
    *out = {s->result.postcopy.resumed, s->result.postcopy.broke.c_str()};
    return 0;
}

int rmig_source_cancelled(const rmig_source* s) { return s && s->result.cancelled ? 1 : 0; }

const char* rmig_source_error(const rmig_source* s) {
    return s->error.c_str();
}

rmig_dest* rmig_dest_new(void) {
    auto* d = new (std::nothrow) rmig_dest();
    if (d) d->cfg.stop = d->stop.get_token();
    return d;
}

void rmig_dest_free(rmig_dest* d) {
    delete d;
}

int rmig_dest_add_region(rmig_dest* d, void* host, size_t size, uint64_t gpa, const char* name) {
    return guarded(d->error, [&] { d->cfg.regions.push_back(make_region(host, size, gpa, name, d->cfg.regions.size())); });
}

int rmig_dest_set_uri(rmig_dest* d, const char* listen_uri) {
    return guarded(d->error, [&] {
        if (!listen_uri || !*listen_uri) throw Error("set_uri: empty URI");
        d->cfg.listen_uri = listen_uri;
    });
}

int rmig_dest_set_workers(rmig_dest* d, unsigned workers) {
    return guarded(d->error, [&] {
        if (workers > 64) throw Error(cat("set_workers: ", workers, " is not in 0..64"));
        d->cfg.workers = workers;
    });
}

int rmig_dest_set_timeout_ms(rmig_dest* d, uint64_t session_ms, uint64_t step_ms) {
    return guarded(d->error, [&] {
        if (session_ms) d->cfg.timeout = std::chrono::milliseconds(session_ms);
        if (step_ms) d->cfg.step_timeout = std::chrono::milliseconds(step_ms);
    });
}

int rmig_dest_set_on_listening(rmig_dest* d, void (*fn)(void*, const char*), void* opaque) {
    return guarded(d->error, [&] {
        d->on_listening = fn;
        d->listening_opaque = opaque;
    });
}

int rmig_dest_set_on_round(rmig_dest* d, void (*fn)(void*, unsigned, uint64_t), void* opaque) {
    return guarded(d->error, [&] {
        d->on_round = fn;
        d->round_opaque = opaque;
    });
}

int rmig_dest_set_on_postcopy(rmig_dest* d, void (*start)(void*, const void*, size_t),
                              void (*failed)(void*, const char*), void* opaque) {
    return guarded(d->error, [&] {
        if (!start && failed) throw Error("set_on_postcopy: a failed callback needs a start callback");
        d->postcopy_start = start;
        d->postcopy_failed = failed;
        d->postcopy_opaque = opaque;
    });
}

int rmig_dest_set_postcopy_recover_ms(rmig_dest* d, uint64_t ms) {
    return guarded(d->error, [&] { d->cfg.postcopy_recover = recover_window(ms); });
}

int rmig_dest_set_psk(rmig_dest* d, const void* key, size_t len, const char* identity) {
    return guarded(d->error, [&] { set_psk_bytes(d->security, key, len, identity); });
}

int rmig_dest_set_psk_file(rmig_dest* d, const char* path, const char* identity) {
    return guarded(d->error, [&] { set_psk_file(d->security, path, identity); });
}

int rmig_dest_set_tls(rmig_dest* d, const char* cert_file, const char* key_file, const char* ca_file,
                      const char* peer_name) {
    return guarded(d->error, [&] { set_tls(d->security, cert_file, key_file, ca_file, peer_name); });
}

int rmig_dest_set_encrypt(rmig_dest* d, int encrypt) {
    return guarded(d->error, [&] { d->security.no_encrypt = encrypt == 0; });
}

int rmig_dest_set_insecure_plaintext(rmig_dest* d, int plaintext) {
    return guarded(d->error, [&] { d->security.insecure_plaintext = plaintext != 0; });
}

int rmig_dest_receive(rmig_dest* d) {
    return guarded(d->error, [&] {
        if (d->used) throw Error("receive: a destination handle receives once; make a new one");
        d->used = true;
        if (d->cfg.regions.empty()) throw Error("receive: no regions registered");
        if (d->cfg.listen_uri.empty()) throw Error("receive: no listen URI (rmig_dest_set_uri)");
        d->cfg.security = context_for(d->security, d->cfg.listen_uri, "receive");
        d->cfg.page_size = RMIG_PAGE_SIZE;
        if (d->on_listening)
            d->cfg.on_listening = [d](const std::string& a) { d->on_listening(d->listening_opaque, a.c_str()); };
        if (d->on_round)
            d->cfg.on_round_done = [d](uint64_t round, uint64_t pages) {
                d->on_round(d->round_opaque, static_cast<unsigned>(round), pages);
            };
        // Without a start callback the engine refuses post-copy.
        if (d->postcopy_start) {
            d->cfg.on_postcopy_start = [d](std::span<const std::byte> state) {
                d->postcopy_start(d->postcopy_opaque, state.data(), state.size());
            };
            if (d->postcopy_failed)
                d->cfg.on_postcopy_failed = [d](const std::string& why) {
                    d->postcopy_failed(d->postcopy_opaque, why.c_str());
                };
        }
        auto t0 = Clock::now();
        d->result = receive_memory(d->cfg);
        d->seconds = seconds_between(t0, Clock::now());
        if (!d->result.ok) throw Error(d->result.error);
    });
}

void rmig_dest_cancel(rmig_dest* d) {
    d->stop.request_stop();
}

const void* rmig_dest_device_state(const rmig_dest* d, size_t* len) {
    if (len) *len = d->result.device_state.size();
    return d->result.device_state.data();
}

int rmig_dest_get_stats(const rmig_dest* d, struct rmig_dest_stats* out) {
    if (!out) return -1;
    *out = {};
    out->ok = d->result.ok ? 1 : 0;
    out->rounds = d->result.rounds;
    out->pages_placed = d->result.pages_placed;
    out->device_state_bytes = d->result.device_state.size();
    out->seconds = d->seconds;
    copy_session(out->session, d->result.session);
    return 0;
}

int rmig_dest_get_postcopy(const rmig_dest* d, struct rmig_dest_postcopy* out) {
    if (!d || !out) return -1;
    const DestPostcopy& p = d->result.postcopy;
    *out = {};
    out->switched = p.switched ? 1 : 0;
    out->pending_pages = p.pending_pages;
    out->faults = p.faults;
    out->fetched_pages = p.fetched_pages;
    out->rdma_reads = p.rdma_reads ? 1 : 0;
    out->phase_s = p.phase_s;
    out->fault_p50_us = p.fault_p50_us;
    out->fault_p99_us = p.fault_p99_us;
    out->fault_max_us = p.fault_max_us;
    out->dropped_early_pages = p.dropped_early;
    out->dropped_in_blackout_pages = p.dropped_in_blackout;
    out->drop_early_ms = p.drop_early_ms;
    out->drop_in_blackout_ms = p.drop_in_blackout_ms;
    return 0;
}

int rmig_dest_get_postcopy_recovery(const rmig_dest* d, struct rmig_postcopy_recovery* out) {
    if (!d || !out) return -1;
    *out = {d->result.postcopy.resumed, d->result.postcopy.broke.c_str()};
    return 0;
}

uint64_t rmig_dest_postcopy_pulled_pages(const rmig_dest* d) { return d ? d->result.postcopy.pulled_pages : 0; }

const char* rmig_dest_error(const rmig_dest* d) {
    return d->error.c_str();
}

}  // extern "C"
