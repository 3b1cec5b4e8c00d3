/* hf_bench_agg.c - the aggregator-side figures of `make bench`: how many
 * engines one aggregator keeps up with, and how fast it notices a cut link.
 *
 *   agg-engines AGG DIR N SECONDS      N simulated engines at once, each 4
 *                                      channels at 1 kHz (4,000 samples/s)
 *   availability AGG DIR CUTS WD_MS    link cut -> "unavailable" on the
 *                                      status feed, CUTS silent cuts and
 *                                      CUTS closed-socket cuts
 *
 * Design notes:
 * - The engines are simulated: one thread drives N ZeroMQ DEALER sockets
 *   (routing id = engine id) and speaks the protocol with proto/hf_proto.h
 *   (HELLO -> WELCOME, BATCH on the data lane, ACK, PING/PONG, STATUS every
 *   heartbeat). No dispatcher, no spool: 256 real LMDB spools would measure
 *   this machine's disk, not the aggregator. The records an engine "has
 *   committed" are a counter; a record's content follows from its seq, so
 *   a resend after a reconnect re-creates it exactly.
 * - Each engine behaves like the real link: every 10 ms its 40 new samples
 *   become committed; on that tick it sends everything committed and not
 *   yet sent as ONE batch (up to HF_PROTO_MAX_BATCH), if fewer than 8
 *   batches are in flight (the dispatcher's default window). A slow
 *   aggregator therefore sees fewer, larger batches, as from real engines.
 *   The engines' ticks are spread evenly over the 10 ms period.
 * - "Keeps up": every engine's unacked records (committed, not acked) stay
 *   within 2 s of data during the run, no engine is declared unavailable
 *   (its frames waiting in the aggregator's queue past the watchdog), and
 *   within a 5 s grace after the run everything is acked. The store is
 *   reopened at the end: each engine's stored records must cover what was
 *   acked (exactly what was committed when everything was acked).
 * - The aggregator's commits are counted from outside as ACK frames: it
 *   sends one ACK per store transaction (per group of consecutive frames
 *   of one engine and lane), each transaction one fsync.
 * - Availability: a "silent" cut stops an engine dead (no frame sent or
 *   read; the socket stays open), which is what a pulled cable looks like
 *   and what only the watchdog can see. A "closed" cut closes the socket
 *   (linger 0): TCP says goodbye; the figure tells whether that is noticed
 *   sooner. Time 0 is the return of the engine's last zmq_send.
 *
 * Invariants: the aggregator child is stopped and reaped before a command
 * returns; every wait has a deadline; every buffer is fixed-size.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "hf_bench.h"
#include "hf_proto.h"
#include "hf_record.h"
#include "hf_store.h"
#include "hf_time.h"

#define S_RUN 1                        /* run id of every record                   */
#define S_CHANNELS 4                   /* channels per engine                      */
#define S_TICK_NS 10000000ull          /* ns: one batch period                     */
#define S_PER_TICK (S_CHANNELS * 10u)  /* records per tick: 4 channels x 10 ms     */
#define S_RATE (S_CHANNELS * 1000u)    /* records/s per engine                     */
#define S_WINDOW 8u                    /* batches in flight per engine             */
#define S_HEARTBEAT_NS 1000000000ull   /* ns: STATUS period, PING when idle        */
#define S_BOUND_MS 2000u               /* ms of data an engine may have unacked    */
#define S_GRACE_NS 5000000000ull       /* ns: after the run, for the last ACKs     */
#define S_SETUP_NS 120000000000ull     /* ns: bound on every engine being welcomed */
#define S_FRAME_CAP (1u << 20)         /* bytes: 16,384 samples of <= 40 bytes     */
#define S_RX_CAP 4096u                 /* bytes: frames from the aggregator        */

typedef enum {
    S_IDLE,       /* no socket                                     */
    S_HELLO_SENT, /* waiting for WELCOME                           */
    S_STREAMING,  /* welcomed                                      */
    S_CUT,        /* cut: waiting for the feed's "unavailable"     */
} s_state_t;

typedef struct {
    char id[HF_ENGINE_ID_MAX + 1];
    void *sock;             /* DEALER, NULL when closed                   */
    s_state_t state;
    bool silent;            /* cut silently: the socket is left alone     */
    bool generating;        /* new samples are committed every tick       */
    uint64_t epoch;         /* the simulated spool's log id               */
    uint64_t committed;     /* seq of the last committed record           */
    uint64_t sent;          /* seq of the last record sent on this connection */
    uint64_t acked;         /* cumulative ACK, data lane                  */
    uint64_t inflight[S_WINDOW]; /* last seq of each unacked batch (ring) */
    uint32_t head, count;   /* ring of in-flight batches                  */
    uint64_t tick0_ns;      /* mono ns of tick 0 (records 1..40)          */
    uint64_t next_tick_ns;  /* mono ns: next tick                         */
    uint64_t last_tx_ns;    /* mono ns: last frame sent                   */
    uint64_t status_ns;     /* mono ns: last STATUS sent                  */
    uint64_t max_unacked;   /* records, over the measured run             */
    uint64_t max_age_ns;    /* age of the oldest unacked record, max      */
    uint64_t nonce;         /* PING nonces                                */
    uint64_t cut_ns;        /* mono ns: silence began                     */
    uint64_t stream_until;  /* mono ns: availability: when to cut         */
    uint32_t cuts;          /* availability: cuts done                    */
    bool closed_mode;       /* availability: cut by closing the socket    */
} s_eng_t;

