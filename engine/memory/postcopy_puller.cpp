#include "engine/memory/postcopy_puller.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <deque>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

using Clock = std::chrono::steady_clock;
uint64_t ns(Clock::duration d) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

}  // namespace

std::vector<std::vector<transport::RemoteRegion>> expose_for_pull(
    std::span<const std::unique_ptr<transport::Channel>> data, const std::vector<Region>& regions,
    const std::vector<transport::RemoteRegion>& first) {
    std::vector<std::vector<transport::RemoteRegion>> out;
    if (data.empty() || first.size() != regions.size()) return out;
    for (size_t i = 1; i < data.size(); ++i) {
        transport::OneSided* os = data[i]->one_sided();
        if (!os || !os->can_read()) return {};
    }
    out.push_back(first);
    for (size_t i = 1; i < data.size(); ++i) {
        auto& v = out.emplace_back();
        for (const auto& r : regions) v.push_back(data[i]->one_sided()->expose_for_read(r.base, r.size));
    }
    return out;
}

std::vector<PullLane> pull_lanes(std::span<const std::unique_ptr<transport::Channel>> data,
                                 std::vector<std::vector<transport::RemoteRegion>> offer) {
    std::vector<PullLane> lanes;
    if (data.empty() || offer.size() != data.size()) return lanes;
    for (size_t i = 0; i < data.size(); ++i) {
        transport::OneSided* os = data[i]->one_sided();
        if (!os || !os->can_read()) return {};
        lanes.push_back({os, std::move(offer[i]), data[i]->name(), i == 0});
    }
    return lanes;
}

PostcopyPuller::Staging::Staging(size_t bytes) : p_(nullptr), size_(bytes) {
    void* q = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) throw_errno(cat("mmap of ", bytes, " B of post-copy pull buffers"));
    p_ = static_cast<std::byte*>(q);
}

PostcopyPuller::Staging::~Staging() {
    if (p_) ::munmap(p_, size_);
}

PostcopyPuller::PostcopyPuller(const std::vector<Region>& regions, size_t page_size,
                               const std::vector<DirtyBitmap>& pending, PostcopyPlacer& placer,
                               std::vector<PullLane> lanes, PullOptions opts)
    : regions_(regions), ps_(page_size), placer_(placer), lanes_(std::move(lanes)), opts_(opts) {
    if (lanes_.empty()) throw Error("post-copy pull: no channel to read on");
    if (opts_.depth == 0 || opts_.run_bytes < ps_ || opts_.run_bytes % ps_ != 0)
        throw Error(cat("post-copy pull: bad options (depth ", opts_.depth, ", run of ", opts_.run_bytes,
                        " B for ", ps_, " B pages)"));
    if (pending.size() != regions_.size())
        throw Error(cat("post-copy pull: ", pending.size(), " pending bitmaps for ", regions_.size(), " regions"));
    for (const auto& l : lanes_)
        if (!l.reads || l.regions.size() != regions_.size())
            throw Error(cat("post-copy pull: ", l.name, " has no reads of the source's ", regions_.size(),
                            " regions"));
    for (const auto& b : pending) {
        todo_.emplace_back(b.pages(), ps_);
        todo_.back().merge_from(b);
    }
    for (auto& l : lanes_) {
        Staging& s = staging_.emplace_back(opts_.depth * opts_.run_bytes);
        // Registered once now: a read's buffer is then never registered on
        // the way (the backend's cache would else pin around each).
        try {
            l.reads->register_local(s.data(), s.size());
        } catch (const std::exception& e) {
            throw Error(cat("post-copy pull: registering ", s.size(), " B of read buffers on ", l.name, ": ",
                            e.what()));
        }
    }
}

PostcopyPuller::~PostcopyPuller() {
    stop();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
}

void PostcopyPuller::start() {
    for (size_t i = 0; i < lanes_.size(); ++i) threads_.emplace_back([this, i] { lane(i); });
}

void PostcopyPuller::wait() {
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    std::lock_guard lock(err_mu_);
    if (error_) std::rethrow_exception(error_);
}

bool PostcopyPuller::next_run(Run& r, size_t run_bytes) {
    const size_t max_pages = std::max<size_t>(1, std::min(run_bytes, opts_.run_bytes) / ps_);
    std::lock_guard lock(cursor_mu_);
    for (; cur_region_ < todo_.size(); ++cur_region_, cur_page_ = 0) {
        const DirtyBitmap& b = todo_[cur_region_];
        const uint32_t ri = cur_region_;
        // The next pending page that is still missing, a word at a time.
        auto next = [&](uint64_t from) -> uint64_t {
            for (uint64_t w = from / 64; w < b.words(); ++w) {
                uint64_t bits = b.word(w);
                if (w == from / 64) bits &= ~uint64_t{0} << (from % 64);
                while (bits) {
                    const uint64_t p = w * 64 + static_cast<uint64_t>(std::countr_zero(bits));
                    if (p >= b.pages()) return b.pages();
                    if (placer_.missing(PageRef{ri, p})) return p;
                    bits &= bits - 1;
                }
            }
            return b.pages();
        };
        const uint64_t first = next(cur_page_);
        if (first >= b.pages()) continue;
        // Extend over missing pages, and over gaps of at most max_gap_pages
        // before another missing one, up to a run's size.
        uint64_t end = first + 1;  // one past the last missing page taken
        while (end - first < max_pages) {
            if (end < b.pages() && b.test(end) && placer_.missing(PageRef{ri, end})) {
                ++end;
                continue;
            }
            if (opts_.max_gap_pages == 0) break;
            const uint64_t n = next(end);
            if (n >= b.pages() || n - end > opts_.max_gap_pages || n + 1 - first > max_pages) break;
            end = n + 1;
        }
        r = {ri, first, static_cast<size_t>(end - first)};
        cur_page_ = end;
        return true;
    }
    return false;
}

