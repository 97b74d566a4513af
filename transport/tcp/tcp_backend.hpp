// tcp/: what the backend says about itself (transport/backend.hpp) and its
// entry points. Channels over TCP streams with large buffers, keepalive-based
// dead-peer detection, and the frame codec of wire/. Ordering is TCP's; the
// frame sequence numbers still catch a peer that mixes up its own streams.
#pragma once

#include <memory>
#include <string>

#include "transport/backend.hpp"
#include "transport/channel.hpp"

namespace rmig::transport::tcp {

// No tuning options of its own: --socket-buffer and the timeouts are
// transport::Options', which other layers use too.
const BackendDescription& description();

std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts);
std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts);

}  // namespace rmig::transport::tcp
