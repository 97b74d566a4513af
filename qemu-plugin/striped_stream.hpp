// One QEMU migration connection carried by one or more flows (rmig channels,
// maybe over several paths) in channel mode's flow protocol
// (wire/stream_segment.hpp): a reader cuts QEMU's stream into segments, every
// flow sends whichever segment is next (so faster flows carry more), the peer
// puts them back in order and acknowledges them. A flow that breaks gives its
// unacknowledged segments back to the others; with a grace period the source
// opens a replacement (reconnect) and QEMU sees only a pause. Both ends run
// the same code; only the source reconnects.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "engine/pages/adaptive_compressor.hpp"
#include "qemu-plugin/reorder_buffer.hpp"
#include "qemu-plugin/send_window.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

// The largest segment a stream cuts from QEMU's stream unless told otherwise
// (SourceOptions, DestOptions, RelayConfig; `rmig --chunk`); at most
// wire::kMaxFramePayload less the segment header.
inline constexpr size_t kDefaultChunk = size_t{1} << 20;

struct FlowSettings {
    size_t chunk = kDefaultChunk;
    // Unacknowledged bytes a stream keeps for resending (what holds QEMU back
    // on a slow link); also what its reorder buffer may hold. Must cover the
    // link's bandwidth-delay product for full rate.
    size_t window_bytes = 64u << 20;
    // Where the send window starts, until the source's blackout steering
    // sizes it from the measured rate (bound_window); 0: window_bytes. Small,
    // so QEMU cannot pour its RAM into the window before the link's rate is
    // known (it would all wait out the switchover).
    size_t start_window = 8u << 20;
    // How long a stream may have no working flow before the migration fails;
    // 0: the first broken flow fails it (no reconnecting).
    std::chrono::milliseconds grace{0};
    // A segment out on one flow this long without being acknowledged means
    // the flow has stalled (a silent outage): it is replaced.
    std::chrono::milliseconds stall{5000};
    // Segments compressed by each flow's sender (docs/compression.md):
    // automatic picks lz4, zstd or none per segment from the link rate and
    // the codecs' measured speed and ratio.
    engine::CompressionMode compression = engine::CompressionMode::none;
    // On abort, keep reading (and dropping) what QEMU writes until it closes
    // the connection, at most this long, instead of breaking the connection;
    // 0: break it at once. The source's multifd streams: QEMU 7.2 hangs for
    // good when one multifd thread quits without an error of its own while
    // its migration thread waits for that thread's sync, so rmig fails only
    // the main stream and QEMU fails and cleans up in its own order
    // (docs/fault-injection.md).
    std::chrono::milliseconds drain_on_abort{0};
};

// Compression of one stream (or all), for progress and the report.
struct CompressionTotals {
    uint64_t in_bytes = 0;    // raw segment bytes encoded
    uint64_t wire_bytes = 0;  // what went on the wire for them
    std::array<uint64_t, 3> segments{};  // by engine::Codec (none = sent raw)
    std::string choice;       // the latest reason given by a sender
    void add(const CompressionTotals& o);
};

struct ChannelStats {
    uint32_t channel = 0;    // the stream (QEMU connection) number
    uint64_t to_link = 0;    // bytes read from QEMU and sent
    uint64_t from_link = 0;  // bytes received and written to QEMU
    uint32_t flows = 0;      // flows up now
    uint32_t reconnects = 0; // flows replaced after a loss
    uint64_t resent = 0;     // segment bytes sent more than once
    uint64_t wire = 0;       // frame payload bytes sent (after compression)
    CompressionTotals compression;
};

// What all streams of a migration did, summed (reports, progress).
struct FlowTotals {
    uint64_t wire = 0;
    uint32_t reconnects = 0;
    uint64_t resent = 0;
    CompressionTotals compression;
};
FlowTotals totals(const std::vector<ChannelStats>& streams);

class StripedStream {
public:
    using ErrorFn = std::function<void(const std::string&)>;
    // Source side: opens flow `flow` again (handshake and attach exchange
    // done) and returns it with the peer's delivered offset; throws on failure.
    struct Opened {
        std::unique_ptr<transport::Channel> channel;
        uint64_t peer_delivered = 0;
    };
    using Reconnect = std::function<Opened(uint32_t flow)>;

    StripedStream(uint32_t stream, UniqueFd qemu, FlowSettings settings, ErrorFn on_error,
                  Reconnect reconnect = {});
    ~StripedStream();  // aborts and joins
    StripedStream(const StripedStream&) = delete;
    StripedStream& operator=(const StripedStream&) = delete;

    // Starts carrying data on `flow` (replacing a flow of that index, if any),
    // after the attach exchange in which the peer said it has delivered
    // `peer_delivered` bytes of this stream.
    void attach(uint32_t flow, std::unique_ptr<transport::Channel> channel, uint64_t peer_delivered);
    void abort();
    // Both directions ended: QEMU's stream read to its end and acknowledged by
    // the peer, and the peer's stream written to QEMU to its end.
    bool finished() const;
    uint64_t delivered() const { return in_.delivered(); }
    // Periodic checks (StreamGroup's watchdog): stalled flows, the grace.
    void tick();
    bool limit_in_flight(size_t bytes);
    // Bounds what the send window takes from QEMU ahead of the peer's
    // acknowledgements (at most FlowSettings::window_bytes): at switchover
    // the guest waits for all of it.
    void bound_window(size_t bytes) { out_.set_capacity(std::min(bytes, cfg_.window_bytes)); }
    // The link's measured rate (bytes/s on the wire, all flows of the
    // migration) and how many senders share it: what automatic compression
    // weighs the codecs against.
    void set_link_rate(double bytes_per_s, unsigned senders);
    ChannelStats stats() const;
    uint32_t id() const { return id_; }
    uint64_t wire_bytes() const { return wire_; }
    uint32_t flows_up() const;
    // A flow is lost and (within the grace) may come back.
    bool reconnecting() const;

private:
    struct Flow;
    void read_qemu();
    void drain_qemu();
    void write_qemu();
    void send_loop(Flow& f);
    void recv_loop(Flow& f);
    void maybe_ack(Flow& f);
    void encode(OutSegment& seg, engine::AdaptiveCompressor& codec, std::vector<std::byte>& scratch);
    void lost(Flow& f, const std::string& why);
    void reconnect_loop();
    void fail(const std::string& what);
    size_t live_flows() const;

    uint32_t id_;
    UniqueFd qemu_;
    FlowSettings cfg_;
    ErrorFn on_error_;
    Reconnect reconnect_;
    SendWindow out_;
    ReorderBuffer in_;

    mutable std::mutex mu_;
    std::vector<std::unique_ptr<Flow>> flows_;  // by flow index; null until attached
    std::chrono::steady_clock::time_point no_flow_since_{};  // when the last live flow went
    std::string last_loss_;
    uint32_t generations_ = 0;
    std::condition_variable reconnect_cv_;

    std::atomic<bool> aborted_{false};
    std::atomic<uint64_t> to_link_{0}, from_link_{0}, resent_{0}, wire_{0};
    std::atomic<double> link_rate_{0};
    std::atomic<unsigned> senders_{1};
    CompressionTotals compression_;  // guarded by mu_
    std::atomic<uint32_t> reconnects_{0};
    std::atomic<uint64_t> ack_sent_{0};
    std::atomic<bool> fin_ack_sent_{false}, read_done_{false}, ended_early_{false};
    std::atomic<bool> reader_done_{false};  // read_qemu returned (QEMU's end seen, or drained)
    std::jthread reader_, writer_, reconnector_;
};

}  // namespace rmig::qemu
