// Connections whose hello has arrived whole, waiting for the listener's
// owner: what the tcp and dpdk hello gates hand out. Bounded as the pending
// set is (transport/admission.hpp): should the owner fall behind a flood,
// the oldest of the address holding the most goes. Handed out newest first:
// under a flood the owner's turn goes to whoever just arrived (a real peer
// among them), while the flood's backlog ages out. Thread safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "transport/admission.hpp"
#include "transport/channel.hpp"

namespace rmig::transport {

template <class T>
class ReadyQueue {
public:
    explicit ReadyQueue(AdmissionLimits limits) : bounds_(limits) {}

    // Adds `item`, from `address`; returns the items pushed out, for the
    // caller to close (outside the queue's lock).
    std::vector<T> push(T item, const std::string& address) {
        std::vector<T> out;
        {
            std::lock_guard lk(mu_);
            uint64_t id = next_id_++;
            for (uint64_t victim : bounds_.admit(id, address)) {
                for (auto it = items_.begin(); it != items_.end(); ++it)
                    if (it->first == victim) {
                        out.push_back(std::move(it->second));
                        items_.erase(it);
                        break;
                    }
            }
            items_.emplace_back(id, std::move(item));
        }
        cv_.notify_one();
        return out;
    }

    // The newest item, waiting up to `timeout` for one.
    std::optional<T> pop_newest(Millis timeout) {
        std::unique_lock lk(mu_);
        if (!cv_.wait_for(lk, timeout, [&] { return !items_.empty(); })) return std::nullopt;
        auto [id, item] = std::move(items_.back());
        items_.pop_back();
        bounds_.remove(id);
        return std::move(item);
    }

    // Everything left (the listener is closing).
    std::vector<T> take_all() {
        std::lock_guard lk(mu_);
        std::vector<T> out;
        for (auto& [id, item] : items_) out.push_back(std::move(item));
        items_.clear();
        bounds_ = Admission(bounds_.limits());
        return out;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::pair<uint64_t, T>> items_;  // oldest first
    Admission bounds_;
    uint64_t next_id_ = 0;
};

}  // namespace rmig::transport
