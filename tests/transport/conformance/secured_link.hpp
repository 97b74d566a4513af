// security/ on over any backend whose listener address is what connectors
// dial (tcp, rdma): the secured factories of the conformance suite build their
// link here, in one function, so a change in how security wraps a transport
// is one edit.
#pragma once

#include <memory>
#include <string>

#include "tests/transport/conformance/channel_conformance.hpp"

namespace rmig::test::conformance {

// A PSK session with encryption (TLS 1.3 on a control channel, which the link
// keeps open: data channels are only accepted for an authenticated session).
std::unique_ptr<Link> secured_link(const std::string& listen_uri, transport::Options opts = {});

inline constexpr const char* kSecuredHasNoOneSided =
    "encrypted channels have no one-sided writes (they would bypass the cipher; memory mode "
    "sends page batches instead)";

}  // namespace rmig::test::conformance
