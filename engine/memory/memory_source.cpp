#include "engine/memory/memory_source.hpp"

#include <atomic>
#include <bit>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/thread_priority.hpp"
#include "common/units.hpp"
#include "engine/dirty/shard.hpp"
#include "engine/dirty/uffd_wp_source.hpp"
#include "engine/memory/batch_sender.hpp"
#include "engine/memory/postcopy_puller.hpp"
#include "engine/memory/postcopy_wire.hpp"
#include "engine/memory/round_watchdog.hpp"
#include "engine/memory/worker_placement.hpp"
#include "numa/binding.hpp"
#include "engine/pages/zero_page.hpp"
#include "transport/control_channel.hpp"
#include "security/secure_transport.hpp"

namespace rmig::engine {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// Passes that drop stale pages on the destination before the pause, and
// the count of newly dirtied pages below which another pass is not worth it.
constexpr int kDropPasses = 3;
constexpr uint64_t kDropEnough = 1024;

std::vector<DirtyBitmap> copy_of(const std::vector<DirtyBitmap>& from) {
    std::vector<DirtyBitmap> out;
    for (const auto& b : from) out.emplace_back(b.pages(), b.page_size()).merge_from(b);
    return out;
}

void or_into(std::vector<DirtyBitmap>& into, const std::vector<DirtyBitmap>& from) {
    for (size_t i = 0; i < into.size(); ++i) into[i].merge_from(from[i]);
}

// Milliseconds since `mark`, which moves to now.
double ms_since(Clock::time_point& mark) {
    auto now = Clock::now();
    double ms = std::chrono::duration<double, std::milli>(now - mark).count();
    mark = now;
    return ms;
}

// Thrown inside a worker when another worker already failed (or the caller
// cancelled): not the cause.
struct Cancelled {};

constexpr const char* kCancelledByCaller = "migration cancelled by the caller";

// The caller's stop, seen by the migrate thread.
struct CancelledByCaller : Error {
    CancelledByCaller() : Error(kCancelledByCaller) {}
};

struct RoundTotals {
    uint64_t pages = 0, zero = 0, compressed = 0, bytes = 0, one_sided = 0;
};

// One-sided writes are posted in groups of this many pages (the transport
// merges contiguous ones into one work request).
constexpr size_t kWriteGroup = 256;

// The destination's "one_sided" answer: per data channel, per region, where
// that region is exposed to that channel (untrusted input).
std::vector<std::vector<transport::RemoteRegion>> parse_exposed(const json& j, size_t channels,
                                                                const std::vector<Region>& regions) {
    if (!j.is_array() || j.size() != channels)
        throw ProtocolError(cat("layout reply: one_sided must list ", channels, " channels"));
    std::vector<std::vector<transport::RemoteRegion>> out;
    for (const auto& ch : j) {
        if (!ch.is_array() || ch.size() != regions.size())
            throw ProtocolError(cat("layout reply: one_sided must list ", regions.size(), " regions per channel"));
        auto& v = out.emplace_back();
        for (size_t i = 0; i < regions.size(); ++i) {
            const json& r = ch[i];
            if (!r.is_object() || !r.contains("addr") || !r["addr"].is_number_unsigned() ||
                !r.contains("size") || !r["size"].is_number_unsigned() || !r.contains("rkey") ||
                !r["rkey"].is_number_unsigned())
                throw ProtocolError(cat("layout reply: one_sided region ", i, " is malformed"));
            transport::RemoteRegion rr{r["addr"].get<uint64_t>(), r["size"].get<uint64_t>(),
                                       r["rkey"].get<uint32_t>()};
            if (rr.size != regions[i].size)
                throw ProtocolError(cat("layout reply: region '", regions[i].name, "' exposed with ", rr.size,
                                        " bytes, it has ", regions[i].size));
            v.push_back(rr);
        }
    }
    return out;
}

// A worker's staging memory (a page's compressed form): on the
// worker's NUMA node when the placement is applied, plain memory otherwise.
class Staging {
public:
    Staging(int node, size_t bytes) {
        if (node >= 0) {
            on_node_ = numa::NodeBuffer(bytes, node);
        } else {
            plain_.resize(bytes);
        }
    }
    std::span<std::byte> bytes() {
        if (on_node_.data()) return {static_cast<std::byte*>(on_node_.data()), on_node_.size()};
        return plain_;
    }

private:
    numa::NodeBuffer on_node_;
    std::vector<std::byte> plain_;
};

class SourceSession {
public:
    explicit SourceSession(const MemorySourceConfig& c)
        : cfg_(c), ps_(c.page_size), cancel_deadline_([this] { shutdown_all(); }),
          watchdog_([this] { shutdown_all(); }) {}

    ~SourceSession() {
        stop_tracking();
        shutdown_all();
        if (server_.joinable()) server_.join();
    }

