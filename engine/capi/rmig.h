/*
 * rmig.h - memory-mode live migration for any VMM (C API, version 4)
 *
 * SYNOPSIS
 *   #include <rmig.h>                  cc ... $(pkg-config --cflags --libs rmig)
 *
 *   Source                                   Destination
 *   s = rmig_source_new();                   d = rmig_dest_new();
 *   rmig_source_add_region(s, p, n, gpa, "ram0");
 *                                            rmig_dest_add_region(d, q, n, gpa, "ram0");
 *   rmig_source_set_uri(s, "tcp:H:7070");    rmig_dest_set_uri(d, "tcp:0.0.0.0:7070");
 *   rmig_source_set_psk_file(s, "key.psk", NULL);
 *                                            rmig_dest_set_psk_file(d, "key.psk", NULL);
 *   rmig_source_set_callbacks(s, &cb);       rmig_dest_receive(d);      (blocks)
 *   rmig_source_migrate(s);     (blocks)     state = rmig_dest_device_state(d, &len);
 *   rmig_source_free(s);                     rmig_dest_free(d);
 *
 * DESCRIPTION
 *   The source sends every page of its registered regions (round 0), then the
 *   pages dirtied meanwhile, round after round, over `workers` tcp channels,
 *   until the predicted downtime (remaining dirty bytes / measured bandwidth)
 *   fits the downtime budget. It then calls pause(): the VMM stops its vCPUs
 *   and hands over its device state; the last dirty pages and that blob are
 *   sent, and rmig_source_migrate() returns 0 only after the destination has
 *   confirmed that it holds every page and the blob. On failure the source
 *   memory is untouched (the engine only reads it), resume() is called if
 *   pause() was, and the destination must not run the guest.
 *
 *   Regions: host pointer and size page aligned (4096), size a multiple of
 *   4096; the destination registers the same names and sizes in the same
 *   order (else it refuses the session). gpa is carried, not compared.
 *   Pointers stay owned by the caller and must outlive the call that uses them.
 *
 * DIRTY LOG (rmig_source_set_dirty_log)
 *   RMIG_DIRTY_UFFD_WP   the kernel tracks writes with userfaultfd
 *                        write-protect. Sees writes made through this
 *                        process's mapping only (vCPU threads of a TCG or
 *                        user-space VMM), not KVM guest writes or DMA, and
 *                        not read(2)-style kernel writes (these fail EFAULT).
 *   RMIG_DIRTY_CALLER    fn(opaque, region, words, nwords) is called from the
 *                        engine's round thread once per region per round; it
 *                        writes the pages dirtied since its previous call into
 *                        `words` (zeroed for it) in KVM_GET_DIRTY_LOG form:
 *                        bit i of the little-endian 64-bit word w = page
 *                        w*64+i of the region; nwords = ceil(pages/64). The
 *                        first call per region comes before round 0 reads any
 *                        page and its bits are dropped (round 0 sends
 *                        everything): enable logging before migrating. The
 *                        last call comes after pause(). Return 0, or nonzero
 *                        to fail the migration.
 *
 * SECURITY (the policy of the rmig command, docs/security.md)
 *   Every session is authenticated (TLS 1.3 on the control channel, a token
 *   on each data channel) and every frame sealed with AES-256-GCM, with the
 *   credentials given by one of
 *     rmig_*_set_psk(h, key, len, identity)     a pre-shared key in memory
 *     rmig_*_set_psk_file(h, path, identity)    the same, from a file (hex or
 *                                               base64, as --psk-file)
 *     rmig_*_set_tls(h, cert, key, ca, peer)    mutual X.509 (PEM files)
 *   the same kind and key on both sides (identity NULL: "rmig"; peer NULL:
 *   any certificate the CA signed). rmig_*_set_encrypt(h, 0) keeps the
 *   authentication but leaves data channels unencrypted (both sides must
 *   agree). Without credentials migrate() / receive() fail and say what to
 *   set, unless rmig_*_set_insecure_plaintext(h, 1) was called AND the URI
 *   is a loopback address (127.0.0.0/8, ::1, localhost): plaintext is never
 *   implicit, and never between hosts. A peer with other credentials is
 *   refused at the handshake ("authentication failed ..."): the source fails
 *   before anything is read, the destination turns it away and keeps waiting
 *   for the right source. The setters check their input at once (the key
 *   file is read, the certificate files loaded); each replaces the
 *   credentials set before.
 *
 * CANCEL (rmig_source_cancel, rmig_dest_cancel: any thread)
 *   rmig_source_cancel() ends a running rmig_source_migrate() with -1 and
 *   "migration cancelled by the caller": workers stop between pages, the
 *   destination gets an abort (its receive() fails with "source aborted:
 *   migration cancelled by the caller", nothing there may run), and resume()
 *   is called if pause() was. It returns at once; migrate() returns as soon
 *   as the step under way ends, at most ~2 s later (then every channel is
 *   shut). Called before migrate(), migrate() fails at once. Once the last
 *   piece of the device state is sent the destination may already hold the
 *   guest: a cancel from then on is ignored and migrate() reports the
 *   destination's answer.
 *
 * CALLBACKS (struct rmig_source_callbacks, all called on the migrate thread)
 *   pause      required. Stop every writer of the regions, then set *state and
 *              *state_len to the device state (it may be empty: NULL, 0); the
 *              buffer must stay valid until rmig_source_migrate() returns.
 *              Nothing may write the regions after pause() returns. At most
 *              256 MiB. Return nonzero to fail the migration.
 *   resume     optional. A failure after pause(): run the guest again (not
 *              after a switch to post-copy, see POST-COPY).
 *   throttle   optional. Auto-converge: slow the guest to `percent` (1..99)
 *              of its CPU time; without it a migration that does not converge
 *              gives up (rmig_source_migrate returns -1, the guest runs on).
 *   round      optional. After each pre-copy round's dirty log was collected.
 *
 * DECISIONS (rmig_source_set_on_decision, on the migrate thread)
 *   fn(opaque, d) after each pre-copy round, once the convergence policy has
 *   decided what comes next and before it is acted on: another round, a
 *   throttle (throttle() has just been called with d->throttle_percent), the
 *   switchover (pause() comes next) or giving up (migrate() then fails and
 *   its error quotes d->reason). It says why a migration converges, is
 *   throttled or gives up, and when it is forecast to switch over; the round
 *   callback fires earlier, at the dirty-log collection, and knows none of
 *   this. d and d->reason are valid during the call only. Fields may be
 *   added at the end of struct rmig_decision (only ever passed by pointer).
 *
 * POST-COPY (rmig_source_set_postcopy, rmig_dest_set_on_postcopy)
 *   Off by default. rmig_source_set_postcopy(s, 1, n) lets the source switch
 *   to post-copy: after n pre-copy rounds (n >= 1; 1 = right after the full
 *   first round), whatever the policy decided then, or with n = 0 once the
 *   convergence policy finds pre-copy will not fit the downtime budget
 *   (where it would throttle or give up; throttle() is then never called).
 *   A pre-copy that converges sooner (n = 0: at all) ends in an ordinary
 *   switchover. The decision callback still gets the policy's decision; the
 *   switch may follow it instead of its action (a switchover, a throttle
 *   whose throttle_percent was never applied, a give-up).
 *   At the switch pause() is called as for a switchover; the device state
 *   and the list of pages not sent yet go to the destination, which drops
 *   those pages from its regions, catches touches of them with userfaultfd
 *   (MISSING) and calls start(opaque, state, len) on a thread of its own
 *   (loading devices may touch missing pages; they are served meanwhile): the
 *   VMM starts its guest there and returns (state is valid during the call;
 *   rmig_dest_device_state() has it too once receive() returned). A guest
 *   thread touching a missing page blocks until it is placed: the pages
 *   faulted on are fetched first, the rest pushed in the background.
 *   rmig_source_migrate() and rmig_dest_receive() return 0 once the
 *   destination has placed every page. A destination without a start
 *   callback refuses post-copy when the source switches (the migration
 *   fails, the source resumes its guest). Memory the kernel touches on the
 *   guest's behalf (KVM, vhost) faults only where the process may catch
 *   kernel faults (root, or vm.unprivileged_userfaultfd=1).
 *   After the switch a failure is final: the guest has run on the
 *   destination, the source's copy is stale and resume() is NOT called; the
 *   destination calls failed(opaque, why), on its receive thread, before it
 *   stops catching faults (missing pages would then read as zeros): stop
 *   the guest there. Neither host then holds the whole guest.
 *   rmig_source_get_postcopy() and rmig_dest_get_postcopy() describe the
 *   phase once migrate() / receive() returned (all 0 when it did not
 *   switch).
 *   A LOST LINK after the start is not yet a failure: the destination keeps
 *   its guest running (threads touching missing pages wait) and listens on
 *   for the same session; the source opens new channels to it, is told which
 *   pages are still missing, and pushes those. Each side tries for its
 *   recovery window (rmig_*_set_postcopy_recover_ms, default 120000; 0:
 *   fail at once) before failing as above. An abort, a protocol error, a
 *   failed start() or a cancel is final. rmig_*_get_postcopy_recovery()
 *   count the resumptions and say what broke first.
 *   Over rdma with plain data channels the destination reads the pending
 *   pages itself (a pull of RDMA READs) instead of the source pushing them;
 *   rmig_source_set_postcopy_pull(s, 0) keeps the push (version 5), and
 *   rmig_dest_postcopy_pulled_pages() says how many pages the pull placed.
 *
 * RETURN VALUES
 *   Functions returning int give 0 on success and -1 on failure;
 *   rmig_source_error() / rmig_dest_error() then say what failed and why (the
 *   text stays valid until the next call on that handle). Constructors return
 *   NULL only when out of memory. No function throws or calls exit().
 *
 * THREADS
 *   A handle belongs to one thread, except rmig_source_cancel() and
 *   rmig_dest_cancel(), which any thread may call until the handle is freed.
 */
