#include "engine/dirty/shard.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

constexpr size_t kWord = DirtyBitmap::kBitsPerWord;

void check_k(size_t k, const char* what) {
    if (k == 0) throw Error(cat(what, ": cannot split pages among 0 workers"));
}

// Page where word-boundary number `w` (absolute) falls, clamped to the range.
size_t cut_page(size_t w, size_t begin, size_t end) { return std::clamp(w * kWord, begin, end); }

}  // namespace

std::vector<PageRange> shard_pages(size_t begin, size_t end, size_t k) {
    check_k(k, "shard_pages");
    std::vector<PageRange> out;
    if (begin >= end) return out;
    const size_t first_word = begin / kWord;
    const size_t nwords = (end + kWord - 1) / kWord - first_word;
    const size_t shards = std::min(k, nwords);
    out.reserve(shards);
    for (size_t i = 0; i < shards; ++i) {
        // Spread the remainder one word at a time over the first shards.
        const size_t lo = first_word + i * nwords / shards;
        const size_t hi = first_word + (i + 1) * nwords / shards;
        const PageRange r{cut_page(lo, begin, end), cut_page(hi, begin, end)};
        if (r.begin < r.end) out.push_back(r);
    }
    return out;
}

std::vector<PageRange> balance_by_dirty_count(const DirtyBitmap& bitmap, size_t begin, size_t end,
                                              size_t k) {
    check_k(k, "balance_by_dirty_count");
    end = std::min(end, bitmap.pages());
    if (begin >= end) return {};
    const size_t first_word = begin / kWord;
    const size_t nwords = (end + kWord - 1) / kWord - first_word;

    // prefix[i] = dirty pages in the range's first i words (partial edge
    // words counted only inside [begin, end)).
    std::vector<size_t> prefix(nwords + 1, 0);
    for (size_t i = 0; i < nwords; ++i) {
        const size_t w = first_word + i;
        prefix[i + 1] = prefix[i] + bitmap.count(std::max(begin, w * kWord), std::min(end, (w + 1) * kWord));
    }
    const size_t total = prefix[nwords];
    if (total == 0) return shard_pages(begin, end, k);

    // Cut i goes at the word boundary whose prefix is nearest i*total/k
    // (compared times k to stay in integers); cuts never move backwards.
    std::vector<size_t> cuts{0};  // word indices relative to first_word
    size_t b = 0;
    for (size_t i = 1; i < k; ++i) {
        const size_t target_k = i * total;  // target * k
        while (b < nwords && prefix[b] * k < target_k) ++b;
        size_t cut = b;
        if (b > cuts.back() && target_k - prefix[b - 1] * k < prefix[b] * k - target_k) cut = b - 1;
        cuts.push_back(std::max(cut, cuts.back()));
    }
    cuts.push_back(nwords);

    // Build shards, folding any that hold no dirty page into the previous one
    // (or the next, for a leading one): a worker with nothing to send is waste.
    std::vector<PageRange> out;
    size_t pending_begin = begin;  // start of a leading run with no dirty pages
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
        if (cuts[i] == cuts[i + 1]) continue;
        const size_t dirty = prefix[cuts[i + 1]] - prefix[cuts[i]];
        const size_t hi = cut_page(first_word + cuts[i + 1], begin, end);
        if (dirty == 0) {
            if (!out.empty()) out.back().end = hi;
            continue;  // leading: pending_begin stays, the next shard absorbs it
        }
        out.push_back({out.empty() ? pending_begin : out.back().end, hi});
    }
    return out;
}

}  // namespace rmig::engine