    MemorySourceResult run() {
        const auto t0 = Clock::now();
        // Runs on the cancelling thread (or right here if the stop came
        // first): only flags and a deadline, never a channel operation.
        std::stop_callback on_stop(cfg_.stop, [this] { request_cancel(); });
        try {
            migrate();
            result_.ok = true;
        } catch (const LinkError& e) {
            fail(cat("lost the destination: ", e.what()));
        } catch (const std::exception& e) {
            fail(e.what());
        }
        result_.seconds = seconds_since(t0);
        return result_;
    }

private:
    void migrate() {
        if (!cfg_.pause) throw Error("memory source: no pause callback");
        if (cfg_.workers == 0 || cfg_.workers > 64) throw Error("memory source: workers must be 1..64");
        validate_regions(cfg_.regions, ps_);
        throw_if_cancelled();  // nothing connected yet: the destination keeps waiting for a source
        // Not checked between connects: the destination reads its control
        // channel (and so the abort) only once every data channel is in.
        open_channels();
        throw_if_cancelled();
        if (cfg_.numa) {
            // The configured NIC, else the device the channels run on (rdma).
            placement_ = place_workers(cfg_.nic.empty() ? data_[0]->local_device() : cfg_.nic, cfg_.regions,
                                       cfg_.workers);
            result_.placement = placement_.summary();
        } else {
            result_.placement = "off";
        }
        for (unsigned w = 0; w < cfg_.workers; ++w) staging_.emplace_back(placement_.node_of(w), ps_);
        watchdog_.arm(cfg_.step_timeout, "layout exchange");
        exchange_layout();
        watchdog_.disarm();
        if (cfg_.postcopy.enabled) expose_for_reads();
        throw_if_cancelled();
        set_up_tracking();

        ConvergenceConfig cc = cfg_.convergence;
        cc.page_size = ps_;
        // Post-copy switching by itself replaces the throttle: the policy's
        // wish to throttle is the sign that pre-copy will not fit the budget.
        const bool postcopy_auto = cfg_.postcopy.enabled && cfg_.postcopy.after_rounds == 0;
        bool wants_throttle = false;
        unsigned applied_throttle = 0;
        uint64_t round = 0;
        ThrottleCallback throttle = cfg_.throttle;
        // A forced switch after its round: the guest is paused next, so a
        // throttle then would only mislead the report.
        if (postcopy_auto || (cfg_.postcopy.enabled && cfg_.throttle))
            throttle = [&](unsigned percent) {
                const bool last = !postcopy_auto && round + 1 >= cfg_.postcopy.after_rounds;
                if (postcopy_auto || last)
                    wants_throttle = true;
                else if (cfg_.throttle) {
                    cfg_.throttle(percent);
                    applied_throttle = percent;
                }
            };
        ConvergencePolicy policy(cc, throttle);
        uint64_t guest_pages = 0;
        for (const Region& r : cfg_.regions) guest_pages += r.size / ps_;
        for (auto& s : snapshots_) s.fill();  // round 0: every page

        std::string postcopy_reason;
        for (;; ++round) {
            throw_if_cancelled();
            auto t = Clock::now();
            uint64_t dirty = 0;
            RoundTotals sent = send_round(round, [&] { dirty = collect(false); });
            double secs = seconds_since(t);
            Decision d = policy.on_round({sent.bytes, secs, dirty, dirty * ps_, guest_pages});
            if (cfg_.postcopy.enabled) {
                // A count given is forced, even where pre-copy would switch over.
                if (!postcopy_auto && round + 1 >= cfg_.postcopy.after_rounds) {
                    postcopy_reason = cat("after ", round + 1, round == 0 ? " round" : " rounds");
                } else if (d.action == Action::give_up) {
                    postcopy_reason = cat("pre-copy gave up: ", d.reason);
                } else if (postcopy_auto && wants_throttle) {
                    postcopy_reason = cat("pre-copy would not fit the ", cc.downtime_budget_ms,
                                          " ms budget: it would need the guest throttled (",
                                          dirty, " pages dirtied in a ", format_millis(secs * 1000), " round)");
                }
                if (!postcopy_reason.empty()) {
                    d.action = Action::postcopy;
                    d.reason = postcopy_reason;
                    d.throttle_percent = applied_throttle;  // the policy's last step was not applied
                }
            }
            result_.last_decision = d.reason;
            if (cfg_.on_decision) cfg_.on_decision(d);
            if (d.action == Action::postcopy) {
                run_postcopy(postcopy_reason);
                return;
            }
            if (d.action == Action::switchover) break;
            if (d.action == Action::give_up) throw Error(cat("not converging: ", d.reason));
        }

        // Switchover: from here the guest is stopped and the clock is downtime.
        throw_if_cancelled();  // not paused yet: nothing to resume
        const auto paused_at = Clock::now();
        auto mark = paused_at;
        SwitchoverTimes& sw = result_.switchover;
        result_.paused = true;
        std::vector<std::byte> blob = cfg_.pause();
        sw.pause_ms = ms_since(mark);
        throw_if_cancelled();  // fail() resumes the guest
        if (blob.size() > kMaxDeviceState)
            throw Error(cat("device state of ", blob.size(), " bytes exceeds the ", kMaxDeviceState,
                            "-byte limit"));
        sw.final_pages = collect(true);  // what was dirtied since the last collect, on top of its unsent set
        sw.collect_ms = ms_since(mark);
        // The device state follows the final round_end at once: the
        // destination reads it after placing the round, so sending it
        // overlaps the placing and saves waiting for round_done first.
        send_round(result_.rounds, [&] {
            sw.final_round_ms = ms_since(mark);
            send_device_state(blob);
            sw.device_state_ms = ms_since(mark);
        });
        sw.placed_ms = ms_since(mark);
        watchdog_.arm(cfg_.step_timeout, "device state and confirmation");
        json reply = transport::recv_message(*control_);
        if (!reply.value("ok", false) || reply.value("op", "") != "confirm")
            throw Error(cat("destination did not confirm: ",
                            reply.value("error", std::string("unexpected reply ") + reply.dump())));
        watchdog_.disarm();
        sw.confirm_ms = ms_since(mark);
        result_.downtime_ms = seconds_since(paused_at) * 1000.0;
        log::info(cat("switchover ", result_.downtime_ms, " ms: pause ", sw.pause_ms, ", collect ", sw.collect_ms,
                      " (", sw.final_pages, " pages), final round ", sw.final_round_ms, ", device state ",
                      sw.device_state_ms, ", placed ", sw.placed_ms, ", confirm ", sw.confirm_ms));
        stop_tracking();
        // Confirmed: the destination owns the guest now. Ending the channels
        // is a courtesy; a failure here changes nothing.
        try {
            for (auto& ch : data_) ch->send(wire::FrameType::end, {});
            control_->send(wire::FrameType::end, {});
        } catch (const std::exception&) {
        }
    }

    // ---- post-copy (docs/memory-mode.md, "Post-copy") ----

    // Over a transport with one-sided reads the destination reads faulted
    // pages straight from our regions, exposed on the first data channel
    // (the control channel is always sealed where there is security; data
    // channels are plain unless encrypted) before tracking starts
    // (registering pins pages, see exchange_layout).
    void expose_for_reads() {
        transport::OneSided* os = data_[0]->one_sided();
        if (!os || !os->can_read()) return;
        for (const auto& r : cfg_.regions) read_regions_.push_back(os->expose_for_read(r.base, r.size));
        if (cfg_.postcopy.pull) pull_regions_ = expose_for_pull(data_, cfg_.regions, read_regions_);
    }

