#include "engine/memory/memory_dest.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/thread_priority.hpp"
#include "engine/memory/page_placer.hpp"
#include "engine/memory/postcopy_placer.hpp"
#include "engine/memory/postcopy_puller.hpp"
#include "engine/memory/postcopy_wire.hpp"
#include "engine/memory/round_watchdog.hpp"
#include "engine/memory/worker_placement.hpp"
#include "transport/control_channel.hpp"
#include "security/errors.hpp"
#include "security/secure_transport.hpp"

namespace rmig::engine {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr unsigned kMaxWorkers = 64;
constexpr size_t kDeviceStatePrefault = size_t{16} << 20;

class DestSession {
public:
    explicit DestSession(const MemoryDestConfig& c)
        : cfg_(c), ps_(c.page_size), watchdog_([this] { shutdown_all(); }) {}

    ~DestSession() {
        shutdown_all();
        join_receivers();
        stop_fault_thread();
        puller_.reset();
        postcopy_.reset();
        missing_.reset();
        if (starter_.joinable()) starter_.join();
    }

    MemoryDestResult run() {
        deadline_ = Clock::now() + cfg_.timeout;
        std::stop_callback on_stop(cfg_.stop, [this] {
            {
                std::lock_guard lock(mu_);
                stopped_ = true;
            }
            cv_.notify_all();
            shutdown_all();
        });
        try {
            receive();
            result_.ok = true;
        } catch (const std::exception& e) {
            fail(e.what());
        }
        return result_;
    }

private:
    milliseconds step() const {
        // Once the guest runs here, the session's deadline no longer applies:
        // ending it would stop a running guest; progress is watched instead
        // (serve_faults).
        if (postcopy_active_.load()) return cfg_.step_timeout;
        auto left = std::chrono::duration_cast<milliseconds>(deadline_ - Clock::now());
        if (left.count() <= 0)
            throw Error(cat("session timed out after ", cfg_.timeout.count(), " ms"));
        return std::min(left, cfg_.step_timeout);
    }

    void check_stopped() {
        std::lock_guard lock(mu_);
        if (stopped_) throw Error("destination stopped by its caller");
    }

    void receive() {
        validate_regions(cfg_.regions, ps_);
        layout_ = batch_layout(cfg_.regions, ps_);
        listener_ = security::listen(cfg_.listen_uri, cfg_.transport, cfg_.security);
        if (cfg_.on_listening) cfg_.on_listening(listener_->address());
        accept_session();

        watchdog_.arm(step(), "layout exchange");
        json msg = transport::recv_message(*control_);
        if (msg.value("op", "") != "layout")
            throw ProtocolError(cat("expected the layout first, got '", msg.value("op", "?"), "'"));
        try {
            check_layout(msg.value("layout", json()), cfg_.regions, ps_);
        } catch (const Error& e) {
            transport::send_message(*control_, {{"ok", false}, {"error", e.what()}});
            throw;
        }
        if (msg.value("postcopy", false) && !cfg_.on_postcopy_start) {
            transport::send_message(*control_, {{"ok", false},
                                                {"error", "this destination does not take post-copy (no on_postcopy_start)"}});
            throw Error("the source wants post-copy, which this destination does not take");
        }
        json reply = {{"ok", true}};
        if (msg.value("one_sided", false)) {
            if (json exposed = expose_regions(); !exposed.is_null()) reply["one_sided"] = std::move(exposed);
        }
        transport::send_message(*control_, reply);
        watchdog_.disarm();

        // Touched now, so receiving the device state in the downtime does not
        // fault in fresh pages (that varied 4-43 ms for 8 MiB here).
        device_state_.resize(kDeviceStatePrefault);
        completed_.assign(data_.size(), 0);
        if (cfg_.numa) {
            placement_ = place_workers(cfg_.nic.empty() ? data_[0]->local_device() : cfg_.nic, cfg_.regions,
                                       static_cast<unsigned>(data_.size()));
            result_.placement = placement_.summary();
        } else {
            result_.placement = "off";
        }
        start_receivers(0);

        for (;;) {
            // Between rounds the source may take long (its convergence
            // policy, a throttled guest): bounded by the whole-session deadline.
            watchdog_.arm(step(), "waiting for the source");
            msg = transport::recv_message(*control_);
            check_stopped();
            std::string op = msg.value("op", "");
            if (op == "round_end") {
                end_round(msg);
            } else if (op == "device_state") {
                device_state(msg);
                return;
            } else if (op == "postcopy_prepare") {
                prepare_postcopy(msg);
            } else if (op == "postcopy") {
                start_postcopy(msg);
                finish_postcopy();
                return;
            } else {
                throw ProtocolError(cat("unknown operation '", op, "'"));
            }
        }
    }

    // Accepts `in`, or returns nullptr when the peer fails authentication
    // (wrong key, forged channel token) or vanishes mid-handshake (a reset on
    // a flapping link, an abandoned attempt): it is turned away and the real
    // peer may still come.
    std::unique_ptr<transport::Channel> accept_authenticated(transport::Incoming& in, const wire::Hello& h) {
        try {
            return in.accept(reply_to(h));
        } catch (const security::AuthError& e) {
            log::warn(e.what());
            return nullptr;
        } catch (const LinkError& e) {
            log::warn(cat("a connecting peer went away during its handshake: ", e.what()));
            return nullptr;
        }
    }

