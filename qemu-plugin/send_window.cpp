#include "qemu-plugin/send_window.hpp"

namespace rmig::qemu {

bool SendWindow::push(std::shared_ptr<OutSegment> seg) {
    std::unique_lock lock(mu_);
    // An empty window takes any segment, so one larger than the capacity
    // still goes (the window then holds just it).
    space_.wait(lock, [&] { return closed_ || held_ == 0 || held_ + seg->header.raw_len <= capacity_; });
    if (closed_) return false;
    pushed_ = seg->header.offset + seg->header.raw_len;
    fin_pushed_ = fin_pushed_ || seg->header.fin;
    held_ += seg->header.raw_len;
    entries_.push_back({std::move(seg)});
    work_.notify_one();
    return true;
}

std::shared_ptr<OutSegment> SendWindow::take(uint32_t flow, std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    std::shared_ptr<OutSegment> got;
    work_.wait_for(lock, wait, [&] {
        if (closed_) return true;
        if (poked_) {
            poked_ = false;
            return true;
        }
        for (auto& e : entries_) {
            if (e.on_flow) continue;
            e.on_flow = true;
            e.flow = flow;
            e.sent_at = std::chrono::steady_clock::now();
            got = e.seg;
            return true;
        }
        return false;
    });
    return got;
}

bool SendWindow::acknowledge(const wire::Ack& ack) {
    std::lock_guard lock(mu_);
    if (ack.delivered > pushed_ || (ack.fin && !fin_pushed_)) return false;
    // Acks travel on every flow, so an older one may come after a newer one.
    if (ack.delivered < acked_) return true;
    acked_ = ack.delivered;
    fin_acked_ = fin_acked_ || ack.fin;
    while (!entries_.empty()) {
        const auto& h = entries_.front().seg->header;
        bool done = h.fin ? fin_acked_ : h.offset + h.raw_len <= acked_;
        if (!done) break;
        held_ -= size_of(entries_.front());
        entries_.pop_front();
    }
    space_.notify_all();
    return true;
}

void SendWindow::flow_lost(uint32_t flow) {
    std::lock_guard lock(mu_);
    bool any = false;
    for (auto& e : entries_)
        if (e.on_flow && e.flow == flow) e.on_flow = false, any = true;
    if (any) work_.notify_all();
}

void SendWindow::set_capacity(size_t capacity) {
    std::lock_guard lock(mu_);
    capacity_ = capacity;
    space_.notify_all();
}

void SendWindow::poke() {
    std::lock_guard lock(mu_);
    poked_ = true;
    work_.notify_all();
}

void SendWindow::close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    space_.notify_all();
    work_.notify_all();
}

bool SendWindow::all_acknowledged() const {
    std::lock_guard lock(mu_);
    return fin_acked_;
}

uint64_t SendWindow::acknowledged() const {
    std::lock_guard lock(mu_);
    return acked_;
}

uint64_t SendWindow::pushed() const {
    std::lock_guard lock(mu_);
    return pushed_;
}

size_t SendWindow::held_bytes() const {
    std::lock_guard lock(mu_);
    return held_;
}

SendWindow::Oldest SendWindow::oldest_in_flight() const {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    for (auto& e : entries_)
        if (e.on_flow) return {true, e.flow, now - e.sent_at};
    return {};
}

}  // namespace rmig::qemu