#ifndef RMIG_CAPI_RMIG_H
#define RMIG_CAPI_RMIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 2: security setters (plaintext now needs rmig_*_set_insecure_plaintext on
 * loopback), rmig_source_cancel.
 * 3: rmig_source_set_on_decision, struct rmig_decision (additions only: the
 * library stays librmig.so.2, the new function has symbol version RMIG_3).
 * 4: post-copy: rmig_source_set_postcopy, rmig_source_get_postcopy,
 * rmig_dest_set_on_postcopy, rmig_dest_get_postcopy and their structs
 * (additions only, symbol version RMIG_4).
 * 5: post-copy recovery: rmig_source_set_postcopy_recover_ms,
 * rmig_dest_set_postcopy_recover_ms, rmig_source_get_postcopy_recovery,
 * rmig_dest_get_postcopy_recovery, struct rmig_postcopy_recovery;
 * rmig_source_set_postcopy_pull, rmig_dest_postcopy_pulled_pages (RMIG_5). */
#define RMIG_CAPI_VERSION 5
#define RMIG_PAGE_SIZE 4096

typedef struct rmig_source rmig_source;
typedef struct rmig_dest rmig_dest;

enum rmig_dirty_log { RMIG_DIRTY_UFFD_WP = 0, RMIG_DIRTY_CALLER = 1 };
enum rmig_codec { RMIG_CODEC_NONE = 0, RMIG_CODEC_LZ4 = 1, RMIG_CODEC_ZSTD = 2 };

