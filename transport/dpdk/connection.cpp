#include "transport/dpdk/connection.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "transport/dpdk/endpoint.hpp"

namespace rmig::transport::dpdk {

namespace proto_ = proto;

uint64_t now_ns() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

namespace {

proto::SenderConfig sender_config(const ConnConfig& c) {
    proto::SenderConfig s;
    s.window_segments = c.window;
    s.initial_rto_ns = 20'000'000;
    s.min_rto_ns = 5'000'000;
    s.max_rto_ns = 400'000'000;
    return s;
}

// Hands a segment back to the pool: release callbacks of the protocol take
// their payload by value, so the reference ends with the call.
void let_go(Mbuf) {}

}  // namespace

Connection::Connection(Endpoint& ep, uint32_t id, bool acceptor, const rte_ether_addr& peer,
                       const ConnConfig& cfg, std::string name, uint16_t queue)
    : ep_(ep),
      id_(id),
      acceptor_(acceptor),
      peer_(peer),
      cfg_(cfg),
      name_(std::move(name)),
      queue_(queue),
      state_(acceptor ? State::open : State::connecting),
      unsent_limit_(std::max<size_t>(cfg.window, 64)),
      sender_(sender_config(cfg)),
      receiver_(cfg.window),
      pacer_(cfg.pace_bytes_per_sec, 32ull * (cfg.mss + kFrameOverhead)),
      last_rx_ns_(now_ns()) {
    rng_ ^= (static_cast<uint64_t>(id) << 17) ^ last_rx_ns_;
}

void Connection::check_state_locked(const char* what) {
    if (state_ == State::failed) throw LinkError(cat(name_, ": ", what, ": ", error_));
    if (state_ == State::closed || fin_queued_)
        throw LinkError(cat(name_, ": ", what, ": channel already closed"));
}

void Connection::write(std::span<const std::span<const std::byte>> parts) {
    size_t total = 0;
    for (auto p : parts) total += p.size();
    size_t part = 0, off = 0, done = 0;
    while (done < total) {
        Mbuf m;
        for (int tries = 0; !m; ++tries) {
            m = Mbuf::alloc(ep_.pool());
            if (m) break;
            {
                std::lock_guard lock(m_);
                check_state_locked("sending");
            }
            if (tries > 200000)
                throw LinkError(cat(name_, ": mbuf pool of ", ep_.port_name(),
                                    " exhausted for 10 s (too many channels or too large a window)"));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        size_t n = std::min<size_t>(cfg_.mss, total - done);
        char* p = rte_pktmbuf_append(m.get(), static_cast<uint16_t>(kFrameOverhead + n));
        for (size_t filled = 0; filled < n;) {
            while (off == parts[part].size()) {
                ++part;
                off = 0;
            }
            size_t take = std::min(n - filled, parts[part].size() - off);
            std::memcpy(p + kFrameOverhead + filled, parts[part].data() + off, take);
            filled += take;
            off += take;
        }
        done += n;
        std::unique_lock lock(m_);
        // Twice the dead-peer timeout: the poller's detection, with its
        // clearer reason, ends a wait for a vanished peer first.
        auto deadline = std::chrono::steady_clock::now() + 2 * cfg_.dead_peer_timeout;
        while (state_ == State::open && !fin_queued_ && unsent_.size() >= unsent_limit_)
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
        if (state_ != State::open || fin_queued_ || unsent_.size() >= unsent_limit_) {
            check_state_locked("sending");
            if (state_ == State::connecting)
                throw LinkError(cat(name_, ": sending before the connection opened"));
            throw LinkError(cat(name_, ": peer took no data for ",
                                cfg_.dead_peer_timeout.count(), " ms"));
        }
        unsent_.push_back(std::move(m));
        stats_.bytes_sent += n;
    }
}

void Connection::write_mbufs(std::vector<Mbuf> segs, size_t payload_bytes) {
    std::unique_lock lock(m_);
    for (auto& seg : segs) {
        auto deadline = std::chrono::steady_clock::now() + 2 * cfg_.dead_peer_timeout;
        while (state_ != State::failed && unsent_.size() >= unsent_limit_)
            if (cv_.wait_until(lock, deadline) == std::cv_status::timeout)
                throw LinkError(cat(name_, ": peer took no data for ",
                                    cfg_.dead_peer_timeout.count(), " ms"));
        check_state_locked("sending");
        unsent_.push_back(std::move(seg));
    }
    stats_.bytes_sent += payload_bytes;
}

size_t Connection::read(void* buf, size_t n, Millis timeout) {
    std::unique_lock lock(m_);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (delivered_.empty() && !fin_received_ && state_ != State::failed)
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout)
            throw LinkError(cat(name_, ": nothing received for ", timeout.count(), " ms"));
    size_t got = 0;
    auto* out = static_cast<std::byte*>(buf);
    uint64_t backlog_before = delivered_.size();
    while (got < n && !delivered_.empty()) {
        Mbuf& m = delivered_.front();
        size_t take = std::min<size_t>(n - got, m->data_len);
        std::memcpy(out + got, rte_pktmbuf_mtod(m.get(), const std::byte*), take);
        got += take;
        if (take == m->data_len)
            delivered_.pop_front();
        else
            rte_pktmbuf_adj(m.get(), static_cast<uint16_t>(take));
    }
    if (got == 0 && state_ == State::failed) throw LinkError(cat(name_, ": receiving: ", error_));
    // Reopening a quarter of the window is worth an ack of its own.
    if (backlog_before - delivered_.size() > 0 &&
        receiver_.limit(delivered_.size()) >= acked_limit_ + cfg_.window / 4)
        ack_due_ = true;
    stats_.bytes_received += got;
    return got;
}

std::optional<size_t> Connection::read_now(void* buf, size_t n) {
    {
        std::lock_guard lock(m_);
        if (delivered_.empty() && !fin_received_ && state_ != State::failed) return std::nullopt;
    }
    return read(buf, n, Millis(0));
}

std::string Connection::peer_address() {
    char s[RTE_ETHER_ADDR_FMT_SIZE];
    std::lock_guard lock(m_);
    rte_ether_format_addr(s, sizeof s, &peer_);
    return s;
}

void Connection::read_exact(void* buf, size_t n, Millis timeout, const char* what) {
    size_t got = 0;
    while (got < n) {
        size_t r = read(static_cast<std::byte*>(buf) + got, n - got, timeout);
        if (r == 0) {
            if (got == 0 && n > 0)
                throw LinkError(cat(name_, ": peer closed the channel without an end frame"));
            throw ProtocolError(cat(name_, ": stream ended after ", got, " of ", n, " bytes of ",
                                    what));
        }
        got += r;
    }
}

bool Connection::close(Millis timeout) {
    std::unique_lock lock(m_);
    if (state_ == State::open && !fin_queued_) {
        fin_queued_ = true;
        if (Mbuf m = Mbuf::alloc(ep_.pool())) {
            rte_pktmbuf_append(m.get(), kFrameOverhead);
            unsent_.push_back(std::move(m));
        }
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (state_ == State::open && !(fin_pushed_ && sender_.idle() && unsent_.empty()))
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) break;
    bool clean = state_ == State::open && fin_pushed_ && sender_.idle();
    if (state_ != State::failed) state_ = State::closed;
    return clean;
}

void Connection::abort(const std::string& why) {
    std::lock_guard lock(m_);
    fail_locked(why);
}

bool Connection::wait_open(Millis timeout) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, timeout, [&] { return state_ != State::connecting; }) &&
           state_ == State::open;
}

