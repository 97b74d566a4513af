// The source's control link over a real tcp channel pair: answers, notes and
// delivery reports from the destination, a refusal, an abort while nothing is
// asked, and a silent destination.
#include "qemu-plugin/control_link.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "tests/support/channel_pair.hpp"
#include "transport/control_channel.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Link {
    test::ChannelPair pair;
    transport::Channel& dest;
    qemu::ControlLink link;
    explicit Link(std::chrono::milliseconds stall = 2000ms)
        : dest(*pair.dst), link(std::move(pair.src), stall) {}
};

}  // namespace

TEST(ControlLink, AnswersNotesAndDeliveryReports) {
    Link l;
    auto dest = std::async(std::launch::async, [&] {
        json req = transport::recv_message(l.dest);
        EXPECT_EQ(req.value("op", ""), "finish");
        transport::send_message(l.dest, {{"op", "delivered"}, {"bytes", 4096}});
        transport::send_message(l.dest, {{"op", "working"}});
        transport::send_message(l.dest, {{"ok", true}, {"state", "running"}});
    });
    json reply = l.link.ask({{"op", "finish"}});
    dest.get();
    EXPECT_EQ(reply.value("state", ""), "running");
    EXPECT_EQ(l.link.delivered().bytes, 4096u);
    EXPECT_FALSE(l.link.peer_abort());
}

TEST(ControlLink, ARefusalIsAnAnswerNotALostLink) {
    Link l;
    auto dest = std::async(std::launch::async, [&] {
        transport::recv_message(l.dest);
        transport::send_message(l.dest, {{"ok", false}, {"error", "destination QEMU did not finish loading"}});
    });
    try {
        l.link.ask({{"op", "finish"}});
        FAIL() << "a refusal must throw";
    } catch (const qemu::DestinationRefused& e) {
        EXPECT_NE(std::string(e.what()).find("did not finish loading"), std::string::npos) << e.what();
    }
    dest.get();
}

TEST(ControlLink, AnAbortIsSeenAtOnceWithoutARequest) {
    std::promise<std::string> seen;  // before the link, which calls it from its reader
    Link l;
    l.link.on_abort([&](const std::string& why) { seen.set_value(why); });
    std::string why = "writing into QEMU's stream: Broken pipe";
    l.dest.send(wire::FrameType::abort, std::as_bytes(std::span(why.data(), why.size())));
    auto f = seen.get_future();
    ASSERT_EQ(f.wait_for(2s), std::future_status::ready) << "the abort was not noticed";
    EXPECT_EQ(f.get(), why);
    EXPECT_EQ(l.link.peer_abort().value_or(""), why);
    // A request after it fails at once, naming the destination's reason.
    try {
        l.link.ask({{"op", "finish"}});
        FAIL() << "ask after an abort must throw";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("Broken pipe"), std::string::npos) << e.what();
    }
}

TEST(ControlLink, ASilentDestinationIsCutOffAfterTheStallTimeout) {
    Link l(300ms);
    auto t0 = std::chrono::steady_clock::now();
    try {
        l.link.ask({{"op", "probe"}});
        FAIL() << "no answer must throw";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("did not answer 'probe'"), std::string::npos) << e.what();
    }
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 5s);
}

// With a grace, a connection lost while a request waits is reopened and the
// request asked again with the same number; an answer to an older request
// that arrives after the reconnect is not taken for this one's.
TEST(ControlLink, ALostConnectionIsReopenedAndTheRequestAskedAgain) {
    // Declared before the link: its reader may still call the reopen
    // function (when the test's second destination goes away) until the
    // link is destroyed, which is last.
    std::promise<std::unique_ptr<transport::Channel>> next_dest;
    std::promise<void> done;
    std::atomic<int> reopens{0};
    Link l;
    l.link.resume_with(
        [&]() -> std::unique_ptr<transport::Channel> {
            int attempt = reopens++;
            if (attempt == 0) throw LinkError("connection refused (the link is still down)");
            if (attempt > 1) throw LinkError("the test's destination is gone");
            test::ChannelPair p;
            next_dest.set_value(std::move(p.dst));
            return std::move(p.src);
        },
        5000ms);
    auto dest = std::async(std::launch::async, [&] {
        json first = transport::recv_message(l.dest);
        EXPECT_EQ(first.value("op", ""), "finish");
        l.dest.shutdown();  // reset before the answer went out
        auto f = next_dest.get_future();
        if (f.wait_for(5s) != std::future_status::ready) return json();
        auto d = f.get();
        json again = transport::recv_message(*d);
        transport::send_message(*d, {{"ok", true}, {"seq", first["seq"].get<int64_t>() - 1}, {"state", "stale"}});
        transport::send_message(*d, {{"ok", true}, {"seq", again["seq"]}, {"state", "running"}});
        done.get_future().wait_for(5s);  // keep it open until the answer was taken
        return again;
    });
    json reply = l.link.ask({{"op", "finish"}});
    done.set_value();
    EXPECT_EQ(reply.value("state", ""), "running");
    EXPECT_EQ(l.link.reopened(), 1u);
    EXPECT_GE(reopens.load(), 2) << "the first attempt failed and was tried again";
    json again = dest.get();
    EXPECT_EQ(again.value("op", ""), "finish");
}

TEST(ControlLink, NotReopenedWithinTheGraceIsALostLink) {
    std::promise<std::string> lost;  // before the link, which calls it from its reader
    Link l;
    l.link.on_lost([&](const std::string& why) { lost.set_value(why); });
    l.link.resume_with([]() -> std::unique_ptr<transport::Channel> { throw LinkError("no route to host"); },
                       600ms);
    auto t0 = std::chrono::steady_clock::now();
    l.dest.shutdown();
    try {
        l.link.ask({{"op", "probe"}});
        FAIL() << "a link not back within the grace must throw";
    } catch (const LinkError& e) {
        EXPECT_NE(std::string(e.what()).find("control channel lost"), std::string::npos) << e.what();
    }
    auto f = lost.get_future();
    ASSERT_EQ(f.wait_for(2s), std::future_status::ready);
    auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 500ms) << "the grace was waited out";
    EXPECT_LT(waited, 5s);
}