    // The switch: the guest paused, the pending set and the device state
    // sent, the guest started on the destination (the downtime ends there);
    // then the pending pages go as one more round while a server thread
    // answers the destination's requests for faulted pages first.
    void run_postcopy(const std::string& reason) {
        throw_if_cancelled();  // not paused yet: nothing to resume
        SourcePostcopy& pc = result_.postcopy;
        pc.reason = reason;
        // The pages known stale now (this round's dirty set) are dropped on
        // the destination while our guest still runs: dropping costs a call
        // per run of pages, so the blackout should only drop what is dirtied
        // after the last of these passes. A pass sends what the guest dirtied
        // during the one before, until that is little.
        std::vector<DirtyBitmap> dropped;
        for (const auto& s : snapshots_) dropped.emplace_back(s.pages(), ps_);
        std::vector<DirtyBitmap> fresh = copy_of(snapshots_);
        for (int pass = 0;; ++pass) {
            watchdog_.arm(cfg_.step_timeout, "preparing post-copy");
            const std::vector<std::byte> stale = encode_pending(fresh);
            transport::send_message(*control_, {{"op", "postcopy_prepare"}, {"bitmap_bytes", stale.size()}});
            send_pieces(stale, false);
            json reply = transport::recv_message(*control_);
            if (!reply.value("ok", false))
                throw Error(cat("destination refused post-copy: ", reply.value("error", std::string("no reason given"))));
            if (reply.value("op", "") != "postcopy_prepared")
                throw ProtocolError(cat("expected postcopy_prepared, got ", reply.dump()));
            watchdog_.disarm();
            throw_if_cancelled();
            or_into(dropped, fresh);
            if (pass + 1 == kDropPasses) break;
            // What the guest dirtied meanwhile, less what is dropped already.
            collect(false);
            uint64_t more = 0;
            for (size_t i = 0; i < snapshots_.size(); ++i) {
                fresh[i].clear_all();
                snapshots_[i].for_each_set(0, snapshots_[i].pages(), [&](size_t p) {
                    if (!dropped[i].test(p)) fresh[i].set(p);
                });
                more += fresh[i].count();
            }
            if (more < kDropEnough) break;
        }
        // Pending from here: whatever was dropped, and all dirtied since.
        or_into(snapshots_, dropped);
        SwitchoverTimes& sw = result_.switchover;
        const auto paused_at = Clock::now();
        auto mark = paused_at;
        result_.paused = true;
        std::vector<std::byte> blob = cfg_.pause();
        sw.pause_ms = ms_since(mark);
        throw_if_cancelled();
        if (blob.size() > kMaxDeviceState)
            throw Error(cat("device state of ", blob.size(), " bytes exceeds the ", kMaxDeviceState,
                            "-byte limit"));
        pc.pending_pages = collect(true);
        sw.collect_ms = ms_since(mark);
        const std::vector<std::byte> pending = encode_pending(snapshots_);
        json req = {{"op", "postcopy"},     {"round", result_.rounds},      {"pending", pc.pending_pages},
                    {"bitmap_bytes", pending.size()}, {"device_state", blob.size()}};
        if (!read_regions_.empty()) req["reads"] = read_regions_to_json(read_regions_);
        if (!pull_regions_.empty()) req["pull"] = pull_offer_to_json(pull_regions_);
        log::info(cat("switching to post-copy (", reason, "): ", pc.pending_pages, " pages pending"));
        for (const auto& r : cfg_.regions) served_.emplace_back(r.size / ps_, ps_);
        watchdog_.arm(cfg_.step_timeout, "the switch to post-copy");
        transport::send_message(*control_, req);
        send_pieces(pending, false);
        // The guest may fault before its start is confirmed: requests are
        // served from the moment the destination can send them.
        server_ = std::thread([this] { serve_postcopy(); });
        switching_to_postcopy_ = true;  // commit() marks the switch as sent
        send_pieces(blob, true);
        sw.device_state_ms = ms_since(mark);
        json reply = await_reply();
        if (!reply.value("ok", false)) {
            postcopy_sent_ = false;  // refused: it runs nothing
            throw Error(cat("destination refused post-copy: ", reply.value("error", std::string("no reason given"))));
        }
        if (reply.value("op", "") != "postcopy_started")
            throw ProtocolError(cat("expected postcopy_started, got ", reply.dump()));
        watchdog_.disarm();
        postcopy_started_ = true;
        sw.confirm_ms = ms_since(mark);
        result_.downtime_ms = seconds_since(paused_at) * 1000.0;
        pc.switched = true;
        pc.rdma_reads = reply.value("rdma_reads", false);
        // The destination took the pull: it reads every pending page itself,
        // so the push round carries only its barriers.
        if (reply.value("pull", false) && !pull_regions_.empty()) {
            pc.pulled = true;
            for (auto& s : snapshots_) s.clear_all();
        }
        log::info(cat("post-copy: the guest runs on the destination after a ", result_.downtime_ms,
                      " ms blackout; ", pc.pulled ? "it pulls " : "pushing ", pc.pending_pages, " pages"));
        stop_tracking();  // the guest is paused for good; after the blackout, as it takes a while (uffd-wp)

        const auto phase_t0 = Clock::now();
        postcopy_phase_ = true;
        // The guest runs on the destination: the push may take as long as
        // its pages need at a slow link's pace (1 MiB/s), on top of a step;
        // a stalled one is ended by the destination's progress watch and by
        // the transport's dead-peer timeout long before.
        round_timeout_ = cfg_.step_timeout + std::chrono::milliseconds(pc.pending_pages * ps_ / 1024 / 1024 * 1000);
        RoundTotals pushed;
        for (;;) {
            try {
                pushed = send_round(result_.rounds, [] {});
                server_.join();
                break;
            } catch (const LinkError& e) {
                // The guest runs on the destination and waits for its pages:
                // a lost link is resumed rather than failed, while the window
                // allows (a refusal or an abort is final).
                if (cfg_.postcopy.recover.count() <= 0) throw;
                resume_postcopy(e.what());
            }
        }
        pc.phase_s = seconds_since(phase_t0);
        pc.pushed_bytes = pushed.bytes;
        pc.served_pages = served_count_.load();
        log::info(cat("post-copy done in ", pc.phase_s, " s: ", pushed.pages, " pages pushed, ", pc.served_pages,
                      " served on request"));
        try {
            for (auto& ch : data_) ch->send(wire::FrameType::end, {});
            control_->send(wire::FrameType::end, {});
        } catch (const std::exception&) {
        }
    }

