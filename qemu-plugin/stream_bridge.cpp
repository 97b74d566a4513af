#include "qemu-plugin/stream_bridge.hpp"

#include <sys/socket.h>

#include "common/error.hpp"
#include "common/log.hpp"
#include "common/socket.hpp"

namespace rmig::qemu {

StreamBridge::StreamBridge(UniqueFd qemu, std::unique_ptr<transport::Channel> link, size_t chunk,
                           ErrorFn on_error)
    : qemu_(std::move(qemu)), link_(std::move(link)), chunk_(chunk), on_error_(std::move(on_error)) {
    out_ = std::jthread([this] { qemu_to_link(); });
    in_ = std::jthread([this] { link_to_qemu(); });
}

StreamBridge::~StreamBridge() {
    abort();
    out_ = {};
    in_ = {};
}

void StreamBridge::abort() {
    if (aborted_.exchange(true)) return;
    ::shutdown(qemu_.get(), SHUT_RDWR);
    link_->shutdown();
}

void StreamBridge::fail(const std::string& what) {
    // Errors that our own abort() provoked are consequences, not causes.
    if (aborted_) return;
    if (on_error_) on_error_(what);
}

void StreamBridge::qemu_to_link() {
    std::vector<std::byte> buf(chunk_);
    try {
        for (;;) {
            size_t n;
            try {
                n = net::read_some(qemu_.get(), buf.data(), buf.size());
            } catch (const Error& e) {
                throw Error(cat("reading QEMU's stream for ", link_->name(), ": ", e.what()));
            }
            if (n == 0) {
                link_->send(wire::FrameType::end, {});
                break;
            }
            // Take whatever else QEMU has already written, without waiting:
            // fewer, larger frames cost fewer syscalls and wakeups per byte.
            // (One read per frame was tried: 10-16% less relay CPU per GiB in
            // rmig-relay-bench, whose writer blocks on a full socket, but real
            // QEMU migrations through rmig got slower at one stream, so the
            // drain stays; docs/benchmarks.md "Relay CPU per GiB".)
            bool eof = false;
            while (n < buf.size()) {
                ssize_t more = ::recv(qemu_.get(), buf.data() + n, buf.size() - n, MSG_DONTWAIT);
                if (more > 0) {
                    n += static_cast<size_t>(more);
                } else {
                    eof = more == 0;
                    break;
                }
            }
            link_->send(wire::FrameType::data, std::span(buf.data(), n));
            to_link_ += n;
            if (eof) {
                link_->send(wire::FrameType::end, {});
                break;
            }
        }
    } catch (const std::exception& e) {
        fail(e.what());
    }
    ++done_;
}

void StreamBridge::link_to_qemu() {
    std::vector<std::byte> buf;
    try {
        for (;;) {
            auto type = link_->recv(buf);
            if (type == wire::FrameType::data) {
                try {
                    net::write_full(qemu_.get(), buf.data(), buf.size());
                } catch (const Error& e) {
                    throw Error(cat("writing ", link_->name(), " into QEMU's stream: ", e.what()));
                }
                from_link_ += buf.size();
            } else if (type == wire::FrameType::end) {
                ::shutdown(qemu_.get(), SHUT_WR);
                break;
            } else if (type == wire::FrameType::abort) {
                throw Error(cat(link_->name(), ": peer aborted: ",
                                std::string(reinterpret_cast<const char*>(buf.data()), buf.size())));
            } else {
                throw ProtocolError(cat(link_->name(), ": unexpected ", wire::to_string(type),
                                        " frame on a data channel"));
            }
        }
    } catch (const std::exception& e) {
        fail(e.what());
    }
    ++done_;
}

ChannelStats StreamBridge::stats() const {
    return {link_->peer_hello().channel_id, to_link_.load(), from_link_.load()};
}

void BridgeGroup::add(UniqueFd qemu, std::unique_ptr<transport::Channel> link) {
    auto bridge = std::make_unique<StreamBridge>(std::move(qemu), std::move(link), chunk_,
                                                 [this](const std::string& e) { fail(e); });
    std::lock_guard lock(mutex_);
    bridges_.push_back(std::move(bridge));
    if (error_) bridges_.back()->abort();
}

void BridgeGroup::fail(const std::string& why) {
    {
        std::lock_guard lock(mutex_);
        if (error_) return;
        error_ = why;
    }
    log::error(why);
    abort();
}

void BridgeGroup::abort() {
    std::lock_guard lock(mutex_);
    for (auto& b : bridges_) b->abort();
}

std::optional<std::string> BridgeGroup::error() const {
    std::lock_guard lock(mutex_);
    return error_;
}

size_t BridgeGroup::size() const {
    std::lock_guard lock(mutex_);
    return bridges_.size();
}

bool BridgeGroup::wait_finished(size_t expected, std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        {
            std::lock_guard lock(mutex_);
            bool all = bridges_.size() >= expected;
            for (auto& b : bridges_) all = all && b->finished();
            if (all) return true;
            if (error_) return false;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::vector<ChannelStats> BridgeGroup::stats() const {
    std::lock_guard lock(mutex_);
    std::vector<ChannelStats> out;
    for (auto& b : bridges_) out.push_back(b->stats());
    return out;
}

bool BridgeGroup::limit_in_flight(size_t per_channel) const {
    std::lock_guard lock(mutex_);
    bool all = true;
    for (auto& b : bridges_) all = b->limit_in_flight(per_channel) && all;
    return all;
}

}  // namespace rmig::qemu
