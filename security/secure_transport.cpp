#include "security/secure_transport.hpp"

#include "security/secure_channel.hpp"
#include "security/secure_listener.hpp"

namespace rmig::security {

std::unique_ptr<transport::Listener> listen(const std::string& uri, const transport::Options& opts,
                                            std::shared_ptr<const Context> ctx) {
    return secure_listener(transport::listen(uri, opts), std::move(ctx), opts);
}

std::unique_ptr<transport::Channel> connect(const std::string& uri, const wire::Hello& hello,
                                            const transport::Options& opts,
                                            const std::shared_ptr<const Context>& ctx) {
    if (!ctx) return transport::connect(uri, hello, opts);
    auto ch = transport::connect(uri, offer(*ctx, hello), opts);
    return secure_connected(std::move(ch), *ctx, hello, opts.handshake_timeout);
}

}  // namespace rmig::security
