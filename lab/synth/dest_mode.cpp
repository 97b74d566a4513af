// rmig-synth dest: receive the guest through the C API, then check every
// page against the hash list that came as the device state. In post-copy the
// guest starts here before its pages are all in: --guest-readers threads run
// it (GuestReaders), checking every page they read, until the session ends.
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/units.hpp"
#include "engine/capi/rmig.h"
#include "lab/synth/security_setup.hpp"
#include "lab/synth/guest_memory.hpp"
#include "lab/synth/guest_readers.hpp"
#include "lab/synth/hash_blob.hpp"
#include "lab/synth/verify.hpp"
#include "lab/synth/modes.hpp"

namespace rmig::synth {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct DestHandle {
    rmig_dest* d = rmig_dest_new();
    ~DestHandle() { rmig_dest_free(d); }
    void check(int rc) const {
        if (rc != 0) throw Error(rmig_dest_error(d));
    }
};

struct Listening {
    const Options& o;
    std::string error;
};

void on_listening(void* opaque, const char* uri) {
    auto* l = static_cast<Listening*>(opaque);
    if (!l->o.quiet) std::cerr << "rmig-synth dest: listening on " << uri << "\n";
    if (!l->o.port_file.empty()) {
        std::string tmp = l->o.port_file + ".tmp";
        {
            std::ofstream f(tmp);
            f << uri << "\n";
            if (!f) l->error = cat("cannot write ", tmp);
        }
        if (std::rename(tmp.c_str(), l->o.port_file.c_str()) != 0) l->error = cat("cannot rename ", tmp);
    }
}

void on_round(void* opaque, unsigned round, uint64_t pages) {
    auto* l = static_cast<Listening*>(opaque);
    if (!l->o.quiet) std::cerr << "rmig-synth dest: round " << round << " placed (" << pages << " pages)\n";
}

// Post-copy: the guest runs here from start() on.
struct Postcopy {
    const Options& o;
    GuestReaders readers;
    std::string start_error;  // the device state did not describe this guest
    std::string failed_why;   // on_postcopy_failed
};

void on_postcopy_start(void* opaque, const void* state, size_t len) {
    auto* p = static_cast<Postcopy*>(opaque);
    try {
        p->readers.start(decode_hash_blob({static_cast<const std::byte*>(state), len}));
        if (!p->o.quiet)
            std::cerr << "rmig-synth dest: post-copy: the guest runs here now (" << p->readers.readers()
                      << " reader threads); its missing pages follow\n";
    } catch (const std::exception& e) {
        p->start_error = e.what();
        std::cerr << "rmig-synth dest: post-copy start: " << e.what() << "\n";
    }
}

void on_postcopy_failed(void* opaque, const char* why) {
    auto* p = static_cast<Postcopy*>(opaque);
    p->readers.abandon();  // before rmig stops catching faults: what is read from now on may be zeros
    p->failed_why = why ? why : "";
    if (!p->o.quiet) std::cerr << "rmig-synth dest: post-copy failed: " << p->failed_why << "; the guest stops\n";
}

}  // namespace

