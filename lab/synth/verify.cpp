#include "lab/synth/verify.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "common/error.hpp"

namespace rmig::synth {

Verdict verify_pages(const Mapping& m, const HashList& list, unsigned threads) {
    if (list.page_size != kPageSize || list.hashes.size() != m.pages())
        throw Error(cat("hash list covers ", list.hashes.size(), " pages of ", list.page_size, " bytes; this guest has ",
                        m.pages(), " pages of ", kPageSize));
    Verdict v;
    std::mutex mu;
    std::atomic<uint64_t> bad{0}, zero{0};
    std::vector<std::byte> zero_page(kPageSize);
    const uint64_t zero_hash = page_hash(zero_page.data());
    parallel_for(m.pages(), threads, [&](size_t b, size_t e) {
        uint64_t my_bad = 0, my_zero = 0;
        for (size_t p = b; p < e; ++p) {
            uint64_t h = page_hash(m.page(p));
            my_zero += h == zero_hash;
            if (h != list.hashes[p]) {
                ++my_bad;
                std::lock_guard lock(mu);
                v.first_bad.push_back(p);
            }
        }
        bad += my_bad;
        zero += my_zero;
    });
    std::sort(v.first_bad.begin(), v.first_bad.end());
    if (v.first_bad.size() > 8) v.first_bad.resize(8);
    v.verified = m.pages();
    v.mismatches = bad;
    v.zero = zero;
    return v;
}

}  // namespace rmig::synth
