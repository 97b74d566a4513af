#include "lab/synth/guest_readers.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "common/error.hpp"

namespace rmig::synth {

namespace {
using Clock = std::chrono::steady_clock;
}

GuestReaders::GuestReaders(const Mapping& mem, unsigned readers, double pages_per_second)
    : mem_(mem), readers_(readers), rate_(pages_per_second) {}

void GuestReaders::start(HashList list) {
    if (started_) throw Error("guest readers: started twice");
    if (list.page_size != kPageSize || list.hashes.size() != mem_.pages())
        throw Error(cat("device state: a hash list of ", list.hashes.size(), " pages of ", list.page_size,
                        " bytes; this guest has ", mem_.pages(), " pages of ", kPageSize));
    list_ = std::move(list);
    started_ = true;
    for (unsigned i = 0; i < readers_; ++i) threads_.emplace_back([this, i] { run(i); });
}

void GuestReaders::abandon() noexcept {
    abandoned_ = true;
    stop_ = true;
}

void GuestReaders::stop() noexcept {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
}

GuestReaders::Stats GuestReaders::stats() const {
    Stats s;
    s.checked = checked_.load();
    s.invalid = invalid_.load();
    s.zero = zero_.load();
    std::lock_guard lock(mu_);
    s.first_invalid = first_invalid_;
    std::sort(s.first_invalid.begin(), s.first_invalid.end());
    return s;
}

void GuestReaders::run(unsigned id) {
    std::mt19937_64 rng(0x9ead0000ULL + id);
    const size_t pages = mem_.pages();
    alignas(64) std::byte copy[kPageSize];
    double credit = 0;
    auto last = Clock::now();
    while (!stop_.load(std::memory_order_relaxed)) {
        if (rate_ > 0) {  // paced like the writers: a credit clock, at most 20 ms of credit
            auto now = Clock::now();
            credit = std::min(credit + std::chrono::duration<double>(now - last).count() * rate_,
                              std::max(1.0, rate_ * 0.02));
            last = now;
            if (credit < 1) {
                double wait = std::clamp((1.0 - credit) / rate_, 20e-6, 1e-3);
                std::this_thread::sleep_for(std::chrono::duration<double>(wait));
                continue;
            }
            credit -= 1;
        }
        const size_t p = rng() % pages;
        std::memcpy(copy, mem_.page(p), kPageSize);  // the touch: blocks while the page is missing
        if (abandoned_.load()) break;                // it may have been released as zeros
        const PageContent c = classify_page(copy, p);
        const bool ok = c != PageContent::invalid && page_hash(copy) == list_.hashes[p];
        checked_.fetch_add(1, std::memory_order_relaxed);
        if (c == PageContent::zero) zero_.fetch_add(1, std::memory_order_relaxed);
        if (!ok) {
            invalid_.fetch_add(1, std::memory_order_relaxed);
            std::lock_guard lock(mu_);
            if (first_invalid_.size() < 8) first_invalid_.push_back(p);
        }
    }
}

}  // namespace rmig::synth
