// The Channel conformance suite over tcp loopback, plain and with security/
// on (PSK, AES-256-GCM per frame).
#include "tests/transport/conformance/channel_conformance.hpp"
#include "tests/transport/conformance/secured_link.hpp"

namespace rmig::test::conformance {
namespace {

std::unique_ptr<Link> tcp_link() {
    auto link = std::make_unique<Link>();
    link->listener = transport::listen("tcp:127.0.0.1:0");
    link->connect_uri = link->listener->address();
    return link;
}

ChannelPairFactory tcp() {
    return {.name = "tcp",
            .make = tcp_link,
            .no_one_sided = "tcp has no one-sided writes (memory mode sends page batches)",
            .recv_into_is_direct = true};
}

ChannelPairFactory secured_tcp() {
    return {.name = "secured_tcp",
            .make = [] { return secured_link("tcp:127.0.0.1:0"); },
            .no_one_sided = kSecuredHasNoOneSided};
}

}  // namespace

INSTANTIATE_CHANNEL_CONFORMANCE(tcp, tcp());
INSTANTIATE_CHANNEL_CONFORMANCE(secured, secured_tcp());

}  // namespace rmig::test::conformance
