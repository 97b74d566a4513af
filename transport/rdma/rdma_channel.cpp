#include "transport/rdma/rdma_channel.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "wire/byte_order.hpp"
#include "wire/checksum.hpp"
#include "transport/rdma/rdma_errors.hpp"

namespace rmig::transport::rdma {

namespace {

// Immediate data: top two bits say what a WRITE WITH IMMEDIATE means.
constexpr uint32_t kImmData = 0u << 30;     // a frame of (imm & kImmValue) bytes in the next slot
constexpr uint32_t kImmCredit = 1u << 30;   // (imm & kImmValue) slots freed at the sender of this
constexpr uint32_t kImmRingDesc = 2u << 30; // the next slot holds the writer's RingDesc
constexpr uint32_t kImmValue = (1u << 30) - 1;

constexpr uint64_t kRegChunk = 64u << 20;  // registration cache granularity
constexpr size_t kMaxReadWr = size_t{1} << 30;  // bytes per READ work request (devices take up to 2 GiB)
// Receives carry this id, so that a failed completion tells them from sends
// (numbered from 0, never this far).
constexpr uint64_t kRecvWrId = ~uint64_t{0};

// Failures of a read that say the read itself was wrong (key, bounds, local
// buffer), as opposed to the link or the peer going away.
bool read_was_refused(ibv_wc_status s) {
    switch (s) {
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_OP_ERR:
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_LOC_ACCESS_ERR:
    case IBV_WC_LOC_LEN_ERR: return true;
    default: return false;
    }
}

}  // namespace

void AlignedBuffer::allocate(size_t bytes) {
    size_t rounded = (bytes + 4095) & ~size_t{4095};
    void* p = std::aligned_alloc(4096, rounded);
    if (!p) throw Error(cat("cannot allocate a ", bytes, "-byte RDMA ring"));
    std::memset(p, 0, rounded);
    p_.reset(static_cast<std::byte*>(p));
    size_ = bytes;
}

void RingDesc::encode(std::byte* out) const {
    wire::put_le<uint64_t>(out, addr);
    wire::put_le<uint32_t>(out + 8, rkey);
    wire::put_le<uint32_t>(out + 12, slots);
    wire::put_le<uint32_t>(out + 16, slot_bytes);
}

RingDesc RingDesc::decode(const std::byte* in) {
    RingDesc d;
    d.addr = wire::get_le<uint64_t>(in);
    d.rkey = wire::get_le<uint32_t>(in + 8);
    d.slots = wire::get_le<uint32_t>(in + 12);
    d.slot_bytes = wire::get_le<uint32_t>(in + 16);
    if (d.slots == 0 || d.slots > 4096 || d.slot_bytes < 4096 || d.slot_bytes > (64u << 20))
        throw ProtocolError(cat("peer's ring description is out of range (", d.slots, " slots of ",
                                d.slot_bytes, " bytes)"));
    return d;
}

RdmaChannel::RdmaChannel(EventChannel events, CmId id, const RdmaOptions& opts, std::string peer)
    : opts_(opts), peer_addr_(std::move(peer)), name_("rdma channel to " + peer_addr_),
      events_(std::move(events)), id_(std::move(id)) {
    if (opts_.ring_slots < 2 || opts_.slot_bytes < 4096 || opts_.signal_every == 0)
        throw Error("rdma options: need at least 2 ring slots of at least 4 KiB, signal_every >= 1");
    rdma_cm_id* cm = id_.get();
    require_port_active(cm);
    uint8_t timeout = opts_.ack_timeout;
    rdma_set_option(cm, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);

    pd_.reset(ibv_alloc_pd(cm->verbs));
    if (!pd_) throw_errno(cat("ibv_alloc_pd on ", device_name(cm)));
    comp_.reset(ibv_create_comp_channel(cm->verbs));
    if (!comp_) throw_errno(cat("ibv_create_comp_channel on ", device_name(cm)));
    ::fcntl(comp_->fd, F_SETFL, ::fcntl(comp_->fd, F_GETFL) | O_NONBLOCK);
    sq_depth_ = opts_.ring_slots + 2 * opts_.signal_every + 8;
    uint32_t rq_depth = 2 * opts_.ring_slots + 8;
    cq_.reset(ibv_create_cq(cm->verbs, static_cast<int>(sq_depth_ + kReadDepth + rq_depth), nullptr,
                            comp_.get(), 0));
    if (!cq_) throw_errno(cat("ibv_create_cq on ", device_name(cm)));

    ibv_qp_init_attr attr{};
    attr.send_cq = cq_.get();
    attr.recv_cq = cq_.get();
    attr.qp_type = IBV_QPT_RC;
    attr.cap.max_send_wr = sq_depth_ + kReadDepth;  // reads never take the writes' entries
    attr.cap.max_recv_wr = rq_depth;
    attr.cap.max_send_sge = 1;
    attr.cap.max_recv_sge = 1;
    attr.cap.max_inline_data = opts_.max_inline;
    if (rdma_create_qp(cm, pd_.get(), &attr) != 0) {
        attr.cap.max_inline_data = 0;  // the device may not inline at all
        if (rdma_create_qp(cm, pd_.get(), &attr) != 0)
            throw_errno(cat("rdma_create_qp on ", device_name(cm), " (", attr.cap.max_send_wr, " send / ",
                            rq_depth, " receive work requests)"));
    }
    max_inline_ = attr.cap.max_inline_data;

    size_t ring = size_t(opts_.ring_slots) * opts_.slot_bytes;
    recv_ring_.allocate(ring);
    send_ring_.allocate(ring);
    recv_mr_ = register_memory(pd_.get(), recv_ring_.data(), ring,
                               IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE, "the receive ring");
    send_mr_ = register_memory(pd_.get(), send_ring_.data(), ring, IBV_ACCESS_LOCAL_WRITE, "the send ring");
    post_recv(rq_depth);
    wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_) throw_errno("eventfd");
}

