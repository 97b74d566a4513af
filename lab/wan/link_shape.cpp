#include "lab/wan/link_shape.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "common/args.hpp"
#include "common/units.hpp"

namespace rmig::wan {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// A non-negative decimal number at the start of `text`; `rest` gets what follows.
std::optional<double> leading_number(const std::string& text, std::string& rest) {
    double v = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(first, last, v, std::chars_format::fixed);
    if (ec != std::errc() || ptr == first || !std::isfinite(v) || v < 0) return std::nullopt;
    rest.assign(ptr, last);
    return v;
}

std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (;;) {
        size_t at = text.find(sep, start);
        parts.push_back(text.substr(start, at - start));
        if (at == std::string::npos) return parts;
        start = at + 1;
    }
}

Nanos to_nanos(double value, double ns_per_unit, const std::string& text, const std::string& what) {
    double ns = value * ns_per_unit;
    if (ns > 1e18) throw UsageError(cat(what, " '", text, "' is too long"));
    return Nanos(static_cast<int64_t>(std::llround(ns)));
}

std::string trim_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

}  // namespace

bool Outage::covers(Nanos since_start) const {
    if (length <= Nanos::zero() || since_start < at) return false;
    Nanos into = since_start - at;
    if (every > Nanos::zero()) into %= every;
    return into < length;
}

bool Outage::overlaps(Nanos from, Nanos to) const {
    if (length <= Nanos::zero() || to < at) return false;
    if (every <= Nanos::zero()) return from < at + length;
    // The last occurrence starting at or before `from` (or the first), and the next.
    int64_t k = from > at ? (from - at) / every : 0;
    Nanos begin = at + k * every;
    if (from < begin + length) return true;
    return begin + every <= to;
}

uint64_t Outage::ended(Nanos since_start) const {
    if (length <= Nanos::zero() || since_start < at + length) return 0;
    if (every <= Nanos::zero()) return 1;
    return static_cast<uint64_t>((since_start - at - length) / every) + 1;
}

bool LinkShape::has_reset_outage() const {
    return std::any_of(outages.begin(), outages.end(), [](const Outage& o) { return o.reset; });
}

uint64_t LinkShape::queue_limit() const {
    if (queue_bytes) return queue_bytes;
    auto bytes_in = [&](Nanos t) {
        return static_cast<uint64_t>(static_cast<double>(rate_bps) / 8.0 * static_cast<double>(t.count()) / 1e9);
    };
    if (queue_time > Nanos::zero()) return std::max<uint64_t>(bytes_in(queue_time), 1);
    return std::max(bytes_in(2 * delay), kMinDefaultQueueBytes);
}

std::string LinkShape::queue_origin() const {
    if (queue_bytes) return "given";
    if (queue_time > Nanos::zero()) return cat(format_duration(queue_time), " of rate");
    return queue_limit() == kMinDefaultQueueBytes ? "minimum" : "BDP";
}

std::string LinkShape::describe() const {
    std::string s = cat("delay ", format_duration(delay), ", rate ", format_rate_bits(rate_bps));
    if (rate_bps) s += cat(", queue ", queue_limit(), " B (", queue_origin(), ")");
    if (loss > 0) s += cat(", loss ", trim_number(loss * 100), "%");
    if (burst.enabled())
        s += cat(", burst loss ", trim_number(burst.p_good_to_bad * 100), "%:", trim_number(burst.p_bad_to_good * 100),
                 "%:", trim_number(burst.loss_in_bad * 100), "%");
    if (reorder.probability > 0)
        s += cat(", reorder ", trim_number(reorder.probability * 100), "% by ", format_duration(reorder.gap));
    for (const auto& o : outages) {
        s += cat(", outage at ", format_duration(o.at), " for ", format_duration(o.length));
        if (o.every > Nanos::zero()) s += cat(" every ", format_duration(o.every));
        if (o.reset) s += " resetting connections";
    }
    return s;
}

Nanos parse_duration(const std::string& text, const std::string& what, std::optional<Nanos> bare_unit) {
    std::string rest;
    auto v = leading_number(text, rest);
    const std::string hint = cat(what, " '", text, "': give a duration like 25ms, 1.5s, 250us");
    if (!v) throw UsageError(hint);
    rest = lower(rest);
    if (rest.empty()) {
        if (*v == 0) return Nanos::zero();
        if (!bare_unit) throw UsageError(cat(hint, " (the unit is required)"));
        return to_nanos(*v, static_cast<double>(bare_unit->count()), text, what);
    }
    if (rest == "ns") return to_nanos(*v, 1, text, what);
    if (rest == "us") return to_nanos(*v, 1e3, text, what);
    if (rest == "ms") return to_nanos(*v, 1e6, text, what);
    if (rest == "s") return to_nanos(*v, 1e9, text, what);
    throw UsageError(cat(hint, " (unknown unit '", rest, "')"));
}