    // `resuming`: only the session we had (its source's new channels after
    // a lost link), until `until`.
    void accept_session(bool resuming = false, Clock::time_point until = {}) {
        // The control channel first: it names the session and the channel
        // count. A listener waits for its source as long as the session may
        // last (the source may start late, or retry after a failure); the
        // listener itself bounds each stranger's handshake.
        if (!resuming) until = deadline_;
        auto too_late = [&] {
            return Error(resuming ? cat("the source did not come back within the post-copy recovery window of ",
                                        cfg_.postcopy_recover.count(), " ms (lost: ", result_.postcopy.broke, ")")
                                  : cat("no source came within the session timeout of ", cfg_.timeout.count(), " ms"));
        };
        while (!control_) {
            check_stopped();
            if (Clock::now() >= until) throw too_late();
            auto in = listener_->next(std::min(step(), milliseconds(200)));
            if (!in) continue;
            const auto& h = in->hello();
            if (h.kind != wire::ChannelKind::control) {
                in->refuse(wire::HelloStatus::unknown_session);
                continue;
            }
            if (resuming && h.session != session_) {
                in->refuse(wire::HelloStatus::busy);  // another source, while ours may still come back
                continue;
            }
            if (h.channel_count == 0 || h.channel_count > kMaxWorkers ||
                (cfg_.workers != 0 && h.channel_count != cfg_.workers) || (resuming && h.channel_count != nchannels_)) {
                in->refuse(wire::HelloStatus::bad_channel);
                continue;
            }
            session_ = h.session;
            nchannels_ = h.channel_count;
            result_.session = wire::to_hex(session_);
            auto ch = accept_authenticated(*in, h);
            if (!ch) continue;
            std::lock_guard lock(mu_);
            control_ = std::move(ch);
        }
        watchdog_.arm(step(), "accepting the data channels");
        while (data_.size() < nchannels_) {
            check_stopped();
            if (resuming && Clock::now() >= until) throw too_late();
            auto in = listener_->next(std::min(step(), milliseconds(200)));
            if (!in) continue;
            const auto& h = in->hello();
            if (resuming && h.kind == wire::ChannelKind::control && h.session == session_ &&
                h.channel_count == nchannels_) {
                // Our source gave up on a half-open attempt (a data channel
                // did not get through) and started over: the newest wins.
                auto ch = accept_authenticated(*in, h);
                if (!ch) continue;
                std::lock_guard lock(mu_);
                control_ = std::move(ch);
                data_.clear();
                continue;
            }
            if (h.kind != wire::ChannelKind::data || h.session != session_) {
                in->refuse(h.kind == wire::ChannelKind::control ? wire::HelloStatus::busy
                                                                : wire::HelloStatus::unknown_session);
                continue;
            }
            // The source opens them in order 1..N, one after the other.
            if (h.channel_id != data_.size() + 1 || h.channel_count != nchannels_) {
                in->refuse(wire::HelloStatus::bad_channel);
                continue;
            }
            auto ch = accept_authenticated(*in, h);
            if (!ch) continue;
            std::lock_guard lock(mu_);
            data_.push_back(std::move(ch));
        }
        watchdog_.disarm();
    }

    // The source asked to write pages one-sided: expose every region on every
    // data channel (each channel has its own protection domain, so its own
    // keys). Null when the channels cannot (tcp): the source then sends batches.
    json expose_regions() {
        for (auto& ch : data_)
            if (!ch->one_sided()) return nullptr;
        json list = json::array();
        for (auto& ch : data_) {
            json regions = json::array();
            for (const auto& r : cfg_.regions) {
                transport::RemoteRegion rr = ch->one_sided()->expose(r.base, r.size);
                regions.push_back({{"addr", rr.addr}, {"size", rr.size}, {"rkey", rr.rkey}});
            }
            list.push_back(std::move(regions));
        }
        result_.one_sided = true;
        return list;
    }

    static wire::Hello reply_to(const wire::Hello& h) {
        wire::Hello r = h;
        r.role = wire::Role::destination;
        return r;
    }

    // One receiver per data channel, from round `first_round` on (a resumed
    // post-copy's channels start at its push round).
    void start_receivers(uint64_t first_round) {
        completed_.assign(data_.size(), first_round);
        for (size_t i = 0; i < data_.size(); ++i)
            receivers_.emplace_back([this, i, first_round] {
                pin_worker(placement_, static_cast<unsigned>(i));
                receive_channel(i, first_round);
            });
    }