RdmaChannel::~RdmaChannel() {
    rdma_disconnect(id_.get());
    // The QP must go before the CQ and PD it uses.
    if (id_->qp) rdma_destroy_qp(id_.get());
}

RingDesc RdmaChannel::local_ring() const {
    return {reinterpret_cast<uintptr_t>(recv_ring_.data()), recv_mr_->rkey, opts_.ring_slots,
            opts_.slot_bytes};
}

void RdmaChannel::established(const wire::Hello& peer_hello, std::string name,
                              std::optional<RingDesc> remote_ring) {
    Lock lk(mu_);
    peer_ = peer_hello;
    name_ = std::move(name);
    enc_ = wire::FrameEncoder(peer_hello.channel_id);
    dec_ = wire::FrameDecoder(peer_hello.channel_id, name_);
    if (remote_ring) {
        remote_ = remote_ring;
        credits_ = remote_ring->slots;
    }
    // How many RDMA READs this side may have outstanding, as the connection
    // settled it (the acceptor may have lowered what the connector asked).
    ibv_qp_attr qa{};
    ibv_qp_init_attr qi{};
    read_depth_ = ibv_query_qp(id_->qp, &qa, IBV_QP_MAX_QP_RD_ATOMIC, &qi) == 0 ? qa.max_rd_atomic : 0;
}

void RdmaChannel::post_recv(uint64_t count) {
    while (count > 0) {
        ibv_recv_wr wrs[16]{};
        auto n = static_cast<int>(std::min<uint64_t>(count, 16));
        for (int i = 0; i < n; ++i) {
            wrs[i].wr_id = kRecvWrId;
            wrs[i].num_sge = 0;  // WRITE WITH IMMEDIATE places no data through a receive
            wrs[i].next = i + 1 < n ? &wrs[i + 1] : nullptr;
        }
        ibv_recv_wr* bad = nullptr;
        if (int rc = ibv_post_recv(id_->qp, wrs, &bad); rc != 0)
            throw_errno(cat(name_, ": ibv_post_recv"), rc);
        count -= static_cast<uint64_t>(n);
    }
}

