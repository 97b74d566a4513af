#include "security/secure_channel.hpp"

#include <algorithm>
#include <array>

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

// The first control channel of a session opens it (TLS, which yields the
// session secret); a control channel with an id of its own reopens the
// session's control after its connection was lost, and proves itself with a
// token like a data channel: the secret already exists and the data channels'
// keys hang off it (docs/security.md).
bool opens_session(const wire::Hello& h) { return h.kind == wire::ChannelKind::control && h.channel_id == 0; }

// Control frames are always encrypted; data frames as the context says.
bool sealed(const Context& ctx, const wire::Hello& h) { return ctx.encrypt() || h.kind == wire::ChannelKind::control; }

std::string what_channel(const wire::Hello& h) {
    if (h.kind != wire::ChannelKind::control) return cat("channel ", h.channel_id);
    return h.channel_id == 0 ? std::string("the control channel") : cat("the control channel (reopened as ", h.channel_id, ")");
}

}  // namespace

SecureChannel::SecureChannel(std::unique_ptr<transport::Channel> inner, const SessionSecret& secret,
                             const wire::SessionId& session, bool connector, std::shared_ptr<void> lease,
                             bool in_place)
    : inner_(std::move(inner)),
      lease_(std::move(lease)),
      sealer_(derive_frame_key(secret, session, inner_->peer_hello().channel_id,
                               connector ? Direction::to_acceptor : Direction::to_connector),
              inner_->peer_hello().channel_id),
      opener_(derive_frame_key(secret, session, inner_->peer_hello().channel_id,
                               connector ? Direction::to_connector : Direction::to_acceptor),
              inner_->peer_hello().channel_id, inner_->name()),
      seal_in_place_(in_place && inner_->fills_in_place()),
      open_in_place_(in_place && inner_->recv_into_is_direct()) {}

SecureChannel::PathCounts SecureChannel::path_counts() const {
    return {sealed_in_place_.load(std::memory_order_relaxed), sealed_buffered_.load(std::memory_order_relaxed),
            opened_in_place_.load(std::memory_order_relaxed), opened_buffered_.load(std::memory_order_relaxed)};
}

