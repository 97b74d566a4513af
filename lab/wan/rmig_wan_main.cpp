// rmig-wan: an emulated WAN link between two network namespaces for the lab
// (docs/wan-emulator.md). `rmig-wan up --name N ...` runs until a signal or
// --duration; `rmig-wan down --name N` cleans up after a killed one.
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "lab/wan/wan_options.hpp"

using namespace rmig;
using namespace rmig::wan;

namespace {

// Written whole or not at all: a script polling for the file never reads half.
void write_ready_file(const std::string& path, const nlohmann::json& j) {
    std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << j.dump(2) << "\n";
        if (!out.flush()) throw Error(cat("ready file ", tmp, ": cannot write"));
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(cat("ready file ", path, ": rename: ", ec.message()));
}

void print_counters(const WanLink& link) {
    std::cout << "rmig-wan: link " << link.config().name << " up " << link.seconds_up() << " s\n";
    for (size_t i = 0; i < link.paths(); ++i) {
        PathStats s = link.stats(i);
        for (auto [dir, d] : {std::pair{"a->b", s.a_to_b}, std::pair{"b->a", s.b_to_a}})
            std::cout << cat("  path ", i + 1, " ", dir, ": in ", d.packets_in, " packets (", d.bytes_in,
                             " bytes), out ", d.packets_out, " (", d.bytes_out, " bytes); dropped: queue ",
                             d.dropped_queue, ", loss ", d.dropped_loss, ", outage ", d.dropped_outage, ", reset ",
                             d.dropped_reset, ", overflow ", d.dropped_overflow, "; write errors ", d.write_errors,
                             "; resets sent back ", d.resets_sent, "\n");
        std::cout << cat("  path ", i + 1, " TUN devices dropped: a->b ", s.device_in_a_to_b, " in, ",
                         s.device_out_a_to_b, " out; b->a ", s.device_in_b_to_a, " in, ", s.device_out_b_to_a,
                         " out\n");
    }
}

int run_up(const UpOptions& o) {
    // Blocked before any thread starts, so every thread inherits the mask and
    // the signals wait for sigtimedwait below instead of killing the process
    // with the namespaces still there.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGUSR1}) sigaddset(&stop_signals, s);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    std::error_code ec;
    if (!o.ready_file.empty()) std::filesystem::remove(o.ready_file, ec);  // never a stale one
    WanLink link(o.link);
    for (size_t i = 0; i < link.paths(); ++i)
        log::info("path ", i + 1, ": ", link.ns_a(), " ", link.address_a(i), " <-> ", link.ns_b(), " ",
                  link.address_b(i), " (", link.device(i), "): ", o.link.paths[i].shape.describe());
    if (!o.ready_file.empty()) write_ready_file(o.ready_file, link.describe());
    log::info("link ", o.link.name, " is up; run programs with `ip netns exec ", link.ns_a(),
              " ...` and `ip netns exec ", link.ns_b(), " ...`");

    // SIGUSR1 starts the outage clock (--outage-clock signal) and the link
    // stays up; any other of the signals takes it down.
    int sig = 0;
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.duration_s);
    for (;;) {
        if (o.duration_s > 0) {
            double left = std::chrono::duration<double>(until - std::chrono::steady_clock::now()).count();
            if (left <= 0) {
                sig = 0;
                break;
            }
            timespec ts{};
            ts.tv_sec = static_cast<time_t>(left);
            ts.tv_nsec = static_cast<long>((left - static_cast<double>(ts.tv_sec)) * 1e9);
            sig = sigtimedwait(&stop_signals, nullptr, &ts);
        } else {
            sig = sigwaitinfo(&stop_signals, nullptr);
        }
        if (sig < 0 && errno == EINTR) continue;
        if (sig == SIGUSR1) {
            if (o.link.outage_clock_on_signal) log::info("SIGUSR1: the outages' clock starts now");
            link.start_outage_clock();
            continue;
        }
        break;
    }
    if (sig > 0) log::info("signal ", sig, ": taking the link down");
    if (o.json)
        std::cout << link.counters().dump(2) << std::endl;
    else
        print_counters(link);
    if (!o.ready_file.empty()) std::filesystem::remove(o.ready_file, ec);
    return exit_code::kOk;
}

}  // namespace

int main(int argc, char** argv) {
    log::set_prefix("rmig-wan");
    WanCommand c;
    try {
        c = parse_wan_command(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const UsageError& e) {
        std::cerr << "rmig-wan: " << e.what() << "\nTry 'rmig-wan --help'.\n";
        return exit_code::kUsage;
    }
    try {
        switch (c.kind) {
            case WanCommand::Kind::help:
                std::cout << wan_help();
                return exit_code::kOk;
            case WanCommand::Kind::down:
                WanLink::remove_stale(c.name);
                return exit_code::kOk;
            case WanCommand::Kind::up:
                return run_up(c.up);
        }
    } catch (const UsageError& e) {
        std::cerr << "rmig-wan: " << e.what() << "\n";
        return exit_code::kUsage;
    } catch (const std::exception& e) {
        std::cerr << "rmig-wan: " << e.what() << "\n";
        return exit_code::kFailed;
    }
    return exit_code::kFailed;
}