ConnStats Connection::stats() {
    std::lock_guard lock(m_);
    ConnStats s = stats_;
    s.sender = sender_.stats();
    return s;
}

void Connection::fail_locked(const std::string& why) {
    if (state_ == State::failed) return;
    state_ = State::failed;
    error_ = why;
    // Nothing more will be sent: let go of the send side's buffers now (a
    // zero-copy sender waits for exactly that).
    unsent_.clear();
    sender_.drain(let_go);
    cv_.notify_all();
}

// ---- poller side ----

void Connection::note_rx(uint64_t now) {
    std::lock_guard lock(m_);
    last_rx_ns_ = now;
}

void Connection::on_data(Mbuf m, uint64_t seq, uint64_t stamp, uint64_t now) {
    std::lock_guard lock(m_);
    last_rx_ns_ = now;
    ack_due_ = true;
    if (state_ == State::failed || state_ == State::connecting) return;
    bool any = false;
    // A duplicate or a segment beyond the window is dropped (freed) by the receiver.
    receiver_.on_data(seq, std::move(m), stamp, delivered_.size(), [&](Mbuf d) {
        if (d->data_len == 0)
            fin_received_ = true;  // the FIN: an empty segment
        else if (!fin_received_)
            delivered_.push_back(std::move(d));
        any = true;
    });
    if (any) cv_.notify_all();
}

