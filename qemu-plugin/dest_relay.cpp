#include "qemu-plugin/dest_relay.hpp"

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "qemu-plugin/flow_attach.hpp"
#include "security/errors.hpp"

namespace rmig::qemu {

DestRelay::DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels, FlowSettings flow,
                     transport::Millis attach_timeout, transport::Millis qemu_wait)
    : qemu_socket_(std::move(qemu_socket)),
      session_(session),
      channels_(channels),
      attach_timeout_(attach_timeout),
      qemu_wait_(qemu_wait),
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
    std::lock_guard lock(admitting_mutex_);
    std::erase_if(admitting_, [](const Admission& a) { return a.done->load(); });
    if (admitting_.size() >= kMaxAdmitting) {
        log::warn("refusing channel ", h.channel_id, " from ", in->peer(), ": ", admitting_.size(),
                  " flows are being admitted already");
        in->refuse(wire::HelloStatus::busy);
        return;
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    admitting_.push_back({done, std::jthread([this, done, in = std::move(in)]() mutable {
                              admit(std::move(in));
                              *done = true;
                          })});
}

void DestRelay::admit(std::unique_ptr<transport::Incoming> in) {
    const wire::Hello& h = in->hello();
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
        if (attach.streams != channels_ || attach.stream == 0 || attach.stream > channels_)
            throw ProtocolError(cat(link->name(), ": attach names stream ", attach.stream, " of ", attach.streams,
                                    " (this migration has ", channels_, ")"));
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
    StripedStream* stream = stream_for(attach.stream, link->max_frame_payload(), link->name());
    if (!stream) return;  // closing `link` tells the source
    try {
        send_attach(*link, {attach.stream, attach.flow, channels_, stream->delivered()});
    } catch (const Error& e) {
        log::warn("answering ", link->name(), ": ", e.what());
        return;
    }
    stream->attach(attach.flow, std::move(link), attach.delivered);
}

StripedStream* DestRelay::stream_for(uint32_t id, size_t max_frame, const std::string& who) {
    std::unique_lock lock(order_mutex_);
    if (!order_cv_.wait_for(lock, attach_timeout_, [&] { return id <= next_ || closing_ || streams_.error(); })) {
        log::warn("turned away ", who, ": stream ", id, " waited ", attach_timeout_.count(),
                  " ms for stream ", next_, " to arrive");
        return nullptr;
    }
    if (closing_ || streams_.error()) return nullptr;
    if (id < next_) return streams_.find(id);
    UniqueFd qemu;
    try {
        qemu = net::unix_connect(qemu_socket_, qemu_wait_);
        net::tune_stream_socket(qemu.get(), 8 << 20);
    } catch (const Error& e) {
        streams_.fail(cat("connecting stream ", id, " to the destination QEMU: ", e.what()));
        order_cv_.notify_all();
        return nullptr;
    }
    ++next_;
    StripedStream* stream = &streams_.add(id, std::move(qemu), max_frame);
    order_cv_.notify_all();
    return stream;
}

DestRelay::~DestRelay() {
    {
        std::lock_guard lock(order_mutex_);
        closing_ = true;
    }
    order_cv_.notify_all();
    std::vector<Admission> admitting;
    {
        std::lock_guard lock(admitting_mutex_);
        admitting.swap(admitting_);
    }
    admitting.clear();  // joins
}

}  // namespace rmig::qemu
