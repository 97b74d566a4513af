#include "qemu-plugin/migration_metrics.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

using namespace rmig;
using namespace rmig::qemu;
using namespace std::chrono_literals;

namespace {

double value_of(const metrics::Registry& r, const std::string& name, const metrics::Labels& labels) {
    for (const auto& f : r.snapshot())
        if (f.name == name)
            for (const auto& s : f.samples)
                if (s.labels == labels)
                    return std::holds_alternative<uint64_t>(s.value) ? double(std::get<uint64_t>(s.value))
                                                                     : std::get<double>(s.value);
    return -1;
}

ChannelStats stream(uint32_t n, uint64_t sent) {
    ChannelStats c;
    c.channel = n;
    c.to_link = sent;
    c.wire = sent / 2;
    c.flows = 1;
    c.compression.in_bytes = sent;
    c.compression.wire_bytes = sent / 2;
    return c;
}

Progress progress(uint64_t transferred, std::vector<ChannelStats> streams) {
    Progress p;
    p.session = "00ff";
    p.qemu.status = "active";
    p.qemu.ram_transferred = transferred;
    p.qemu.ram_remaining = 1000;
    p.qemu.ram_total = 4096 * 1000;
    p.qemu.dirty_pages_rate = 10;
    p.qemu.page_size = 4096;
    p.qemu.dirty_sync_count = 2;
    p.qemu.mbps = 80;
    p.channels = p.channels_up = static_cast<uint32_t>(streams.size());
    p.streams = std::move(streams);
    p.elapsed_s = 1.5;
    return p;
}

const metrics::Labels kSession{{"session", "00ff"}, {"role", "source"}};

metrics::Labels with(metrics::Labels l, const metrics::Labels& more) {
    l.insert(l.end(), more.begin(), more.end());
    return l;
}

}  // namespace

TEST(MigrationMetrics, SourceProgressBecomesSessionAndChannelSeries) {
    metrics::Registry r;
    {
        SourceMetrics m(r);
        m.update(progress(5000, {stream(0, 100), stream(1, 200)}));
        EXPECT_EQ(value_of(r, "rmig_qemu_transferred_bytes_total", kSession), 5000);
        EXPECT_EQ(value_of(r, "rmig_qemu_remaining_bytes", kSession), 1000);
        EXPECT_EQ(value_of(r, "rmig_qemu_dirty_rate_bytes_per_second", kSession), 40960);
        EXPECT_EQ(value_of(r, "rmig_qemu_throughput_bytes_per_second", kSession), 10e6);
        EXPECT_EQ(value_of(r, "rmig_qemu_dirty_sync_rounds_total", kSession), 2);
        EXPECT_EQ(value_of(r, "rmig_migration_state", with(kSession, {{"state", "active"}})), 1);
        EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", with(kSession, {{"channel", "1"}})), 200);
        EXPECT_EQ(value_of(r, "rmig_compression_out_bytes_total", with(kSession, {{"channel", "1"}})), 100);
        EXPECT_EQ(value_of(r, "rmig_relay_flows_up", with(kSession, {{"channel", "0"}})), 1);
        EXPECT_EQ(value_of(r, "rmig_migration_converging", kSession), 0) << "not measured yet";
        // rmig's convergence view, as the source's poll loop fills it.
        Progress p = progress(6000, {stream(0, 100), stream(1, 200)});
        p.convergence = {.known = true, .converging = true, .forecast_s = 2.5, .throttle_percent = 40};
        m.update(p);
        EXPECT_EQ(value_of(r, "rmig_migration_converging", kSession), 1);
        EXPECT_DOUBLE_EQ(value_of(r, "rmig_migration_forecast_switchover_seconds", kSession), 2.5);
        EXPECT_EQ(value_of(r, "rmig_qemu_cpu_throttle_percent", kSession), 40);
        // After the switch to post-copy: QEMU's state, and the pages faulted on.
        p.qemu.status = "postcopy-active";
        p.qemu.postcopy_requests = 17;
        m.update(p);
        EXPECT_EQ(value_of(r, "rmig_migration_state", with(kSession, {{"state", "postcopy-active"}})), 1);
        EXPECT_EQ(value_of(r, "rmig_qemu_postcopy_requests_total", kSession), 17);

        SourceReport done;
        done.outcome = Outcome::completed;
        done.session = "00ff";
        done.final_stats.status = "completed";
        done.final_stats.ram_transferred = 9000;
        done.final_stats.downtime_ms = 120;
        done.blackout.ms = 250.0;
        done.channels = {stream(0, 150), stream(1, 300)};
        m.finish(done);
        EXPECT_EQ(value_of(r, "rmig_migration_state", with(kSession, {{"state", "active"}})), 0);
        EXPECT_EQ(value_of(r, "rmig_migration_state", with(kSession, {{"state", "completed"}})), 1);
        EXPECT_EQ(value_of(r, "rmig_qemu_transferred_bytes_total", kSession), 9000);
        EXPECT_EQ(value_of(r, "rmig_qemu_remaining_bytes", kSession), 0);
        EXPECT_DOUBLE_EQ(value_of(r, "rmig_blackout_seconds", kSession), 0.25);
        EXPECT_DOUBLE_EQ(value_of(r, "rmig_qemu_downtime_seconds", kSession), 0.12);
        EXPECT_EQ(value_of(r, "rmig_migration_errors_total", kSession), 0);
        EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", with(kSession, {{"channel", "1"}})), 300);
    }
    // The session's series end with it; the process-wide tally stays.
    EXPECT_EQ(r.expose().find("00ff"), std::string::npos) << r.expose();
    EXPECT_EQ(value_of(r, "rmig_migrations_total", {{"role", "source"}, {"outcome", "completed"}}), 1);
}