void Connection::on_ack(uint64_t cum, uint64_t limit, uint64_t echo,
                        std::span<const std::byte> sack, uint64_t now) {
    std::lock_guard lock(m_);
    last_rx_ns_ = now;
    if (state_ == State::connecting) {
        state_ = State::open;  // our SYN_ACK was lost, but the peer talks to us
        cv_.notify_all();
    }
    uint64_t before = sender_.unacked_base();
    sender_.on_ack({cum, limit, echo, sack}, now, let_go);
    if (!sack.empty()) retx_scan_due_ = true;
    if (sender_.unacked_base() != before) cv_.notify_all();
}

void Connection::on_syn_ack(const rte_ether_addr& from, uint64_t now) {
    std::lock_guard lock(m_);
    last_rx_ns_ = now;
    if (state_ == State::connecting) {
        peer_ = from;
        state_ = State::open;
        cv_.notify_all();
    }
}

void Connection::on_rst(const std::string& why) {
    std::lock_guard lock(m_);
    if (state_ == State::closed && sender_.idle()) return;
    fail_locked(why);
}

void Connection::tx_data_locked(const Mbuf& m, uint64_t seq, uint64_t now, bool fin) {
    // A copy the device still holds must not change under it: its headers
    // were written for the first transmission and are the same.
    if (!m.shared()) {
        proto::SegmentHeader h;
        h.type = proto::SegmentType::data;
        h.flags = static_cast<uint8_t>((acceptor_ ? proto::kFromAcceptor : 0) | (fin ? proto::kFin : 0));
        h.conn_id = id_;
        h.queue = static_cast<uint8_t>(queue_);
        h.length = static_cast<uint32_t>(m->pkt_len - kFrameOverhead);
        h.seq = seq;
        h.timestamp = now;
        ep_.fill_headers(m.get(), peer_, h);
    }
    last_tx_ns_ = now;
    if (cfg_.tx_loss > 0) {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        if (static_cast<double>(rng_ >> 11) * 0x1.0p-53 < cfg_.tx_loss) {
            ++stats_.injected_drops;
            return;
        }
    }
    // The device frees what it sends: it gets a reference of its own, and the
    // sender keeps ours until the segment is acknowledged.
    ep_.queue_tx(queue_, m.share());
}

void Connection::send_ack_locked(uint64_t now) {
    std::vector<std::byte> sack;
    size_t max_sack = std::min<size_t>(1024, ep_.mtu() > 200 ? ep_.mtu() - 100 : 64);
    receiver_.sack(sack, max_sack);
    proto::SegmentHeader h;
    h.type = proto::SegmentType::ack;
    h.flags = acceptor_ ? proto::kFromAcceptor : 0;
    h.conn_id = id_;
    h.queue = static_cast<uint8_t>(queue_);
    h.length = static_cast<uint32_t>(sack.size());
    h.seq = receiver_.next_expected();
    h.window_limit = receiver_.limit(delivered_.size());
    h.timestamp = receiver_.newest_stamp();
    acked_limit_ = h.window_limit;
    ep_.send_control(queue_, peer_, h, sack);
    ack_due_ = false;
    last_tx_ns_ = now;
}

