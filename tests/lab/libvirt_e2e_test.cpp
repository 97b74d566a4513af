// Real libvirt end to end (docs/libvirt.md): two libvirtd "hosts" of Debian
// 12's libvirt 9.0 in their own namespaces (lab/libvirt/two-hosts.sh), a TCG
// guest defined from lab/libvirt/guest.xml, and `virsh migrate --live --p2p
// --migrateuri unix:///run/rmig/...` whose QEMU connections cross a relay
// between the two hosts' /run: memory only, with --parallel, with
// --copy-storage-all --disks-uri (the guest writes its qcow2 disk all along),
// and a migration aborted with `virsh domjobabort` then retried.
//
// The relay is the test's parameter (start_relay()): socat, kept in order by
// the test, and rmig tunnel-send/tunnel-receive (skipped, saying so, with an
// rmig that has no tunnel-send).
// Verified on the destination: the domain runs; its memory passes
// guest_check's pattern (a paused guest, pmemsave); its disk holds the boot
// sector and consistent pass counters newer than the source's last pass.
//
// Needs root, namespaces (unshare), libvirtd, virsh, qemu-img and socat
// (scripts/deps.sh). Skipped only when this machine cannot run the two hosts
// (not root, or unshare refused), saying why. Each step runs under a timeout;
// the lab's daemons live at most 15 minutes and are stopped at the end.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "common/process.hpp"
#include "common/socket.hpp"
#include "common/unique_fd.hpp"
#include "guest/guest_check.hpp"
#include "lab/libvirt/disk_check.hpp"
#include "lab/wan/command.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using rmig::cat;

namespace {

constexpr const char* kDomain = "rmig-guest";
// The paths the source QEMU connects to and the destination QEMU listens on:
// the same text on both hosts, two files since each host has its own /run.
constexpr const char* kMigrationPath = "/run/rmig/rmig-guest.sock";
constexpr const char* kDisksPath = "/run/rmig/rmig-guest-disks.sock";
constexpr std::size_t kDumpBytes = rmig::guest::kPatternEnd;

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What the lab's `env` printed: KEY=VALUE lines, values maybe in quotes.
std::map<std::string, std::string> parse_env(const std::string& text) {
    std::map<std::string, std::string> env;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        std::string v = line.substr(eq + 1);
        if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
        env[line.substr(0, eq)] = v;
    }
    return env;
}

struct Lab {
    std::string dir, uri_a, uri_b;
    fs::path run_a, run_b, images_a, images_b, shared, log_a;
};

// The relay between the hosts for one migration: for each socket path, the
// source QEMU connects to `from` (host A's file, which the relay listens on)
// and the relay reaches the destination QEMU at `to` (host B's file, in the
// directory where host B's QEMU creates it; the file exists only once that
// QEMU listens, and stays behind, stale, after an aborted migration).
struct SocketPair {
    fs::path from, to;
};

class Relay {
public:
    virtual ~Relay() = default;
};

