#include "security/secure_listener.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/log_limiter.hpp"
#include "security/deadline.hpp"
#include "security/errors.hpp"
#include "security/handshake_rules.hpp"
#include "security/keys.hpp"
#include "security/secure_channel.hpp"
#include "security/session_table.hpp"
#include "security/tls_over_channel.hpp"
#include "transport/admission.hpp"

namespace rmig::security {

namespace {

using namespace rules;
using Clock = std::chrono::steady_clock;
using transport::Millis;

// The transport's channel while its peer authenticates: notes the first
// frame the peer sends, so that the bounds push out a stranger who stalls
// before a peer who talks (transport::Admission's `stalled`).
class Watched final : public transport::Channel {
public:
    Watched(std::unique_ptr<transport::Channel> inner, std::atomic<bool>& heard)
        : inner_(std::move(inner)), heard_(&heard) {}
    void send(wire::FrameType type, std::span<const std::byte> payload) override { inner_->send(type, payload); }
    wire::FrameType recv(std::vector<std::byte>& payload) override {
        auto t = inner_->recv(payload);
        if (heard_) heard_->store(true);
        return t;
    }
    void shutdown() override { inner_->shutdown(); }
    const wire::Hello& peer_hello() const override { return inner_->peer_hello(); }
    const std::string& name() const override { return inner_->name(); }
    void forget_job() { heard_ = nullptr; }  // the job it reported to is over
    std::unique_ptr<transport::Channel> release() { return std::move(inner_); }

private:
    std::unique_ptr<transport::Channel> inner_;
    std::atomic<bool>* heard_;
};

// What authentication left for the owner: the channel, and for a session's
// first control channel the TLS exchange that still has to confirm.
struct Proven {
    std::unique_ptr<transport::Incoming> in;  // kept for hello() and peer()
    std::unique_ptr<Watched> ch;
    std::unique_ptr<AcceptedTls> tls;  // opens_session only; uses *ch
    SessionSecret secret{};
};

// Sends `why` as an ABORT frame and closes; the peer is gone or told.
void turn_away(transport::Channel& ch, const std::string& why) {
    try {
        ch.send(wire::FrameType::abort, bytes_of(why));
    } catch (const Error&) {
    }
    ch.shutdown();
}

class AuthenticatedIncoming final : public transport::Incoming {
public:
    AuthenticatedIncoming(Proven p, std::shared_ptr<const Context> ctx, std::shared_ptr<SessionTable> sessions)
        : p_(std::move(p)), ctx_(std::move(ctx)), sessions_(std::move(sessions)) {}
    ~AuthenticatedIncoming() override {
        if (p_.ch) turn_away(*p_.ch, refusal_text(wire::HelloStatus::refused));
    }

    const wire::Hello& hello() const override { return p_.in->hello(); }
    const std::string& peer() const override { return p_.in->peer(); }

    std::unique_ptr<transport::Channel> accept(const wire::Hello& reply) override {
        const wire::Hello& asked = hello();
        if (reply.session != asked.session || reply.channel_count != asked.channel_count ||
            reply.role != wire::Role::destination || ((reply.caps ^ asked.caps) & ~kAuthCaps))
            throw std::logic_error("an authenticating listener answers each hello as its destination; "
                                   "accept() was given another reply");
        if (opens_session(asked)) {
            auto lease = sessions_->add(asked.session, p_.secret);
            p_.tls->confirm();
            p_.tls.reset();
            auto ch = p_.ch->release();
            p_.ch.reset();
            log::info("session ", wire::to_hex(asked.session).substr(0, 8), " from ", peer(), ": authenticated (",
                      ctx_->describe(), ctx_->encrypt() ? ", AES-256-GCM)" : ", not encrypted)");
            return std::make_unique<SecureChannel>(std::move(ch), p_.secret, asked.session, false, std::move(lease),
                                                   ctx_->config().seal_in_place);
        }
        auto ch = p_.ch->release();
        p_.ch.reset();
        if (!sessions_->claim(asked.session, asked.channel_id)) {
            std::string why = cat(what_channel(asked), " of this session is already connected");
            turn_away(*ch, why);
            throw AuthError(cat(ch->name(), ": refused: ", why));
        }
        ch->send(wire::FrameType::control, bytes_of(kChannelOk, sizeof kChannelOk - 1));
        if (!sealed(*ctx_, asked)) return ch;
        return std::make_unique<SecureChannel>(std::move(ch), p_.secret, asked.session, false, nullptr,
                                               ctx_->config().seal_in_place);
    }

