// `rmig report`, run as the real binary on reports written the way
// `rmig migrate --json` writes them (SourceReport::to_json): the summary, the
// plot (a well-formed SVG with the three series, the rounds and the
// switchover, or a PNG), and each error's exit code and message.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "cli/report_command.hpp"
#include "common/temp_dir.hpp"
#include "lab/wan/command.hpp"
#include "qemu-plugin/migrate_source.hpp"

using namespace rmig;
using nlohmann::json;

namespace {

// A 256 MiB guest migrated in 4 rounds over 3 s: remaining falls each round,
// QEMU's dirty-sync count steps at 0.8 s, 1.6 s and 2.4 s, the guest stops
// at 2.9 s for 85.25 ms.
json realistic_report() {
    qemu::SourceReport r;
    r.outcome = qemu::Outcome::completed;
    r.session = "0123456789abcdef0123456789abcdef";
    r.settings.multifd_channels = 2;
    r.settings.downtime_limit_ms = 300;
    r.compression = engine::CompressionMode::lz4;
    r.final_stats.status = "completed";
    r.final_stats.total_time_ms = 3050;
    r.final_stats.downtime_ms = 40;
    r.final_stats.ram_total = 256ull << 20;
    r.final_stats.ram_transferred = 400ull << 20;
    r.final_stats.dirty_sync_count = 4;
    r.blackout.ms = 85.25;
    r.blackout.stop_to_loaded_ms = 80.0;
    r.blackout.uncertainty_ms = 0.04;
    r.wall_s = 3.4;
    for (uint32_t i = 0; i < 3; ++i) {
        qemu::ChannelStats c;
        c.channel = i;
        c.to_link = 140ull << 20;
        c.wire = 70ull << 20;
        c.reconnects = i == 1 ? 2 : 0;
        c.compression.in_bytes = 140ull << 20;
        c.compression.wire_bytes = 70ull << 20;
        r.channels.push_back(c);
    }
    for (int poll = 0; poll <= 30; ++poll) {
        double t = 0.1 * poll;
        qemu::MigrationStats st;
        st.status = poll == 30 ? "completed" : "active";
        st.ram_total = 256ull << 20;
        st.dirty_sync_count = 1 + uint64_t(poll / 8);
        st.ram_remaining = poll == 30 ? 0 : (256ull << 20) >> (st.dirty_sync_count - 1);
        st.ram_transferred = uint64_t(t * 130e6);
        st.dirty_pages_rate = 20000;
        st.page_size = 4096;
        st.mbps = 1000 + 10 * poll;
        r.timeline.add(qemu::timeline_sample(t, st, uint64_t(t * 140e6)));
    }
    r.timeline.set_switchover_stop(2.9);
    return r.to_json();
}

class ReportCommand : public ::testing::Test {
protected:
    std::string file(const std::string& name) { return dir_.path() + "/" + name; }
    std::string write(const std::string& name, const std::string& text) {
        std::ofstream(file(name)) << text;
        return file(name);
    }
    std::string write(const std::string& name, const json& j) { return write(name, j.dump(2)); }
    static wan::CommandResult rmig(std::vector<std::string> args) {
        args.insert(args.begin(), RMIG_BINARY_PATH);
        return wan::run_command(args, std::chrono::seconds(60));
    }
    static std::string slurp(const std::string& path) {
        std::stringstream ss;
        ss << std::ifstream(path, std::ios::binary).rdbuf();
        return ss.str();
    }

