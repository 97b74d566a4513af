// rdma/: channels over RC queue pairs, set up with librdmacm. The compact
// wire hello travels in the connect request's private data; the acceptor's
// answer (and where its ring is) in the reply's; a refusal in the reject's.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.hpp"

namespace rmig::transport::rdma {

std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts);
std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts);

}  // namespace rmig::transport::rdma