    // One receiver per data channel: batches are placed as they come; a
    // barrier closes the channel's share of a round.
    void receive_channel(size_t idx, uint64_t first_round) {
        try {
            transport::Channel& ch = *data_[idx];
            PagePlacer placer;
            std::vector<std::byte> buf, packed;
            std::vector<std::span<std::byte>> pieces;
            uint64_t round = first_round, pages = 0;
            for (;;) {
                // Page batches are read into place: the batch's head first,
                // then every payload straight into its page (raw) or a
                // scratch buffer (compressed), with one scattered read.
                auto type = ch.recv_into([&](wire::FrameType t, size_t len, transport::PayloadReader& r) {
                    if (t != wire::FrameType::data || postcopy_active_.load()) {
                        buf.resize(len);
                        r.read(std::span<const std::span<std::byte>>(std::array{std::span(buf)}));
                        return;
                    }
                    pages += place_batch(len, r, placer, buf, packed, pieces);
                });
                if (type == wire::FrameType::data) {
                    // In post-copy the batch was read whole and is placed
                    // page by page (atomically: the guest is running).
                    if (postcopy_active_.load()) pages += place_postcopy_batch(buf, placer, packed, false);
                    continue;
                } else if (type == wire::FrameType::control) {
                    std::string text(reinterpret_cast<const char*>(buf.data()), buf.size());
                    json m = json::parse(text, nullptr, false);
                    if (!m.is_object() || m.value("op", "") != "barrier")
                        throw ProtocolError(cat(ch.name(), ": expected a barrier, got ", text));
                    uint64_t r = m.value("round", ~uint64_t{0});
                    uint64_t n = m.value("pages", ~uint64_t{0});
                    // Pages the source wrote one-sided (flushed before this
                    // barrier, so they have landed); only if we exposed memory.
                    uint64_t written = m.value("written", uint64_t{0});
                    if (r != round)
                        throw ProtocolError(cat(ch.name(), ": barrier for round ", r, " while in round ", round));
                    if (written != 0 && !result_.one_sided)
                        throw ProtocolError(cat(ch.name(), ": barrier counts ", written,
                                                " one-sided pages, but no memory was exposed"));
                    if (written > n || n - written != pages)
                        throw ProtocolError(cat(ch.name(), ": barrier of round ", r, " counts ", n, " pages (",
                                                written, " written one-sided), ", pages, " arrived in batches"));
                    pages = n;
                    {
                        std::lock_guard lock(mu_);
                        completed_[idx] = ++round;
                        round_pages_ += pages;
                    }
                    cv_.notify_all();
                    pages = 0;
                } else if (type == wire::FrameType::end) {
                    std::lock_guard lock(mu_);
                    if (!confirmed_) throw ProtocolError(cat(ch.name(), ": ended before the migration finished"));
                    return;
                } else {
                    std::string text(reinterpret_cast<const char*>(buf.data()), buf.size());
                    throw Error(cat(ch.name(), ": source aborted: ", text));
                }
            }
        } catch (const std::exception& e) {
            {
                std::lock_guard lock(mu_);
                if (confirmed_) return;  // the source may just drop its channels after confirm
            }
            record_failure(e.what(), dynamic_cast<const LinkError*>(&e) != nullptr);
        }
    }

    // A failure on a thread other than the control thread (a receiver, the
    // fault thread, the starter): the first one is the cause; every channel
    // is shut down, which wakes the control thread out of its read.
    void record_failure(const std::string& what, bool link_lost) {
        {
            std::lock_guard lock(mu_);
            if (receiver_error_.empty()) {
                receiver_error_ = what;
                receiver_link_lost_ = link_lost;
            }
        }
        cv_.notify_all();
        shutdown_all();
    }

    // One page batch of `len` bytes from `r`; returns its page count. Bytes
    // placed count only once the frame's checksum passed (recv_into returns).
    size_t place_batch(size_t len, transport::PayloadReader& r, PagePlacer& placer, std::vector<std::byte>& head,
                       std::vector<std::byte>& packed, std::vector<std::span<std::byte>>& pieces) {
        using Pieces = std::span<const std::span<std::byte>>;
        head.resize(std::min(len, kPageBatchHeaderSize));
        r.read(Pieces(std::array{std::span(head)}));
        const size_t head_size = page_batch_head_size(head, len);
        head.resize(head_size);
        r.read(Pieces(std::array{std::span(head).subspan(kPageBatchHeaderSize)}));
        PageBatch b = decode_page_table(head, len, layout_);
        auto* base = static_cast<std::byte*>(cfg_.regions[b.region].base);
        size_t packed_bytes = 0;
        for (const auto& e : b.pages)
            if (e.kind == PageKind::lz4 || e.kind == PageKind::zstd) packed_bytes += e.length;
        packed.resize(packed_bytes);
        pieces.clear();
        size_t at = 0;
        for (const auto& e : b.pages) {
            if (e.kind == PageKind::raw) {
                pieces.emplace_back(base + e.page_index * ps_, ps_);
            } else if (e.length > 0) {
                pieces.emplace_back(packed.data() + at, e.length);
                at += e.length;
            }
        }
        r.read(pieces);
        at = 0;
        for (auto& e : b.pages) {
            if (e.kind == PageKind::raw) continue;
            e.payload = std::span<const std::byte>(packed.data() + at, e.length);
            at += e.length;
            placer.place(e, std::span<std::byte>(base + e.page_index * ps_, ps_));
        }
        return b.pages.size();
    }

