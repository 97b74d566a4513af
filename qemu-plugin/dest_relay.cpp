#include "qemu-plugin/dest_relay.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "qemu-plugin/flow_attach.hpp"
#include "security/errors.hpp"

namespace rmig::qemu {

DestRelay::DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels, FlowSettings flow,
                     transport::Millis attach_timeout)
    : qemu_socket_(std::move(qemu_socket)),
      session_(session),
      channels_(channels),
      attach_timeout_(attach_timeout),
      streams_(flow) {}

void DestRelay::offer(std::unique_ptr<transport::Incoming> in) {
    const wire::Hello& h = in->hello();
    if (h.session != session_) {
        log::warn("refusing channel ", h.channel_id, " from ", in->peer(), ": session ",
                  wire::to_hex(h.session), " is not the running one");
        in->refuse(wire::HelloStatus::unknown_session);
        return;
    }
    if (h.channel_count != channels_) {
        log::warn("refusing channel ", h.channel_id, " from ", in->peer(), ": it counts ", h.channel_count,
                  " QEMU connections, this migration ", channels_);
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
        log::warn("accepting channel ", h.channel_id, " from ", in->peer(), ": ", e.what());
        return;
    }
    wire::Attach attach;
    try {
        attach = read_attach(*link, attach_timeout_);
        if (attach.streams != channels_ || attach.stream > next_)
            throw ProtocolError(cat(link->name(), ": attach names stream ", attach.stream, " of ", attach.streams,
                                    ": out of order (expected at most stream ", next_, " of ", channels_, ")"));
    } catch (const Error& e) {
        // Turned away with the reason (the real flow may still come); a
        // source of ours never does this, so its own error will say why.
        log::warn("turned away a flow: ", e.what());
        try {
            std::string why = e.what();
            link->send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
        } catch (const Error&) {
        }
        return;
    }
    StripedStream* stream = nullptr;
    if (attach.stream == next_) {
        UniqueFd qemu;
        try {
            qemu = net::unix_connect(qemu_socket_, std::chrono::milliseconds(5000));
            net::tune_stream_socket(qemu.get(), 8 << 20);
        } catch (const Error& e) {
            streams_.fail(cat("connecting stream ", attach.stream, " to the destination QEMU: ", e.what()));
            return;  // closing `link` tells the source
        }
        ++next_;
        stream = &streams_.add(attach.stream, std::move(qemu), link->max_frame_payload());
    } else {
        stream = streams_.find(attach.stream);
        if (!stream) return;
    }
    try {
        send_attach(*link, {attach.stream, attach.flow, channels_, stream->delivered()});
    } catch (const Error& e) {
        log::warn("answering ", link->name(), ": ", e.what());
        return;
    }
    stream->attach(attach.flow, std::move(link), attach.delivered);
}

}  // namespace rmig::qemu
