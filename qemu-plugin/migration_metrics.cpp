#include "qemu-plugin/migration_metrics.hpp"

#include <algorithm>
#include <string>

namespace rmig::qemu {

using Clock = std::chrono::steady_clock;

namespace {

// Rates are averaged over at least this long: a 100 ms poll sees bursts.
constexpr std::chrono::seconds kRateWindow{1};

}  // namespace

ChannelMetrics::ChannelMetrics(metrics::Scope& scope) : scope_(scope) {}

ChannelMetrics::Channel& ChannelMetrics::channel(uint32_t number, Clock::time_point now) {
    auto it = channels_.find(number);
    if (it != channels_.end()) return it->second;
    metrics::Labels l{{"channel", std::to_string(number)}};
    Channel c;
    c.sent = scope_.counter("rmig_relay_sent_bytes_total", "Bytes read from QEMU and sent over the link (stream data).", l);
    c.received = scope_.counter("rmig_relay_received_bytes_total",
                                "Bytes received over the link and written to QEMU (stream data).", l);
    c.wire = scope_.counter("rmig_relay_wire_bytes_total",
                            "Segment bytes put on the wire, after compression, resends included.", l);
    c.resent = scope_.counter("rmig_relay_resent_bytes_total",
                              "Segment bytes sent again after a lost connection.", l);
    c.reconnects = scope_.counter("rmig_relay_reconnects_total", "Flows reopened after a lost connection.", l);
    c.packed_in = scope_.counter("rmig_compression_in_bytes_total", "Raw bytes of the segments rmig compressed.", l);
    c.packed_out = scope_.counter("rmig_compression_out_bytes_total",
                                  "What rmig's compressed segments took on the wire.", l);
    c.flows = scope_.gauge("rmig_relay_flows_up", "Connections (flows) carrying the stream now.", l);
    c.rate = scope_.gauge("rmig_relay_rate_bytes_per_second",
                          "Stream bytes moved per second (sent or received), over the last second or more.", l);
    c.rate_at = now;
    return channels_.emplace(number, std::move(c)).first->second;
}

void ChannelMetrics::update(const std::vector<ChannelStats>& streams, Clock::time_point now) {
    for (const auto& s : streams) {
        Channel& c = channel(s.channel, now);
        c.sent->advance_to(s.to_link);
        c.received->advance_to(s.from_link);
        c.wire->advance_to(s.wire);
        c.resent->advance_to(s.resent);
        c.reconnects->advance_to(s.reconnects);
        c.packed_in->advance_to(s.compression.in_bytes);
        c.packed_out->advance_to(s.compression.wire_bytes);
        c.flows->set(s.flows);
        uint64_t moved = s.to_link + s.from_link;
        auto span = std::chrono::duration<double>(now - c.rate_at).count();
        if (now - c.rate_at >= kRateWindow && span > 0) {
            c.rate->set(double(moved - std::min(moved, c.rate_bytes)) / span);
            c.rate_bytes = moved;
            c.rate_at = now;
        }
    }
}

void count_migration(metrics::Registry& registry, const std::string& role, const std::string& outcome) {
    registry.counter("rmig_migrations_total", "Migrations this process finished, by role and outcome.",
                     {{"role", role}, {"outcome", outcome}})
        ->inc();
}

SourceMetrics::SourceMetrics(metrics::Registry& registry, std::string role)
    : registry_(registry), role_(std::move(role)) {}

SourceMetrics::~SourceMetrics() = default;

void SourceMetrics::start(const std::string& session) {
    if (scope_ && session == session_) return;
    session_ = session;
    state_.reset();
    channels_.reset();
    scope_ = std::make_unique<metrics::Scope>(registry_, metrics::Labels{{"session", session}, {"role", role_}});
    auto& s = *scope_;
    channels_ = std::make_unique<ChannelMetrics>(s);
    state_ = std::make_unique<metrics::StateSet>(
        s, "rmig_migration_state", "1 for the migration's state now (QEMU's status on the source), 0 for the others.");
    transferred_ = s.counter("rmig_qemu_transferred_bytes_total", "RAM bytes the source QEMU sent (query-migrate).");
    multifd_ = s.counter("rmig_qemu_multifd_bytes_total", "Of those, bytes QEMU sent over its multifd channels.");
    rounds_ = s.counter("rmig_qemu_dirty_sync_rounds_total",
                        "QEMU's dirty-bitmap syncs (dirty_sync_count): the pre-copy rounds begun.");
    postcopy_requests_ = s.counter("rmig_qemu_postcopy_requests_total",
                                   "Pages the destination faulted on and asked for after the switch to post-copy.");
    errors_ = s.counter("rmig_migration_errors_total", "Failures of the migration (0 or 1 for one session).");
    remaining_ = s.gauge("rmig_qemu_remaining_bytes", "RAM bytes QEMU still has to send in this round.");
    ram_ = s.gauge("rmig_qemu_ram_bytes", "The guest's RAM as QEMU migrates it.");
    dirty_rate_ = s.gauge("rmig_qemu_dirty_rate_bytes_per_second",
                          "How fast the guest dirties memory, as QEMU measured at its last sync.");
    throughput_ = s.gauge("rmig_qemu_throughput_bytes_per_second", "QEMU's own migration throughput figure.");
    expected_downtime_ = s.gauge("rmig_qemu_expected_downtime_seconds",
                                 "QEMU's estimate of the switchover downtime from what is left.");
    throttle_ = s.gauge("rmig_qemu_cpu_throttle_percent",
                        "How much QEMU's auto-converge slows the guest's vCPUs now, in percent.");
    converging_ = s.gauge("rmig_migration_converging",
                          "1 while rmig forecasts that pre-copy fits the blackout budget soon; 0 while not, "
                          "and before it has measured the rates.");
    forecast_ = s.gauge("rmig_migration_forecast_switchover_seconds",
                        "rmig's forecast of the time until QEMU switches over, while converging.");
    elapsed_ = s.gauge("rmig_migration_elapsed_seconds", "Time since the migration started.");
    channels_up_ = s.gauge("rmig_channels_up", "QEMU streams (main and multifd) relayed now.");
    channels_expected_ = s.gauge("rmig_channels_expected", "QEMU streams the migration will have.");
}

void SourceMetrics::update(const Progress& p) {
    start(p.session);
    const MigrationStats& q = p.qemu;
    state_->set(q.status.empty() ? "none" : q.status);
    transferred_->advance_to(q.ram_transferred);
    multifd_->advance_to(q.multifd_bytes);
    rounds_->advance_to(q.dirty_sync_count);
    postcopy_requests_->advance_to(q.postcopy_requests);
    remaining_->set(double(q.ram_remaining));
    ram_->set(double(q.ram_total));
    dirty_rate_->set(double(q.dirty_pages_rate) * double(q.page_size ? q.page_size : 4096));
    throughput_->set(q.mbps * 1e6 / 8);
    expected_downtime_->set(double(q.expected_downtime_ms) / 1000);
    throttle_->set(p.convergence.throttle_percent);
    if (p.convergence.known) {
        converging_->set(p.convergence.converging ? 1 : 0);
        if (p.convergence.forecast_s >= 0) forecast_->set(p.convergence.forecast_s);
    }
    elapsed_->set(p.elapsed_s);
    channels_up_->set(p.channels_up);
    channels_expected_->set(p.channels);
    channels_->update(p.streams);
}

void SourceMetrics::finish(const SourceReport& r) {
    start(r.session);
    auto& s = *scope_;
    state_->set(to_string(r.outcome));
    transferred_->advance_to(r.final_stats.ram_transferred);
    multifd_->advance_to(r.final_stats.multifd_bytes);
    rounds_->advance_to(r.final_stats.dirty_sync_count);
    if (r.final_stats.status == "completed") remaining_->set(0);
    elapsed_->set(r.wall_s);
    channels_->update(r.channels);
    if (r.outcome != Outcome::completed) errors_->inc();
    s.counter("rmig_control_reopened_total", "Control connections lost and reopened within the grace.")
        ->advance_to(r.control_reopened);
    if (r.final_stats.downtime_ms)
        s.gauge("rmig_qemu_downtime_seconds", "QEMU's own downtime figure (until the source's last byte).")
            ->set(double(r.final_stats.downtime_ms) / 1000);
    if (r.blackout.ms)
        s.gauge("rmig_blackout_seconds", "The guest's real blackout: source STOP to destination RESUME.")
            ->set(*r.blackout.ms / 1000);
    if (r.blackout.stop_to_loaded_ms)
        s.gauge("rmig_blackout_stop_to_loaded_seconds", "Source STOP to the destination QEMU having loaded the guest.")
            ->set(*r.blackout.stop_to_loaded_ms / 1000);
    count_migration(registry_, role_, to_string(r.outcome));
}

DestMetrics::DestMetrics(metrics::Registry& registry, std::string role)
    : registry_(registry), role_(std::move(role)) {}

DestMetrics::~DestMetrics() = default;

void DestMetrics::start(const std::string& session) {
    if (scope_ && session == session_) return;
    session_ = session;
    state_.reset();
    channels_.reset();
    scope_ = std::make_unique<metrics::Scope>(registry_, metrics::Labels{{"session", session}, {"role", role_}});
    auto& s = *scope_;
    channels_ = std::make_unique<ChannelMetrics>(s);
    state_ = std::make_unique<metrics::StateSet>(
        s, "rmig_migration_state", "1 for the migration's state now (QEMU's status on the source), 0 for the others.");
    errors_ = s.counter("rmig_migration_errors_total", "Failures of the migration (0 or 1 for one session).");
    elapsed_ = s.gauge("rmig_migration_elapsed_seconds", "Time since the migration started.");
    channels_up_ = s.gauge("rmig_channels_up", "QEMU streams (main and multifd) relayed now.");
}

void DestMetrics::update(const DestProgress& p) {
    start(p.session);
    state_->set("receiving");
    elapsed_->set(p.elapsed_s);
    channels_up_->set(double(p.streams.size()));
    channels_->update(p.streams);
}

void DestMetrics::finish(const DestReport& r) {
    start(r.session);
    state_->set(r.ok ? "completed" : "failed");
    if (!r.ok) errors_->inc();
    count_migration(registry_, role_, r.ok ? "completed" : "failed");
}

namespace {

metrics::Labels session_labels(const std::string& session, const std::string& role, const metrics::Labels& extra) {
    metrics::Labels l{{"session", session}, {"role", role}};
    l.insert(l.end(), extra.begin(), extra.end());
    return l;
}

}  // namespace

RelaySessionMetrics::RelaySessionMetrics(metrics::Registry& registry, std::string role, const std::string& session,
                                         const metrics::Labels& extra)
    : registry_(registry),
      role_(std::move(role)),
      scope_(registry, session_labels(session, role_, extra)),
      channels_(scope_),
      state_(scope_, "rmig_migration_state",
             "1 for the migration's state now (QEMU's status on the source), 0 for the others.") {
    errors_ = scope_.counter("rmig_migration_errors_total", "Failures of the migration (0 or 1 for one session).");
    elapsed_ = scope_.gauge("rmig_migration_elapsed_seconds", "Time since the migration started.");
    channels_up_ = scope_.gauge("rmig_channels_up", "QEMU streams (main and multifd) relayed now.");
    state_.set("relaying");
}

void RelaySessionMetrics::update(const std::vector<ChannelStats>& streams, double elapsed_s) {
    elapsed_->set(elapsed_s);
    channels_up_->set(double(streams.size()));
    channels_.update(streams);
}

void RelaySessionMetrics::finish(bool ok, const std::vector<ChannelStats>& streams, double elapsed_s) {
    update(streams, elapsed_s);
    if (finished_) return;
    finished_ = true;
    state_.set(ok ? "completed" : "failed");
    if (!ok) errors_->inc();
    count_migration(registry_, role_, ok ? "completed" : "failed");
}

}  // namespace rmig::qemu