// socat moves the bytes, one socat per connection (`socat FD:N
// UNIX-CONNECT:TO`), and the test keeps the order: it holds the listener on
// FROM, accepts a connection, and accepts the next only once that socat has
// connected its destination leg. QEMU 7.2's destination takes the first
// connection it accepts as the main stream, and plain `socat UNIX-LISTEN,fork`
// connects the legs from racing children: a --parallel migration hung in one
// of four runs that way (docs/libvirt.md).
class SocatRelay : public Relay {
public:
    SocatRelay(const std::vector<SocketPair>& paths, const fs::path& log_prefix) {
        for (const auto& p : paths) {
            auto listener = std::make_shared<rmig::UniqueFd>(rmig::net::unix_listen(p.from.string()));
            auto prefix = cat(log_prefix.string(), "-", p.from.filename().string());
            threads_.emplace_back([this, listener, to = p.to, prefix] {
                try {
                    serve(listener->get(), to, prefix);
                } catch (const std::exception& e) {
                    // The source QEMU's connect then waits in the backlog and
                    // the case fails on virsh's timeout; say why here.
                    std::fprintf(stderr, "socat relay for %s stopped: %s\n", to.c_str(), e.what());
                }
            });
            listeners_.push_back(std::move(listener));
        }
    }
    ~SocatRelay() override {
        stop_ = true;
        for (auto& t : threads_) t.join();
    }

private:
    void serve(int listener, const fs::path& to, const std::string& prefix) {
        for (int n = 0; !stop_;) {
            rmig::UniqueFd conn = rmig::net::accept_for(listener, 100ms);
            if (!conn) continue;
            auto log = cat(prefix, "-", n++, ".log");
            {
                // The accepted socket must reach socat (not close on exec) and
                // no other child: spawns of the relay's threads take turns.
                std::lock_guard<std::mutex> lock(spawn_mutex_);
                ::fcntl(conn.get(), F_SETFD, 0);
                // 1 MiB buffers: with socat's 8 KiB the guest's 100 MiB
                // working set does not converge (~16 MiB/s).
                std::lock_guard<std::mutex> procs_lock(procs_mutex_);
                procs_.emplace_back(std::vector<std::string>{"socat", "-lu", "-d", "-d", "-b", "1048576",
                                                             cat("FD:", conn.get()), cat("UNIX-CONNECT:", to.string())},
                                    rmig::Process::Options{log, "=stdout"});
                conn.reset();
            }
            // The next connection waits until this one's destination leg is up
            // (or failed: the source QEMU then sees its connection close).
            for (auto end = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < end && !stop_;) {
                auto text = slurp(log);
                if (text.find("starting data transfer loop") != std::string::npos || text.find(" E ") != std::string::npos)
                    break;
                std::this_thread::sleep_for(5ms);
            }
        }
    }

    static inline std::mutex spawn_mutex_;
    std::atomic<bool> stop_{false};
    std::mutex procs_mutex_;
    std::vector<rmig::Process> procs_;
    std::vector<std::shared_ptr<rmig::UniqueFd>> listeners_;
    std::vector<std::thread> threads_;
};

// rmig's own relay: `rmig tunnel-send --unix FROM...` on the source side and
// `rmig tunnel-receive --socket-dir DIR` on the destination side (both in
// this machine's namespaces, joined over loopback TCP with a pre-shared key).
// The binary: $RMIG_LIBVIRT_RMIG, else the build's rmig.
std::string rmig_binary() {
    const char* env = std::getenv("RMIG_LIBVIRT_RMIG");
    return env ? env : RMIG_BINARY_PATH;
}

class RmigTunnelRelay : public Relay {
public:
    RmigTunnelRelay(const std::vector<SocketPair>& paths, const fs::path& log_prefix) {
        fs::path dir = paths.front().to.parent_path();
        std::string from;
        for (const auto& p : paths) {
            if (p.to.parent_path() != dir) throw rmig::Error("rmig tunnel-receive serves one socket directory");
            from += (from.empty() ? "" : " ") + p.from.string();
        }
        fs::path psk = cat(log_prefix.string(), ".psk"), address = cat(log_prefix.string(), ".address");
        {
            std::random_device rd;
            std::ofstream out(psk);
            for (int i = 0; i < 32; ++i) out << "0123456789abcdef"[rd() % 16] << "0123456789abcdef"[rd() % 16];
            out << "\n";
        }
        fs::remove(address);
        receive_ = rmig::Process({rmig_binary(), "tunnel-receive", "--listen", "tcp:127.0.0.1:0", "--socket-dir",
                                  dir.string(), "--address-file", address.string(), "--psk-file", psk.string(),
                                  "--timeout", "600"},
                                 {cat(log_prefix.string(), "-receive.log"), "=stdout"});
        std::string where;
        for (auto end = std::chrono::steady_clock::now() + 10s; where.empty(); where = slurp(address)) {
            if (std::chrono::steady_clock::now() > end || !receive_.running())
                throw rmig::Error(cat("rmig tunnel-receive wrote no address (log ", log_prefix.string(), "-receive.log)"));
            std::this_thread::sleep_for(20ms);
        }
        while (!where.empty() && (where.back() == '\n' || where.back() == ' ')) where.pop_back();
        send_ = rmig::Process({rmig_binary(), "tunnel-send", "--unix", from, "--to", where, "--psk-file", psk.string(),
                               "--timeout", "600"},
                              {cat(log_prefix.string(), "-send.log"), "=stdout"});
        for (const auto& p : paths)
            for (auto end = std::chrono::steady_clock::now() + 10s; !fs::exists(p.from);) {
                if (std::chrono::steady_clock::now() > end || !send_.running())
                    throw rmig::Error(cat("rmig tunnel-send did not listen on ", p.from.string(), " (log ",
                                          log_prefix.string(), "-send.log)"));
                std::this_thread::sleep_for(20ms);
            }
    }
    ~RmigTunnelRelay() override {
        send_.stop();
        receive_.stop();
    }

private:
    rmig::Process receive_, send_;
};

