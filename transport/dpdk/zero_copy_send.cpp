// DpdkChannel::send_zero_copy: the frame's payload goes out as external
// buffers attached behind header mbufs, one per segment, never copied; a free
// callback per segment tells us when the NIC and the retransmission queue are
// both done with the memory.
#include <rte_mbuf.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "transport/dpdk/dpdk_transport.hpp"
#include "transport/dpdk/endpoint.hpp"
#include "transport/dpdk/extmem.hpp"

namespace rmig::transport::dpdk {

namespace {

// Lives until the last external buffer of one send is released.
struct Outstanding {
    std::mutex m;
    std::condition_variable cv;
    size_t left = 0;
    std::vector<rte_mbuf_ext_shared_info> shinfo;
};

constexpr std::chrono::milliseconds kReleaseWait{2000};

void release(void* /*addr*/, void* opaque) {
    auto* o = static_cast<Outstanding*>(opaque);
    std::lock_guard lock(o->m);
    if (--o->left == 0) o->cv.notify_all();
}

}  // namespace

void DpdkChannel::send_zero_copy(wire::FrameType type, std::span<const std::byte> payload) {
    ExternalMemory* mem = ExternalMemory::find(payload.data(), payload.size());
    if (!mem)
        throw Error(cat(name_, ": send_zero_copy of ", payload.size(), " bytes at ",
                        static_cast<const void*>(payload.data()),
                        ": memory not registered (dpdk::ExternalMemory)"));
    std::lock_guard lock(send_mutex_);
    auto header = enc_.encode(type, payload);
    const uint32_t mss = conn_->mss();
    const size_t segs = (payload.size() + mss - 1) / mss;
    auto out = std::make_shared<Outstanding>();
    out->shinfo.resize(segs);
    out->left = segs;
    // Segments not yet handed to the connection are ours: an early exit frees
    // them, and their free callbacks count down `out` like sent ones.
    std::vector<Mbuf> chain;
    chain.reserve(segs);
    for (size_t i = 0; i < segs; ++i) {
        size_t off = i * mss, n = std::min<size_t>(mss, payload.size() - off);
        Mbuf h = Mbuf::alloc(ep_->pool());
        Mbuf e = h ? Mbuf::alloc(ep_->pool()) : Mbuf();
        if (!e)
            throw LinkError(cat(name_, ": mbuf pool exhausted building a zero-copy frame of ",
                                segs, " segments"));
        rte_pktmbuf_append(h.get(), kFrameOverhead);
        auto& sh = out->shinfo[i];
        sh.free_cb = release;
        sh.fcb_opaque = out.get();
        rte_mbuf_ext_refcnt_set(&sh, 1);
        void* addr = const_cast<std::byte*>(payload.data() + off);
        rte_pktmbuf_attach_extbuf(e.get(), addr, mem->iova(addr), static_cast<uint16_t>(n), &sh);
        e->data_len = static_cast<uint16_t>(n);
        e->pkt_len = static_cast<uint32_t>(n);
        if (!h.chain(std::move(e)))  // two segments: cannot happen
            throw Error(cat(name_, ": cannot chain a zero-copy frame"));
        chain.push_back(std::move(h));
    }
    try {
        conn_->write(std::span<const std::byte>(header));
        conn_->write_mbufs(std::move(chain), payload.size());
    } catch (const Error& e) {
        // Free what the connection did not take (all of it if the header
        // failed); wait below for the rest.
        chain.clear();
        std::unique_lock l(out->m);
        if (!out->cv.wait_for(l, kReleaseWait, [&] { return out->left == 0; }))
            new std::shared_ptr<Outstanding>(out);  // late callbacks must find it alive
        throw LinkError(cat(name_, ": sending ", wire::to_string(type), " frame (zero copy): ",
                            e.what()));
    }
    // The caller may reuse the memory once every segment was acknowledged and
    // the device let go of it: the free callbacks say both.
    std::unique_lock l(out->m);
    if (!out->cv.wait_for(l, 2 * opts_.dead_peer_timeout, [&] { return out->left == 0; })) {
        conn_->abort("zero-copy segments never released");
        bool released = out->cv.wait_for(l, kReleaseWait, [&] { return out->left == 0; });
        if (!released) new std::shared_ptr<Outstanding>(out);  // late callbacks must find it alive
        throw LinkError(cat(name_, ": peer did not acknowledge a zero-copy frame within ",
                            2 * opts_.dead_peer_timeout.count(), " ms",
                            released ? "" : "; the device still refers to the memory"));
    }
}

}  // namespace rmig::transport::dpdk
