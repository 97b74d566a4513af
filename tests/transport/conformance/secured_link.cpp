#include "tests/transport/conformance/secured_link.hpp"

#include <future>

#include "common/error.hpp"
#include "security/context.hpp"
#include "security/secure_transport.hpp"

namespace rmig::test::conformance {

std::unique_ptr<Link> secured_link(const std::string& listen_uri, transport::Options opts) {
    security::Config c;
    c.psk.assign(32, 0x5c);
    c.encrypt = true;
    auto link = std::make_unique<Link>();
    link->security = security::Context::create(c);
    link->listener = security::listen(listen_uri, opts, link->security);
    link->connect_uri = link->listener->address();
    link->connect_opts = opts;
    auto* l = link->listener.get();
    auto acceptor = std::async(std::launch::async, [l]() -> std::unique_ptr<transport::Channel> {
        auto in = l->next(transport::Millis(10000));
        if (!in) return nullptr;
        wire::Hello r = in->hello();
        r.role = wire::Role::destination;
        return in->accept(r);
    });
    wire::Hello h;
    h.kind = wire::ChannelKind::control;
    h.session = link->session;
    h.channel_count = 4;
    link->keep.push_back(security::connect(link->connect_uri, h, opts, link->security));
    link->keep.push_back(acceptor.get());  // bounded: next() waits 10 s, the handshake its timeout
    if (!link->keep.back()) throw Error("secured link: the control channel was not accepted");
    return link;
}

}  // namespace rmig::test::conformance
