// The transport interface: every backend (one folder each; backend.hpp lists
// them) gives ordered, reliable, framed, bidirectional channels that open with
// the wire handshake.
// Channel mode carries QEMU's migration streams over them; memory mode adds
// one-sided region writes (engine/).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transport/admission.hpp"
#include "transport/backend_settings.hpp"
#include "wire/frame.hpp"
#include "wire/handshake.hpp"

namespace rmig::transport {

using Millis = std::chrono::milliseconds;

struct Options {
    int socket_buffer_bytes = 8 << 20;     // tcp: SO_SNDBUF/SO_RCVBUF
    // tcp: the sockets' congestion control (TCP_CONGESTION); empty: the host's.
    std::string congestion_control;
    Millis connect_timeout{10000};
    Millis handshake_timeout{10000};
    // A peer that stops acknowledging for this long is declared gone (tcp:
    // keepalive probes and TCP_USER_TIMEOUT), so a vanished host never hangs us.
    Millis dead_peer_timeout{20000};
    // Listeners: how long a new connection may take to send its hello, and
    // how many connections may wait unproven (hello or authentication under
    // way) before the oldest are dropped (docs/security.md, "Listeners under
    // a flood").
    Millis hello_timeout{3000};
    AdmissionLimits pending;
    // Each backend's own tuning ("rdma-slots" -> "32"), checked against its
    // option table (backend.hpp); a backend reads only its own.
    BackendSettings tuning;
};

// Where a peer exposed memory for one-sided writes (memory mode).
struct RemoteRegion {
    uint64_t addr = 0;
    uint64_t size = 0;
    uint32_t rkey = 0;
};

// One piece of a round: `len` bytes at `local` go to `offset` in a remote region.
struct RegionWrite {
    const void* local = nullptr;
    size_t len = 0;
    uint64_t offset = 0;
};

// One-sided writes into the peer's memory (rdma/). Local memory is registered
// on first use through a registration cache, never all at once.
class OneSided {
public:
    virtual ~OneSided() = default;
    // Registers [base, base+size) for remote writes by the peer; send the
    // result to the peer (e.g. in a control frame).
    virtual RemoteRegion expose(void* base, size_t size) = 0;
    // Posts the writes (contiguous pieces are merged); returns without waiting.
    virtual void write(const RemoteRegion& to, std::span<const RegionWrite> pieces) = 0;
    // Blocks until every write posted so far has completed at the peer. A frame
    // sent afterwards on the same channel reaches the peer after those bytes.
    virtual void flush() = 0;
    // Optional: registers local memory that later writes will read from, ahead
    // of time (registering pins pages for writing, which must happen before
    // e.g. userfaultfd write-protect tracking starts). Writes register lazily
    // without it.
    virtual void register_local(const void* base, size_t size) { (void)base, (void)size; }

