/*
 * The C API (engine/capi/rmig.h) from C11: two regions migrated over tcp
 * loopback (destination in a second thread) while a writer thread keeps
 * dirtying them, every byte compared afterwards, authenticated with a
 * pre-shared key (in memory on one side, from a file on the other) and every
 * frame encrypted; once with userfaultfd write-protect tracking, once with
 * caller bitmaps in KVM_GET_DIRTY_LOG form, each convergence decision checked
 * as it comes (one per round, in order, the last a switchover). Post-copy
 * after round 1 with the writer busy: the destination's start callback runs
 * a reader thread as its guest (faulting on missing pages, every page read
 * equal to the source's), every byte compared afterwards, the phase's
 * statistics checked. Then the failure paths: a migration that gives up (its decision says why), a source
 * with another key (refused, its memory untouched; the destination then
 * receives the right source), the plaintext policy, a missing pause callback,
 * a misaligned region, a layout the destination refuses (plaintext, asked for
 * on loopback), a dirty-log callback that fails, a destination cancelled from
 * another thread, and a source cancelled from another thread mid-round and at
 * switchover.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rmig.h"  /* as a VMM includes it once installed */

#define PAGE RMIG_PAGE_SIZE
#define NREG 2
static const size_t kSizes[NREG] = {24u << 20, 8u << 20};
static const char* kNames[NREG] = {"ram-low", "ram-high"};

static int failures;

/* Two different pre-shared keys; kKeyA is also written to a file (hex). */
static const unsigned char kKeyA[32] = "rmig capi test key A, 32 bytes!";
static const unsigned char kKeyB[32] = "rmig capi test key B, 32 bytes!";
static char key_file[64];

enum sec { SEC_PLAINTEXT, SEC_KEY_A, SEC_FILE_A, SEC_KEY_B };

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            ++failures;                                                    \
        }                                                                  \
    } while (0)

