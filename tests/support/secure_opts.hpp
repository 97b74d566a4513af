// Secured channels in tests: security/ composes above transport/, so a test
// carries the transport's options and the security context together and opens
// channels through security::listen/connect.
#pragma once

#include <memory>
#include <string>

#include "security/context.hpp"
#include "security/secure_transport.hpp"
#include "transport/channel.hpp"

namespace rmig::test {

struct SecureOpts {
    transport::Options transport;
    std::shared_ptr<security::Context> security;
};

inline std::unique_ptr<transport::Listener> listen(const std::string& uri, const SecureOpts& o) {
    return security::listen(uri, o.transport, o.security);
}

inline std::unique_ptr<transport::Channel> connect(const std::string& uri, const wire::Hello& h,
                                                   const SecureOpts& o) {
    return security::connect(uri, h, o.transport, o.security);
}

}  // namespace rmig::test