    void refuse(wire::HelloStatus status) override {
        p_.tls.reset();
        if (auto ch = std::move(p_.ch)) turn_away(*ch, refusal_text(status));
    }

private:
    Proven p_;
    std::shared_ptr<const Context> ctx_;
    std::shared_ptr<SessionTable> sessions_;
};

// One handshake, from the queue to its end; cancel() may come from the pump.
struct Job {
    uint64_t id = 0;
    std::unique_ptr<transport::Incoming> in;
    std::string peer;
    Clock::time_point started{};
    std::atomic<bool> heard{false};  // the peer sent a frame after its hello
    std::mutex mu;
    transport::Channel* ch = nullptr;  // once accepted at the transport
    bool cancelled = false;

    void cancel() {
        std::lock_guard lk(mu);
        cancelled = true;
        if (ch)
            ch->shutdown();
        else if (in)  // gone once the handshake succeeded
            in->cancel();
    }
};

class SecureListener final : public transport::Listener {
public:
    SecureListener(std::unique_ptr<transport::Listener> inner, std::shared_ptr<const Context> ctx,
                   const transport::Options& opts)
        : inner_(std::move(inner)), ctx_(std::move(ctx)), timeout_(opts.handshake_timeout),
          admission_(opts.pending), ready_limit_(std::max<size_t>(opts.pending.total, 1)),
          opts_pending_total_(std::max<size_t>(opts.pending.total, 1)) {
        pump_ = std::thread([this] { pump(); });
    }

    ~SecureListener() override {
        {
            std::lock_guard lk(mu_);
            stop_ = true;
            for (auto& [id, job] : running_) job->cancel();
        }
        work_cv_.notify_all();
        pump_.join();
        for (auto& w : workers_) w.join();
    }

    std::unique_ptr<transport::Incoming> next(Millis timeout) override {
        std::unique_lock lk(mu_);
        if (!ready_cv_.wait_for(lk, timeout, [&] { return !ready_.empty() || pump_error_; })) return nullptr;
        if (ready_.empty()) {
            auto e = std::exchange(pump_error_, nullptr);
            std::rethrow_exception(e);
        }
        auto in = std::move(ready_.front());
        ready_.pop_front();
        return in;
    }

    std::string address() const override { return inner_->address(); }

private:
    std::optional<wire::HelloStatus> judge(const wire::Hello& h) const {
        if (!ctx_) {
            if (h.caps & kAuthCaps) return wire::HelloStatus::auth_unsupported;
            return std::nullopt;
        }
        if (!(h.caps & wire::kCapAuth)) return wire::HelloStatus::auth_required;
        if (bool(h.caps & wire::kCapEncrypt) != ctx_->encrypt()) return wire::HelloStatus::security_mismatch;
        if (!opens_session(h) && !sessions_->known(h.session)) return wire::HelloStatus::unknown_session;
        return std::nullopt;
    }

    // Caller holds mu_. Bounded: the oldest waiting for its owner goes first.
    void hand_out(std::unique_ptr<transport::Incoming> in) {
        if (ready_.size() >= ready_limit_) {
            dropped_.warn("refusing ", what_channel(ready_.front()->hello()), " from ", ready_.front()->peer(),
                          ": ", ready_limit_, " channels already wait for the owner");
            ready_.front()->refuse(wire::HelloStatus::busy);
            ready_.pop_front();
        }
        ready_.push_back(std::move(in));
        ready_cv_.notify_one();
    }

