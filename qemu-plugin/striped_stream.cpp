#include "qemu-plugin/striped_stream.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <optional>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"

namespace rmig::qemu {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct StripedStream::Flow {
    uint32_t index = 0;
    uint32_t key = 0;  // unique per attachment: what the send window knows it by
    std::unique_ptr<transport::Channel> channel;
    std::atomic<bool> dead{false};
    Clock::time_point lost_at{};
    bool given_up = false;  // past the grace while other flows carry on
    std::jthread tx, rx;
};

StripedStream::StripedStream(uint32_t stream, UniqueFd qemu, FlowSettings settings, ErrorFn on_error,
                             Reconnect reconnect)
    : id_(stream),
      qemu_(std::move(qemu)),
      cfg_(settings),
      on_error_(std::move(on_error)),
      reconnect_(std::move(reconnect)),
      out_(settings.start_window ? std::min(settings.start_window, settings.window_bytes) : settings.window_bytes),
      in_(settings.window_bytes) {
    reader_ = std::jthread([this] { read_qemu(); });
    writer_ = std::jthread([this] { write_qemu(); });
    if (reconnect_ && cfg_.grace.count() > 0) reconnector_ = std::jthread([this] { reconnect_loop(); });
}

StripedStream::~StripedStream() {
    abort();
    if (cfg_.drain_on_abort.count() > 0) {
        auto until = Clock::now() + cfg_.drain_on_abort;
        while (!reader_done_ && Clock::now() < until) std::this_thread::sleep_for(milliseconds(20));
        if (!reader_done_) log::warn("stream ", id_, ": QEMU did not close its connection within ",
                                     cfg_.drain_on_abort.count(), " ms of the failure; closing it");
        ::shutdown(qemu_.get(), SHUT_RDWR);
    }
    reader_ = {};
    writer_ = {};
    reconnector_ = {};
    std::vector<std::unique_ptr<Flow>> flows;
    {
        std::lock_guard lock(mu_);
        flows.swap(flows_);
    }
    flows.clear();  // joins their threads
}

void StripedStream::abort() {
    if (aborted_.exchange(true)) return;
    out_.close();
    in_.close();
    // A draining stream only stops writing into QEMU; its reader goes on
    // reading until QEMU closes (read_qemu, drain_qemu).
    ::shutdown(qemu_.get(), cfg_.drain_on_abort.count() > 0 ? SHUT_WR : SHUT_RDWR);
    std::lock_guard lock(mu_);
    for (auto& f : flows_) {
        if (!f) continue;
        f->dead = true;
        f->channel->shutdown();
    }
    reconnect_cv_.notify_all();
}

void StripedStream::fail(const std::string& what) {
    // Errors that our own abort() provoked are consequences, not causes.
    if (aborted_) return;
    if (on_error_) on_error_(what);
}

bool StripedStream::finished() const {
    return in_.fin_delivered() && (out_.all_acknowledged() || ended_early_);
}

size_t StripedStream::live_flows() const {
    size_t n = 0;
    for (auto& f : flows_) n += f && !f->dead;
    return n;
}

void StripedStream::attach(uint32_t index, std::unique_ptr<transport::Channel> channel,
                           uint64_t peer_delivered) {
    if (aborted_) {
        channel->shutdown();
        return;
    }
    // The peer's delivered offset is an acknowledgement like any other; an
    // older one than we know (a slow ack still on a lost flow) changes nothing.
    out_.acknowledge({peer_delivered, false});
    auto f = std::make_unique<Flow>();
    f->index = index;
    f->channel = std::move(channel);
    std::unique_ptr<Flow> old;
    {
        std::lock_guard lock(mu_);
        f->key = ++generations_;
        if (flows_.size() <= index) flows_.resize(index + 1);
        old = std::move(flows_[index]);
        Flow* p = f.get();
        p->tx = std::jthread([this, p] { send_loop(*p); });
        p->rx = std::jthread([this, p] { recv_loop(*p); });
        flows_[index] = std::move(f);
        no_flow_since_ = {};
        if (old) ++reconnects_;
    }
    // A stalled flow the other side still had: its segments go out again.
    if (old) lost(*old, "replaced by a new connection");
    // Acknowledge again what we delivered, in case the last ack went down
    // with the old flow.
    ack_sent_ = 0;
    fin_ack_sent_ = false;
    out_.poke();
}

void StripedStream::lost(Flow& f, const std::string& why) {
    if (f.dead.exchange(true)) return;
    f.channel->shutdown();
    out_.flow_lost(f.key);
    ack_sent_ = 0;
    fin_ack_sent_ = false;
    out_.poke();
    if (aborted_) return;
    // The peer closing after both ends were delivered is the normal end; only
    // the acknowledgement of our end may be missing, and the peer has it.
    if (in_.fin_delivered() && read_done_) {
        ended_early_ = true;
        return;
    }
    if (cfg_.grace.count() == 0) {
        fail(why);
        return;
    }
    {
        std::lock_guard lock(mu_);
        f.lost_at = Clock::now();
        last_loss_ = why;
        if (live_flows() == 0 && no_flow_since_ == Clock::time_point{}) no_flow_since_ = f.lost_at;
    }
    log::warn(why, reconnect_ ? "; reconnecting" : "; waiting for the source to reconnect", " (grace ",
              cfg_.grace.count(), " ms; stream ", id_, ": ", out_.acknowledged(), " of ", out_.pushed(),
              " bytes acknowledged, ", in_.delivered(), " delivered, ", in_.held_bytes(), " waiting)");
    reconnect_cv_.notify_all();
}

void StripedStream::tick() {
    if (aborted_ || finished() || cfg_.grace.count() == 0) return;
    auto oldest = out_.oldest_in_flight();
    if (oldest.any && oldest.age > cfg_.stall) {
        Flow* stalled = nullptr;
        {
            std::lock_guard lock(mu_);
            for (auto& f : flows_)
                if (f && f->key == oldest.flow && !f->dead) stalled = f.get();
        }
        // A peer that stopped reading (its QEMU is busy or wedged) leaves
        // the link acknowledging: a new connection would not help.
        if (stalled && stalled->channel->peer_acknowledging(cfg_.stall).value_or(false)) stalled = nullptr;
        if (stalled)
            lost(*stalled, cat(stalled->channel->name(), ": nothing acknowledged for ",
                               std::chrono::duration_cast<milliseconds>(oldest.age).count(),
                               " ms (a silent outage?); ", out_.acknowledged(), " of ", out_.pushed(),
                               " bytes acknowledged, ", in_.delivered(), " delivered"));
    }
    std::string why;
    {
        std::lock_guard lock(mu_);
        if (no_flow_since_ == Clock::time_point{} || Clock::now() - no_flow_since_ < cfg_.grace) return;
        why = cat("stream ", id_, ": no connection for ", cfg_.grace.count(),
                  " ms (the reconnect grace); last loss: ", last_loss_);
    }
    fail(why);
}

void StripedStream::reconnect_loop() {
    while (!aborted_ && !finished()) {
        std::vector<uint32_t> todo;
        {
            std::unique_lock lock(mu_);
            reconnect_cv_.wait_for(lock, milliseconds(250));
            auto now = Clock::now();
            for (auto& f : flows_) {
                if (!f || !f->dead || f->given_up) continue;
                if (now - f->lost_at > cfg_.grace && live_flows() > 0) {
                    // Other paths carry the stream: this one is dropped.
                    f->given_up = true;
                    log::warn("stream ", id_, ": flow ", f->index, " not back within the grace; carrying on without it");
                    continue;
                }
                todo.push_back(f->index);
            }
        }
        for (uint32_t index : todo) {
            if (aborted_ || finished()) return;
            try {
                auto opened = reconnect_(index);
                log::info("stream ", id_, ": flow ", index, " reconnected (", opened.channel->name(), ")");
                attach(index, std::move(opened.channel), opened.peer_delivered);
            } catch (const std::exception& e) {
                log::debug("stream ", id_, ": reconnecting flow ", index, ": ", e.what());
            }
        }
    }
}

void StripedStream::maybe_ack(Flow& f) {
    uint64_t delivered = in_.delivered();
    bool fin = in_.fin_delivered();
    uint64_t sent = ack_sent_.load();
    bool need = delivered > sent || (fin && !fin_ack_sent_);
    if (!need || !ack_sent_.compare_exchange_strong(sent, delivered)) return;
    if (fin) fin_ack_sent_ = true;
    f.channel->send(wire::FrameType::ack, wire::encode_ack({delivered, fin}));
}

void CompressionTotals::add(const CompressionTotals& o) {
    in_bytes += o.in_bytes;
    wire_bytes += o.wire_bytes;
    for (size_t i = 0; i < segments.size(); ++i) segments[i] += o.segments[i];
    if (!o.choice.empty()) choice = o.choice;
}

FlowTotals totals(const std::vector<ChannelStats>& streams) {
    FlowTotals t;
    for (const auto& c : streams) {
        t.wire += c.wire;
        t.reconnects += c.reconnects;
        t.resent += c.resent;
        t.compression.add(c.compression);
    }
    return t;
}

void StripedStream::set_link_rate(double bytes_per_s, unsigned senders) {
    link_rate_ = bytes_per_s;
    senders_ = std::max(1u, senders);
}

// The first sender of a segment compresses it; a resend reuses that.
void StripedStream::encode(OutSegment& seg, engine::AdaptiveCompressor& codec, std::vector<std::byte>& scratch) {
    std::lock_guard lock(seg.encoding);
    if (seg.encoded) return;
    std::span<const std::byte> raw(seg.frame.data() + wire::kSegmentHeaderSize, seg.header.raw_len);
    auto e = codec.encode(raw, scratch);
    wire::SegmentCodec on_wire = e.codec == engine::Codec::lz4    ? wire::SegmentCodec::lz4
                                 : e.codec == engine::Codec::zstd ? wire::SegmentCodec::zstd
                                                                  : wire::SegmentCodec::none;
    if (on_wire != wire::SegmentCodec::none) {
        // The smaller frame replaces the raw one, which frees it: the window
        // keeps what goes on the wire.
        std::vector<std::byte> packed(wire::kSegmentHeaderSize + e.size);
        std::copy_n(scratch.data(), e.size, packed.data() + wire::kSegmentHeaderSize);
        seg.header.codec = on_wire;
        seg.frame = std::move(packed);
    }
    wire::encode_segment_header(seg.header, std::span(seg.frame).first<wire::kSegmentHeaderSize>());
    seg.encoded = true;
    std::lock_guard stats(mu_);
    compression_.in_bytes += seg.header.raw_len;
    compression_.wire_bytes += seg.frame.size() - wire::kSegmentHeaderSize;
    ++compression_.segments[static_cast<size_t>(e.codec)];
    compression_.choice = codec.stats().reason;
}

void StripedStream::send_loop(Flow& f) {
    std::optional<engine::AdaptiveCompressor> codec;
    std::vector<std::byte> scratch;
    if (cfg_.compression != engine::CompressionMode::none) {
        engine::AdaptiveCompressor::Options o;
        o.mode = cfg_.compression;
        codec.emplace(o);
    }
    double rate_told = -1;
    try {
        while (!f.dead && !aborted_) {
            maybe_ack(f);
            auto seg = out_.take(f.key, milliseconds(50));
            if (!seg) continue;
            if (f.dead) {  // lost while we waited: hand it back
                out_.flow_lost(f.key);
                break;
            }
            if (codec) {
                if (double rate = link_rate_; rate != rate_told) {
                    codec->set_link_rate(rate, senders_);
                    rate_told = rate;
                }
                encode(*seg, *codec, scratch);
            }
            if (seg->frame.size() > f.channel->max_frame_payload())
                throw Error(cat(f.channel->name(), ": a ", seg->frame.size(), "-byte segment does not fit its ",
                                f.channel->max_frame_payload(), "-byte frames (flows of one stream over "
                                "different transports?)"));
            if (seg->sends++ > 0) resent_ += seg->header.raw_len;
            f.channel->send(wire::FrameType::segment, seg->frame);
            wire_ += seg->frame.size();
        }
    } catch (const LinkError& e) {
        lost(f, e.what());
    } catch (const std::exception& e) {
        if (!f.dead) fail(e.what());
    }
}

void StripedStream::recv_loop(Flow& f) {
    const std::string& name = f.channel->name();
    try {
        for (;;) {
            std::vector<std::byte> frame;  // moved into the reorder buffer
            auto type = f.channel->recv(frame);
            if (type == wire::FrameType::segment) {
                auto h = wire::decode_segment_header(frame, wire::kMaxFramePayload, name);
                InSegment s{h.offset, h.fin, {}, 0, h.raw_len};
                if (h.codec == wire::SegmentCodec::none) {
                    s.bytes = std::move(frame);
                    s.skip = wire::kSegmentHeaderSize;
                } else {
                    s.bytes.resize(h.raw_len);
                    try {
                        engine::decode(h.codec == wire::SegmentCodec::lz4 ? engine::Codec::lz4 : engine::Codec::zstd,
                                       std::span(frame).subspan(wire::kSegmentHeaderSize), s.bytes);
                    } catch (const ProtocolError& e) {
                        throw ProtocolError(cat(name, ": segment at offset ", h.offset, ": ", e.what()));
                    }
                }
                if (in_.put(std::move(s), name) == ReorderBuffer::Put::closed) break;
            } else if (type == wire::FrameType::ack) {
                auto ack = wire::decode_ack(frame, name);
                if (!out_.acknowledge(ack))
                    throw ProtocolError(cat(name, ": acknowledgement of ", ack.delivered,
                                            " bytes, past the ", out_.pushed(), " sent"));
            } else if (type == wire::FrameType::abort) {
                throw Error(cat(name, ": peer aborted: ",
                                std::string(reinterpret_cast<const char*>(frame.data()), frame.size())));
            } else {
                throw ProtocolError(cat(name, ": unexpected ", wire::to_string(type), " frame on a flow"));
            }
        }
    } catch (const LinkError& e) {
        lost(f, e.what());
    } catch (const TruncatedError& e) {
        lost(f, e.what());
    } catch (const std::exception& e) {
        if (!f.dead) fail(e.what());
    }
}

void StripedStream::read_qemu() {
    uint64_t offset = 0;
    try {
        for (;;) {
            auto seg = std::make_shared<OutSegment>();
            seg->frame.resize(wire::kSegmentHeaderSize + cfg_.chunk);
            std::byte* data = seg->frame.data() + wire::kSegmentHeaderSize;
            size_t n;
            try {
                n = net::read_some(qemu_.get(), data, cfg_.chunk);
            } catch (const Error& e) {
                throw Error(cat("reading QEMU's stream ", id_, ": ", e.what()));
            }
            // Take whatever else QEMU has already written, without waiting:
            // fewer, larger segments cost fewer syscalls and wakeups per byte.
            bool eof = n == 0;
            while (n > 0 && n < cfg_.chunk) {
                ssize_t more = ::recv(qemu_.get(), data + n, cfg_.chunk - n, MSG_DONTWAIT);
                if (more > 0) {
                    n += static_cast<size_t>(more);
                } else {
                    eof = more == 0;
                    break;
                }
            }
            if (n > 0) {
                seg->frame.resize(wire::kSegmentHeaderSize + n);
                // A small piece should not pin a whole chunk in the window.
                if (n < cfg_.chunk / 4) seg->frame.shrink_to_fit();
                seg->header = {offset, static_cast<uint32_t>(n), wire::SegmentCodec::none, false};
                wire::encode_segment_header(seg->header, std::span(seg->frame).first<wire::kSegmentHeaderSize>());
                // Compressed (or not) by the flow that first sends it.
                seg->encoded = cfg_.compression == engine::CompressionMode::none;
                if (!out_.push(std::move(seg))) break;
                offset += n;
                to_link_ += n;
            }
            if (eof) {
                auto fin = std::make_shared<OutSegment>();
                fin->header = {offset, 0, wire::SegmentCodec::none, true};
                fin->frame.resize(wire::kSegmentHeaderSize);
                wire::encode_segment_header(fin->header, std::span(fin->frame).first<wire::kSegmentHeaderSize>());
                fin->encoded = true;
                read_done_ = true;
                out_.push(std::move(fin));
                break;
            }
        }
    } catch (const std::exception& e) {
        fail(e.what());
        reader_done_ = true;
        return;
    }
    if (aborted_ && !read_done_ && cfg_.drain_on_abort.count() > 0) drain_qemu();
    reader_done_ = true;
}

void StripedStream::drain_qemu() {
    // Bounded by the destructor, which shuts the socket down at its limit.
    std::vector<std::byte> sink(256 << 10);
    uint64_t dropped = 0;
    try {
        while (size_t n = net::read_some(qemu_.get(), sink.data(), sink.size())) dropped += n;
    } catch (const Error&) {
        // QEMU reset the connection, or the destructor shut it down: done.
    }
    log::debug("stream ", id_, ": QEMU closed its connection after the failure (", dropped,
               " bytes dropped while draining)");
}

void StripedStream::write_qemu() {
    try {
        while (!aborted_) {
            auto s = in_.next(milliseconds(100));
            if (!s) continue;
            if (s->fin) {
                ::shutdown(qemu_.get(), SHUT_WR);
                in_.mark_delivered(*s);
                out_.poke();
                break;
            }
            try {
                net::write_full(qemu_.get(), s->bytes.data() + s->skip, s->len);
            } catch (const Error& e) {
                throw Error(cat("writing stream ", id_, " into QEMU: ", e.what()));
            }
            from_link_ += s->len;
            in_.mark_delivered(*s);
            out_.poke();
        }
    } catch (const std::exception& e) {
        fail(e.what());
    }
}

bool StripedStream::limit_in_flight(size_t bytes) {
    std::lock_guard lock(mu_);
    size_t n = std::max<size_t>(1, live_flows());
    bool all = true;
    for (auto& f : flows_)
        if (f && !f->dead) all = f->channel->limit_in_flight(bytes / n) && all;
    return all;
}

bool StripedStream::reconnecting() const {
    if (cfg_.grace.count() == 0 || finished()) return false;
    std::lock_guard lock(mu_);
    for (auto& f : flows_)
        if (f && f->dead && !f->given_up) return true;
    return false;
}

uint32_t StripedStream::flows_up() const {
    std::lock_guard lock(mu_);
    return static_cast<uint32_t>(live_flows());
}

ChannelStats StripedStream::stats() const {
    std::lock_guard lock(mu_);
    return {id_,          to_link_.load(),  from_link_.load(), static_cast<uint32_t>(live_flows()),
            reconnects_.load(), resent_.load(), wire_.load(), compression_};
}

}  // namespace rmig::qemu