TEST(MigrationMetrics, ChannelRateIsTakenOverASecondOrMore) {
    metrics::Registry r;
    metrics::Scope scope(r, {{"session", "s"}});
    ChannelMetrics m(scope);
    auto t0 = std::chrono::steady_clock::now();
    m.update({stream(0, 0)}, t0);
    m.update({stream(0, 1000)}, t0 + 100ms);  // too soon for a rate
    EXPECT_EQ(value_of(r, "rmig_relay_rate_bytes_per_second", {{"session", "s"}, {"channel", "0"}}), 0);
    m.update({stream(0, 4000)}, t0 + 2s);
    EXPECT_DOUBLE_EQ(value_of(r, "rmig_relay_rate_bytes_per_second", {{"session", "s"}, {"channel", "0"}}), 2000);
    // A counter never goes back, even when a stale figure comes in.
    m.update({stream(0, 10)}, t0 + 2100ms);
    EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", {{"session", "s"}, {"channel", "0"}}), 4000);
}

TEST(MigrationMetrics, DestinationAndFailuresAreCounted) {
    metrics::Registry r;
    DestMetrics d(r);
    DestProgress p{"00ff", {}, 0.5};
    ChannelStats c;
    c.channel = 0;
    c.from_link = 777;
    p.streams.push_back(c);
    d.update(p);
    const metrics::Labels dest{{"session", "00ff"}, {"role", "destination"}};
    EXPECT_EQ(value_of(r, "rmig_relay_received_bytes_total", with(dest, {{"channel", "0"}})), 777);
    EXPECT_EQ(value_of(r, "rmig_migration_state", with(dest, {{"state", "receiving"}})), 1);
    DestReport failed;
    failed.session = "00ff";
    d.finish(failed);
    EXPECT_EQ(value_of(r, "rmig_migration_errors_total", dest), 1);
    EXPECT_EQ(value_of(r, "rmig_migration_state", with(dest, {{"state", "failed"}})), 1);
    EXPECT_EQ(value_of(r, "rmig_migrations_total", {{"role", "destination"}, {"outcome", "failed"}}), 1);
}

// A tunnel's sessions side by side: each its own series with its own labels,
// gone when its object goes; the tally stays.
TEST(MigrationMetrics, RelaySessionsOfALongLivedServiceComeAndGo) {
    metrics::Registry r;
    auto a = std::make_unique<RelaySessionMetrics>(r, "tunnel-send", "aa", metrics::Labels{{"socket", "vm1"}});
    auto b = std::make_unique<RelaySessionMetrics>(r, "tunnel-send", "bb", metrics::Labels{{"socket", "vm2"}});
    const metrics::Labels la{{"session", "aa"}, {"role", "tunnel-send"}, {"socket", "vm1"}};
    const metrics::Labels lb{{"session", "bb"}, {"role", "tunnel-send"}, {"socket", "vm2"}};
    a->update({stream(1, 10), stream(2, 20)}, 1.0);
    b->update({stream(1, 5)}, 0.5);
    EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", with(la, {{"channel", "2"}})), 20);
    EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", with(lb, {{"channel", "1"}})), 5);
    EXPECT_EQ(value_of(r, "rmig_channels_up", la), 2);
    EXPECT_EQ(value_of(r, "rmig_migration_state", with(la, {{"state", "relaying"}})), 1);
    a->finish(true, {stream(1, 15), stream(2, 30)}, 2.0);
    a->finish(true, {stream(1, 15), stream(2, 30)}, 2.0);  // counted once
    EXPECT_EQ(value_of(r, "rmig_migration_state", with(la, {{"state", "completed"}})), 1);
    EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", with(la, {{"channel", "1"}})), 15);
    a.reset();
    EXPECT_EQ(r.expose().find("session=\"aa\""), std::string::npos) << r.expose();
    EXPECT_NE(r.expose().find("session=\"bb\""), std::string::npos) << r.expose();
    b->finish(false, {}, 3.0);
    EXPECT_EQ(value_of(r, "rmig_migration_errors_total", lb), 1);
    b.reset();
    EXPECT_EQ(value_of(r, "rmig_migrations_total", {{"role", "tunnel-send"}, {"outcome", "completed"}}), 1);
    EXPECT_EQ(value_of(r, "rmig_migrations_total", {{"role", "tunnel-send"}, {"outcome", "failed"}}), 1);
}
