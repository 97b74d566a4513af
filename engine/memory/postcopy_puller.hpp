// Post-copy's pull (docs/memory-mode.md, "Post-copy"): where the source
// exposed its memory for one-sided reads on its data channels and agreed not
// to push, the destination reads every pending page itself. Runs of pending
// pages (short gaps read across) are read into registered staging buffers,
// several reads in flight per channel, and each run is placed straight from
// its buffer (UFFDIO_COPY) by a thread of its own while the next reads are
// under way. Measured in the Soft-RoCE VM (docs/postcopy.md, "Memory mode:
// measured"): what counted was few large reads, reading and placing on
// different threads, and a lane on every channel.
//
// Every page is placed exactly once: a run is cut around pages already placed
// (the guest's faults, read on a channel of their own), and a page placed
// between the read and the copy is skipped by the placer.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/dirty/dirty_bitmap.hpp"
#include "engine/memory/memory_layout.hpp"
#include "engine/memory/postcopy_placer.hpp"
#include "transport/channel.hpp"

namespace rmig::engine {

// A data channel the pull reads on.
struct PullLane {
    transport::OneSided* reads = nullptr;           // the channel's one-sided reads
    std::vector<transport::RemoteRegion> regions;  // the source's regions as exposed on it, in region order
    std::string name;                              // for errors ("data channel 2")
    // The channel also carries the guest's fault reads: the lane keeps one
    // read of at most kSharedRunBytes in flight, so that a fault's read
    // waits behind no more than that.
    bool shares_faults = false;
};
inline constexpr size_t kSharedRunBytes = size_t{64} << 10;

struct PullOptions {
    // Bytes per read: 256 KiB keeps a run of 64 pages in one work request
    // (one request packet for 64 response packets on rxe) and one UFFDIO_COPY.
    size_t run_bytes = size_t{256} << 10;
    // Reads in flight per lane (the rdma backend allows 16), each into a
    // staging buffer of run_bytes while the lane's placer empties others.
    // rxe processes a loopback read mostly inside the call that posts it, so
    // depth adds little there (and 16 measured slower than 1-4); hardware
    // needs a few in flight to cover the round trip.
    unsigned depth = 4;
    // Pages not pending between two pending ones that a read bridges rather
    // than starting another read (the bridged pages are read, not placed).
    // Over rxe a read costs about as much as 4-5 pages of it (measured in
    // the Soft-RoCE VM: 4 KiB reads ~14 MB/s, 256 KiB ones ~80 MB/s), and
    // pages dirtied at random leave runs of a few pages: bridging gaps of up
    // to 4 pages reads less than it saves.
    size_t max_gap_pages = 4;
};

// The source's side: exposes `regions` for reads on every data channel but
// the first (whose `first` it has exposed already, for fault reads) and
// returns them per channel, in channel order, for the pull offer. Empty
// where a channel has no one-sided reads. Registering pins the regions once
// more per channel: do it before dirty tracking starts, as for `first`.
std::vector<std::vector<transport::RemoteRegion>> expose_for_pull(
    std::span<const std::unique_ptr<transport::Channel>> data, const std::vector<Region>& regions,
    const std::vector<transport::RemoteRegion>& first);

// The lanes of a pull the source offered on our data channels (`offer`, from
// parse_pull_offer, in channel order): one per channel. Over rxe each lane's
// reads cost CPU in the thread that posts them, so every channel's lane
// counts. The first also carries the guest's fault reads
// (PullLane::shares_faults): a fault then waits for at most the one pull
// read under way there (a lane that started no read while a fault waited sat
// idle most of the time in the VM, the guest faulting all along). Empty
// where a channel has no one-sided reads.
std::vector<PullLane> pull_lanes(std::span<const std::unique_ptr<transport::Channel>> data,
                                 std::vector<std::vector<transport::RemoteRegion>> offer);

class PostcopyPuller {
public:
    // `pending`: the pages missing at the switch (the placer's), in region
    // order; `lanes`: at least one. Allocates and registers the staging
    // buffers (throws Error naming the lane where that fails).
    PostcopyPuller(const std::vector<Region>& regions, size_t page_size, const std::vector<DirtyBitmap>& pending,
                   PostcopyPlacer& placer, std::vector<PullLane> lanes, PullOptions opts = {});
    ~PostcopyPuller();  // stop() and join
    PostcopyPuller(const PostcopyPuller&) = delete;
    PostcopyPuller& operator=(const PostcopyPuller&) = delete;

    // One thread per lane, until no pending page is left to read.
    void start();
    // Joins the lanes; rethrows the first lane's failure (Error/LinkError
    // with the lane and the pages it read). Every pending page was read and
    // placed (or placed by someone else) once it returns.
    void wait();
    // Lanes stop starting reads and end once theirs in flight are in (or the
    // channel broke: shut it down first to end them at once).
    void stop() { stop_ = true; }

    uint64_t pulled_pages() const { return pulled_.load(); }  // placed by the pull
    uint64_t reads() const { return reads_.load(); }
    uint64_t bytes_read() const { return bytes_.load(); }
    // Where the lanes' time went, summed over lanes (seconds): starting reads
    // (blocked for read room), waiting for the oldest to land, placing.
    double start_s() const { return static_cast<double>(start_ns_.load()) / 1e9; }
    double wait_s() const { return static_cast<double>(wait_ns_.load()) / 1e9; }
    double place_s() const { return static_cast<double>(place_ns_.load()) / 1e9; }

private:
    struct Run {
        uint32_t region = 0;
        uint64_t first = 0;  // page
        size_t pages = 0;
    };
    // The next run to read (pages still missing, from the cursor on); false
    // when none is left.
    bool next_run(Run& r, size_t run_bytes);
    void lane(size_t i);
    void place(const Run& r, const std::byte* data);
    void fail(const PullLane& l, const Run& r, const std::exception& e);  // records the first failure, stops all

    const std::vector<Region>& regions_;
    const size_t ps_;
    PostcopyPlacer& placer_;
    std::vector<PullLane> lanes_;
    const PullOptions opts_;
    std::vector<DirtyBitmap> todo_;  // the pending pages, read past by the cursor

    // One lane's buffers (depth x run_bytes), an anonymous mapping of its own:
    // page aligned, and registered for the lane's reads for its whole life.
    class Staging {
    public:
        explicit Staging(size_t bytes);
        ~Staging();
        Staging(Staging&& o) noexcept : p_(std::exchange(o.p_, nullptr)), size_(std::exchange(o.size_, 0)) {}
        Staging& operator=(Staging&&) = delete;
        std::byte* data() const { return p_; }
        size_t size() const { return size_; }

    private:
        std::byte* p_;
        size_t size_;
    };
    std::vector<Staging> staging_;

    std::mutex cursor_mu_;
    uint32_t cur_region_ = 0;
    uint64_t cur_page_ = 0;

    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> pulled_{0}, reads_{0}, bytes_{0};
    std::atomic<uint64_t> start_ns_{0}, wait_ns_{0}, place_ns_{0};
    std::mutex err_mu_;
    std::exception_ptr error_;
    std::vector<std::thread> threads_;
};

}  // namespace rmig::engine
