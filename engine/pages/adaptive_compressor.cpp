#include "engine/pages/adaptive_compressor.hpp"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "common/error.hpp"

namespace rmig::engine {

namespace {

// A timing more than this many times the estimate counts as only this many:
// wall-clock timings of one compression include any preemption (a 4 ms time
// slice on a 150 us probe), which must not drag the estimate down at once. A
// lasting slowdown still comes through, at up to +25% per measurement.
constexpr double kMaxJump = 2;
// Weight of a new measurement in a codec's estimates: after 8 updates the
// old data weighs 10%, so the choice follows a change of data within a few
// MiB (main path) or a few dozen chunks (probes) without flapping on one chunk.
constexpr double kAlpha = 0.25;
// A codec must beat sending raw by this factor to be switched on (it costs the
// receiver a decompression, and estimates are noisy), and beat the codec in
// use by as much to replace it.
constexpr double kMinGain = 1.05;
// This many chunks in a row that do not compress start a backoff of
// kBackoffMin raw chunks, doubling per failed retry up to kBackoffMax.
constexpr unsigned kBackoffAfter = 4;
constexpr unsigned kBackoffMin = 8;
constexpr unsigned kBackoffMax = 256;
// Pre-test: kPieces pieces of kPiece bytes spread over the chunk, compressed
// together; the chunk is skipped when they save less than 1%.
constexpr size_t kPiece = 4096;
constexpr size_t kPieces = 4;
constexpr double kPretestMaxRatio = 0.99;
// A link rate reported while this thread spent more than this fraction of the
// wall time compressing says more about the compressor than about the link.
constexpr double kBusy = 0.9;
// Probe time saved up while idle is capped, so a burst of chunks after a pause
// does not probe every interval.
constexpr double kProbeBucketNs = 20e6;

constexpr size_t idx(Codec c) {
    return static_cast<size_t>(c);
}

// Decimal units, as link rates are quoted.
std::string rate(double bytes_per_s) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(bytes_per_s >= 1e9 ? 1 : 0);
    if (bytes_per_s >= 1e9)
        s << bytes_per_s / 1e9 << " GB/s";
    else if (bytes_per_s >= 1e6)
        s << bytes_per_s / 1e6 << " MB/s";
    else
        s << bytes_per_s / 1e3 << " kB/s";
    return s.str();
}

std::string fixed2(double v) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(2);
    s << v;
    return s.str();
}

// One codec's recent ratio and cost per byte, exponentially decayed per
// measurement (a 64 KiB probe counts as much as a whole chunk: each is one
// look at the data). Cost is averaged per byte, not as a speed, so a mix of
// cheap incompressible and slow compressible chunks gives the true bytes/s.
struct Estimate {
    double out_per_in = 0, ns_per_byte = 0;
    bool known = false;

    void add(double in_bytes, double out_bytes, double t_ns) {
        const double r = out_bytes / in_bytes;
        const double c = std::max(t_ns, 1.0) / in_bytes;
        if (!known) {
            out_per_in = r, ns_per_byte = c, known = true;
            return;
        }
        out_per_in += kAlpha * (r - out_per_in);
        ns_per_byte += kAlpha * (std::min(c, kMaxJump * ns_per_byte) - ns_per_byte);
    }
    double speed() const { return known ? 1e9 / ns_per_byte : 0; }
    double ratio() const { return known ? out_per_in : 0; }
};

// A codec measured against the one in use on the same sample: the quotients
// of their ratios and costs. Data that varies (every other chunk random, say)
// moves both alike, so the comparison stays steady where two separately
// decayed estimates, one updated per chunk and one per probe, would not.
struct Relative {
    double ratio = 1, cost = 1;
    bool known = false;

    void add(double r, double c) {
        if (!known) {
            ratio = r, cost = c, known = true;
            return;
        }
        ratio += kAlpha * (r - ratio);
        // Either side of the pair may have been preempted.
        cost += kAlpha * (std::clamp(c, cost / kMaxJump, cost * kMaxJump) - cost);
    }
};

const AdaptiveCompressor::Timing& real_timing() {
    static const AdaptiveCompressor::Timing t;
    return t;
}

}  // namespace

CompressionMode parse_compression_mode(std::string_view text) {
    if (text == "auto") return CompressionMode::automatic;
    if (text == "none" || text == "off") return CompressionMode::none;
    if (text == "lz4") return CompressionMode::lz4;
    if (text == "zstd") return CompressionMode::zstd;
    throw Error(cat("unknown compression '", text, "' (expected auto, none, off, lz4 or zstd)"));
}