void SecureChannel::send(wire::FrameType type, std::span<const std::byte> payload) {
    std::lock_guard lk(send_mu_);
    if (send_broken_) throw LinkError(cat(name(), ": an earlier encrypted frame was abandoned half-way"));
    if (seal_in_place_) {
        // Encrypt + tag straight into the registered slots, each posted as
        // soon as it is full: the cipher's write is the only copy.
        size_t sealed = sealer_.begin(type, payload);
        try {
            inner_->send_filled(wire::FrameType::data, sealed,
                                [&](std::span<std::byte> dst, size_t offset) { sealer_.write(dst, offset); });
        } catch (...) {
            send_broken_ = true;  // its counter is spent: the peer could never open the next frame
            throw;
        }
        sealed_in_place_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    // Sealed into out_, which only grows: resizing it to each frame would
    // zero-fill the difference whenever a frame is longer than the last one
    // (the relay's frames vary from ~200 KiB to 1 MiB).
    size_t sealed = sealer_.begin(type, payload);
    if (out_.size() < sealed) out_.resize(sealed);
    std::span<std::byte> frame(out_.data(), sealed);
    sealer_.write(frame, 0);
    inner_->send(wire::FrameType::data, frame);
    sealed_buffered_.fetch_add(1, std::memory_order_relaxed);
}

namespace {

void expect_data(const SecureChannel& ch, wire::FrameType t, uint64_t counter) {
    if (t != wire::FrameType::data)
        throw ProtocolError(cat(ch.name(), ": plaintext ", wire::to_string(t), " frame where encrypted frame ",
                                counter, " was due"));
}

}  // namespace

// The sealed frame (prefix | ciphertext | tag) may come in several inner
// frames. Each piece of ciphertext is read from the receive slot (rdma) or
// the socket (tcp) straight into `payload`, the slot is released, and the
// piece is decrypted there while it is in cache. (Over tcp this replaced
// reading into a channel buffer and decrypting out of it: one buffer less to
// write, re-read and zero-fill, ~9% of an encrypted relay's CPU.) Not decrypted in the slot itself: the peer can write
// into the ring, and OpenSSL's GCM reads its input twice (GHASH, then the
// keystream XOR), so a byte changed in between could pass the tag check and
// still change the plaintext. The copy into `payload` is the one rdma's
// recv() makes anyway.
wire::FrameType SecureChannel::recv_in_place(std::vector<std::byte>& payload) {
    std::array<std::byte, kSealPrefix> prefix{};
    std::array<std::byte, kTagSize> tag{};
    size_t at = 0, len = 0, total = SIZE_MAX;  // total: known once the prefix is in
    try {
        while (at < total) {
            size_t ct_at = 0, ct_len = 0;  // the ciphertext this inner frame carried, now in `payload`
            inner_->recv_into([&](wire::FrameType t, size_t length, transport::PayloadReader& reader) {
                expect_data(*this, t, opener_.counter());
                size_t start = at;
                auto too_long = [&] {
                    return ProtocolError(cat(name(), ": encrypted frame ", opener_.counter(), " runs past ", total,
                                             " bytes, its length (padded, or two frames in one)"));
                };
                if (length > total - at) throw too_long();
                size_t left = length;
                while (left > 0) {
                    size_t k;
                    if (at < kSealPrefix) {
                        k = std::min(left, kSealPrefix - at);
                        std::span<std::byte> piece(prefix.data() + at, k);
                        reader.read({&piece, 1});
                        if (at + k == kSealPrefix) {
                            len = opener_.begin(prefix);
                            total = kSealOverhead + len;
                            payload.resize(len);  // not cleared first: a same-size frame costs no memset
                            if (length > total - start) throw too_long();
                        }
                    } else if (at < kSealPrefix + len) {
                        k = std::min(left, kSealPrefix + len - at);
                        std::span<std::byte> piece(payload.data() + (at - kSealPrefix), k);
                        reader.read({&piece, 1});
                        ct_at = at - kSealPrefix;
                        ct_len = k;
                    } else {
                        k = std::min(left, total - at);
                        std::span<std::byte> piece(tag.data() + (at - kSealPrefix - len), k);
                        reader.read({&piece, 1});
                    }
                    at += k;
                    left -= k;
                }
            });
            // Decrypted once recv_into has returned: the slot is back with the
            // sender meanwhile, and the piece's checksum has been verified.
            opener_.decrypt_in_place(std::span(payload).subspan(ct_at, ct_len));
        }
        auto type = opener_.finish(tag);
        opened_in_place_.fetch_add(1, std::memory_order_relaxed);
        return type;
    } catch (...) {
        std::fill(payload.begin(), payload.end(), std::byte{0});  // never hand out unauthenticated bytes
        payload.clear();
        throw;
    }
}

wire::FrameType SecureChannel::recv(std::vector<std::byte>& payload) {
    std::lock_guard lk(recv_mu_);
    if (open_in_place_) return recv_in_place(payload);
    auto expect_data = [&](wire::FrameType t) { rmig::security::expect_data(*this, t, opener_.counter()); };
    expect_data(inner_->recv(in_));
    // A transport may carry one sealed frame in several (rdma: one per ring
    // slot); gather them by the length prefix.
    size_t want = opener_.sealed_size(in_);
    while (in_.size() < want) {
        expect_data(inner_->recv(piece_));
        in_.insert(in_.end(), piece_.begin(), piece_.end());
    }
    auto type = opener_.open(in_, payload);
    opened_buffered_.fetch_add(1, std::memory_order_relaxed);
    return type;
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
    if (opens_session(asked)) {
        SessionSecret secret = authenticate_control(*ch, ctx, false, asked.session, timeout);
        auto lease = ctx.connected_sessions().add(asked.session, secret);
        log::debug(ch->name(), ": authenticated with ", ctx.describe());
        return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, true, std::move(lease),
                                               ctx.config().seal_in_place);
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
    if (!sealed(ctx, asked)) return ch;
    return std::make_unique<SecureChannel>(std::move(ch), *secret, asked.session, true, nullptr,
                                           ctx.config().seal_in_place);
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
        if (opens_session(asked)) {
            std::shared_ptr<void> lease;
            SessionSecret secret = authenticate_control(
                *ch, *ctx_, true, asked.session, timeout_,
                [&](const SessionSecret& s) { lease = sessions_->add(asked.session, s); });
            log::info("session ", wire::to_hex(asked.session).substr(0, 8), " from ", peer(), ": authenticated (",
                      ctx_->describe(), ctx_->encrypt() ? ", AES-256-GCM)" : ", not encrypted)");
            return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, false, std::move(lease),
                                                   ctx_->config().seal_in_place);
        }
        SessionSecret secret = check_token(*ch, asked);
        if (!sealed(*ctx_, asked)) return ch;
        return std::make_unique<SecureChannel>(std::move(ch), secret, asked.session, false, nullptr,
                                               ctx_->config().seal_in_place);
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
        if (!opens_session(h) && !sessions_->known(h.session))
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
