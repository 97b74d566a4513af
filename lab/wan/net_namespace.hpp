// Named network namespaces (ip netns: /run/netns/NAME, usable with
// `ip netns exec NAME ...`), owned: deleted on destruction. And running code
// inside one from a thread of its own, so the caller's namespace never
// changes (the network namespace is per thread, setns(2) CLONE_NEWNET).
#pragma once

#include <functional>
#include <string>

namespace rmig::wan {

class NetNamespace {
public:
    // Deletes a stale namespace of that name first (left by a run that was
    // killed), then creates it. Throws Error with what `ip` said.
    explicit NetNamespace(std::string name);
    ~NetNamespace();  // ip netns del; processes still inside keep it alive until they exit
    NetNamespace(const NetNamespace&) = delete;
    NetNamespace& operator=(const NetNamespace&) = delete;

    const std::string& name() const { return name_; }
    // Runs `fn` on a new thread that has entered this namespace, waits for it
    // and rethrows what it threw.
    void run_inside(const std::function<void()>& fn) const;

    static bool exists(const std::string& name);
    static void remove(const std::string& name);  // if it exists; throws if it cannot

private:
    std::string name_;
};

// /proc/sys/<key> ("net/ipv4/tcp_congestion_control") as the calling thread's
// network namespace sees it. Throws Error naming the key.
void write_proc_sys(const std::string& key, const std::string& value);
std::string read_proc_sys(const std::string& key);

}  // namespace rmig::wan