typedef struct {
    void *ctx;
    char ep[64];            /* the aggregator's engines endpoint          */
    uint64_t wall0, mono0;  /* clock pair for the records' wall time      */
    uint8_t *frame;         /* S_FRAME_CAP: the batch being built         */
    uint64_t acks;          /* ACK frames received (one per store txn)    */
    uint64_t batches;       /* BATCH frames sent                          */
    uint64_t resyncs;       /* WELCOMEs after the first (gap resync)      */
    uint64_t send_errors;   /* zmq_send refused (HWM, gone)               */
    uint64_t proto_errors;  /* frames we could not decode or did not expect */
} s_sim_t;

/* ------------------------------------------------------------------ */
/* one simulated engine                                                 */

static uint64_t
s_record_mono(const s_eng_t *e, uint64_t seq)
{
    return e->tick0_ns + ((seq - 1) / S_CHANNELS) * 1000000ull; /* one per channel per ms */
}

static int
s_send(s_sim_t *sim, s_eng_t *e, const uint8_t *buf, size_t len, uint64_t now)
{
    if (zmq_send(e->sock, buf, len, ZMQ_DONTWAIT) < 0) {
        sim->send_errors++;
        return -1;
    }
    e->last_tx_ns = now;
    return 0;
}

static int
s_eng_connect(s_sim_t *sim, s_eng_t *e, uint64_t now)
{
    int zero = 0;
    int64_t maxmsg = HF_PROTO_MAX_FRAME;
    e->sock = zmq_socket(sim->ctx, ZMQ_DEALER);
    if (!e->sock) {
        fprintf(stderr, "hf-bench: engine socket: %s\n", zmq_strerror(errno));
        return -1;
    }
    zmq_setsockopt(e->sock, ZMQ_ROUTING_ID, e->id, strlen(e->id));
    zmq_setsockopt(e->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(e->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (zmq_connect(e->sock, sim->ep) != 0) {
        fprintf(stderr, "hf-bench: connect %s: %s\n", sim->ep, zmq_strerror(errno));
        return -1;
    }
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    snprintf(h.engine, sizeof h.engine, "%s", e->id);
    h.epoch = e->epoch;
    h.ver_min = HF_PROTO_VERSION_MIN;
    h.ver_max = HF_PROTO_VERSION;
    h.last_seq[HF_LANE_DATA] = e->committed;
    h.run = S_RUN;
    h.run_state = HF_RUN_RUNNING;
    uint8_t buf[256];
    size_t len = 0;
    if (hf_frame_encode_hello(&h, buf, sizeof buf, &len) != HF_OK ||
        s_send(sim, e, buf, len, now) != 0) {
        fprintf(stderr, "hf-bench: engine=%s HELLO not sent\n", e->id);
        return -1;
    }
    e->state = S_HELLO_SENT;
    e->silent = false;
    e->count = 0;
    e->head = 0;
    return 0;
}

static void
s_eng_close(s_eng_t *e)
{
    if (e->sock)
        zmq_close(e->sock);
    e->sock = NULL;
    e->state = S_IDLE;
}

/* Everything committed and not sent, as one batch, if the window has room. */
static void
s_eng_send_batch(s_sim_t *sim, s_eng_t *e, uint64_t now)
{
    if (e->state != S_STREAMING || e->count == S_WINDOW || e->sent >= e->committed)
        return;
    hf_batch_writer_t w;
    if (hf_batch_begin(&w, HF_LANE_DATA, sim->frame, S_FRAME_CAP) != HF_OK)
        return;
    uint64_t last = e->sent;
    while (last < e->committed) {
        uint64_t seq = last + 1, mono = s_record_mono(e, seq);
        hf_record_t r;
        hf_record_sample(&r, S_RUN, sim->wall0 + (mono - sim->mono0), mono,
                         (uint32_t)((seq - 1) % S_CHANNELS), (double)(seq & 1023));
        r.seq = seq;
        if (hf_batch_add(&w, &r) != HF_OK) /* HF_EFULL: the batch is full */
            break;
        last = seq;
    }
    size_t len = 0;
    if (last == e->sent || hf_batch_finish(&w, &len) != HF_OK)
        return;
    if (s_send(sim, e, sim->frame, len, now) != 0)
        return; /* not sent: the next tick tries again */
    e->inflight[(e->head + e->count) % S_WINDOW] = last;
    e->count++;
    e->sent = last;
    sim->batches++;
}

/* Heartbeat duties of a welcomed engine: STATUS every interval (the
 * dispatcher's rule), PING when nothing else went out for an interval. */
static void
s_eng_timers(s_sim_t *sim, s_eng_t *e, uint64_t now)
{
    if (e->state != S_STREAMING)
        return;
    uint8_t buf[256];
    size_t len = 0;
    if (now - e->status_ns >= S_HEARTBEAT_NS) {
        hf_status_t st;
        memset(&st, 0, sizeof st);
        st.pending[HF_LANE_DATA] = e->committed - e->acked;
        if (e->acked < e->committed)
            st.oldest_age_ms[HF_LANE_DATA] = (now - s_record_mono(e, e->acked + 1)) / 1000000ull;
        st.drain_per_s = S_RATE;
        st.spool_limit = (uint64_t)1 << 30;
        if (hf_frame_encode_status(&st, buf, sizeof buf, &len) == HF_OK &&
            s_send(sim, e, buf, len, now) == 0)
            e->status_ns = now;
    }
    if (now - e->last_tx_ns >= S_HEARTBEAT_NS) {
        hf_ping_t p = {.nonce = ++e->nonce};
        if (hf_frame_encode_ping(&p, buf, sizeof buf, &len) == HF_OK)
            s_send(sim, e, buf, len, now);
    }
}

/* Commit the ticks that are due, send, keep the heartbeat. */
static void
s_eng_tick(s_sim_t *sim, s_eng_t *e, uint64_t now)
{
    if (!e->sock || e->silent)
        return;
    bool due = false;
    while (e->generating && now >= e->next_tick_ns) {
        e->committed += S_PER_TICK;
        e->next_tick_ns += S_TICK_NS;
        due = true;
    }
    if (due || !e->generating)
        s_eng_send_batch(sim, e, now);
    s_eng_timers(sim, e, now);
}

static void
s_eng_on_frame(s_sim_t *sim, s_eng_t *e, const uint8_t *buf, size_t len, uint64_t now)
{
    hf_frame_t f;
    if (hf_frame_decode(buf, len, &f, NULL, 0) != HF_OK) {
        sim->proto_errors++;
        return;
    }
    switch (f.type) {
    case HF_FRAME_WELCOME:
        if (f.u.welcome.epoch != e->epoch || f.u.welcome.acked[HF_LANE_DATA] > e->committed) {
            sim->proto_errors++;
            return;
        }
        if (e->state == S_STREAMING)
            sim->resyncs++;
        if (f.u.welcome.acked[HF_LANE_DATA] > e->acked)
            e->acked = f.u.welcome.acked[HF_LANE_DATA];
        e->sent = f.u.welcome.acked[HF_LANE_DATA]; /* resend from acked + 1 */
        e->count = 0;
        e->head = 0;
        e->state = S_STREAMING;
        e->status_ns = now - S_HEARTBEAT_NS; /* first STATUS at once, as the link does */
        s_eng_send_batch(sim, e, now);
        break;
    case HF_FRAME_ACK:
        if (e->state != S_STREAMING) /* a reply to the previous connection */
            return;
        if (f.u.ack.lane != HF_LANE_DATA || f.u.ack.seq > e->sent) {
            sim->proto_errors++;
            return;
        }
        sim->acks++;
        if (f.u.ack.seq > e->acked)
            e->acked = f.u.ack.seq;
        while (e->count && e->inflight[e->head] <= e->acked) {
            e->head = (e->head + 1) % S_WINDOW;
            e->count--;
        }
        break;
    case HF_FRAME_PING: {
        uint8_t out[64];
        size_t n = 0;
        if (hf_frame_encode_pong(&f.u.ping, out, sizeof out, &n) == HF_OK)
            s_send(sim, e, out, n, now);
        break;
    }
    case HF_FRAME_PONG: break;
    default: sim->proto_errors++; break;
    }
}

static void
s_eng_recv(s_sim_t *sim, s_eng_t *e, uint64_t now)
{
    uint8_t buf[S_RX_CAP];
    if (!e->sock || e->silent)
        return;
    for (int i = 0; i < 256; i++) {
        int n = zmq_recv(e->sock, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        if ((size_t)n > sizeof buf) {
            sim->proto_errors++;
            continue;
        }
        s_eng_on_frame(sim, e, buf, (size_t)n, now);
    }
}

/* ------------------------------------------------------------------ */
/* the status feed                                                      */

typedef struct {
    char type[16];
    char engine[HF_ENGINE_ID_MAX + 1];
    char state[16];
} s_feed_msg_t;

static void
s_copy_str(char *dst, size_t cap, const msgpack_object *o)
{
    dst[0] = 0;
    if (o->type != MSGPACK_OBJECT_STR)
        return;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n);
    dst[n] = 0;
}

/* One feed message (a msgpack map): type, engine, state; 0 or -1. */
static int
s_feed_parse(const uint8_t *buf, size_t len, s_feed_msg_t *m)
{
    memset(m, 0, sizeof *m);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            char key[16];
            s_copy_str(key, sizeof key, &kv->key);
            if (strcmp(key, "type") == 0)
                s_copy_str(m->type, sizeof m->type, &kv->val);
            else if (strcmp(key, "engine") == 0)
                s_copy_str(m->engine, sizeof m->engine, &kv->val);
            else if (strcmp(key, "state") == 0)
                s_copy_str(m->state, sizeof m->state, &kv->val);
        }
        rc = 0;
    }
    msgpack_unpacked_destroy(&u);
    return rc;
}

