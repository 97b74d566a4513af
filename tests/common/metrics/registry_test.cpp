#include "common/metrics/registry.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "common/error.hpp"

using namespace rmig;
using namespace rmig::metrics;

namespace {

// The value of name{labels} in a snapshot; -1 when absent.
double value_of(const Registry& r, const std::string& name, const Labels& labels) {
    for (const auto& f : r.snapshot())
        if (f.name == name)
            for (const auto& s : f.samples)
                if (s.labels == labels)
                    return std::holds_alternative<uint64_t>(s.value) ? double(std::get<uint64_t>(s.value))
                                                                     : std::get<double>(s.value);
    return -1;
}

}  // namespace

TEST(MetricsRegistry, SameNameAndLabelsIsTheSameSeries) {
    Registry r;
    auto a = r.counter("rmig_x_total", "x", {{"channel", "0"}});
    auto b = r.counter("rmig_x_total", "x", {{"channel", "0"}});
    auto c = r.counter("rmig_x_total", "x", {{"channel", "1"}});
    EXPECT_EQ(a.get(), b.get());
    EXPECT_NE(a.get(), c.get());
    // Label order does not make another series; the first order is what is shown.
    auto d = r.gauge("rmig_g", "g", {{"a", "1"}, {"b", "2"}});
    auto e = r.gauge("rmig_g", "g", {{"b", "2"}, {"a", "1"}});
    EXPECT_EQ(d.get(), e.get());
    EXPECT_EQ(r.snapshot()[0].samples[0].labels, (Labels{{"a", "1"}, {"b", "2"}}));
}

TEST(MetricsRegistry, RefusesBadNamesAndATypeChange) {
    Registry r;
    EXPECT_THROW(r.counter("rmig-x", "x"), Error);
    EXPECT_THROW(r.gauge("rmig_x", "x", {{"__reserved", "1"}}), Error);
    r.counter("rmig_y_total", "y");
    try {
        r.gauge("rmig_y_total", "y");
        FAIL() << "a counter was redeclared as a gauge";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("already a counter"), std::string::npos) << e.what();
    }
}

TEST(MetricsRegistry, CountersOnlyGoUp) {
    Registry r;
    auto c = r.counter("rmig_bytes_total", "b");
    c->inc();
    c->inc(9);
    EXPECT_EQ(c->value(), 10u);
    c->advance_to(100);
    EXPECT_EQ(c->value(), 100u);
    c->advance_to(50);  // a stale total
    EXPECT_EQ(c->value(), 100u);
    auto g = r.gauge("rmig_rate", "r");
    g->set(2.5);
    g->add(-1);
    EXPECT_DOUBLE_EQ(g->value(), 1.5);
}

// Updates from many threads at once lose nothing (atomics, no lock), while
// scrapes run beside them.
TEST(MetricsRegistry, ConcurrentUpdatesAndScrapes) {
    Registry r;
    auto c = r.counter("rmig_hits_total", "h");
    auto g = r.gauge("rmig_level", "l");
    constexpr int kThreads = 4, kEach = 100000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < kEach; ++i) {
                c->inc();
                g->add(1);
            }
        });
    std::thread scraper([&] {
        for (int i = 0; i < 200; ++i) (void)r.expose();
    });
    for (auto& t : threads) t.join();
    scraper.join();
    EXPECT_EQ(c->value(), uint64_t(kThreads) * kEach);
    EXPECT_DOUBLE_EQ(g->value(), double(kThreads) * kEach);
}

TEST(MetricsRegistry, ScopeLabelsEverySeriesAndRemovesThemAtItsEnd) {
    Registry r;
    auto process_wide = r.counter("rmig_migrations_total", "m", {{"role", "tunnel"}});
    process_wide->inc();
    std::shared_ptr<Counter> kept;
    {
        Scope a(r, {{"session", "aa"}, {"role", "tunnel"}});
        Scope b(r, {{"session", "bb"}, {"role", "tunnel"}});
        kept = a.counter("rmig_relay_sent_bytes_total", "s", {{"channel", "0"}});
        kept->inc(5);
        b.counter("rmig_relay_sent_bytes_total", "s", {{"channel", "0"}})->inc(7);
        EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", {{"session", "aa"}, {"role", "tunnel"}, {"channel", "0"}}),
                  5);
        EXPECT_EQ(value_of(r, "rmig_relay_sent_bytes_total", {{"session", "bb"}, {"role", "tunnel"}, {"channel", "0"}}),
                  7);
        EXPECT_THROW(a.gauge("rmig_g", "g", {{"session", "again"}}), Error);  // a label twice
    }
    // Both sessions' series went; the process-wide one stays.
    EXPECT_EQ(r.expose().find("session="), std::string::npos) << r.expose();
    EXPECT_EQ(value_of(r, "rmig_migrations_total", {{"role", "tunnel"}}), 1);
    kept->inc();  // a holder may still update a removed series: harmless
}

TEST(MetricsRegistry, RemoveMatchingDropsOneSessionOnly) {
    Registry r;
    r.gauge("rmig_a", "a", {{"session", "1"}, {"channel", "0"}})->set(1);
    r.gauge("rmig_a", "a", {{"session", "2"}, {"channel", "0"}})->set(2);
    r.gauge("rmig_b", "b", {{"session", "1"}})->set(3);
    EXPECT_EQ(r.remove_matching({{"session", "1"}}), 2u);
    auto families = r.snapshot();
    ASSERT_EQ(families.size(), 1u);  // rmig_b had no series left
    ASSERT_EQ(families[0].samples.size(), 1u);
    EXPECT_EQ(families[0].samples[0].labels, (Labels{{"session", "2"}, {"channel", "0"}}));
}

TEST(MetricsRegistry, StateSetMarksTheCurrentStateOnly) {
    Registry r;
    Scope s(r, {{"session", "x"}});
    StateSet state(s, "rmig_migration_state", "state");
    state.set("setup");
    state.set("active");
    EXPECT_EQ(value_of(r, "rmig_migration_state", {{"session", "x"}, {"state", "setup"}}), 0);
    EXPECT_EQ(value_of(r, "rmig_migration_state", {{"session", "x"}, {"state", "active"}}), 1);
    state.set("completed");
    EXPECT_EQ(value_of(r, "rmig_migration_state", {{"session", "x"}, {"state", "active"}}), 0);
    EXPECT_EQ(value_of(r, "rmig_migration_state", {{"session", "x"}, {"state", "completed"}}), 1);
}