    // Takes hellos from the transport, judges them and queues them for the
    // workers; drops what the bounds say.
    void pump() {
        for (;;) {
            {
                std::lock_guard lk(mu_);
                if (stop_) return;
            }
            std::unique_ptr<transport::Incoming> in;
            try {
                in = inner_->next(Millis(100));
            } catch (...) {
                std::lock_guard lk(mu_);
                pump_error_ = std::current_exception();
                ready_cv_.notify_all();
                std::this_thread::sleep_for(Millis(100));  // a broken transport: do not spin
                continue;
            }
            if (!in) continue;
            if (auto status = judge(in->hello())) {
                dropped_.warn("refusing ", what_channel(in->hello()), " from ", in->peer(), ": ",
                              wire::to_string(*status));
                in->refuse(*status);
                continue;
            }
            std::lock_guard lk(mu_);
            if (!ctx_) {
                hand_out(std::move(in));
                continue;
            }
            auto job = std::make_shared<Job>();
            job->id = next_id_++;
            job->peer = in->peer();
            job->in = std::move(in);
            auto stalled = [this](uint64_t id) {
                auto it = running_.find(id);
                return it == running_.end() || !it->second->heard;  // waiting ones have said nothing yet
            };
            for (uint64_t victim : admission_.admit(job->id, admission_key(job->in->hello(), job->peer), stalled))
                drop_locked(victim);
            waiting_.push_back(std::move(job));
            // A worker per unfinished handshake, up to the admission bound: a
            // stranger who stalls holds only his own, never a real peer's turn.
            if (waiting_.size() > idle_ && workers_.size() < opts_pending_total_)
                workers_.emplace_back([this] { work(); });
            work_cv_.notify_one();
        }
    }

    // Channels that name a session already authenticated here are counted by
    // session, not with the strangers at their address: a session id is 128
    // random bits a stranger cannot guess, and the token proves it anyway.
    std::string admission_key(const wire::Hello& h, const std::string& peer) const {
        if (!opens_session(h) && sessions_->known(h.session)) return "session " + wire::to_hex(h.session);
        return transport::peer_address(peer);
    }

    // An unfinished handshake pushed out by newer ones: a waiting job is
    // refused, a running one cancelled (its worker then ends it).
    void drop_locked(uint64_t id) {
        const char* why = "too many unauthenticated connections; newer ones go first";
        for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
            if ((*it)->id != id) continue;
            dropped_.warn("dropped ", what_channel((*it)->in->hello()), " from ", (*it)->peer, ": ", why);
            (*it)->in->refuse(wire::HelloStatus::busy);
            waiting_.erase(it);
            return;
        }
        if (auto it = running_.find(id); it != running_.end()) {
            dropped_.warn("dropped the handshake of ", it->second->peer, ": ", why);
            it->second->cancel();
        }
    }

