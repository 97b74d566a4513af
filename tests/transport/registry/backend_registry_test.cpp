// transport/backend.hpp: every backend describes itself (scheme, URI form,
// summary, option table), the generated list holds them all, URIs are routed
// by it, and BackendSettings are checked against the tables and read by the
// backends with their own defaults.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <thread>

#include "common/args.hpp"
#include "common/error.hpp"
#include "tests/support/channel_pair.hpp"
#include "transport/backend.hpp"
#include "transport/channel.hpp"
#include "transport/dpdk/dpdk_backend.hpp"
#include "transport/rdma/rdma_backend.hpp"

using namespace rmig;
using namespace rmig::transport;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no error)";
}

}  // namespace

TEST(BackendRegistry, ListsEveryBackendOfTheTreeTcpFirstAndCompiledIn) {
    auto list = backends();
    ASSERT_GE(list.size(), 3u);
    EXPECT_EQ(list[0].description->scheme, "tcp");
    EXPECT_TRUE(list[0].compiled_in());
    std::set<std::string_view> schemes;
    for (const auto& b : list) {
        const auto& d = *b.description;
        EXPECT_TRUE(schemes.insert(d.scheme).second) << d.scheme << " twice";
        EXPECT_EQ(d.uri.substr(0, d.scheme.size() + 1), std::string(d.scheme) + ":") << d.uri;
        EXPECT_FALSE(d.summary.empty()) << d.scheme;
        EXPECT_FALSE(d.build_hint.empty()) << d.scheme;
        EXPECT_EQ(b.listen == nullptr, b.connect == nullptr) << d.scheme;
        EXPECT_EQ(find_backend(d.scheme), &b);
    }
    EXPECT_TRUE(schemes.count("rdma") && schemes.count("dpdk"));  // described even where not compiled in
    EXPECT_EQ(find_backend("ucx"), nullptr);
#ifdef RMIG_HAVE_RDMA
    EXPECT_TRUE(find_backend("rdma")->compiled_in());
#else
    EXPECT_FALSE(find_backend("rdma")->compiled_in());
#endif
#ifdef RMIG_HAVE_DPDK
    EXPECT_TRUE(find_backend("dpdk")->compiled_in());
#else
    EXPECT_FALSE(find_backend("dpdk")->compiled_in());
#endif
}

// Names are "<scheme>-...", unique over all backends (they share the command
// line and the profiles), and every default is a value the table accepts.
TEST(BackendRegistry, EachTableIsWellFormedWithDefaultsInRange) {
    std::set<std::string_view> names;
    for (const auto& b : backends()) {
        const auto& d = *b.description;
        for (const auto& o : d.options.options) {
            EXPECT_EQ(o.name.substr(0, d.scheme.size() + 1), std::string(d.scheme) + "-") << o.name;
            EXPECT_TRUE(names.insert(o.name).second) << o.name << " twice";
            EXPECT_FALSE(o.help.empty()) << o.name;
            EXPECT_FALSE(o.required) << o.name << ": a backend option has a default";
            EXPECT_EQ(backend_of_option(o.name), &b) << o.name;
            if (o.kind == OptionKind::text || o.kind == OptionKind::flag) continue;
            EXPECT_LE(o.min, o.number_default) << o.name;
            EXPECT_GE(o.max, o.number_default) << o.name;
            EXPECT_NO_THROW(check_option_value(o, default_text(o))) << o.name << " " << default_text(o);
        }
    }
    EXPECT_TRUE(names.count("rdma-slots") && names.count("rdma-slot-size") && names.count("dpdk-queues"));
    size_t groups = 0;
    for (const auto& b : backends()) groups += b.description->options.options.empty() ? 0 : 1;
    EXPECT_EQ(backend_option_groups().size(), groups);
}