typedef int (*rmig_dirty_log_fn)(void* opaque, unsigned region, uint64_t* words, size_t nwords);

struct rmig_round {
    unsigned round;        /* 0 = the full first round */
    uint64_t pages_sent;   /* pages this round sent (zero markers included) */
    uint64_t dirty_pages;  /* distinct pages dirtied meanwhile: the next round's */
    double seconds;        /* this round, dirty-log collection included */
    double elapsed;        /* since migration start (tracking start) */
};

struct rmig_source_callbacks {
    void* opaque;  /* first argument of every callback */
    int (*pause)(void* opaque, const void** state, size_t* state_len);
    void (*resume)(void* opaque);
    void (*throttle)(void* opaque, unsigned percent);
    void (*round)(void* opaque, const struct rmig_round* round);
};

/* What the convergence policy does after a pre-copy round. */
enum rmig_action {
    RMIG_ACTION_ROUND = 0,      /* run another pre-copy round */
    RMIG_ACTION_THROTTLE = 1,   /* slow the guest (throttle() was called), then another round */
    RMIG_ACTION_SWITCHOVER = 2, /* pause() and send what is left: the final round */
    RMIG_ACTION_GIVE_UP = 3,    /* fail the migration with `reason`; the guest runs on */
    RMIG_ACTION_POSTCOPY = 4    /* (API 4) pause() and switch to post-copy: the guest starts on the destination */
};

