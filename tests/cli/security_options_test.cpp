// The command-line security policy: credentials required, plaintext only on
// loopback and only when asked for.
#include <gtest/gtest.h>

#include "cli/security_options.hpp"
#include "common/temp_dir.hpp"
#include "security/policy.hpp"

using namespace rmig;
using namespace rmig::cli;

namespace {

// A command of the URI option and the security group, as migrate and receive list it.
const OptionSpec kTo[] = {{.name = "to", .metavar = "URI"}};
const ProgramSpec& program() {
    static const ProgramSpec p{"rmig", {{"migrate", "", "", "", {{"", kTo}, security::settings_options()}}}};
    return p;
}

Args args(std::vector<std::string> v) { return Args(v, program(), program().commands[0]); }

std::string usage_error(const std::vector<std::string>& v, const std::string& uri) {
    try {
        security_from_args(args(v), uri, "--to");
    } catch (const UsageError& e) {
        return e.what();
    }
    return "(accepted)";
}

}  // namespace

TEST(SecurityOptions, LoopbackAddresses) {
    EXPECT_TRUE(security::is_loopback_uri("tcp:127.0.0.1:7070"));
    EXPECT_TRUE(security::is_loopback_uri("127.0.0.9:0"));
    EXPECT_TRUE(security::is_loopback_uri("tcp:[::1]:7070"));
    EXPECT_TRUE(security::is_loopback_uri("tcp:localhost:1"));
    EXPECT_FALSE(security::is_loopback_uri("tcp:0.0.0.0:7070"));
    EXPECT_FALSE(security::is_loopback_uri("tcp:10.0.0.2:7070"));
    EXPECT_FALSE(security::is_loopback_uri("rdma:10.11.12.1:0"));
    EXPECT_FALSE(security::is_loopback_uri("tcp:127host:1"));
}

TEST(SecurityOptions, NoCredentialsIsAUsageErrorThatSaysWhatToPass) {
    auto msg = usage_error({}, "tcp:10.0.0.2:7070");
    EXPECT_NE(msg.find("--psk-file"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("--insecure-plaintext"), std::string::npos) << msg;
    msg = usage_error({}, "tcp:127.0.0.1:7070");
    EXPECT_NE(msg.find("--insecure-plaintext"), std::string::npos) << msg;
}

TEST(SecurityOptions, PlaintextOnlyOnLoopback) {
    EXPECT_EQ(security_from_args(args({"--insecure-plaintext"}), "tcp:127.0.0.1:1", "--to"), nullptr);
    auto msg = usage_error({"--insecure-plaintext"}, "tcp:192.168.1.4:7070");
    EXPECT_NE(msg.find("only on loopback"), std::string::npos) << msg;
    EXPECT_NE(usage_error({"--insecure-plaintext", "--no-encrypt"}, "tcp:127.0.0.1:1"), "(accepted)");
}

TEST(SecurityOptions, PskFileMakesAContext) {
    TempDir dir("rmig-cli-psk");
    std::string key = dir.path() + "/key.psk";
    security::write_random_psk_file(key);
    auto ctx = security_from_args(args({"--psk-file", key, "--psk-identity", "site-a", "--no-encrypt"}),
                                  "tcp:10.0.0.2:7070", "--to");
    ASSERT_TRUE(ctx);
    EXPECT_FALSE(ctx->encrypt());
    EXPECT_EQ(ctx->config().psk_identity, "site-a");
    EXPECT_EQ(ctx->config().psk.size(), 32u);
    EXPECT_NE(usage_error({"--psk-file", dir.path() + "/missing"}, "tcp:10.0.0.2:1").find("cannot read"),
              std::string::npos);
    EXPECT_NE(usage_error({"--psk-file", key, "--tls-ca", key}, "tcp:10.0.0.2:1"), "(accepted)");
    EXPECT_NE(usage_error({"--tls-cert", key}, "tcp:10.0.0.2:1"), "(accepted)");  // key and CA missing
    EXPECT_THROW(security::write_random_psk_file(key), Error);                    // never overwrites
}