std::string_view to_string(CompressionMode m) noexcept {
    switch (m) {
        case CompressionMode::automatic:
            return "auto";
        case CompressionMode::none:
            return "none";
        case CompressionMode::lz4:
            return "lz4";
        case CompressionMode::zstd:
            return "zstd";
    }
    return "unknown";
}

uint64_t AdaptiveCompressor::Timing::now_ns() const {
    // Wall time, not CLOCK_THREAD_CPUTIME_ID: the speed that matters is what
    // this thread actually gets on a host whose cores it shares with the
    // guest's vCPUs and the other senders (docs/compression.md).
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t AdaptiveCompressor::Timing::compress_ns(Codec, size_t, uint64_t measured_ns) const {
    return measured_ns;
}

struct AdaptiveCompressor::Impl {
    Options opts;
    const Timing* timing;
    Compressor lz4;
    Compressor zstd;
    std::array<Estimate, 3> est;  // by Codec; none unused
    std::array<Relative, 3> rel;  // against `current` (when a codec), by Codec
    Codec current = Codec::none;
    double link = 0;  // per sender, bytes/s; 0 = not told yet
    bool link_lower_bound = false;
    uint64_t link_set_ns = 0;
    double busy_ns = 0;  // compression time since the last link report
    uint64_t chunk_no = 0;
    unsigned failed_in_row = 0;
    unsigned backoff_left = 0;
    unsigned backoff_next = kBackoffMin;
    double probe_tokens_ns = kProbeBucketNs;
    uint64_t tokens_at_ns;
    unsigned probe_turn = 0;
    uint64_t next_probe = 0;  // chunk number of the next probe
    uint64_t jitter = 0x9E3779B97F4A7C15ULL;
    bool warmed = false;
    std::vector<std::byte> gather;   // pre-test pieces
    std::vector<std::byte> scratch;  // output of pre-tests and probes
    CompressionStats stats;

    explicit Impl(const Options& o)
        : opts(o), timing(o.timing ? o.timing : &real_timing()), lz4(Codec::lz4, o.lz4_acceleration),
          zstd(Codec::zstd, o.zstd_level), tokens_at_ns(timing->now_ns()) {
        if (!(opts.max_ratio > 0 && opts.max_ratio <= 1))
            throw Error(cat("compression: max_ratio ", opts.max_ratio, " out of range (0, 1]"));
        if (!(opts.probe_budget >= 0 && opts.probe_budget <= 1))
            throw Error(cat("compression: probe_budget ", opts.probe_budget, " out of range [0, 1]"));
        if (opts.probe_bytes < kPiece)
            throw Error(cat("compression: probe_bytes ", opts.probe_bytes, " below ", kPiece));
        switch (opts.mode) {
            case CompressionMode::automatic:
                current = Codec::none;
                break;
            case CompressionMode::none:
                current = Codec::none;
                break;
            case CompressionMode::lz4:
                current = Codec::lz4;
                break;
            case CompressionMode::zstd:
                current = Codec::zstd;
                break;
        }
        gather.resize(kPiece * kPieces);
        scratch.resize(std::max(opts.probe_bytes, gather.size()));
        update_reason();
    }

    Compressor& compressor(Codec c) { return c == Codec::lz4 ? lz4 : zstd; }

    struct Timed {
        size_t size;  // 0: did not fit (no win)
        double ns;
    };
    Timed compress(Codec c, std::span<const std::byte> in, std::span<std::byte> out) {
        const uint64_t t0 = timing->now_ns();
        const size_t n = compressor(c).compress(in, out);
        const uint64_t t1 = timing->now_ns();
        const auto ns = static_cast<double>(timing->compress_ns(c, in.size(), t1 - t0));
        busy_ns += ns;
        return {n, ns};
    }

    // Largest output that still counts as a win for `n` input bytes.
    size_t cap(size_t n) const { return static_cast<size_t>(std::floor(static_cast<double>(n) * opts.max_ratio)); }

    Encoded raw(size_t n) {
        ++stats.chunks[idx(Codec::none)];
        stats.wire_bytes += n;
        return {Codec::none, n};
    }

    Encoded encode(std::span<const std::byte> chunk, std::vector<std::byte>& out) {
        const size_t n = chunk.size();
        stats.in_bytes += n;
        const uint64_t no = chunk_no++;
        if (n == 0) return raw(0);
        if (opts.mode == CompressionMode::automatic) maybe_probe(chunk, no);
        const Codec c = current;
        if (c == Codec::none) return raw(n);
        if (backoff_left > 0) {
            if (--backoff_left == 0) update_reason();
            ++stats.skipped;
            return raw(n);
        }

        double pre_ns = 0;
        // Only right after a chunk that did not compress: a failed attempt is
        // cheap already (lz4 runs near memcpy speed on random data, zstd at a
        // third of it), so on compressible data the pre-test would cost more
        // than it saves (docs/compression.md has the numbers).
        if (opts.pretest && failed_in_row > 0 && n >= 4 * gather.size()) {
            // Pieces from the middle of each quarter, so a chunk that is half
            // zero pages and half random is not judged on one half; the i-th
            // moved by i pages, so pages that alternate with a power-of-two
            // period are not all sampled at the same phase.
            for (size_t i = 0; i < kPieces; ++i) {
                const size_t off = ((2 * i + 1) * n / (2 * kPieces) / kPiece + i) * kPiece;
                std::memcpy(gather.data() + i * kPiece, chunk.data() + std::min(off, n - kPiece), kPiece);
            }
            const auto lim = static_cast<size_t>(static_cast<double>(gather.size()) * kPretestMaxRatio);
            const Timed t = compress(c, gather, std::span(scratch).first(lim));
            pre_ns = t.ns;
            if (t.size == 0) {
                // Accounted as a full chunk that did not shrink: that is the
                // ratio the choice must see, at the cost actually paid.
                est[idx(c)].add(static_cast<double>(n), static_cast<double>(n), pre_ns);
                ++stats.skipped;
                did_not_compress();
                return raw(n);
            }
        }

        if (out.size() < n) out.resize(n);
        const Timed t = compress(c, chunk, std::span(out).first(cap(n)));
        if (t.size == 0) {
            est[idx(c)].add(static_cast<double>(n), static_cast<double>(n), pre_ns + t.ns);
            ++stats.incompressible;
            did_not_compress();
            return raw(n);
        }
        est[idx(c)].add(static_cast<double>(n), static_cast<double>(t.size), pre_ns + t.ns);
        failed_in_row = 0;
        backoff_next = kBackoffMin;
        ++stats.chunks[idx(c)];
        stats.wire_bytes += t.size;
        if (opts.mode == CompressionMode::automatic) decide();
        return {c, t.size};
    }

    void did_not_compress() {
        if (++failed_in_row < kBackoffAfter) {
            if (opts.mode == CompressionMode::automatic) decide();
            return;
        }
        if (opts.mode == CompressionMode::automatic) {
            // The data changed (several chunks in a row, whichever codec
            // tried them, did not shrink): forget the codecs' past ratios, so
            // the choice turns to raw now instead of trying one codec after
            // the other, and the probes say when to come back.
            const Codec was = current;
            for (Codec c : {Codec::lz4, Codec::zstd})
                if (est[idx(c)].known) est[idx(c)].out_per_in = 1;
            rel = {};
            decide();
            if (current != was) return;
        }
        backoff_left = backoff_next;
        backoff_next = std::min(backoff_next * 2, kBackoffMax);
        update_reason();
    }

    // Measures a codec not in use on a sample of this chunk, about every
    // probe_interval chunks while the time budget allows.
    void maybe_probe(std::span<const std::byte> chunk, uint64_t no) {
        const uint64_t now = timing->now_ns();
        probe_tokens_ns =
            std::min(kProbeBucketNs, probe_tokens_ns + static_cast<double>(now - tokens_at_ns) * opts.probe_budget);
        tokens_at_ns = now;
        if (opts.probe_interval == 0 || no < next_probe) return;
        // Every probe_interval chunks on average, jittered: a fixed stride
        // would sample data with a period that divides it (say every other
        // chunk random) always at the same phase, and misjudge the codec.
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        next_probe = no + 1 + opts.probe_interval / 2 + jitter % opts.probe_interval;

        const size_t len = std::min(chunk.size(), opts.probe_bytes);
        // Rotate the sample through the chunk (4 KiB aligned) so a chunk
        // layout that repeats is not always sampled in the same place.
        const size_t slots = (chunk.size() - len) / kPiece + 1;
        const size_t off = (jitter >> 20) % slots * kPiece;
        const auto sample = chunk.subspan(off, len);
        const auto out = std::span(scratch).first(cap(len));

        if (!warmed) {
            // First use: allocate both codecs' tables outside the timing, then
            // measure both so the first choice has numbers for each.
            warmed = true;
            for (Codec c : {Codec::lz4, Codec::zstd}) compressor(c).compress(sample, out);
            for (Codec c : {Codec::lz4, Codec::zstd}) probe(c, sample, out);
            decide();
            return;
        }
        if (probe_tokens_ns <= 0) return;
        if (current == Codec::none) {
            // Nothing to compare with: absolute measurements, each codec in turn.
            probe(probe_turn++ % 2 == 0 ? Codec::lz4 : Codec::zstd, sample, out);
        } else {
            const Codec other = current == Codec::lz4 ? Codec::zstd : Codec::lz4;
            const Timed a = probe(other, sample, out);
            const Timed b = compress(current, sample, out);
            probe_tokens_ns -= b.ns;
            const auto in = static_cast<double>(len);
            const double ra = a.size ? static_cast<double>(a.size) / in : 1;
            const double rb = b.size ? static_cast<double>(b.size) / in : 1;
            rel[idx(other)].add(ra / rb, std::max(a.ns, 1.0) / std::max(b.ns, 1.0));
        }
        decide();
    }

    Timed probe(Codec c, std::span<const std::byte> sample, std::span<std::byte> out) {
        const Timed t = compress(c, sample, out);
        const auto len = static_cast<double>(sample.size());
        est[idx(c)].add(len, t.size ? static_cast<double>(t.size) : len, t.ns);
        probe_tokens_ns -= t.ns;
        ++stats.probes;
        return t;
    }

    // What the choice believes of codec c: for the codec not in use, the one
    // in use scaled by their measured quotients when there are some.
    Estimate belief(Codec c) const {
        const Estimate& cur = est[idx(current)];
        if (c == current || current == Codec::none || !rel[idx(c)].known || !cur.known) return est[idx(c)];
        Estimate e;
        e.known = true;
        e.out_per_in = std::min(1.0, cur.out_per_in * rel[idx(c)].ratio);
        e.ns_per_byte = cur.ns_per_byte * rel[idx(c)].cost;
        return e;
    }

    // Input bytes/s delivered with codec c (needs a link rate and an estimate).
    double rate_in(Codec c) const {
        if (c == Codec::none) return link;
        const Estimate e = belief(c);
        return std::min(e.speed(), link / e.ratio());
    }

    void decide() {
        Codec best = Codec::none;
        if (link > 0) {
            double best_rate = link * kMinGain;  // what a codec must beat
            for (Codec c : {Codec::lz4, Codec::zstd}) {
                if (!belief(c).known) continue;
                const double r = rate_in(c);
                if (r > best_rate) best = c, best_rate = r;
            }
            // Hysteresis between codecs: keep the one in use unless the other
            // is clearly better.
            if (best != Codec::none && current != Codec::none && best != current && est[idx(current)].known &&
                rate_in(current) > link * kMinGain && rate_in(best) < rate_in(current) * kMinGain)
                best = current;
        }
        if (best != current) switch_to(best);
        update_reason();
    }

    void switch_to(Codec next) {
        const Codec other = next == Codec::lz4 ? Codec::zstd : Codec::lz4;
        if (current != Codec::none && next != Codec::none && rel[idx(next)].known) {
            // From one codec to the other: start the new one from what was
            // believed of it, and turn the quotients around for the old one.
            est[idx(next)] = belief(next);
            const Relative r = rel[idx(next)];
            rel = {};
            rel[idx(other)] = {1 / r.ratio, 1 / r.cost, true};
        } else {
            rel = {};
            // From raw, both estimates come from probes of the same kind:
            // their quotients are the first comparison, until paired probes
            // refine them.
            const Estimate &n = est[idx(next)], &o = est[idx(other)];
            if (next != Codec::none && n.known && o.known)
                rel[idx(other)] = {o.out_per_in / n.out_per_in, o.ns_per_byte / n.ns_per_byte, true};
        }
        // failed_in_row stays: it counts chunks of the data, whichever codec.
        current = next;
        backoff_left = 0;
        backoff_next = kBackoffMin;
    }

    std::string describe(Codec c) const {
        const Estimate e = belief(c);
        if (!e.known) return cat(to_string(c), " not measured");
        return cat(to_string(c), " ", rate(rate_in(c)), " in (", rate(e.speed()), ", ratio ", fixed2(e.ratio()), ")");
    }

    void update_reason() {
        std::string r;
        const std::string link_s = cat("link ", link_lower_bound ? ">= " : "", rate(link));
        if (opts.mode != CompressionMode::automatic) {
            r = cat(to_string(current), ": forced");
        } else if (link <= 0) {
            r = "none: no link rate yet";
        } else if (current == Codec::none) {
            r = cat("none: ", link_s, " vs ", describe(Codec::lz4), ", ", describe(Codec::zstd));
        } else {
            const Estimate& e = est[idx(current)];
            const Codec other = current == Codec::lz4 ? Codec::zstd : Codec::lz4;
            if (link / e.ratio() <= e.speed())
                r = cat(to_string(current), ": ", link_s, " / ratio ", fixed2(e.ratio()), " = ", rate(rate_in(current)),
                        " in < ", to_string(current), " ", rate(e.speed()), "; ", describe(other));
            else
                r = cat(to_string(current), ": ", to_string(current), " ", rate(e.speed()), " in (ratio ",
                        fixed2(e.ratio()), ") > ", link_s, "; ", describe(other));
        }
        if (backoff_left > 0)
            r += cat("; ", failed_in_row, " chunks in a row did not compress: next ", backoff_left, " raw");
        stats.reason = std::move(r);
        update_stats();
    }

    void update_stats() {
        stats.current = current;
        stats.link = link;
        for (Codec c : {Codec::lz4, Codec::zstd}) {
            const Estimate e = belief(c);
            stats.speed[idx(c)] = e.speed();
            stats.ratio[idx(c)] = e.ratio();
        }
    }

    void set_link_rate(double bytes_per_s, unsigned senders) {
        if (!(bytes_per_s >= 0) || !std::isfinite(bytes_per_s))
            throw Error(cat("compression: link rate ", bytes_per_s, " bytes/s is not a rate"));
        const double per_sender = bytes_per_s / std::max(1u, senders);
        const uint64_t now = timing->now_ns();
        const double elapsed = link_set_ns ? static_cast<double>(now - link_set_ns) : 0;
        // Compressing nearly all the time means the link took all we gave it:
        // its rate is at least this, maybe far more (see the header).
        const bool cpu_bound = link > 0 && current != Codec::none && elapsed > 0 && busy_ns > kBusy * elapsed;
        link_lower_bound = cpu_bound && per_sender <= link;
        link = cpu_bound ? std::max(link, per_sender) : per_sender;
        link_set_ns = now;
        busy_ns = 0;
        if (opts.mode == CompressionMode::automatic)
            decide();
        else
            update_stats();
    }
};

AdaptiveCompressor::AdaptiveCompressor(Options opts) : impl_(std::make_unique<Impl>(opts)) {}
AdaptiveCompressor::~AdaptiveCompressor() = default;
AdaptiveCompressor::AdaptiveCompressor(AdaptiveCompressor&&) noexcept = default;
AdaptiveCompressor& AdaptiveCompressor::operator=(AdaptiveCompressor&&) noexcept = default;

void AdaptiveCompressor::set_link_rate(double bytes_per_s, unsigned senders) {
    impl_->set_link_rate(bytes_per_s, senders);
}

AdaptiveCompressor::Encoded AdaptiveCompressor::encode(std::span<const std::byte> chunk, std::vector<std::byte>& out) {
    return impl_->encode(chunk, out);
}

const CompressionStats& AdaptiveCompressor::stats() const noexcept {
    return impl_->stats;
}

void decode(Codec codec, std::span<const std::byte> in, std::span<std::byte> out) {
    switch (codec) {
        case Codec::none:
            if (in.size() != out.size())
                throw ProtocolError(cat("raw chunk of ", in.size(), " bytes, the frame announced ", out.size()));
            if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
            return;
        case Codec::lz4:
        case Codec::zstd: {
            // The sender sends anything that does not shrink raw.
            if (in.size() >= out.size())
                throw ProtocolError(cat(to_string(codec), " chunk of ", in.size(), " bytes for ", out.size(),
                                        " announced: compressed data must be smaller"));
            thread_local Compressor lz4(Codec::lz4);
            thread_local Compressor zstd(Codec::zstd);
            (codec == Codec::lz4 ? lz4 : zstd).decompress(in, out);
            return;
        }
    }
    throw ProtocolError(cat("unknown chunk codec ", static_cast<int>(codec)));
}

}  // namespace rmig::engine
