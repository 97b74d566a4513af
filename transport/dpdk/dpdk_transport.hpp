// dpdk/: channels over a DPDK port with reliable ordered delivery of our own
// (docs/dpdk-protocol.md). URIs: "dpdk:DEVARGS[,rmig.KEY=VALUE...]". Each
// channel opens with the wire handshake, exactly as tcp/ does. listen() and
// connect() are declared in dpdk_backend.hpp.
#pragma once

#include <memory>
#include <string>

#include "transport/channel.hpp"
#include "transport/dpdk/dpdk_backend.hpp"
#include "transport/dpdk/connection.hpp"

namespace rmig::transport::dpdk {

class Endpoint;

struct RemoteWrites;  // remote_write.cpp

// The dpdk Channel, for callers that want its statistics or its zero-copy send.
// OneSided (memory mode's page path): writes travel in the channel's stream
// as write records, page bytes attached from registered guest memory without
// copying; the receiving channel applies them into the exposed region while
// reading, before any later frame (docs/dpdk-protocol.md).
class DpdkChannel final : public Channel, public OneSided {
public:
    DpdkChannel(std::shared_ptr<Endpoint> ep, std::shared_ptr<Connection> conn,
                const wire::Hello& peer, std::string name, const Options& opts);
    ~DpdkChannel() override;

    void send(wire::FrameType type, std::span<const std::byte> payload) override;
    wire::FrameType recv(std::vector<std::byte>& payload) override;
    void shutdown() override;
    OneSided* one_sided() override { return this; }
    RemoteRegion expose(void* base, size_t size) override;
    void write(const RemoteRegion& to, std::span<const RegionWrite> pieces) override;
    void flush() override;
    void register_local(const void* base, size_t size) override;
    uint64_t zero_copy_bytes() const { return zero_copy_bytes_; }  // sent from registered memory
    const wire::Hello& peer_hello() const override { return peer_; }
    const std::string& name() const override { return name_; }

    // Sends a frame whose payload lies in memory registered with
    // register_memory (extmem.hpp): the payload is not copied but attached to
    // the frames as external buffers; returns once the peer acknowledged it, so
    // the caller may then change the memory.
    void send_zero_copy(wire::FrameType type, std::span<const std::byte> payload);
    ConnStats stats() const { return conn_->stats(); }
    uint16_t queue() const { return conn_->queue(); }  // the port's queue pair it sends on
    std::vector<QueueStats> port_queue_stats() const;   // every queue pair of the port
    Endpoint& endpoint() { return *ep_; }

private:
    std::shared_ptr<Endpoint> ep_;
    std::shared_ptr<Connection> conn_;
    wire::Hello peer_;
    std::string name_;
    Options opts_;
    std::mutex send_mutex_, recv_mutex_;
    wire::FrameEncoder enc_;
    wire::FrameDecoder dec_;
    struct Exposed {
        std::byte* base;
        size_t size;
    };
    std::vector<Exposed> exposed_;         // rkey = index
    std::vector<const void*> registered_;  // register_local references to drop
    std::shared_ptr<RemoteWrites> writes_;
    uint64_t zero_copy_bytes_ = 0;
    void apply_write_record(const wire::HeaderBytes& hb);
    void release_remote_writes();  // at destruction
};

}  // namespace rmig::transport::dpdk
