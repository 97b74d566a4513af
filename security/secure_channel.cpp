#include "security/secure_channel.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "security/deadline.hpp"
#include "security/errors.hpp"
#include "security/keys.hpp"
#include "security/tls_over_channel.hpp"

namespace rmig::security {

namespace {

constexpr uint32_t kAuthCaps = wire::kCapAuth | wire::kCapEncrypt;
constexpr char kChannelOk[] = "rmig-channel-ok";

std::span<const std::byte> bytes_of(const char* s, size_t n) { return {reinterpret_cast<const std::byte*>(s), n}; }

std::string text_of(const std::vector<std::byte>& b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string what_channel(const wire::Hello& h) {
    return h.kind == wire::ChannelKind::control ? std::string("the control channel") : cat("channel ", h.channel_id);
}

}  // namespace

SecureChannel::SecureChannel(std::unique_ptr<transport::Channel> inner, const SessionSecret& secret,
                             const wire::SessionId& session, bool connector, std::shared_ptr<void> lease)
    : inner_(std::move(inner)),
      lease_(std::move(lease)),
      sealer_(derive_frame_key(secret, session, inner_->peer_hello().channel_id,
                               connector ? Direction::to_acceptor : Direction::to_connector),
              inner_->peer_hello().channel_id),
      opener_(derive_frame_key(secret, session, inner_->peer_hello().channel_id,
                               connector ? Direction::to_connector : Direction::to_acceptor),
              inner_->peer_hello().channel_id, inner_->name()) {}

void SecureChannel::send(wire::FrameType type, std::span<const std::byte> payload) {
    std::lock_guard lk(send_mu_);
    sealer_.seal(type, payload, out_);
    inner_->send(wire::FrameType::data, out_);
}

wire::FrameType SecureChannel::recv(std::vector<std::byte>& payload) {
    std::lock_guard lk(recv_mu_);
    auto expect_data = [&](wire::FrameType t) {
        if (t != wire::FrameType::data)
            throw ProtocolError(cat(name(), ": plaintext ", wire::to_string(t), " frame where encrypted frame ",
                                    opener_.counter(), " was due"));
    };
    expect_data(inner_->recv(in_));
    // A transport may carry one sealed frame in several (rdma: one per ring
    // slot); gather them by the length prefix.
    size_t want = opener_.sealed_size(in_);
    while (in_.size() < want) {
        expect_data(inner_->recv(piece_));
        in_.insert(in_.end(), piece_.begin(), piece_.end());
    }
    return opener_.open(in_, payload);
}

wire::Hello offer(const Context& ctx, const wire::Hello& asked) {
    wire::Hello h = asked;
    h.caps = (h.caps & ~kAuthCaps) | wire::kCapAuth | (ctx.encrypt() ? wire::kCapEncrypt : 0u);
    return h;
}

std::unique_ptr<transport::Channel> secure_connected(std::unique_ptr<transport::Channel> ch, const Context& ctx,
                                                     const wire::Hello& asked, transport::Millis timeout) {
    const wire::Hello& reply = ch->peer_hello();
    if (!(reply.caps & wire::kCapAuth))
        throw AuthError(cat(ch->name(), ": the receiver accepted without authentication (an rmig without "
                                        "security/?); refusing to send anything over it"));
    if (bool(reply.caps & wire::kCapEncrypt) != ctx.encrypt())
        throw AuthError(cat(ch->name(), ": ", wire::to_string(wire::HelloStatus::security_mismatch)));
    if (asked.kind == wire::ChannelKind::control) {
        SessionSecret secret = authenticate_control(*ch, ctx, false, asked.session, timeout);
        auto lease = ctx.connected_sessions().add(asked.session, secret);
        log::debug(ch->name(), ": authenticated with ", ctx.describe());
        return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, true, std::move(lease));
    }
    auto secret = ctx.connected_sessions().find(asked.session);
    if (!secret)
        throw AuthError(cat(ch->name(), ": session ", wire::to_hex(asked.session).substr(0, 8),
                            " has no authenticated control channel here; connect the control channel first"));
    TokenFrame t{asked.channel_id, asked.session, channel_token(*secret, asked.session, asked.channel_id)};
    {
        ChannelDeadline deadline(*ch, timeout);
        try {
            ch->send(wire::FrameType::control, encode_token_frame(t));
            std::vector<std::byte> answer;
            wire::FrameType type = ch->recv(answer);
            if (type == wire::FrameType::abort)
                throw AuthError(cat(ch->name(), ": the receiver refused the channel: ", text_of(answer)));
            if (type != wire::FrameType::control || text_of(answer) != kChannelOk)
                throw ProtocolError(cat(ch->name(), ": unexpected answer to the channel token"));
        } catch (const AuthError&) {
            throw;
        } catch (const Error& e) {
            if (deadline.expired())
                throw AuthError(cat(ch->name(), ": the receiver did not answer the channel token within ",
                                    timeout.count(), " ms"));
            throw AuthError(cat("channel authentication: ", e.what()));
        }
    }
    if (!ctx.encrypt()) return ch;
    return std::make_unique<SecureChannel>(std::move(ch), *secret, asked.session, true);
}

namespace {

class SecureIncoming final : public transport::Incoming {
public:
    SecureIncoming(std::unique_ptr<transport::Incoming> inner, std::shared_ptr<const Context> ctx,
                   std::shared_ptr<SessionTable> sessions, transport::Millis timeout)
        : inner_(std::move(inner)), ctx_(std::move(ctx)), sessions_(std::move(sessions)), timeout_(timeout) {}

