// An rmig channel over one RC queue pair.
//
// Stream path: each direction has a ring of slots in the receiver's registered
// memory. The sender copies a frame (wire header + payload) into its own
// registered send slot, or lets the caller write the payload there
// (send_filled), and RDMA-WRITEs it WITH IMMEDIATE into the next remote
// slot; the immediate carries the length, the receive completion tells the
// receiver a slot is full. The sender holds one credit per free remote slot and
// the receiver hands credits back in batches (zero-length WRITE WITH IMMEDIATE),
// so a write never arrives without a posted receive: no RNR retries, and a slow
// receiver stalls the sender instead of growing a queue.
//
// One-sided path (memory mode): RDMA WRITE from registered local memory into a
// region the peer exposed, tracked so flush() returns once all have landed;
// RDMA READ out of a region the peer exposed for reads (post-copy page
// fetches), each signaled and waited for by its caller.
//
// Completions are busy-polled for a while, then waited for on the completion
// channel; whichever thread polls serves both (a sender waiting for credits and
// a receiver waiting for frames).
#pragma once

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"
#include "transport/channel.hpp"
#include "transport/rdma/rdma_backend.hpp"
#include "transport/rdma/verbs_raii.hpp"

namespace rmig::transport::rdma {

// RDMA READs: how many each side may have outstanding towards the other
// (initiator_depth) and serves for it (responder_resources), asked for at
// connection setup (rdma_transport.cpp, bounded by the device), and the send
// queue entries set aside for them beyond the writes' sq_depth_.
inline constexpr uint32_t kReadDepth = 16;

// Where a receiver's ring lives; sent to the peer during connection setup.
struct RingDesc {
    uint64_t addr = 0;
    uint32_t rkey = 0;
    uint32_t slots = 0;
    uint32_t slot_bytes = 0;
    static constexpr size_t kSize = 20;
    void encode(std::byte* out) const;
    static RingDesc decode(const std::byte* in);
};

// Page-aligned, zeroed memory for the rings (registered with the device).
class AlignedBuffer {
public:
    void allocate(size_t bytes);
    std::byte* data() const { return p_.get(); }
    size_t size() const { return size_; }

private:
    struct Free {
        void operator()(std::byte* p) const { std::free(p); }
    };
    std::unique_ptr<std::byte, Free> p_;
    size_t size_ = 0;
};

class RdmaChannel final : public Channel, public OneSided {
public:
    // Allocates PD, CQ, QP, rings and posted receives on a resolved or
    // requested cm id; the connection is then completed by the caller.
    RdmaChannel(EventChannel events, CmId id, const RdmaOptions& opts, std::string peer);
    ~RdmaChannel() override;

    RingDesc local_ring() const;
    // Called once the connection is established.
    // Also learns the negotiated read depth from the queue pair.
    void established(const wire::Hello& peer_hello, std::string name,
                     std::optional<RingDesc> remote_ring);
    // The connecting side tells the acceptor where its own ring is.
    void send_ring_desc();
    rdma_cm_id* id() const { return id_.get(); }
    rdma_event_channel* events() const { return events_.get(); }

    // Channel
    void send(wire::FrameType type, std::span<const std::byte> payload) override;
    wire::FrameType recv(std::vector<std::byte>& payload) override;
    // Each piece the filler gets is the payload part of a registered send slot,
    // posted as soon as it is filled (so a frame of many slots streams out and
    // may be larger than the ring).
    void send_filled(wire::FrameType type, size_t length, const PayloadFiller& fill) override;
    // The reader copies from the receive slot straight into the caller's pieces.
    wire::FrameType recv_into(const PayloadConsumer& consume) override;
    bool fills_in_place() const override { return true; }
    bool recv_into_is_direct() const override { return true; }
    void shutdown() override;
    const wire::Hello& peer_hello() const override { return peer_; }
    const std::string& name() const override { return name_; }
    OneSided* one_sided() override { return this; }
    size_t max_frame_payload() const override;
    std::string local_device() const override;

    // OneSided
    RemoteRegion expose(void* base, size_t size) override;
    void write(const RemoteRegion& to, std::span<const RegionWrite> pieces) override;
    void flush() override;
    void register_local(const void* base, size_t size) override;
    // True once the connection lets this side have RDMA READs outstanding.
    bool can_read() const override { return read_depth_ > 0; }
    RemoteRegion expose_for_read(void* base, size_t size) override;
    void read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) override;
    // Up to kReadDepth reads in flight per channel; the ticket is the read's
    // send work request index (send completions arrive in order).
    uint64_t start_read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) override;
    void wait_read(uint64_t ticket) override;