/* One decision of the convergence policy (rmig_source_set_on_decision). */
struct rmig_decision {
    unsigned round;                /* the pre-copy round it follows (0 = the full first round) */
    enum rmig_action action;
    uint64_t remaining_pages;      /* dirty pages still to send after that round */
    uint64_t remaining_bytes;      /* remaining_pages * RMIG_PAGE_SIZE */
    double predicted_downtime_ms;  /* sending them at the measured rate; -1 while unknown */
    unsigned throttle_percent;     /* throttle in force after this decision (0: none) */
    int converging;                /* 1: forecast to fit the downtime budget within the limits */
    double forecast_seconds;       /* forecast time to switchover (0 at switchover);
                                      -1 when unknown or not converging */
    const char* reason;            /* why, in words (never NULL or empty); valid during the call */
};

struct rmig_source_stats {
    int ok;                     /* 1 after a confirmed migration */
    int paused;                 /* pause() was called */
    unsigned rounds;            /* rounds sent, the final (paused) one included */
    uint64_t pages_sent;        /* page entries sent, zero markers included */
    uint64_t zero_pages;
    uint64_t compressed_pages;
    uint64_t bytes_sent;        /* page batch bytes on the wire */
    uint64_t final_pages;       /* pages sent while paused */
    double seconds;             /* whole migration */
    double downtime_ms;         /* pause() called -> destination confirmed */
    unsigned throttle_percent;  /* last throttle asked for (0: none) */
    char session[40];           /* hex session id, NUL terminated */
};

/* Where the downtime went, in order (milliseconds; they add up to at most
 * downtime_ms). Filled once pause() was called; all 0 before. */
struct rmig_switchover {
    double pause_ms;         /* the pause() callback */
    double collect_ms;       /* collecting the last dirty set */
    double final_round_ms;   /* sending the final round's pages */
    double device_state_ms;  /* handing the device state to the link */
    double placed_ms;        /* until the destination had placed the final round */
    double confirm_ms;       /* until it confirmed (device state received) */
    uint64_t final_pages;    /* pages in the final round */
};

struct rmig_dest_stats {
    int ok;
    unsigned rounds;
    uint64_t pages_placed;
    size_t device_state_bytes;
    double seconds;
    char session[40];
};

