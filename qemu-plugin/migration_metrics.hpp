// A migration's figures as Prometheus metrics (common/metrics/), fed from
// what channel mode already gathers: the source's progress polls (Progress),
// the destination's (DestProgress), each stream's ChannelStats, and the final
// reports. Nothing here touches the relay's data path. docs/metrics.md lists
// every metric.
//
// Every series of a session carries the labels session (its id in hex) and
// role (source, destination, or a caller's own, e.g. tunnel); per-stream
// series add channel (the QEMU connection number: 1 main, 2.. multifd;
// 0 is the control channel, which carries no stream).
// The series live as long as the object that made them: a long-lived
// service makes one per session and destroys it when the session is over;
// rmig_migrations_total (by role and outcome) stays for the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/metrics/registry.hpp"
#include "qemu-plugin/migrate_source.hpp"
#include "qemu-plugin/receive_dest.hpp"
#include "qemu-plugin/striped_stream.hpp"

namespace rmig::qemu {

// One session's per-stream relay figures, for any role.
class ChannelMetrics {
public:
    explicit ChannelMetrics(metrics::Scope& scope);
    // The streams' stats as StreamGroup::stats() gives them; call from one
    // thread at a time (a poll loop). Rates are taken over at least a second.
    void update(const std::vector<ChannelStats>& streams,
                std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

private:
    struct Channel {
        std::shared_ptr<metrics::Counter> sent, received, wire, resent, reconnects, packed_in, packed_out;
        std::shared_ptr<metrics::Gauge> flows, rate;
        uint64_t rate_bytes = 0;  // at rate_at
        std::chrono::steady_clock::time_point rate_at;
    };
    Channel& channel(uint32_t number, std::chrono::steady_clock::time_point now);

    metrics::Scope& scope_;
    std::map<uint32_t, Channel> channels_;
};

// Counts a finished migration in rmig_migrations_total{role, outcome}: the
// process-wide tally that outlives the sessions' own series.
void count_migration(metrics::Registry& registry, const std::string& role, const std::string& outcome);

// `rmig migrate`'s metrics: update() from migrate()'s progress callback,
// finish() with its report.
class SourceMetrics {
public:
    explicit SourceMetrics(metrics::Registry& registry = metrics::process_registry(), std::string role = "source");
    ~SourceMetrics();
    void update(const Progress& p);
    void finish(const SourceReport& r);

private:
    void start(const std::string& session);

    metrics::Registry& registry_;
    std::string role_;
    std::string session_;
    std::unique_ptr<metrics::Scope> scope_;
    std::unique_ptr<ChannelMetrics> channels_;
    std::unique_ptr<metrics::StateSet> state_;
    std::shared_ptr<metrics::Counter> transferred_, multifd_, rounds_, postcopy_requests_, errors_;
    std::shared_ptr<metrics::Gauge> remaining_, ram_, dirty_rate_, throughput_, expected_downtime_, elapsed_,
        channels_up_, channels_expected_, throttle_, converging_, forecast_;
};

// `rmig receive`'s metrics: update() from DestOptions::on_progress, finish()
// with its report.
class DestMetrics {
public:
    explicit DestMetrics(metrics::Registry& registry = metrics::process_registry(),
                         std::string role = "destination");
    ~DestMetrics();
    void update(const DestProgress& p);
    void finish(const DestReport& r);

private:
    void start(const std::string& session);

    metrics::Registry& registry_;
    std::string role_;
    std::string session_;
    std::unique_ptr<metrics::Scope> scope_;
    std::unique_ptr<ChannelMetrics> channels_;
    std::unique_ptr<metrics::StateSet> state_;
    std::shared_ptr<metrics::Counter> errors_;
    std::shared_ptr<metrics::Gauge> elapsed_, channels_up_;
};

// A relay session without QMP of its own (rmig tunnel: the management stack
// drives QEMU): its streams, state (relaying, then completed or failed),
// elapsed time, errors, and its outcome in rmig_migrations_total. Make one
// when a session starts, update() it from the session's poll (one thread),
// finish() it at the end, destroy it when its series should leave the scrape.
// `extra` labels go on every series after session and role (e.g.
// {{"socket", "vm1"}}: which VM's socket).
class RelaySessionMetrics {
public:
    RelaySessionMetrics(metrics::Registry& registry, std::string role, const std::string& session,
                        const metrics::Labels& extra = {});
    void update(const std::vector<ChannelStats>& streams, double elapsed_s);
    void finish(bool ok, const std::vector<ChannelStats>& streams, double elapsed_s);

private:
    metrics::Registry& registry_;
    std::string role_;
    metrics::Scope scope_;
    ChannelMetrics channels_;
    metrics::StateSet state_;
    std::shared_ptr<metrics::Counter> errors_;
    std::shared_ptr<metrics::Gauge> elapsed_, channels_up_;
    bool finished_ = false;
};

}  // namespace rmig::qemu