uint64_t RdmaChannel::post_write(ibv_sge* sge, int nsge, uint64_t raddr, uint32_t rkey,
                                 std::optional<uint32_t> imm, bool data_slot, bool force_signal) {
    uint64_t idx = wr_posted_;
    size_t bytes = 0;
    for (int i = 0; i < nsge; ++i) bytes += sge[i].length;
    // Selective signaling: every signal_every-th request, and whenever an
    // unsignaled one could leave the sender waiting on a slot nobody reports.
    bool last_slot = data_slot && send_head_ + 1 - send_done_ >= opts_.ring_slots;
    bool signal = force_signal || last_slot || (idx + 1) % opts_.signal_every == 0;
    ibv_send_wr wr{};
    wr.wr_id = idx;
    wr.sg_list = sge;
    wr.num_sge = nsge;
    wr.opcode = imm ? IBV_WR_RDMA_WRITE_WITH_IMM : IBV_WR_RDMA_WRITE;
    if (imm) wr.imm_data = htonl(*imm);
    unsigned flags = 0;
    if (signal) flags |= IBV_SEND_SIGNALED;
    if (bytes <= max_inline_) flags |= IBV_SEND_INLINE;
    wr.send_flags = flags;
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    ibv_send_wr* bad = nullptr;
    if (int rc = ibv_post_send(id_->qp, &wr, &bad); rc != 0) {
        fail(cat(name_, ": ibv_post_send: ", std::strerror(rc)));
        throw_failure();
    }
    ++wr_posted_;
    if (data_slot) inflight_data_.emplace_back(idx, ++send_head_);
    return idx;
}

void RdmaChannel::fail(const std::string& why) {
    if (!error_) error_ = why.rfind(name_, 0) == 0 ? why : cat(name_, ": ", why);
    cv_.notify_all();
}

void RdmaChannel::throw_failure() const { throw LinkError(*error_); }

void RdmaChannel::on_completion(const ibv_wc& wc) {
    if (wc.status != IBV_WC_SUCCESS) {
        std::string why = wc_error(wc);
        // The first failure puts the queue pair in error; what follows are flushes.
        if (!error_ && wc.wr_id != kRecvWrId) failed_wr_ = FailedWr{wc.wr_id, wc.status, why};
        fail(why);
        return;
    }
    if (wc.opcode == IBV_WC_RDMA_WRITE || wc.opcode == IBV_WC_RDMA_READ) {
        // Send-queue completions arrive in order: this one covers every earlier request.
        wr_done_ = wc.wr_id + 1;
        if (wc.opcode == IBV_WC_RDMA_READ) --reads_in_flight_;  // reads are all signaled
        while (!inflight_data_.empty() && inflight_data_.front().first <= wc.wr_id) {
            send_done_ = inflight_data_.front().second;
            inflight_data_.pop_front();
        }
        return;
    }
    if (wc.opcode != IBV_WC_RECV_RDMA_WITH_IMM) {
        fail(cat("unexpected completion opcode ", int(wc.opcode)));
        return;
    }
    uint32_t imm = ntohl(wc.imm_data);
    uint32_t value = imm & kImmValue;
    switch (imm & ~kImmValue) {
    case kImmData:
        ready_.push_back({static_cast<uint32_t>(recv_tail_++ % opts_.ring_slots), value});
        break;
    case kImmCredit:
        credits_ += value;
        post_recv(1);
        break;
    case kImmRingDesc: {
        const std::byte* p = recv_ring_.data() + (recv_tail_++ % opts_.ring_slots) * opts_.slot_bytes;
        try {
            if (value != RingDesc::kSize) throw ProtocolError("ring description of wrong size");
            remote_ = RingDesc::decode(p);
            credits_ = remote_->slots;
        } catch (const Error& e) {
            fail(e.what());
        }
        ++unreturned_;
        post_recv(1);
        break;
    }
    default: fail(cat("unknown immediate 0x", std::hex, imm));
    }
}