static void *
s_feed_open(void *ctx, int port)
{
    char ep[64];
    int zero = 0;
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    if (!sub)
        return NULL;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(sub, ep) != 0) {
        zmq_close(sub);
        return NULL;
    }
    return sub;
}

/* ------------------------------------------------------------------ */
/* shared set-up                                                        */

static void
s_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl); /* the aggregator child inherits it */
    }
}

static uint64_t
s_epoch(uint32_t i)
{
    uint64_t x = hf_clock_wall_ns() ^ ((uint64_t)getpid() << 32) ^ (i * 0x9E3779B97F4A7C15ull);
    x ^= x >> 31; /* splitmix64 finaliser: distinct, well spread, never 0 below */
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    return x | 1;
}

/* utime + stime of pid, in ns (/proc/PID/stat fields 14 and 15). */
uint64_t
hf_bench_proc_cpu_ns(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return 0;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    return (ut + st) * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
}

static uint64_t
s_self_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* A field of /proc/PID/io (bytes), 0 if unreadable. */
static uint64_t
s_proc_io(pid_t pid, const char *field)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t flen = strlen(field);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoull(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static int
s_sim_init(s_sim_t *sim, int port, uint32_t sockets)
{
    memset(sim, 0, sizeof *sim);
    snprintf(sim->ep, sizeof sim->ep, "tcp://127.0.0.1:%d", port);
    sim->wall0 = hf_clock_wall_ns();
    sim->mono0 = hf_clock_mono_ns();
    sim->frame = malloc(S_FRAME_CAP);
    sim->ctx = zmq_ctx_new();
    if (!sim->frame || !sim->ctx)
        return -1;
    zmq_ctx_set(sim->ctx, ZMQ_MAX_SOCKETS, (int)sockets + 64);
    zmq_ctx_set(sim->ctx, ZMQ_BLOCKY, 0);
    return 0;
}

static void
s_sim_fini(s_sim_t *sim, s_eng_t *engs, uint32_t n)
{
    for (uint32_t i = 0; engs && i < n; i++)
        s_eng_close(&engs[i]);
    if (sim->ctx)
        zmq_ctx_term(sim->ctx);
    sim->ctx = NULL;
    free(sim->frame);
    sim->frame = NULL;
}

/* Reopen the store after the aggregator exited: each engine holds at least
 * what it saw acked and at most what it committed (exactly that if
 * everything was acked), and nothing in the control lane. */
static int
s_verify(const char *store_dir, const s_eng_t *engs, uint32_t n)
{
    hf_err_t err = HF_OK;
    hf_store_t *st = hf_store_open(store_dir, NULL, &err);
    if (!st) {
        fprintf(stderr, "hf-bench: cannot open store %s: %s\n", store_dir, hf_errname(err));
        return -1;
    }
    int rc = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        const s_eng_t *e = &engs[i];
        hf_store_engine_t se;
        err = hf_store_engine_get(st, e->id, &se);
        uint64_t got = err == HF_OK ? se.records[HF_LANE_DATA] : 0;
        bool exact = e->acked == e->committed;
        if (err != HF_OK || got < e->acked || got > e->committed ||
            (exact && got != e->committed) || se.records[HF_LANE_CONTROL] != 0) {
            fprintf(stderr,
                    "hf-bench: engine=%s store holds %" PRIu64 " (err %s), acked %" PRIu64
                    ", committed %" PRIu64 "\n",
                    e->id, got, hf_errname(err), e->acked, e->committed);
            rc = -1;
        }
        total += got;
    }
    hf_store_close(&st);
    if (rc == 0)
        fprintf(stderr, "hf-bench: store verified: %u engines, %" PRIu64 " records\n", n, total);
    return rc;
}

