// The synthetic guest as it runs on the destination during post-copy: reader
// threads (its vCPUs) touching pages in random order from the moment the
// destination starts it. A page rmig has not placed yet faults and blocks
// the thread until it is (userfaultfd, engine/memory/missing_pages.hpp);
// each page read is checked: it must be a synthetic page for its index, or
// zero (classify_page), and hash to what the source's list says the page
// held at pause (the device state).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "lab/synth/guest_memory.hpp"
#include "lab/synth/hash_blob.hpp"

namespace rmig::synth {

class GuestReaders {
public:
    struct Stats {
        uint64_t checked = 0;  // pages read and checked
        uint64_t invalid = 0;  // of those, not the page the source had at pause
        uint64_t zero = 0;     // of those, all zero (and meant to be)
        std::vector<uint64_t> first_invalid;  // up to 8 page numbers
    };

    // `readers` threads (0: none), each reading `pages_per_second` pages
    // (0: as fast as it can).
    GuestReaders(const Mapping& mem, unsigned readers, double pages_per_second);
    ~GuestReaders() { stop(); }
    GuestReaders(const GuestReaders&) = delete;
    GuestReaders& operator=(const GuestReaders&) = delete;

    // The guest starts: `list` is its device state. Throws Error if the list
    // does not describe the memory (no thread is started then).
    void start(HashList list);
    // Post-copy broke: pages may read as zeros from now on, so nothing read
    // after this counts; the threads end (one blocked in a fault ends once
    // it is released). Any thread.
    void abandon() noexcept;
    // Ends and joins the threads (the session is over).
    void stop() noexcept;

    bool started() const { return started_; }
    bool abandoned() const { return abandoned_.load(); }
    unsigned readers() const { return readers_; }
    Stats stats() const;

private:
    void run(unsigned id);

    const Mapping& mem_;
    unsigned readers_;
    double rate_;
    HashList list_;
    bool started_ = false;
    std::atomic<bool> stop_{false}, abandoned_{false};
    std::atomic<uint64_t> checked_{0}, invalid_{0}, zero_{0};
    mutable std::mutex mu_;
    std::vector<uint64_t> first_invalid_;
    std::vector<std::thread> threads_;
};

}  // namespace rmig::synth
