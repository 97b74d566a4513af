// The Channel conformance suite over dpdk/ on memif, both ends in this process.
//
// Decision: one process with two memif vdevs (net_memifN role=server for the
// listener, net_memifN+1 role=client for the connector, on one socket in a
// directory of the link's own), not a peer process. The suite's cases hold
// both ends of a channel (to look at the hello, refuse, shut one end down,
// drop one end), which a peer process could only imitate through a command
// protocol of its own; DPDK's memif pairs a server and a client interface of
// one process over the same socket (it refuses only two interfaces with the
// same id *and* role on a socket). Measured on the 2-core test machine (shared
// with other builds): all cases (16 then, 17 now) pass in 12-14 s (5 runs); the first link
// takes ~3 s (EAL init, probing both vdevs, memif link up), later ones
// 0.3-1 s; no crash at port close (endpoint.cpp's BYE handshake lets the
// client port close first, within the process as between two).
// The EAL is initialised once per process, so every link shares these
// arguments; each link gets fresh vdev names and a fresh socket.
#include <unistd.h>

#include <atomic>

#include "common/error.hpp"
#include "common/temp_dir.hpp"
#include "tests/transport/conformance/channel_conformance.hpp"

namespace rmig::test::conformance {
namespace {

transport::Options memif_options() {
    transport::Options o;
    o.tuning.set("dpdk-eal", cat("--no-huge -m 1024 --no-pci --no-shconf --file-prefix=rmig-conf-", getpid()));
    // A vanished peer is declared gone after this (and a closing channel waits
    // at most this long for its last acks).
    o.dead_peer_timeout = transport::Millis(5000);
    return o;
}

std::unique_ptr<Link> memif_link() {
    static std::atomic<int> links{0};
    int n = links++;
    auto dir = std::make_shared<TempDir>("rmig-conf-memif");
    std::string socket = dir->path() + "/memif.sock";
    auto link = std::make_unique<Link>();
    link->resources = dir;
    link->connect_opts = memif_options();
    link->listener = transport::listen(cat("dpdk:net_memif", 2 * n, ",role=server,socket=", socket), link->connect_opts);
    link->connect_uri = cat("dpdk:net_memif", 2 * n + 1, ",role=client,socket=", socket);
    return link;
}

ChannelPairFactory dpdk_memif() {
    return {.name = "dpdk_memif",
            .make = memif_link,
            .one_sided = true};  // write records in the stream (docs/dpdk-protocol.md)
}

}  // namespace

INSTANTIATE_CHANNEL_CONFORMANCE(dpdk, dpdk_memif());

}  // namespace rmig::test::conformance