size_t Connection::service(uint64_t now) {
    std::lock_guard lock(m_);
    size_t frames = 0;
    if (state_ == State::failed) return 0;
    uint64_t dead_ns = static_cast<uint64_t>(cfg_.dead_peer_timeout.count()) * 1'000'000;
    if (now > last_rx_ns_ && now - last_rx_ns_ > dead_ns) {
        fail_locked(cat("peer silent for ", (now - last_rx_ns_) / 1'000'000,
                        " ms (dead-peer timeout ", cfg_.dead_peer_timeout.count(), " ms)"));
        return 0;
    }
    if (state_ == State::connecting) {
        if (now - last_syn_ns_ > 50'000'000) {
            proto::SegmentHeader h;
            h.type = proto::SegmentType::syn;
            h.conn_id = id_;
            h.queue = static_cast<uint8_t>(queue_);
            h.window_limit = cfg_.window;
            ep_.send_control(queue_, peer_, h);
            last_syn_ns_ = now;
            ++frames;
        }
        return frames;
    }
    // New data, in order, within window and pacing.
    while (!unsent_.empty() && sender_.can_send() && ep_.tx_room(queue_)) {
        if (!pacer_.take(unsent_.front()->pkt_len, now)) break;
        Mbuf m = std::move(unsent_.front());
        unsent_.pop_front();
        bool fin = m->pkt_len == kFrameOverhead;
        uint64_t seq = sender_.next_seq();
        tx_data_locked(m, seq, now, fin);
        sender_.push(std::move(m), now);  // numbers it `seq` and keeps it until acknowledged
        if (fin) {
            fin_pushed_ = true;
            fin_seq_ = seq;
        }
        ++frames;
    }
    if (frames) cv_.notify_all();  // room in the send queue
    // Retransmissions: on a SACK-revealed gap at once, else a few times per RTO.
    uint64_t scan_every = std::max<uint64_t>(sender_.rto_ns() / 4, 200'000);
    if (!sender_.idle() && (retx_scan_due_ || now - last_scan_ns_ >= scan_every)) {
        retx_scan_due_ = false;
        last_scan_ns_ = now;
        frames += sender_.collect_retransmits(now, 256, [&](uint64_t seq, Mbuf& m) {
            // A copy still waiting in the tx backlog (full ring) has not been
            // lost: it only waits. Only the device's own queue may hold it (real NICs).
            if (ep_.queued_for_tx(queue_, m.get())) return false;
            tx_data_locked(m, seq, now, seq == fin_seq_);
            return true;
        });
    }
    // Acks: after data arrived, when reading reopened the window, and as a
    // keepalive so the peer's dead-peer timer never fires on an idle channel.
    if (ack_due_ || now - last_tx_ns_ > dead_ns / 4) {
        send_ack_locked(now);
        ++frames;
    }
    return frames;
}

std::string Connection::debug_state() {
    std::lock_guard lock(m_);
    return cat(name_, ": state ", int(state_), " unsent ", unsent_.size(), " una ",
               sender_.unacked_base(), " next ", sender_.next_seq(), " can_send ",
               sender_.can_send(), " rto_us ", sender_.rto_ns() / 1000, " rx_next ",
               receiver_.next_expected(), " delivered ", delivered_.size(), " fin_rx ",
               fin_received_);
}

bool Connection::finished() {
    std::lock_guard lock(m_);
    return state_ == State::failed || (state_ == State::closed && sender_.idle());
}

}  // namespace rmig::transport::dpdk
