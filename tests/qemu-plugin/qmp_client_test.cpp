// QmpClient against a scripted fake QMP server: exercises what a real QEMU
// rarely does on demand (replies split across reads, stale replies, event
// floods, silence, EOF). The real-QEMU tests are in qmp_qemu_e2e_test.cpp.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "common/socket.hpp"
#include "qemu-plugin/qmp_client.hpp"

namespace rmig::qemu {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// Captured from QEMU 7.2.22, including its CRLF line ending.
const std::string kGreeting =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, )"
    R"("package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}})"
    "\r\n";

void send(int fd, const std::string& text) { net::write_full(fd, text.data(), text.size()); }

// Reads one request line from the client; bounded so a broken test cannot hang.
json read_request(int fd) {
    std::string line;
    char c = 0;
    while (c != '\n') {
        if (!net::wait_readable(fd, 5s)) throw Error("fake QMP: no request within 5 s");
        if (net::read_some(fd, &c, 1) == 0) throw LinkError("fake QMP: client closed");
        line += c;
    }
    return json::parse(line);
}

std::string reply(const json& request, const json& ret) {
    return json{{"return", ret}, {"id", request.at("id")}}.dump() + "\r\n";
}

// Greets and acknowledges qmp_capabilities like QEMU does.
void handshake(int fd) {
    send(fd, kGreeting);
    json req = read_request(fd);
    EXPECT_EQ(req["execute"], "qmp_capabilities");
    send(fd, reply(req, json::object()));
}

// A UNIX socket in a fresh temp dir, and one thread serving one connection
// with `script`.
class FakeQmp {
public:
    FakeQmp() {
        char tmpl[] = "/tmp/rmig-fakeqmp-XXXXXX";
        if (!::mkdtemp(tmpl)) throw_errno("mkdtemp");
        dir_ = tmpl;
        path_ = dir_ + "/qmp.sock";
        listen_ = net::unix_listen(path_);
    }
    ~FakeQmp() {
        if (thread_.joinable()) thread_.join();
        std::filesystem::remove_all(dir_);
    }
    const std::string& path() const { return path_; }

    void serve(std::function<void(int fd)> script) {
        thread_ = std::thread([this, script = std::move(script)] {
            try {
                UniqueFd fd = net::accept_for(listen_.get(), 5s);
                ASSERT_TRUE(fd.valid()) << "client never connected";
                script(fd.get());
            } catch (const std::exception& e) {
                ADD_FAILURE() << "fake QMP server: " << e.what();
            }
        });
    }

private:
    std::string dir_, path_;
    UniqueFd listen_;
    std::thread thread_;
};

TEST(QmpClient, PartialReadsStaleRepliesAndInterleavedEvents) {
    FakeQmp fake;
    fake.serve([](int fd) {
        // Greeting dribbled out in three pieces.
        send(fd, kGreeting.substr(0, 10));
        std::this_thread::sleep_for(20ms);
        send(fd, kGreeting.substr(10, 50));
        std::this_thread::sleep_for(20ms);
        send(fd, kGreeting.substr(60));
        json req = read_request(fd);
        send(fd, reply(req, json::object()));

        req = read_request(fd);
        EXPECT_EQ(req["execute"], "query-status");
        EXPECT_FALSE(req.contains("arguments"));
        std::string ans = reply(req, {{"status", "running"}, {"running", true}});
        // An event and a stale reply in one write, then the answer split mid-token.
        send(fd, R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"})"
                 "\r\n"
                 R"({"return": {"status": "stale"}, "id": 999})"
                 "\r\n\r\n" +
                     ans.substr(0, 7));
        std::this_thread::sleep_for(20ms);
        send(fd, ans.substr(7));

        req = read_request(fd);
        EXPECT_EQ(req["execute"], "human-monitor-command");
        EXPECT_EQ(req["arguments"]["command-line"], "info foo");
        send(fd, reply(req, "line 1\r\nline 2\r\n"));
    });
    QmpClient qmp(fake.path(), 5s);
    EXPECT_EQ(qmp.qemu_version(), "7.2.22");
    EXPECT_EQ(qmp.greeting()["QMP"]["version"]["package"], "Debian 1:7.2+dfsg-7+deb12u18+b3");

    json st = qmp.execute("query-status");
    EXPECT_EQ(st["status"], "running");
    EXPECT_EQ(qmp.human("info foo"), "line 1\nline 2\n");

    auto events = qmp.take_events();
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0]["event"], "STOP");
    EXPECT_TRUE(qmp.take_events().empty());
}

TEST(QmpClient, ErrorReplyThrowsQmpErrorAndClientStaysUsable) {
    FakeQmp fake;
    fake.serve([](int fd) {
        handshake(fd);
        json req = read_request(fd);
        send(fd, json{{"id", req["id"]},
                      {"error",
                       {{"class", "CommandNotFound"},
                        {"desc", "The command bogus has not been found"}}}}
                         .dump() +
                     "\r\n");
        req = read_request(fd);
        send(fd, reply(req, 42));
    });
    QmpClient qmp(fake.path(), 5s);
    try {
        qmp.execute("bogus", {{"x", 1}});
        FAIL() << "no throw";
    } catch (const QmpError& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(fake.path()), std::string::npos) << msg;
        EXPECT_NE(msg.find("'bogus'"), std::string::npos) << msg;
        EXPECT_NE(msg.find("CommandNotFound"), std::string::npos) << msg;
        EXPECT_NE(msg.find("The command bogus has not been found"), std::string::npos) << msg;
        EXPECT_EQ(e.error_class(), "CommandNotFound");
        EXPECT_EQ(e.command(), "bogus");
    }
    EXPECT_EQ(qmp.execute("next"), 42);
}

