// /metrics of real `rmig migrate` and `rmig receive` processes, scraped in
// the middle of a real QEMU migration (the lab's test guest, bandwidth capped
// until the scrapes are taken): each scrape passes Prometheus' own
// checker (promtool check metrics), and the byte counters grow between two
// scrapes. docs/metrics.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "common/error.hpp"
#include "common/socket.hpp"
#include "lab/local_pair.hpp"
#include "tests/support/http_get.hpp"

using namespace rmig;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

std::string promtool() {
#ifdef RMIG_PROMTOOL
    if (std::filesystem::exists(RMIG_PROMTOOL)) return RMIG_PROMTOOL;
#endif
    return std::filesystem::exists("/usr/bin/promtool") ? "/usr/bin/promtool" : "";
}

uint16_t free_port() {
    UniqueFd fd = net::tcp_listen(net::parse_host_port("127.0.0.1:0"));
    return net::local_port(fd.get());
}

// One sample line: name, its labels as written, value.
struct Line {
    std::string name, labels;
    double value = 0;
};

std::vector<Line> parse(const std::string& body) {
    std::vector<Line> out;
    std::istringstream in(body);
    for (std::string l; std::getline(in, l);) {
        if (l.empty() || l[0] == '#') continue;
        Line s;
        auto brace = l.find('{'), space = l.rfind(' ');
        s.name = l.substr(0, std::min(brace, space));
        if (brace != std::string::npos) s.labels = l.substr(brace, l.rfind('}') - brace + 1);
        s.value = std::stod(l.substr(space + 1));
        out.push_back(s);
    }
    return out;
}

// Sum of `name` over the series whose labels contain `has`.
double sum(const std::vector<Line>& lines, const std::string& name, const std::string& has = "") {
    double total = 0;
    for (const auto& l : lines)
        if (l.name == name && l.labels.find(has) != std::string::npos) total += l.value;
    return total;
}

size_t count(const std::vector<Line>& lines, const std::string& name) {
    size_t n = 0;
    for (const auto& l : lines) n += l.name == name;
    return n;
}

// promtool's verdict on a scrape: "" when it passes, else what it said.
std::string promtool_check(const std::string& tool, const std::string& body, const std::string& dir,
                           const std::string& tag) {
    std::string file = cat(dir, "/scrape-", tag, ".txt"), said = file + ".promtool";
    std::ofstream(file) << body;
    int rc = std::system(cat(tool, " check metrics < ", file, " > ", said, " 2>&1").c_str());
    if (rc == 0) return "";
    std::stringstream out;
    out << std::ifstream(said).rdbuf();
    return cat("promtool check metrics exited ", rc, ": ", out.str(), " (scrape in ", file, ")");
}

}  // namespace