/* ------------------------------------------------------------------ */
/* agg-engines                                                          */

int
hf_bench_cmd_agg_engines(const char *agg_bin, const char *dir, uint64_t n, uint64_t seconds)
{
    if (n > 20000 || seconds > 3600) {
        fprintf(stderr, "hf-bench: agg-engines: at most 20000 engines and 3600 s\n");
        return 2;
    }
    s_raise_nofile();
    int port = hf_bench_free_port(), feed_port = hf_bench_free_port();
    char feed_ep[64], maxeng[16];
    snprintf(feed_ep, sizeof feed_ep, "tcp://127.0.0.1:%d", feed_port);
    snprintf(maxeng, sizeof maxeng, "%" PRIu64, n + 16);
    const char *extra[] = {"--status", feed_ep, "--max-engines", maxeng, NULL};
    hf_bench_agg_t agg = {0};
    s_sim_t sim = {0};
    s_eng_t *engs = calloc(n, sizeof *engs);
    void *feed = NULL;
    int ret = 1;
    if (!engs || s_sim_init(&sim, port, (uint32_t)n) != 0)
        goto done;
    if (hf_bench_agg_start(&agg, agg_bin, dir, port, extra) != 0)
        goto done;
    feed = s_feed_open(sim.ctx, feed_port);
    if (!feed)
        goto done;

    /* Connect everyone; each is welcomed in turn (a HELLO costs the
     * aggregator a few durable writes). Welcomed engines keep the
     * heartbeat while the others wait. */
    uint64_t now = hf_clock_mono_ns(), t_setup = now;
    for (uint32_t i = 0; i < n; i++) {
        s_eng_t *e = &engs[i];
        snprintf(e->id, sizeof e->id, "agg-e%05u", i);
        e->epoch = s_epoch(i);
        if (s_eng_connect(&sim, e, now) != 0)
            goto done;
    }
    uint32_t welcomed = 0;
    while (welcomed < n) {
        now = hf_clock_mono_ns();
        if (now - t_setup > S_SETUP_NS) {
            fprintf(stderr, "hf-bench: agg-engines: %u/%" PRIu64 " engines welcomed\n",
                    welcomed, n);
            goto done;
        }
        welcomed = 0;
        for (uint32_t i = 0; i < n; i++) {
            s_eng_recv(&sim, &engs[i], now);
            s_eng_timers(&sim, &engs[i], now);
            welcomed += engs[i].state == S_STREAMING;
        }
        hf_bench_sleep_ns(1000000ull);
    }
    double setup_s = (double)(hf_clock_mono_ns() - t_setup) / 1e9;

    /* The run: ticks spread evenly over the 10 ms period. */
    uint64_t t0 = hf_clock_mono_ns() + 20000000ull, t_end = t0 + seconds * 1000000000ull;
    for (uint32_t i = 0; i < n; i++) {
        engs[i].tick0_ns = t0 + (S_TICK_NS * i) / n;
        engs[i].next_tick_ns = engs[i].tick0_ns;
        engs[i].generating = true;
    }
    const uint64_t bound = (uint64_t)S_BOUND_MS * S_RATE / 1000;
    uint64_t agg_cpu0 = hf_bench_proc_cpu_ns(agg.pid), self_cpu0 = s_self_cpu_ns();
    uint64_t wbytes0 = s_proc_io(agg.pid, "write_bytes"), acks0 = sim.acks;
    uint64_t unavailable = 0, over_at = 0, loops = 0, late_loops = 0;
    uint64_t agg_cpu1 = 0, self_cpu1 = 0, wbytes1 = 0, acks1 = 0, acked_run = 0, t_stop = 0;
    bool running = true, all_acked = false;
    uint64_t t_all = 0;
    for (;;) {
        now = hf_clock_mono_ns();
        if (running && now >= t_end) {
            /* End of the measured run: no new samples; the rest must drain. */
            running = false;
            t_stop = now;
            agg_cpu1 = hf_bench_proc_cpu_ns(agg.pid);
            self_cpu1 = s_self_cpu_ns();
            wbytes1 = s_proc_io(agg.pid, "write_bytes");
            acks1 = sim.acks;
            for (uint32_t i = 0; i < n; i++) {
                acked_run += engs[i].acked;
                engs[i].generating = false;
            }
        }
        if (!running && now - t_stop > S_GRACE_NS)
            break;
        uint8_t fb[1024];
        int fl;
        while ((fl = zmq_recv(feed, fb, sizeof fb, ZMQ_DONTWAIT)) >= 0) {
            s_feed_msg_t m;
            if ((size_t)fl <= sizeof fb && s_feed_parse(fb, (size_t)fl, &m) == 0 &&
                strcmp(m.type, "availability") == 0 && strcmp(m.state, "unavailable") == 0) {
                if (unavailable++ < 5)
                    fprintf(stderr, "hf-bench: agg-engines: engine=%s declared unavailable\n",
                            m.engine);
            }
        }
        bool all = true;
        for (uint32_t i = 0; i < n; i++) {
            s_eng_t *e = &engs[i];
            s_eng_recv(&sim, e, now);
            s_eng_tick(&sim, e, now);
            if (running && now >= e->tick0_ns) {
                uint64_t un = e->committed - e->acked;
                if (un > e->max_unacked)
                    e->max_unacked = un;
                if (un) {
                    uint64_t age = now - s_record_mono(e, e->acked + 1);
                    if (age > e->max_age_ns)
                        e->max_age_ns = age;
                }
                if (un > bound && !over_at)
                    over_at = now;
            }
            all = all && e->acked == e->committed;
        }
        if (!running && all) {
            all_acked = true;
            t_all = now;
            break;
        }
        /* Far past the bound: the answer is known, stop early (keep >= 5 s). */
        if (running && over_at && now - t0 > 5000000000ull) {
            uint64_t worst = 0;
            for (uint32_t i = 0; i < n; i++)
                worst = engs[i].max_unacked > worst ? engs[i].max_unacked : worst;
            if (worst > 4 * bound) {
                fprintf(stderr, "hf-bench: agg-engines: backlog past 4x the bound after %.1f s: "
                                "stopping early\n",
                        (double)(now - t0) / 1e9);
                t_end = now; /* the rates below use the real duration */
                continue;
            }
        }
        loops++;
        uint64_t after = hf_clock_mono_ns();
        if (after - now > 5000000ull)
            late_loops++; /* one pass over the engines took > 5 ms: the generator lags */
        zmq_pollitem_t it = {.socket = feed, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 1);
    }
    double run_s = (double)(t_stop - t0) / 1e9;
    uint64_t max_un = 0, max_age = 0;
    for (uint32_t i = 0; i < n; i++) {
        max_un = engs[i].max_unacked > max_un ? engs[i].max_unacked : max_un;
        max_age = engs[i].max_age_ns > max_age ? engs[i].max_age_ns : max_age;
    }
    uint64_t committed_all = 0;
    for (uint32_t i = 0; i < n; i++)
        committed_all += engs[i].committed;
    for (uint32_t i = 0; i < n; i++)
        s_eng_close(&engs[i]);
    zmq_close(feed);
    feed = NULL;
    hf_bench_agg_stop(&agg);
    if (s_verify(agg.store, engs, (uint32_t)n) != 0)
        goto done;
    bool ok = all_acked && max_un <= bound && unavailable == 0 && sim.proto_errors == 0 &&
              sim.resyncs == 0;
    if (!ok)
        fprintf(stderr,
                "hf-bench: agg-engines: n=%" PRIu64 " NOT kept up: all_acked=%d"
                " max_unacked=%" PRIu64 " (bound %" PRIu64 ") unavailable=%" PRIu64
                " proto_errors=%" PRIu64
                " resyncs=%" PRIu64 "\n",
                n, (int)all_acked, max_un, bound, unavailable, sim.proto_errors, sim.resyncs);
    double commits = (double)(acks1 - acks0);
    printf("agg_engines_n %" PRIu64 "\n", n);
    printf("agg_engines_ok %d\n", (int)ok);
    printf("agg_engines_run_s %.1f\n", run_s);
    printf("agg_engines_offered_per_s %" PRIu64 "\n", n * S_RATE);
    printf("agg_engines_records_per_s %.0f\n", (double)acked_run / run_s);
    printf("agg_engines_max_unacked_records %" PRIu64 "\n", max_un);
    printf("agg_engines_max_unacked_ms %.1f\n", (double)max_age / 1e6);
    printf("agg_engines_end_drain_ms %.1f\n", all_acked ? (double)(t_all - t_stop) / 1e6 : -1.0);
    printf("agg_engines_commits_per_s %.0f\n", commits / run_s);
    printf("agg_engines_records_per_commit %.1f\n", commits > 0 ? (double)acked_run / commits : 0);
    printf("agg_engines_batches_per_s %.0f\n", (double)sim.batches / run_s);
    printf("agg_engines_agg_cpu_pct %.1f\n", (double)(agg_cpu1 - agg_cpu0) / 1e7 / run_s);
    printf("agg_engines_bench_cpu_pct %.1f\n", (double)(self_cpu1 - self_cpu0) / 1e7 / run_s);
    printf("agg_engines_agg_write_mib_per_s %.1f\n",
           (double)(wbytes1 - wbytes0) / 1048576.0 / run_s);
    printf("agg_engines_unavailable %" PRIu64 "\n", unavailable);
    printf("agg_engines_setup_s %.1f\n", setup_s);
    printf("agg_engines_late_loops %" PRIu64 "\n", late_loops);
    printf("agg_engines_records %" PRIu64 "\n", committed_all);
    (void)loops;
    ret = 0;
done:
    if (feed)
        zmq_close(feed);
    hf_bench_agg_stop(&agg);
    s_sim_fini(&sim, engs, engs ? (uint32_t)n : 0);
    free(engs);
    return ret;
}

