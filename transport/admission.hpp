// Bounds what a listener holds for peers that have not yet proved who they
// are (a hello still arriving, a TLS handshake under way), so that strangers
// who open connections and go silent cannot starve it (docs/security.md,
// "Listeners under a flood"). Pure bookkeeping: the listener owns the
// connections and drops the ones this names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace rmig::transport {

struct AdmissionLimits {
    size_t total = 256;    // pending in all
    size_t per_peer = 64;  // pending from one address
};

class Admission {
public:
    explicit Admission(AdmissionLimits limits);

    // Takes entry `id` from `address`; returns the entries to drop to stay
    // within the limits: the oldest of `address` when it is at its own bound,
    // else, when the total is at its bound, the oldest of the address holding
    // the most. A new arrival is never the one dropped: a legitimate peer
    // finishes its handshake at once, a flooder's connections age.
    // Given `stalled`, the oldest entry it names goes before older ones that
    // are making progress (a handshake whose peer is talking).
    std::vector<uint64_t> admit(uint64_t id, const std::string& address,
                                const std::function<bool(uint64_t)>& stalled = {});
    void remove(uint64_t id);  // done or dropped; unknown ids are ignored
    size_t size() const { return peer_of_.size(); }
    size_t from(const std::string& address) const;
    const AdmissionLimits& limits() const { return limits_; }

private:
    uint64_t drop_oldest_of(const std::string& address, const std::function<bool(uint64_t)>& stalled);

    AdmissionLimits limits_;
    std::map<std::string, std::deque<uint64_t>> by_peer_;  // ids in arrival order
    std::map<uint64_t, std::string> peer_of_;
};

// The address part of a peer name: "10.0.0.2:7070" -> "10.0.0.2",
// "[fe80::1]:7070" -> "fe80::1"; a name without a port is returned whole.
std::string peer_address(const std::string& peer);

}  // namespace rmig::transport
