// tcp/: channels over TCP streams with large buffers, keepalive-based dead-peer
// detection, and the frame codec of wire/. Ordering is TCP's; the frame
// sequence numbers still catch a peer that mixes up its own streams.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.hpp"

namespace rmig::transport::tcp {

std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts);
std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts);

}  // namespace rmig::transport::tcp
