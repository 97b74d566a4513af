#include "qemu-plugin/control_link.hpp"

#include "common/log.hpp"
#include "transport/control_channel.hpp"

namespace rmig::qemu {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {
// Between two attempts to reopen a lost connection.
constexpr milliseconds kReopenPause{250};
}  // namespace

ControlLink::ControlLink(std::unique_ptr<transport::Channel> channel, std::chrono::milliseconds stall_timeout)
    : channel_(channel.get()), stall_timeout_(stall_timeout) {
    channels_.push_back(std::move(channel));
    reader_ = std::jthread([this] { read_loop(); });
}

ControlLink::~ControlLink() {
    shutdown();
    reader_ = {};
}

void ControlLink::shutdown() {
    closing_ = true;
    cv_.notify_all();
    channel_.load()->shutdown();
}

void ControlLink::resume_with(Reopen reopen, std::chrono::milliseconds grace) {
    std::lock_guard lock(mutex_);
    reopen_ = std::move(reopen);
    grace_ = grace;
}

uint32_t ControlLink::reopened() const {
    std::lock_guard lock(mutex_);
    return reopened_;
}

void ControlLink::read_messages() {
    for (;;) {
        json msg = transport::recv_message(*channel_.load());
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
}

void ControlLink::read_loop() {
    std::string what;
    for (;;) {
        try {
            read_messages();
        } catch (const LinkError& e) {
            if (reopen(e.what())) continue;
            what = e.what();
        } catch (const TruncatedError& e) {  // the connection ended inside a frame
            if (reopen(e.what())) continue;
            what = e.what();
        } catch (const std::exception& e) {
            what = e.what();
        }
        break;
    }
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

bool ControlLink::reopen(const std::string& why) {
    Reopen reopen;
    {
        std::lock_guard lock(mutex_);
        reopen = reopen_;
    }
    if (!reopen || closing_) return false;
    channel_.load()->shutdown();
    reopening_ = true;
    cv_.notify_all();
    log::warn("control channel lost (", why, "); reopening it (grace ", grace_.count(), " ms)");
    auto until = Clock::now() + grace_;
    std::string last = why;
    while (!closing_ && Clock::now() < until) {
        try {
            auto ch = reopen();
            std::optional<json> pending;
            {
                std::lock_guard lock(mutex_);
                channels_.push_back(std::move(ch));
                channel_ = channels_.back().get();
                ++reopened_;
                pending = pending_;
            }
            if (closing_) {  // shut down while we connected
                channel_.load()->shutdown();
                return false;
            }
            // The request being asked may have been lost with the old
            // connection, or its answer: ask again (the destination answers
            // a repeated request from its cache).
            if (pending) send(*pending);
            log::info("control channel reopened (", channel_.load()->name(), ")");
            reopening_ = false;
            cv_.notify_all();
            return true;
        } catch (const std::exception& e) {
            last = e.what();
            log::debug("reopening the control channel: ", last);
        }
        std::unique_lock lock(mutex_);
        cv_.wait_for(lock, kReopenPause, [&] { return closing_.load(); });
    }
    reopening_ = false;
    if (!closing_)
        log::warn("the control channel did not come back within the ", grace_.count(), " ms grace: ", last);
    return false;
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

void ControlLink::send(const json& msg) {
    std::lock_guard lock(send_mutex_);
    transport::send_message(*channel_.load(), msg);
}

json ControlLink::ask(const json& msg) {
    std::string op = msg.value("op", "?");
    json numbered = msg;
    uint64_t seq;
    bool resumable;
    {
        std::lock_guard lock(mutex_);
        seq = ++seq_;
        numbered["seq"] = seq;
        pending_ = numbered;
        resumable = bool(reopen_);
    }
    struct Done {
        ControlLink& l;
        ~Done() {
            std::lock_guard lock(l.mutex_);
            l.pending_.reset();
        }
    } done{*this};
    try {
        send(numbered);
    } catch (const LinkError&) {
        // The reader sees the connection break too, reopens it and sends
        // the request again.
        if (!resumable) throw;
    }
    std::unique_lock lock(mutex_);
    uint64_t heard = heard_;
    for (;;) {
        bool woke = cv_.wait_for(lock, stall_timeout_, [&] { return !answers_.empty() || failure_ || heard_ != heard; });
        if (!answers_.empty()) {
            json reply = std::move(answers_.front());
            answers_.pop_front();
            // An answer to an earlier request, sent again after a reconnect.
            if (reply.contains("seq") && reply["seq"] != seq) continue;
            if (!reply.value("ok", false))
                throw DestinationRefused(cat("destination refused '", op, "': ",
                                             reply.value("error", std::string("no reason given"))));
            return reply;
        }
        if (failure_) {
            if (peer_abort_) throw Error(cat("the destination aborted: ", *peer_abort_));
            throw LinkError(cat("control channel lost while waiting for the answer to '", op, "': ", *failure_));
        }
        // While the connection is being reopened the grace bounds the wait.
        if (!woke && !reopening_) {
            lock.unlock();
            shutdown();  // and not reopened: the destination is alive but does not answer
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
        channel_.load()->send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
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