    // After a lost link in the push: new channels to the same session (the
    // destination keeps listening for it), its bitmap of the pages still
    // missing, and the push starts over with those, the server thread
    // answering requests again. Tries every half second until the recovery
    // window is over (docs/postcopy.md, "Memory mode: recovery").
    void resume_postcopy(const std::string& why) {
        SourcePostcopy& pc = result_.postcopy;
        if (pc.broke.empty()) pc.broke = why;
        watchdog_.disarm();
        shutdown_all();
        if (server_.joinable()) server_.join();
        {
            std::lock_guard lock(reply_mu_);
            // The server read something final (the destination's abort, a
            // protocol error) before the channels broke: no resuming that.
            if (replied_ && !reply_error_.empty() && !reply_link_lost_) throw Error(reply_error_);
            replied_ = false;
            reply_error_.clear();
            reply_link_lost_ = false;
        }
        const auto window = cfg_.postcopy.recover;
        const auto until = Clock::now() + window;
        log::warn(cat("post-copy: lost the destination (", why, "); the guest runs there and its faults wait; "
                      "reconnecting for up to ", window.count(), " ms"));
        std::string last = why;
        for (unsigned attempt = 1;; ++attempt) {
            drop_channels();
            if (Clock::now() >= until)
                throw Error(cat("post-copy: the destination could not be reached again within the ", window.count(),
                                " ms recovery window (", attempt - 1, " attempts; lost: ", pc.broke, "; last: ", last,
                                ")"));
            if (attempt > 1) std::this_thread::sleep_for(std::chrono::milliseconds(500));
            try {
                open_channels();
            } catch (const std::exception& e) {
                last = e.what();
                continue;
            }
            try {
                watchdog_.arm(cfg_.step_timeout, "resuming post-copy");
                read_regions_.clear();
                pull_regions_.clear();
                expose_for_reads();
                json req = {{"op", "postcopy_resume"}, {"round", result_.rounds}};
                if (!read_regions_.empty()) req["reads"] = read_regions_to_json(read_regions_);
                if (!pull_regions_.empty()) req["pull"] = pull_offer_to_json(pull_regions_);
                json reply = transport::request(*control_, req);
                if (reply.value("op", "") != "postcopy_resumed")
                    throw ProtocolError(cat("expected postcopy_resumed, got ", reply.dump()));
                const uint64_t announced = reply.value("bitmap_bytes", uint64_t{0});
                if (announced != pending_bytes(cfg_.regions, ps_))
                    throw ProtocolError(cat("post-copy: a missing-page bitmap of ", announced,
                                            " bytes announced, our regions need ", pending_bytes(cfg_.regions, ps_)));
                std::vector<std::byte> bitmap(announced);
                transport::recv_pieces(*control_, bitmap, "the missing-page bitmap", "destination");
                snapshots_ = decode_pending(bitmap, cfg_.regions, ps_);
                uint64_t missing = 0;
                for (const auto& b : snapshots_) missing += b.count();
                if (missing != reply.value("missing", ~uint64_t{0}))
                    throw ProtocolError(cat("post-copy: ", reply.value("missing", ~uint64_t{0}),
                                            " missing pages announced, the bitmap has ", missing));
                // The destination pulls them itself again: the push is only its barriers.
                const bool pulls = reply.value("pull", false) && !pull_regions_.empty();
                if (pulls)
                    for (auto& b : snapshots_) b.clear_all();
                watchdog_.disarm();
                for (auto& b : served_) b.clear_all();
                server_ = std::thread([this] { serve_postcopy(); });
                ++pc.resumed;
                log::info(cat("post-copy resumed (attempt ", attempt, "): ", missing, " pages still missing",
                              pulls ? " (the destination reads them)" : ""));
                return;
            } catch (const LinkError& e) {
                watchdog_.disarm();
                shutdown_all();
                last = e.what();
            }
        }
    }

    void drop_channels() {
        std::lock_guard lock(channels_mu_);
        control_.reset();
        data_.clear();
    }

    // Post-copy's reader of the control channel: page requests are answered
    // at once on the control channel itself (never behind the push on the
    // data channels); other messages are replies for the migrate thread:
    // postcopy_started, then the push round's round_done (or a refusal),
    // the last of the phase.
    void serve_postcopy() {
        raise_priority();  // the destination's guest waits on every page this thread serves
        try {
            std::vector<std::byte> buf;
            PageBatchEncoder enc(std::min(kDefaultBatchBudget, control_->max_frame_payload()));
            for (;;) {
                auto type = control_->recv(buf);
                std::string text(reinterpret_cast<const char*>(buf.data()), buf.size());
                if (type == wire::FrameType::abort) throw Error(cat("destination aborted: ", text));
                if (type != wire::FrameType::control)
                    throw ProtocolError(cat("post-copy: unexpected ", wire::to_string(type),
                                            " frame on the control channel"));
                json m = json::parse(text, nullptr, false);
                if (!m.is_object()) throw ProtocolError(cat("post-copy: malformed message ", text));
                if (m.value("op", "") == "fetch") {
                    serve_fetch(parse_fetch(m, cfg_.regions, ps_), enc);
                    continue;
                }
                const bool started = m.value("ok", false) && m.value("op", "") == "postcopy_started";
                deliver_reply(std::move(m), {}, false);
                if (!started) return;
            }
        } catch (const std::exception& e) {
            deliver_reply({}, e.what(), dynamic_cast<const LinkError*>(&e) != nullptr);
        }
    }

    void serve_fetch(const Fetch& f, PageBatchEncoder& enc) {
        auto* base = static_cast<const std::byte*>(cfg_.regions[f.region].base);
        auto send = [&] {
            auto bytes = enc.finish();
            {
                std::lock_guard lock(control_send_mu_);
                control_->send(wire::FrameType::data, bytes);
            }
            enc.reset(f.region);
        };
        enc.reset(f.region);
        for (uint64_t p : f.pages) {
            std::span<const std::byte> page(base + p * ps_, ps_);
            const bool zero = is_zero_page(page.data(), ps_);
            const PageKind kind = zero ? PageKind::zero : PageKind::raw;
            if (!enc.add(p, kind, zero ? std::span<const std::byte>() : page)) {
                send();
                enc.add(p, kind, zero ? std::span<const std::byte>() : page);
            }
        }
        if (!enc.empty()) send();
        // Marked after it went out: a push that skips a served page does so
        // behind it on the control channel, so round_end follows it there.
        for (uint64_t p : f.pages)
            if (!served_[f.region].test(p)) {
                served_[f.region].set(p);
                ++served_count_;
            }
        if (!f.pages.empty()) push_near(f.region, f.pages.back() + 1);
    }

    void deliver_reply(json m, std::string error, bool link_lost) {
        {
            std::lock_guard lock(reply_mu_);
            reply_ = std::move(m);
            reply_error_ = std::move(error);
            reply_link_lost_ = link_lost;
            replied_ = true;
        }
        reply_cv_.notify_all();
    }

    // The reply to round_end in post-copy, from the server thread. Bounded by
    // the round's watchdog: it shuts the channel, which ends the server.
    json await_reply() {
        std::unique_lock lock(reply_mu_);
        reply_cv_.wait(lock, [&] { return replied_; });
        replied_ = false;
        if (!reply_error_.empty()) {
            if (reply_link_lost_) throw LinkError(reply_error_);
            throw Error(reply_error_);
        }
        return reply_;
    }

    void send_control(const json& msg) {
        std::lock_guard lock(control_send_mu_);
        transport::send_message(*control_, msg);
    }

