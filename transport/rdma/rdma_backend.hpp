// rdma/: what the backend says about itself (transport/backend.hpp), its
// typed options and its entry points. Channels over RC queue pairs, set up
// with librdmacm. The compact wire hello travels in the connect request's
// private data; the acceptor's answer (and where its ring is) in the reply's;
// a refusal in the reject's. This header needs no rdma-core.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "transport/backend.hpp"
#include "transport/backend_settings.hpp"
#include "transport/channel.hpp"

namespace rmig::transport::rdma {

// Each channel direction is a ring of `ring_slots` slots of `slot_bytes` in
// the receiver's registered memory, written with RDMA WRITE WITH IMMEDIATE;
// the receiver returns credits every ring_slots/4 frames. These defaults are
// the option table's (rdma_backend.cpp).
struct RdmaOptions {
    uint32_t ring_slots = 16;         // --rdma-slots
    uint32_t slot_bytes = 256 << 10;  // --rdma-slot-size
    uint32_t signal_every = 8;        // selective signaling of send work requests
    uint32_t poll_spins = 256;        // busy polls before sleeping on the completion channel
    uint32_t max_inline = 128;        // asked of the device; it may grant less
    uint8_t ack_timeout = 14;         // 4.096 us * 2^14 = 67 ms per retry, 7 retries
};

// Options "rdma-slots", "rdma-slot-size".
const BackendDescription& description();
// `tuning` (checked against the table) over the defaults.
RdmaOptions rdma_options(const BackendSettings& tuning);

// `host_port`: ADDR:PORT, ADDR an IP address of an RDMA device (RoCE netdev or IPoIB).
std::unique_ptr<Listener> listen(const std::string& host_port, const Options& opts);
std::unique_ptr<Channel> connect(const std::string& host_port, const wire::Hello& hello,
                                 const Options& opts);

}  // namespace rmig::transport::rdma
