// The guest's memory in memory-mode post-copy tests: a recognisable fill,
// and reader threads that play the guest running on the destination (every
// page they touch must already be the source's final page: a fault blocks
// until it is placed).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

namespace rmig::test {

inline constexpr size_t kGuestPage = 4096;

// Every page named by its index and a version; every eighth stays zero.
inline void fill(std::byte* p, size_t size) {
    for (size_t page = 0; page < size / kGuestPage; ++page) {
        if (page % 8 == 7) continue;
        for (size_t off = 0; off < kGuestPage; off += 8) {
            uint64_t v = (uint64_t{page} << 20) ^ off ^ 0x7e57000000000000ULL;
            std::memcpy(p + page * kGuestPage + off, &v, 8);
        }
    }
}

// The guest running on the destination: touches pages (the hot area first,
// where the missing ones are) and compares each with the source's paused
// page, which no longer changes.
class Readers {
public:
    Readers(const std::byte* dest, const std::byte* source, size_t size, size_t hot, unsigned n)
        : dest_(dest), source_(source), pages_(size / kGuestPage), hot_pages_(hot / kGuestPage) {
        for (unsigned i = 0; i < n; ++i)
            threads_.emplace_back([this, i] {
                std::mt19937_64 rng(i + 101);
                for (size_t k = 0; !stop_ && k < 20000; ++k) {
                    size_t page = k < 2000 ? rng() % hot_pages_ : rng() % pages_;
                    if (std::memcmp(dest_ + page * kGuestPage, source_ + page * kGuestPage, kGuestPage) != 0) ++wrong_;
                    ++read_;
                }
            });
    }
    ~Readers() { stop(); }
    // Asks the threads to stop without waiting: one may be blocked on a
    // missing page until faults stop being caught.
    void request_stop() { stop_ = true; }
    void stop() {
        stop_ = true;
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    uint64_t read() const { return read_; }
    uint64_t wrong() const { return wrong_; }

private:
    const std::byte* dest_;
    const std::byte* source_;
    size_t pages_, hot_pages_;
    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> read_{0}, wrong_{0};
    std::vector<std::thread> threads_;
};

}  // namespace rmig::test