    // `bytes` as DATA frames of at most one batch each (an empty one is one
    // empty frame). With `commit_last`, the commit point comes before the
    // last piece: from there a cancel is too late.
    void send_pieces(std::span<const std::byte> bytes, bool commit_last) {
        const size_t piece = std::min(control_->max_frame_payload(), kDefaultBatchBudget);
        size_t at = 0;
        do {
            size_t n = std::min(piece, bytes.size() - at);
            if (commit_last && at + n == bytes.size()) {
                commit();
            } else {
                throw_if_cancelled();
            }
            {
                std::lock_guard lock(control_send_mu_);
                control_->send(wire::FrameType::data, bytes.subspan(at, n));
            }
            at += n;
        } while (at < bytes.size());
    }

    // {"op": "device_state", "bytes": N}, then the blob in pieces of at most
    // one batch, so it is not bound by the frame limit and the destination
    // copies while the rest arrives.
    void send_device_state(std::span<const std::byte> blob) {
        transport::send_message(*control_, {{"op", "device_state"}, {"bytes", blob.size()}});
        send_pieces(blob, true);  // the last piece: the destination may confirm from then on
    }

    // One channel. A connection the destination's listener dropped before
    // answering (its admission bounds under a flood drop the oldest of the
    // busiest address, which can be ours: docs/security.md) is tried again a
    // few times; a refusal or a failed authentication is not.
    std::unique_ptr<transport::Channel> connect_channel(const wire::Hello& h) {
        constexpr int kTries = 8;
        for (int attempt = 1;; ++attempt) {
            try {
                return security::connect(cfg_.dest_uri, h, cfg_.transport, cfg_.security);
            } catch (const LinkError& e) {
                if (attempt == kTries) throw;
                log::warn(cat("connecting to ", cfg_.dest_uri, " (try ", attempt, " of ", kTries, "): ", e.what()));
                std::this_thread::sleep_for(std::chrono::milliseconds(50 * attempt));
            }
        }
    }

    // The session's channels; a resumed post-copy opens new ones for the
    // same session id, which is how the destination knows them.
    void open_channels() {
        if (!session_) {
            session_ = wire::random_session_id();
            result_.session = wire::to_hex(*session_);
        }
        wire::Hello h;
        h.role = wire::Role::source;
        h.session = *session_;
        h.channel_count = cfg_.workers;
        h.kind = wire::ChannelKind::control;
        h.channel_id = 0;
        auto control = connect_channel(h);
        {
            std::lock_guard lock(channels_mu_);
            control_ = std::move(control);
        }
        h.kind = wire::ChannelKind::data;
        for (uint32_t i = 1; i <= cfg_.workers; ++i) {
            h.channel_id = i;
            auto ch = connect_channel(h);
            std::lock_guard lock(channels_mu_);
            data_.push_back(std::move(ch));
        }
    }

    // Sends our layout; over a transport with one-sided writes (and no codec)
    // asks the destination to expose its regions, and registers ours on every
    // data channel before tracking starts (registering pins pages for writing,
    // which would trip userfaultfd write-protect if done later).
    void exchange_layout() {
        bool capable = cfg_.one_sided;
        for (auto& ch : data_) capable = capable && ch->one_sided() != nullptr;
        const bool want = capable && cfg_.codec == Codec::none;
        json req = {{"op", "layout"}, {"layout", layout_to_json(cfg_.regions, ps_)}};
        if (want) req["one_sided"] = true;
        // A destination that cannot take post-copy says so now, not at the switch.
        if (cfg_.postcopy.enabled) req["postcopy"] = true;
        json reply = transport::request(*control_, req);
        result_.page_path = "page batches";
        if (capable && !want)
            result_.page_path = cat("page batches (", to_string(cfg_.codec),
                                    " compression needs the receiver: no one-sided writes)");
        if (!want) return;
        if (!reply.contains("one_sided")) {
            result_.page_path = "page batches (the destination did not expose its memory)";
            return;
        }
        remote_ = parse_exposed(reply["one_sided"], data_.size(), cfg_.regions);
        for (auto& ch : data_)
            for (const auto& r : cfg_.regions) ch->one_sided()->register_local(r.base, r.size);
        one_sided_ = true;
        result_.page_path = "one-sided writes (rdma, or dpdk write records), zero pages as markers";
    }

    void set_up_tracking() {
        const auto n = cfg_.regions.size();
        if (cfg_.dirty_log == DirtyLog::caller) {
            if (cfg_.caller_sources.size() != n)
                throw Error(cat("memory source: ", cfg_.caller_sources.size(),
                                " caller dirty sources for ", n, " regions"));
            for (auto* s : cfg_.caller_sources) {
                if (!s) throw Error("memory source: null caller dirty source");
                sources_.push_back(s);
            }
        } else {
            for (const auto& r : cfg_.regions) {
                owned_.push_back(std::make_unique<UffdWpSource>(r.base, r.size));
                if (owned_.back()->page_size() != ps_)
                    throw Error(cat("memory source: uffd tracks ", owned_.back()->page_size(),
                                    "-byte pages, configured page size is ", ps_));
                sources_.push_back(owned_.back().get());
            }
        }
        for (const auto& r : cfg_.regions) {
            snapshots_.emplace_back(r.size / ps_, ps_);
            scratch_.emplace_back(r.size / ps_, ps_);
        }
        // Tracking starts before round 0 reads anything, so a write during the
        // full round is caught by the next one.
        tracking_ = true;
        for (auto* s : sources_) s->start();
    }

    // Replaces the snapshots with what was dirtied since the previous collect;
    // the `final` one (guest paused) adds to them instead, as they still hold
    // the set the policy judged but no round sent. Returns the dirty pages.
    uint64_t collect(bool final) {
        uint64_t total = 0;
        for (size_t i = 0; i < sources_.size(); ++i) {
            if (!final) {
                sources_[i]->collect(snapshots_[i]);
            } else {
                sources_[i]->collect_final(scratch_[i]);
                snapshots_[i].merge_from(scratch_[i]);
            }
            total += snapshots_[i].count();
        }
        return total;
    }

    void stop_tracking() {
        if (!tracking_) return;
        tracking_ = false;
        for (auto* s : sources_) {
            try {
                s->stop();
            } catch (const std::exception&) {
            }
        }
    }