    // One-sided reads (memory mode's post-copy: the destination fetches a
    // faulted page straight from the source's memory, no source CPU on the
    // path). Where can_read() is false (dpdk), the other two throw Error.
    virtual bool can_read() const { return false; }
    // Registers [base, base+size) for the peer's reads on this channel; send
    // the result to the peer. Done before any dirty tracking starts, like
    // register_local().
    virtual RemoteRegion expose_for_read(void* base, size_t size);
    // Reads `len` bytes at `offset` of the peer's region `from` into `local`
    // (registered lazily, as writes do) and returns once they have arrived.
    // Throws Error past the region's end, LinkError on a lost peer. May run on
    // one thread while others send or receive on the channel.
    virtual void read(const RemoteRegion& from, uint64_t offset, void* local, size_t len);
    // The same read without waiting for it, so that one thread keeps many in
    // flight (post-copy's pull of the pending pages: one read at a time
    // waits a whole round trip each, which rxe's software responder makes
    // long). Posts a read of `len` bytes (at most kMaxStartedRead) and
    // returns its ticket; blocks only while the channel's read depth is used
    // up. `local` must stay valid until wait_read(ticket) returned.
    virtual uint64_t start_read(const RemoteRegion& from, uint64_t offset, void* local, size_t len);
    // Returns once the read of `ticket` (from start_read on this channel)
    // has arrived. Errors as read(): Error for a read the peer refused (key,
    // bounds), LinkError once the channel broke. Default: start_read() did
    // the whole read() itself, so there is nothing to wait for.
    virtual void wait_read(uint64_t ticket) { (void)ticket; }
    static constexpr size_t kMaxStartedRead = size_t{1} << 30;
};

// The payload of a frame being received, read piece by piece straight where
// the caller wants it (Channel::recv_into).
class PayloadReader {
public:
    virtual ~PayloadReader() = default;
    // The next payload bytes, in order, scattered over `pieces`; throws
    // ProtocolError when that runs past the payload, LinkError on a lost peer.
    virtual void read(std::span<const std::span<std::byte>> pieces) = 0;
    virtual size_t left() const = 0;  // payload bytes not read yet
};

// Thread safety: one thread may send while another receives; shutdown() may be
// called from any thread and makes blocked send/recv throw LinkError.
class Channel {
public:
    virtual ~Channel() = default;
    virtual void send(wire::FrameType type, std::span<const std::byte> payload) = 0;
    // Next frame in order, checksum verified; payload is resized to fit it.
    // Throws ProtocolError (bad frame) or LinkError (peer gone), naming the channel.
    virtual wire::FrameType recv(std::vector<std::byte>& payload) = 0;
    virtual void shutdown() = 0;
    virtual const wire::Hello& peer_hello() const = 0;
    virtual const std::string& name() const = 0;  // "tcp channel 2 to 10.0.0.2:7070"
    // Receives the next frame and hands its payload to `consume(type, length,
    // reader)`, which must read all `length` bytes. tcp reads them from the
    // socket straight into the caller's pieces (readv), checksumming on the
    // way; the checksum is verified after `consume` returns, so what it placed
    // counts only if recv_into returns (a throw means: discard it). Default:
    // recv() into a buffer, then copies out of it.
    using PayloadConsumer = std::function<void(wire::FrameType type, size_t length, PayloadReader& reader)>;
    virtual wire::FrameType recv_into(const PayloadConsumer& consume);
    // True where recv_into() places the payload straight from the transport
    // into the caller's pieces (tcp: readv from the socket; rdma: out of the
    // receive ring), so it costs no more copies than recv(); false where it is
    // recv() plus a copy (the default above). Lets a caller that keeps its own
    // buffer choose recv_into() only where that saves work.
    virtual bool recv_into_is_direct() const { return false; }
    // Reserve, fill, post: sends a payload of `length` bytes that `fill(dst,
    // offset)` writes straight into the transport's send memory. `fill` gets
    // consecutive pieces covering [0, length) in order (none when length is 0)
    // and must write every byte of each; a piece may be posted before the next
    // is filled, so a payload longer than max_frame_payload() is split as
    // send() splits it and needs no more send memory than one frame. If `fill`
    // throws, send_filled rethrows; once a piece went out the channel is broken
    // (rdma fails it), before that nothing was sent. Default (tcp, dpdk):
    // fill one buffer, then send() it, i.e. today's path with its copy.
    using PayloadFiller = std::function<void(std::span<std::byte> dst, size_t offset)>;
    virtual void send_filled(wire::FrameType type, size_t length, const PayloadFiller& fill);
    // True where send_filled() hands out the transport's own registered send
    // memory and recv_into() reads straight out of its registered receive
    // memory (rdma's ring slots): filling or reading is then the only copy.
    virtual bool fills_in_place() const { return false; }
    // One-sided writes, where the backend has them (rdma); else nullptr.
    virtual OneSided* one_sided() { return nullptr; }
    // Largest payload that arrives as one frame; send() splits a longer one
    // into several frames (rdma: one ring slot each). Memory mode sizes its
    // page batches to fit.
    virtual size_t max_frame_payload() const { return wire::kMaxFramePayload; }
    // The local device carrying the channel where the backend knows it (rdma:
    // "mlx5_0", "rxe0"), for NUMA placement near it; else empty.
    virtual std::string local_device() const { return {}; }
    // Bounds what the channel holds queued in the transport and not yet
    // delivered (tcp: the socket's send buffer), so that at switchover the
    // guest does not wait behind a deep queue on a slow link. Channel mode
    // sizes it from the measured rate (docs/blackout.md). False where the
    // backend has no such knob (rdma and dpdk are bounded by their windows).
    virtual bool limit_in_flight(size_t bytes) {
        (void)bytes;
        return false;
    }
    // Whether the peer's host still acknowledges what was sent (tcp:
    // TCP_INFO says nothing is unacknowledged, or an ack came within
    // `within`). A flow that moves nothing because its peer stopped reading
    // (a zero window) is then not taken for a link outage. nullopt where the
    // backend cannot tell.
    virtual std::optional<bool> peer_acknowledging(Millis within) const {
        (void)within;
        return std::nullopt;
    }
};

// A connection request whose handshake has been read but not yet answered, so
// the receiver can first set up what the channel feeds (e.g. QEMU's socket).
class Incoming {
public:
    virtual ~Incoming() = default;
    virtual const wire::Hello& hello() const = 0;
    virtual const std::string& peer() const = 0;
    virtual std::unique_ptr<Channel> accept(const wire::Hello& reply) = 0;
    virtual void refuse(wire::HelloStatus status) = 0;
    // From another thread: makes an accept() under way give up soon (a
    // listener dropping a handshake that does not finish). Where accept()
    // cannot block on the peer (tcp: one write), there is nothing to do.
    virtual void cancel() {}
};

class Listener {
public:
    virtual ~Listener() = default;
    // Next handshake-complete request, or nullptr after `timeout`. A connection
    // whose hello is malformed is refused and logged, never returned.
    virtual std::unique_ptr<Incoming> next(Millis timeout) = 0;
    virtual std::string address() const = 0;  // "tcp:0.0.0.0:7070" with the real port
};

// URIs: "SCHEME:REST", the scheme naming a backend of the list (backend.hpp;
// each one's summary says what REST is); a bare "HOST:PORT" means tcp. Port 0
// picks a free one. E.g. "tcp:HOST:PORT", "rdma:ADDR:PORT" (ADDR is an IP
// address of an RDMA device: RoCE netdev or IPoIB), "dpdk:DEVARGS[,rmig.KEY=VALUE...]"
// (DEVARGS names a DPDK port: a vdev such as net_memif0,role=server,socket=/run/m.sock
// or a PCI address; docs/dpdk-protocol.md). An unknown or not compiled-in
// scheme is an Error naming the compiled-in ones.
// Plaintext, no security policy: users that authenticate or encrypt (and the
// plaintext side of that policy) call security::listen/connect
// (security/secure_transport.hpp), which compose above these.
std::unique_ptr<Listener> listen(const std::string& uri, const Options& opts = {});
// Opens a channel and completes the handshake; throws Error with the peer's
// refusal reason if it does not accept.
std::unique_ptr<Channel> connect(const std::string& uri, const wire::Hello& hello,
                                 const Options& opts = {});

}  // namespace rmig::transport