    const wire::Hello& hello() const override { return inner_->hello(); }
    const std::string& peer() const override { return inner_->peer(); }
    void refuse(wire::HelloStatus status) override { inner_->refuse(status); }

    std::unique_ptr<transport::Channel> accept(const wire::Hello& reply) override {
        const wire::Hello& asked = inner_->hello();
        wire::Hello r = reply;
        r.caps = (r.caps & ~kAuthCaps) | wire::kCapAuth | (ctx_->encrypt() ? wire::kCapEncrypt : 0u);
        auto ch = inner_->accept(r);
        if (asked.kind == wire::ChannelKind::control) {
            std::shared_ptr<void> lease;
            SessionSecret secret = authenticate_control(
                *ch, *ctx_, true, asked.session, timeout_,
                [&](const SessionSecret& s) { lease = sessions_->add(asked.session, s); });
            log::info("session ", wire::to_hex(asked.session).substr(0, 8), " from ", peer(), ": authenticated (",
                      ctx_->describe(), ctx_->encrypt() ? ", AES-256-GCM)" : ", not encrypted)");
            return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, false, std::move(lease));
        }
        SessionSecret secret = check_token(*ch, asked);
        if (!ctx_->encrypt()) return ch;
        return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, false);
    }

private:
    // Reads and checks the data channel's token; on any failure tells the peer
    // why in an ABORT frame and throws AuthError. No other frame is read first.
    SessionSecret check_token(transport::Channel& ch, const wire::Hello& asked) {
        ChannelDeadline deadline(ch, timeout_);
        auto refuse = [&](const std::string& why) -> AuthError {
            try {
                ch.send(wire::FrameType::abort, bytes_of(why.data(), why.size()));
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
            if (!sessions_->claim(asked.session, asked.channel_id))
                throw refuse(cat("channel ", asked.channel_id, " of this session is already connected"));
            ch.send(wire::FrameType::control, bytes_of(kChannelOk, sizeof kChannelOk - 1));
            return *secret;
        } catch (const AuthError&) {
            throw;
        } catch (const Error& e) {
            if (deadline.expired())
                throw AuthError(cat(ch.name(), ": no channel token within ", timeout_.count(), " ms"));
            throw refuse(cat("bad channel token: ", e.what()));
        }
    }

    std::unique_ptr<transport::Incoming> inner_;
    std::shared_ptr<const Context> ctx_;
    std::shared_ptr<SessionTable> sessions_;
    transport::Millis timeout_;
};

class SecureListener final : public transport::Listener {
public:
    SecureListener(std::unique_ptr<transport::Listener> inner, std::shared_ptr<const Context> ctx,
                   transport::Millis timeout)
        : inner_(std::move(inner)), ctx_(std::move(ctx)), timeout_(timeout) {}

    std::unique_ptr<transport::Incoming> next(transport::Millis timeout) override {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto left = std::chrono::duration_cast<transport::Millis>(deadline - std::chrono::steady_clock::now());
            auto in = inner_->next(std::max(left, transport::Millis(0)));
            if (!in) return nullptr;
            if (auto status = judge(in->hello())) {
                log::warn("refusing ", what_channel(in->hello()), " from ", in->peer(), ": ",
                          wire::to_string(*status));
                in->refuse(*status);
                if (left.count() <= 0) return nullptr;
                continue;
            }
            if (!ctx_) return in;
            return std::make_unique<SecureIncoming>(std::move(in), ctx_, sessions_, timeout_);
        }
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
        if (h.kind == wire::ChannelKind::data && !sessions_->known(h.session))
            return wire::HelloStatus::unknown_session;
        return std::nullopt;
    }

    std::unique_ptr<transport::Listener> inner_;
    std::shared_ptr<const Context> ctx_;
    std::shared_ptr<SessionTable> sessions_ = std::make_shared<SessionTable>();
    transport::Millis timeout_;
};

}  // namespace

std::unique_ptr<transport::Listener> secure_listener(std::unique_ptr<transport::Listener> inner,
                                                     std::shared_ptr<const Context> ctx,
                                                     transport::Millis timeout) {
    return std::make_unique<SecureListener>(std::move(inner), std::move(ctx), timeout);
}

}  // namespace rmig::security
