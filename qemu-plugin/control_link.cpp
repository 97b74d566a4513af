#include "qemu-plugin/control_link.hpp"

#include "transport/control_channel.hpp"

namespace rmig::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

ControlLink::ControlLink(std::unique_ptr<transport::Channel> channel, std::chrono::milliseconds stall_timeout)
    : channel_(std::move(channel)), stall_timeout_(stall_timeout) {
    reader_ = std::jthread([this] { read_loop(); });
}

ControlLink::~ControlLink() {
    shutdown();
    reader_ = {};
}

void ControlLink::shutdown() { channel_->shutdown(); }

void ControlLink::read_loop() {
    try {
        for (;;) {
            json msg = transport::recv_message(*channel_);
            std::lock_guard lock(mutex_);
            ++heard_;
            std::string op = msg.value("op", "");
            if (op == "delivered") {
                delivered_ = {msg.value("bytes", uint64_t{0}), Clock::now()};
            } else if (op != "working") {
                answers_.push_back(std::move(msg));
            }
            cv_.notify_all();
        }
    } catch (const std::exception& e) {
        std::string what = e.what();
        std::function<void(const std::string&)> notify, lost;
        {
            std::lock_guard lock(mutex_);
            failure_ = what;
            lost = on_lost_;
            // recv_message() names an abort frame "peer aborted: REASON".
            auto at = what.find("peer aborted: ");
            if (at != std::string::npos) {
                peer_abort_ = what.substr(at + 14);
                notify = on_abort_;
            }
        }
        cv_.notify_all();
        if (notify) notify(*peer_abort());
        if (lost) lost(what);
    }
}

void ControlLink::on_lost(std::function<void(const std::string&)> fn) { subscribe(on_lost_, failure_, std::move(fn)); }

void ControlLink::subscribe(std::function<void(const std::string&)>& slot, const std::optional<std::string>& seen,
                            std::function<void(const std::string&)> fn) {
    std::optional<std::string> already;
    {
        std::lock_guard lock(mutex_);
        slot = fn;
        already = seen;
    }
    if (already && fn) fn(*already);
}

json ControlLink::ask(const json& msg) {
    std::string op = msg.value("op", "?");
    {
        std::lock_guard lock(send_mutex_);
        transport::send_message(*channel_, msg);
    }
    std::unique_lock lock(mutex_);
    uint64_t heard = heard_;
    for (;;) {
        bool woke = cv_.wait_for(lock, stall_timeout_, [&] { return !answers_.empty() || failure_ || heard_ != heard; });
        if (!answers_.empty()) {
            json reply = std::move(answers_.front());
            answers_.pop_front();
            if (!reply.value("ok", false))
                throw DestinationRefused(cat("destination refused '", op, "': ",
                                             reply.value("error", std::string("no reason given"))));
            return reply;
        }
        if (failure_) {
            if (peer_abort_) throw Error(cat("the destination aborted: ", *peer_abort_));
            throw LinkError(cat("control channel lost while waiting for the answer to '", op, "': ", *failure_));
        }
        if (!woke) {
            lock.unlock();
            channel_->shutdown();
            throw Error(cat("the destination did not answer '", op, "' within ",
                            std::chrono::duration<double>(stall_timeout_).count(),
                            " s: the link is stalled (see --stall-timeout)"));
        }
        heard = heard_;  // a note or a delivery report: the destination is alive
    }
}

void ControlLink::send_abort(const std::string& why) {
    try {
        std::lock_guard lock(send_mutex_);
        channel_->send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
    } catch (const std::exception&) {
        // The destination is already gone; it aborts on its own.
    }
}

void ControlLink::on_abort(std::function<void(const std::string&)> fn) {
    subscribe(on_abort_, peer_abort_, std::move(fn));
}

std::optional<std::string> ControlLink::peer_abort() const {
    std::lock_guard lock(mutex_);
    return peer_abort_;
}

ControlLink::Delivery ControlLink::delivered() const {
    std::lock_guard lock(mutex_);
    return delivered_;
}

}  // namespace rmig::qemu