    // `meanwhile` runs between round_end and round_done, while the
    // destination finishes placing the round. Pre-copy rounds collect the
    // next dirty set there: the workers have read every page by then, so a
    // write after the collect is caught by the next one, and the next
    // round's first read still waits for round_done.
    template <class Meanwhile>
    RoundTotals send_round(uint64_t round, Meanwhile&& meanwhile) {
        watchdog_.arm(round_timeout_.value_or(cfg_.step_timeout), cat("round ", round));
        const unsigned k = cfg_.workers;
        std::vector<std::vector<PageRange>> shards;
        // Equal dirty counts per worker, not equal page ranges: a hot set in
        // one area would otherwise leave one worker with the whole round.
        for (const auto& s : snapshots_) shards.push_back(balance_by_dirty_count(s, 0, s.pages(), k));
        if (postcopy_phase_) {
            // Where each worker pushes: a fault's page names the worker that
            // moves its push there (serve_fetch).
            std::lock_guard lock(push_mu_);
            push_shards_ = shards;
            pushed_.clear();
            for (const auto& r : cfg_.regions) pushed_.emplace_back(r.size / ps_, ps_);
            push_hint_ = std::make_unique<std::atomic<uint64_t>[]>(k);
            for (unsigned w = 0; w < k; ++w) push_hint_[w] = kNoHint;
        }
        if (encoders_.empty())
            for (unsigned w = 0; w < k; ++w) {
                // A batch must arrive as one frame (rdma: one ring slot).
                const size_t budget = std::min(cfg_.batch_budget, data_[w]->max_frame_payload());
                encoders_.emplace_back(budget);
                builders_.emplace_back(ps_, budget);
                batch_bufs_.emplace_back();
                compressors_.emplace_back(cfg_.codec, cfg_.codec_level);
            }

        std::vector<RoundTotals> totals(k);
        std::mutex err_mu;
        std::string first_error;
        bool link_lost = false;  // the first error was the peer going away
        std::atomic<bool> cancel{false};
        std::vector<std::thread> threads;
        for (unsigned w = 0; w < k; ++w)
            threads.emplace_back([&, w] {
                try {
                    pin_worker(placement_, w);
                    totals[w] = send_shard(round, w, shards, cancel);
                } catch (const Cancelled&) {
                } catch (const std::exception& e) {
                    std::lock_guard lock(err_mu);
                    if (first_error.empty()) {
                        first_error = cat("worker ", w, ": ", e.what());
                        link_lost = dynamic_cast<const LinkError*>(&e) != nullptr;
                    }
                    cancel = true;
                }
            });
        for (auto& t : threads) t.join();
        // Workers stopped by the caller's cancel, or failing because its
        // deadline shut the channels: the cancel is the cause.
        throw_if_cancelled();
        if (!first_error.empty()) {
            if (link_lost) throw LinkError(first_error);
            throw Error(first_error);
        }

        RoundTotals sum;
        for (const auto& t : totals) {
            sum.pages += t.pages;
            sum.zero += t.zero;
            sum.compressed += t.compressed;
            sum.bytes += t.bytes;
            sum.one_sided += t.one_sided;
        }
        send_control({{"op", "round_end"}, {"round", round}, {"pages", sum.pages}});
        meanwhile();
        json reply = postcopy_phase_ ? await_reply() : transport::recv_message(*control_);
        if (!reply.value("ok", false))
            throw Error(cat("destination refused 'round_end': ", reply.value("error", std::string("no reason given"))));
        if (reply.value("op", "") != "round_done" || reply.value("round", ~uint64_t{0}) != round)
            throw ProtocolError(cat("expected round_done for round ", round, ", got ", reply.dump()));
        watchdog_.disarm();
        result_.rounds = static_cast<unsigned>(round + 1);
        result_.pages_sent += sum.pages;
        result_.zero_pages += sum.zero;
        result_.compressed_pages += sum.compressed;
        result_.bytes_sent += sum.bytes;
        result_.one_sided_pages += sum.one_sided;
        return sum;
    }

    // One worker: its shard of every region, as batches on its own channel,
    // then the barrier that tells the destination the shard is complete.
    RoundTotals send_shard(uint64_t round, unsigned w, const std::vector<std::vector<PageRange>>& shards,
                           const std::atomic<bool>& cancel) {
        // Post-copy's push goes as batches: the destination places each page
        // atomically (UFFDIO_COPY), which a one-sided write cannot do.
        if (one_sided_ && !postcopy_phase_) return write_shard(round, w, shards, cancel);
        transport::Channel& ch = *data_[w];
        PageBatchBuilder& b = builders_[w];
        Compressor& comp = compressors_[w];
        const PageKind ckind = cfg_.codec == Codec::lz4 ? PageKind::lz4 : PageKind::zstd;
        std::span<std::byte> packed = staging_[w].bytes().first(ps_);
        RoundTotals t;
        // Pipelined: a sender thread puts finished batches on the wire while
        // this thread builds the next ones (scan, copy, classify, compress).
        std::optional<BatchSender> sender;
        if (cfg_.pipeline_depth > 0) sender.emplace(ch, cfg_.pipeline_depth);
        std::vector<std::byte>& own = batch_bufs_[w];  // without a sender
        std::vector<std::byte> buf;
        auto begin = [&](uint32_t region) {
            buf = sender ? sender->buffer() : std::move(own);
            b.start(buf, region);
        };
        auto flush = [&] {
            const size_t n = b.finish();
            t.bytes += n;
            if (sender) {
                sender->push(std::move(buf), n);
            } else {
                ch.send(wire::FrameType::data, std::span(buf).first(n));
                own = std::move(buf);
            }
        };
        for (uint32_t ri = 0; ri < snapshots_.size(); ++ri) {
            if (w >= shards[ri].size()) continue;
            auto* base = static_cast<const std::byte*>(cfg_.regions[ri].base);
            bool open = false;  // a batch was started (on the region's first page)
            auto each = [&](auto&& fn) {
                if (postcopy_phase_)
                    for_each_pending_near_faults(ri, w, shards[ri][w].begin, shards[ri][w].end, fn);
                else
                    snapshots_[ri].for_each_set(shards[ri][w].begin, shards[ri][w].end, fn);
            };
            each([&](size_t p) {
                if (stopping(cancel)) throw Cancelled{};
                if (open && b.full()) {
                    flush();
                    open = false;
                }
                if (!open) {
                    begin(ri);
                    open = true;
                }
                // The page's one copy, straight into its place in the batch:
                // the guest may be writing it right now, and classification,
                // compression and the payload must all see the same bytes (a
                // racing write is caught by the next round).
                std::span<std::byte> slot = b.slot();
                std::memcpy(slot.data(), base + p * ps_, ps_);
                if (is_zero_page(slot.data(), ps_)) {
                    b.commit(p, PageKind::zero, 0);
                    ++t.zero;
                } else if (size_t n = cfg_.codec != Codec::none ? comp.compress(slot, packed) : 0; n > 0) {
                    std::memcpy(slot.data(), packed.data(), n);
                    b.commit(p, ckind, n);
                    ++t.compressed;
                } else {
                    b.commit(p, PageKind::raw, ps_);
                }
                ++t.pages;
            });
            if (open) flush();
        }
        if (sender) sender->drain();  // the barrier follows every batch
        transport::send_message(ch, {{"op", "barrier"}, {"round", round}, {"pages", t.pages}});
        return t;
    }

