#include "security/secure_channel.hpp"

#include <algorithm>
#include <array>

#include "common/error.hpp"
#include "common/log.hpp"
#include "security/deadline.hpp"
#include "security/errors.hpp"
#include "security/handshake_rules.hpp"
#include "security/keys.hpp"
#include "security/tls_over_channel.hpp"

namespace rmig::security {

using namespace rules;

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
            if (type == wire::FrameType::abort) {
                if (auto status = parse_refusal(text_of(answer)))
                    throw Refused(cat(ch->name(), ": refused ", asked.kind == wire::ChannelKind::control
                                                                    ? std::string("control channel")
                                                                    : cat("channel ", asked.channel_id),
                                      ": ", wire::to_string(*status)));
                throw AuthError(cat(ch->name(), ": the receiver refused the channel: ", text_of(answer)));
            }
            if (type != wire::FrameType::control || text_of(answer) != kChannelOk)
                throw ProtocolError(cat(ch->name(), ": unexpected answer to the channel token"));
        } catch (const AuthError&) {
            throw;
        } catch (const Refused&) {
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

}  // namespace rmig::security