int RdmaChannel::poll_completions() {
    ibv_wc wcs[16];
    int n = ibv_poll_cq(cq_.get(), 16, wcs);
    if (n < 0) {
        fail("ibv_poll_cq failed");
        return 0;
    }
    for (int i = 0; i < n; ++i) on_completion(wcs[i]);
    return n;
}

void RdmaChannel::check_cm_events() {
    while (CmEvent ev = next_cm_event(events_.get(), 0)) {
        switch (ev->event) {
        case RDMA_CM_EVENT_DISCONNECTED:
            // What the peer wrote before it left is delivered first, as tcp
            // delivers the bytes before its FIN: a refusal is an ABORT frame
            // followed at once by the disconnect, and both can be pending
            // when this thread wakes (seen in the Soft-RoCE VM: the connector
            // reported "peer disconnected" instead of the refusal).
            {
                const bool failed_before = error_.has_value();
                while (poll_completions() > 0) {
                }
                // Flushed requests found on the way say less than the cause.
                if (!failed_before) {
                    error_.reset();
                    failed_wr_.reset();
                }
            }
            fail("peer disconnected");
            break;
        case RDMA_CM_EVENT_DEVICE_REMOVAL: fail("RDMA device removed"); break;
        default: break;
        }
    }
}

template <class Pred> void RdmaChannel::wait(Lock& lk, Pred ready, std::string_view what) {
    uint32_t idle = 0;
    while (!ready()) {
        if (error_) throw LinkError(cat(*error_, " (while ", what, ")"));
        if (polling_) {
            // Another thread is polling for both of us; it wakes us on progress.
            cv_.wait_for(lk, std::chrono::milliseconds(5));
            continue;
        }
        polling_ = true;
        int n = poll_completions();
        if (n == 0 && ++idle > opts_.poll_spins) {
            // Arm, re-poll to close the race, then sleep on the completion channel.
            ibv_req_notify_cq(cq_.get(), 0);
            n = poll_completions();
            if (n == 0) {
                lk.unlock();
                pollfd fds[3] = {{comp_->fd, POLLIN, 0}, {wake_fd_.get(), POLLIN, 0},
                                 {events_->fd, POLLIN, 0}};
                ::poll(fds, 3, 100);
                lk.lock();
                ibv_cq* cq = nullptr;
                void* ctx = nullptr;
                if ((fds[0].revents & POLLIN) && ibv_get_cq_event(comp_.get(), &cq, &ctx) == 0)
                    ibv_ack_cq_events(cq, 1);
                if (fds[2].revents & POLLIN) check_cm_events();
            }
            idle = 0;
        } else if (n == 0) {
            lk.unlock();
            std::this_thread::yield();
            lk.lock();
        }
        polling_ = false;
        cv_.notify_all();
    }
}

void RdmaChannel::send(wire::FrameType type, std::span<const std::byte> payload) {
    send_filled(type, payload.size(), [&](std::span<std::byte> dst, size_t off) {
        std::memcpy(dst.data(), payload.data() + off, dst.size());
    });
}

