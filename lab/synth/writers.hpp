// The synthetic guest's vCPUs: writer threads that rewrite whole pages of
// GuestMemory at a paced rate in one of three patterns, stoppable at once
// (switchover) and throttleable (auto-converge).
//
// Rate: `pages_per_second` page writes in total, split evenly over the
// writers, paced by a credit clock (at most 20 ms of credit builds up, so a
// writer held up by page faults or the CPU does not catch up in a burst).
// Writer i owns the pages p with p % writers == i, so no two threads ever
// write the same page and the hash list stays exact.
//
// Patterns: uniform (every page alike), hot (`hot_writes` of the writes go
// to a hot set of `hot_fraction` of memory starting a quarter in, the rest
// uniform), sequential (each writer sweeps its pages in order, wrapping).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "lab/synth/guest_memory.hpp"

namespace rmig::synth {

enum class Pattern { uniform, hot, sequential };
Pattern parse_pattern(const std::string& text);  // throws Error naming the choices
const char* to_string(Pattern p) noexcept;

struct WriterConfig {
    unsigned writers = 1;
    double pages_per_second = 0;  // 0: no writer runs
    Pattern pattern = Pattern::uniform;
    double hot_fraction = 0.1;
    double hot_writes = 0.9;
};

// Optional KVM-style dirty log the writers mark after each write (caller-bitmap mode).
class DirtyLog {
public:
    explicit DirtyLog(size_t pages);
    void mark(size_t page) noexcept {
        words_[page / 64].fetch_or(uint64_t{1} << (page % 64), std::memory_order_relaxed);
    }
    size_t words() const { return nwords_; }
    void take(uint64_t* out, size_t n) noexcept;  // moves and clears the first n words

private:
    size_t nwords_;
    std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

class Writers {
public:
    Writers(GuestMemory& mem, WriterConfig cfg, DirtyLog* log = nullptr);
    ~Writers() { stop(); }
    Writers(const Writers&) = delete;
    Writers& operator=(const Writers&) = delete;

    void start();
    void stop();  // returns once every writer has finished its last page
    void throttle(unsigned percent) { throttle_.store(percent > 99 ? 99 : percent); }
    unsigned throttle_percent() const { return throttle_.load(); }
    uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

private:
    void run(unsigned id);

    GuestMemory& mem_;
    WriterConfig cfg_;
    DirtyLog* log_;
    std::atomic<bool> stop_{false};
    std::atomic<unsigned> throttle_{0};
    std::atomic<uint64_t> writes_{0};
    std::vector<std::thread> threads_;
};

}  // namespace rmig::synth
