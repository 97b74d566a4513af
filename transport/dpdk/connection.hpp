// One reliable ordered byte stream over a DPDK port (docs/dpdk-protocol.md):
// the application side (write/read, any thread) and the state the endpoint's
// poller thread drives (segments, acks, retransmissions, timers). The
// protocol decisions live in protocol/ (pure C++); this file holds mbufs.
#pragma once

#include <rte_ether.h>
#include <rte_mbuf.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transport/channel.hpp"
#include "transport/dpdk/dpdk_handles.hpp"
#include "transport/dpdk/protocol/pacer.hpp"
#include "transport/dpdk/protocol/reliable_receiver.hpp"
#include "transport/dpdk/protocol/reliable_sender.hpp"

namespace rmig::transport::dpdk {

class Endpoint;

inline constexpr size_t kFrameOverhead = RTE_ETHER_HDR_LEN + 40;  // Ethernet + segment header

struct ConnStats {
    uint64_t bytes_sent = 0, bytes_received = 0;
    uint64_t injected_drops = 0;
    proto::SenderStats sender;
};

// Frames one queue pair moved; `foreign_rx`: frames that arrived on this
// queue for a connection placed on another (af_packet's kernel fanout picks
// the rx queue), handled here under that connection's lock.
struct QueueStats {
    uint64_t rx_frames = 0, tx_frames = 0, foreign_rx = 0;
};

struct ConnConfig {
    uint32_t window = 1024;        // segments in flight and receiver buffer
    uint32_t mss = 1460;           // payload bytes per segment
    uint64_t pace_bytes_per_sec = 0;
    double tx_loss = 0;
    Millis dead_peer_timeout{20000};
};

class Connection {
public:
    enum class State { connecting, open, closed, failed };

    // `queue`: the endpoint's queue pair this connection sends on and whose
    // poller drives its timers.
    Connection(Endpoint& ep, uint32_t id, bool acceptor, const rte_ether_addr& peer,
               const ConnConfig& cfg, std::string name, uint16_t queue = 0);

    // Application side. write copies `data` into segments (blocks while the
    // send queue is full); read returns up to `n` bytes, waiting until at least
    // one is there, the stream ended (0) or `timeout` passed (LinkError).
    void write(std::span<const std::byte> data) { write({&data, 1}); }
    // Gathers `parts` into full segments (a frame header and its payload share them).
    void write(std::span<const std::span<const std::byte>> parts);
    // Queues segments whose payload is already in mbufs the caller built (the
    // zero-copy path). Those it could not queue when it throws are freed.
    void write_mbufs(std::vector<Mbuf> segs, size_t payload_bytes);
    size_t read(void* buf, size_t n, Millis timeout);
    void read_exact(void* buf, size_t n, Millis timeout, const char* what);
    // What has arrived, without waiting: nullopt when nothing yet, 0 when the
    // stream ended; LinkError when the connection failed.
    std::optional<size_t> read_now(void* buf, size_t n);
    // Ends the stream (FIN) and waits up to `timeout` until the peer acknowledged all.
    bool close(Millis timeout);
    void abort(const std::string& why);  // fails both directions now
    bool wait_open(Millis timeout);
    ConnStats stats();

    const std::string& name() const { return name_; }
    uint32_t id() const { return id_; }
    bool acceptor() const { return acceptor_; }
    uint32_t mss() const { return cfg_.mss; }
    uint16_t queue() const { return queue_; }
    std::string peer_address();  // the peer's MAC, "02:00:00:00:00:01"

    // Poller side. on_* may run on any queue's poller (a frame that landed on
    // another queue); service only on the poller of queue().
    void on_data(Mbuf m, uint64_t seq, uint64_t stamp, uint64_t now);  // m: payload only
    void on_ack(uint64_t cum, uint64_t limit, uint64_t echo, std::span<const std::byte> sack,
                uint64_t now);
    void on_syn_ack(const rte_ether_addr& from, uint64_t now);
    void on_rst(const std::string& why);
    void note_rx(uint64_t now);
    // Transmits what is due (new data within window and pacing, retransmits,
    // acks, SYNs, keepalives); detects a silent peer. Returns frames queued.
    size_t service(uint64_t now);
    bool finished();  // closed or failed and nothing left to send
    std::string debug_state();

private:
    friend class Endpoint;
    void fail_locked(const std::string& why);
    // Gives the device a reference to segment `seq`; `m` stays the sender's.
    void tx_data_locked(const Mbuf& m, uint64_t seq, uint64_t now, bool fin);
    void send_ack_locked(uint64_t now);
    void check_state_locked(const char* what);

    Endpoint& ep_;
    const uint32_t id_;
    const bool acceptor_;
    rte_ether_addr peer_;
    ConnConfig cfg_;
    std::string name_;
    const uint16_t queue_;

    std::mutex m_;
    std::condition_variable cv_;
    State state_;
    std::string error_;
    // Every mbuf below is one reference this connection owns; they go back
    // to the pool on acknowledgement, reading, failure or destruction.
    std::deque<Mbuf> unsent_;
    size_t unsent_limit_;
    bool fin_queued_ = false, fin_pushed_ = false;
    uint64_t fin_seq_ = UINT64_MAX;
    proto::ReliableSender<Mbuf> sender_;
    proto::ReliableReceiver<Mbuf> receiver_;
    proto::Pacer pacer_;
    std::deque<Mbuf> delivered_;  // in order, headers stripped
    bool fin_received_ = false;
    bool ack_due_ = false, retx_scan_due_ = false;
    uint64_t last_rx_ns_, last_tx_ns_ = 0, last_scan_ns_ = 0, last_syn_ns_ = 0;
    uint64_t rng_ = 0x9e3779b97f4a7c15ull;
    uint64_t acked_limit_ = 0;  // window limit in our last ack
    ConnStats stats_;
};

uint64_t now_ns();

}  // namespace rmig::transport::dpdk