    // The post-copy push of one worker's shard [begin, end) of region `ri`:
    // the pending pages not sent on request, in order, except that after a
    // fault (serve_fetch's hint) it goes on right after the faulted page,
    // where the guest is likely to touch next, and comes back for what it
    // skipped afterwards (QEMU moves its post-copy push the same way).
    template <class Fn>
    void for_each_pending_near_faults(uint32_t ri, unsigned w, size_t begin, size_t end, Fn&& fn) {
        const DirtyBitmap& pending = snapshots_[ri];
        DirtyBitmap& pushed = pushed_[ri];  // this worker's range only
        const DirtyBitmap& served = served_[ri];
        size_t cursor = begin;
        bool whole = true;  // this pass started at `begin` and never jumped
        for (;;) {
            if (uint64_t h = push_hint_[w].exchange(kNoHint, std::memory_order_relaxed); h != kNoHint) {
                const size_t page = h & kHintPageMask;
                if ((h >> 48) == ri && page >= begin && page < end) {
                    cursor = page;
                    whole = false;
                }
            }
            size_t p = end;
            // The next page pending, not pushed, not served, from the cursor.
            for (size_t wi = cursor / 64; wi * 64 < end; ++wi) {
                uint64_t bits = pending.word(wi) & ~pushed.word(wi) & ~served.word(wi);
                if (wi == cursor / 64) bits &= ~uint64_t{0} << (cursor % 64);
                if (bits) {
                    p = wi * 64 + static_cast<size_t>(std::countr_zero(bits));
                    break;
                }
            }
            if (p >= end) {
                if (whole) return;
                cursor = begin;  // back for what a jump skipped
                whole = true;
                continue;
            }
            pushed.set(p);
            cursor = p + 1;
            fn(p);
        }
    }

    // After serving a fault on `page` of `region`: the worker pushing that
    // area goes on from the next page.
    void push_near(uint32_t region, uint64_t page) {
        std::lock_guard lock(push_mu_);
        if (!push_hint_ || region >= push_shards_.size()) return;
        const auto& ranges = push_shards_[region];
        for (size_t w = 0; w < ranges.size(); ++w)
            if (page >= ranges[w].begin && page < ranges[w].end) {
                push_hint_[w].store((uint64_t{region} << 48) | page, std::memory_order_relaxed);
                return;
            }
    }

    // The one-sided variant: non-zero pages are RDMA-written from the region
    // straight into the destination's region (no copy: a page the guest
    // changes meanwhile is dirty again and goes in the next round); zero pages
    // travel as markers in page batches. flush() before the barrier: once it
    // returns every write of this round has landed, and the barrier frame
    // follows them, so round_done covers the written pages too.
    RoundTotals write_shard(uint64_t round, unsigned w, const std::vector<std::vector<PageRange>>& shards,
                            const std::atomic<bool>& cancel) {
        transport::Channel& ch = *data_[w];
        transport::OneSided& os = *ch.one_sided();
        PageBatchEncoder& enc = encoders_[w];
        std::vector<transport::RegionWrite> group;
        group.reserve(kWriteGroup);
        RoundTotals t;
        auto send_batch = [&] {
            auto bytes = enc.finish();
            ch.send(wire::FrameType::data, bytes);
            t.bytes += bytes.size();
            enc.reset(enc.region());
        };
        for (uint32_t ri = 0; ri < snapshots_.size(); ++ri) {
            if (w >= shards[ri].size()) continue;
            const transport::RemoteRegion& to = remote_[w][ri];
            auto* base = static_cast<const std::byte*>(cfg_.regions[ri].base);
            auto post = [&] {
                os.write(to, group);
                group.clear();
            };
            enc.reset(ri);
            snapshots_[ri].for_each_set(shards[ri][w].begin, shards[ri][w].end, [&](size_t p) {
                if (stopping(cancel)) throw Cancelled{};
                const std::byte* page = base + p * ps_;
                if (is_zero_page(page, ps_)) {
                    if (!enc.add(p, PageKind::zero, {})) {
                        send_batch();
                        enc.add(p, PageKind::zero, {});
                    }
                    ++t.zero;
                } else {
                    group.push_back({page, ps_, p * ps_});
                    if (group.size() == kWriteGroup) post();
                    ++t.one_sided;
                    t.bytes += ps_;
                }
                ++t.pages;
            });
            if (!group.empty()) post();
            if (!enc.empty()) send_batch();
        }
        os.flush();
        transport::send_message(ch, {{"op", "barrier"}, {"round", round}, {"pages", t.pages}, {"written", t.one_sided}});
        return t;
    }

    bool stopping(const std::atomic<bool>& round_cancel) const {
        return round_cancel.load(std::memory_order_relaxed) || cancel_flag_.load(std::memory_order_relaxed);
    }

    void throw_if_cancelled() const {
        if (cancel_flag_.load()) throw CancelledByCaller();
    }

    // The caller's stop. Past the commit point it is ignored: the destination
    // may hold the whole guest already, and only its answer tells.
    void request_cancel() {
        std::lock_guard lock(cancel_mu_);
        if (committed_ || cancel_flag_.load()) return;
        cancel_flag_ = true;
        // A step under way (a reply awaited, the caller's pause) gets the
        // grace to end on its own; then every channel is shut, which ends it.
        cancel_deadline_.arm(cfg_.cancel_grace, "the step under way at the cancel");
    }

    // Called before the last piece of the device state: from here a cancel is too late.
    void commit() {
        std::lock_guard lock(cancel_mu_);
        if (cancel_flag_.load()) throw CancelledByCaller();
        committed_ = true;
        // The destination may start the guest once this piece is in (a send
        // may fail after the peer got it): only its refusal lets the source
        // resume ours after a failure.
        if (switching_to_postcopy_) postcopy_sent_ = true;
    }

    void shutdown_all() {
        std::lock_guard lock(channels_mu_);
        if (control_) control_->shutdown();
        for (auto& ch : data_) ch->shutdown();
    }