/* ------------------------------------------------------------------ */
/* lmdb-engines: what interleaved engines cost raw LMDB (diagnostic)    */

/* The store's record key shape: engine id, 0, ordinal (4), lane (1), seq (8). */
static size_t
s_lkey(uint8_t *kb, const char *engine, uint64_t seq)
{
    size_t el = strlen(engine), at = el + 1;
    memcpy(kb, engine, el);
    kb[el] = 0;
    memset(kb + at, 0, 4); /* ordinal 0 */
    at += 4;
    kb[at++] = HF_LANE_DATA;
    for (int b = 0; b < 8; b++)
        kb[at++] = (uint8_t)(seq >> (56 - 8 * b));
    return at;
}

/* ENGINES key ranges filled in rounds of PER records each (one round =
 * one 10 ms batch of every engine at 4 kHz when PER is 40), durable. mode
 * "engine": one transaction per engine per round (what the aggregator does
 * when engines interleave); mode "round": one transaction per round (a
 * group commit across engines); mode "blob": as "round", but each engine's
 * PER records of a round are ONE value (a batch stored whole). Records
 * are 33-byte encoded samples. Mode "dbi": as "round", with one named
 * database per engine (its records are appended at the end of their own
 * tree, MDB_APPEND, pages filled; in one shared tree they are inserted in
 * the middle, where LMDB splits pages in half). */