void RdmaChannel::send_filled(wire::FrameType type, size_t length, const PayloadFiller& fill) {
    std::lock_guard sl(send_mutex_);
    size_t off = 0;
    do {
        uint64_t slot;
        size_t n;
        {
            Lock lk(mu_);
            wait(lk, [&] {
                return remote_ && credits_ > 0 && send_head_ - send_done_ < opts_.ring_slots &&
                       wr_posted_ - wr_done_ < sq_depth_;
            }, "waiting for the receiver's credits");
            size_t room = std::min(opts_.slot_bytes, remote_->slot_bytes) - wire::kFrameHeaderSize;
            n = std::min(room, length - off);
            slot = send_head_ % opts_.ring_slots;
        }
        // Only this thread touches the reserved send slot, so fill it unlocked.
        std::byte* dst = send_ring_.data() + slot * opts_.slot_bytes;
        std::span<std::byte> body(dst + wire::kFrameHeaderSize, n);
        if (n) {
            try {
                fill(body, off);
            } catch (const std::exception& e) {
                if (off > 0) {  // the peer holds part of this frame: nothing can follow it
                    Lock lk(mu_);
                    fail(cat("a ", length, "-byte frame was abandoned after ", off, " bytes: ", e.what()));
                }
                throw;
            }
        }
        auto header = enc_.encode(type, body);
        std::memcpy(dst, header.data(), header.size());
        Lock lk(mu_);
        if (error_) throw_failure();
        // The room seen above may have gone meanwhile (a credit return, reads).
        wait(lk, [&] { return wr_posted_ - wr_done_ < sq_depth_; }, "posting a frame");
        auto len = static_cast<uint32_t>(header.size() + n);
        ibv_sge sge{reinterpret_cast<uintptr_t>(dst), len, send_mr_->lkey};
        uint64_t raddr = remote_->addr + (remote_head_ % remote_->slots) * remote_->slot_bytes;
        post_write(&sge, 1, raddr, remote_->rkey, kImmData | len, true, false);
        --credits_;
        ++remote_head_;
        off += n;
    } while (off < length);
}

std::string RdmaChannel::local_device() const {
    const char* n = id_ && id_->verbs ? ibv_get_device_name(id_->verbs->device) : nullptr;
    return n ? n : "";
}

size_t RdmaChannel::max_frame_payload() const {
    std::lock_guard lk(mu_);
    uint32_t slot = remote_ ? std::min(opts_.slot_bytes, remote_->slot_bytes) : opts_.slot_bytes;
    return slot - wire::kFrameHeaderSize;
}

void RdmaChannel::send_ring_desc() {
    std::lock_guard sl(send_mutex_);
    Lock lk(mu_);
    wait(lk, [&] { return remote_ && credits_ > 0; }, "sending the ring description");
    std::byte* dst = send_ring_.data() + (send_head_ % opts_.ring_slots) * opts_.slot_bytes;
    local_ring().encode(dst);
    ibv_sge sge{reinterpret_cast<uintptr_t>(dst), RingDesc::kSize, send_mr_->lkey};
    uint64_t raddr = remote_->addr + (remote_head_ % remote_->slots) * remote_->slot_bytes;
    post_write(&sge, 1, raddr, remote_->rkey, kImmRingDesc | RingDesc::kSize, true, false);
    --credits_;
    ++remote_head_;
}

void RdmaChannel::return_credits_if_due(Lock& lk) {
    uint64_t batch = std::max<uint64_t>(1, opts_.ring_slots / 4);
    if (unreturned_ < batch || !remote_) return;
    wait(lk, [&] { return wr_posted_ - wr_done_ < sq_depth_; }, "returning credits");
    post_write(nullptr, 0, remote_->addr, remote_->rkey, kImmCredit | static_cast<uint32_t>(unreturned_),
               false, false);
    unreturned_ = 0;
}

std::pair<const std::byte*, wire::FrameHeader> RdmaChannel::next_slot() {
    Slot s;
    {
        Lock lk(mu_);
        wait(lk, [&] { return !ready_.empty(); }, "waiting for data");
        s = ready_.front();
        ready_.pop_front();
    }
    const std::byte* p = recv_ring_.data() + size_t(s.index) * opts_.slot_bytes;
    if (s.bytes < wire::kFrameHeaderSize || s.bytes > opts_.slot_bytes)
        throw ProtocolError(cat(name_, ": peer wrote ", s.bytes, " bytes into a ", opts_.slot_bytes,
                                "-byte slot"));
    wire::FrameHeader h = dec_.decode_header(std::span<const std::byte, wire::kFrameHeaderSize>(p, wire::kFrameHeaderSize));
    if (h.length != s.bytes - wire::kFrameHeaderSize)
        throw ProtocolError(cat(name_, ": frame ", h.seq, " claims ", h.length, " bytes but ",
                                s.bytes - wire::kFrameHeaderSize, " arrived"));
    return {p + wire::kFrameHeaderSize, h};
}

