// Memory mode (engine/memory) with security on both sides, over tcp loopback:
// the engine's code is unchanged, only transport::Options::security is set.
// An encrypted migration arrives byte for byte; a source with the wrong key
// gets nothing into the destination and is never paused.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>
#include <future>
#include <random>

#include "common/error.hpp"
#include "engine/memory/memory_dest.hpp"
#include "engine/memory/memory_source.hpp"
#include "security/context.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kSize = 32u << 20;

struct Mapping {
    std::byte* p;
    Mapping() {
        void* m = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) throw_errno("mmap");
        p = static_cast<std::byte*>(m);
    }
    ~Mapping() { munmap(p, kSize); }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
};

std::shared_ptr<security::Context> psk(unsigned char v) {
    security::Config c;
    c.psk.assign(32, v);
    return security::Context::create(c);
}

struct Outcome {
    MemorySourceResult src;
    MemoryDestResult dst;
    bool resumed = false;
};

Outcome migrate(Mapping& src, Mapping& dst, std::shared_ptr<security::Context> src_key,
                std::shared_ptr<security::Context> dst_key) {
    std::stop_source stop;
    MemoryDestConfig dc;
    dc.stop = stop.get_token();
    dc.regions = {Region{dst.p, kSize, 0, "ram"}};
    dc.listen_uri = "tcp:127.0.0.1:0";
    dc.timeout = 30s;
    dc.step_timeout = 10s;
    dc.transport.security = std::move(dst_key);
    dc.transport.handshake_timeout = std::chrono::milliseconds(3000);
    std::promise<std::string> listening;
    auto addr = listening.get_future();
    dc.on_listening = [&listening](const std::string& a) { listening.set_value(a); };
    auto dest = std::async(std::launch::async, [&] { return receive_memory(dc); });
    if (addr.wait_for(10s) != std::future_status::ready) throw Error("destination did not listen");

    Outcome o;
    MemorySourceConfig sc;
    sc.regions = {Region{src.p, kSize, 0, "ram"}};
    sc.dest_uri = addr.get();
    sc.workers = 2;
    sc.convergence.downtime_budget_ms = 1e6;  // switch over after the full round
    sc.step_timeout = 10s;
    sc.transport.security = std::move(src_key);
    sc.transport.handshake_timeout = std::chrono::milliseconds(3000);
    sc.pause = [] { return std::vector<std::byte>(16, std::byte{7}); };
    sc.on_failure_resume = [&] { o.resumed = true; };
    o.src = migrate_memory(sc);
    if (!o.src.ok) stop.request_stop();
    o.dst = dest.get();
    return o;
}

}  // namespace

TEST(SecureMemoryMode, EncryptedMigrationArrivesByteForByte) {
    Mapping src, dst;
    std::mt19937_64 rng(7);
    for (size_t i = 0; i < kSize / 2; i += 8) {  // half random, half zero pages
        uint64_t v = rng();
        std::memcpy(src.p + i, &v, 8);
    }
    auto key = psk(3);
    Outcome o = migrate(src, dst, key, key);
    ASSERT_TRUE(o.src.ok) << o.src.error;
    ASSERT_TRUE(o.dst.ok) << o.dst.error;
    EXPECT_EQ(o.dst.device_state, std::vector<std::byte>(16, std::byte{7}));
    EXPECT_EQ(std::memcmp(src.p, dst.p, kSize), 0);
}

TEST(SecureMemoryMode, WrongKeyMovesNothingAndNeverPausesTheSource) {
    Mapping src, dst;
    std::memset(src.p, 0x5a, kSize);
    Outcome o = migrate(src, dst, psk(3), psk(4));
    EXPECT_FALSE(o.src.ok);
    EXPECT_NE(o.src.error.find("authentication"), std::string::npos) << o.src.error;
    EXPECT_FALSE(o.src.paused);
    EXPECT_FALSE(o.dst.ok);
    for (size_t i = 0; i < kSize; i += 4096) ASSERT_EQ(dst.p[i], std::byte{0}) << "page " << i / 4096;
}