int
hf_bench_cmd_lmdb_engines(const char *dir, uint64_t engines, uint64_t per, uint64_t rounds,
                          const char *mode)
{
    bool per_engine = strcmp(mode, "engine") == 0, blob = strcmp(mode, "blob") == 0;
    bool dbi_each = strcmp(mode, "dbi") == 0;
    if ((!per_engine && !blob && !dbi_each && strcmp(mode, "round") != 0) ||
        (dbi_each && engines > 4096) || engines > 100000 ||
        per > 100000 || (blob && per * 40 > 65536)) {
        fprintf(stderr, "hf-bench: lmdb-engines: mode is engine, round, blob or dbi\n");
        return 2;
    }
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_dbi *dbis = dbi_each ? calloc(engines, sizeof *dbis) : NULL;
    if (dbi_each && !dbis)
        return 1;
    int mrc = mkdir(dir, 0700);
    if (mrc != 0 && errno != EEXIST)
        return 1;
    uint64_t n = engines * per * rounds;
    mrc = mdb_env_create(&env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(env, (size_t)(n * 256 + (256u << 20)));
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(env, (MDB_dbi)(dbi_each ? engines + 1 : 1));
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open(env, dir, MDB_NOTLS, 0600); /* full sync, as the store */
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, NULL, 0, &dbi);
    for (uint64_t e = 0; dbi_each && e < engines && mrc == MDB_SUCCESS; e++) {
        char name[32];
        snprintf(name, sizeof name, "r.agg-e%05u", (unsigned)e);
        mrc = mdb_dbi_open(txn, name, MDB_CREATE, &dbis[e]);
    }
    if (mrc == MDB_SUCCESS) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }
    static uint8_t val[65536 + HF_PROTO_MAX_RECORD];
    size_t vlen = 0;
    hf_record_t r;
    hf_record_sample(&r, S_RUN, 1700000000000000000ull, 123456789012345ull, 2, 0.5);
    r.seq = 1000000;
    if (hf_record_encode(&r, val, sizeof val, &vlen) != HF_OK)
        mrc = MDB_BAD_VALSIZE; /* cannot happen: a sample always encodes */
    uint64_t w0 = s_proc_io(getpid(), "write_bytes"), c0 = s_self_cpu_ns(), commits = 0;
    uint64_t t0 = hf_clock_mono_ns();
    for (uint64_t k = 0; k < rounds && mrc == MDB_SUCCESS; k++) {
        for (uint64_t e = 0; e < engines && mrc == MDB_SUCCESS; e++) {
            if (!txn)
                mrc = mdb_txn_begin(env, NULL, 0, &txn);
            char id[32];
            snprintf(id, sizeof id, "agg-e%05u", (unsigned)e);
            if (blob) { /* one value: the round's records of this engine, end to end */
                uint8_t kb[96];
                MDB_val mk = {s_lkey(kb, id, k * per + 1), kb}, mv = {vlen * per, val};
                mrc = mdb_put(txn, dbi, &mk, &mv, 0);
            }
            for (uint64_t i = 0; i < per && mrc == MDB_SUCCESS && !blob; i++) {
                uint8_t kb[96];
                MDB_val mk = {s_lkey(kb, id, k * per + i + 1), kb}, mv = {vlen, val};
                mrc = dbi_each ? mdb_put(txn, dbis[e], &mk, &mv, MDB_APPEND)
                               : mdb_put(txn, dbi, &mk, &mv, 0);
            }
            if (mrc == MDB_SUCCESS && (per_engine || e + 1 == engines)) {
                mrc = mdb_txn_commit(txn);
                txn = NULL;
                commits++;
            }
        }
    }
    uint64_t t1 = hf_clock_mono_ns();
    uint64_t w1 = s_proc_io(getpid(), "write_bytes"), c1 = s_self_cpu_ns();
    if (txn)
        mdb_txn_abort(txn);
    MDB_envinfo info;
    MDB_stat stat;
    if (mrc == MDB_SUCCESS)
        mdb_env_info(env, &info);
    if (mrc == MDB_SUCCESS)
        mdb_env_stat(env, &stat);
    if (env)
        mdb_env_close(env);
    free(dbis);
    if (mrc != MDB_SUCCESS) {
        fprintf(stderr, "hf-bench: lmdb-engines: %s\n", mdb_strerror(mrc));
        return 1;
    }
    double secs = (double)(t1 - t0) / 1e9;
    printf("lmdb_engines_%s_per_s %.0f\n", mode, (double)n / secs);
    printf("lmdb_engines_%s_commits_per_s %.0f\n", mode, (double)commits / secs);
    printf("lmdb_engines_%s_write_bytes_per_record %.0f\n", mode, (double)(w1 - w0) / (double)n);
    printf("lmdb_engines_%s_file_bytes_per_record %.0f\n", mode,
           (double)(info.me_last_pgno + 1) * stat.ms_psize / (double)n);
    printf("lmdb_engines_%s_cpu_pct %.1f\n", mode, (double)(c1 - c0) / 1e7 / secs);
    printf("lmdb_engines_%s_records %" PRIu64 "\n", mode, n);
    return 0;
}

