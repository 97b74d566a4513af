// The authenticated sessions one side knows: a listener fills it when a
// control channel finishes TLS; a connecting side when its own control channel
// does. Data channels look their session up here, and each channel id may be
// claimed once. Entries live as long as the lease the control channel holds.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "wire/handshake.hpp"
#include "security/secret.hpp"

namespace rmig::security {

class SessionTable : public std::enable_shared_from_this<SessionTable> {
public:
    // Registers the session until the returned lease is destroyed; replaces an
    // entry with the same id (a new control channel for it).
    std::shared_ptr<void> add(const wire::SessionId& id, const SessionSecret& secret);
    std::optional<SessionSecret> find(const wire::SessionId& id) const;
    bool known(const wire::SessionId& id) const { return find(id).has_value(); }
    // Marks `channel` of `id` as taken; false if the session is unknown or the
    // channel was taken already (a replayed or duplicated channel).
    bool claim(const wire::SessionId& id, uint32_t channel);

private:
    struct Entry {
        SessionSecret secret;
        std::set<uint32_t> claimed;
        uint64_t generation = 0;
    };
    void remove(const wire::SessionId& id, uint64_t generation);

    mutable std::mutex mu_;
    std::map<wire::SessionId, Entry> entries_;
    uint64_t generations_ = 0;
};

}  // namespace rmig::security
