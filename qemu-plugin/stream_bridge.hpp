// Channel mode's data path: one QEMU migration connection (a UNIX socket) is
// carried over one rmig channel, both directions, by two pump threads.
// A BridgeGroup owns all bridges of a migration: the first failure anywhere
// aborts every bridge, so QEMU on both sides sees its stream end at once
// (the source QEMU then fails the migration and keeps the guest running).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "transport/channel.hpp"

namespace rmig::qemu {

// The largest data frame a bridge cuts from QEMU's stream unless told
// otherwise (SourceOptions, DestOptions, RelayConfig; `rmig --chunk`); at most
// wire::kMaxFramePayload.
inline constexpr size_t kDefaultChunk = size_t{1} << 20;

struct ChannelStats {
    uint32_t channel = 0;
    uint64_t to_link = 0;    // bytes read from QEMU and sent
    uint64_t from_link = 0;  // bytes received and written to QEMU
};

class StreamBridge {
public:
    using ErrorFn = std::function<void(const std::string&)>;
    // `chunk` bounds one data frame; on_error is called at most once, from a pump.
    StreamBridge(UniqueFd qemu, std::unique_ptr<transport::Channel> link, size_t chunk,
                 ErrorFn on_error);
    ~StreamBridge();  // aborts and joins
    StreamBridge(const StreamBridge&) = delete;
    StreamBridge& operator=(const StreamBridge&) = delete;

    void abort();
    bool finished() const { return done_ == 2; }
    bool limit_in_flight(size_t bytes) { return link_->limit_in_flight(bytes); }
    ChannelStats stats() const;

private:
    void qemu_to_link();
    void link_to_qemu();
    void fail(const std::string& what);

    UniqueFd qemu_;
    std::unique_ptr<transport::Channel> link_;
    size_t chunk_;
    ErrorFn on_error_;
    std::atomic<bool> aborted_{false};
    std::atomic<int> done_{0};
    std::atomic<uint64_t> to_link_{0}, from_link_{0};
    std::jthread out_, in_;
};

class BridgeGroup {
public:
    explicit BridgeGroup(size_t chunk) : chunk_(chunk) {}
    ~BridgeGroup() { abort(); }

    void add(UniqueFd qemu, std::unique_ptr<transport::Channel> link);
    // Records the first error and aborts every bridge.
    void fail(const std::string& why);
    void abort();
    std::optional<std::string> error() const;
    size_t size() const;
    // True once `expected` bridges exist and all have finished both directions.
    bool wait_finished(size_t expected, std::chrono::milliseconds timeout) const;
    std::vector<ChannelStats> stats() const;
    // Channel::limit_in_flight on every bridge; false if any backend cannot.
    bool limit_in_flight(size_t per_channel) const;

private:
    size_t chunk_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<StreamBridge>> bridges_;
    std::optional<std::string> error_;
};

}  // namespace rmig::qemu