TEST(MetricsE2E, ScrapedMidMigrationFromMigrateAndReceive) {
    std::string tool = promtool();
    if (tool.empty())
        GTEST_SKIP() << "promtool is not installed (Debian package prometheus; scripts/deps.sh installs it): "
                        "nothing to check the scrapes with";
    std::string src_addr = cat("127.0.0.1:", free_port()), dst_addr = cat("127.0.0.1:", free_port());
    lab::LocalPair pair;
    lab::RmigRun run;
    run.settings.multifd_channels = 2;
    // 16 MiB/s: the guest rewrites ~100 MiB over and over, so the migration
    // cannot converge at this rate within the 300 ms limit and goes on until
    // the test lifts the cap (below), after its scrapes.
    run.settings.max_bandwidth = 16ull << 20;
    run.extra_args = {"--metrics", src_addr};
    run.receive_extra_args = {"--metrics", dst_addr};
    auto migration = std::async(std::launch::async, [&] { return pair.migrate_rmig(run); });

    // Once the streams move, both sides have their session's series.
    std::vector<Line> src1, dst1;
    std::string src_body1, dst_body1;
    auto until = Clock::now() + 60s;
    while (Clock::now() < until && migration.wait_for(0s) != std::future_status::ready) {
        try {
            src_body1 = test::http_get(src_addr).body;
            dst_body1 = test::http_get(dst_addr).body;
        } catch (const std::exception&) {
            std::this_thread::sleep_for(100ms);  // not listening yet
            continue;
        }
        src1 = parse(src_body1);
        dst1 = parse(dst_body1);
        if (sum(src1, "rmig_relay_sent_bytes_total") > 0 && sum(dst1, "rmig_relay_received_bytes_total") > 0) break;
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_GT(sum(src1, "rmig_relay_sent_bytes_total"), 0) << "no bytes seen in time; last scrape:\n" << src_body1;
    ASSERT_GT(sum(dst1, "rmig_relay_received_bytes_total"), 0) << dst_body1;
    std::this_thread::sleep_for(1500ms);
    std::string src_body2, dst_body2;
    try {
        src_body2 = test::http_get(src_addr).body;
        dst_body2 = test::http_get(dst_addr).body;
    } catch (const std::exception& e) {
        pair.keep();
        lab::RunResult r = migration.get();
        FAIL() << "second scrape: " << e.what() << "; the migration ended before it (exit " << r.exit_code << ", "
               << r.wall_ms << " ms: " << r.error << "); see " << pair.dir() << "\nfirst scrape:\n" << src_body1;
    }
    auto src2 = parse(src_body2), dst2 = parse(dst_body2);

    // Still mid-migration at the second scrape: QEMU is sending.
    EXPECT_EQ(sum(src2, "rmig_migration_state", "state=\"active\""), 1) << src_body2;
    EXPECT_EQ(sum(dst2, "rmig_migration_state", "state=\"receiving\""), 1) << dst_body2;
    for (const auto& [tag, body] : {std::pair{"migrate-1", src_body1}, {"migrate-2", src_body2},
                                    {"receive-1", dst_body1}, {"receive-2", dst_body2}})
        EXPECT_EQ(promtool_check(tool, body, pair.dir(), tag), "") << body;

    // The counters grew between the scrapes, QEMU's and the relay's, both sides.
    EXPECT_GT(sum(src2, "rmig_relay_sent_bytes_total"), sum(src1, "rmig_relay_sent_bytes_total"));
    EXPECT_GT(sum(src2, "rmig_qemu_transferred_bytes_total"), sum(src1, "rmig_qemu_transferred_bytes_total"));
    EXPECT_GT(sum(dst2, "rmig_relay_received_bytes_total"), sum(dst1, "rmig_relay_received_bytes_total"));
    // Per channel: main (1) + 2 multifd (2, 3), on both sides, labelled by session and role.
    EXPECT_EQ(count(src2, "rmig_relay_sent_bytes_total"), 3u) << src_body2;
    EXPECT_EQ(count(dst2, "rmig_relay_received_bytes_total"), 3u) << dst_body2;
    EXPECT_NE(src_body2.find("role=\"source\",channel=\"1\""), std::string::npos) << src_body2;
    EXPECT_NE(dst_body2.find("role=\"destination\",channel=\"3\""), std::string::npos) << dst_body2;
    EXPECT_GT(sum(src2, "rmig_qemu_remaining_bytes"), 0) << src_body2;
    EXPECT_GT(sum(src2, "rmig_qemu_ram_bytes"), 100e6) << src_body2;
    EXPECT_GE(sum(src2, "rmig_qemu_dirty_sync_rounds_total"), 1) << src_body2;
    EXPECT_GT(sum(src2, "rmig_relay_rate_bytes_per_second"), 0) << src_body2;
    EXPECT_LT(sum(src2, "rmig_relay_rate_bytes_per_second"), 64e6) << "over the 16 MiB/s cap?\n" << src_body2;
    EXPECT_EQ(sum(src2, "rmig_channels_up"), 3) << src_body2;

    // The same session on both sides.
    auto session_of = [](const std::string& body) {
        auto at = body.find("session=\"");
        return at == std::string::npos ? std::string() : body.substr(at + 9, body.find('"', at + 9) - at - 9);
    };
    EXPECT_FALSE(session_of(src_body2).empty());
    EXPECT_EQ(session_of(src_body2), session_of(dst_body2));

    // Lift the cap on the source QEMU: the migration converges and ends.
    pair.source().qmp().execute("migrate-set-parameters", {{"max-bandwidth", 10ull << 30}});
    lab::RunResult r = migration.get();
    ASSERT_TRUE(r.ok) << "exit " << r.exit_code << ": " << r.error << " (see " << pair.dir() << ")";
    EXPECT_EQ(r.receive_exit_code, 0);
    lab::VerifyResult v = pair.verify();
    EXPECT_TRUE(v.ok) << v.detail;
    // The exporters went with their processes.
    EXPECT_THROW(test::http_get(src_addr), std::exception);
}
