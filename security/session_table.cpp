#include "security/session_table.hpp"

namespace rmig::security {

std::shared_ptr<void> SessionTable::add(const wire::SessionId& id, const SessionSecret& secret) {
    uint64_t gen;
    {
        std::lock_guard lk(mu_);
        gen = ++generations_;
        entries_[id] = Entry{secret, {}, gen};
    }
    std::weak_ptr<SessionTable> weak = weak_from_this();
    return std::shared_ptr<void>(nullptr, [weak, id, gen](void*) {
        if (auto t = weak.lock()) t->remove(id, gen);
    });
}

std::optional<SessionSecret> SessionTable::find(const wire::SessionId& id) const {
    std::lock_guard lk(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    return it->second.secret;
}

bool SessionTable::claim(const wire::SessionId& id, uint32_t channel) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(id);
    return it != entries_.end() && it->second.claimed.insert(channel).second;
}

void SessionTable::remove(const wire::SessionId& id, uint64_t generation) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end() && it->second.generation == generation) entries_.erase(it);
}

}  // namespace rmig::security