// The relays the cases run through.
std::unique_ptr<Relay> start_relay(const std::string& kind, const std::vector<SocketPair>& paths,
                                   const fs::path& log_prefix) {
    if (kind == "socat") return std::make_unique<SocatRelay>(paths, log_prefix);
    if (kind == "rmig-tunnel") return std::make_unique<RmigTunnelRelay>(paths, log_prefix);
    throw rmig::Error(cat("unknown relay '", kind, "'"));
}

// Why a relay cannot run here ("" if it can).
std::string relay_unavailable(const std::string& kind) {
    if (kind != "rmig-tunnel") return "";
    auto help = rmig::wan::run_command({rmig_binary(), "help"}, 10s);
    if (help.output.find("tunnel-send") == std::string::npos)
        return cat(rmig_binary(), " has no tunnel-send subcommand (set RMIG_LIBVIRT_RMIG to an rmig that has)");
    return "";
}

rmig::wan::CommandResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = 30s) {
    return rmig::wan::run_command(argv, timeout);
}

std::string script() { return RMIG_TWO_HOSTS_SCRIPT; }

class LibvirtMigration : public ::testing::TestWithParam<std::string> {
protected:
    static inline std::unique_ptr<Lab> lab_;
    static inline std::string skip_reason_, start_error_;