    // After a cancel, reads the control channel until the destination's own
    // abort (its answer to ours) or its close: only then is ours known to
    // have arrived. Closing earlier, with a reply (a round_done) unread here,
    // makes the kernel reset the connection and drop what it had not sent
    // yet, the abort included. Bounded by the frame count and by the cancel
    // deadline, which shuts the channel down.
    void await_abort_echo() {
        if (!control_) return;
        try {
            std::vector<std::byte> buf;
            for (int i = 0; i < 16; ++i) {
                auto type = control_->recv(buf);
                if (type == wire::FrameType::abort || type == wire::FrameType::end) return;
            }
        } catch (const std::exception&) {
        }
    }

    void fail(const std::string& what) {
        std::string why = watchdog_.expired();
        result_.ok = false;
        result_.error = why.empty() ? what : cat(why, " (", what, ")");
        bool cancelled;
        {
            std::lock_guard lock(cancel_mu_);
            cancelled = cancel_flag_.load() && !committed_;
        }
        if (cancelled) {
            // Whatever broke after the stop broke because of it.
            result_.cancelled = true;
            std::string late = cancel_deadline_.expired();
            if (!late.empty())  // what broke next is the echo of that shutdown
                result_.error = cat(kCancelledByCaller, "; ", late, ", channels shut down");
            else
                result_.error = what == kCancelledByCaller ? what : cat(kCancelledByCaller, " (", what, ")");
        }
        stop_tracking();
        watchdog_.disarm();
        // control_ is only ever set by this thread, so no lock: a send that
        // blocks must not hold up shutdown_all().
        auto text = result_.error;
        auto reason = std::as_bytes(std::span(text.data(), text.size()));
        if (control_) {
            try {
                // The post-copy server may be sending a page: one sender at
                // a time, but never stuck behind a send on a dead link.
                std::unique_lock lock(control_send_mu_, std::defer_lock);
                if (!server_.joinable() || lock.try_lock_for(std::chrono::milliseconds(2000)))
                    control_->send(wire::FrameType::abort, reason);
            } catch (const std::exception&) {
            }
        }
        // After a cancel the data channels are intact and no worker runs, so
        // each gets the reason too: the destination's receivers then report
        // the cancel rather than a channel that vanished (bounded by the
        // cancel deadline, which shuts them down).
        if (cancelled) {
            for (auto& ch : data_) {
                try {
                    ch->send(wire::FrameType::abort, reason);
                } catch (const std::exception&) {
                }
            }
            if (!server_.joinable()) await_abort_echo();  // the server is the control channel's reader
        }
        shutdown_all();
        if (server_.joinable()) server_.join();
        if (postcopy_started_ || postcopy_sent_) {
            // The guest ran on the destination (or may have): this copy is stale.
            result_.error += cat("; post-copy ", postcopy_started_ ? "had started" : "may have started",
                                 " the guest on the destination, so the source's copy is stale and was not "
                                 "resumed (docs/postcopy.md, \"Memory mode\")");
        } else if (result_.paused && cfg_.on_failure_resume) {
            try {
                cfg_.on_failure_resume();
            } catch (const std::exception& e) {
                result_.error += cat("; resuming the guest failed too: ", e.what());
            }
        }
    }

    const MemorySourceConfig& cfg_;
    const size_t ps_;
    MemorySourceResult result_;
    std::mutex channels_mu_;  // the watchdog shuts channels down from its thread
    std::optional<wire::SessionId> session_;
    std::unique_ptr<transport::Channel> control_;
    std::vector<std::unique_ptr<transport::Channel>> data_;
    std::vector<std::unique_ptr<UffdWpSource>> owned_;
    std::vector<DirtySource*> sources_;
    bool tracking_ = false;
    std::vector<DirtyBitmap> snapshots_;  // the pages the next round sends
    std::vector<DirtyBitmap> scratch_;
    std::vector<PageBatchEncoder> encoders_;  // one per worker: zero markers beside one-sided writes
    std::vector<PageBatchBuilder> builders_;  // one per worker: batches built in place
    std::vector<std::vector<std::byte>> batch_bufs_;  // one per worker, when there is no send stage
    std::vector<Compressor> compressors_;     // one per worker
    WorkerPlacement placement_;
    std::vector<Staging> staging_;            // one per worker
    bool one_sided_ = false;                  // pages go as one-sided writes (exchange_layout)
    std::vector<std::vector<transport::RemoteRegion>> remote_;  // [channel][region]
    std::mutex cancel_mu_;                    // orders a stop against the commit point
    std::atomic<bool> cancel_flag_{false};    // the caller stopped us (before the commit point)
    bool committed_ = false;                  // the last device-state piece is going out
    RoundWatchdog cancel_deadline_;           // after a stop: shuts everything once the grace is over
    // Post-copy.
    std::vector<transport::RemoteRegion> read_regions_;  // ours, exposed for the destination's reads
    std::vector<std::vector<transport::RemoteRegion>> pull_regions_;  // [channel][region], for its pull
    bool postcopy_started_ = false;         // the destination runs the guest: never resume ours
    bool postcopy_sent_ = false;            // ... or may run it: the switch went out, not refused
    bool switching_to_postcopy_ = false;    // the device state now sent is the post-copy switch's
    std::atomic<bool> postcopy_phase_{false};  // the push round: batches only, served pages skipped
    std::vector<DirtyBitmap> served_;       // per region: pages sent on request
    std::atomic<uint64_t> served_count_{0};
    // The push's locality (for_each_pending_near_faults).
    static constexpr uint64_t kNoHint = ~uint64_t{0};
    static constexpr uint64_t kHintPageMask = (uint64_t{1} << 48) - 1;
    std::mutex push_mu_;                                // push_shards_, pushed_ and push_hint_'s allocation
    std::vector<std::vector<PageRange>> push_shards_;   // the push round's shards
    std::vector<DirtyBitmap> pushed_;                   // per region: pages the push took
    std::unique_ptr<std::atomic<uint64_t>[]> push_hint_;  // per worker: (region << 48 | page) to go on from
    std::timed_mutex control_send_mu_;      // the server and the round both send on control_
    std::thread server_;                    // serve_postcopy()
    std::optional<std::chrono::milliseconds> round_timeout_;  // the push round's, instead of a step
    std::mutex reply_mu_;
    std::condition_variable reply_cv_;
    json reply_;
    std::string reply_error_;
    bool reply_link_lost_ = false;
    bool replied_ = false;
    RoundWatchdog watchdog_;  // last member: destroyed first, before the channels it shuts
};

}  // namespace

MemorySourceResult migrate_memory(const MemorySourceConfig& config) {
    SourceSession session(config);
    return session.run();
}

}  // namespace rmig::engine
