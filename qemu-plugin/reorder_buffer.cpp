#include "qemu-plugin/reorder_buffer.hpp"

#include "common/error.hpp"
#include "wire/frame.hpp"

namespace rmig::qemu {

ReorderBuffer::Put ReorderBuffer::put(InSegment seg, const std::string& channel) {
    std::lock_guard lock(mu_);
    uint64_t end = seg.offset + seg.len;
    if (seg.fin) {
        if (end_ && *end_ != seg.offset)
            throw ProtocolError(cat(channel, ": stream end at ", seg.offset, " contradicts the end at ", *end_));
        if (seg.offset < delivered_)
            throw ProtocolError(cat(channel, ": stream end at ", seg.offset, " behind the ", delivered_,
                                    " bytes already delivered"));
        end_ = seg.offset;
    } else if (end_ && end > *end_) {
        throw ProtocolError(cat(channel, ": segment [", seg.offset, ", ", end, ") past the stream end at ", *end_));
    }
    // Already delivered, or already here: a resend after a flow was lost.
    if (fin_delivered_ || (!seg.fin && end <= delivered_)) return Put::duplicate;
    // The writer has this one in hand (taken out of pending_, not yet delivered).
    if (taken_ && seg.offset == delivered_) return Put::duplicate;
    if (seg.offset < delivered_)
        throw ProtocolError(cat(channel, ": segment [", seg.offset, ", ", end, ") straddles the ",
                                delivered_, " bytes delivered (segments are resent as they were cut)"));
    auto it = pending_.find(seg.offset);
    if (it != pending_.end()) {
        if (it->second.len != seg.len || it->second.fin != seg.fin)
            throw ProtocolError(cat(channel, ": segment at ", seg.offset, " resent with another length"));
        return Put::duplicate;
    }
    // Overlap with a neighbour would mean the peer cut its stream two ways.
    auto after = pending_.lower_bound(seg.offset);
    if (after != pending_.end() && after->first < end)
        throw ProtocolError(cat(channel, ": segment [", seg.offset, ", ", end, ") overlaps the one at ", after->first));
    if (after != pending_.begin()) {
        auto before = std::prev(after);
        if (before->first + before->second.len > seg.offset)
            throw ProtocolError(cat(channel, ": segment at ", seg.offset, " overlaps the one at ", before->first));
    }
    // Never wait for room: the segment everyone waits for may come on this
    // very flow, behind this one. The peer's window bounds what can be here;
    // a segment beyond it is a broken peer.
    if (end > delivered_ + capacity_ + wire::kMaxFramePayload)
        throw ProtocolError(cat(channel, ": segment [", seg.offset, ", ", end, ") lies beyond the ", capacity_,
                                "-byte window past the ", delivered_, " bytes delivered"));
    if (closed_) return Put::closed;
    held_ += seg.len;
    uint64_t at = seg.offset;
    pending_.emplace(at, std::move(seg));
    if (at == delivered_) ready_.notify_all();
    return Put::stored;
}

std::optional<InSegment> ReorderBuffer::next(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    bool ok = ready_.wait_for(lock, wait, [&] {
        return closed_ || (!taken_ && !pending_.empty() && pending_.begin()->first == delivered_ &&
                           !fin_delivered_);
    });
    if (!ok || closed_) return std::nullopt;
    taken_ = true;
    auto node = pending_.extract(pending_.begin());
    held_ -= node.mapped().len;
    return std::move(node.mapped());
}

void ReorderBuffer::mark_delivered(const InSegment& seg) {
    std::lock_guard lock(mu_);
    taken_ = false;
    delivered_ = seg.offset + seg.len;
    if (seg.fin) fin_delivered_ = true;
    // Nothing stays behind what was delivered (put() keeps it so; this is
    // the belt to its braces, since a stale entry would block the stream).
    while (!pending_.empty() && pending_.begin()->first < delivered_) {
        held_ -= pending_.begin()->second.len;
        pending_.erase(pending_.begin());
    }
    ready_.notify_all();
}

void ReorderBuffer::close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    ready_.notify_all();
}

uint64_t ReorderBuffer::delivered() const {
    std::lock_guard lock(mu_);
    return delivered_;
}

bool ReorderBuffer::fin_delivered() const {
    std::lock_guard lock(mu_);
    return fin_delivered_;
}

size_t ReorderBuffer::held_bytes() const {
    std::lock_guard lock(mu_);
    return held_;
}

}  // namespace rmig::qemu