void RdmaChannel::release_slot() {
    Lock lk(mu_);
    post_recv(1);
    ++unreturned_;
    return_credits_if_due(lk);
}

wire::FrameType RdmaChannel::recv(std::vector<std::byte>& payload) {
    std::lock_guard rl(recv_mutex_);
    auto [p, h] = next_slot();
    payload.resize(h.length);
    if (h.length) std::memcpy(payload.data(), p, h.length);
    dec_.verify_payload(h, payload);
    release_slot();
    return h.type;
}

namespace {

// A frame's payload out of its receive slot into the caller's pieces. The
// checksum covers the copies, not the slot, which the peer can write to.
class SlotPayloadReader final : public PayloadReader {
public:
    SlotPayloadReader(const std::byte* p, size_t length, uint64_t seed, const std::string& name)
        : p_(p), left_(length), sum_(seed), name_(name) {}
    void read(std::span<const std::span<std::byte>> pieces) override {
        for (auto piece : pieces) {
            if (piece.size() > left_)
                throw ProtocolError(cat(name_, ": read of ", piece.size(), " bytes past the payload (", left_,
                                        " left)"));
            if (piece.empty()) continue;
            std::memcpy(piece.data(), p_, piece.size());
            sum_.update(piece);
            p_ += piece.size();
            left_ -= piece.size();
        }
    }
    size_t left() const override { return left_; }
    uint64_t digest() const { return sum_.digest(); }

private:
    const std::byte* p_;
    size_t left_;
    wire::StreamingChecksum sum_;
    const std::string& name_;
};

}  // namespace

wire::FrameType RdmaChannel::recv_into(const PayloadConsumer& consume) {
    std::lock_guard rl(recv_mutex_);
    auto [p, h] = next_slot();
    SlotPayloadReader reader(p, h.length, dec_.payload_seed(), name_);
    consume(h.type, h.length, reader);
    if (reader.left() != 0)
        throw ProtocolError(cat(name_, ": ", reader.left(), " payload bytes left unread"));
    dec_.verify_digest(h, reader.digest());
    release_slot();
    return h.type;
}

void RdmaChannel::shutdown() {
    {
        Lock lk(mu_);
        fail("shut down");
    }
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_.get(), &one, sizeof one);
    rdma_disconnect(id_.get());
}

// ---- one-sided path ----------------------------------------------------------

RemoteRegion RdmaChannel::expose(void* base, size_t size) {
    auto mr = register_memory(pd_.get(), base, size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE,
                              "a region exposed for remote writes");
    RemoteRegion r{reinterpret_cast<uintptr_t>(base), size, mr->rkey};
    std::lock_guard lk(mu_);
    exposed_.push_back(std::move(mr));
    return r;
}

uint32_t RdmaChannel::lkey_for(const void* p, size_t len) {
    auto a = reinterpret_cast<uintptr_t>(p);
    auto it = reg_cache_.upper_bound(a);
    if (it != reg_cache_.begin()) {
        --it;
        ibv_mr* mr = it->second.get();
        if (a + len <= it->first + mr->length) return mr->lkey;
    }
    // Register the aligned chunks around the write; if that runs past the
    // mapping, fall back to just the pages of this write.
    uintptr_t start = a & ~(kRegChunk - 1), end = (a + len + kRegChunk - 1) & ~(kRegChunk - 1);
    ibv_mr* mr = ibv_reg_mr(pd_.get(), reinterpret_cast<void*>(start), end - start, IBV_ACCESS_LOCAL_WRITE);
    if (!mr) {
        start = a & ~uintptr_t{4095};
        end = (a + len + 4095) & ~uintptr_t{4095};
        auto owned = register_memory(pd_.get(), reinterpret_cast<void*>(start), end - start,
                                     IBV_ACCESS_LOCAL_WRITE, "source pages of a one-sided write");
        mr = owned.release();
    }
    reg_cache_[start] = MemoryRegion(mr);
    return mr->lkey;
}

