// Destination side of channel mode: each flow that arrives is accepted
// (authenticated, when security is on) on a thread of its own, so flows set
// up in parallel and one slow or silent peer holds up no other. A flow names
// its stream in its attach frame and joins that stream (StripedStream). The
// first flow of stream N connects the destination QEMU's incoming UNIX
// socket, strictly in stream order: a flow of a later stream waits (up to the
// attach timeout) until every earlier stream is connected, because QEMU 7.2
// takes the first connection it sees as the main channel. Later flows of a
// stream, and flows that replace lost ones, just join it. A flow that fails
// authentication is turned away and the real one may still come.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "qemu-plugin/stream_group.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

class DestRelay {
public:
    // `qemu_wait`: how long a new stream waits for the destination QEMU's
    // socket to exist and listen (a tunnel's may be made after the session opened).
    DestRelay(std::string qemu_socket, wire::SessionId session, uint32_t channels, FlowSettings flow,
              transport::Millis attach_timeout = transport::Millis(10000),
              transport::Millis qemu_wait = transport::Millis(5000));

    ~DestRelay();  // waits for flows being admitted (bounded by the handshake and attach timeouts)

    // Accepts or refuses one flow in the background; never throws for a bad peer.
    void offer(std::unique_ptr<transport::Incoming> in);
    void abort(const std::string& why) { streams_.fail(why); }
    const StreamGroup& streams() const { return streams_; }
    uint32_t expected() const { return channels_; }

    // Flows being admitted at once, at most; more are refused as busy.
    static constexpr size_t kMaxAdmitting = 256;

private:
    void admit(std::unique_ptr<transport::Incoming> in);
    // Waits for stream `stream`'s turn and returns it, connecting the
    // destination QEMU for a new one; null if it is not coming.
    StripedStream* stream_for(uint32_t stream, size_t max_frame, const std::string& who);

    std::string qemu_socket_;
    wire::SessionId session_;
    uint32_t channels_;
    transport::Millis attach_timeout_;
    transport::Millis qemu_wait_;
    std::mutex order_mutex_;
    std::condition_variable order_cv_;
    uint32_t next_ = 1;  // the next new stream; guarded by order_mutex_
    bool closing_ = false;
    StreamGroup streams_;
    struct Admission {
        std::shared_ptr<std::atomic<bool>> done;
        std::jthread thread;
    };
    std::mutex admitting_mutex_;
    std::vector<Admission> admitting_;  // last: joined before the rest goes
};

}  // namespace rmig::qemu
