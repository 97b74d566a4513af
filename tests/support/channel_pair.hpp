// Two ends of one data channel over tcp loopback (or `uri`), for tests of
// what runs on top of a Channel.
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include "common/error.hpp"
#include "transport/channel.hpp"

namespace rmig::test {

struct ChannelPair {
    std::unique_ptr<transport::Channel> src, dst;

    explicit ChannelPair(const std::string& uri = "tcp:127.0.0.1:0", const transport::Options& opts = {}) {
        auto l = transport::listen(uri, opts);
        wire::Hello h;
        h.role = wire::Role::source;
        h.kind = wire::ChannelKind::data;
        h.session = wire::random_session_id();
        h.channel_id = 1;
        h.channel_count = 1;
        auto acc = std::async(std::launch::async, [&] {
            auto in = l->next(std::chrono::milliseconds(5000));
            if (!in) throw Error(cat("no connection on ", l->address(), " within 5 s"));
            wire::Hello r = in->hello();
            r.role = wire::Role::destination;
            return in->accept(r);
        });
        src = transport::connect(l->address(), h, opts);
        dst = acc.get();
    }
};

}  // namespace rmig::test