void RdmaChannel::register_local(const void* base, size_t size) {
    if (size == 0) return;
    {
        std::lock_guard lk(mu_);
        auto a = reinterpret_cast<uintptr_t>(base);
        auto it = reg_cache_.upper_bound(a);
        if (it != reg_cache_.begin() && a + size <= std::prev(it)->first + std::prev(it)->second->length)
            return;  // already covered
    }
    auto mr = register_memory(pd_.get(), const_cast<void*>(base), size, IBV_ACCESS_LOCAL_WRITE,
                              "local memory for one-sided writes");
    std::lock_guard lk(mu_);
    reg_cache_[reinterpret_cast<uintptr_t>(base)] = std::move(mr);
}

void RdmaChannel::write(const RemoteRegion& to, std::span<const RegionWrite> pieces) {
    std::lock_guard sl(send_mutex_);
    size_t i = 0;
    while (i < pieces.size()) {
        // Merge pieces that are contiguous on both sides into one work request.
        const RegionWrite& first = pieces[i];
        size_t len = first.len;
        size_t j = i + 1;
        while (j < pieces.size() &&
               static_cast<const std::byte*>(first.local) + len == pieces[j].local &&
               first.offset + len == pieces[j].offset && len + pieces[j].len <= (1u << 30))
            len += pieces[j++].len;
        if (first.offset + len > to.size || first.offset + len < first.offset)
            throw Error(cat(name_, ": one-sided write of ", len, " bytes at offset ", first.offset,
                            " runs past the ", to.size, "-byte remote region"));
        uint32_t lkey;
        {
            Lock lk(mu_);
            lkey = lkey_for(first.local, len);
            wait(lk, [&] { return wr_posted_ - wr_done_ < sq_depth_; }, "posting one-sided writes");
            ibv_sge sge{reinterpret_cast<uintptr_t>(first.local), static_cast<uint32_t>(len), lkey};
            post_write(&sge, 1, to.addr + first.offset, to.rkey, std::nullopt, false, false);
        }
        i = j;
    }
}

RemoteRegion RdmaChannel::expose_for_read(void* base, size_t size) {
    // LOCAL_WRITE although only the peer reads: the kernel then pins the pages
    // for writing, breaking copy-on-write (and the shared zero page of memory
    // never touched) now. A read-only pin could leave the region on a page
    // the process later replaces by writing, and the peer would read stale bytes.
    auto mr = register_memory(pd_.get(), base, size, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ,
                              "a region exposed for remote reads");
    RemoteRegion r{reinterpret_cast<uintptr_t>(base), size, mr->rkey};
    std::lock_guard lk(mu_);
    exposed_.push_back(std::move(mr));
    return r;
}

uint64_t RdmaChannel::post_read(void* local, uint32_t len, uint32_t lkey, uint64_t raddr, uint32_t rkey) {
    uint64_t idx = wr_posted_;
    ibv_sge sge{reinterpret_cast<uintptr_t>(local), len, lkey};
    ibv_send_wr wr{};
    wr.wr_id = idx;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_RDMA_READ;
    wr.send_flags = IBV_SEND_SIGNALED;  // its caller waits for exactly this completion
    wr.wr.rdma.remote_addr = raddr;
    wr.wr.rdma.rkey = rkey;
    ibv_send_wr* bad = nullptr;
    if (int rc = ibv_post_send(id_->qp, &wr, &bad); rc != 0) {
        fail(cat(name_, ": ibv_post_send (RDMA READ): ", std::strerror(rc)));
        throw_failure();
    }
    ++wr_posted_;
    ++reads_in_flight_;
    return idx;
}