// The tables' defaults are the typed structs' (stated once), and a setting
// reaches the struct.
TEST(BackendRegistry, SettingsBecomeTheBackendsTypedOptions) {
    BackendSettings none;
    rdma::RdmaOptions rd;
    EXPECT_EQ(rdma::rdma_options(none).ring_slots, rd.ring_slots);
    EXPECT_EQ(rdma::rdma_options(none).slot_bytes, rd.slot_bytes);
    dpdk::DpdkOptions dd;
    auto d = dpdk::dpdk_options(none);
    EXPECT_EQ(d.eal_args, dd.eal_args);
    EXPECT_EQ(d.window_segments, dd.window_segments);
    EXPECT_DOUBLE_EQ(d.link_gbps, dd.link_gbps);
    EXPECT_DOUBLE_EQ(d.rtt_us, dd.rtt_us);
    EXPECT_EQ(d.mtu, dd.mtu);
    EXPECT_EQ(d.queues, dd.queues);

    BackendSettings s;
    s.set("rdma-slots", 32);
    s.set("rdma-slot-size", "1M");
    s.set("dpdk-eal", "--no-huge -m 512");
    s.set("dpdk-gbps", 2.5);
    s.set("dpdk-queues", "4");
    EXPECT_EQ(rdma::rdma_options(s).ring_slots, 32u);
    EXPECT_EQ(rdma::rdma_options(s).slot_bytes, 1u << 20);
    EXPECT_EQ(dpdk::dpdk_options(s).eal_args, "--no-huge -m 512");
    EXPECT_DOUBLE_EQ(dpdk::dpdk_options(s).link_gbps, 2.5);
    EXPECT_EQ(dpdk::dpdk_options(s).queues, 4u);
}

TEST(BackendRegistry, SettingsAreCheckedAgainstTheTables) {
    BackendSettings s;
    auto msg = error_of([&] { s.set("rdma-turbo", "1"); });
    EXPECT_NE(msg.find("'rdma-turbo' is not an option of any transport backend"), std::string::npos) << msg;
    EXPECT_NE(msg.find("rdma-slots"), std::string::npos) << msg;
    EXPECT_THROW(s.set("rdma-slots", 1), UsageError);  // below the table's 2
    msg = error_of([&] { s.set("dpdk-queues", "17", "profile x.json: "); });
    EXPECT_NE(msg.find("profile x.json: --dpdk-queues 17 is out of range"), std::string::npos) << msg;
    EXPECT_THROW(s.set("rdma-slot-size", "lots"), UsageError);
    EXPECT_TRUE(s.empty());  // nothing refused was kept
}

TEST(BackendRegistry, UnknownSchemeListsTheCompiledInOnes) {
    wire::Hello h;
    for (const auto& uri : {"ucx:10.0.0.1:7000", "verbs:host:7000"}) {
        auto msg = error_of([&] { connect(uri, h); });
        EXPECT_NE(msg.find("is unknown: this rmig has " + compiled_in_schemes()), std::string::npos) << msg;
        for (const auto& b : backends()) {
            if (b.compiled_in()) {
                EXPECT_NE(msg.find(b.description->uri), std::string::npos) << msg;
            }
        }
        EXPECT_NE(error_of([&] { listen(uri); }).find("is unknown"), std::string::npos);
    }
    EXPECT_EQ(compiled_in_schemes().substr(0, 3), "tcp");
    // Not schemes: a bare HOST:PORT and a bare IPv6 address are tcp's.
    EXPECT_EQ(error_of([] { listen("localhost:99999"); }).find("is unknown"), std::string::npos);
    EXPECT_EQ(error_of([] { listen("fe80::1:99999"); }).find("is unknown"), std::string::npos);
    for (const auto& b : backends()) {
        if (!b.compiled_in()) {
            auto msg = error_of([&] { listen(std::string(b.description->scheme) + ":x:1"); });
            EXPECT_NE(msg.find(cat("transport '", b.description->scheme, "' is not built into this rmig")),
                      std::string::npos)
                << msg;
            EXPECT_NE(msg.find(b.description->build_hint), std::string::npos) << msg;
            EXPECT_NE(msg.find("it has " + compiled_in_schemes()), std::string::npos) << msg;
        }
    }
}

// A setting for a backend other than the URI's is carried and ignored (a
// profile tunes every backend of the hardware it describes).
TEST(BackendRegistry, OtherBackendsSettingsAreIgnored) {
    Options o;
    o.tuning.set("rdma-slots", 64);
    o.tuning.set("dpdk-queues", 8);
    std::unique_ptr<test::ChannelPair> pair;
    ASSERT_NO_THROW(pair = std::make_unique<test::ChannelPair>("tcp:127.0.0.1:0", o));
    auto& client = pair->src;
    auto& server = pair->dst;
    ASSERT_TRUE(client && server);
    client->send(wire::FrameType::data, {});
    std::vector<std::byte> got;
    EXPECT_EQ(server->recv(got), wire::FrameType::data);
}
