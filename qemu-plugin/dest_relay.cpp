#include "qemu-plugin/dest_relay.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "security/errors.hpp"

namespace rmig::qemu {

DestRelay::DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels,
                     size_t chunk)
    : qemu_socket_(std::move(qemu_socket)), session_(session), channels_(channels), bridges_(chunk) {}

void DestRelay::offer(std::unique_ptr<transport::Incoming> in) {
    const wire::Hello& h = in->hello();
    if (h.session != session_) {
        log::warn("refusing channel ", h.channel_id, " from ", in->peer(), ": session ",
                  wire::to_hex(h.session), " is not the running one");
        in->refuse(wire::HelloStatus::unknown_session);
        return;
    }
    if (h.channel_id != next_ || h.channel_id > channels_) {
        log::warn("refusing channel ", h.channel_id, " from ", in->peer(), ": expected channel ",
                  next_, " of ", channels_);
        in->refuse(wire::HelloStatus::bad_channel);
        return;
    }
    // The handshake first: with security on, accept() checks the channel's
    // token, and a forged one must be turned away before anything reaches the
    // destination QEMU (a stray connection would break its migration), so
    // the real channel can still come.
    wire::Hello reply = h;
    reply.role = wire::Role::destination;
    std::unique_ptr<transport::Channel> link;
    try {
        link = in->accept(reply);
    } catch (const security::AuthError& e) {
        log::warn("turned away channel ", h.channel_id, " from ", in->peer(), ": ", e.what());
        return;
    } catch (const Error& e) {
        bridges_.fail(cat("accepting channel ", h.channel_id, ": ", e.what()));
        return;
    }
    UniqueFd qemu;
    try {
        qemu = net::unix_connect(qemu_socket_, std::chrono::milliseconds(5000));
        net::tune_stream_socket(qemu.get(), 8 << 20);
    } catch (const Error& e) {
        bridges_.fail(cat("connecting channel ", h.channel_id, " to the destination QEMU: ", e.what()));
        return;  // closing `link` tells the source
    }
    ++next_;
    bridges_.add(std::move(qemu), std::move(link));
}

}  // namespace rmig::qemu