void RdmaChannel::read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) {
    if (offset > from.size || len > from.size - offset)
        throw Error(cat(name_, ": one-sided read of ", len, " bytes at offset ", offset,
                        " runs past the peer's ", from.size, "-byte region"));
    auto* dst = static_cast<std::byte*>(local);
    for (size_t done = 0; done < len;) {
        auto n = static_cast<uint32_t>(std::min(len - done, kMaxReadWr));
        uint64_t at = offset + done;
        std::string what = cat("reading ", n, " bytes at offset ", at, " of the peer's memory");
        Lock lk(mu_);
        uint64_t idx = begin_read(lk, from, at, dst + done, n, what);
        end_read(lk, idx, from, at, n, what);
        done += n;
    }
}

uint64_t RdmaChannel::start_read(const RemoteRegion& from, uint64_t offset, void* local, size_t len) {
    if (offset > from.size || len > from.size - offset)
        throw Error(cat(name_, ": one-sided read of ", len, " bytes at offset ", offset,
                        " runs past the peer's ", from.size, "-byte region"));
    if (len == 0 || len > kMaxReadWr)
        throw Error(cat(name_, ": a started one-sided read must be 1 to ", kMaxReadWr, " bytes, not ", len));
    Lock lk(mu_);
    return begin_read(lk, from, offset, static_cast<std::byte*>(local), static_cast<uint32_t>(len),
                      cat("starting a read of ", len, " bytes at offset ", offset, " of the peer's memory"));
}

void RdmaChannel::wait_read(uint64_t ticket) {
    Lock lk(mu_);
    // Where it read from is not kept per read: the failure says what the
    // device said, the caller adds which pages.
    end_read(lk, ticket, RemoteRegion{}, 0, 0, cat("waiting for read ", ticket));
}

uint64_t RdmaChannel::begin_read(Lock& lk, const RemoteRegion& from, uint64_t offset, std::byte* local,
                                 uint32_t len, const std::string& what) {
    if (len > 0 && read_depth_ == 0)
        throw Error(cat(name_, ": the connection allows no RDMA READs (the device or the peer "
                               "granted no read depth)"));
    if (error_) throw LinkError(cat(*error_, " (before ", what, ")"));
    uint32_t lkey = lkey_for(local, len);
    // Reads have kReadDepth send queue entries of their own; the writes' room
    // is checked against everything outstanding, reads included.
    wait(lk, [&] { return reads_in_flight_ < kReadDepth && wr_posted_ - wr_done_ < sq_depth_ + kReadDepth; },
         what);
    return post_read(local, len, lkey, from.addr + offset, from.rkey);
}

void RdmaChannel::end_read(Lock& lk, uint64_t idx, const RemoteRegion& from, uint64_t offset, uint32_t len,
                           const std::string& what) {
    if (idx >= wr_posted_) throw Error(cat(name_, ": no read was started as ", idx));
    wait(lk, [&] { return wr_done_ > idx || (failed_wr_ && failed_wr_->wr_id == idx); }, what);
    if (wr_done_ <= idx) {
        // This read broke the queue pair (and so the channel) itself.
        std::string msg = from.size != 0
                              ? cat(name_, ": one-sided read of ", len, " bytes at offset ", offset, " of the peer's ",
                                    from.size, "-byte region (rkey 0x", std::hex, from.rkey, std::dec,
                                    ") failed: ", failed_wr_->why)
                              : cat(name_, ": one-sided read ", idx, " failed: ", failed_wr_->why);
        if (read_was_refused(failed_wr_->status)) throw Error(msg);
        throw LinkError(msg);
    }
}

void RdmaChannel::flush() {
    std::lock_guard sl(send_mutex_);
    Lock lk(mu_);
    wait(lk, [&] { return remote_.has_value() && wr_posted_ - wr_done_ < sq_depth_; }, "flushing");
    // A signaled zero-length write: send completions are in order, so when it
    // completes every earlier write has been acknowledged by the peer.
    uint64_t idx = post_write(nullptr, 0, remote_->addr, remote_->rkey, std::nullopt, false, true);
    wait(lk, [&] { return wr_done_ > idx; }, "waiting for one-sided writes to land");
}

}  // namespace rmig::transport::rdma
