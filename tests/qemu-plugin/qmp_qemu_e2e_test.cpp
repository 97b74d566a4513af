// QmpClient and probe() against a real qemu-system-x86_64 (TCG, 64 MiB, no
// disk: the guest just sits in SeaBIOS). Every wait is bounded; QEMU is killed
// by rmig::Process when a test ends, whatever happened.
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/process.hpp"
#include "qemu-plugin/qemu_info.hpp"
#include "qemu-plugin/qmp_client.hpp"

namespace rmig::qemu {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class QemuE2E : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/rmig-qmp-e2e-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        qmp_path_ = dir_ + "/qmp.sock";
        qemu_ = Process({"qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "64M",
                         "-nodefaults", "-display", "none", "-qmp",
                         "unix:" + qmp_path_ + ",server=on,wait=off"},
                        {dir_ + "/qemu.log", "=stdout"});
    }
    void TearDown() override {
        qemu_ = Process();  // kills and reaps before the directory goes
        std::filesystem::remove_all(dir_);
    }

    QmpClient connect(std::chrono::milliseconds timeout = 10s) {
        try {
            return QmpClient(qmp_path_, timeout);
        } catch (const Error& e) {
            ADD_FAILURE() << e.what() << "\nQEMU log:\n" << qemu_log();
            throw;
        }
    }
    std::string qemu_log() const {
        std::ifstream in(dir_ + "/qemu.log");
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }

    std::string dir_, qmp_path_;
    Process qemu_;
};

TEST_F(QemuE2E, QueryStatus) {
    QmpClient qmp = connect();
    EXPECT_TRUE(qmp.qemu_version().starts_with("7.")) << qmp.qemu_version();
    auto st = qmp.execute("query-status");
    EXPECT_EQ(st["status"], "running");
    EXPECT_EQ(st["running"], true);
}

TEST_F(QemuE2E, ErrorsCarryClassAndDescAndClientStaysUsable) {
    QmpClient qmp = connect();
    try {
        qmp.execute("no-such-command");
        FAIL() << "no throw";
    } catch (const QmpError& e) {
        EXPECT_EQ(e.error_class(), "CommandNotFound");
        EXPECT_EQ(e.desc(), "The command no-such-command has not been found");
        std::string msg = e.what();
        EXPECT_NE(msg.find(qmp_path_), std::string::npos) << msg;
        EXPECT_NE(msg.find("no-such-command"), std::string::npos) << msg;
    }
    try {
        qmp.execute("qom-get", {{"path", "/nope"}, {"property", "type"}});
        FAIL() << "no throw";
    } catch (const QmpError& e) {
        EXPECT_EQ(e.error_class(), "DeviceNotFound");
        EXPECT_EQ(e.desc(), "Device '/nope' not found");
    }
    EXPECT_EQ(qmp.execute("query-status")["status"], "running");
}

TEST_F(QemuE2E, ProbeReturnsPlausibleInfo) {
    QmpClient qmp = connect();
    QemuInfo info = probe(qmp);
    EXPECT_EQ(info.version, qmp.qemu_version());
    EXPECT_FALSE(info.package.empty());
    EXPECT_TRUE(info.machine_type.starts_with("pc-i440fx")) << info.machine_type;
    EXPECT_FALSE(info.machine_type.ends_with("-machine")) << info.machine_type;
    EXPECT_EQ(info.ram_bytes, 64u << 20);
    EXPECT_EQ(info.run_state, "running");
    const RamBlock* ram = nullptr;
    for (const auto& b : info.ram_blocks)
        if (b.name == "pc.ram") ram = &b;
    ASSERT_NE(ram, nullptr) << to_json(info).dump();
    EXPECT_EQ(ram->used_bytes, 64u << 20);
    EXPECT_EQ(ram->page_size, 4096u);
    EXPECT_EQ(info_from_json(to_json(info)), info);
}

TEST_F(QemuE2E, StopAndContEventsAreCaptured) {
    QmpClient qmp = connect();
    qmp.execute("stop");
    auto stop = qmp.wait_event("STOP", 5s);
    ASSERT_TRUE(stop.has_value());
    EXPECT_TRUE(stop->contains("timestamp"));
    EXPECT_EQ(probe(qmp).run_state, "paused");

    qmp.execute("cont");
    ASSERT_TRUE(qmp.wait_event("RESUME", 5s).has_value());
    EXPECT_EQ(qmp.execute("query-status")["status"], "running");

    qmp.execute("stop");
    qmp.execute("query-status");  // give STOP time to arrive, then take it from the queue
    auto t0 = Clock::now();
    while (Clock::now() - t0 < 5s) {
        auto events = qmp.take_events();
        if (!events.empty()) {
            EXPECT_EQ(events.front()["event"], "STOP");
            return;
        }
        (void)qmp.wait_event("NONE", 50ms);  // reads and queues whatever comes
    }
    FAIL() << "STOP never queued";
}

TEST_F(QemuE2E, KilledQemuGivesLinkError) {
    QmpClient qmp = connect();
    qemu_.signal(SIGKILL);
    ASSERT_TRUE(qemu_.wait_for(5s).has_value());
    auto t0 = Clock::now();
    try {
        qmp.execute("query-status", {}, 5s);
        FAIL() << "no throw";
    } catch (const LinkError& e) {
        EXPECT_NE(std::string(e.what()).find(qmp_path_), std::string::npos) << e.what();
    }
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_THROW(qmp.wait_event("STOP", 5s), LinkError);
}

TEST_F(QemuE2E, KilledWhileWaitingDoesNotHang) {
    QmpClient qmp = connect();
    std::jthread killer([this] {
        std::this_thread::sleep_for(300ms);
        qemu_.signal(SIGKILL);
    });
    auto t0 = Clock::now();
    EXPECT_THROW(qmp.wait_event("NEVER", 30s), LinkError);
    EXPECT_LT(Clock::now() - t0, 10s);
}

TEST_F(QemuE2E, FrozenQemuTimesOutThenRecovers) {
    QmpClient qmp = connect();
    qemu_.signal(SIGSTOP);
    auto t0 = Clock::now();
    EXPECT_THROW(qmp.execute("query-status", {}, 300ms), LinkError);
    EXPECT_LT(Clock::now() - t0, 3s);
    qemu_.signal(SIGCONT);
    // QEMU now answers the abandoned command too; ids keep the replies apart.
    EXPECT_EQ(qmp.execute("query-name"), nlohmann::json::object());
    EXPECT_EQ(qmp.execute("query-status")["status"], "running");
}

TEST_F(QemuE2E, SecondClientOnBusyMonitorTimesOut) {
    QmpClient first = connect();
    auto t0 = Clock::now();
    EXPECT_THROW(QmpClient(qmp_path_, 300ms), LinkError);
    EXPECT_LT(Clock::now() - t0, 3s);
    EXPECT_EQ(first.execute("query-status")["status"], "running");
}

}  // namespace
}  // namespace rmig::qemu
