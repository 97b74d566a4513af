// Starts a memory-mode destination on its own thread and returns once it
// listens, with the address a source connects to.
#pragma once

#include <chrono>
#include <future>
#include <string>

#include "common/error.hpp"
#include "engine/memory/memory_dest.hpp"

namespace rmig::test {

// `cfg` must outlive `result` (the destination reads it until it returns).
inline std::string start_receiving(engine::MemoryDestConfig& cfg, std::future<engine::MemoryDestResult>& result) {
    std::promise<std::string> listening;
    auto addr = listening.get_future();
    cfg.on_listening = [&listening](const std::string& a) { listening.set_value(a); };
    result = std::async(std::launch::async, [&cfg] { return engine::receive_memory(cfg); });
    if (addr.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
        throw Error(cat("the memory destination did not listen on ", cfg.listen_uri, " within 10 s"));
    return addr.get();
}

}  // namespace rmig::test
