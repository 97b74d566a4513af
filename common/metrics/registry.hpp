// Counters and gauges with label sets, for the Prometheus text format
// (text_format.hpp) served by http_exporter.hpp. docs/metrics.md.
//
// One Registry per process (process_registry()); every part of the program
// declares its series there. Updating a series is one relaxed atomic
// operation, no lock, so hot paths may update as they go; the registry's own
// lock is taken only to declare, remove and scrape series.
//
// A long-lived service (rmig tunnel) gives each migration a Scope: the
// session's labels on every series made through it, and all of them removed
// when the Scope ends, so finished sessions do not pile up in the scrape.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics/text_format.hpp"

namespace rmig::metrics {

// Only goes up (Prometheus type counter; names end in _total).
class Counter {
public:
    void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    // Mirrors a running total kept elsewhere (a stream's byte count, QEMU's
    // figures): the value moves up to `total` and never back, so a late or
    // stale reading cannot make the counter go down (which a scraper would
    // take for a restart).
    void advance_to(uint64_t total);
    uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<uint64_t> value_{0};
};

// Any value that goes up and down.
class Gauge {
public:
    void set(double v);
    void add(double delta);
    double value() const;

private:
    std::atomic<uint64_t> bits_{0};  // the double's bits (0 is +0.0)
};

class Registry {
public:
    // The series `name`{labels}: made on first use, the same object after
    // (whoever asks). Throws Error on a bad name or label, or when `name` was
    // declared with the other type. The first help text given stays.
    std::shared_ptr<Counter> counter(std::string_view name, std::string_view help, const Labels& labels = {});
    std::shared_ptr<Gauge> gauge(std::string_view name, std::string_view help, const Labels& labels = {});

    // Drops every series whose labels include all of `match` (e.g. one
    // session's); returns how many. Holders of a dropped series may keep
    // updating it: it is simply no longer scraped.
    size_t remove_matching(const Labels& match);
    // Drops the one series `name`{labels}, if there.
    bool remove(std::string_view name, const Labels& labels);

    std::vector<FamilySnapshot> snapshot() const;  // families by name, series by labels
    std::string expose() const { return render(snapshot()); }

private:
    struct Series {
        Labels labels;  // as first given
        std::shared_ptr<Counter> counter;
        std::shared_ptr<Gauge> gauge;
    };
    struct Family {
        std::string help;
        Type type = Type::gauge;
        std::map<Labels, Series> series;  // by sorted labels
    };
    Series& find_or_make(std::string_view name, std::string_view help, Type type, const Labels& labels);

    mutable std::mutex mutex_;
    std::map<std::string, Family, std::less<>> families_;
};

// The process's registry: what its exporter serves.
Registry& process_registry();

// A unit of work's series (one migration, one tunnel session): each made
// through it carries the scope's labels first, then its own; all are removed
// from the registry when the scope is destroyed. Give each live scope labels
// no other live scope has (a session id), or they share series.
class Scope {
public:
    Scope(Registry& registry, Labels labels);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

    std::shared_ptr<Counter> counter(std::string_view name, std::string_view help, const Labels& extra = {});
    std::shared_ptr<Gauge> gauge(std::string_view name, std::string_view help, const Labels& extra = {});
    const Labels& labels() const { return labels_; }
    Registry& registry() { return registry_; }

private:
    Labels with(const Labels& extra) const;

    Registry& registry_;
    Labels labels_;
    std::mutex mutex_;
    std::vector<std::pair<std::string, Labels>> made_;
};

// An enumeration as gauges: name{..., state="X"} is 1 for the current state
// and 0 for every other state seen so far (the usual Prometheus "state set").
class StateSet {
public:
    StateSet(Scope& scope, std::string name, std::string help, std::string label = "state");
    void set(const std::string& state);  // one thread at a time

private:
    Scope& scope_;
    std::string name_, help_, label_;
    std::map<std::string, std::shared_ptr<Gauge>> states_;
};

}  // namespace rmig::metrics
