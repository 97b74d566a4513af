// dpdk: URIs (device arguments + rmig.* options) and the EAL arguments rmig
// derives from them; no EAL is started here.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.hpp"
#include "transport/dpdk/dpdk_uri.hpp"
#include "transport/dpdk/eal.hpp"

using namespace rmig;
using namespace rmig::transport;
using namespace rmig::transport::dpdk;

namespace {
bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}
std::string error_of(const std::string& rest) {
    try {
        parse_uri(rest, {});
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}
}  // namespace

TEST(DpdkUri, SplitsDeviceArgumentsFromRmigOptions) {
    auto u = parse_uri("net_memif0,role=server,rmig.window=512,socket=/tmp/s,rmig.loss=0.01,"
                       "rmig.mtu=9000,rmig.peer=02:00:00:00:00:01,rmig.queues=4",
                       {});
    EXPECT_EQ(u.devargs, "net_memif0,role=server,socket=/tmp/s");
    EXPECT_EQ(u.port_name, "net_memif0");
    EXPECT_TRUE(u.is_vdev());
    EXPECT_EQ(u.opts.window_segments, 512u);
    EXPECT_DOUBLE_EQ(u.opts.tx_loss, 0.01);
    EXPECT_EQ(u.opts.mtu, 9000u);
    EXPECT_EQ(u.opts.queues, 4u);
    EXPECT_EQ(u.peer_mac, "02:00:00:00:00:01");
    auto p = parse_uri("0000:3b:00.0", {});
    EXPECT_FALSE(p.is_vdev());
    EXPECT_EQ(p.port_name, "0000:3b:00.0");
}

TEST(DpdkUri, DefaultsComeFromOptionsAndBadInputIsNamed) {
    BackendSettings d;
    d.set("dpdk-gbps", 100);
    EXPECT_DOUBLE_EQ(parse_uri("net_null0", d).opts.link_gbps, 100);
    EXPECT_DOUBLE_EQ(parse_uri("net_null0,rmig.gbps=2.5", d).opts.link_gbps, 2.5);  // the URI wins
    EXPECT_NE(error_of("net_memif0,rmig.bogus=1").find("unknown option rmig.bogus"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.loss=0.9").find("rmig.loss=0.9"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.window").find("has no value"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.queues=17").find("rmig.queues=17"), std::string::npos);
    EXPECT_EQ(parse_uri("net_null0", d).opts.queues, 1u);
    EXPECT_NE(error_of("rmig.window=4").find("names no port"), std::string::npos);
    EXPECT_NE(error_of("10.0.0.1:7000").find("neither a DPDK virtual device"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.mtu=64").find("give 0 (the port's) or 128"), std::string::npos);
}

// The URI keys are the backend table's numeric options (plus its own): the
// same defaults as --dpdk-*, and every table option has a key.
TEST(DpdkUri, KeysComeFromTheBackendTable) {
    auto u = parse_uri("net_null0", {});
    DpdkOptions defaults;
    EXPECT_EQ(u.opts.window_segments, defaults.window_segments);
    EXPECT_DOUBLE_EQ(u.opts.link_gbps, defaults.link_gbps);
    EXPECT_DOUBLE_EQ(u.opts.rtt_us, defaults.rtt_us);
    EXPECT_EQ(u.opts.mtu, defaults.mtu);
    EXPECT_EQ(u.opts.queues, defaults.queues);
    auto all = parse_uri("net_null0,rmig.window=64,rmig.gbps=25,rmig.rtt_us=0.5,rmig.mtu=9000,rmig.queues=2,"
                         "rmig.pace_gbps=5",
                         {});
    EXPECT_EQ(all.opts.window_segments, 64u);
    EXPECT_DOUBLE_EQ(all.opts.link_gbps, 25);
    EXPECT_DOUBLE_EQ(all.opts.rtt_us, 0.5);
    EXPECT_EQ(all.opts.mtu, 9000u);
    EXPECT_EQ(all.opts.queues, 2u);
    EXPECT_DOUBLE_EQ(all.opts.pace_gbps, 5);
    auto msg = error_of("net_memif0,rmig.bogus=1");
    for (auto key : {"window", "gbps", "rtt_us", "mtu", "queues", "pace_gbps", "loss", "peer"})
        EXPECT_NE(msg.find(key), std::string::npos) << key << ": " << msg;
    EXPECT_EQ(msg.find("eal"), std::string::npos) << msg;  // EAL arguments hold commas: not a URI key
}

TEST(EalArguments, DefaultsKeepProcessesApartAndNeverScanAllPci) {
    unsetenv("RMIG_DPDK_EAL_ARGS");
    auto vdev = eal_arguments("", true);
    EXPECT_TRUE(has(vdev, "--no-pci"));
    EXPECT_TRUE(has(vdev, "-l"));  // one lcore
    EXPECT_TRUE(has(vdev, "--no-telemetry"));
    bool private_memory = has(vdev, "--in-memory") || has(vdev, "--no-shconf");
    EXPECT_TRUE(private_memory);
    auto pci = eal_arguments("", false, "0000:3b:00.0");
    EXPECT_FALSE(has(pci, "--no-pci"));
    EXPECT_TRUE(has(pci, "0000:3b:00.0"));  // -a: only that device
    // Given arguments are used as they are, with our lcore/telemetry defaults only if absent.
    auto given = eal_arguments("-l 1 --vdev=net_null0", true);
    EXPECT_TRUE(has(given, "--vdev=net_null0"));
    EXPECT_FALSE(has(given, "--no-pci"));
    EXPECT_EQ(std::count(given.begin(), given.end(), "-l"), 1);
    setenv("RMIG_DPDK_EAL_ARGS", "--in-memory -l 0", 1);
    EXPECT_TRUE(has(eal_arguments("", true), "--in-memory"));
    unsetenv("RMIG_DPDK_EAL_ARGS");
}
