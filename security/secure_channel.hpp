// Decorators that put security/ under any transport (tcp, rdma, later dpdk):
//   SecureChannel   seals every frame with AES-256-GCM (frame_cipher.hpp);
//   secure_connect  offers the auth/encrypt capabilities in the hello, then
//                   authenticates the channel (TLS on the control channel, a
//                   token on data channels) before handing it out;
//   secure_listener refuses hellos that do not match this side's policy and
//                   authenticates each accepted channel the same way.
// transport::listen/connect apply them when Options::security is set.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "security/context.hpp"
#include "security/frame_cipher.hpp"
#include "transport/channel.hpp"

namespace rmig::security {

class SecureChannel final : public transport::Channel {
public:
    // `connector`: this side opened the channel (picks the key of each
    // direction). `lease` is kept alive with the channel (a session table entry).
    SecureChannel(std::unique_ptr<transport::Channel> inner, const SessionSecret& secret,
                  const wire::SessionId& session, bool connector, std::shared_ptr<void> lease = {});

    void send(wire::FrameType type, std::span<const std::byte> payload) override;
    wire::FrameType recv(std::vector<std::byte>& payload) override;
    void shutdown() override { inner_->shutdown(); }
    const wire::Hello& peer_hello() const override { return inner_->peer_hello(); }
    const std::string& name() const override { return inner_->name(); }
    // One-sided writes would bypass the cipher: memory mode uses page batches.
    transport::OneSided* one_sided() override { return nullptr; }
    std::string local_device() const override { return inner_->local_device(); }

private:
    std::unique_ptr<transport::Channel> inner_;
    std::shared_ptr<void> lease_;
    std::mutex send_mu_, recv_mu_;
    FrameSealer sealer_;
    FrameOpener opener_;
    std::vector<std::byte> out_, in_, piece_;
};

// The hello to send for `asked` under `ctx`: kCapAuth, and kCapEncrypt if on.
wire::Hello offer(const Context& ctx, const wire::Hello& asked);

// `ch` was opened with offer(ctx, asked) and accepted. Authenticates it and
// returns the channel to use. Throws AuthError / Error with the reason.
std::unique_ptr<transport::Channel> secure_connected(std::unique_ptr<transport::Channel> ch, const Context& ctx,
                                                     const wire::Hello& asked, transport::Millis timeout);

// Wraps `inner`. With ctx == nullptr the listener runs plaintext and refuses
// hellos that ask for authentication; otherwise it refuses hellos without it.
std::unique_ptr<transport::Listener> secure_listener(std::unique_ptr<transport::Listener> inner,
                                                     std::shared_ptr<const Context> ctx,
                                                     transport::Millis timeout);

}  // namespace rmig::security
