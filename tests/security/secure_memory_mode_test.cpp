// Memory mode (engine/memory) with security on both sides, over tcp loopback:
// the engine's code is unchanged, only the configs' security context is set.
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
#include "tests/support/anon_mapping.hpp"
#include "tests/support/memory_dest_start.hpp"

using namespace rmig;
using namespace rmig::engine;
using namespace std::chrono_literals;

namespace {

constexpr size_t kSize = 32u << 20;

struct Mapping : test::AnonMapping {
    Mapping() : AnonMapping(kSize) {}
};

std::shared_ptr<security::Context> psk(unsigned char v) {
    security::Config c;
    c.psk.assign(32, v);
    return security::Context::create(c);
}

struct Dest {
    std::stop_source stop;
    MemoryDestConfig cfg;
    std::future<MemoryDestResult> result;
    std::string address;

    Dest(Mapping& dst, std::shared_ptr<security::Context> key) {
        cfg.stop = stop.get_token();
        cfg.regions = {Region{dst.data(), kSize, 0, "ram"}};
        cfg.listen_uri = "tcp:127.0.0.1:0";
        cfg.timeout = 30s;
        cfg.step_timeout = 10s;
        cfg.security = std::move(key);
        cfg.transport.handshake_timeout = std::chrono::milliseconds(3000);
        address = test::start_receiving(cfg, result);
    }
};

struct Source {
    MemorySourceResult result;
    bool resumed = false;
};

Source run_source(Mapping& src, const std::string& to, std::shared_ptr<security::Context> key) {
    Source o;
    MemorySourceConfig sc;
    sc.regions = {Region{src.data(), kSize, 0, "ram"}};
    sc.dest_uri = to;
    sc.workers = 2;
    sc.convergence.downtime_budget_ms = 1e6;  // switch over after the full round
    sc.step_timeout = 10s;
    sc.security = std::move(key);
    sc.transport.handshake_timeout = std::chrono::milliseconds(3000);
    sc.pause = [] { return std::vector<std::byte>(16, std::byte{7}); };
    sc.on_failure_resume = [&] { o.resumed = true; };
    o.result = migrate_memory(sc);
    return o;
}

void fill(Mapping& m) {
    std::mt19937_64 rng(7);
    for (size_t i = 0; i < kSize / 2; i += 8) {  // half random, half zero pages
        uint64_t v = rng();
        std::memcpy(m.data() + i, &v, 8);
    }
}

}  // namespace

TEST(SecureMemoryMode, EncryptedMigrationArrivesByteForByte) {
    Mapping src, dst;
    fill(src);
    auto key = psk(3);
    Dest dest(dst, key);
    Source o = run_source(src, dest.address, key);
    MemoryDestResult d = dest.result.get();
    ASSERT_TRUE(o.result.ok) << o.result.error;
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(d.device_state, std::vector<std::byte>(16, std::byte{7}));
    EXPECT_EQ(std::memcmp(src.data(), dst.data(), kSize), 0);
}

TEST(SecureMemoryMode, WrongKeyIsTurnedAwayAndTheRealSourceStillMigrates) {
    Mapping src, dst;
    fill(src);
    Dest dest(dst, psk(3));
    Source stranger = run_source(src, dest.address, psk(4));
    EXPECT_FALSE(stranger.result.ok);
    EXPECT_NE(stranger.result.error.find("authentication failed"), std::string::npos) << stranger.result.error;
    EXPECT_FALSE(stranger.result.paused);
    for (size_t i = 0; i < kSize; i += 4096) ASSERT_EQ(dst.data()[i], std::byte{0}) << "page " << i / 4096;

    Source real = run_source(src, dest.address, psk(3));
    MemoryDestResult d = dest.result.get();
    ASSERT_TRUE(real.result.ok) << real.result.error;
    ASSERT_TRUE(d.ok) << d.error;
    EXPECT_EQ(std::memcmp(src.data(), dst.data(), kSize), 0);
}