/* The post-copy phase as the source saw it (rmig_source_get_postcopy). */
struct rmig_source_postcopy {
    int switched;            /* 1: the guest was started on the destination before it had every page */
    uint64_t pending_pages;  /* pages the destination did not have at the switch */
    uint64_t served_pages;   /* of those, sent first because the destination's guest touched them */
    int rdma_reads;          /* 1: faulted pages were read one-sided from the source's memory */
    double phase_s;          /* guest started on the destination -> it had every page */
    uint64_t pushed_bytes;   /* page batch bytes of the background push */
    const char* reason;      /* why it switched ("after 1 round", the policy's reason; "" when it did
                                not); never NULL, valid until the handle is freed */
};

/* The post-copy phase as the destination saw it (rmig_dest_get_postcopy). */
struct rmig_dest_postcopy {
    int switched;            /* 1: start() was called */
    uint64_t pending_pages;  /* pages missing at the switch */
    uint64_t faults;         /* distinct missing pages the guest touched before they were pushed */
    uint64_t fetched_pages;  /* of those, fetched on demand rather than pushed */
    int rdma_reads;          /* 1: faulted pages were read one-sided from the source's memory */
    double phase_s;          /* guest started -> every page placed */
    double fault_p50_us;     /* fault -> page placed, over `faults` (0 without faults) */
    double fault_p99_us;
    double fault_max_us;
    /* Missing pages are dropped from memory before the guest starts: most
     * while the source's guest still runs, the rest in the blackout. */
    uint64_t dropped_early_pages, dropped_in_blackout_pages;
    double drop_early_ms, drop_in_blackout_ms;
};

/* Post-copy after a lost link (rmig_*_get_postcopy_recovery). */
struct rmig_postcopy_recovery {
    unsigned resumed;        /* times the phase went on over new channels */
    const char* broke;       /* what broke first ("" when nothing did); never NULL, valid until the handle is freed */
};

/* Source */
rmig_source* rmig_source_new(void);
void rmig_source_free(rmig_source* s);  /* NULL is fine */
int rmig_source_add_region(rmig_source* s, void* host, size_t size, uint64_t gpa, const char* name);
int rmig_source_set_uri(rmig_source* s, const char* uri);       /* "tcp:HOST:PORT" */
int rmig_source_set_workers(rmig_source* s, unsigned workers);  /* 1..64, default 2 */
int rmig_source_set_codec(rmig_source* s, enum rmig_codec codec, int level); /* level 0 = default */
int rmig_source_set_downtime_ms(rmig_source* s, double budget_ms);           /* default 300 */
int rmig_source_set_limits(rmig_source* s, unsigned max_rounds, double max_seconds); /* 30, 600 */
int rmig_source_set_dirty_log(rmig_source* s, enum rmig_dirty_log kind, rmig_dirty_log_fn fn, void* opaque);
int rmig_source_set_callbacks(rmig_source* s, const struct rmig_source_callbacks* cb);
/* Called after each convergence decision (see DECISIONS); fn NULL: none. */
int rmig_source_set_on_decision(rmig_source* s, void (*fn)(void* opaque, const struct rmig_decision* d), void* opaque);
/* Post-copy (see POST-COPY): enable 0/1; after_rounds 0 = when pre-copy will not converge. */
int rmig_source_set_postcopy(rmig_source* s, int enable, unsigned after_rounds);
/* How long a lost link after the switch is retried (see POST-COPY); 0: not at all. */
int rmig_source_set_postcopy_recover_ms(rmig_source* s, uint64_t ms);
/* Let the destination pull the pending pages where it can (1, default) or always push (0). */
int rmig_source_set_postcopy_pull(rmig_source* s, int enable);
/* Security (see SECURITY): key of at least 16 bytes (copied); identity NULL = "rmig". */
int rmig_source_set_psk(rmig_source* s, const void* key, size_t len, const char* identity);
int rmig_source_set_psk_file(rmig_source* s, const char* path, const char* identity);
int rmig_source_set_tls(rmig_source* s, const char* cert_file, const char* key_file, const char* ca_file,
                        const char* peer_name);
