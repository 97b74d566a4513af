// rmig-synth dest: receive the guest through the C API, then check every
// page against the hash list that came as the device state.
#include <chrono>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/units.hpp"
#include "engine/capi/rmig.h"
#include "lab/synth/security_setup.hpp"
#include "lab/synth/guest_memory.hpp"
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

    int rc = rmig_dest_receive(h.d);
    std::string error = rc == 0 ? l.error : rmig_dest_error(h.d);
    rmig_dest_stats st{};
    rmig_dest_get_stats(h.d, &st);
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
    out["ok"] = error.empty();
    out["error"] = error;
    if (o.json) {
        std::cout << out.dump() << "\n";
    } else {
        std::cout << "dest " << (error.empty() ? "ok" : "FAILED") << ": " << st.rounds << " rounds, "
                  << st.pages_placed << " pages placed in " << format_millis(st.seconds * 1000) << "; verified "
                  << v.verified << " pages (" << v.zero << " zero), " << v.mismatches << " mismatches\n";
        if (!error.empty()) std::cout << "error: " << error << "\n";
    }
    if (!migrated) return exit_code::kFailed;
    return v.mismatches ? kExitMismatch : (error.empty() ? exit_code::kOk : exit_code::kFailed);
}

}  // namespace rmig::synth
