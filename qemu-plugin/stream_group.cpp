#include "qemu-plugin/stream_group.hpp"

#include <algorithm>

#include "common/log.hpp"

namespace rmig::qemu {

StreamGroup::StreamGroup(FlowSettings settings) : cfg_(settings) {
    watchdog_ = std::jthread([this](std::stop_token stop) { watch(stop); });
}

StreamGroup::~StreamGroup() {
    watchdog_ = {};
    abort();
}

void StreamGroup::watch(std::stop_token stop) {
    using Clock = std::chrono::steady_clock;
    auto window_start = Clock::now();
    uint64_t window_bytes = 0;
    double rate = 0;
    while (!stop.stop_requested()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::vector<StripedStream*> streams;
        {
            std::lock_guard lock(mutex_);
            if (error_) continue;
            for (auto& s : streams_) streams.push_back(s.get());
        }
        // Streams live as long as the group; ticking outside the lock lets a
        // failing stream call fail().
        for (auto* s : streams) s->tick();
        if (cfg_.compression == engine::CompressionMode::none) continue;
        // The link's rate for automatic compression: the best second seen
        // lately (a quiet second, QEMU having nothing to send, says little
        // about the link), in bytes on the wire.
        uint64_t wire = 0;
        unsigned senders = 0;
        for (auto* s : streams) {
            wire += s->wire_bytes();
            senders += s->flows_up();
        }
        auto now = Clock::now();
        double span = std::chrono::duration<double>(now - window_start).count();
        if (span < 1.0) continue;
        double measured = static_cast<double>(wire - window_bytes) / span;
        rate = std::max(measured, rate * 0.9);
        window_start = now;
        window_bytes = wire;
        for (auto* s : streams) s->set_link_rate(rate, std::max(1u, senders));
    }
}

StripedStream& StreamGroup::add(uint32_t id, UniqueFd qemu, size_t max_frame, StripedStream::Reconnect reconnect,
                                std::chrono::milliseconds drain_on_abort) {
    FlowSettings cfg = cfg_;
    cfg.drain_on_abort = drain_on_abort;
    if (max_frame > wire::kSegmentHeaderSize)
        cfg.chunk = std::min(cfg.chunk, max_frame - wire::kSegmentHeaderSize);
    auto stream = std::make_unique<StripedStream>(id, std::move(qemu), cfg,
                                                  [this](const std::string& e) { fail(e); },
                                                  std::move(reconnect));
    std::lock_guard lock(mutex_);
    streams_.push_back(std::move(stream));
    if (error_) streams_.back()->abort();
    return *streams_.back();
}

StripedStream* StreamGroup::find(uint32_t id) {
    std::lock_guard lock(mutex_);
    for (auto& s : streams_)
        if (s->id() == id) return s.get();
    return nullptr;
}

void StreamGroup::fail(const std::string& why) {
    {
        std::lock_guard lock(mutex_);
        if (error_) return;
        error_ = why;
    }
    log::error(why);
    abort();
}

void StreamGroup::abort() {
    std::lock_guard lock(mutex_);
    for (auto& s : streams_) s->abort();
}

std::optional<std::string> StreamGroup::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

size_t StreamGroup::size() const {
    std::lock_guard lock(mutex_);
    return streams_.size();
}

bool StreamGroup::wait_finished(size_t expected, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            bool all = streams_.size() >= expected;
            for (auto& s : streams_) all = all && s->finished();
            if (all) return true;
            if (error_) return false;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::vector<ChannelStats> StreamGroup::stats() const {
    std::lock_guard lock(mutex_);
    std::vector<ChannelStats> out;
    for (auto& s : streams_) out.push_back(s->stats());
    return out;
}

bool StreamGroup::reconnecting() const {
    std::lock_guard lock(mutex_);
    return std::any_of(streams_.begin(), streams_.end(), [](auto& s) { return s->reconnecting(); });
}

void StreamGroup::bound_windows(size_t per_stream) const {
    std::lock_guard lock(mutex_);
    for (auto& s : streams_) s->bound_window(per_stream);
}

bool StreamGroup::limit_in_flight(size_t per_stream) const {
    std::lock_guard lock(mutex_);
    bool all = true;
    for (auto& s : streams_) all = s->limit_in_flight(per_stream) && all;
    return all;
}

}  // namespace rmig::qemu
