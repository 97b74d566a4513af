// End to end: boot the test guest image in QEMU (TCG), check that it makes
// progress (serial markers), stop it over QMP, dump its memory with pmemsave
// and verify the dump. Every wait is bounded; rmig::Process kills QEMU on every
// path out of the test.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/socket.hpp"
#include "guest/guest_check.hpp"

namespace rmig::guest {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kQmpTimeout{10000};
constexpr milliseconds kFirstMarkerTimeout{15000};
constexpr milliseconds kProgressWindow{500};
constexpr milliseconds kDumpTimeout{20000};

// $RMIG_QEMU, else qemu-system-x86_64 from PATH; empty if not found.
std::string find_qemu() {
    if (const char* env = std::getenv("RMIG_QEMU"); env && *env) return env;
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        fs::path candidate = fs::path(dir.empty() ? "." : dir) / "qemu-system-x86_64";
        if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
    return {};
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

class TempDir {
public:
    TempDir() {
        // Short base path: it holds a UNIX socket (108-byte limit).
        std::string tmpl = "/tmp/rmig-guest-e2e-XXXXXX";
        if (!::mkdtemp(tmpl.data())) throw_errno("mkdtemp " + tmpl);
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

// Just enough QMP: greeting, qmp_capabilities, synchronous commands; events
// that arrive in between are skipped.
class Qmp {
public:
    Qmp(const std::string& socket_path, milliseconds timeout)
        : fd_(net::unix_connect(socket_path, timeout)) {
        json greeting = read_message(Clock::now() + timeout);
        if (!greeting.contains("QMP")) throw Error("QMP: unexpected greeting " + greeting.dump());
        execute("qmp_capabilities", nullptr, timeout);
    }

    json execute(const std::string& command, const json& arguments = nullptr,
                 milliseconds timeout = kQmpTimeout) {
        json request = {{"execute", command}};
        if (!arguments.is_null()) request["arguments"] = arguments;
        std::string line = request.dump() + "\n";
        net::write_full(fd_.get(), line.data(), line.size());
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            json reply = read_message(deadline);
            if (reply.contains("return")) return reply["return"];
            if (reply.contains("error"))
                throw Error(cat("QMP ", command, " failed: ", reply["error"].dump()));
            // An event ({"event": ...}): not the reply.
        }
    }

private:
    json read_message(Clock::time_point deadline) {
        for (;;) {
            if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
                return json::parse(line);
            }
            auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
            if (left.count() <= 0 || !net::wait_readable(fd_.get(), left))
                throw LinkError("QMP: timed out waiting for a message");
            char chunk[4096];
            size_t n = net::read_some(fd_.get(), chunk, sizeof chunk);
            if (n == 0) throw LinkError("QMP: connection closed by QEMU");
            buffer_.append(chunk, n);
        }
    }

    UniqueFd fd_;
    std::string buffer_;
};

struct BootConfig {
    const char* name;
    bool memfd;  // guest RAM in a shared memfd backend instead of anonymous memory
};

class GuestBootTest : public ::testing::TestWithParam<BootConfig> {};

TEST_P(GuestBootTest, RunsAndLeavesAValidPattern) {
    const std::string qemu = find_qemu();
    if (qemu.empty()) GTEST_SKIP() << "qemu-system-x86_64 not found (set RMIG_QEMU)";
    const std::string image = locate_guest_image();

    TempDir dir;
    const std::string qmp_path = dir.file("qmp.sock");
    const std::string serial = dir.file("serial.log");
    const std::string qemu_log = dir.file("qemu.log");

    std::vector<std::string> argv{qemu, "-accel", "tcg"};
    if (GetParam().memfd) {
        argv.insert(argv.end(), {"-object", "memory-backend-memfd,id=mem0,size=128M,share=on",
                                 "-machine", "pc,memory-backend=mem0"});
    } else {
        argv.insert(argv.end(), {"-machine", "pc"});
    }
    argv.insert(argv.end(), {"-m", "128M", "-nodefaults", "-display", "none",
                             "-serial", "file:" + serial,
                             "-drive", qemu_drive_option(image),
                             "-qmp", "unix:" + qmp_path + ",server=on,wait=off"});

    Process vm(argv, {.stdout_path = qemu_log, .stderr_path = "=stdout"});
    try {
        Qmp qmp(qmp_path, kQmpTimeout);

        // 1. The guest boots: the first marker appears.
        const auto boot_deadline = Clock::now() + kFirstMarkerTimeout;
        while (serial_marker_count(serial) == 0) {
            ASSERT_TRUE(vm.running()) << "QEMU exited:\n" << read_text(qemu_log);
            ASSERT_LT(Clock::now(), boot_deadline)
                << "no marker on the serial port within " << kFirstMarkerTimeout.count() << " ms";
            std::this_thread::sleep_for(milliseconds(20));
        }

        // 2. It keeps making passes.
        const auto t0 = Clock::now();
        const size_t c0 = serial_marker_count(serial);
        std::this_thread::sleep_for(kProgressWindow);
        const size_t c1 = serial_marker_count(serial);
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        ASSERT_GT(c1, c0) << "serial markers did not grow over " << secs << " s";
        const double rate = static_cast<double>(c1 - c0) / secs;
        std::cout << "[" << GetParam().name << "] " << (c1 - c0) << " passes in " << secs
                  << " s = " << static_cast<long>(rate) << " passes/s\n";
        RecordProperty("passes_per_second", static_cast<int>(rate));

        // 3. Stop it; it stops writing markers.
        qmp.execute("stop");
        json status = qmp.execute("query-status");
        EXPECT_EQ(status.value("running", true), false) << status.dump();
        const size_t stopped = serial_marker_count(serial);
        std::this_thread::sleep_for(milliseconds(100));
        EXPECT_EQ(serial_marker_count(serial), stopped) << "markers after stop";
        // Nothing but markers on the serial port.
        EXPECT_EQ(fs::file_size(serial), stopped);

        // 4. Dump guest RAM [0, kPatternEnd) and verify the pattern.
        const std::string dump_path = dir.file("ram.dump");
        qmp.execute("pmemsave",
                    {{"val", 0}, {"size", kPatternEnd}, {"filename", dump_path}}, kDumpTimeout);
        auto dump = load_dump(dump_path);
        ASSERT_EQ(dump.size(), kPatternEnd);
        auto r = check_pattern(dump);
        ASSERT_TRUE(r.ok) << r.detail;
        std::cout << "[" << GetParam().name << "] " << stopped << " passes; " << r.detail << "\n";

        // The memory agrees with the serial count: after `stopped` complete
        // passes the guest is in pass stopped+1. Mid-pass: n+1 == stopped+1.
        // Between passes (all pages equal): n is stopped, or stopped+1 if it was
        // stopped after the last increment but before the marker.
        const auto lo = static_cast<uint8_t>(stopped);
        const auto hi = static_cast<uint8_t>(stopped + 1);
        if (r.boundary_page != 0)
            EXPECT_EQ(r.low_value, lo) << r.detail << "; markers " << stopped;
        else
            EXPECT_TRUE(r.low_value == lo || r.low_value == hi)
                << r.detail << "; markers " << stopped;

        // 5. The stopped guest is stable: a second dump is identical.
        const std::string dump2_path = dir.file("ram2.dump");
        qmp.execute("pmemsave",
                    {{"val", 0}, {"size", kPatternEnd}, {"filename", dump2_path}}, kDumpTimeout);
        auto same = compare_dumps(dump, load_dump(dump2_path));
        EXPECT_TRUE(same.ok) << same.detail;

        // 6. Quit cleanly (the Process destructor would SIGKILL otherwise).
        try {
            qmp.execute("quit");
        } catch (const LinkError&) {
            // QEMU may close the socket before its reply reaches us.
        }
        EXPECT_EQ(vm.wait_for(milliseconds(5000)), std::optional<int>(0));
    } catch (const std::exception& e) {
        FAIL() << e.what() << "\nQEMU output:\n" << read_text(qemu_log);
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, GuestBootTest,
                         ::testing::Values(BootConfig{"anonymous", false},
                                           BootConfig{"memfd", true}),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace rmig::guest
