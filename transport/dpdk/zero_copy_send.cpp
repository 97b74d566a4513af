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
    std::vector<rte_mbuf*> chain;
    chain.reserve(segs);
    auto free_all = [&] {
        for (auto* m : chain) rte_pktmbuf_free(m);
    };
    for (size_t i = 0; i < segs; ++i) {
        size_t off = i * mss, n = std::min<size_t>(mss, payload.size() - off);
        rte_mbuf* h = rte_pktmbuf_alloc(ep_->pool());
        rte_mbuf* e = h ? rte_pktmbuf_alloc(ep_->pool()) : nullptr;
        if (!e) {
            if (h) rte_pktmbuf_free(h);
            free_all();
            throw LinkError(cat(name_, ": mbuf pool exhausted building a zero-copy frame of ",
                                segs, " segments"));
        }
        rte_pktmbuf_append(h, kFrameOverhead);
        auto& sh = out->shinfo[i];
        sh.free_cb = release;
        sh.fcb_opaque = out.get();
        rte_mbuf_ext_refcnt_set(&sh, 1);
        void* addr = const_cast<std::byte*>(payload.data() + off);
        rte_pktmbuf_attach_extbuf(e, addr, mem->iova(addr), static_cast<uint16_t>(n), &sh);
        e->data_len = static_cast<uint16_t>(n);
        e->pkt_len = static_cast<uint32_t>(n);
        rte_pktmbuf_chain(h, e);
        chain.push_back(h);
    }
    try {
        conn_->write(std::span<const std::byte>(header));
        conn_->write_mbufs(chain, payload.size());
    } catch (const Error& e) {
        // write_mbufs freed what it did not queue; wait below for the rest.
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
