#include "common/error.hpp"
#include "transport/channel.hpp"
#include "transport/tcp/tcp_transport.hpp"
#ifdef RMIG_HAVE_RDMA
#include "transport/rdma/rdma_transport.hpp"
#endif
#ifdef RMIG_HAVE_DPDK
#include "transport/dpdk/dpdk_transport.hpp"
#endif

namespace rmig::transport {

namespace {

struct Uri {
    std::string scheme;
    std::string rest;
};

Uri split(const std::string& uri) {
    auto colon = uri.find(':');
    if (colon != std::string::npos) {
        std::string scheme = uri.substr(0, colon);
        if (scheme == "tcp" || scheme == "rdma" || scheme == "dpdk")
            return {scheme, uri.substr(colon + 1)};
    }
    return {"tcp", uri};
}

[[noreturn]] void unsupported(const Uri& u) {
    throw Error(cat("transport '", u.scheme, "' is not built into this rmig; use tcp:HOST:PORT"
#ifndef RMIG_HAVE_RDMA
                    " (rebuild with rdma-core installed for rdma:)"
#endif
#ifndef RMIG_HAVE_DPDK
                    " (rebuild with libdpdk-dev installed for dpdk:)"
#endif
));
}

}  // namespace

// Plain: security/ composes above this (security/secure_transport.hpp).
std::unique_ptr<Listener> listen(const std::string& uri, const Options& opts) {
    Uri u = split(uri);
    if (u.scheme == "tcp") return tcp::listen(u.rest, opts);
#ifdef RMIG_HAVE_RDMA
    if (u.scheme == "rdma") return rdma::listen(u.rest, opts);
#endif
#ifdef RMIG_HAVE_DPDK
    if (u.scheme == "dpdk") return dpdk::listen(u.rest, opts);
#endif
    unsupported(u);
}

std::unique_ptr<Channel> connect(const std::string& uri, const wire::Hello& hello, const Options& opts) {
    Uri u = split(uri);
    if (u.scheme == "tcp") return tcp::connect(u.rest, hello, opts);
#ifdef RMIG_HAVE_RDMA
    if (u.scheme == "rdma") return rdma::connect(u.rest, hello, opts);
#endif
#ifdef RMIG_HAVE_DPDK
    if (u.scheme == "dpdk") return dpdk::connect(u.rest, hello, opts);
#endif
    unsupported(u);
}

}  // namespace rmig::transport
