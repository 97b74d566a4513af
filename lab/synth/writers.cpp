#include "lab/synth/writers.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "common/error.hpp"

namespace rmig::synth {

using Clock = std::chrono::steady_clock;

Pattern parse_pattern(const std::string& text) {
    if (text == "uniform") return Pattern::uniform;
    if (text == "hot") return Pattern::hot;
    if (text == "sequential" || text == "seq") return Pattern::sequential;
    throw Error(cat("unknown pattern '", text, "' (uniform, hot, sequential)"));
}

const char* to_string(Pattern p) noexcept {
    switch (p) {
    case Pattern::uniform: return "uniform";
    case Pattern::hot: return "hot";
    case Pattern::sequential: return "sequential";
    }
    return "?";
}

DirtyLog::DirtyLog(size_t pages) : nwords_((pages + 63) / 64), words_(new std::atomic<uint64_t>[nwords_]) {
    for (size_t i = 0; i < nwords_; ++i) words_[i].store(0, std::memory_order_relaxed);
}

void DirtyLog::take(uint64_t* out, size_t n) noexcept {
    n = std::min(n, nwords_);
    for (size_t i = 0; i < n; ++i) out[i] = words_[i].exchange(0, std::memory_order_relaxed);
}

Writers::Writers(GuestMemory& mem, WriterConfig cfg, DirtyLog* log) : mem_(mem), cfg_(cfg), log_(log) {
    if (cfg_.writers < 1 || cfg_.writers > 64) throw Error("writers must be 1..64");
    if (cfg_.writers > mem_.pages()) throw Error("more writers than pages");
    if (!(cfg_.hot_fraction > 0 && cfg_.hot_fraction <= 1)) throw Error("hot fraction must be in (0, 1]");
    if (!(cfg_.hot_writes >= 0 && cfg_.hot_writes <= 1)) throw Error("hot writes share must be in [0, 1]");
    if (!(cfg_.pages_per_second >= 0) || !std::isfinite(cfg_.pages_per_second))
        throw Error("dirty rate must be >= 0");
}

void Writers::start() {
    if (cfg_.pages_per_second <= 0 || !threads_.empty()) return;
    stop_ = false;
    for (unsigned i = 0; i < cfg_.writers; ++i) threads_.emplace_back([this, i] { run(i); });
}

void Writers::stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
}

void Writers::run(unsigned id) {
    const size_t pages = mem_.pages();
    const size_t n = cfg_.writers;
    const size_t own = (pages - id + n - 1) / n;  // pages p = k*n + id, k < own
    const size_t hot = std::max<size_t>(1, static_cast<size_t>(static_cast<double>(own) * cfg_.hot_fraction));
    const size_t hot_base = std::min(own / 4, own - hot);
    const double rate = cfg_.pages_per_second / static_cast<double>(n);
    std::mt19937_64 rng(0x5eed0000ULL + id);
    std::uniform_real_distribution<double> coin(0, 1);
    size_t cursor = 0;
    double credit = 0;
    auto last = Clock::now();
    while (!stop_.load(std::memory_order_relaxed)) {
        auto now = Clock::now();
        double r = rate * (100.0 - throttle_.load(std::memory_order_relaxed)) / 100.0;
        credit = std::min(credit + std::chrono::duration<double>(now - last).count() * r, std::max(1.0, r * 0.02));
        last = now;
        auto burst = static_cast<uint64_t>(credit);
        if (burst == 0) {
            // Sleep until the next page is due, at most 1 ms (stop() waits for this).
            double wait = std::clamp((1.0 - credit) / std::max(r, 1e-9), 20e-6, 1e-3);
            std::this_thread::sleep_for(std::chrono::duration<double>(wait));
            continue;
        }
        for (uint64_t k = 0; k < burst && !stop_.load(std::memory_order_relaxed); ++k) {
            size_t slot;
            switch (cfg_.pattern) {
            case Pattern::uniform: slot = rng() % own; break;
            case Pattern::hot:
                slot = coin(rng) < cfg_.hot_writes ? hot_base + rng() % hot : rng() % own;
                break;
            case Pattern::sequential:
            default:
                slot = cursor;
                cursor = (cursor + 1) % own;
                break;
            }
            size_t page = slot * n + id;
            mem_.write(page);
            if (log_) log_->mark(page);  // after the write, as KVM's log would
            credit -= 1;
            writes_.fetch_add(1, std::memory_order_relaxed);
        }
    }
}

}  // namespace rmig::synth