int run_dest(const Options& o) {
    Mapping mem(o.size);
    Listening l{o, {}};
    DestHandle h;
    if (!h.d) throw Error("out of memory");
    h.check(rmig_dest_add_region(h.d, mem.data(), o.size, 0, "ram"));
    h.check(rmig_dest_set_uri(h.d, o.uri.c_str()));
    h.check(rmig_dest_set_workers(h.d, o.expect_workers));
    h.check(rmig_dest_set_timeout_ms(h.d, static_cast<uint64_t>(o.timeout_s * 1000),
                                     static_cast<uint64_t>(o.step_timeout_s * 1000)));
    apply_security(o.security, h.d, [&](int rc) { h.check(rc); }, rmig_dest_set_psk_file, rmig_dest_set_tls,
                   rmig_dest_set_encrypt, rmig_dest_set_insecure_plaintext);
    h.check(rmig_dest_set_on_listening(h.d, on_listening, &l));
    h.check(rmig_dest_set_on_round(h.d, on_round, &l));
    Postcopy pcg{o, GuestReaders(mem, o.guest_readers, o.guest_read_pages_per_second), {}, {}};
    h.check(rmig_dest_set_on_postcopy(h.d, on_postcopy_start, on_postcopy_failed, &pcg));
    h.check(rmig_dest_set_postcopy_recover_ms(h.d, static_cast<uint64_t>(o.postcopy_recover_s * 1000)));

    int rc = rmig_dest_receive(h.d);
    pcg.readers.stop();  // the session is over: the guest's readers end here
    std::string error = rc == 0 ? l.error : rmig_dest_error(h.d);
    if (error.empty() && !pcg.start_error.empty()) error = pcg.start_error;
    rmig_dest_stats st{};
    rmig_dest_get_stats(h.d, &st);
    rmig_dest_postcopy pc{};
    rmig_dest_get_postcopy(h.d, &pc);
    rmig_postcopy_recovery rec{};
    rmig_dest_get_postcopy_recovery(h.d, &rec);
    const GuestReaders::Stats guest = pcg.readers.stats();
    const double push_rate = pc.phase_s > 0 ? static_cast<double>(pc.pending_pages) * kPageSize / pc.phase_s : 0;
    json out = {{"role", "dest"}, {"size", o.size}, {"rounds", st.rounds}, {"pages_placed", st.pages_placed},
                {"seconds", st.seconds}, {"session", st.session},
                {"security", security::describe(o.security)}};
    Verdict v;
    double verify_ms = 0;
    bool migrated = rc == 0;
    if (migrated) {
        try {
            size_t len = 0;
            auto* p = static_cast<const std::byte*>(rmig_dest_device_state(h.d, &len));
            HashList list = decode_hash_blob({p, len});
            auto t = Clock::now();
            v = verify_pages(mem, list, o.threads);
            verify_ms = std::chrono::duration<double, std::milli>(Clock::now() - t).count();
            out["source_writes"] = list.writes;
            if (v.mismatches) error = cat(v.mismatches, " of ", v.verified, " pages differ from the source");
        } catch (const std::exception& e) {
            error = e.what();
            migrated = false;
        }
    }
    out["verified"] = v.verified;
    out["mismatches"] = v.mismatches;
    out["first_mismatches"] = v.first_bad;
    out["zero_pages"] = v.zero;
    out["verify_ms"] = verify_ms;
    // What the guest's readers saw while it ran here: a page that was not
    // the source's is as bad as a mismatch after the migration.
    if (guest.invalid && error.empty())
        error = cat(guest.invalid, " of ", guest.checked, " pages the guest read during post-copy were not the source's");
    out["postcopy"] = {{"switched", pc.switched != 0},
                       {"pending_pages", pc.pending_pages},
                       {"faults", pc.faults},
                       {"fetched_pages", pc.fetched_pages},
                       {"rdma_reads", pc.rdma_reads != 0},
                       {"phase_s", pc.phase_s},
                       {"push_rate", push_rate},
                       {"pulled_pages", rmig_dest_postcopy_pulled_pages(h.d)},
                       {"resumed", rec.resumed},
                       {"broke", rec.broke ? rec.broke : ""},
                       {"fault_p50_us", pc.fault_p50_us},
                       {"fault_p99_us", pc.fault_p99_us},
                       {"fault_max_us", pc.fault_max_us},
                       {"dropped_early_pages", pc.dropped_early_pages},
                       {"drop_early_ms", pc.drop_early_ms},
                       {"dropped_in_blackout_pages", pc.dropped_in_blackout_pages},
                       {"drop_in_blackout_ms", pc.drop_in_blackout_ms},
                       {"guest_readers", o.guest_readers},
                       {"guest_started", pcg.readers.started()},
                       {"pages_checked", guest.checked},
                       {"invalid_pages", guest.invalid},
                       {"zero_pages_read", guest.zero},
                       {"first_invalid", guest.first_invalid},
                       {"failed", pcg.failed_why}};
    out["ok"] = error.empty();
    out["error"] = error;
    std::string pc_line;
    if (pc.switched) {
        std::ostringstream line;
        line << "post-copy: " << pc.pending_pages << " pages pending at the switch, " << pc.faults << " faults ("
             << pc.fetched_pages << " fetched" << (pc.rdma_reads ? " by rdma reads" : "") << "), fault latency p50 "
             << std::fixed << std::setprecision(0) << pc.fault_p50_us << " us p99 " << pc.fault_p99_us
             << " us, phase " << std::defaultfloat << format_millis(pc.phase_s * 1000) << ", " << std::fixed
             << std::setprecision(1) << push_rate / 1e6 << " MB/s over the phase; the guest read "
             << guest.checked << " pages, " << guest.invalid << " invalid";
        if (rec.resumed > 0) line << "; resumed " << rec.resumed << "x after a lost link (" << rec.broke << ")";
        line << "\n";
        pc_line = line.str();
    }
    if (o.json) {
        if (!o.quiet && !pc_line.empty()) std::cerr << "rmig-synth dest: " << pc_line;
        std::cout << out.dump() << "\n";
    } else {
        std::cout << "dest " << (error.empty() ? "ok" : "FAILED") << ": " << st.rounds << " rounds, "
                  << st.pages_placed << " pages placed in " << format_millis(st.seconds * 1000) << "; verified "
                  << v.verified << " pages (" << v.zero << " zero), " << v.mismatches << " mismatches\n";
        std::cout << pc_line;
        if (!error.empty()) std::cout << "error: " << error << "\n";
    }
    if (!migrated) return exit_code::kFailed;
    return v.mismatches || guest.invalid ? kExitMismatch : (error.empty() ? exit_code::kOk : exit_code::kFailed);
}

}  // namespace rmig::synth
