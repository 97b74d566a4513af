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
    DpdkOptions d;
    d.link_gbps = 100;
    EXPECT_DOUBLE_EQ(parse_uri("net_null0", d).opts.link_gbps, 100);
    EXPECT_NE(error_of("net_memif0,rmig.bogus=1").find("unknown option rmig.bogus"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.loss=0.9").find("rmig.loss=0.9"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.window").find("has no value"), std::string::npos);
    EXPECT_NE(error_of("net_memif0,rmig.queues=17").find("rmig.queues=17"), std::string::npos);
    EXPECT_EQ(parse_uri("net_null0", d).opts.queues, 1u);
    EXPECT_NE(error_of("rmig.window=4").find("names no port"), std::string::npos);
    EXPECT_NE(error_of("10.0.0.1:7000").find("neither a DPDK virtual device"), std::string::npos);
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
