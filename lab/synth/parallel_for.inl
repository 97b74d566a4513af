// parallel_for (guest_memory.hpp): contiguous parts, one thread each, joined.
#pragma once

#include <algorithm>
#include <thread>
#include <vector>

namespace rmig::synth {

template <class Fn>
void parallel_for(size_t n, unsigned threads, Fn&& fn) {
    threads = std::max(1u, threads);
    if (threads == 1 || n < 1024) {
        fn(size_t{0}, n);
        return;
    }
    std::vector<std::jthread> pool;
    const size_t part = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; ++t) {
        size_t b = std::min(n, t * part), e = std::min(n, b + part);
        if (b < e) pool.emplace_back([&fn, b, e] { fn(b, e); });
    }
}

}  // namespace rmig::synth