void PostcopyPuller::place(const Run& r, const std::byte* data) {
    // Only the pages still missing: bridged gaps were never pending, and a
    // page the guest faulted on meanwhile is placed already.
    for (size_t i = 0; i < r.pages;) {
        if (!placer_.missing(PageRef{r.region, r.first + i})) {
            ++i;
            continue;
        }
        size_t n = 1;
        while (i + n < r.pages && placer_.missing(PageRef{r.region, r.first + i + n})) ++n;
        pulled_ += placer_.place_run(PageRef{r.region, r.first + i}, std::span(data + i * ps_, n * ps_), false);
        i += n;
    }
}

void PostcopyPuller::fail(const PullLane& l, const Run& r, const std::exception& e) {
    stop_ = true;  // the other lanes end too: the session fails
    std::lock_guard lock(err_mu_);
    if (error_) return;
    const std::string where =
        r.pages ? cat(", pages ", r.first, "..", r.first + r.pages - 1, " of region ", r.region) : "";
    const std::string what = cat("post-copy pull on ", l.name, where, ": ", e.what());
    if (dynamic_cast<const LinkError*>(&e))
        error_ = std::make_exception_ptr(LinkError(what));
    else
        error_ = std::make_exception_ptr(Error(what));
}

// A lane is two threads: this one starts reads and waits for them, its
// placer places what landed. Over rxe a read is processed mostly inside the
// call that posts it (the loopback runs requester, responder and completer
// in the caller's context), so reading and placing on one thread would add
// up rather than overlap.
void PostcopyPuller::lane(size_t i) {
    PullLane& l = lanes_[i];
    struct Flight {
        uint64_t ticket;
        Run run;
        std::byte* buf;
    };
    struct Landed {
        Run run;
        std::byte* buf;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::byte*> free;  // buffers neither read into nor being placed
    std::deque<Landed> landed;     // read, for the placer
    bool reading_done = false, placer_done = false;
    for (unsigned k = 0; k < opts_.depth; ++k) free.push_back(staging_[i].data() + k * opts_.run_bytes);

    std::thread placer([&] {
        Run r;
        try {
            for (;;) {
                Landed x;
                {
                    std::unique_lock lock(mu);
                    cv.wait(lock, [&] { return !landed.empty() || reading_done; });
                    if (landed.empty()) break;
                    x = landed.front();
                    landed.pop_front();
                }
                r = x.run;
                const auto t0 = Clock::now();
                place(x.run, x.buf);
                place_ns_ += ns(Clock::now() - t0);
                {
                    std::lock_guard lock(mu);
                    free.push_back(x.buf);
                }
                cv.notify_all();
            }
        } catch (const std::exception& e) {
            fail(l, r, e);
        }
        {
            std::lock_guard lock(mu);
            placer_done = true;
        }
        cv.notify_all();
    });

    std::deque<Flight> flights;
    Run r;
    try {
        for (;;) {
            auto t0 = Clock::now();
            // On the channel of the guest's fault reads, one pull read at a
            // time and a smaller one: a fault's read then queues behind at
            // most that one.
            while (flights.size() < (l.shares_faults ? 1u : opts_.depth)) {
                std::byte* buf = nullptr;
                {
                    std::unique_lock lock(mu);
                    // With nothing in flight, wait for the placer to hand a
                    // buffer back; else go and land the oldest read.
                    if (flights.empty())
                        cv.wait(lock, [&] { return !free.empty() || placer_done || stop_.load(); });
                    if (free.empty() || placer_done || stop_.load()) break;
                    buf = free.back();
                    free.pop_back();
                }
                if (stop_.load() || !next_run(r, l.shares_faults ? kSharedRunBytes : opts_.run_bytes)) {
                    std::lock_guard lock(mu);
                    free.push_back(buf);
                    break;
                }
                const uint64_t t = l.reads->start_read(l.regions[r.region], r.first * ps_, buf, r.pages * ps_);
                flights.push_back({t, r, buf});
                ++reads_;
                bytes_ += r.pages * ps_;
            }
            auto t1 = Clock::now();
            start_ns_ += ns(t1 - t0);
            if (flights.empty()) break;
            r = flights.front().run;
            l.reads->wait_read(flights.front().ticket);
            wait_ns_ += ns(Clock::now() - t1);
            {
                std::lock_guard lock(mu);
                landed.push_back({flights.front().run, flights.front().buf});
            }
            cv.notify_all();
            flights.pop_front();
        }
    } catch (const std::exception& e) {
        fail(l, r, e);
        // Reads still in flight land in our buffers: they must be in (or the
        // channel broken) before the buffers may go.
        try {
            for (const Flight& f : flights) l.reads->wait_read(f.ticket);
        } catch (const std::exception&) {
        }
    }
    {
        std::lock_guard lock(mu);
        reading_done = true;
    }
    cv.notify_all();
    placer.join();
}

}  // namespace rmig::engine
