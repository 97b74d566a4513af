// OneSided over dpdk (memory mode's page path): a remote write is a write
// record (protocol/write_record.hpp) in the channel's ordered stream followed
// by the page bytes, which go out as external buffers attached to the guest's
// own pages when the source registered them (register_local), else copied.
// The receiving DpdkChannel applies each record into the region it exposed
// while it reads the stream, so a frame sent after the writes (the round's
// barrier) is only seen once they are in place. Page bytes are outside every
// checksum of ours: the guest may rewrite a page while it is in flight, and a
// page so torn was dirtied after the collect that chose it, so the next round
// sends it again (docs/dpdk-protocol.md, "Memory mode over dpdk").
#include <rte_mbuf.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "common/error.hpp"
#include "common/log.hpp"
#include "transport/dpdk/dpdk_transport.hpp"
#include "transport/dpdk/endpoint.hpp"
#include "transport/dpdk/extmem.hpp"
#include "transport/dpdk/protocol/write_record.hpp"

namespace rmig::transport::dpdk {

// Every external buffer a channel's writes still lend to the port; flush()
// waits until the peer acknowledged them all and the device let go.
struct RemoteWrites {
    std::mutex m;
    std::condition_variable cv;
    size_t left = 0;
    std::deque<rte_mbuf_ext_shared_info> shinfo;  // stable addresses while in flight
};

namespace {

constexpr size_t kMaxRun = 256 << 10;  // contiguous pages merged into one record, at most

void released(void* /*addr*/, void* opaque) {
    auto* w = static_cast<RemoteWrites*>(opaque);
    std::lock_guard lock(w->m);
    if (--w->left == 0) w->cv.notify_all();
}

// Guest regions registered as external memory, shared by every channel that
// asked (memory mode registers each region on every data channel).
struct Registration {
    std::unique_ptr<ExternalMemory> mem;
    size_t refs = 0;
};
std::mutex g_reg_mutex;
std::map<const void*, Registration> g_registrations;

Mbuf alloc_waiting(rte_mempool* pool, const std::string& who) {
    for (int tries = 0; tries < 40000; ++tries) {  // 2 s
        if (Mbuf m = Mbuf::alloc(pool)) return m;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    throw LinkError(cat(who, ": mbuf pool exhausted for 2 s building remote-write segments"));
}

}  // namespace

void DpdkChannel::register_local(const void* base, size_t size) {
    const auto addr = reinterpret_cast<uintptr_t>(base);
    if (addr % 4096 != 0 || size % 4096 != 0 || size == 0) return;  // such pieces are copied
    std::lock_guard lock(g_reg_mutex);
    auto& r = g_registrations[base];
    if (!r.mem) {
        try {
            r.mem = std::make_unique<ExternalMemory>(const_cast<void*>(base), size);
        } catch (const Error& e) {
            g_registrations.erase(base);
            log::warn(name_, ": guest pages will be copied, not attached: ", e.what());
            return;
        }
    }
    ++r.refs;
    registered_.push_back(base);
}

RemoteRegion DpdkChannel::expose(void* base, size_t size) {
    exposed_.push_back({static_cast<std::byte*>(base), size});
    return {reinterpret_cast<uint64_t>(base), size, static_cast<uint32_t>(exposed_.size() - 1)};
}

void DpdkChannel::write(const RemoteRegion& to, std::span<const RegionWrite> pieces) {
    std::lock_guard lock(send_mutex_);
    if (!writes_) writes_ = std::make_shared<RemoteWrites>();
    const uint32_t mss = conn_->mss();
    for (size_t i = 0; i < pieces.size();) {
        auto* start = static_cast<const std::byte*>(pieces[i].local);
        uint64_t off = pieces[i].offset;
        size_t len = pieces[i].len, j = i + 1;
        while (j < pieces.size() && len + pieces[j].len <= kMaxRun &&
               pieces[j].local == start + len && pieces[j].offset == off + len)
            len += pieces[j++].len;
        i = j;
        if (off > to.size || len > to.size - off)
            throw ProtocolError(cat(name_, ": remote write of ", len, " bytes at offset ", off,
                                    " runs past the peer's region of ", to.size, " bytes"));
        auto rec = proto::encode(proto::WriteRecord{to.rkey, off, static_cast<uint32_t>(len)});
        ExternalMemory* mem = ExternalMemory::find(start, len);
        try {
            if (!mem || mss <= proto::kWriteRecordSize) {
                std::span<const std::byte> parts[2] = {rec, {start, len}};
                conn_->write(std::span(parts, 2));
                continue;
            }
            // Segment 0: record + the first page bytes; then full segments.
            // Until write_mbufs takes them, an exception frees what was built.
            std::vector<Mbuf> chain;
            for (size_t done = 0, seg = 0; done < len; ++seg) {
                size_t prefix = seg == 0 ? proto::kWriteRecordSize : 0;
                size_t n = std::min<size_t>(mss - prefix, len - done);
                Mbuf h = alloc_waiting(ep_->pool(), name_);
                char* p = rte_pktmbuf_append(h.get(), static_cast<uint16_t>(kFrameOverhead + prefix));
                if (prefix) std::memcpy(p + kFrameOverhead, rec.data(), prefix);
                Mbuf e = alloc_waiting(ep_->pool(), name_);
                rte_mbuf_ext_shared_info* sh;
                {
                    std::lock_guard wl(writes_->m);
                    sh = &writes_->shinfo.emplace_back();
                    ++writes_->left;
                }
                sh->free_cb = released;
                sh->fcb_opaque = writes_.get();
                rte_mbuf_ext_refcnt_set(sh, 1);
                void* addr = const_cast<std::byte*>(start + done);
                rte_pktmbuf_attach_extbuf(e.get(), addr, mem->iova(addr), static_cast<uint16_t>(n), sh);
                e->data_len = static_cast<uint16_t>(n);
                e->pkt_len = static_cast<uint32_t>(n);
                if (!h.chain(std::move(e)))  // two segments: cannot happen
                    throw Error(cat(name_, ": cannot chain a remote-write segment"));
                chain.push_back(std::move(h));
                done += n;
            }
            conn_->write_mbufs(std::move(chain), len + proto::kWriteRecordSize);
            zero_copy_bytes_ += len;
        } catch (const LinkError& e) {
            throw LinkError(cat(name_, ": remote write of ", len, " bytes: ", e.what()));
        }
    }
}

void DpdkChannel::flush() {
    std::lock_guard lock(send_mutex_);
    if (!writes_) return;
    std::unique_lock l(writes_->m);
    if (!writes_->cv.wait_for(l, 2 * opts_.dead_peer_timeout, [&] { return writes_->left == 0; })) {
        l.unlock();
        conn_->abort("remote-write segments never released");
        throw LinkError(cat(name_, ": peer did not acknowledge remote writes within ",
                            2 * opts_.dead_peer_timeout.count(), " ms"));
    }
    writes_->shinfo.clear();  // nothing refers to them any more
}

void DpdkChannel::apply_write_record(const wire::HeaderBytes& hb) {
    auto r = proto::decode_write_record(std::span<const std::byte, proto::kWriteRecordSize>(hb));
    if (!r) throw ProtocolError(cat(name_, ": damaged remote-write record (its check failed)"));
    if (r->rkey >= exposed_.size() || r->offset > exposed_[r->rkey].size ||
        r->length > exposed_[r->rkey].size - r->offset)
        throw ProtocolError(cat(name_, ": remote write of ", r->length, " bytes at offset ",
                                r->offset, " into region ", r->rkey,
                                " is outside what this side exposed (", exposed_.size(),
                                " regions)"));
    conn_->read_exact(exposed_[r->rkey].base + r->offset, r->length, opts_.dead_peer_timeout * 1000,
                      "remote-write bytes");
}

void DpdkChannel::release_remote_writes() {
    if (writes_) {
        bool in_flight;
        {
            std::lock_guard l(writes_->m);
            in_flight = writes_->left > 0;
        }
        // Unacknowledged segments would wait for a peer that is gone: let go of them.
        if (in_flight) conn_->abort("channel closed with remote writes in flight");
        std::unique_lock l(writes_->m);
        // Segments the port still holds call back later: keep their target alive.
        if (!writes_->cv.wait_for(l, std::chrono::milliseconds(2000), [&] { return writes_->left == 0; }))
            new std::shared_ptr<RemoteWrites>(writes_);
    }
    std::lock_guard lock(g_reg_mutex);
    for (const void* base : registered_) {
        auto it = g_registrations.find(base);
        if (it != g_registrations.end() && --it->second.refs == 0) g_registrations.erase(it);
    }
    registered_.clear();
}

}  // namespace rmig::transport::dpdk
