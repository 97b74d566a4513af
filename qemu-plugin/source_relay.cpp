#include "qemu-plugin/source_relay.hpp"

#include <unistd.h>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "qemu-plugin/flow_attach.hpp"
#include "security/secure_transport.hpp"

namespace rmig::qemu {

SourceRelay::SourceRelay(std::string socket_path, RelayConfig cfg) : SourceRelay(std::move(cfg)) {
    path_ = std::move(socket_path);
    listen_fd_ = net::unix_listen(path_);
}

SourceRelay::SourceRelay(RelayConfig cfg) : cfg_(std::move(cfg)), streams_(cfg_.flow) {
    if (cfg_.dest_uris.empty()) throw Error("channel mode relay: no destination address");
    cfg_.flows = std::max<uint32_t>({cfg_.flows, 1, static_cast<uint32_t>(cfg_.dest_uris.size())});
}

SourceRelay::~SourceRelay() {
    stop_ = true;
    acceptor_ = {};
    openers_.clear();
    streams_.abort();
    if (!path_.empty()) ::unlink(path_.c_str());
}

void SourceRelay::start() {
    acceptor_ = std::jthread([this] { accept_loop(); });
}

StripedStream::Opened SourceRelay::open_flow(uint32_t stream, uint32_t flow, bool again) {
    wire::Hello hello;
    hello.role = wire::Role::source;
    hello.kind = wire::ChannelKind::data;
    hello.session = cfg_.session;
    // Channel ids are never reused in a session: each one keys its own
    // encryption, and the destination admits each once.
    hello.channel_id = ++connections_;
    hello.channel_count = cfg_.channels;
    const std::string& uri = cfg_.dest_uris[flow % cfg_.dest_uris.size()];
    transport::Options opts = cfg_.transport;
    // Reconnecting in an outage: try often rather than wait out a long connect.
    if (again) opts.connect_timeout = std::min(opts.connect_timeout, transport::Millis(2000));
    auto link = security::connect(uri, hello, opts, cfg_.security);
    uint64_t delivered = 0;
    if (auto* s = streams_.find(stream)) delivered = s->delivered();
    wire::Attach mine{stream, flow, cfg_.channels, delivered};
    wire::Attach theirs = exchange_attach(*link, mine, opts.handshake_timeout);
    return {std::move(link), theirs.delivered};
}

void SourceRelay::accept_loop() {
    // Ids follow QEMU's connect order (the main channel first); the streams
    // then set up side by side, and the destination connects its QEMU in id
    // order (dest_relay.hpp).
    while (carried_ < cfg_.channels) {
        UniqueFd qemu;
        try {
            while (!qemu && !stop_ && !streams_.error())
                qemu = net::accept_for(listen_fd_.get(), std::chrono::milliseconds(100));
            if (!qemu) return;
        } catch (const std::exception& e) {
            streams_.fail(cat("accepting QEMU's connection ", carried_ + 1, " of ", cfg_.channels, ": ", e.what()));
            return;
        }
        carry_next(std::move(qemu));
    }
}

bool SourceRelay::carry_next(UniqueFd qemu) {
    if (carried_ >= cfg_.channels) return false;
    net::tune_stream_socket(qemu.get(), cfg_.qemu_socket_buffer_bytes ? cfg_.qemu_socket_buffer_bytes
                                                                      : cfg_.transport.socket_buffer_bytes);
    uint32_t id = ++carried_;
    openers_.emplace_back([this, id, q = std::move(qemu)]() mutable { carry(id, std::move(q)); });
    return true;
}

void SourceRelay::carry(uint32_t id, UniqueFd qemu) {
    try {
        auto opened = open_flow(id, 0, false);
        log::debug("QEMU connection ", id, " of ", cfg_.channels, " carried by ", opened.channel->name());
        // After a failure only the main stream (QEMU's first connection)
        // is broken; multifd streams drain until QEMU closes them
        // (FlowSettings::drain_on_abort).
        auto& stream = streams_.add(id, std::move(qemu), opened.channel->max_frame_payload(),
                                    [this, id](uint32_t flow) { return open_flow(id, flow, true); },
                                    id == 1 ? std::chrono::milliseconds(0) : cfg_.multifd_drain);
        stream.attach(0, std::move(opened.channel), opened.peer_delivered);
    } catch (const std::exception& e) {
        streams_.fail(cat("setting up channel ", id, " of ", cfg_.channels, ": ", e.what()));
        return;
    }
    // The further flows open side by side: one after another, each costing
    // a few round trips, they would take seconds to come up on a long link.
    std::vector<std::jthread> more;
    for (uint32_t flow = 1; flow < cfg_.flows; ++flow) more.emplace_back([this, id, flow] { open_more_flow(id, flow); });
}

void SourceRelay::open_more_flow(uint32_t id, uint32_t flow) {
    if (stop_ || streams_.error()) return;
    try {
        auto opened = open_flow(id, flow, false);
        if (auto* s = streams_.find(id)) s->attach(flow, std::move(opened.channel), opened.peer_delivered);
    } catch (const std::exception& e) {
        // The stream runs on the flows it has; a path that never came up
        // is worth a warning, not a failed migration.
        log::warn("stream ", id, ": flow ", flow, " to ", cfg_.dest_uris[flow % cfg_.dest_uris.size()],
                  " did not open: ", e.what());
    }
}

}  // namespace rmig::qemu
