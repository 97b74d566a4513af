#include "transport/admission.hpp"

#include <algorithm>

namespace rmig::transport {

Admission::Admission(AdmissionLimits limits) : limits_(limits) {
    limits_.total = std::max<size_t>(limits_.total, 1);
    limits_.per_peer = std::clamp<size_t>(limits_.per_peer, 1, limits_.total);
}

std::vector<uint64_t> Admission::admit(uint64_t id, const std::string& address,
                                       const std::function<bool(uint64_t)>& stalled) {
    std::vector<uint64_t> drop;
    if (from(address) >= limits_.per_peer) drop.push_back(drop_oldest_of(address, stalled));
    while (size() >= limits_.total) {
        auto most = std::max_element(by_peer_.begin(), by_peer_.end(), [](const auto& a, const auto& b) {
            return a.second.size() < b.second.size();
        });
        drop.push_back(drop_oldest_of(most->first, stalled));
    }
    by_peer_[address].push_back(id);
    peer_of_[id] = address;
    return drop;
}

uint64_t Admission::drop_oldest_of(const std::string& address, const std::function<bool(uint64_t)>& stalled) {
    auto& q = by_peer_.at(address);
    auto it = q.begin();
    if (stalled) {
        auto s = std::find_if(q.begin(), q.end(), stalled);
        if (s != q.end()) it = s;
    }
    uint64_t id = *it;
    q.erase(it);
    if (q.empty()) by_peer_.erase(address);
    peer_of_.erase(id);
    return id;
}

void Admission::remove(uint64_t id) {
    auto it = peer_of_.find(id);
    if (it == peer_of_.end()) return;
    auto q = by_peer_.find(it->second);
    q->second.erase(std::find(q->second.begin(), q->second.end(), id));
    if (q->second.empty()) by_peer_.erase(q);
    peer_of_.erase(it);
}

size_t Admission::from(const std::string& address) const {
    auto it = by_peer_.find(address);
    return it == by_peer_.end() ? 0 : it->second.size();
}

std::string peer_address(const std::string& peer) {
    if (!peer.empty() && peer.front() == '[') {
        auto close = peer.find(']');
        return close == std::string::npos ? peer : peer.substr(1, close - 1);
    }
    auto colon = peer.rfind(':');
    if (colon == std::string::npos || peer.find(':') != colon) return peer;  // no port, or bare IPv6
    return peer.substr(0, colon);
}

}  // namespace rmig::transport
