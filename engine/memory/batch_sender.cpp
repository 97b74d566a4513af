#include "engine/memory/batch_sender.hpp"

#include <algorithm>

namespace rmig::engine {

BatchSender::BatchSender(transport::Channel& ch, size_t depth)
    : ch_(ch), depth_(depth == 0 ? 1 : depth), thread_([this] { run(); }) {}

BatchSender::~BatchSender() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void BatchSender::rethrow_locked() {
    if (error_) std::rethrow_exception(error_);
}

std::vector<std::byte> BatchSender::buffer() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return error_ || in_flight_ < depth_; });
    rethrow_locked();
    ++in_flight_;
    if (free_.empty()) return {};
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
}

void BatchSender::push(std::vector<std::byte> batch, size_t used) {
    {
        std::lock_guard lk(mu_);
        rethrow_locked();
        const size_t n = std::min(used, batch.size());
        queue_.push_back({std::move(batch), n});
    }
    cv_.notify_all();
}

void BatchSender::drain() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return error_ || in_flight_ == 0; });
    rethrow_locked();
}

uint64_t BatchSender::bytes_sent() const {
    std::lock_guard lk(mu_);
    return bytes_;
}

void BatchSender::run() {
    std::unique_lock lk(mu_);
    for (;;) {
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        auto [batch, used] = std::move(queue_.front());
        queue_.pop_front();
        lk.unlock();
        std::exception_ptr err;
        try {
            ch_.send(wire::FrameType::data, std::span(batch).first(used));
        } catch (...) {
            err = std::current_exception();
        }
        lk.lock();
        if (err) {
            error_ = err;
            cv_.notify_all();
            return;
        }
        bytes_ += used;
        free_.push_back(std::move(batch));
        --in_flight_;
        cv_.notify_all();
    }
}

}  // namespace rmig::engine