TEST(QmpClient, TimeoutThenLateReplyIsDiscarded) {
    FakeQmp fake;
    fake.serve([](int fd) {
        handshake(fd);
        json slow = read_request(fd);
        json next = read_request(fd);  // sent after the client gave up on `slow`
        send(fd, reply(slow, "late") + reply(next, "fresh"));
    });
    QmpClient qmp(fake.path(), 5s);
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(qmp.execute("slow", {}, 200ms), LinkError);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    EXPECT_EQ(qmp.execute("next"), "fresh");
}

TEST(QmpClient, EventQueueIsBoundedAndWaitEventUsesIt) {
    FakeQmp fake;
    fake.serve([](int fd) {
        handshake(fd);
        json req = read_request(fd);
        std::string burst;
        for (int i = 0; i < 300; ++i)
            burst += json{{"event", i == 150 ? "MIGRATION" : "TICK"}, {"data", {{"n", i}}}}.dump() +
                     "\r\n";
        send(fd, burst + reply(req, json::object()));
        std::this_thread::sleep_for(50ms);
        send(fd, R"({"event": "RESUME"})" "\r\n");
        req = read_request(fd);  // stay connected until the client is done
        send(fd, reply(req, json::object()));
    });
    QmpClient qmp(fake.path(), 5s);
    qmp.execute("flood");
    EXPECT_EQ(qmp.dropped_events(), 300u - QmpClient::kMaxQueuedEvents);

    auto mig = qmp.wait_event("MIGRATION", 0ms);  // already queued
    ASSERT_TRUE(mig.has_value());
    EXPECT_EQ((*mig)["data"]["n"], 150);
    auto resume = qmp.wait_event("RESUME", 5s);  // arrives later
    ASSERT_TRUE(resume.has_value());

    auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(qmp.wait_event("NEVER", 100ms).has_value());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

    auto events = qmp.take_events();
    ASSERT_EQ(events.size(), QmpClient::kMaxQueuedEvents - 1);  // minus MIGRATION
    EXPECT_EQ(events.front()["data"]["n"], 44);  // the oldest 44 were dropped
    EXPECT_EQ(events.back()["data"]["n"], 299);
    qmp.execute("done");
}

TEST(QmpClient, EndlessEventStreamDoesNotExtendWaits) {
    FakeQmp fake;
    fake.serve([](int fd) {
        handshake(fd);
        std::string burst;
        for (int i = 0; i < 1000; ++i) burst += R"({"event": "TICK"})" "\r\n";
        auto t0 = std::chrono::steady_clock::now();
        try {  // faster than the client can read, until it hangs up (or 10 s)
            while (std::chrono::steady_clock::now() - t0 < 10s) send(fd, burst);
        } catch (const Error&) {
        }
    });
    auto t0 = std::chrono::steady_clock::now();
    {
        QmpClient qmp(fake.path(), 5s);
        auto t1 = std::chrono::steady_clock::now();
        EXPECT_THROW(qmp.execute("never-answered", {}, 200ms), LinkError);
        EXPECT_LT(std::chrono::steady_clock::now() - t1, 1s);
        t1 = std::chrono::steady_clock::now();
        EXPECT_FALSE(qmp.wait_event("NEVER", 200ms).has_value());
        EXPECT_LT(std::chrono::steady_clock::now() - t1, 1s);
        EXPECT_EQ(qmp.take_events().size(), QmpClient::kMaxQueuedEvents);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
}

TEST(QmpClient, EofGivesLinkErrorNamingSocketThenFailsFast) {
    FakeQmp fake;
    fake.serve([](int fd) {
        handshake(fd);
        read_request(fd);
        send(fd, R"({"return": {}, "i)");  // dies mid-line
    });
    QmpClient qmp(fake.path(), 5s);
    try {
        qmp.execute("query-status");
        FAIL() << "no throw";
    } catch (const LinkError& e) {
        EXPECT_NE(std::string(e.what()).find(fake.path()), std::string::npos) << e.what();
    }
    EXPECT_THROW(qmp.execute("query-status"), LinkError);
    EXPECT_THROW(qmp.wait_event("STOP", 1s), LinkError);
}

TEST(QmpClient, SilentServerGivesBoundedLinkError) {
    FakeQmp fake;
    fake.serve([](int) { std::this_thread::sleep_for(1s); });
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(QmpClient(fake.path(), 200ms), LinkError);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
}

TEST(QmpClient, NotQmpIsProtocolError) {
    FakeQmp fake;
    fake.serve([](int fd) { send(fd, "SSH-2.0-OpenSSH\r\n"); });
    EXPECT_THROW(QmpClient(fake.path(), 2s), ProtocolError);
}

TEST(QmpClient, MissingSocketFailsAfterTimeout) {
    auto t0 = std::chrono::steady_clock::now();
    try {
        QmpClient qmp("/tmp/rmig-no-such-dir/qmp.sock", 100ms);
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/tmp/rmig-no-such-dir/qmp.sock"), std::string::npos);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace rmig::qemu