    void end_round(const json& msg, const std::function<void()>& before_reply = {}) {
        const uint64_t round = msg.value("round", ~uint64_t{0});
        if (round != result_.rounds)
            throw ProtocolError(cat("round_end for round ", round, ", expected ", result_.rounds));
        watchdog_.arm(step(), cat("placing round ", round));
        uint64_t pages = 0;
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] {
                if (!receiver_error_.empty() || stopped_) return true;
                for (auto c : completed_)
                    if (c <= round) return false;
                return true;
            });
            if (stopped_) throw Error("destination stopped by its caller");
            if (!receiver_error_.empty()) {
                if (receiver_link_lost_) throw LinkError(receiver_error_);
                throw Error(receiver_error_);
            }
            pages = std::exchange(round_pages_, 0);
        }
        if (msg.value("pages", ~uint64_t{0}) != pages)
            throw ProtocolError(cat("round ", round, ": source sent ", msg.value("pages", ~uint64_t{0}),
                                    " pages, ", pages, " arrived"));
        if (before_reply) before_reply();
        send_control({{"ok", true}, {"op", "round_done"}, {"round", round}});
        result_.rounds = static_cast<unsigned>(round + 1);
        result_.pages_placed += pages;
        if (cfg_.on_round_done) cfg_.on_round_done(round, pages);
    }

    // ---- post-copy (docs/memory-mode.md, "Post-copy") ----

    // {"op":"postcopy_prepare","bitmap_bytes"} and the bitmap of the pages
    // known stale before the source pauses its guest: dropped now, while that
    // guest still runs, so the blackout only drops what was dirtied since.
    void prepare_postcopy(const json& msg) {
        watchdog_.arm(step(), "preparing post-copy");
        std::vector<std::byte> bitmap = read_bitmap(msg, "the stale-page bitmap");
        if (!cfg_.on_postcopy_start) {
            send_control({{"ok", false}, {"error", "this destination does not take post-copy (no on_postcopy_start)"}});
            throw Error("the source prepares post-copy, which this destination does not take");
        }
        std::vector<DirtyBitmap> stale = decode_pending(bitmap, cfg_.regions, ps_);
        catch_faults();  // before any page is dropped
        const auto t0 = Clock::now();
        result_.postcopy.dropped_early += drop_pages(cfg_.regions, ps_, stale, dropped_.empty() ? nullptr : &dropped_);
        result_.postcopy.drop_early_ms += std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (dropped_.empty()) {
            dropped_ = std::move(stale);
        } else {
            for (size_t i = 0; i < stale.size(); ++i) dropped_[i].merge_from(stale[i]);
        }
        send_control({{"ok", true}, {"op", "postcopy_prepared"}});
        watchdog_.disarm();
    }

    // {"op":"postcopy","round","pending","bitmap_bytes","device_state"[,"reads"]},
    // then the pending bitmap and the device state as DATA frames. The
    // pending pages are dropped and caught from here on; the caller starts
    // the guest; the reply ends the source's downtime.
    void start_postcopy(const json& msg) {
        watchdog_.arm(step(), "the switch to post-copy");
        if (msg.value("round", ~uint64_t{0}) != result_.rounds)
            throw ProtocolError(cat("post-copy announced as round ", msg.value("round", ~uint64_t{0}), ", expected ",
                                    result_.rounds));
        std::vector<std::byte> bitmap = read_bitmap(msg, "the pending-page bitmap");
        const uint64_t want = msg.value("device_state", ~uint64_t{0});
        if (want > kMaxDeviceState)
            throw ProtocolError(cat("device state of ", want, " bytes announced, the limit is ", kMaxDeviceState));
        if (device_state_.size() < want) device_state_.resize(want);
        transport::recv_pieces(*control_, std::span(device_state_).first(want), "the device state", "source");
        device_state_.resize(want);
        // Until the guest starts, any failure is a refusal: the source then
        // knows no guest ran here and resumes its own. Refused only once
        // everything announced was read, so it gets the reason, not a
        // broken pipe.
        try {
            if (!cfg_.on_postcopy_start)
                throw Error("this destination does not take post-copy (no on_postcopy_start)");
            std::vector<DirtyBitmap> pending = decode_pending(bitmap, cfg_.regions, ps_);
            uint64_t count = 0;
            for (const auto& b : pending) count += b.count();
            if (count != msg.value("pending", ~uint64_t{0}))
                throw ProtocolError(cat("post-copy: ", msg.value("pending", ~uint64_t{0}),
                                        " pending pages announced, the bitmap has ", count));
            // Exposed on the first data channel (see the source's expose_for_reads).
            transport::OneSided* os = data_[0]->one_sided();
            if (msg.contains("reads") && os && os->can_read()) reads_ = parse_read_regions(msg["reads"], cfg_.regions);
            catch_faults();
            const auto drop_t0 = Clock::now();
            result_.postcopy.dropped_in_blackout =
                drop_pages(cfg_.regions, ps_, pending, dropped_.empty() ? nullptr : &dropped_);
            result_.postcopy.drop_in_blackout_ms =
                std::chrono::duration<double, std::milli>(Clock::now() - drop_t0).count();
            postcopy_ = std::make_unique<PostcopyPlacer>(cfg_.regions, ps_, pending, *missing_);
            // The source offered to let us read the pending pages instead of
            // pushing them: taken where our channels read too.
            if (!reads_.empty() && msg.contains("pull"))
                if (auto lanes = pull_lanes(data_, parse_pull_offer(msg["pull"], cfg_.regions, data_.size()));
                    !lanes.empty())
                    puller_ = std::make_unique<PostcopyPuller>(cfg_.regions, ps_, pending, *postcopy_,
                                                               std::move(lanes));
            result_.postcopy.pending_pages = count;
        } catch (const std::exception& e) {
            send_control({{"ok", false}, {"error", e.what()}});
            throw;
        }
        DestPostcopy& pc = result_.postcopy;
        pc.switched = true;
        pc.rdma_reads = !reads_.empty();
        pc.pulled = puller_ != nullptr;
        postcopy_active_ = true;
        fault_thread_ = std::thread([this] { serve_faults(false); });
        if (puller_) puller_->start();
        postcopy_t0_ = Clock::now();
        {
            std::lock_guard lock(mu_);
            postcopy_started_ = true;  // a failure from here calls on_postcopy_failed
        }
        // The guest starts on its own thread: loading devices may touch a
        // missing page, whose fetched copy this (control) thread places.
        starter_ = std::thread([this] {
            try {
                cfg_.on_postcopy_start(std::span<const std::byte>(device_state_));
            } catch (const std::exception& e) {
                record_failure(cat("starting the guest: ", e.what()), false);
                return;
            }
            log::info(cat("post-copy: the guest runs here; ", result_.postcopy.pending_pages, " pages to come",
                          result_.postcopy.rdma_reads ? " (faults read one-sided)" : ""));
            try {
                send_control({{"ok", true},
                              {"op", "postcopy_started"},
                              {"rdma_reads", result_.postcopy.rdma_reads},
                              {"pull", result_.postcopy.pulled}});
                std::lock_guard lock(mu_);
                start_reply_sent_ = true;
            } catch (const std::exception& e) {
                // The link broke: the control thread sees that too. The
                // guest runs regardless.
                log::warn(cat("post-copy: telling the source the guest started: ", e.what()));
            }
        });
        watchdog_.disarm();
    }

    // The page bitmap `msg` announces ("bitmap_bytes"), sized for our regions.
    std::vector<std::byte> read_bitmap(const json& msg, const char* what) {
        const uint64_t bytes = msg.value("bitmap_bytes", ~uint64_t{0});
        if (bytes != pending_bytes(cfg_.regions, ps_))
            throw ProtocolError(cat("post-copy: ", what, " of ", bytes, " bytes announced, our regions need ",
                                    pending_bytes(cfg_.regions, ps_)));
        std::vector<std::byte> bitmap(bytes);
        transport::recv_pieces(*control_, bitmap, what, "source");
        return bitmap;
    }

    // One userfaultfd over every region, registered before the first page
    // is dropped.
    void catch_faults() {
        if (missing_) return;
        std::vector<std::span<std::byte>> ranges;
        for (const auto& r : cfg_.regions) ranges.emplace_back(static_cast<std::byte*>(r.base), r.size);
        missing_ = std::make_unique<MissingPages>(ranges);
    }

    // Post-copy until every page is here, over new channels after each lost
    // link while the recovery window allows.
    void finish_postcopy() {
        for (;;) {
            try {
                run_postcopy();
                return;
            } catch (const std::exception& e) {
                if (!resumable(e)) throw;
                await_resume(e.what());
            }
        }
    }

    // Only a lost link (or a stalled push) is resumed: an abort, a protocol
    // error, a failed start or our caller's stop is final.
    // Only once the source was told the guest started: before that it cannot
    // know, fails for good (docs/postcopy.md) and never comes back. The
    // control thread's own error decides (an abort it read is final); a
    // receiver's first error must be a lost link too.
    bool resumable(const std::exception& e) {
        std::lock_guard lock(mu_);
        if (cfg_.postcopy_recover.count() <= 0 || stopped_ || confirmed_ || !start_reply_sent_) return false;
        if (dynamic_cast<const LinkError*>(&e) == nullptr) return false;
        return receiver_error_.empty() || receiver_link_lost_;
    }

    // The guest runs on (its faults wait) while the old session's threads
    // end; then the same source's new channels are accepted, it is told which
    // pages are still missing, and the push and the faults go on over them:
    //   control src->dst {"op":"postcopy_resume","round":r[,"reads"]}
    //           dst->src {"ok":true,"op":"postcopy_resumed","missing":N,"bitmap_bytes":B}
    //                    then the still-missing bitmap as DATA frames.
    void await_resume(const std::string& why) {
        DestPostcopy& pc = result_.postcopy;
        std::string cause = why;
        {
            std::lock_guard lock(mu_);
            if (!receiver_error_.empty() && why.find(receiver_error_) == std::string::npos)
                cause = cat(receiver_error_, " (then: ", why, ")");
        }
        if (pc.broke.empty()) pc.broke = cause;
        log::warn(cat("post-copy: lost the source: ", cause));
        log::warn(cat("post-copy: the guest runs on and its faults wait; ", postcopy_->missing(),
                      " pages missing; waiting up to ", cfg_.postcopy_recover.count(), " ms for the source to resume"));
        watchdog_.disarm();
        shutdown_all();  // first: the fault thread may be blocked sending on a dead channel
        stop_fault_thread();
        if (puller_) {  // its lanes read on the old channels: they end, now shut
            puller_->stop();
            result_.postcopy.pulled_pages += puller_->pulled_pages();
            puller_.reset();
        }
        join_receivers();
        receivers_.clear();
        drop_channels();
        const auto until = Clock::now() + cfg_.postcopy_recover;
        for (;;) {
            accept_session(true, until);
            try {
                watchdog_.arm(cfg_.step_timeout, "resuming post-copy");
                json msg = transport::recv_message(*control_);
                if (msg.value("op", "") != "postcopy_resume")
                    throw ProtocolError(cat("expected postcopy_resume, got '", msg.value("op", "?"), "'"));
                if (msg.value("round", ~uint64_t{0}) != result_.rounds) {
                    send_control({{"ok", false}, {"error", cat("post-copy resumed at round ", msg.value("round", ~uint64_t{0}),
                                                               ", this destination is at round ", result_.rounds)}});
                    throw ProtocolError("post-copy resumed at the wrong round");
                }
                reads_.clear();
                transport::OneSided* os = data_[0]->one_sided();
                if (msg.contains("reads") && os && os->can_read()) reads_ = parse_read_regions(msg["reads"], cfg_.regions);
                const std::vector<DirtyBitmap> missing = postcopy_->still_missing();
                // The pull again, on the new channels, if offered again.
                if (!reads_.empty() && msg.contains("pull")) {
                    try {
                        if (auto lanes = pull_lanes(data_, parse_pull_offer(msg["pull"], cfg_.regions, data_.size()));
                            !lanes.empty())
                            puller_ = std::make_unique<PostcopyPuller>(cfg_.regions, ps_, missing, *postcopy_,
                                                                       std::move(lanes));
                    } catch (const LinkError&) {
                        throw;
                    } catch (const std::exception& e) {
                        // The source pushes instead: declining costs speed only.
                        log::warn(cat("post-copy: resuming without the pull: ", e.what()));
                    }
                }
                const std::vector<std::byte> bitmap = encode_pending(missing);
                send_control({{"ok", true}, {"op", "postcopy_resumed"}, {"missing", postcopy_->missing()},
                              {"bitmap_bytes", bitmap.size()}, {"pull", puller_ != nullptr}});
                send_pieces(bitmap);
                watchdog_.disarm();
                break;
            } catch (const LinkError& e) {
                // This attempt's link broke too: wait for the next.
                log::warn(cat("post-copy: resuming: ", e.what()));
                watchdog_.disarm();
                shutdown_all();
                puller_.reset();
                drop_channels();
            }
        }
        fault_stop_ = false;
        start_receivers(result_.rounds);
        fault_thread_ = std::thread([this] { serve_faults(true); });
        if (puller_) puller_->start();
        ++pc.resumed;
        log::info(cat("post-copy resumed over new channels: ", postcopy_->missing(), " pages still missing",
                      reads_.empty() ? "" : " (faults read one-sided)"));
    }

    // After a lost link, once no thread uses them.
    void drop_channels() {
        std::scoped_lock lock(mu_, control_send_mu_);
        control_.reset();
        data_.clear();
        receiver_error_.clear();
        receiver_link_lost_ = false;
        round_pages_ = 0;
    }

    // `bytes` as DATA frames on the control channel (an empty one is one
    // empty frame).
    void send_pieces(std::span<const std::byte> bytes) {
        const size_t piece = std::min(control_->max_frame_payload(), kDefaultBatchBudget);
        size_t at = 0;
        do {
            const size_t n = std::min(piece, bytes.size() - at);
            std::lock_guard lock(control_send_mu_);
            control_->send(wire::FrameType::data, bytes.subspan(at, n));
            at += n;
        } while (at < bytes.size());
    }

    // The control channel in post-copy: pages fetched on request (page
    // batches), then round_end for the push; round_done once every pending
    // page is in.
    void run_postcopy() {
        PagePlacer placer;
        std::vector<std::byte> buf, scratch;
        // No deadline per frame: the push may run long without a request.
        // The fault thread ends the session when no page arrives for a step.
        watchdog_.disarm();
        for (;;) {
            auto type = control_->recv(buf);
            check_stopped();
            if (type == wire::FrameType::data) {
                place_postcopy_batch(buf, placer, scratch, true);
                continue;
            }
            std::string text(reinterpret_cast<const char*>(buf.data()), buf.size());
            if (type == wire::FrameType::abort) throw Error(cat("source aborted: ", text));
            if (type != wire::FrameType::control)
                throw ProtocolError(cat("post-copy: unexpected ", wire::to_string(type), " frame on the control channel"));
            json m = json::parse(text, nullptr, false);
            if (!m.is_object() || m.value("op", "") != "round_end")
                throw ProtocolError(cat("post-copy: expected round_end or pages, got ", text));
            if (puller_) {
                puller_->wait();  // the source pushed nothing: every pending page read and placed here
                result_.postcopy.pulled_pages += puller_->pulled_pages();
                log::info(cat("post-copy pull: ", puller_->pulled_pages(), " pages placed, ", puller_->reads(),
                              " reads of ", puller_->bytes_read(), " B; lanes spent ", puller_->start_s(),
                              " s starting reads, ", puller_->wait_s(), " s waiting for them, ", puller_->place_s(),
                              " s placing"));
                puller_.reset();
            }
            try {
                end_round(m, [&] {
                if (starter_.joinable()) starter_.join();  // the guest started (its reply went out first)
                if (uint64_t left = postcopy_->missing(); left != 0)
                    throw ProtocolError(cat("post-copy: the push ended with ", left, " pages still missing"));
                stop_fault_thread();
                missing_->release();
                DestPostcopy& pc = result_.postcopy;
                pc.phase_s = std::chrono::duration<double>(Clock::now() - postcopy_t0_).count();
                postcopy_->fill(pc);
                std::lock_guard lock(mu_);
                confirmed_ = true;  // every page is here; the source ends its channels next
                });
            } catch (const LinkError& e) {
                {
                    std::lock_guard lock(mu_);
                    if (!confirmed_) throw;
                }
                // Every page is here: the guest is whole, whatever the source
                // learns (it may retry for its recovery window, and fail).
                log::warn(cat("post-copy: every page is here, but round_done did not reach the source: ", e.what()));
                result_.rounds = static_cast<unsigned>(m.value("round", uint64_t{0}) + 1);
            }
            result_.device_state = std::move(device_state_);
            log::info(cat("post-copy done in ", result_.postcopy.phase_s, " s: ", result_.postcopy.faults, " faults, ",
                          result_.postcopy.fetched_pages, " pages fetched on demand, fault p50 ",
                          result_.postcopy.fault_p50_us, " us, p99 ", result_.postcopy.fault_p99_us, " us"));
            watchdog_.arm(milliseconds(5000), "closing");
            join_receivers();
            watchdog_.disarm();
            return;
        }
    }

    // The guest's faults: each page is read one-sided from the source where
    // it exposed its memory (rdma), else asked for on the control channel,
    // ahead of the push on the data channels. `resumed`: first the faults
    // still waiting from before the link was lost (their threads stay
    // blocked without a new fault until the page comes).
    void serve_faults(bool resumed) {
        raise_priority();  // a guest thread waits on every fault this thread serves
        try {
            std::vector<std::byte> staging(ps_);
            transport::OneSided* os = reads_.empty() ? nullptr : data_[0]->one_sided();
            uint64_t last_missing = postcopy_->missing();
            auto moved_at = Clock::now();
            while (!fault_stop_.load()) {
                std::vector<PageRef> faults =
                    std::exchange(resumed, false) ? postcopy_->waiting() : postcopy_->next_faults(milliseconds(100));
                // Progress, not a deadline: the guest runs here, so only a
                // push that stalls for a whole step ends the session (or,
                // with a recovery window, its link: it is treated as lost).
                if (uint64_t now_missing = postcopy_->missing(); now_missing != last_missing) {
                    last_missing = now_missing;
                    moved_at = Clock::now();
                } else if (now_missing > 0 && Clock::now() - moved_at > cfg_.step_timeout) {
                    throw LinkError(cat("post-copy stalled: no missing page arrived for ", cfg_.step_timeout.count(),
                                        " ms (", now_missing, " still missing)"));
                }
                if (os) {
                    for (PageRef f : faults) {
                        os->read(reads_[f.region], f.page * ps_, staging.data(), ps_);
                        postcopy_->place(f, staging, true);
                    }
                    continue;
                }
                // Grouped by region, in order of arrival.
                for (size_t i = 0; i < faults.size();) {
                    std::vector<uint64_t> pages;
                    const uint32_t region = faults[i].region;
                    for (; i < faults.size() && faults[i].region == region && pages.size() < kMaxFetchPages; ++i)
                        pages.push_back(faults[i].page);
                    send_control(fetch_request(region, pages));
                }
            }
        } catch (const std::exception& e) {
            record_failure(cat("serving post-copy faults: ", e.what()), dynamic_cast<const LinkError*>(&e) != nullptr);
        }
    }

    void stop_fault_thread() {
        fault_stop_ = true;
        if (postcopy_) postcopy_->wake_reader();
        if (fault_thread_.joinable() && fault_thread_.get_id() != std::this_thread::get_id()) fault_thread_.join();
    }

    // A post-copy page batch (read whole: the guest runs, so every page is
    // placed atomically); returns its page count.
    size_t place_postcopy_batch(std::span<const std::byte> bytes, PagePlacer& placer, std::vector<std::byte>& scratch,
                                bool fetched) {
        PageBatch b = decode_page_batch(bytes, layout_);
        scratch.resize(ps_);
        for (size_t i = 0; i < b.pages.size();) {
            const PageEntry& e = b.pages[i];
            PageRef at{b.region, e.page_index};
            if (e.kind == PageKind::raw) {
                // Raw pages with consecutive indexes lie back to back in the
                // batch: placed as one run.
                size_t n = 1;
                while (i + n < b.pages.size() && b.pages[i + n].kind == PageKind::raw &&
                       b.pages[i + n].page_index == e.page_index + n &&
                       b.pages[i + n].payload.data() == e.payload.data() + n * ps_)
                    ++n;
                postcopy_->place_run(at, std::span(e.payload.data(), n * ps_), fetched);
                i += n;
                continue;
            }
            if (e.kind == PageKind::zero) {
                postcopy_->place(at, {}, fetched);
            } else {
                placer.place(e, scratch);
                postcopy_->place(at, scratch, fetched);
            }
            ++i;
        }
        return b.pages.size();
    }

    void send_control(const json& msg) {
        std::lock_guard lock(control_send_mu_);
        if (!control_) throw LinkError("the control channel is gone (post-copy lost its link)");
        transport::send_message(*control_, msg);
    }

    // The blob comes as one DATA frame on the control channel right after
    // {"op": "device_state", "bytes": N}.
    void device_state(const json& msg) {
        watchdog_.arm(step(), "receiving the device state");
        const uint64_t want = msg.value("bytes", ~uint64_t{0});
        if (want > kMaxDeviceState)
            throw ProtocolError(cat("device state of ", want, " bytes announced, the limit is ", kMaxDeviceState));
        // Sent as consecutive DATA frames (pieces of at most a batch, or one
        // ring slot on rdma), read straight into the buffer touched before
        // the rounds began, up to `want` bytes.
        std::vector<std::byte>& blob = device_state_;
        if (blob.size() < want) blob.resize(want);
        transport::recv_pieces(*control_, std::span(blob).first(want), "the device state", "source");
        blob.resize(want);
        {
            std::lock_guard lock(mu_);
            if (!receiver_error_.empty()) throw Error(receiver_error_);
            confirmed_ = true;  // every round was placed (round_done), the blob is here
        }
        result_.device_state = std::move(device_state_);
        transport::send_message(*control_, {{"ok", true}, {"op", "confirm"}});
        watchdog_.disarm();
        // The source ends its channels after the confirmation; do not wait long.
        watchdog_.arm(milliseconds(5000), "closing");
        join_receivers();
        watchdog_.disarm();
    }

    void join_receivers() {
        for (auto& t : receivers_)
            if (t.joinable()) t.join();
    }

    void shutdown_all() {
        std::lock_guard lock(mu_);
        if (control_) control_->shutdown();
        for (auto& ch : data_) ch->shutdown();
    }

    void fail(const std::string& what) {
        std::string why = watchdog_.expired();
        watchdog_.disarm();
        result_.ok = false;
        result_.error = why.empty() ? what : cat(why, " (", what, ")");
        result_.device_state.clear();
        transport::Channel* control = nullptr;
        {
            std::lock_guard lock(mu_);
            control = control_.get();
            // The stop shut the channels down; what broke next is only the echo.
            if (stopped_)
                result_.error = what.starts_with("destination stopped by its caller")
                                    ? what
                                    : cat("destination stopped by its caller (", what, ")");
            // Likewise a receiver's failure (e.g. a checksum mismatch) shuts the
            // control channel down: report the cause, not the echo.
            else if (!receiver_error_.empty() && result_.error.find(receiver_error_) == std::string::npos)
                result_.error = cat(receiver_error_, " (then: ", what, ")");
        }
        if (control) {
            try {
                auto text = result_.error;
                // Behind a send of the fault thread stuck on a dead link, the
                // abort would never go: then only the shutdown below tells.
                std::unique_lock lock(control_send_mu_, std::defer_lock);
                if (lock.try_lock_for(milliseconds(2000)))
                    control->send(wire::FrameType::abort, std::as_bytes(std::span(text.data(), text.size())));
            } catch (const std::exception&) {
            }
        }
        shutdown_all();
        join_receivers();
        bool started;
        {
            std::lock_guard lock(mu_);
            started = postcopy_started_;
        }
        if (started) {
            // The guest ran here on pages that will not all come: its threads
            // must stop before faults stop being caught.
            result_.error += "; post-copy had started the guest here and not every page arrived "
                             "(docs/memory-mode.md, \"When post-copy breaks\")";
            if (cfg_.on_postcopy_failed) {
                try {
                    cfg_.on_postcopy_failed(result_.error);
                } catch (const std::exception&) {
                }
            }
        }
        stop_fault_thread();
        if (postcopy_) {
            postcopy_->fill(result_.postcopy);
            result_.postcopy.phase_s = std::chrono::duration<double>(Clock::now() - postcopy_t0_).count();
        }
        puller_.reset();  // its lanes end: the channels are shut
        postcopy_.reset();
        missing_.reset();  // unregistered: a guest thread blocked on a missing page goes on (see above)
        if (starter_.joinable()) starter_.join();
    }

    const MemoryDestConfig& cfg_;
    const size_t ps_;
    MemoryDestResult result_;
    BatchLayout layout_;
    Clock::time_point deadline_;
    std::unique_ptr<transport::Listener> listener_;
    wire::SessionId session_{};
    uint32_t nchannels_ = 0;

    std::mutex mu_;  // guards the channel pointers and the round bookkeeping below
    std::condition_variable cv_;
    std::unique_ptr<transport::Channel> control_;
    std::vector<std::unique_ptr<transport::Channel>> data_;
    std::vector<uint64_t> completed_;  // per channel: rounds whose barrier arrived
    uint64_t round_pages_ = 0;         // pages placed in the current round, all channels
    std::string receiver_error_;
    bool receiver_link_lost_ = false;  // receiver_error_ is a lost link (post-copy may resume)
    std::vector<std::byte> device_state_;
    bool confirmed_ = false;
    bool stopped_ = false;

    // Post-copy.
    std::timed_mutex control_send_mu_;  // the fault thread, the starter and the control thread all send
    std::unique_ptr<MissingPages> missing_;     // the regions' userfaultfd, from the first drop on
    std::unique_ptr<PostcopyPlacer> postcopy_;
    std::unique_ptr<PostcopyPuller> puller_;    // reads the pending pages, where the source offered it
    std::atomic<bool> postcopy_active_{false};  // receivers place atomically, through postcopy_
    bool postcopy_started_ = false;             // on_postcopy_start was called (guarded by mu_)
    bool start_reply_sent_ = false;             // postcopy_started went out: the source may resume (mu_)
    std::vector<transport::RemoteRegion> reads_;  // the source's regions, for one-sided reads
    std::vector<DirtyBitmap> dropped_;            // dropped by postcopy_prepare, before the blackout
    std::atomic<bool> fault_stop_{false};
    std::thread fault_thread_;
    std::thread starter_;  // runs on_postcopy_start, then answers postcopy_started
    Clock::time_point postcopy_t0_;

    WorkerPlacement placement_;
    std::vector<std::thread> receivers_;
    RoundWatchdog watchdog_;  // last: destroyed first, before what it shuts down
};

}  // namespace

MemoryDestResult receive_memory(const MemoryDestConfig& config) {
    DestSession session(config);
    return session.run();
}

}  // namespace rmig::engine
