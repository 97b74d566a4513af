#include "cli/progress_display.hpp"

#include <unistd.h>

#include <cstring>
#include <string>

#include "common/error.hpp"
#include "common/units.hpp"

namespace rmig::cli {

ProgressMode progress_mode(const std::string& flag) {
    if (flag == "none") return ProgressMode::none;
    if (flag == "line") return ProgressMode::line;
    if (flag == "tty") return ProgressMode::tty;
    return ::isatty(STDERR_FILENO) ? ProgressMode::tty : ProgressMode::line;
}

void ProgressDisplay::update(const qemu::Progress& p) {
    if (mode_ == ProgressMode::none) return;
    auto now = std::chrono::steady_clock::now();
    auto interval = mode_ == ProgressMode::tty ? std::chrono::milliseconds(200)
                                               : std::chrono::milliseconds(1000);
    bool final_state = p.qemu.status == "completed" || p.qemu.status == "failed" ||
                       p.qemu.status == "cancelled";
    if (now - last_ < interval && !final_state) return;
    last_ = now;
    if (p.elapsed_s > last_t_) rate_ = double(p.relay_bytes - last_bytes_) / (p.elapsed_s - last_t_);
    last_bytes_ = p.relay_bytes;
    last_t_ = p.elapsed_s;
    const auto& q = p.qemu;
    double dirty = double(q.dirty_pages_rate) * double(q.page_size ? q.page_size : 4096);
    char line[256];
    std::snprintf(line, sizeof line,
                  "%6.1fs %-9s sent %10s  %11s  round %2llu  dirty %11s  remaining %10s  ch %u/%u",
                  p.elapsed_s, q.status.c_str(), format_bytes(double(p.relay_bytes)).c_str(),
                  format_rate(rate_).c_str(), static_cast<unsigned long long>(q.dirty_sync_count),
                  format_rate(dirty).c_str(), format_bytes(double(q.ram_remaining)).c_str(),
                  p.channels_up, p.channels);
    std::string extra;
    // Compressed: what the wire carried for the segments coded so far.
    if (p.packed_in && p.packed_wire < p.packed_in)
        extra += cat("  wire x", std::to_string(double(p.packed_wire) / double(p.packed_in)).substr(0, 4));
    if (p.reconnects) extra += cat("  reconnects ", p.reconnects);
    // Whether pre-copy converges, once rmig has measured the rates.
    const auto& c = p.convergence;
    if (c.known)
        extra += c.converging ? (c.forecast_s > 0 ? cat("  converging, switchover ~", format_millis(c.forecast_s * 1000))
                                                  : std::string("  converging"))
                              : std::string("  not converging");
    if (c.throttle_percent) extra += cat("  throttle ", c.throttle_percent, "%");
    // Post-copy: the guest runs on the destination; pages it touched first.
    if (q.status == "postcopy-active") extra += cat("  faulted pages ", q.postcopy_requests);
    std::strncat(line, extra.c_str(), sizeof line - std::strlen(line) - 1);
    if (mode_ == ProgressMode::tty) {
        std::fprintf(out_, "\r%s\033[K", line);
        drawn_ = true;
    } else {
        std::fprintf(out_, "%s\n", line);
    }
    std::fflush(out_);
}

void ProgressDisplay::finish() {
    if (drawn_) std::fprintf(out_, "\n");
    drawn_ = false;
}

void print_summary(const qemu::SourceReport& r, std::FILE* out) {
    const auto& q = r.final_stats;
    std::fprintf(out, "migration %s", qemu::to_string(r.outcome));
    if (!r.error.empty()) std::fprintf(out, ": %s", r.error.c_str());
    std::fprintf(out, "\n");
    for (auto& c : r.checks)
        if (!c.ok) std::fprintf(out, "  check failed   %s: %s\n", c.name.c_str(), c.detail.c_str());
    // Nothing more to say if QEMU never started migrating.
    if (r.outcome == qemu::Outcome::refused || q.status.empty() || q.status == "none") return;
    uint64_t sent = 0;
    for (auto& c : r.channels) sent += c.to_link;
    std::fprintf(out, "  total time     %s (QEMU), %s wall, setup %s\n",
                 format_millis(double(q.total_time_ms)).c_str(), format_millis(r.wall_s * 1000).c_str(),
                 format_millis(double(q.setup_time_ms)).c_str());
    if (r.outcome == qemu::Outcome::completed) {
        // The guest's real stop (source STOP -> destination RESUME) first;
        // QEMU's own figure ends when the source wrote its last byte.
        const auto& b = r.blackout;
        std::string limit = format_millis(double(r.settings.downtime_limit_ms));
        if (b.ms)
            std::fprintf(out, "  blackout       %s (guest stopped -> resumed on the destination, +/- %.2f ms; limit %s)\n",
                         format_millis(*b.ms).c_str(), b.uncertainty_ms, limit.c_str());
        else if (b.stop_to_loaded_ms)
            std::fprintf(out, "  blackout       not resumed; guest stopped -> loaded on the destination %s (limit %s)\n",
                         format_millis(*b.stop_to_loaded_ms).c_str(), limit.c_str());
        else
            std::fprintf(out, "  blackout       not measured (no QMP event timestamps)\n");
        std::fprintf(out, "  QEMU downtime  %s (QEMU's own figure, source side; QEMU's limit %s of it, "
                          "rmig's drain %s)\n",
                     format_millis(double(q.downtime_ms)).c_str(),
                     format_millis(double(r.budget.qemu_limit_ms)).c_str(),
                     format_millis(r.budget.drain_ms).c_str());
    }
    std::fprintf(out, "  guest RAM      %s sent of %s, %llu dirty-sync rounds\n",
                 format_bytes(double(q.ram_transferred)).c_str(), format_bytes(double(q.ram_total)).c_str(),
                 static_cast<unsigned long long>(q.dirty_sync_count));
    const auto& cv = r.convergence;
    if (!r.settings.auto_converge)
        std::fprintf(out, "  auto-converge  off\n");
    else
        std::fprintf(out, "  auto-converge  %s; vCPU throttle %s (QEMU starts at %u%%, +%u%%%s)\n",
                     cv.max_throttle ? "the guest was slowed" : "not needed",
                     cv.max_throttle ? cat("up to ", cv.max_throttle, "%").c_str() : "never applied",
                     cv.throttle.initial, cv.throttle.increment, cv.steered ? ", planned by rmig" : ", fixed");
    if (r.settings.postcopy) {
        const auto& pc = r.postcopy;
        if (!pc.switched)
            std::fprintf(out, "  post-copy      allowed, not used (pre-copy %s)\n",
                         r.outcome == qemu::Outcome::completed ? "converged" : "did not get that far");
        else if (r.outcome != qemu::Outcome::completed)
            std::fprintf(out, "  post-copy      after %u pass%s, %.1f s in: %s; interrupted (%llu pages faulted, %s sent "
                              "after the switch)\n",
                         pc.after_passes, pc.after_passes == 1 ? "" : "es", pc.switched_at_s, pc.reason.c_str(),
                         static_cast<unsigned long long>(pc.requests), format_bytes(double(pc.bytes)).c_str());
        else
            std::fprintf(out, "  post-copy      after %u pass%s, %.1f s in: %s; then %s until the destination had every "
                              "page (%llu pages faulted, %s sent)%s\n",
                         pc.after_passes, pc.after_passes == 1 ? "" : "es", pc.switched_at_s, pc.reason.c_str(),
                         format_millis(pc.phase_s * 1000).c_str(), static_cast<unsigned long long>(pc.requests),
                         format_bytes(double(pc.bytes)).c_str(),
                         r.settings.postcopy_preempt ? ", faulted pages on their own channel" : "");
    }
    double secs = q.total_time_ms ? double(q.total_time_ms) / 1000.0 : r.wall_s;
    std::fprintf(out, "  over the link  %s on %zu channel%s (%s), %s average, RTT %.2f ms\n",
                 format_bytes(double(sent)).c_str(), r.channels.size(), r.channels.size() == 1 ? "" : "s",
                 r.settings.multifd_channels ? "main + multifd" : "main only",
                 format_rate(secs > 0 ? double(sent) / secs : 0).c_str(), r.link_rtt_ms);
    if (!r.link_tuning.why.empty()) std::fprintf(out, "  tcp            %s\n", r.link_tuning.why.c_str());
    std::fprintf(out, "  source guest   %s\n", r.source_state.c_str());
    {
        auto t = qemu::totals(r.channels);
        const auto& packed = t.compression;
        uint32_t reconnects = t.reconnects;
        uint64_t resent = t.resent;
        if (r.compression != engine::CompressionMode::none && packed.in_bytes)
            std::fprintf(out, "  compression    %s: %s on the wire for %s (x%.2f); segments raw %llu, lz4 %llu, zstd %llu\n",
                         std::string(engine::to_string(r.compression)).c_str(),
                         format_bytes(double(packed.wire_bytes)).c_str(), format_bytes(double(packed.in_bytes)).c_str(),
                         double(packed.wire_bytes) / double(packed.in_bytes),
                         static_cast<unsigned long long>(packed.segments[0]),
                         static_cast<unsigned long long>(packed.segments[1]),
                         static_cast<unsigned long long>(packed.segments[2]));
        if (r.flows > 1 || r.paths.size() > 1 || reconnects)
            std::fprintf(out, "  flows          %u per stream over %zu path%s, %u reconnect%s, %s resent\n", r.flows,
                         r.paths.size(), r.paths.size() == 1 ? "" : "s", reconnects, reconnects == 1 ? "" : "s",
                         format_bytes(double(resent)).c_str());
    }
    if (r.outcome == qemu::Outcome::completed)
        std::fprintf(out, "  destination    %s%s\n", r.destination.value("state", "?").c_str(),
                     r.destination.value("resumed", false) ? " (resumed by rmig)" : "");
}

}  // namespace rmig::cli