/* ------------------------------------------------------------------ */
/* availability                                                         */

#define S_CUT_ENGINES 4u            /* engines per cut mode, cutting in turn  */
#define S_STREAM_NS 500000000ull    /* ns: streaming between reconnect and cut */

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
s_print_dist(const char *key, uint64_t *v, uint64_t n)
{
    qsort(v, n, sizeof *v, s_cmp_u64);
    printf("%s %.1f\n", key, (double)v[n / 2] / 1e6);
    printf("%s_p90 %.1f\n", key, (double)v[(n * 9) / 10] / 1e6);
    printf("%s_max %.1f\n", key, (double)v[n - 1] / 1e6);
    printf("%s_min %.1f\n", key, (double)v[0] / 1e6);
}

int
hf_bench_cmd_availability(const char *agg_bin, const char *dir, uint64_t cuts,
                          uint64_t watchdog_ms)
{
    if (cuts > 1000 || watchdog_ms < 100 || watchdog_ms > 60000) {
        fprintf(stderr, "hf-bench: availability: cuts <= 1000, watchdog 100..60000 ms\n");
        return 2;
    }
    const uint32_t n = 2 * S_CUT_ENGINES; /* [0, 4): silent cuts, [4, 8): closed */
    int port = hf_bench_free_port(), feed_port = hf_bench_free_port();
    char feed_ep[64], wd[16];
    snprintf(feed_ep, sizeof feed_ep, "tcp://127.0.0.1:%d", feed_port);
    snprintf(wd, sizeof wd, "%" PRIu64, watchdog_ms);
    const char *extra[] = {"--status", feed_ep, "--watchdog-ms", wd, NULL};
    hf_bench_agg_t agg = {0};
    s_sim_t sim = {0};
    s_eng_t engs[2 * S_CUT_ENGINES];
    memset(engs, 0, sizeof engs);
    uint64_t *det[2] = {calloc(cuts, sizeof(uint64_t)), calloc(cuts, sizeof(uint64_t))};
    uint64_t got[2] = {0, 0}, spurious = 0, feed_msgs = 0;
    void *feed = NULL;
    int ret = 1;
    if (!det[0] || !det[1] || s_sim_init(&sim, port, n) != 0)
        goto done;
    if (hf_bench_agg_start(&agg, agg_bin, dir, port, extra) != 0)
        goto done;
    feed = s_feed_open(sim.ctx, feed_port);
    if (!feed)
        goto done;
    uint64_t now = hf_clock_mono_ns(), t_begin = now;
    /* A cut cycle is about watchdog + stream time; the engines start their
     * cycles spread over it, so cuts (and reconnects) rarely coincide. */
    uint64_t cycle = watchdog_ms * 1000000ull + S_STREAM_NS;
    for (uint32_t i = 0; i < n; i++) {
        s_eng_t *e = &engs[i];
        snprintf(e->id, sizeof e->id, "avail-%s%u", i < S_CUT_ENGINES ? "silent" : "closed",
                 i % S_CUT_ENGINES);
        e->closed_mode = i >= S_CUT_ENGINES;
        e->epoch = s_epoch(i);
        e->tick0_ns = now;
        e->next_tick_ns = now;
        e->generating = true;
        e->stream_until = now + S_HEARTBEAT_NS + S_STREAM_NS + (cycle * i) / n;
        if (s_eng_connect(&sim, e, now) != 0)
            goto done;
    }
    /* Until the feed has delivered a message, the SUB may not be connected
     * yet (ZeroMQ's slow joiner): no cut before that. */
    uint64_t dl = now + (cuts * cycle) / S_CUT_ENGINES + 60000000000ull;
    bool finishing = false;
    for (;;) {
        now = hf_clock_mono_ns();
        if (now > dl) {
            fprintf(stderr, "hf-bench: availability: timed out (silent %" PRIu64 "/%" PRIu64
                            ", closed %" PRIu64 "/%" PRIu64 ")\n",
                    got[0], cuts, got[1], cuts);
            goto done;
        }
        zmq_pollitem_t items[1 + 2 * S_CUT_ENGINES];
        items[0] = (zmq_pollitem_t){.socket = feed, .events = ZMQ_POLLIN};
        int ni = 1;
        for (uint32_t i = 0; i < n; i++)
            if (engs[i].sock && !engs[i].silent)
                items[ni++] = (zmq_pollitem_t){.socket = engs[i].sock, .events = ZMQ_POLLIN};
        zmq_poll(items, ni, 1);
        now = hf_clock_mono_ns();
        uint8_t fb[1024];
        int fl;
        while ((fl = zmq_recv(feed, fb, sizeof fb, ZMQ_DONTWAIT)) >= 0) {
            s_feed_msg_t m;
            feed_msgs++;
            if ((size_t)fl > sizeof fb || s_feed_parse(fb, (size_t)fl, &m) != 0 ||
                strcmp(m.type, "availability") != 0 || strcmp(m.state, "unavailable") != 0)
                continue;
            s_eng_t *e = NULL;
            for (uint32_t i = 0; i < n; i++)
                if (strcmp(engs[i].id, m.engine) == 0)
                    e = &engs[i];
            if (!e || e->state != S_CUT) {
                spurious++;
                fprintf(stderr, "hf-bench: availability: engine=%s unavailable without a cut\n",
                        m.engine);
                continue;
            }
            int mode = e->closed_mode;
            if (got[mode] < cuts)
                det[mode][got[mode]++] = now - e->cut_ns;
            e->cuts++;
            s_eng_close(e); /* the silent socket too: the "cable" is back */
            if (s_eng_connect(&sim, e, now) != 0)
                goto done;
            e->stream_until = now + S_STREAM_NS; /* next cut: after streaming again */
        }
        bool done_all = got[0] >= cuts && got[1] >= cuts;
        bool settled = true;
        for (uint32_t i = 0; i < n; i++) {
            s_eng_t *e = &engs[i];
            s_eng_recv(&sim, e, now);
            if (done_all && e->generating && e->state == S_STREAMING)
                e->generating = false; /* the last connection: drain, then stop */
            s_eng_tick(&sim, e, now);
            settled = settled && e->state == S_STREAMING && !e->generating &&
                      e->acked == e->committed;
            bool want = got[e->closed_mode] < cuts;
            if (e->state == S_STREAMING && want && feed_msgs > 0 && now >= e->stream_until &&
                e->acked > 0) {
                /* The cut. Time 0 is the last frame sent: silence began then
                 * (the aggregator's watchdog counts from that frame too). */
                e->state = S_CUT;
                e->cut_ns = e->last_tx_ns;
                if (e->closed_mode) {
                    zmq_close(e->sock);
                    e->sock = NULL;
                } else {
                    e->silent = true;
                }
            }
        }
        if (done_all && !finishing)
            finishing = true;
        if (finishing && settled)
            break;
    }
    double total_s = (double)(hf_clock_mono_ns() - t_begin) / 1e9;
    for (uint32_t i = 0; i < n; i++)
        s_eng_close(&engs[i]);
    zmq_close(feed);
    feed = NULL;
    hf_bench_agg_stop(&agg);
    if (s_verify(agg.store, engs, n) != 0)
        goto done;
    if (spurious) {
        fprintf(stderr, "hf-bench: availability: %" PRIu64 " unexpected unavailable message(s)\n",
                spurious);
        goto done;
    }
    printf("availability_watchdog_ms %" PRIu64 "\n", watchdog_ms);
    printf("availability_cuts %" PRIu64 "\n", cuts);
    s_print_dist("availability_detect_ms", det[0], cuts);
    s_print_dist("availability_closed_detect_ms", det[1], cuts);
    printf("availability_run_s %.1f\n", total_s);
    ret = 0;
done:
    if (feed)
        zmq_close(feed);
    hf_bench_agg_stop(&agg);
    s_sim_fini(&sim, engs, n);
    free(det[0]);
    free(det[1]);
    return ret;
}