    static void SetUpTestSuite() {
        if (geteuid() != 0) {
            skip_reason_ = "needs root (namespaces, bind mounts, libvirtd, QEMU as root)";
            return;
        }
        auto probe = run({"unshare", "--mount", "--uts", "--net", "--propagation", "private", "true"});
        if (probe.status != 0) {
            skip_reason_ = cat("this machine refuses new mount/UTS/network namespaces (unshare: ", probe.output,
                               "): libvirtd cannot run as two hosts here");
            return;
        }
        char tmpl[] = "/tmp/rmig-libvirt-XXXXXX";
        if (!mkdtemp(tmpl)) {
            start_error_ = "mkdtemp failed";
            return;
        }
        setenv("RMIG_LIBVIRT_LAB", tmpl, 1);
        setenv("RMIG_LIBVIRT_LIFE", "900", 1);
        auto t0 = std::chrono::steady_clock::now();
        auto started = run({script(), "start"}, 120s);
        if (started.status != 0) {
            start_error_ = cat("two-hosts.sh start exited ", started.status, ": ", started.output,
                               " (logs under ", tmpl, ")");
            return;
        }
        auto env = parse_env(started.output);
        lab_ = std::make_unique<Lab>(Lab{tmpl, env["LIBVIRT_A_URI"], env["LIBVIRT_B_URI"], env["HOST_A_RUN"],
                                         env["HOST_B_RUN"], env["HOST_A_IMAGES"], env["HOST_B_IMAGES"],
                                         env["SHARED_IMAGES"], fs::path(tmpl) / "a/log"});
        std::printf("[ libvirt ] two hosts up in %.1f s under %s\n",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), tmpl);
    }

    static void TearDownTestSuite() {
        if (!lab_) return;
        auto stopped = run({script(), "stop"}, 120s);
        if (stopped.status != 0) std::fprintf(stderr, "two-hosts.sh stop: %s\n", stopped.output.c_str());
        if (!std::getenv("RMIG_KEEP_LAB")) fs::remove_all(lab_->dir);
        lab_.reset();
    }

    void SetUp() override {
        if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
        ASSERT_TRUE(start_error_.empty()) << start_error_;
        ASSERT_TRUE(lab_);
        if (auto why = relay_unavailable(GetParam()); !why.empty()) GTEST_SKIP() << why;
        // Whatever an earlier case left: no domain on either host.
        for (const auto& uri : {lab_->uri_a, lab_->uri_b}) run({"virsh", "-q", "-c", uri, "destroy", kDomain});
    }

    void TearDown() override {
        if (!lab_) return;
        for (const auto& uri : {lab_->uri_a, lab_->uri_b}) run({"virsh", "-q", "-c", uri, "destroy", kDomain});
    }

    std::string virsh_ok(const std::string& uri, std::vector<std::string> args, std::chrono::milliseconds t = 30s) {
        std::vector<std::string> argv{"virsh", "-q", "-c", uri};
        argv.insert(argv.end(), args.begin(), args.end());
        auto r = run(argv, t);
        if (r.status != 0) {
            std::string line;
            for (const auto& a : args) line += a + " ";
            throw rmig::Error(cat("virsh ", line, "on ", uri, " exited ", r.status, ": ", r.output));
        }
        return r.output;
    }

    std::string domstate(const std::string& uri) {
        auto r = run({"virsh", "-q", "-c", uri, "domstate", kDomain});
        if (r.status != 0) return "absent";
        auto s = r.output;
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s;
    }

    fs::path serial_log() const { return lab_->log_a / "qemu/rmig-guest.serial"; }
    std::size_t source_passes() const { return rmig::guest::serial_marker_count(serial_log().string()); }

    // A fresh guest on host A. shared_disk: the disk is one file seen by both
    // hosts (memory-only migrations); else host A's own, and host B gets an
    // empty qcow2 of the same size for --copy-storage-all to fill.
    void boot_guest(bool shared_disk) {
        fs::path disk_dir = shared_disk ? lab_->shared : lab_->images_a;
        fs::remove(lab_->images_b / "rmig-guest.qcow2");
        fs::remove(serial_log());
        fs::path disk = disk_dir / "rmig-guest.qcow2";
        fs::remove(disk);
        auto conv = run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", RMIG_GUEST_DISK_IMAGE, disk.string()});
        ASSERT_EQ(conv.status, 0) << conv.output;
        auto grow = run({"qemu-img", "resize", "-q", disk.string(), "1M"});
        ASSERT_EQ(grow.status, 0) << grow.output;
        if (!shared_disk) {
            auto blank = run({"qemu-img", "create", "-q", "-f", "qcow2",
                              (lab_->images_b / "rmig-guest.qcow2").string(), "1M"});
            ASSERT_EQ(blank.status, 0) << blank.output;
        }
        std::string xml = slurp(RMIG_GUEST_XML);
        if (shared_disk) {
            auto at = xml.find("/var/lib/libvirt/images/");
            ASSERT_NE(at, std::string::npos);
            xml.replace(at, std::string("/var/lib/libvirt/images/").size(), "/var/lib/libvirt/shared/");
        }
        fs::path xml_path = fs::path(lab_->dir) / "guest.xml";
        std::ofstream(xml_path) << xml;
        virsh_ok(lab_->uri_a, {"create", xml_path.string()});
        // Running: passes on the serial log (hundreds per second under TCG).
        for (auto end = std::chrono::steady_clock::now() + 20s; source_passes() < rmig::lab::libvirt::kDiskSlots;) {
            ASSERT_LT(std::chrono::steady_clock::now(), end) << "guest on host A wrote no passes to " << serial_log();
            std::this_thread::sleep_for(50ms);
        }
    }

    // The relay for this case: the migration path, and the disks path too.
    std::unique_ptr<Relay> relay(bool disks) {
        auto on = [](const fs::path& run, const char* p) { return run / fs::path(p).lexically_relative("/run"); };
        std::vector<SocketPair> paths{{on(lab_->run_a, kMigrationPath), on(lab_->run_b, kMigrationPath)}};
        if (disks) paths.push_back({on(lab_->run_a, kDisksPath), on(lab_->run_b, kDisksPath)});
        std::string tag = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        for (auto& c : tag)
            if (c == '/') c = '_';
        return start_relay(GetParam(), paths, fs::path(lab_->dir) / cat("relay-", tag));
    }

    std::vector<std::string> migrate_argv(std::vector<std::string> flags) {
        std::vector<std::string> argv{"virsh", "-q", "-c", lab_->uri_a, "migrate", "--live", "--p2p",
                                      "--migrateuri", cat("unix://", kMigrationPath)};
        argv.insert(argv.end(), flags.begin(), flags.end());
        argv.push_back(kDomain);
        argv.push_back(lab_->uri_b);
        return argv;
    }

    // virsh migrate, timed; fails the test with virsh's words if it fails.
    double migrate(std::vector<std::string> flags) {
        auto t0 = std::chrono::steady_clock::now();
        auto r = run(migrate_argv(std::move(flags)), 100s);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r.status != 0) throw rmig::Error(cat("virsh migrate exited ", r.status, " after ", s, " s: ", r.output));
        return s;
    }

    // After a migration: runs on B, gone from A; B's memory passes the pattern
    // check; with a copied disk, B's disk holds the guest's boot sector and
    // consistent counters newer than the source's last pass.
    void verify_on_destination(bool copied_disk, std::size_t source_last_pass) {
        EXPECT_EQ(domstate(lab_->uri_b), "running");
        EXPECT_EQ(domstate(lab_->uri_a), "absent") << "the source still has the domain";
        std::this_thread::sleep_for(200ms);  // let the destination run some passes of its own
        virsh_ok(lab_->uri_b, {"suspend", kDomain});
        fs::path dump = fs::path(lab_->dir) / "dest-memory.bin";
        fs::remove(dump);
        virsh_ok(lab_->uri_b, {"qemu-monitor-command", kDomain,
                               cat(R"({"execute":"pmemsave","arguments":{"val":0,"size":)", kDumpBytes,
                                   R"(,"filename":")", dump.string(), R"("}})")});
        auto mem = rmig::guest::load_dump(dump.string());
        rmig::guest::PatternOptions po;
        po.require_progress = false;  // progress is known: the source's serial log counted passes
        auto pattern = rmig::guest::check_pattern(mem, po);
        EXPECT_TRUE(pattern.ok) << "destination memory: " << pattern.detail;
        std::printf("[ libvirt ] destination memory: %s\n", pattern.detail.c_str());
        fs::remove(dump);
        if (!copied_disk) return;
        // SIGTERM only: QEMU closes (flushes) its qcow2, so the file is whole.
        virsh_ok(lab_->uri_b, {"destroy", "--graceful", kDomain});
        fs::path raw = fs::path(lab_->dir) / "dest-disk.raw";
        auto conv = run({"qemu-img", "convert", "-O", "raw", (lab_->images_b / "rmig-guest.qcow2").string(),
                         raw.string()});
        ASSERT_EQ(conv.status, 0) << conv.output;
        auto bytes = slurp(raw);
        std::string boot = slurp(RMIG_GUEST_DISK_IMAGE);
        EXPECT_EQ(bytes.substr(0, boot.size()), boot) << "the destination disk lacks the guest's boot sector";
        auto disk = rmig::lab::libvirt::check_disk_slots(std::as_bytes(std::span(bytes.data(), bytes.size())));
        EXPECT_TRUE(disk.ok) << "destination disk: " << disk.detail;
        EXPECT_GT(disk.newest, source_last_pass)
            << "the destination disk has no pass written after the switch-over (newest " << disk.newest
            << ", source's last " << source_last_pass << ")";
        std::printf("[ libvirt ] destination disk: %s (source's last pass %zu)\n", disk.detail.c_str(),
                    source_last_pass);
    }

    void report(const char* what, double seconds) {
        std::printf("[ libvirt ] %s via %s: %.2f s\n", what, GetParam().c_str(), seconds);
        RecordProperty(cat(what, "_seconds"), cat(seconds));
    }
};

