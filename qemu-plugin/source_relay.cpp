#include "qemu-plugin/source_relay.hpp"

#include <unistd.h>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"
#include "security/secure_transport.hpp"

namespace rmig::qemu {

SourceRelay::SourceRelay(std::string socket_path, RelayConfig cfg)
    : path_(std::move(socket_path)), cfg_(std::move(cfg)), bridges_(cfg_.chunk) {
    listen_fd_ = net::unix_listen(path_);
}

SourceRelay::~SourceRelay() {
    stop_ = true;
    acceptor_ = {};
    ::unlink(path_.c_str());
}

void SourceRelay::start() {
    acceptor_ = std::jthread([this] { accept_loop(); });
}

void SourceRelay::accept_loop() {
    for (uint32_t id = 1; id <= cfg_.channels; ++id) {
        try {
            UniqueFd qemu;
            while (!qemu && !stop_ && !bridges_.error())
                qemu = net::accept_for(listen_fd_.get(), std::chrono::milliseconds(100));
            if (!qemu) return;
            net::tune_stream_socket(qemu.get(), cfg_.transport.socket_buffer_bytes);
            wire::Hello hello;
            hello.role = wire::Role::source;
            hello.kind = wire::ChannelKind::data;
            hello.session = cfg_.session;
            hello.channel_id = id;
            hello.channel_count = cfg_.channels;
            auto link = security::connect(cfg_.dest_uri, hello, cfg_.transport, cfg_.security);
            log::debug("QEMU connection ", id, " of ", cfg_.channels, " carried by ", link->name());
            bridges_.add(std::move(qemu), std::move(link));
        } catch (const std::exception& e) {
            bridges_.fail(cat("setting up channel ", id, " of ", cfg_.channels, ": ", e.what()));
            return;
        }
    }
}

}  // namespace rmig::qemu