    void work() {
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock lk(mu_);
                ++idle_;
                work_cv_.wait(lk, [&] { return stop_ || !waiting_.empty(); });
                --idle_;
                if (stop_) return;
                job = std::move(waiting_.back());  // newest first: a flood's old connections wait
                waiting_.pop_back();
                job->started = Clock::now();
                running_[job->id] = job;
            }
            auto proven = authenticate(*job);
            std::lock_guard lk(mu_);
            running_.erase(job->id);
            admission_.remove(job->id);
            if (proven && !stop_) hand_out(std::make_unique<AuthenticatedIncoming>(std::move(*proven), ctx_, sessions_));
        }
    }

    std::optional<Proven> authenticate(Job& job) {
        // Outside the try: the channel must outlive job.ch, which cancel()
        // may use until it is cleared below.
        Proven p;
        try {
            const wire::Hello& asked = job.in->hello();
            wire::Hello r = asked;
            r.role = wire::Role::destination;
            r.caps = (r.caps & ~kAuthCaps) | wire::kCapAuth | (ctx_->encrypt() ? wire::kCapEncrypt : 0u);
            p.ch = std::make_unique<Watched>(job.in->accept(r), job.heard);
            {
                std::lock_guard lk(job.mu);
                if (job.cancelled) throw AuthError(cat(p.ch->name(), ": dropped before it authenticated"));
                job.ch = p.ch.get();
            }
            if (opens_session(asked)) {
                p.tls = std::make_unique<AcceptedTls>(*p.ch, *ctx_, asked.session, timeout_);
                p.secret = p.tls->secret();
            } else {
                p.secret = check_token(*p.ch, asked);
            }
            std::lock_guard lk(job.mu);
            if (job.cancelled) throw AuthError(cat(p.ch->name(), ": dropped before it authenticated"));
            job.ch = nullptr;
            p.ch->forget_job();
            p.in = std::move(job.in);
            return p;
        } catch (const std::exception& e) {
            // Wrong key, a stranger, a dropped handshake: the peer was told
            // where it could be; the owner never sees it.
            dropped_.warn(e.what());
            std::lock_guard lk(job.mu);
            job.ch = nullptr;
            return std::nullopt;
        }
    }

    // Reads and checks a channel's token; on any failure tells the peer why
    // in an ABORT frame and throws AuthError. No other frame is read first.
    SessionSecret check_token(transport::Channel& ch, const wire::Hello& asked) {
        ChannelDeadline deadline(ch, timeout_);
        auto refuse = [&](const std::string& why) -> AuthError {
            try {
                ch.send(wire::FrameType::abort, bytes_of(why));
            } catch (const Error&) {
            }
            return AuthError(cat(ch.name(), ": refused: ", why));
        };
        std::vector<std::byte> frame;
        try {
            wire::FrameType type = ch.recv(frame);
            if (type != wire::FrameType::control) throw refuse("the first frame is not a channel token");
            TokenFrame t = decode_token_frame(frame, ch.name());
            if (t.session != asked.session || t.channel != asked.channel_id)
                throw refuse("the token names another session or channel than the hello");
            auto secret = sessions_->find(asked.session);
            if (!secret) throw refuse("its session is not (or no longer) authenticated here");
            if (!token_matches(t, *secret)) throw refuse("wrong channel token (not from the authenticated session)");
            return *secret;
        } catch (const AuthError&) {
            throw;
        } catch (const Error& e) {
            if (deadline.expired())
                throw AuthError(cat(ch.name(), ": no channel token within ", timeout_.count(), " ms"));
            throw refuse(cat("bad channel token: ", e.what()));
        }
    }

    std::unique_ptr<transport::Listener> inner_;
    std::shared_ptr<const Context> ctx_;
    std::shared_ptr<SessionTable> sessions_ = std::make_shared<SessionTable>();
    Millis timeout_;
    log::Limiter dropped_{"refused or dropped connections"};

    std::mutex mu_;
    std::condition_variable work_cv_, ready_cv_;
    transport::Admission admission_;  // waiting_ and running_
    std::deque<std::shared_ptr<Job>> waiting_;
    std::map<uint64_t, std::shared_ptr<Job>> running_;
    std::deque<std::unique_ptr<transport::Incoming>> ready_;
    size_t ready_limit_;
    size_t opts_pending_total_;  // most workers
    size_t idle_ = 0;            // workers waiting for a job
    std::exception_ptr pump_error_;
    uint64_t next_id_ = 0;
    bool stop_ = false;
    std::vector<std::thread> workers_;
    std::thread pump_;  // last: started once everything above exists
};

}  // namespace

std::unique_ptr<transport::Listener> secure_listener(std::unique_ptr<transport::Listener> inner,
                                                     std::shared_ptr<const Context> ctx,
                                                     const transport::Options& opts) {
    return std::make_unique<SecureListener>(std::move(inner), std::move(ctx), opts);
}

}  // namespace rmig::security