private:
    using Lock = std::unique_lock<std::mutex>;
    struct Slot {
        uint32_t index;
        uint32_t bytes;
    };

    template <class Pred> void wait(Lock& lk, Pred ready, std::string_view what);
    int poll_completions();  // with mu_ held
    void on_completion(const ibv_wc& wc);
    void check_cm_events();
    void post_recv(uint64_t count);
    // Posts one WRITE (WITH IMMEDIATE if imm) of sge to remote; with mu_ held.
    uint64_t post_write(ibv_sge* sge, int nsge, uint64_t raddr, uint32_t rkey,
                        std::optional<uint32_t> imm, bool data_slot, bool force_signal);
    // Posts one signaled READ of `len` bytes at raddr into `local`; with mu_ held.
    uint64_t post_read(void* local, uint32_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey);
    // Checks, waits for read room and posts one read; with mu_ held (lk).
    uint64_t begin_read(Lock& lk, const RemoteRegion& from, uint64_t offset, std::byte* local, uint32_t len,
                        const std::string& what);
    // Waits for the read posted as `idx`; throws as read() does.
    void end_read(Lock& lk, uint64_t idx, const RemoteRegion& from, uint64_t offset, uint32_t len,
                  const std::string& what);
    void return_credits_if_due(Lock& lk);
    // The next filled receive slot, its frame header checked; then release_slot().
    std::pair<const std::byte*, wire::FrameHeader> next_slot();
    void release_slot();
    void fail(const std::string& why);  // with mu_ held
    [[noreturn]] void throw_failure() const;
    uint32_t lkey_for(const void* p, size_t len);  // registration cache

    RdmaOptions opts_;
    std::string peer_addr_;
    std::string name_;
    wire::Hello peer_{};
    EventChannel events_;
    CmId id_;
    ProtectionDomain pd_;
    CompChannel comp_;
    CompletionQueue cq_;
    AlignedBuffer recv_ring_, send_ring_;
    MemoryRegion recv_mr_, send_mr_;
    std::map<uintptr_t, MemoryRegion> reg_cache_;  // by start address; chunk-aligned
    std::vector<MemoryRegion> exposed_;  // for writes and for reads, kept for the channel's life
    UniqueFd wake_fd_;  // eventfd: shutdown() wakes a thread sleeping on completions
    uint32_t max_inline_ = 0;
    uint32_t sq_depth_ = 0;   // send queue entries for writes; the queue has kReadDepth more for reads
    uint32_t read_depth_ = 0;  // the queue pair's max_rd_atomic once established (0: no reads)

    std::mutex send_mutex_, recv_mutex_;
    mutable std::mutex mu_;  // everything below
    std::condition_variable cv_;
    bool polling_ = false;
    std::optional<std::string> error_;
    std::optional<RingDesc> remote_;
    uint64_t credits_ = 0;           // free remote slots
    uint64_t remote_head_ = 0;       // next remote slot (mod slots)
    uint64_t send_head_ = 0;         // data frames posted (local send slot = head mod slots)
    uint64_t send_done_ = 0;         // data frames whose write completed locally
    uint64_t wr_posted_ = 0;         // all send work requests
    uint64_t wr_done_ = 0;
    uint32_t reads_in_flight_ = 0;   // READs posted, not completed
    // The send work request whose failed completion broke the channel (read()
    // tells its own failure from another's) and what the completion said.
    struct FailedWr {
        uint64_t wr_id;
        ibv_wc_status status;
        std::string why;
    };
    std::optional<FailedWr> failed_wr_;
    std::deque<std::pair<uint64_t, uint64_t>> inflight_data_;  // (wr index, data frame index + 1)
    uint64_t recv_tail_ = 0;         // slots filled by the peer, in order
    std::deque<Slot> ready_;         // filled slots not yet consumed
    uint64_t unreturned_ = 0;        // consumed slots not yet credited back
    wire::FrameEncoder enc_{0};
    wire::FrameDecoder dec_{0, ""};
};

}  // namespace rmig::transport::rdma