Nanos parse_signed_duration(const std::string& text, const std::string& what) {
    if (!text.empty() && text[0] == '-') return -parse_duration(text.substr(1), what);
    return parse_duration(text, what);
}

uint64_t parse_rate(const std::string& text, const std::string& what) {
    const std::string hint =
        cat(what, " '", text, "': give bits per second like 1gbit, 500mbit, 64kbit (0 = unlimited)");
    if (lower(text) == "unlimited") return 0;
    std::string rest;
    auto v = leading_number(text, rest);
    if (!v) throw UsageError(hint);
    rest = lower(rest);
    double mul = 0;
    if (rest.empty() || rest == "bit")
        mul = 1;
    else if (rest == "kbit")
        mul = 1e3;
    else if (rest == "mbit")
        mul = 1e6;
    else if (rest == "gbit")
        mul = 1e9;
    else if (rest == "tbit")
        mul = 1e12;
    else if (rest.size() >= 3 && rest.substr(rest.size() - 3) == "bps")
        throw UsageError(cat(hint, " ('", rest, "' is ambiguous: tc reads it as bytes per second; write ",
                             rest.substr(0, rest.size() - 3), "bit for bits)"));
    else
        throw UsageError(cat(hint, " (unknown unit '", rest, "')"));
    double bps = *v * mul;
    if (bps > 1e15) throw UsageError(cat(hint, " (too fast)"));
    if (bps > 0 && bps < 8000)
        throw UsageError(cat(hint, " (below 8 kbit/s a packet takes seconds; give at least 8kbit)"));
    return static_cast<uint64_t>(std::llround(bps));
}

double parse_percent(const std::string& text, const std::string& what) {
    std::string t = text;
    if (!t.empty() && t.back() == '%') t.pop_back();
    std::string rest;
    auto v = leading_number(t, rest);
    if (!v || !rest.empty() || *v > 100)
        throw UsageError(cat(what, " '", text, "': give a percentage from 0 to 100, like 0.1% or 2"));
    return *v / 100.0;
}

GilbertElliott parse_burst_loss(const std::string& text, const std::string& what) {
    auto parts = split(text, ':');
    if (parts.size() < 2 || parts.size() > 3)
        throw UsageError(cat(what, " '", text,
                             "': give P_GOOD_TO_BAD:P_BAD_TO_GOOD[:LOSS_IN_BAD] in percent, like 1%:20% or 0.5:25:80"));
    GilbertElliott g;
    g.p_good_to_bad = parse_percent(parts[0], cat(what, " (good->bad)"));
    g.p_bad_to_good = parse_percent(parts[1], cat(what, " (bad->good)"));
    if (parts.size() == 3) g.loss_in_bad = parse_percent(parts[2], cat(what, " (loss in bad)"));
    if (g.p_good_to_bad > 0 && g.p_bad_to_good == 0)
        throw UsageError(cat(what, " '", text, "': bad->good is 0, so the first burst would never end"));
    return g;
}

Reorder parse_reorder(const std::string& text, const std::string& what) {
    auto parts = split(text, ':');
    if (parts.size() > 2) throw UsageError(cat(what, " '", text, "': give P[:GAP], like 1%:2ms or 0.5:-5ms"));
    Reorder r;
    r.probability = parse_percent(parts[0], what);
    if (parts.size() == 2) r.gap = parse_signed_duration(parts[1], cat(what, " (gap)"));
    if (r.gap == Nanos::zero()) throw UsageError(cat(what, " '", text, "': a zero gap reorders nothing"));
    return r;
}

