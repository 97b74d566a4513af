#include "common/metrics/registry.hpp"

#include <algorithm>
#include <bit>

#include "common/error.hpp"

namespace rmig::metrics {

void Counter::advance_to(uint64_t total) {
    uint64_t now = value_.load(std::memory_order_relaxed);
    while (now < total && !value_.compare_exchange_weak(now, total, std::memory_order_relaxed)) {
    }
}

void Gauge::set(double v) { bits_.store(std::bit_cast<uint64_t>(v), std::memory_order_relaxed); }

void Gauge::add(double delta) {
    uint64_t now = bits_.load(std::memory_order_relaxed);
    while (!bits_.compare_exchange_weak(now, std::bit_cast<uint64_t>(std::bit_cast<double>(now) + delta),
                                        std::memory_order_relaxed)) {
    }
}

double Gauge::value() const { return std::bit_cast<double>(bits_.load(std::memory_order_relaxed)); }

namespace {

Labels sorted(Labels labels) {
    std::sort(labels.begin(), labels.end());
    return labels;
}

bool includes(const Labels& labels, const Labels& match) {
    for (const auto& m : match)
        if (std::find(labels.begin(), labels.end(), m) == labels.end()) return false;
    return true;
}

}  // namespace

Registry::Series& Registry::find_or_make(std::string_view name, std::string_view help, Type type,
                                         const Labels& labels) {
    check_metric_name(name);
    check_labels(name, labels);
    std::lock_guard lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) {
        it = families_.emplace(std::string(name), Family{std::string(help), type, {}}).first;
    } else if (it->second.type != type) {
        throw Error(cat("metric ", name, " is already a ", to_string(it->second.type), "; cannot declare it as a ",
                        to_string(type)));
    }
    Labels key = sorted(labels);
    auto s = it->second.series.find(key);
    if (s == it->second.series.end()) {
        Series made{labels, nullptr, nullptr};
        if (type == Type::counter) made.counter = std::make_shared<Counter>();
        else made.gauge = std::make_shared<Gauge>();
        s = it->second.series.emplace(std::move(key), std::move(made)).first;
    }
    return s->second;
}

std::shared_ptr<Counter> Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
    return find_or_make(name, help, Type::counter, labels).counter;
}

std::shared_ptr<Gauge> Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    return find_or_make(name, help, Type::gauge, labels).gauge;
}

size_t Registry::remove_matching(const Labels& match) {
    std::lock_guard lock(mutex_);
    size_t removed = 0;
    for (auto f = families_.begin(); f != families_.end();) {
        auto& series = f->second.series;
        removed += std::erase_if(series, [&](const auto& kv) { return includes(kv.first, match); });
        f = series.empty() ? families_.erase(f) : std::next(f);
    }
    return removed;
}

bool Registry::remove(std::string_view name, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto f = families_.find(name);
    if (f == families_.end()) return false;
    bool removed = f->second.series.erase(sorted(labels)) > 0;
    if (f->second.series.empty()) families_.erase(f);
    return removed;
}

std::vector<FamilySnapshot> Registry::snapshot() const {
    std::lock_guard lock(mutex_);
    std::vector<FamilySnapshot> out;
    out.reserve(families_.size());
    for (const auto& [name, f] : families_) {
        FamilySnapshot snap{name, f.help, f.type, {}};
        snap.samples.reserve(f.series.size());
        for (const auto& [key, s] : f.series) {
            if (s.counter) snap.samples.push_back({s.labels, s.counter->value()});
            else snap.samples.push_back({s.labels, s.gauge->value()});
        }
        out.push_back(std::move(snap));
    }
    return out;
}

Registry& process_registry() {
    static Registry registry;
    return registry;
}

Scope::Scope(Registry& registry, Labels labels) : registry_(registry), labels_(std::move(labels)) {
    check_labels("(scope)", labels_);
}

Scope::~Scope() {
    std::lock_guard lock(mutex_);
    for (const auto& [name, labels] : made_) registry_.remove(name, labels);
}

Labels Scope::with(const Labels& extra) const {
    Labels all = labels_;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
}

std::shared_ptr<Counter> Scope::counter(std::string_view name, std::string_view help, const Labels& extra) {
    Labels all = with(extra);
    auto c = registry_.counter(name, help, all);
    std::lock_guard lock(mutex_);
    made_.emplace_back(std::string(name), std::move(all));
    return c;
}

std::shared_ptr<Gauge> Scope::gauge(std::string_view name, std::string_view help, const Labels& extra) {
    Labels all = with(extra);
    auto g = registry_.gauge(name, help, all);
    std::lock_guard lock(mutex_);
    made_.emplace_back(std::string(name), std::move(all));
    return g;
}

StateSet::StateSet(Scope& scope, std::string name, std::string help, std::string label)
    : scope_(scope), name_(std::move(name)), help_(std::move(help)), label_(std::move(label)) {}

void StateSet::set(const std::string& state) {
    if (!states_.count(state)) states_[state] = scope_.gauge(name_, help_, {{label_, state}});
    for (auto& [s, g] : states_) g->set(s == state ? 1.0 : 0.0);
}

}  // namespace rmig::metrics