    TempDir dir_{"rmig-report-test"};
};

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_F(ReportCommand, SummarizesAReport) {
    auto r = rmig({"report", write("r.json", realistic_report())});
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("outcome      completed\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("total time   3.05 s (QEMU), 3.40 s wall"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("blackout     85.25 ms (guest stopped -> resumed on the destination, +/- 0.04 ms"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("QEMU's downtime 40 ms; limit 300 ms"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("guest RAM 256.00 MiB, QEMU sent 400.00 MiB; over the link 420.00 MiB (210.00 MiB on the wire)"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("rounds       4 "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("compression  lz4, wire/raw 0.500"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("reconnects   2 flows, 0 control"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("timeline     31 samples from 0.00 s to 3.00 s, switchover at 2.90 s"), std::string::npos)
        << r.output;
}

TEST_F(ReportCommand, JsonSummary) {
    auto r = rmig({"report", write("r.json", realistic_report()), "--json"});
    ASSERT_EQ(r.status, 0) << r.output;
    json s = json::parse(r.output, nullptr, false);
    ASSERT_TRUE(s.is_object()) << r.output;
    EXPECT_EQ(s["outcome"], "completed");
    EXPECT_EQ(s["blackout_ms"].get<double>(), 85.25);
    EXPECT_EQ(s["rounds"].get<int>(), 4);
    EXPECT_EQ(s["link_bytes"].get<uint64_t>(), 420ull << 20);
    EXPECT_EQ(s["compression"]["ratio"].get<double>(), 0.5);
    EXPECT_EQ(s["reconnects"].get<int>(), 2);
    EXPECT_EQ(s["timeline"]["samples"].get<int>(), 31);
}

TEST_F(ReportCommand, PlotsAnSvgWithTheSeriesTheRoundsAndTheSwitchover) {
    std::string svg = file("plot.svg");
    auto r = rmig({"report", write("r.json", realistic_report()), "--plot", svg});
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("plot         " + svg), std::string::npos) << r.output;
    auto lint = wan::run_command({"xmllint", "--noout", svg});
    EXPECT_EQ(lint.status, 0) << "not well-formed XML: " << lint.output;
    std::string text = slurp(svg);
    EXPECT_NE(text.find("<svg"), std::string::npos);
    for (const char* series : {"throughput (QEMU, MB/s)", "dirty rate (MB/s)", "remaining (MiB, right axis)"})
        EXPECT_NE(text.find(series), std::string::npos) << "no " << series << " in the SVG";
    // Three rounds after the first: a label each (and a dashed line).
    for (const char* round : {">round 2<", ">round 3<", ">round 4<"})
        EXPECT_EQ(count(text, round), 1u) << round;
    EXPECT_EQ(count(text, ">round 5<"), 0u);
    EXPECT_NE(text.find("switchover: blackout 85"), std::string::npos);
    // Each series is a drawn line: the three plot groups hold paths.
    EXPECT_GE(count(text, "<path"), 3u);
}

TEST_F(ReportCommand, PlotsAPngWhenTheNameSaysSo) {
    std::string png = file("plot.png");
    auto r = rmig({"report", write("r.json", realistic_report()), "--plot", png});
    ASSERT_EQ(r.status, 0) << r.output;
    std::string bytes = slurp(png);
    ASSERT_GT(bytes.size(), 1000u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

TEST_F(ReportCommand, MissingFile) {
    auto r = rmig({"report", file("nope.json")});
    EXPECT_EQ(r.status, cli::kReportUnreadable) << r.output;
    EXPECT_NE(r.output.find("cannot read " + file("nope.json") + ": No such file or directory"), std::string::npos)
        << r.output;
}

TEST_F(ReportCommand, NotJson) {
    auto r = rmig({"report", write("bad.json", std::string("outcome: completed\n"))});
    EXPECT_EQ(r.status, cli::kReportUnreadable) << r.output;
    EXPECT_NE(r.output.find("is not JSON"), std::string::npos) << r.output;
}

TEST_F(ReportCommand, NotAnRmigReport) {
    auto r = rmig({"report", write("receive.json", json{{"ok", true}, {"final_state", "running"}})});
    EXPECT_EQ(r.status, cli::kReportUnreadable) << r.output;
    EXPECT_NE(r.output.find("is not an rmig migrate report"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("rmig receive's"), std::string::npos) << r.output;
    r = rmig({"report", write("list.json", json::array({1, 2}))});
    EXPECT_EQ(r.status, cli::kReportUnreadable) << r.output;
    EXPECT_NE(r.output.find("is not an rmig migrate report"), std::string::npos) << r.output;
}

TEST_F(ReportCommand, AnOlderReportWithoutTimelineIsSummarizedButNotPlotted) {
    json old = realistic_report();
    old.erase("timeline");
    std::string path = write("old.json", old);
    auto r = rmig({"report", path});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("timeline     none"), std::string::npos) << r.output;
    r = rmig({"report", path, "--plot", file("old.svg")});
    EXPECT_EQ(r.status, cli::kReportNoTimeline) << r.output;
    EXPECT_NE(r.output.find("outcome      completed"), std::string::npos) << "the summary comes first: " << r.output;
    EXPECT_NE(r.output.find("has no timeline: it was written by an rmig from before timelines"), std::string::npos)
        << r.output;
    EXPECT_FALSE(std::filesystem::exists(file("old.svg")));
}

TEST_F(ReportCommand, ARefusedMigrationHasNothingToPlot) {
    qemu::SourceReport refused;
    refused.outcome = qemu::Outcome::refused;
    refused.error = "pre-migration checks failed: RAM size";
    auto r = rmig({"report", write("refused.json", refused.to_json()), "--plot", file("refused.svg")});
    EXPECT_EQ(r.status, cli::kReportNoTimeline) << r.output;
    EXPECT_NE(r.output.find("outcome      refused: pre-migration checks failed: RAM size"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("no samples: the migration never started"), std::string::npos) << r.output;
}

TEST_F(ReportCommand, GnuplotMissing) {
    // Only gnuplot's lookup sees this PATH; rmig itself is named by its path.
    auto r = wan::run_command({"env", "PATH=" + dir_.path(), RMIG_BINARY_PATH, "report",
                               write("r.json", realistic_report()), "--plot", file("x.svg")});
    EXPECT_EQ(r.status, cli::kReportPlotFailed) << r.output;
    EXPECT_NE(r.output.find("gnuplot is not installed"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("apt install gnuplot-nox"), std::string::npos) << r.output;
}

TEST_F(ReportCommand, UnwritableOutput) {
    auto r = rmig({"report", write("r.json", realistic_report()), "--plot", file("no-such-dir/x.svg")});
    EXPECT_EQ(r.status, cli::kReportPlotFailed) << r.output;
    EXPECT_NE(r.output.find("cannot write the plot to " + file("no-such-dir/x.svg")), std::string::npos) << r.output;
}

TEST_F(ReportCommand, BadArgumentsAndHelp) {
    auto r = rmig({"report"});
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_NE(r.output.find("expected the report FILE.json"), std::string::npos) << r.output;
    r = rmig({"report", "a.json", "b.json"});
    EXPECT_EQ(r.status, 2) << r.output;
    r = rmig({"report", "a.json", "--plott", "x.svg"});
    EXPECT_EQ(r.status, 2) << r.output;
    r = rmig({"report", "--help"});
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("usage: rmig report FILE.json"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--plot OUT.svg|OUT.png"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("apt install gnuplot-nox"), std::string::npos) << r.output;
    r = rmig({"help"});
    EXPECT_NE(r.output.find("report"), std::string::npos) << r.output;
}
