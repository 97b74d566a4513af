// All streams of one channel-mode migration (StripedStream each). The first
// failure anywhere aborts every stream, so QEMU on both sides sees its
// streams end at once (the source QEMU then fails the migration and keeps
// the guest running). A watchdog ticks every stream: stalled flows are
// replaced, a stream without a flow past the grace fails the group.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "qemu-plugin/striped_stream.hpp"

namespace rmig::qemu {

class StreamGroup {
public:
    explicit StreamGroup(FlowSettings settings);
    ~StreamGroup();

    const FlowSettings& settings() const { return cfg_; }
    // A new stream for QEMU's connection number `id` (1 = the main one).
    // `max_frame`: the largest frame payload its flows carry whole
    // (Channel::max_frame_payload; rdma: one ring slot): segments are cut to fit.
    // `drain_on_abort`: FlowSettings::drain_on_abort for this stream.
    StripedStream& add(uint32_t id, UniqueFd qemu, size_t max_frame, StripedStream::Reconnect reconnect = {},
                       std::chrono::milliseconds drain_on_abort = {});
    StripedStream* find(uint32_t id);
    // Records the first error and aborts every stream.
    void fail(const std::string& why);
    void abort();
    std::optional<std::string> error() const;
    size_t size() const;
    // True once `expected` streams exist and all have finished both directions.
    bool wait_finished(size_t expected, std::chrono::milliseconds timeout) const;
    std::vector<ChannelStats> stats() const;
    // Bounds each stream's bytes queued in its transports (split over its
    // flows); false if any backend cannot.
    bool limit_in_flight(size_t per_stream) const;
    void bound_windows(size_t per_stream) const;  // StripedStream::bound_window on each
    bool reconnecting() const;                     // some stream's flow is lost, within the grace

private:
    void watch(std::stop_token stop);

    FlowSettings cfg_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<StripedStream>> streams_;
    std::optional<std::string> error_;
    std::jthread watchdog_;
};

}  // namespace rmig::qemu