int rmig_source_set_encrypt(rmig_source* s, int encrypt);             /* default 1 */
int rmig_source_set_insecure_plaintext(rmig_source* s, int plaintext); /* loopback only; default 0 */
int rmig_source_migrate(rmig_source* s);  /* blocks; once per handle */
void rmig_source_cancel(rmig_source* s);  /* any thread: migrate() fails, see CANCEL */
int rmig_source_get_stats(const rmig_source* s, struct rmig_source_stats* out);
int rmig_source_get_switchover(const rmig_source* s, struct rmig_switchover* out);
int rmig_source_get_postcopy(const rmig_source* s, struct rmig_source_postcopy* out);
int rmig_source_get_postcopy_recovery(const rmig_source* s, struct rmig_postcopy_recovery* out);
int rmig_source_cancelled(const rmig_source* s);  /* 1 if migrate() ended by rmig_source_cancel */
const char* rmig_source_error(const rmig_source* s);  /* "" when none */

/* Destination */
rmig_dest* rmig_dest_new(void);
void rmig_dest_free(rmig_dest* d);
int rmig_dest_add_region(rmig_dest* d, void* host, size_t size, uint64_t gpa, const char* name);
int rmig_dest_set_uri(rmig_dest* d, const char* listen_uri);  /* port 0 picks one */
int rmig_dest_set_workers(rmig_dest* d, unsigned workers);    /* 0 (default): as announced */
int rmig_dest_set_timeout_ms(rmig_dest* d, uint64_t session_ms, uint64_t step_ms); /* 0 keeps default */
/* Called once listening, with the address a source connects to ("tcp:H:P"). */
int rmig_dest_set_on_listening(rmig_dest* d, void (*fn)(void* opaque, const char* uri), void* opaque);
/* Called after each round's pages are all placed (receiver thread). */
int rmig_dest_set_on_round(rmig_dest* d, void (*fn)(void* opaque, unsigned round, uint64_t pages), void* opaque);
/* Accept post-copy (see POST-COPY): start (required) runs the guest here, on a
 * thread of its own; failed (optional) is told post-copy broke. start NULL: refuse it. */
int rmig_dest_set_on_postcopy(rmig_dest* d, void (*start)(void* opaque, const void* device_state, size_t len),
                              void (*failed)(void* opaque, const char* why), void* opaque);
/* How long to wait for the source to come back after a lost link (see POST-COPY); 0: not at all. */
int rmig_dest_set_postcopy_recover_ms(rmig_dest* d, uint64_t ms);
/* Security, as for the source (see SECURITY). */
int rmig_dest_set_psk(rmig_dest* d, const void* key, size_t len, const char* identity);
int rmig_dest_set_psk_file(rmig_dest* d, const char* path, const char* identity);
int rmig_dest_set_tls(rmig_dest* d, const char* cert_file, const char* key_file, const char* ca_file,
                      const char* peer_name);
int rmig_dest_set_encrypt(rmig_dest* d, int encrypt);
int rmig_dest_set_insecure_plaintext(rmig_dest* d, int plaintext);
int rmig_dest_receive(rmig_dest* d);  /* blocks until confirmed (0) or failed (-1) */
void rmig_dest_cancel(rmig_dest* d);  /* any thread: receive() fails at once */
const void* rmig_dest_device_state(const rmig_dest* d, size_t* len);  /* valid until free */
int rmig_dest_get_stats(const rmig_dest* d, struct rmig_dest_stats* out);
int rmig_dest_get_postcopy(const rmig_dest* d, struct rmig_dest_postcopy* out);
int rmig_dest_get_postcopy_recovery(const rmig_dest* d, struct rmig_postcopy_recovery* out);
/* Pages the destination's pull placed (0 without a pull). */
uint64_t rmig_dest_postcopy_pulled_pages(const rmig_dest* d);
const char* rmig_dest_error(const rmig_dest* d);

#ifdef __cplusplus
}
#endif

#endif /* RMIG_CAPI_RMIG_H */