std::vector<Outage> parse_outages(const std::string& text, const std::string& what) {
    std::vector<Outage> out;
    const std::string hint =
        "give AT+LEN[/EVERY][:reset] in seconds or with units, like 10+2, 1.5s+500ms, 10+2/30 or 8+10:reset";
    for (const auto& given : split(text, ',')) {
        if (given.empty()) continue;  // "10+2," or a joined empty list
        std::string item = given;
        bool reset = false;
        if (auto colon = item.find(':'); colon != std::string::npos) {
            if (lower(item.substr(colon + 1)) != "reset")
                throw UsageError(cat(what, " '", given, "': unknown option '", item.substr(colon + 1),
                                     "' after ':' (only 'reset': the path forgets its connections)"));
            reset = true;
            item.resize(colon);
        }
        auto plus = item.find('+');
        if (plus == std::string::npos) throw UsageError(cat(what, " '", given, "': ", hint));
        std::string len = item.substr(plus + 1), every;
        if (auto slash = len.find('/'); slash != std::string::npos) {
            every = len.substr(slash + 1);
            len = len.substr(0, slash);
        }
        const Nanos seconds = std::chrono::seconds(1);
        Outage o;
        o.reset = reset;
        o.at = parse_duration(item.substr(0, plus), cat(what, " (start)"), seconds);
        o.length = parse_duration(len, cat(what, " (length)"), seconds);
        if (!every.empty()) o.every = parse_duration(every, cat(what, " (period)"), seconds);
        if (o.length <= Nanos::zero()) throw UsageError(cat(what, " '", given, "': the length must be above 0"));
        if (!every.empty() && o.every <= o.length)
            throw UsageError(cat(what, " '", given, "': the period must be longer than the outage"));
        out.push_back(o);
    }
    return out;
}

void parse_queue(const std::string& text, const std::string& what, LinkShape& shape) {
    std::string rest;
    auto v = leading_number(text, rest);
    std::string unit = lower(rest);
    if (v && (unit == "ms" || unit == "us" || unit == "s")) {
        shape.queue_time = parse_duration(text, what);
        shape.queue_bytes = 0;
        if (shape.queue_time <= Nanos::zero()) throw UsageError(cat(what, " '", text, "' must be above 0"));
        return;
    }
    try {
        shape.queue_bytes = parse_size(text, what);
    } catch (const Error&) {
        throw UsageError(cat(what, " '", text, "': give bytes (150000, 64K, 4M) or time at the rate (100ms)"));
    }
    shape.queue_time = Nanos::zero();
    if (shape.queue_bytes == 0) throw UsageError(cat(what, " '", text, "' must be above 0"));
}

void apply_setting(LinkShape& shape, const std::string& key, const std::string& value, const std::string& what) {
    const std::string w = what.empty() ? cat("--", key) : cat(what, " ", key);
    if (key == "delay")
        shape.delay = parse_duration(value, w);
    else if (key == "rate")
        shape.rate_bps = parse_rate(value, w);
    else if (key == "queue")
        parse_queue(value, w, shape);
    else if (key == "loss")
        shape.loss = parse_percent(value, w);
    else if (key == "burst-loss")
        shape.burst = parse_burst_loss(value, w);
    else if (key == "reorder")
        shape.reorder = parse_reorder(value, w);
    else if (key == "outage") {
        auto more = parse_outages(value, w);
        shape.outages.insert(shape.outages.end(), more.begin(), more.end());
    } else
        throw UsageError(cat(what.empty() ? "shape" : what, ": unknown setting '", key,
                             "' (delay, rate, queue, loss, burst-loss, reorder, outage, subnet)"));
}

PathSpec parse_path_spec(const std::string& text, const std::string& what) {
    PathSpec spec;
    for (const auto& item : split(text, ',')) {
        if (item.empty()) continue;
        auto eq = item.find('=');
        if (eq == std::string::npos)
            throw UsageError(cat(what, ": '", item, "' is not KEY=VALUE (e.g. delay=25ms,rate=500mbit)"));
        std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        if (key == "subnet")
            spec.subnet = value;
        else
            apply_setting(spec.shape, key, value, what);
    }
    return spec;
}

std::string format_duration(Nanos d) {
    int64_t ns = d.count();
    if (ns == 0) return "0";
    std::string sign = ns < 0 ? "-" : "";
    double a = std::fabs(static_cast<double>(ns));
    if (a >= 1e9) return cat(sign, trim_number(a / 1e9), "s");
    if (a >= 1e6) return cat(sign, trim_number(a / 1e6), "ms");
    if (a >= 1e3) return cat(sign, trim_number(a / 1e3), "us");
    return cat(sign, ns < 0 ? -ns : ns, "ns");
}

std::string format_rate_bits(uint64_t bps) {
    if (bps == 0) return "unlimited";
    auto b = static_cast<double>(bps);
    if (bps % 1'000'000'000 == 0 || b >= 1e10) return cat(trim_number(b / 1e9), "gbit");
    if (bps % 1'000'000 == 0 || b >= 1e7) return cat(trim_number(b / 1e6), "mbit");
    if (bps % 1'000 == 0 || b >= 1e4) return cat(trim_number(b / 1e3), "kbit");
    return cat(bps, "bit");
}

}  // namespace rmig::wan
