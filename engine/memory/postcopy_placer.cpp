#include "engine/memory/postcopy_placer.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

}  // namespace

uint64_t drop_pages(const std::vector<Region>& regions, size_t ps, const std::vector<DirtyBitmap>& pages,
                    const std::vector<DirtyBitmap>* already) {
    uint64_t dropped = 0;
    for (size_t i = 0; i < regions.size(); ++i) {
        auto* base = static_cast<std::byte*>(regions[i].base);
        size_t run_start = 0, run_len = 0;
        MissingPages::Kind kind = MissingPages::Kind::unknown;
        auto flush = [&] {
            if (run_len) MissingPages::discard(base + run_start * ps, run_len * ps, kind);
            dropped += run_len;
            run_len = 0;
        };
        pages[i].for_each_set(0, pages[i].pages(), [&](size_t p) {
            if (already && (*already)[i].test(p)) return;
            if (run_len && p == run_start + run_len) {
                ++run_len;
                return;
            }
            flush();
            run_start = p;
            run_len = 1;
        });
        flush();
    }
    return dropped;
}

PostcopyPlacer::PostcopyPlacer(const std::vector<Region>& regions, size_t page_size,
                               const std::vector<DirtyBitmap>& pending, MissingPages& uffd)
    : regions_(regions), ps_(page_size), uffd_(uffd) {
    for (size_t i = 0; i < regions.size(); ++i) {
        const size_t pages = regions[i].size / ps_;
        auto& b = pending_.emplace_back(pages);
        placed_.emplace_back(pages);
        faulted_.emplace_back(pages);
        pending[i].for_each_set(0, pages, [&](size_t p) { b.set(p); });
        missing_ += pending[i].count();
    }
}

bool PostcopyPlacer::place(PageRef at, std::span<const std::byte> data, bool fetched) {
    auto* dst = static_cast<std::byte*>(regions_[at.region].base) + at.page * ps_;
    if (placed_[at.region].test(at.page)) return false;
    const bool now = data.empty() ? uffd_.zero(dst, ps_) : uffd_.copy(dst, data.data(), ps_);
    if (!now) return false;  // placed by the other path meanwhile, or never missing
    if (!placed_[at.region].set(at.page)) return false;
    placed(at, fetched);
    return true;
}

size_t PostcopyPlacer::place_run(PageRef first, std::span<const std::byte> data, bool fetched) {
    const size_t n = data.size() / ps_;
    auto* base = static_cast<std::byte*>(regions_[first.region].base) + first.page * ps_;
    Bits& placed_bits = placed_[first.region];
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        if (placed_bits.test(first.page + i)) {
            ++i;
            continue;
        }
        size_t end = i + 1;
        while (end < n && !placed_bits.test(first.page + end)) ++end;
        const size_t done = uffd_.copy_run(base + i * ps_, data.data() + i * ps_, (end - i) * ps_) / ps_;
        for (size_t k = i; k < i + done; ++k)
            if (placed_bits.set(first.page + k)) {
                placed({first.region, first.page + k}, fetched);
                ++count;
            }
        // 0 only where the first page was there already (placed by the
        // other path meanwhile): past it. A partial copy stopped for any
        // reason: go on from the page it stopped at.
        i += done > 0 ? done : 1;
    }
    return count;
}

void PostcopyPlacer::placed(PageRef at, bool fetched) {
    if (pending_[at.region].test(at.page)) --missing_;
    if (fetched) ++fetched_;
    if (waiting_.load() > 0) {
        std::lock_guard lock(mu_);
        if (auto it = fault_at_.find(key(at)); it != fault_at_.end()) {
            latency_us_.push_back(std::chrono::duration<double, std::micro>(Clock::now() - it->second).count());
            fault_at_.erase(it);
            --waiting_;
        }
    }
}

std::vector<PageRef> PostcopyPlacer::next_faults(std::chrono::milliseconds timeout) {
    std::vector<PageRef> out;
    for (uintptr_t a : uffd_.next_faults(timeout)) {
        PageRef r;
        bool found = false;
        for (size_t i = 0; i < regions_.size(); ++i) {
            auto base = reinterpret_cast<uintptr_t>(regions_[i].base);
            if (a >= base && a < base + regions_[i].size) {
                r = {static_cast<uint32_t>(i), (a - base) / ps_};
                found = true;
                break;
            }
        }
        if (!found) throw Error(cat("post-copy: a fault at ", a, " outside every guest region"));
        // Placed meanwhile (the copy woke the thread), or already asked for.
        if (placed_[r.region].test(r.page) || !faulted_[r.region].set(r.page)) continue;
        {
            std::lock_guard lock(mu_);
            fault_at_[key(r)] = Clock::now();
            ++faults_;
            ++waiting_;
        }
        // The push may have placed it between the test and the clock: then no
        // one waits and no latency is counted for it.
        if (placed_[r.region].test(r.page)) {
            std::lock_guard lock(mu_);
            if (fault_at_.erase(key(r))) {
                --waiting_;
                --faults_;
            }
            continue;
        }
        out.push_back(r);
    }
    return out;
}

std::vector<DirtyBitmap> PostcopyPlacer::still_missing() const {
    std::vector<DirtyBitmap> out;
    for (size_t i = 0; i < regions_.size(); ++i) {
        const size_t pages = regions_[i].size / ps_;
        DirtyBitmap& b = out.emplace_back(pages, ps_);
        for (size_t w = 0; w < pending_[i].words; ++w) {
            uint64_t bits = pending_[i].w[w].load() & ~placed_[i].w[w].load();
            while (bits) {
                b.set(w * 64 + static_cast<size_t>(__builtin_ctzll(bits)));
                bits &= bits - 1;
            }
        }
    }
    return out;
}

std::vector<PageRef> PostcopyPlacer::waiting() const {
    std::vector<PageRef> out;
    std::lock_guard lock(mu_);
    for (const auto& [k, at] : fault_at_) {
        PageRef r{static_cast<uint32_t>(k >> 48), k & ((uint64_t{1} << 48) - 1)};
        if (!placed_[r.region].test(r.page)) out.push_back(r);
    }
    return out;
}

void PostcopyPlacer::fill(DestPostcopy& out) const {
    std::lock_guard lock(mu_);
    out.faults = faults_;
    out.fetched_pages = fetched_.load();
    out.fault_p50_us = percentile(latency_us_, 0.50);
    out.fault_p99_us = percentile(latency_us_, 0.99);
    out.fault_max_us = latency_us_.empty() ? 0 : *std::max_element(latency_us_.begin(), latency_us_.end());
}

}  // namespace rmig::engine