static void* map(size_t size) {
    void* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

static uint64_t xorshift(uint64_t* s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the guest: regions, a writer thread, an optional KVM-style dirty log ---- */

struct guest {
    unsigned char* mem[NREG];
    size_t pages[NREG];
    _Atomic uint64_t* log[NREG]; /* caller-bitmap mode: one bit per page */
    atomic_bool stop;
    atomic_uint throttle;
    atomic_ulong writes;
    unsigned burst; /* page writes per ms (16 unless a case wants more) */
    pthread_t writer;
    int writer_running;
    int paused, resumed, rounds_seen, throttle_calls;
    uint64_t round0_pages;
    uint64_t round_dirty[64]; /* each round callback's dirty_pages */
    /* decisions (rmig_source_set_on_decision) */
    int decisions, throttle_decisions;
    struct rmig_decision last_decision; /* its reason pointer cleared: valid during the call only */
    char last_reason[1024];
    char decision_error[512]; /* the first inconsistency a decision showed */
    char state[64];
    /* cancel cases */
    rmig_source* cancel_in_pause;  /* pause() has another thread cancel this */
    struct timespec cancelled_at;
    unsigned char* copy[NREG];     /* the regions as pause() left them */
    int copy_at_pause;             /* pause() takes that copy */
    int intact_at_resume;          /* resume() found them unchanged */
};

static void write_page(struct guest* g, unsigned r, size_t page, uint64_t seq) {
    uint64_t block[8];
    size_t off = (seq % (PAGE / 64)) * 64;
    for (unsigned w = 0; w < 8; ++w) block[w] = (seq << 24) ^ ((uint64_t)r << 60) ^ page ^ w;
    memcpy(g->mem[r] + page * PAGE + off, block, sizeof block);
    if (g->log[r]) atomic_fetch_or(&g->log[r][page / 64], UINT64_C(1) << (page % 64));
}

static void* writer_main(void* arg) {
    struct guest* g = arg;
    uint64_t rng = 0x9e3779b97f4a7c15u, seq = 0;
    while (!atomic_load(&g->stop)) {
        for (unsigned k = 0; k < g->burst; ++k) { /* ~16 pages per ms: ~64 MB/s of dirty pages */
            unsigned r = (xorshift(&rng) % 4 == 0) ? 1u : 0u;
            size_t page = xorshift(&rng) % g->pages[r];
            write_page(g, r, page, ++seq);
        }
        atomic_fetch_add(&g->writes, g->burst);
        sleep_us(1000 * 100 / (100 - (long)atomic_load(&g->throttle)));
    }
    return NULL;
}

static void guest_init(struct guest* g, int with_log) {
    memset(g, 0, sizeof *g);
    for (unsigned r = 0; r < NREG; ++r) {
        g->mem[r] = map(kSizes[r]);
        g->pages[r] = kSizes[r] / PAGE;
        for (size_t p = 0; p < g->pages[r]; ++p) /* every fifth page stays zero */
            if (p % 5 != 4) memset(g->mem[r] + p * PAGE, (int)(p * 7 + r + 1) & 0xff, PAGE);
        if (with_log) g->log[r] = calloc((g->pages[r] + 63) / 64, sizeof(uint64_t));
    }
    atomic_init(&g->stop, 0);
    atomic_init(&g->throttle, 0);
    atomic_init(&g->writes, 0);
    g->burst = 16;
}

static void guest_start(struct guest* g) {
    atomic_store(&g->stop, 0);
    if (pthread_create(&g->writer, NULL, writer_main, g) != 0) exit(2);
    g->writer_running = 1;
}

static void guest_stop(struct guest* g) {
    atomic_store(&g->stop, 1);
    if (g->writer_running) pthread_join(g->writer, NULL);
    g->writer_running = 0;
}

static void guest_free(struct guest* g) {
    guest_stop(g);
    for (unsigned r = 0; r < NREG; ++r) {
        munmap(g->mem[r], kSizes[r]);
        free((void*)g->log[r]);
        free(g->copy[r]);
    }
}

static double ms_since(const struct timespec* t) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static int regions_equal(unsigned char* const* a, unsigned char* const* b) {
    for (unsigned r = 0; r < NREG; ++r)
        if (memcmp(a[r], b[r], kSizes[r]) != 0) return 0;
    return 1;
}

static void take_copy(struct guest* g) {
    for (unsigned r = 0; r < NREG; ++r) {
        if (!g->copy[r]) g->copy[r] = malloc(kSizes[r]);
        if (!g->copy[r]) exit(2);
        memcpy(g->copy[r], g->mem[r], kSizes[r]);
    }
}

/* ---- cancelling from another thread ---- */

struct canceller {
    rmig_source* s;
    long delay_us;
    struct timespec at;
    pthread_t thread;
    atomic_int* after; /* if set: wait (at most 20 s) until it is nonzero, then delay_us */
};

static void* cancel_main(void* arg) {
    struct canceller* c = arg;
    for (int i = 0; c->after && !atomic_load(c->after) && i < 20000; ++i) sleep_us(1000);
    sleep_us(c->delay_us);
    clock_gettime(CLOCK_MONOTONIC, &c->at);
    rmig_source_cancel(c->s);
    return NULL;
}

/* ---- source callbacks ---- */

static int on_pause(void* opaque, const void** state, size_t* len) {
    struct guest* g = opaque;
    guest_stop(g);
    g->paused = 1;
    if (g->copy_at_pause) take_copy(g);
    if (g->cancel_in_pause) { /* the VMM's control thread cancels while the vCPUs are stopped */
        take_copy(g);
        struct canceller c = {g->cancel_in_pause, 0, {0, 0}, 0, NULL};
        pthread_create(&c.thread, NULL, cancel_main, &c);
        pthread_join(c.thread, NULL);
        g->cancelled_at = c.at;
    }
    snprintf(g->state, sizeof g->state, "cpu-state writes=%lu", (unsigned long)atomic_load(&g->writes));
    *state = g->state;
    *len = strlen(g->state) + 1;
    return 0;
}

static void on_resume(void* opaque) {
    struct guest* g = opaque;
    g->resumed = 1;
    if (g->copy[0]) {
        g->intact_at_resume = regions_equal(g->mem, g->copy);
        guest_start(g); /* the guest runs on */
    }
}

static void on_throttle(void* opaque, unsigned percent) {
    struct guest* g = opaque;
    atomic_store(&g->throttle, percent);
    ++g->throttle_calls;
}

static void on_round(void* opaque, const struct rmig_round* r) {
    struct guest* g = opaque;
    if (r->round == 0) g->round0_pages = r->pages_sent;
    if (r->round < 64) g->round_dirty[r->round] = r->dirty_pages;
    ++g->rounds_seen;
}

#define DECISION_ERROR(...)                                                                            \
    do {                                                                                               \
        if (!g->decision_error[0]) snprintf(g->decision_error, sizeof g->decision_error, __VA_ARGS__); \
    } while (0)

/* Each decision against what came before it: one per pre-copy round, in
 * round order, right after that round's callback; the fields consistent. */
static void on_decision(void* opaque, const struct rmig_decision* d) {
    struct guest* g = opaque;
    const struct rmig_decision* last = g->decisions > 0 ? &g->last_decision : NULL;
    if (last && d->round < last->round) DECISION_ERROR("round %u decided after round %u", d->round, last->round);
    if (d->round != (unsigned)g->decisions)
        DECISION_ERROR("decision %d is for round %u (one per round, from 0)", g->decisions, d->round);
    if (d->round + 1 != (unsigned)g->rounds_seen)
        DECISION_ERROR("round %u decided after %d round callbacks", d->round, g->rounds_seen);
    if (last && (last->action == RMIG_ACTION_SWITCHOVER || last->action == RMIG_ACTION_GIVE_UP ||
                 last->action == RMIG_ACTION_POSTCOPY))
        DECISION_ERROR("round %u decided after the final decision", d->round);
    if (g->paused) DECISION_ERROR("round %u decided after pause()", d->round);
    if ((int)d->action < (int)RMIG_ACTION_ROUND || (int)d->action > (int)RMIG_ACTION_POSTCOPY)
        DECISION_ERROR("round %u: action %d", d->round, (int)d->action);
    if (!d->reason || !d->reason[0]) DECISION_ERROR("round %u: empty reason", d->round);
    if (d->converging != 0 && d->converging != 1) DECISION_ERROR("round %u: converging %d", d->round, d->converging);
    if (!d->converging && d->forecast_seconds != -1)
        DECISION_ERROR("round %u: not converging, yet a forecast of %.3f s", d->round, d->forecast_seconds);
    if (d->converging && d->forecast_seconds != -1 && !(d->forecast_seconds >= 0 && d->forecast_seconds < 1e6))
        DECISION_ERROR("round %u: forecast %.3f s", d->round, d->forecast_seconds);
    if (d->predicted_downtime_ms != -1 && !(d->predicted_downtime_ms >= 0 && d->predicted_downtime_ms < 1e9))
        DECISION_ERROR("round %u: predicted downtime %.3f ms", d->round, d->predicted_downtime_ms);
    if (d->remaining_bytes != d->remaining_pages * PAGE)
        DECISION_ERROR("round %u: %llu bytes for %llu pages", d->round, (unsigned long long)d->remaining_bytes,
                       (unsigned long long)d->remaining_pages);
    if (d->round < 64 && d->remaining_pages != g->round_dirty[d->round])
        DECISION_ERROR("round %u: %llu pages remain, the round callback said %llu dirty", d->round,
                       (unsigned long long)d->remaining_pages, (unsigned long long)g->round_dirty[d->round]);
    if (d->throttle_percent != atomic_load(&g->throttle))
        DECISION_ERROR("round %u: throttle %u%%, %u%% in force", d->round, d->throttle_percent,
                       atomic_load(&g->throttle));
    if (d->action == RMIG_ACTION_SWITCHOVER && !(d->converging == 1 && d->forecast_seconds == 0))
        DECISION_ERROR("round %u: switchover with converging %d, forecast %.3f s", d->round, d->converging,
                       d->forecast_seconds);
    if (d->action == RMIG_ACTION_THROTTLE) ++g->throttle_decisions;
    g->last_decision = *d;
    g->last_decision.reason = NULL;
    snprintf(g->last_reason, sizeof g->last_reason, "%s", d->reason ? d->reason : "");
    ++g->decisions;
}

/* KVM_GET_DIRTY_LOG: hand over and clear what was logged since the last call. */
static int dirty_log(void* opaque, unsigned region, uint64_t* words, size_t nwords) {
    struct guest* g = opaque;
    if (region >= NREG || nwords != (g->pages[region] + 63) / 64) return 22;
    for (size_t w = 0; w < nwords; ++w) words[w] = atomic_exchange(&g->log[region][w], 0);
    return 0;
}

static int failing_dirty_log(void* opaque, unsigned region, uint64_t* words, size_t nwords) {
    (void)opaque, (void)region, (void)words, (void)nwords;
    return 5;
}

/* ---- destination in a thread ---- */

struct pc_guest;

struct dest_run {
    rmig_dest* d;
    unsigned char* mem[NREG];
    struct pc_guest* postcopy; /* set: the destination accepts post-copy and runs this guest */
    int rc;
    char uri[128];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
};

static void on_listening(void* opaque, const char* uri) {
    struct dest_run* dr = opaque;
    pthread_mutex_lock(&dr->mu);
    snprintf(dr->uri, sizeof dr->uri, "%s", uri);
    pthread_cond_signal(&dr->cv);
    pthread_mutex_unlock(&dr->mu);
}

static void* dest_main(void* arg) {
    struct dest_run* dr = arg;
    dr->rc = rmig_dest_receive(dr->d);
    on_listening(dr, "failed"); /* wakes the waiter if listening never happened */
    return NULL;
}

static void source_security(rmig_source* s, enum sec k) {
    int rc = 0;
    switch (k) {
    case SEC_PLAINTEXT: rc = rmig_source_set_insecure_plaintext(s, 1); break;
    case SEC_KEY_A: rc = rmig_source_set_psk(s, kKeyA, sizeof kKeyA, "capi-test"); break;
    case SEC_FILE_A: rc = rmig_source_set_psk_file(s, key_file, "capi-test"); break;
    case SEC_KEY_B: rc = rmig_source_set_psk(s, kKeyB, sizeof kKeyB, "capi-test"); break;
    }
    CHECK(rc == 0, "source security: %s", rmig_source_error(s));
}

static void dest_security(rmig_dest* d, enum sec k) {
    int rc = 0;
    switch (k) {
    case SEC_PLAINTEXT: rc = rmig_dest_set_insecure_plaintext(d, 1); break;
    case SEC_KEY_A: rc = rmig_dest_set_psk(d, kKeyA, sizeof kKeyA, "capi-test"); break;
    case SEC_FILE_A: rc = rmig_dest_set_psk_file(d, key_file, "capi-test"); break;
    case SEC_KEY_B: rc = rmig_dest_set_psk(d, kKeyB, sizeof kKeyB, "capi-test"); break;
    }
    CHECK(rc == 0, "dest security: %s", rmig_dest_error(d));
}

static void write_key_file(void) {
    snprintf(key_file, sizeof key_file, "/tmp/rmig-capi-test-XXXXXX");
    int fd = mkstemp(key_file);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    FILE* f = fdopen(fd, "w");
    for (size_t i = 0; i < sizeof kKeyA; ++i) fprintf(f, "%02x", kKeyA[i]);
    fprintf(f, "\n");
    fclose(f);
}

/* ---- post-copy: the guest that runs on the destination ---- */

/* Started by the destination's post-copy start callback: a reader thread that
 * plays the guest's vCPU, touching pages in random order (a missing one
 * faults and blocks it until placed) and comparing each with the source's
 * page, which stands still once pause() stopped the writer (both sides live
 * in this process). */
struct pc_guest {
    unsigned char* dst[NREG];
    unsigned char* src[NREG];
    size_t pages[NREG];
    atomic_bool stop;
    atomic_ulong reads, mismatches;
    int started, failed, reader_running;
    size_t state_len;
    char state[64];
    char why[512];
    pthread_t reader;
};

static void* pc_reader_main(void* arg) {
    struct pc_guest* p = arg;
    uint64_t rng = 0x853c49e6748fea9bu;
    const size_t total = p->pages[0] + p->pages[1];
    while (!atomic_load(&p->stop)) {
        size_t page = xorshift(&rng) % total;
        unsigned r = page < p->pages[0] ? 0u : 1u;
        if (r == 1) page -= p->pages[0];
        int differs = memcmp(p->dst[r] + page * PAGE, p->src[r] + page * PAGE, PAGE) != 0;
        if (atomic_load(&p->stop)) break; /* after failed(): the page may not have come */
        if (differs) atomic_fetch_add(&p->mismatches, 1);
        atomic_fetch_add(&p->reads, 1);
    }
    return NULL;
}

static void on_postcopy_start(void* opaque, const void* state, size_t len) {
    struct pc_guest* p = opaque;
    p->started = 1;
    p->state_len = len;
    memcpy(p->state, state, len < sizeof p->state ? len : sizeof p->state);
    if (pthread_create(&p->reader, NULL, pc_reader_main, p) != 0) exit(2);
    p->reader_running = 1;
}

static void on_postcopy_failed(void* opaque, const char* why) {
    struct pc_guest* p = opaque;
    p->failed = 1;
    snprintf(p->why, sizeof p->why, "%s", why ? why : "(null)");
    atomic_store(&p->stop, 1);
}

static void pc_stop(struct pc_guest* p) {
    atomic_store(&p->stop, 1);
    if (p->reader_running) pthread_join(p->reader, NULL);
    p->reader_running = 0;
}

/* Starts a destination with regions of the given sizes; returns its URI in dr->uri. */
static void dest_start_with(struct dest_run* dr, const size_t* sizes, enum sec k, struct pc_guest* pc) {
    memset(dr, 0, sizeof *dr);
    dr->postcopy = pc;
    pthread_mutex_init(&dr->mu, NULL);
    pthread_cond_init(&dr->cv, NULL);
    dr->d = rmig_dest_new();
    for (unsigned r = 0; r < NREG; ++r) {
        dr->mem[r] = map(sizes[r]);
        CHECK(rmig_dest_add_region(dr->d, dr->mem[r], sizes[r], (uint64_t)r << 32, kNames[r]) == 0, "%s",
              rmig_dest_error(dr->d));
    }
    CHECK(rmig_dest_set_uri(dr->d, "tcp:127.0.0.1:0") == 0, "%s", rmig_dest_error(dr->d));
    CHECK(rmig_dest_set_timeout_ms(dr->d, 60000, 20000) == 0, "%s", rmig_dest_error(dr->d));
    dest_security(dr->d, k);
    rmig_dest_set_on_listening(dr->d, on_listening, dr);
    if (pc) {
        for (unsigned r = 0; r < NREG; ++r) {
            pc->dst[r] = dr->mem[r];
            pc->pages[r] = sizes[r] / PAGE;
        }
        CHECK(rmig_dest_set_on_postcopy(dr->d, on_postcopy_start, on_postcopy_failed, pc) == 0, "%s",
              rmig_dest_error(dr->d));
        CHECK(rmig_dest_set_postcopy_recover_ms(dr->d, 30000) == 0, "%s", rmig_dest_error(dr->d));
    }
    pthread_create(&dr->thread, NULL, dest_main, dr);
    pthread_mutex_lock(&dr->mu);
    while (dr->uri[0] == 0) pthread_cond_wait(&dr->cv, &dr->mu);
    pthread_mutex_unlock(&dr->mu);
}

static void dest_start(struct dest_run* dr, const size_t* sizes, enum sec k) {
    dest_start_with(dr, sizes, k, NULL);
}

static void dest_join(struct dest_run* dr) {
    pthread_join(dr->thread, NULL);
}

static void dest_free(struct dest_run* dr, const size_t* sizes) {
    for (unsigned r = 0; r < NREG; ++r) munmap(dr->mem[r], sizes[r]);
    rmig_dest_free(dr->d);
    pthread_mutex_destroy(&dr->mu);
    pthread_cond_destroy(&dr->cv);
}

static rmig_source* source_for(struct guest* g, const char* uri, enum sec k) {
    rmig_source* s = rmig_source_new();
    source_security(s, k);
    for (unsigned r = 0; r < NREG; ++r)
        CHECK(rmig_source_add_region(s, g->mem[r], kSizes[r], (uint64_t)r << 32, kNames[r]) == 0, "%s",
              rmig_source_error(s));
    CHECK(rmig_source_set_uri(s, uri) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_workers(s, 2) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_downtime_ms(s, 2) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_limits(s, 40, 45) == 0, "%s", rmig_source_error(s));
    struct rmig_source_callbacks cb = {g, on_pause, on_resume, on_throttle, on_round};
    CHECK(rmig_source_set_callbacks(s, &cb) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_on_decision(s, on_decision, g) == 0, "%s", rmig_source_error(s));
    return s;
}

/* ---- cases ---- */

static void migrate_with_writer(enum rmig_dirty_log kind, enum rmig_codec codec, enum sec src_key,
                                enum sec dst_key) {
    const char* what = kind == RMIG_DIRTY_UFFD_WP ? "uffd-wp, psk + aes-gcm" : "caller bitmaps, psk + aes-gcm";
    struct guest g;
    guest_init(&g, kind == RMIG_DIRTY_CALLER);
    struct dest_run dr;
    dest_start(&dr, kSizes, dst_key);
    rmig_source* s = source_for(&g, dr.uri, src_key);
    CHECK(rmig_source_set_codec(s, codec, 0) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_dirty_log(s, kind, kind == RMIG_DIRTY_CALLER ? dirty_log : NULL, &g) == 0, "%s",
          rmig_source_error(s));
    guest_start(&g);
    sleep_us(20000); /* the writer is busy before round 0 starts */
    int rc = rmig_source_migrate(s);
    guest_stop(&g);
    dest_join(&dr);
    CHECK(rc == 0, "%s: source failed: %s", what, rmig_source_error(s));
    CHECK(dr.rc == 0, "%s: destination failed: %s", what, rmig_dest_error(dr.d));

    struct rmig_source_stats st;
    struct rmig_dest_stats ds;
    CHECK(rmig_source_get_stats(s, &st) == 0, "stats");
    CHECK(rmig_dest_get_stats(dr.d, &ds) == 0, "stats");
    uint64_t total_pages = g.pages[0] + g.pages[1];
    CHECK(st.ok == 1 && st.paused == 1 && g.paused == 1 && g.resumed == 0, "%s: ok %d paused %d", what, st.ok,
          st.paused);
    CHECK(atomic_load(&g.writes) > 0, "%s: the writer never wrote", what);
    CHECK(st.rounds >= 2 && (unsigned)g.rounds_seen + 1 == st.rounds, "%s: rounds %u, round callbacks %d", what,
          st.rounds, g.rounds_seen);
    /* The policy's decisions: one per pre-copy round, consistent, the last a
     * switchover whose prediction fits the 2 ms budget; a throttle decision
     * for each throttle() call. */
    CHECK(g.decision_error[0] == 0, "%s: %s", what, g.decision_error);
    CHECK(g.decisions >= 1 && g.decisions == g.rounds_seen, "%s: %d decisions for %d pre-copy rounds", what,
          g.decisions, g.rounds_seen);
    CHECK(g.last_decision.action == RMIG_ACTION_SWITCHOVER && g.last_decision.round + 2 == st.rounds,
          "%s: last decision %d after round %u of %u", what, (int)g.last_decision.action, g.last_decision.round,
          st.rounds);
    CHECK(g.last_decision.converging == 1 && g.last_decision.forecast_seconds == 0 &&
              g.last_decision.predicted_downtime_ms >= 0 && g.last_decision.predicted_downtime_ms <= 2.0,
          "%s: switchover converging %d, forecast %.3f s, predicted downtime %.3f ms (budget 2 ms)", what,
          g.last_decision.converging, g.last_decision.forecast_seconds, g.last_decision.predicted_downtime_ms);
    CHECK(strlen(g.last_reason) > 0, "%s: the switchover has no reason", what);
    CHECK(st.final_pages >= g.last_decision.remaining_pages, "%s: final round %llu pages, %llu remained", what,
          (unsigned long long)st.final_pages, (unsigned long long)g.last_decision.remaining_pages);
    CHECK(g.throttle_decisions == g.throttle_calls && g.last_decision.throttle_percent == st.throttle_percent,
          "%s: %d throttle decisions, %d throttle calls, last throttle %u%% / %u%%", what, g.throttle_decisions,
          g.throttle_calls, g.last_decision.throttle_percent, st.throttle_percent);
    CHECK(g.round0_pages == total_pages, "%s: round 0 sent %llu of %llu pages", what,
          (unsigned long long)g.round0_pages, (unsigned long long)total_pages);
    CHECK(st.pages_sent >= total_pages && st.zero_pages > 0 && st.bytes_sent > 0, "%s: pages %llu zero %llu",
          what, (unsigned long long)st.pages_sent, (unsigned long long)st.zero_pages);
    CHECK(ds.ok == 1 && ds.rounds == st.rounds && ds.pages_placed == st.pages_sent, "%s: dest rounds %u pages %llu",
          what, ds.rounds, (unsigned long long)ds.pages_placed);
    CHECK(strcmp(st.session, ds.session) == 0 && strlen(st.session) > 0, "%s: sessions %s / %s", what, st.session,
          ds.session);
    if (codec != RMIG_CODEC_NONE) CHECK(st.compressed_pages > 0, "%s: no page compressed", what);
    struct rmig_switchover sw;
    CHECK(rmig_source_get_switchover(s, &sw) == 0, "switchover");
    double parts = sw.pause_ms + sw.collect_ms + sw.final_round_ms + sw.device_state_ms + sw.placed_ms + sw.confirm_ms;
    CHECK(sw.pause_ms >= 0 && sw.final_round_ms >= 0 && parts > 0 && parts <= st.downtime_ms + 0.01,
          "%s: switchover parts %.3f ms of %.3f ms downtime", what, parts, st.downtime_ms);
    CHECK(sw.final_pages == st.final_pages, "%s: final pages %llu vs %llu", what,
          (unsigned long long)sw.final_pages, (unsigned long long)st.final_pages);
    CHECK(rmig_source_cancelled(s) == 0, "%s: reported cancelled", what);

    size_t len = 0;
    const char* state = rmig_dest_device_state(dr.d, &len);
    CHECK(len == strlen(g.state) + 1 && memcmp(state, g.state, len) == 0, "%s: device state differs", what);
    for (unsigned r = 0; r < NREG; ++r)
        for (size_t p = 0; p < g.pages[r]; ++p)
            if (memcmp(g.mem[r] + p * PAGE, dr.mem[r] + p * PAGE, PAGE) != 0) {
                CHECK(0, "%s: region %s page %zu differs", what, kNames[r], p);
                break;
            }
    printf("%s: %u rounds, %llu writes, %llu pages sent (%llu in the final round), %.1f ms downtime, %.2f s\n",
           what, st.rounds, (unsigned long long)atomic_load(&g.writes), (unsigned long long)st.pages_sent,
           (unsigned long long)st.final_pages, st.downtime_ms, st.seconds);
    printf("%s: %d decisions (%d throttles), last: \"%s\"\n", what, g.decisions, g.throttle_decisions, g.last_reason);
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* Post-copy after round 1 while the writer dirties ~1 GB/s of pages: pause()
 * stops it, the destination's start callback gets the device state and
 * starts a reader thread (the guest running there), whose touches of missing
 * pages fault; every page it reads equals the source's, and afterwards every
 * byte of destination memory equals the paused source memory. resume() is
 * never called; the statistics say switched, with pages pending and faults. */
static void postcopy_after_one_round(void) {
    const char* what = "post-copy after 1 round";
    struct guest g;
    guest_init(&g, 0);
    g.burst = 256; /* most pages dirty again by the end of round 0 */
    struct pc_guest pc;
    memset(&pc, 0, sizeof pc);
    atomic_init(&pc.stop, 0);
    atomic_init(&pc.reads, 0);
    atomic_init(&pc.mismatches, 0);
    for (unsigned r = 0; r < NREG; ++r) pc.src[r] = g.mem[r];
    struct dest_run dr;
    dest_start_with(&dr, kSizes, SEC_KEY_A, &pc);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    CHECK(rmig_source_set_postcopy(s, 1, 1) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_postcopy_recover_ms(s, 30000) == 0 && rmig_source_set_postcopy_pull(s, 1) == 0, "%s",
          rmig_source_error(s));
    guest_start(&g);
    sleep_us(20000);
    int rc = rmig_source_migrate(s);
    guest_stop(&g);
    dest_join(&dr);
    unsigned long reads_at_end = atomic_load(&pc.reads);
    pc_stop(&pc);
    CHECK(rc == 0, "%s: source failed: %s", what, rmig_source_error(s));
    CHECK(dr.rc == 0, "%s: destination failed: %s", what, rmig_dest_error(dr.d));
    CHECK(pc.started == 1 && pc.failed == 0, "%s: start called %d, failed called %d (%s)", what, pc.started,
          pc.failed, pc.why);
    CHECK(g.paused == 1 && g.resumed == 0, "%s: paused %d resumed %d", what, g.paused, g.resumed);
    CHECK(pc.state_len == strlen(g.state) + 1 && memcmp(pc.state, g.state, pc.state_len) == 0,
          "%s: the start callback's device state differs (%zu bytes)", what, pc.state_len);
    CHECK(g.decision_error[0] == 0, "%s: %s", what, g.decision_error);
    CHECK(g.decisions == 1 && g.last_decision.round == 0 && g.last_decision.action == RMIG_ACTION_POSTCOPY,
          "%s: %d decisions, the last (action %d) after round %u", what, g.decisions, (int)g.last_decision.action,
          g.last_decision.round);

    struct rmig_source_stats st;
    struct rmig_source_postcopy sp;
    struct rmig_dest_postcopy dp;
    struct rmig_dest_stats ds;
    CHECK(rmig_source_get_stats(s, &st) == 0 && rmig_source_get_postcopy(s, &sp) == 0, "stats");
    CHECK(rmig_dest_get_stats(dr.d, &ds) == 0 && rmig_dest_get_postcopy(dr.d, &dp) == 0, "stats");
    CHECK(st.ok == 1 && st.paused == 1 && ds.ok == 1, "%s: ok %d/%d paused %d", what, st.ok, ds.ok, st.paused);
    CHECK(st.final_pages == 0, "%s: %llu pages sent while paused", what, (unsigned long long)st.final_pages);
    CHECK(sp.switched == 1 && dp.switched == 1, "%s: switched %d / %d", what, sp.switched, dp.switched);
    CHECK(sp.reason && strstr(sp.reason, "after 1 round") != NULL, "%s: reason \"%s\"", what,
          sp.reason ? sp.reason : "(null)");
    const uint64_t total_pages = g.pages[0] + g.pages[1];
    CHECK(sp.pending_pages > 0 && sp.pending_pages <= total_pages && dp.pending_pages == sp.pending_pages,
          "%s: pending %llu (source) / %llu (destination)", what, (unsigned long long)sp.pending_pages,
          (unsigned long long)dp.pending_pages);
    CHECK(dp.faults > 0 && dp.faults <= dp.pending_pages && dp.fetched_pages <= dp.faults,
          "%s: %llu faults, %llu fetched, %llu pending", what, (unsigned long long)dp.faults,
          (unsigned long long)dp.fetched_pages, (unsigned long long)dp.pending_pages);
    CHECK(sp.served_pages <= sp.pending_pages, "%s: served %llu of %llu pending", what,
          (unsigned long long)sp.served_pages, (unsigned long long)sp.pending_pages);
    CHECK(dp.fault_p50_us > 0 && dp.fault_p50_us <= dp.fault_p99_us && dp.fault_p99_us <= dp.fault_max_us,
          "%s: fault latency p50 %.1f p99 %.1f max %.1f us", what, dp.fault_p50_us, dp.fault_p99_us,
          dp.fault_max_us);
    CHECK(sp.phase_s > 0 && dp.phase_s > 0 && sp.rdma_reads == 0 && dp.rdma_reads == 0,
          "%s: phase %.3f / %.3f s, rdma reads %d / %d", what, sp.phase_s, dp.phase_s, sp.rdma_reads,
          dp.rdma_reads);
    CHECK(reads_at_end > 0 && atomic_load(&pc.mismatches) == 0, "%s: the guest read %lu pages, %lu differed",
          what, reads_at_end, atomic_load(&pc.mismatches));
    /* Nothing broke: no resumption, and an empty (not NULL) cause. */
    struct rmig_postcopy_recovery sr, dr_rec;
    CHECK(rmig_source_get_postcopy_recovery(s, &sr) == 0 && rmig_dest_get_postcopy_recovery(dr.d, &dr_rec) == 0,
          "postcopy recovery stats");
    CHECK(sr.resumed == 0 && dr_rec.resumed == 0 && sr.broke && !sr.broke[0] && dr_rec.broke && !dr_rec.broke[0],
          "%s: resumed %u / %u", what, sr.resumed, dr_rec.resumed);
    /* Over tcp there is no pull: every pending page was pushed or fetched. */
    CHECK(rmig_dest_postcopy_pulled_pages(dr.d) == 0, "%s: %llu pages pulled over tcp", what,
          (unsigned long long)rmig_dest_postcopy_pulled_pages(dr.d));
    size_t len = 0;
    const char* state = rmig_dest_device_state(dr.d, &len);
    CHECK(len == strlen(g.state) + 1 && memcmp(state, g.state, len) == 0, "%s: device state differs", what);
    for (unsigned r = 0; r < NREG; ++r)
        for (size_t p = 0; p < g.pages[r]; ++p)
            if (memcmp(g.mem[r] + p * PAGE, dr.mem[r] + p * PAGE, PAGE) != 0) {
                CHECK(0, "%s: region %s page %zu differs", what, kNames[r], p);
                break;
            }
    printf("%s: %llu pending (\"%s\"), %llu faults (%llu fetched, %llu served), fault p50 %.0f us p99 %.0f us "
           "max %.0f us, phase %.1f ms, %.1f ms downtime; the guest read %lu pages meanwhile\n",
           what, (unsigned long long)sp.pending_pages, sp.reason, (unsigned long long)dp.faults,
           (unsigned long long)dp.fetched_pages, (unsigned long long)sp.served_pages, dp.fault_p50_us,
           dp.fault_p99_us, dp.fault_max_us, dp.phase_s * 1e3, st.downtime_ms, reads_at_end);
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* Post-copy forced after round 1 to a destination that did not accept it
 * (no rmig_dest_set_on_postcopy): it refuses at the layout exchange, before
 * any page moves, both sides fail, and the guest was never paused and runs
 * on; no post-copy statistics. */
static void postcopy_refused(void) {
    struct guest g;
    guest_init(&g, 0);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    CHECK(rmig_source_set_postcopy(s, 1, 1) == 0, "%s", rmig_source_error(s));
    g.copy_at_pause = 1;
    guest_start(&g);
    sleep_us(20000);
    int rc = rmig_source_migrate(s);
    dest_join(&dr);
    CHECK(rc == -1, "post-copy refused: migrated");
    CHECK(strstr(rmig_source_error(s), "does not take post-copy") != NULL, "post-copy refused: source error %s",
          rmig_source_error(s));
    CHECK(dr.rc == -1, "post-copy refused: the destination succeeded");
    CHECK(g.paused == 0 && g.resumed == 0, "post-copy refused: paused %d resumed %d", g.paused, g.resumed);
    unsigned long writes = atomic_load(&g.writes);
    sleep_us(50000);
    CHECK(atomic_load(&g.writes) > writes, "post-copy refused: the guest does not run on");
    struct rmig_source_postcopy sp;
    struct rmig_dest_postcopy dp;
    CHECK(rmig_source_get_postcopy(s, &sp) == 0 && rmig_dest_get_postcopy(dr.d, &dp) == 0, "postcopy stats");
    CHECK(sp.switched == 0 && dp.switched == 0 && sp.reason != NULL, "post-copy refused: switched %d / %d",
          sp.switched, dp.switched);
    guest_stop(&g);
    printf("post-copy refused: \"%s\"\n", rmig_source_error(s));
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

static void usage_errors(void) {
    struct guest g;
    guest_init(&g, 0);
    rmig_source* s = rmig_source_new();
    CHECK(rmig_source_add_region(s, g.mem[0] + 1, PAGE, 0, "odd") == -1, "misaligned region accepted");
    CHECK(strstr(rmig_source_error(s), "multiples of 4096") != NULL, "error: %s", rmig_source_error(s));
    CHECK(rmig_source_add_region(s, g.mem[0], PAGE, 0, "") == -1, "empty name accepted");
    CHECK(rmig_source_set_workers(s, 0) == -1, "0 workers accepted");
    CHECK(rmig_source_set_codec(s, RMIG_CODEC_ZSTD, 1000) == -1, "zstd level 1000 accepted");
    CHECK(rmig_source_set_dirty_log(s, RMIG_DIRTY_CALLER, NULL, NULL) == -1, "caller log without fn accepted");
    CHECK(rmig_source_set_on_decision(s, NULL, NULL) == 0, "no decision callback: %s", rmig_source_error(s));
    CHECK(rmig_source_set_postcopy(s, 1, 0) == 0 && rmig_source_set_postcopy(s, 0, 0) == 0, "set_postcopy: %s",
          rmig_source_error(s));
    CHECK(rmig_source_add_region(s, g.mem[0], kSizes[0], 0, "ram") == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_uri(s, "tcp:127.0.0.1:9") == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_insecure_plaintext(s, 1) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_migrate(s) == -1, "migrated without a pause callback");
    CHECK(strstr(rmig_source_error(s), "pause") != NULL, "error: %s", rmig_source_error(s));
    CHECK(rmig_source_migrate(s) == -1 && strstr(rmig_source_error(s), "once") != NULL, "error: %s",
          rmig_source_error(s));
    rmig_source_free(s);
    guest_free(&g);
}

/* The destination's second region is smaller: it refuses the layout, both sides fail, nothing paused. */
static void layout_refused(void) {
    struct guest g;
    guest_init(&g, 0);
    const size_t other[NREG] = {kSizes[0], kSizes[1] / 2};
    struct dest_run dr;
    dest_start(&dr, other, SEC_PLAINTEXT);
    rmig_source* s = source_for(&g, dr.uri, SEC_PLAINTEXT);
    int rc = rmig_source_migrate(s);
    CHECK(rc == -1, "a mismatched layout migrated");
    CHECK(strstr(rmig_source_error(s), "ram-high") != NULL, "error names no region: %s", rmig_source_error(s));
    CHECK(g.paused == 0 && g.resumed == 0, "paused %d resumed %d", g.paused, g.resumed);
    dest_join(&dr);
    CHECK(dr.rc == -1 && strlen(rmig_dest_error(dr.d)) > 0, "destination accepted a mismatched layout");
    printf("layout refused: source \"%s\"; destination \"%s\"\n", rmig_source_error(s), rmig_dest_error(dr.d));
    rmig_source_free(s);
    dest_free(&dr, other);
    guest_free(&g);
}

/* One round allowed and a budget nothing but an empty dirty set fits, with
 * the writer running: the policy gives up after round 0, and its decision,
 * seen before migrate() returns, says why, in the words of the error. */
static void gives_up(void) {
    struct guest g;
    guest_init(&g, 0);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    CHECK(rmig_source_set_downtime_ms(s, 0.001) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_limits(s, 1, 45) == 0, "%s", rmig_source_error(s));
    guest_start(&g);
    sleep_us(20000);
    int rc = rmig_source_migrate(s);
    guest_stop(&g);
    dest_join(&dr);
    CHECK(rc == -1, "gives up: migrated with a 1 us budget and one round");
    CHECK(strstr(rmig_source_error(s), "not converging") != NULL, "gives up: error %s", rmig_source_error(s));
    CHECK(g.decision_error[0] == 0, "gives up: %s", g.decision_error);
    CHECK(g.decisions == 1 && g.last_decision.round == 0 && g.last_decision.action == RMIG_ACTION_GIVE_UP,
          "gives up: %d decisions, the last %d after round %u", g.decisions, (int)g.last_decision.action,
          g.last_decision.round);
    CHECK(g.last_decision.remaining_pages > 0 && g.last_decision.converging == 0,
          "gives up: %llu pages remain, converging %d", (unsigned long long)g.last_decision.remaining_pages,
          g.last_decision.converging);
    CHECK(strlen(g.last_reason) > 0 && strstr(rmig_source_error(s), g.last_reason) != NULL,
          "gives up: the error \"%s\" lacks the decision's reason \"%s\"", rmig_source_error(s), g.last_reason);
    CHECK(g.paused == 0 && dr.rc == -1, "gives up: paused %d, destination rc %d", g.paused, dr.rc);
    printf("gives up: \"%s\"\n", g.last_reason);
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* The VMM's dirty log fails at the first collection: the migration fails on both sides. */
static void dirty_log_fails(void) {
    struct guest g;
    guest_init(&g, 1);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    rmig_source_set_dirty_log(s, RMIG_DIRTY_CALLER, failing_dirty_log, &g);
    CHECK(rmig_source_migrate(s) == -1, "a failing dirty log migrated");
    CHECK(strstr(rmig_source_error(s), "dirty log callback for region 'ram-low' failed (returned 5)") != NULL,
          "error: %s", rmig_source_error(s));
    dest_join(&dr);
    CHECK(dr.rc == -1, "destination succeeded without the source");
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* rmig_dest_cancel from another thread ends a receive that no source ever joins. */
static void dest_cancelled(void) {
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    sleep_us(50000);
    rmig_dest_cancel(dr.d);
    dest_join(&dr);
    CHECK(dr.rc == -1, "a cancelled destination succeeded");
    CHECK(strstr(rmig_dest_error(dr.d), "stopped") != NULL, "error: %s", rmig_dest_error(dr.d));
    struct rmig_dest_stats ds;
    rmig_dest_get_stats(dr.d, &ds);
    CHECK(ds.ok == 0 && ds.rounds == 0, "stats after cancel: ok %d rounds %u", ds.ok, ds.rounds);
    printf("cancelled: \"%s\"\n", rmig_dest_error(dr.d));
    dest_free(&dr, kSizes);
}

/* A source with another key: refused at the handshake, never paused, its
 * memory untouched; the destination turns it away and still receives the
 * right source afterwards, every byte compared. */
static void wrong_key_refused(void) {
    struct guest g;
    guest_init(&g, 0);
    take_copy(&g);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_FILE_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_B);
    CHECK(rmig_source_migrate(s) == -1, "a source with another key migrated");
    CHECK(strstr(rmig_source_error(s), "authentication failed") != NULL, "error: %s", rmig_source_error(s));
    struct rmig_source_stats st;
    rmig_source_get_stats(s, &st);
    CHECK(st.ok == 0 && st.paused == 0 && st.rounds == 0 && st.pages_sent == 0 && g.paused == 0,
          "refused source: ok %d paused %d rounds %u pages %llu", st.ok, st.paused, st.rounds,
          (unsigned long long)st.pages_sent);
    CHECK(regions_equal(g.mem, g.copy), "the refused source's memory changed");
    printf("wrong key: \"%s\"\n", rmig_source_error(s));
    rmig_source_free(s);

    s = source_for(&g, dr.uri, SEC_KEY_A);
    int rc = rmig_source_migrate(s);
    dest_join(&dr);
    CHECK(rc == 0, "the right source after a refused one: %s", rmig_source_error(s));
    CHECK(dr.rc == 0, "destination after a refused source: %s", rmig_dest_error(dr.d));
    CHECK(regions_equal(g.mem, dr.mem), "destination memory differs");
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* The rmig command's policy: credentials, or plaintext asked for on loopback only. */
static void security_policy(void) {
    struct guest g;
    guest_init(&g, 0);
    rmig_source* s = source_for(&g, "tcp:127.0.0.1:9", SEC_PLAINTEXT);
    rmig_source_set_insecure_plaintext(s, 0);
    CHECK(rmig_source_migrate(s) == -1 && strstr(rmig_source_error(s), "authenticates its peer") != NULL &&
              strstr(rmig_source_error(s), "rmig_*_set_psk") != NULL,
          "no credentials: %s", rmig_source_error(s));
    printf("no credentials: \"%s\"\n", rmig_source_error(s));
    rmig_source_free(s);
    s = source_for(&g, "tcp:10.0.0.2:9", SEC_PLAINTEXT);
    CHECK(rmig_source_migrate(s) == -1 && strstr(rmig_source_error(s), "only on loopback") != NULL,
          "plaintext between hosts: %s", rmig_source_error(s));
    CHECK(rmig_source_set_psk(s, kKeyA, 8, NULL) == -1 && strstr(rmig_source_error(s), "too short") != NULL,
          "8-byte key: %s", rmig_source_error(s));
    CHECK(rmig_source_set_psk_file(s, "/nonexistent/key.psk", NULL) == -1, "missing key file accepted");
    CHECK(rmig_source_set_tls(s, "/nonexistent/c.pem", "/nonexistent/k.pem", "/nonexistent/ca.pem", NULL) == -1,
          "missing certificate files accepted");
    CHECK(g.paused == 0, "paused");
    rmig_source_free(s);
    rmig_dest* d = rmig_dest_new();
    rmig_dest_add_region(d, g.mem[0], kSizes[0], 0, "ram");
    rmig_dest_set_uri(d, "tcp:0.0.0.0:0");
    CHECK(rmig_dest_set_on_postcopy(d, NULL, on_postcopy_failed, NULL) == -1, "a failed callback without start");
    CHECK(rmig_dest_set_on_postcopy(d, NULL, NULL, NULL) == 0, "%s", rmig_dest_error(d));
    rmig_dest_set_insecure_plaintext(d, 1);
    CHECK(rmig_dest_receive(d) == -1 && strstr(rmig_dest_error(d), "only on loopback") != NULL,
          "plaintext listener on all addresses: %s", rmig_dest_error(d));
    rmig_dest_free(d);
    guest_free(&g);
}

/* A dirty log with nothing to report (the guest is idle) whose first call
 * (tracking starts, right before round 0 reads anything) is signalled. */
static atomic_int tracking_started;
static int idle_log(void* opaque, unsigned region, uint64_t* words, size_t nwords) {
    (void)opaque, (void)region, (void)words, (void)nwords;
    atomic_store(&tracking_started, 1);
    return 0;
}

static void fill_random(struct guest* g) {
    uint64_t rng = 0x2545f4914f6cdd1du;
    for (unsigned r = 0; r < NREG; ++r)
        for (size_t p = 0; p < g->pages[r]; ++p)
            if (p % 5 != 4)
                for (size_t o = 0; o < PAGE; o += 8) {
                    uint64_t v = xorshift(&rng);
                    memcpy(g->mem[r] + p * PAGE + o, &v, 8);
                }
}

static void expect_dest_aborted(struct dest_run* dr, const char* when) {
    CHECK(dr->rc == -1, "%s: destination succeeded", when);
    CHECK(strstr(rmig_dest_error(dr->d), "aborted: migration cancelled by the caller") != NULL,
          "%s: destination error: %s", when, rmig_dest_error(dr->d));
    size_t len = 1;
    rmig_dest_device_state(dr->d, &len);
    struct rmig_dest_stats ds;
    rmig_dest_get_stats(dr->d, &ds);
    CHECK(len == 0 && ds.ok == 0, "%s: destination kept %zu bytes of device state, ok %d", when, len, ds.ok);
}

/* rmig_source_cancel from another thread 30 ms into round 0 (zstd at level 19
 * on random pages makes it take about a second): -1 "cancelled", never paused,
 * memory untouched, the destination aborted, both back within 1.5 s. */
static void source_cancelled_mid_round(void) {
    struct guest g;
    guest_init(&g, 0);
    fill_random(&g);
    take_copy(&g);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    CHECK(rmig_source_set_codec(s, RMIG_CODEC_ZSTD, 19) == 0, "%s", rmig_source_error(s));
    CHECK(rmig_source_set_dirty_log(s, RMIG_DIRTY_CALLER, idle_log, NULL) == 0, "%s", rmig_source_error(s));
    atomic_store(&tracking_started, 0);
    struct canceller c = {s, 30000, {0, 0}, 0, &tracking_started};
    pthread_create(&c.thread, NULL, cancel_main, &c);
    int rc = rmig_source_migrate(s);
    double source_ms = ms_since(&c.at);
    pthread_join(c.thread, NULL);
    dest_join(&dr);
    double dest_ms = ms_since(&c.at);
    CHECK(rc == -1, "a cancelled source succeeded");
    CHECK(rmig_source_cancelled(s) == 1, "a cancelled source does not say so");
    CHECK(strncmp(rmig_source_error(s), "migration cancelled by the caller", 33) == 0, "error: %s",
          rmig_source_error(s));
    struct rmig_source_stats st;
    rmig_source_get_stats(s, &st);
    CHECK(st.ok == 0 && st.paused == 0 && st.rounds == 0 && g.paused == 0 && g.resumed == 0,
          "mid-round: ok %d paused %d rounds %u (the cancel should land in round 0)", st.ok, st.paused, st.rounds);
    CHECK(regions_equal(g.mem, g.copy), "mid-round: the source memory changed");
    expect_dest_aborted(&dr, "mid-round");
    CHECK(source_ms < 1500 && dest_ms < 1500, "mid-round: returned %.0f / %.0f ms after the cancel", source_ms,
          dest_ms);
    printf("cancelled mid-round: source back %.1f ms after the cancel, destination %.1f ms: \"%s\" / \"%s\"\n",
           source_ms, dest_ms, rmig_source_error(s), rmig_dest_error(dr.d));
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

/* Cancelled from another thread inside pause() (the vCPUs stopped): resume()
 * is called with the memory as pause() left it, the writer runs again, the
 * destination aborted. */
static void source_cancelled_at_switchover(void) {
    struct guest g;
    guest_init(&g, 0);
    struct dest_run dr;
    dest_start(&dr, kSizes, SEC_KEY_A);
    rmig_source* s = source_for(&g, dr.uri, SEC_KEY_A);
    CHECK(rmig_source_set_downtime_ms(s, 200) == 0, "%s", rmig_source_error(s));
    g.cancel_in_pause = s;
    guest_start(&g);
    int rc = rmig_source_migrate(s);
    double source_ms = ms_since(&g.cancelled_at);
    dest_join(&dr);
    double dest_ms = ms_since(&g.cancelled_at);
    CHECK(rc == -1 && strncmp(rmig_source_error(s), "migration cancelled by the caller", 33) == 0, "error: %s",
          rmig_source_error(s));
    CHECK(g.paused == 1 && g.resumed == 1 && g.intact_at_resume == 1, "switchover: paused %d resumed %d intact %d",
          g.paused, g.resumed, g.intact_at_resume);
    unsigned long writes = atomic_load(&g.writes);
    sleep_us(50000);
    CHECK(atomic_load(&g.writes) > writes, "switchover: the guest does not run after the cancel");
    guest_stop(&g);
    expect_dest_aborted(&dr, "switchover");
    CHECK(source_ms < 1500 && dest_ms < 1500, "switchover: returned %.0f / %.0f ms after the cancel", source_ms,
          dest_ms);
    printf("cancelled at switchover: source back %.1f ms after the cancel, destination %.1f ms\n", source_ms,
           dest_ms);
    rmig_source_free(s);
    dest_free(&dr, kSizes);
    guest_free(&g);
}

int main(void) {
    write_key_file();
    migrate_with_writer(RMIG_DIRTY_UFFD_WP, RMIG_CODEC_NONE, SEC_KEY_A, SEC_FILE_A);
    migrate_with_writer(RMIG_DIRTY_CALLER, RMIG_CODEC_LZ4, SEC_FILE_A, SEC_FILE_A);
    postcopy_after_one_round();
    postcopy_refused();
    wrong_key_refused();
    security_policy();
    usage_errors();
    layout_refused();
    gives_up();
    dirty_log_fails();
    dest_cancelled();
    source_cancelled_mid_round();
    source_cancelled_at_switchover();
    unlink(key_file);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all C API checks passed\n");
    return 0;
}