TEST_P(LibvirtMigration, MemoryOverUnixSocket) {
    boot_guest(true);
    auto r = relay(false);
    double s = migrate({"--unsafe"});  // the shared disk is a local file system: libvirt calls that unsafe
    report("memory", s);
    verify_on_destination(false, 0);
}

TEST_P(LibvirtMigration, MemoryParallelTwoConnections) {
    boot_guest(true);
    auto r = relay(false);
    double s = migrate({"--unsafe", "--parallel", "--parallel-connections", "2"});
    report("parallel-2", s);
    verify_on_destination(false, 0);
}

TEST_P(LibvirtMigration, CopyStorageAllOverDisksUri) {
    boot_guest(false);
    auto r = relay(true);
    double s = migrate({"--copy-storage-all", "--disks-uri", cat("unix://", kDisksPath)});
    std::size_t last = source_passes();  // the source's serial log ends at the switch-over
    report("copy-storage-all", s);
    verify_on_destination(true, last);
}

TEST_P(LibvirtMigration, AbortLeavesSourceRunningThenRetrySucceeds) {
    boot_guest(true);
    auto r = relay(false);
    // 2 MiB/s: 128 MiB of guest cannot finish before the abort.
    fs::path log = fs::path(lab_->dir) / "aborted-migrate.log";
    rmig::Process slow(migrate_argv({"--unsafe", "--bandwidth", "2"}), {log.string(), "=stdout"});
    // Abort once the job moves data (it is past the destination's prepare).
    bool moving = false;
    for (auto end = std::chrono::steady_clock::now() + 30s; !moving && std::chrono::steady_clock::now() < end;) {
        auto info = run({"virsh", "-q", "-c", lab_->uri_a, "domjobinfo", kDomain});
        moving = info.output.find("Data processed") != std::string::npos &&
                 info.output.find("Data processed:   0.000 B") == std::string::npos;
        if (!moving) std::this_thread::sleep_for(100ms);
    }
    ASSERT_TRUE(moving) << "the slow migration moved no data in 30 s: " << slurp(log);
    auto t0 = std::chrono::steady_clock::now();
    virsh_ok(lab_->uri_a, {"domjobabort", kDomain});
    auto rc = slow.wait_for(30s);
    ASSERT_TRUE(rc.has_value()) << "virsh migrate still running 30 s after domjobabort";
    EXPECT_NE(*rc, 0) << "the aborted migration reported success: " << slurp(log);
    report("abort", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    EXPECT_EQ(domstate(lab_->uri_a), "running") << slurp(log);
    // The destination's half is torn down (bounded: libvirt does it on Finish).
    for (auto end = std::chrono::steady_clock::now() + 20s; domstate(lab_->uri_b) != "absent";) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "host B still has the domain after the abort";
        std::this_thread::sleep_for(100ms);
    }
    std::size_t before = source_passes();
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(source_passes(), before) << "the source guest stopped running after the abort";
    double s = migrate({"--unsafe"});
    report("retry-after-abort", s);
    verify_on_destination(false, 0);
}

INSTANTIATE_TEST_SUITE_P(Relays, LibvirtMigration, ::testing::Values(std::string("socat"), std::string("rmig-tunnel")),
                         [](const auto& relay) {  // test names take no '-'
                             std::string name = relay.param;
                             for (auto& c : name)
                                 if (c == '-') c = '_';
                             return name;
                         });

}  // namespace
