// Decorators that put security/ over any transport (tcp, rdma, dpdk):
//   SecureChannel   seals every frame with AES-256-GCM (frame_cipher.hpp);
//   secure_connect  offers the auth/encrypt capabilities in the hello, then
//                   authenticates the channel (TLS on the control channel, a
//                   token on data channels) before handing it out;
//   secure_listener refuses hellos that do not match this side's policy and
//                   authenticates each accepted channel the same way.
// security::listen/connect (secure_transport.hpp) apply them above
// transport::listen/connect.
#pragma once

#include <atomic>
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
    // `in_place`: where the inner channel fills_in_place() (rdma), seal
    // straight into its registered send slots and open out of its receive
    // slots into the caller's buffer; false keeps the buffered path (seal into
    // a channel buffer that the transport copies), for measuring the difference.
    SecureChannel(std::unique_ptr<transport::Channel> inner, const SessionSecret& secret,
                  const wire::SessionId& session, bool connector, std::shared_ptr<void> lease = {},
                  bool in_place = true);

    void send(wire::FrameType type, std::span<const std::byte> payload) override;
    wire::FrameType recv(std::vector<std::byte>& payload) override;
    void shutdown() override { inner_->shutdown(); }
    const wire::Hello& peer_hello() const override { return inner_->peer_hello(); }
    const std::string& name() const override { return inner_->name(); }
    // One-sided writes would bypass the cipher: memory mode uses page batches.
    transport::OneSided* one_sided() override { return nullptr; }
    // The seal's prefix and tag travel in the inner frame too: a payload of
    // the inner limit would not fit (found by the Channel conformance suite).
    size_t max_frame_payload() const override { return kMaxSealedPlaintext; }
    std::string local_device() const override { return inner_->local_device(); }
    bool limit_in_flight(size_t bytes) override { return inner_->limit_in_flight(bytes); }
    std::optional<bool> peer_acknowledging(transport::Millis within) const override {
        return inner_->peer_acknowledging(within);
    }

    // Which path each frame took (tests and benchmarks prove the in-place one).
    struct PathCounts {
        uint64_t sealed_in_place = 0;   // encrypted straight into the transport's send memory
        uint64_t sealed_buffered = 0;   // encrypted into a channel buffer, then copied by the transport
        uint64_t opened_in_place = 0;   // read from the receive slot into the caller's buffer, decrypted there
        uint64_t opened_buffered = 0;   // gathered in a channel buffer, then decrypted into the caller's
    };
    PathCounts path_counts() const;

private:
    wire::FrameType recv_in_place(std::vector<std::byte>& payload);

    std::unique_ptr<transport::Channel> inner_;
    std::shared_ptr<void> lease_;
    std::mutex send_mu_, recv_mu_;
    FrameSealer sealer_;
    FrameOpener opener_;
    std::vector<std::byte> out_, in_, piece_;
    bool seal_in_place_;  // into the transport's registered send memory (rdma)
    bool open_in_place_;  // ciphertext read straight into the caller's payload (tcp, rdma)
    bool send_broken_ = false;
    std::atomic<uint64_t> sealed_in_place_{0}, sealed_buffered_{0}, opened_in_place_{0}, opened_buffered_{0};
};

// The hello to send for `asked` under `ctx`: kCapAuth, and kCapEncrypt if on.
wire::Hello offer(const Context& ctx, const wire::Hello& asked);

// `ch` was opened with offer(ctx, asked) and accepted. Authenticates it and
// returns the channel to use. Throws AuthError / Error with the reason.
std::unique_ptr<transport::Channel> secure_connected(std::unique_ptr<transport::Channel> ch, const Context& ctx,
                                                     const wire::Hello& asked, transport::Millis timeout);


}  // namespace rmig::security
