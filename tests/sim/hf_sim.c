/* hf_sim.c - deterministic simulation of engine link <-> aggregator session.
 *
 * See hf_sim.h for what is modelled. Design notes:
 * - The two shells are mirrored, not reimplemented: s_eng_* follows
 *   hf_dispatcher.c's worker (commit due, make socket, on_timer, actions,
 *   monitor events, socket frames; s_drop_socket with backoff + jitter;
 *   hf_link_reset after FAILED) and s_agg_* follows hf_router.c (HELLO ->
 *   store cursor -> WELCOME; frames without HELLO ignored; BATCH -> commit
 *   rule -> ACK, or WELCOME resync on a gap; PING -> PONG; watchdog tick).
 *   When a shell changes, this file must follow it.
 * - Records are kept once, in a pool indexed by a unique id (the id is also
 *   the record's mono_ns and payload). The engine's ledger per (epoch, lane)
 *   maps seq -> pool id for everything its spool ever committed (trimmed or
 *   not); the spool itself is (acked, last_seq] of that ledger. The store is
 *   a cursor per (epoch, lane): it holds ledger[1..cursor], and every record
 *   it commits is compared with the ledger entry at that seq when it is
 *   committed, so the store's content is checked record by record.
 * - Network: a connection has two FIFO rings (TCP). A cut empties both. An
 *   engine-side close may be graceful (frames already sent still reach the
 *   aggregator) until a newer connection of the engine attaches, which
 *   models ROUTER_HANDOVER: the old pipe is renamed to an invalid routing
 *   id, so the router refuses whatever it still delivers. A cut may be
 *   followed by zmq's own transparent reconnect of the same DEALER before
 *   the dispatcher has read DISCONNECTED from the monitor: frames then
 *   reach the aggregator on a pipe that never said HELLO.
 * - Time advances one millisecond per step; within a step the network, the
 *   engine and the aggregator run in a seeded random order.
 *
 * Invariants checked continuously (the run is marked failed at once):
 * - TRIM(lane, upto) only when the store already holds upto for the
 *   engine's epoch (ack only after commit), and never above last_seq;
 * - a record the store commits equals the engine's committed record with
 *   that (epoch, lane, seq), and no record is stored twice;
 * - the engine never has to read a seq its spool already trimmed.
 * Checked at the end (hf_sim_check): for the engine's epoch the store holds
 * exactly 1..last_seq of each lane; older (wiped) epochs hold a prefix.
 */
#include "hf_sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_link.h"
#include "hf_proto.h"
#include "hf_session.h"

#define S_ENGINE "sim-engine"
#define S_T0 1000u           /* ms: the clock starts here (0 is a sentinel in the shell) */
#define S_MAX_EPOCHS 8       /* spool wipes per run + 1                                   */
#define S_MAX_CONNS 8        /* connections alive at once (current + draining)           */
#define S_RING 256           /* frames per direction per connection (zmq HWM)            */
#define S_TRACE 96           /* events kept for a failure report                         */
#define S_BATCH_BUF (64u << 10) /* bytes: one BATCH frame (batch_max <= 64)              */
#define S_AGG_RECS 1024      /* records the aggregator decodes per BATCH                  */

/* ---- trace -------------------------------------------------------------- */

typedef enum {
    T_PRODUCE = 1, T_COMMIT, T_MAKE_SOCK, T_HANDSHAKE, T_DROP_SOCK, T_E_HELLO, T_E_BATCH,
    T_E_PING, T_E_PONG, T_E_RECV, T_TRIM, T_LINK_FAILED, T_A_RECV, T_A_WELCOME, T_A_ACK,
    T_A_RESYNC, T_A_IGNORED, T_A_COMMIT_FAIL, T_A_PONG, T_CUT, T_STALL, T_PARTITION,
    T_E_CRASH, T_E_RESTART, T_A_CRASH, T_A_RESTART, T_HANDOVER, T_FAIL, T_E_DUPS, T_T_MAX
} s_tcode_t;

static const char *const s_tname[T_T_MAX] = {
    [T_PRODUCE] = "produce lane=%" PRIu64 " id=%" PRIu64 " staged=%" PRIu64,
    [T_COMMIT] = "engine commit n=%" PRIu64 " last_seq=%" PRIu64 "/%" PRIu64,
    [T_MAKE_SOCK] = "engine new socket conn=%" PRIu64 " backoff=%" PRIu64 " _=%" PRIu64,
    [T_HANDSHAKE] = "handshake conn=%" PRIu64 " silent=%" PRIu64 " _=%" PRIu64,
    [T_DROP_SOCK] = "engine drops socket conn=%" PRIu64 " retry_at=%" PRIu64 " graceful=%" PRIu64,
    [T_E_HELLO] = "engine HELLO conn=%" PRIu64 " last_seq=%" PRIu64 "/%" PRIu64,
    [T_E_BATCH] = "engine BATCH lane=%" PRIu64 " seq=%" PRIu64 "..%" PRIu64,
    [T_E_PING] = "engine PING conn=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_E_PONG] = "engine PONG conn=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_E_RECV] = "engine recv type=%" PRIu64 " conn=%" PRIu64 " rc=%" PRIu64,
    [T_TRIM] = "engine TRIM lane=%" PRIu64 " upto=%" PRIu64 " store_has=%" PRIu64,
    [T_LINK_FAILED] = "engine link FAILED -> reset conn=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_A_RECV] = "agg recv type=%" PRIu64 " conn=%" PRIu64 " _=%" PRIu64,
    [T_A_WELCOME] = "agg WELCOME conn=%" PRIu64 " acked=%" PRIu64 "/%" PRIu64,
    [T_A_ACK] = "agg ACK lane=%" PRIu64 " seq=%" PRIu64 " conn=%" PRIu64,
    [T_A_RESYNC] = "agg gap -> WELCOME resync lane=%" PRIu64 " first=%" PRIu64 " acked=%" PRIu64,
    [T_A_IGNORED] = "agg ignores frame before HELLO type=%" PRIu64 " conn=%" PRIu64 " _=%" PRIu64,
    [T_A_COMMIT_FAIL] = "agg store commit fails lane=%" PRIu64 " first=%" PRIu64 " n=%" PRIu64,
    [T_A_PONG] = "agg PONG conn=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_CUT] = "network cut conn=%" PRIu64 " engine_notice_at=%" PRIu64 " auto_reconnect=%" PRIu64,
    [T_STALL] = "network stall dir=%" PRIu64 " until=%" PRIu64 " _=%" PRIu64,
    [T_PARTITION] = "network partition on=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_E_CRASH] = "ENGINE CRASH wipe=%" PRIu64 " lost_staged=%" PRIu64 " restart_at=%" PRIu64,
    [T_E_RESTART] = "engine restart epoch#%" PRIu64 " last_seq=%" PRIu64 "/%" PRIu64,
    [T_A_CRASH] = "AGGREGATOR CRASH restart_at=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_A_RESTART] = "aggregator restart _=%" PRIu64 " _=%" PRIu64 " _=%" PRIu64,
    [T_HANDOVER] = "router handover: old conn=%" PRIu64 " refused_frames=%" PRIu64 " new=%" PRIu64,
    [T_FAIL] = "CHECK FAILED (see reason) a=%" PRIu64 " b=%" PRIu64 " c=%" PRIu64,
    [T_E_DUPS] = "agg commit lane=%" PRIu64 " fresh=%" PRIu64 " dups=%" PRIu64,
};

typedef struct {
    hf_ms_t t;       /* ms                           */
    uint16_t code;   /* s_tcode_t                    */
    uint64_t a, b, c;
} s_tev_t;

/* ---- network ------------------------------------------------------------ */

typedef struct {
    uint8_t *buf;
    size_t len;   /* bytes                           */
    hf_ms_t due;  /* ms: earliest delivery           */
} s_frame_t;

typedef struct {
    s_frame_t f[S_RING];
    uint32_t head, count;
    hf_ms_t last_due; /* ms: keeps the ring FIFO under random delays */
} s_ring_t;

typedef enum { C_FREE = 0, C_CONNECTING, C_UP, C_CLOSING, C_DEAD } s_cstate_t;

typedef struct {
    s_cstate_t state;
    uint32_t id;
    bool engine_has;   /* the engine's DEALER is this connection              */
    bool agg_attached; /* the router routes the engine's id to this pipe      */
    bool silent;       /* zmq's own reconnect: no HANDSHAKE event for the app */
    bool hs_event;     /* HANDSHAKE_SUCCEEDED waiting in the engine's monitor  */
    hf_ms_t hs_at;     /* ms: handshake completes (HF_MS_NEVER: not started)  */
    hf_ms_t notice_at; /* ms: DISCONNECTED reaches the engine's monitor       */
    s_ring_t q[2];     /* by hf_sim_dir_t                                      */
} s_conn_t;

/* ---- engine ------------------------------------------------------------- */

typedef struct {
    uint64_t epoch;
    uint32_t *ledger[HF_LANE_COUNT]; /* seq-1 -> pool id: every record committed */
    uint64_t nledger[HF_LANE_COUNT]; /* = the spool's last_seq in that epoch     */
    uint64_t stored[HF_LANE_COUNT];  /* the store's cursor for (engine, epoch)   */
    bool store_has;                  /* the store knows this epoch (HELLO seen)  */
} s_epoch_t;

typedef struct {
    bool up;
    hf_ms_t restart_at;            /* ms, while down                       */
    hf_link_t *link;
    int ep;                        /* index into epochs                    */
    uint64_t acked[HF_LANE_COUNT]; /* spool trim cursor (durable)          */
    uint32_t *staging;             /* pool ids, staging_max                */
    uint32_t nstaging;
    hf_ms_t first_staged;          /* ms, 0 = none                         */
    s_conn_t *sock;                /* NULL while no socket                 */
    hf_ms_t reconnect_at;          /* ms                                   */
    uint32_t backoff_ms;
    uint64_t jitter_rng;           /* xorshift, as the dispatcher's         */
    uint8_t *batch_buf;            /* S_BATCH_BUF                          */
    uint64_t win[HF_LANE_COUNT][65]; /* last seq of each unacked batch, as the link sees it */
    uint32_t nwin[HF_LANE_COUNT];
    bool crash_pending;            /* a hook asked for a crash mid-actions  */
} s_engine_t;

/* ---- aggregator --------------------------------------------------------- */

typedef struct {
    bool up;
    hf_ms_t restart_at; /* ms, while down                                   */
    hf_session_t sess;  /* the router's session table (one engine)           */
    bool have_sess;
    hf_record_t *recs;  /* S_AGG_RECS decode buffer                          */
    bool crash_pending;
} s_agg_t;

struct hf_sim_s {
    hf_sim_cfg_t cfg;
    uint64_t rng;
    hf_ms_t now;
    s_engine_t eng;
    s_agg_t agg;
    s_conn_t conns[S_MAX_CONNS];
    uint32_t conn_serial;
    bool partitioned;
    hf_ms_t stall_until[2];    /* ms, by hf_sim_dir_t                   */
    s_epoch_t epochs[S_MAX_EPOCHS];
    int nepochs;
    hf_record_t *pool;         /* max_records                           */
    uint8_t *pool_stored;      /* times the store committed each record */
    uint32_t npool;
    uint32_t rate;             /* records per second                    */
    uint64_t rate_acc;
    bool producing;
    uint32_t p_commit_fail;    /* 1 in N store commits fails (0: never)  */
    uint32_t p_auto_reconnect; /* percent of cuts zmq silently reconnects */
    bool reply_race;           /* model libzmq's handover/send race, below */
    bool hooks[HF_SIM_HOOK_COUNT];
    hf_sim_bug_t bug;
    bool bug_done;
    hf_sim_stats_t st;
    bool failed;
    char why[320];
    s_tev_t tr[S_TRACE];
    uint64_t ntr;
    uint64_t digest;
};

/* ---- helpers --------------------------------------------------------------- */

uint64_t
hf_sim_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t
s_rand(uint64_t *x)
{
    /* xorshift64*: state never 0 (seeded through splitmix) */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

static uint32_t
s_below(hf_sim_t *self, uint32_t n)
{
    return n ? (uint32_t)(s_rand(&self->rng) % n) : 0;
}

static void
s_trace(hf_sim_t *self, s_tcode_t code, uint64_t a, uint64_t b, uint64_t c)
{
    s_tev_t *e = &self->tr[self->ntr % S_TRACE];
    e->t = self->now;
    e->code = (uint16_t)code;
    e->a = a;
    e->b = b;
    e->c = c;
    self->ntr++;
    uint64_t h = self->digest ^ ((uint64_t)code << 48 ^ self->now);
    h = (h ^ a) * 0x100000001B3ull;
    h = (h ^ b) * 0x100000001B3ull;
    h = (h ^ c) * 0x100000001B3ull;
    self->digest = h;
    if (self->cfg.trace) {
        fprintf(stderr, "[%8" PRIu64 "] ", self->now);
        fprintf(stderr, s_tname[code], a, b, c);
        fputc('\n', stderr);
    }
}

static void
s_fail(hf_sim_t *self, const char *fmt, uint64_t a, uint64_t b, uint64_t c)
{
    if (self->failed)
        return;
    self->failed = true;
    snprintf(self->why, sizeof self->why, "t=%" PRIu64 "ms: ", self->now);
    size_t n = strlen(self->why);
    snprintf(self->why + n, sizeof self->why - n, fmt, a, b, c);
    s_trace(self, T_FAIL, a, b, c);
}

static s_epoch_t *
s_epoch(hf_sim_t *self, uint64_t epoch)
{
    for (int i = 0; i < self->nepochs; i++)
        if (self->epochs[i].epoch == epoch)
            return &self->epochs[i];
    return NULL;
}

static int
s_new_epoch(hf_sim_t *self)
{
    if (self->nepochs == S_MAX_EPOCHS)
        return -1;
    s_epoch_t *e = &self->epochs[self->nepochs];
    memset(e, 0, sizeof *e);
    do {
        e->epoch = s_rand(&self->rng);
    } while (e->epoch == 0 || s_epoch(self, e->epoch));
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        e->ledger[l] = calloc(self->cfg.max_records, sizeof(uint32_t));
        if (!e->ledger[l])
            return -1;
    }
    return self->nepochs++;
}

static s_epoch_t *
s_eng_epoch(hf_sim_t *self)
{
    return &self->epochs[self->eng.ep];
}

/* ---- network --------------------------------------------------------------- */

static void
s_ring_clear(s_ring_t *r)
{
    while (r->count > 0) {
        free(r->f[r->head].buf);
        r->f[r->head].buf = NULL;
        r->head = (r->head + 1) % S_RING;
        r->count--;
    }
    r->head = 0;
    r->last_due = 0;
}

static bool
s_ring_push(hf_sim_t *self, s_ring_t *r, const uint8_t *buf, size_t len)
{
    if (r->count == S_RING)
        return false; /* high-water mark: zmq_send(DONTWAIT) says EAGAIN */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        s_fail(self, "out of memory copying a frame of %" PRIu64 " bytes", len, 0, 0);
        return false;
    }
    memcpy(copy, buf, len);
    hf_ms_t due = self->now + self->cfg.delay_min_ms +
                  s_below(self, self->cfg.delay_max_ms - self->cfg.delay_min_ms + 1);
    if (due < r->last_due)
        due = r->last_due; /* TCP: never overtakes an earlier frame */
    r->last_due = due;
    s_frame_t *f = &r->f[(r->head + r->count) % S_RING];
    f->buf = copy;
    f->len = len;
    f->due = due;
    r->count++;
    return true;
}

/* Borrow the head frame if it may be delivered now. */
static s_frame_t *
s_ring_due(hf_sim_t *self, s_ring_t *r, hf_sim_dir_t dir)
{
    if (r->count == 0 || self->partitioned || self->now < self->stall_until[dir])
        return NULL;
    s_frame_t *f = &r->f[r->head];
    return f->due <= self->now ? f : NULL;
}

static void
s_ring_pop(s_ring_t *r)
{
    free(r->f[r->head].buf);
    r->f[r->head].buf = NULL;
    r->head = (r->head + 1) % S_RING;
    r->count--;
}

static void
s_conn_release_if_done(s_conn_t *c)
{
    if (c->state == C_DEAD && !c->engine_has && c->q[0].count == 0 && c->q[1].count == 0) {
        memset(c, 0, sizeof *c);
        c->state = C_FREE;
    }
}

/* Everything in flight on c is lost; the engine's monitor will say
 * DISCONNECTED within notice_max_ms. The router has no disconnect event. */
static void
s_conn_cut(hf_sim_t *self, s_conn_t *c, bool allow_auto, bool keep_a2e)
{
    if (c->state == C_FREE || c->state == C_DEAD)
        return;
    if (!keep_a2e || !c->engine_has)
        s_ring_clear(&c->q[HF_SIM_A2E]);
    s_ring_clear(&c->q[HF_SIM_E2A]);
    c->agg_attached = false;
    c->hs_event = false;
    c->hs_at = HF_MS_NEVER;
    bool autorc = false;
    if (c->engine_has) {
        if (c->notice_at == HF_MS_NEVER)
            c->notice_at = self->now + 1 + s_below(self, self->cfg.notice_max_ms);
        autorc = allow_auto && s_below(self, 100) < self->p_auto_reconnect;
    }
    if (autorc) {
        c->state = C_CONNECTING; /* zmq reconnects the same DEALER by itself */
        c->silent = true;
    } else {
        c->state = C_DEAD;
    }
    self->st.cuts++;
    s_trace(self, T_CUT, c->id, c->notice_at, autorc);
    s_conn_release_if_done(c);
}

static s_conn_t *
s_agg_current(hf_sim_t *self)
{
    for (int i = 0; i < S_MAX_CONNS; i++)
        if (self->conns[i].state != C_FREE && self->conns[i].agg_attached)
            return &self->conns[i];
    return NULL;
}

static void s_agg_frame(hf_sim_t *self, s_conn_t *c, const uint8_t *buf, size_t len);

/* libzmq race (router.cpp identify_peer + socket_base_t::send, which
 * processes pending commands first): the router read frames from the old
 * pipe under the engine's real id, and while it sends the replies the new
 * pipe is attached and takes over the id, so the replies (ACK, WELCOME
 * resync, PONG) reach the engine's NEW connection ahead of its WELCOME. */
static void
s_reply_race(hf_sim_t *self, s_conn_t *old, s_conn_t *c)
{
    s_ring_t *r = &old->q[HF_SIM_E2A];
    while (r->count > 0 && self->agg.up && !self->failed) {
        s_frame_t *f = &r->f[r->head];
        uint8_t *buf = f->buf;
        size_t len = f->len;
        f->buf = NULL;
        s_ring_pop(r);
        self->st.races++;
        s_agg_frame(self, c, buf, len); /* replies route to c: it holds the id */
        free(buf);
    }
}

static void
s_net_handshakes(hf_sim_t *self)
{
    bool reachable = self->agg.up && !self->partitioned;
    for (int i = 0; i < S_MAX_CONNS; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->state != C_CONNECTING || !c->engine_has)
            continue;
        if (!reachable) {
            c->hs_at = HF_MS_NEVER;
            continue;
        }
        if (c->hs_at == HF_MS_NEVER)
            c->hs_at =
                self->now + self->cfg.connect_ms / 2 + s_below(self, self->cfg.connect_ms + 1);
        if (self->now < c->hs_at)
            continue;
        /* ROUTER_HANDOVER: the newest pipe takes the engine's routing id;
         * the old pipe is renamed to "\0" + uint32, which the router's
         * hf_engine_id_valid check refuses, so what it still delivers is
         * dropped. */
        c->state = C_UP;
        c->agg_attached = true;
        for (int j = 0; j < S_MAX_CONNS; j++) {
            s_conn_t *o = &self->conns[j];
            if (o == c || o->state == C_FREE || !o->agg_attached)
                continue;
            o->agg_attached = false;
            s_trace(self, T_HANDOVER, o->id, o->q[HF_SIM_E2A].count, c->id);
            if (self->reply_race)
                s_reply_race(self, o, c);
            s_ring_clear(&o->q[HF_SIM_E2A]);
            if (o->state == C_CLOSING)
                o->state = C_DEAD;
            s_conn_release_if_done(o);
        }
        c->hs_event = !c->silent;
        s_trace(self, T_HANDSHAKE, c->id, c->silent, 0);
    }
}

/* ---- engine (mirrors hf_dispatcher.c's worker) ------------------------------- */

static void s_eng_crash(hf_sim_t *self, bool wipe, uint32_t down_ms);

/* The window the link keeps: forgotten on WELCOME and disconnect. */
static void
s_win_clear(s_engine_t *e)
{
    e->nwin[0] = e->nwin[1] = 0;
}

static void
s_win_acked(s_engine_t *e, uint8_t lane, uint64_t seq)
{
    uint32_t k = 0;
    while (k < e->nwin[lane] && e->win[lane][k] <= seq)
        k++;
    memmove(e->win[lane], e->win[lane] + k, (e->nwin[lane] - k) * sizeof(uint64_t));
    e->nwin[lane] -= k;
}

static void
s_eng_drop_socket(hf_sim_t *self, const char *reason)
{
    (void)reason;
    s_engine_t *e = &self->eng;
    uint64_t id = 0, graceful = 0;
    if (e->sock) {
        s_conn_t *c = e->sock;
        id = c->id;
        c->engine_has = false;
        c->hs_event = false;
        s_ring_clear(&c->q[HF_SIM_A2E]);
        if (c->state == C_UP && s_below(self, 2) == 0) {
            /* FIN after the kernel sent what it had: the router may still
             * read those frames, until a newer pipe takes over the id. */
            c->state = C_CLOSING;
            graceful = 1;
        } else {
            s_ring_clear(&c->q[HF_SIM_E2A]);
            c->state = C_DEAD;
        }
        s_conn_release_if_done(c);
        e->sock = NULL;
    }
    hf_link_disconnected(e->link, self->now);
    s_win_clear(e);
    uint32_t jitter = (uint32_t)(s_rand(&e->jitter_rng) % (e->backoff_ms / 2 + 1));
    e->reconnect_at = self->now + e->backoff_ms / 2 + jitter;
    e->backoff_ms *= 2;
    if (e->backoff_ms > self->cfg.reconnect_max_ms)
        e->backoff_ms = self->cfg.reconnect_max_ms;
    self->st.reconnects++;
    s_trace(self, T_DROP_SOCK, id, e->reconnect_at, graceful);
}

static void
s_eng_make_socket(hf_sim_t *self)
{
    s_conn_t *c = NULL;
    for (int i = 0; i < S_MAX_CONNS && !c; i++)
        if (self->conns[i].state == C_FREE)
            c = &self->conns[i];
    if (!c) {
        s_fail(self, "simulator: no free connection slot", 0, 0, 0);
        return;
    }
    memset(c, 0, sizeof *c);
    c->state = C_CONNECTING;
    c->id = ++self->conn_serial;
    c->engine_has = true;
    c->hs_at = HF_MS_NEVER;
    c->notice_at = HF_MS_NEVER;
    self->eng.sock = c;
    s_trace(self, T_MAKE_SOCK, c->id, self->eng.backoff_ms, 0);
}

/* zmq_send(DONTWAIT) on the DEALER. false = EAGAIN (no connection with
 * IMMEDIATE, or HWM): the dispatcher then drops the socket. A send on a
 * connection that died without the engine knowing succeeds and is lost. */
static bool
s_eng_send(hf_sim_t *self, const uint8_t *buf, size_t len)
{
    s_conn_t *c = self->eng.sock;
    if (c->state == C_DEAD)
        return true;
    if (c->state != C_UP)
        return false;
    return s_ring_push(self, &c->q[HF_SIM_E2A], buf, len);
}

static void
s_eng_commit_due(hf_sim_t *self)
{
    s_engine_t *e = &self->eng;
    uint32_t n = e->nstaging;
    if (n == 0)
        return;
    if (e->first_staged == 0)
        e->first_staged = self->now;
    if (n < self->cfg.commit_max && self->now - e->first_staged < self->cfg.commit_window_ms)
        return;
    s_epoch_t *ep = s_eng_epoch(self);
    for (uint32_t i = 0; i < n; i++) {
        hf_record_t *r = &self->pool[e->staging[i]];
        uint8_t l = r->lane;
        if (ep->nledger[l] >= self->cfg.max_records) {
            s_fail(self, "simulator: ledger full", 0, 0, 0);
            return;
        }
        r->seq = ++ep->nledger[l];
        ep->ledger[l][r->seq - 1] = e->staging[i];
    }
    e->nstaging = 0;
    e->first_staged = 0;
    self->st.committed += n;
    s_trace(self, T_COMMIT, n, ep->nledger[0], ep->nledger[1]);
    for (int l = 0; l < HF_LANE_COUNT; l++)
        hf_link_committed(e->link, (uint8_t)l, ep->nledger[l]);
}

static void
s_eng_send_batch(hf_sim_t *self, const hf_link_action_t *a)
{
    s_engine_t *e = &self->eng;
    s_epoch_t *ep = s_eng_epoch(self);
    uint8_t lane = a->lane;
    /* hf_spool_read from a->seq: only (acked, last_seq] is held. */
    uint64_t start = a->seq > e->acked[lane] ? a->seq : e->acked[lane] + 1;
    if (start > ep->nledger[lane] || a->max == 0) {
        hf_link_batch_sent(e->link, lane, 0, self->now);
        return;
    }
    if (start != a->seq) {
        self->st.spool_gaps++;
        s_fail(self, "engine asked to send lane=%" PRIu64 " from seq=%" PRIu64
                     " but its spool trimmed up to %" PRIu64,
               lane, a->seq, e->acked[lane]);
        hf_link_batch_sent(e->link, lane, 0, self->now);
        s_eng_drop_socket(self, "spool cannot serve the aggregator's cursor");
        return;
    }
    hf_batch_writer_t w;
    hf_batch_begin(&w, lane, e->batch_buf, S_BATCH_BUF);
    uint64_t last = 0;
    for (uint64_t s = start; s < start + a->max && s <= ep->nledger[lane]; s++) {
        hf_err_t rc = hf_batch_add(&w, &self->pool[ep->ledger[lane][s - 1]]);
        if (rc == HF_EFULL)
            break;
        if (rc != HF_OK) {
            s_fail(self, "hf_batch_add refused seq=%" PRIu64 " err=%" PRIu64, s, rc, 0);
            hf_link_batch_sent(e->link, lane, 0, self->now);
            return;
        }
        last = s;
    }
    size_t len = 0;
    hf_batch_finish(&w, &len);
    if (!s_eng_send(self, e->batch_buf, len)) {
        hf_link_batch_sent(e->link, lane, 0, self->now);
        s_eng_drop_socket(self, "send failed (peer gone or not keeping up)");
        return;
    }
    hf_link_batch_sent(e->link, lane, last, self->now);
    self->st.batches++;
    s_trace(self, T_E_BATCH, lane, start, last);
    if (e->nwin[lane] >= self->cfg.window) {
        s_fail(self, "lane=%" PRIu64 ": a batch sent with %" PRIu64
                     " unacked batches in flight (window %" PRIu64 ")",
               lane, e->nwin[lane], self->cfg.window);
        return;
    }
    e->win[lane][e->nwin[lane]++] = last;
    if (self->hooks[HF_SIM_HOOK_ENGINE_CRASH_AFTER_BATCH]) {
        self->hooks[HF_SIM_HOOK_ENGINE_CRASH_AFTER_BATCH] = false;
        e->crash_pending = true;
    } else if (self->hooks[HF_SIM_HOOK_CUT_ON_FULL_WINDOW] &&
               e->nwin[lane] >= self->cfg.window) {
        self->hooks[HF_SIM_HOOK_CUT_ON_FULL_WINDOW] = false;
        s_conn_cut(self, e->sock, false, false);
    }
}

static void
s_eng_trim(hf_sim_t *self, uint8_t lane, uint64_t upto)
{
    s_engine_t *e = &self->eng;
    s_epoch_t *ep = s_eng_epoch(self);
    s_trace(self, T_TRIM, lane, upto, ep->stored[lane]);
    /* The invariant this whole protocol exists for. */
    if (ep->stored[lane] < upto)
        s_fail(self, "TRIM before commit: engine may delete lane=%" PRIu64 " up to seq=%" PRIu64
                     " but the store holds only up to %" PRIu64,
               lane, upto, ep->stored[lane]);
    if (upto > ep->nledger[lane]) {
        s_fail(self, "TRIM lane=%" PRIu64 " upto=%" PRIu64 " above last_seq=%" PRIu64
                     " (hf_spool_trim: HF_EINVAL)",
               lane, upto, ep->nledger[lane]);
        return;
    }
    if (upto > e->acked[lane])
        e->acked[lane] = upto;
    self->st.trims++;
}

static void
s_eng_run_actions(hf_sim_t *self)
{
    s_engine_t *e = &self->eng;
    hf_link_action_t a;
    while (e->up && hf_link_next_action(e->link, &a)) {
        switch (a.type) {
        case HF_LINK_ACT_SEND: {
            if (!e->sock)
                break;
            uint8_t type = a.len > 2 ? a.frame[2] : 0;
            if (!s_eng_send(self, a.frame, a.len)) {
                s_eng_drop_socket(self, "send failed");
                break;
            }
            if (type == HF_FRAME_HELLO) {
                self->st.hellos++;
                s_epoch_t *ep = s_eng_epoch(self);
                s_trace(self, T_E_HELLO, e->sock->id, ep->nledger[0], ep->nledger[1]);
                if (self->hooks[HF_SIM_HOOK_CUT_ON_HELLO]) {
                    self->hooks[HF_SIM_HOOK_CUT_ON_HELLO] = false;
                    s_conn_cut(self, e->sock, false, false);
                }
            } else {
                s_trace(self, type == HF_FRAME_PING ? T_E_PING : T_E_PONG, e->sock->id, 0, 0);
            }
            break;
        }
        case HF_LINK_ACT_SEND_BATCH:
            if (!e->sock) {
                hf_link_batch_sent(e->link, a.lane, 0, self->now);
                break;
            }
            s_eng_send_batch(self, &a);
            break;
        case HF_LINK_ACT_TRIM: s_eng_trim(self, a.lane, a.seq); break;
        case HF_LINK_ACT_RECONNECT: s_eng_drop_socket(self, a.reason); break;
        case HF_LINK_ACT_STREAMING: e->backoff_ms = 100; break;
        }
        if (e->crash_pending) {
            e->crash_pending = false;
            s_eng_crash(self, false, 1 + s_below(self, 200));
            return;
        }
    }
    if (e->up && hf_link_state(e->link) == HF_LINK_FAILED) {
        self->st.link_failed++;
        s_trace(self, T_LINK_FAILED, e->sock ? e->sock->id : 0, 0, 0);
        hf_link_reset(e->link);
        s_eng_drop_socket(self, "protocol failure");
    }
}

static bool
s_eng_start(hf_sim_t *self)
{
    s_engine_t *e = &self->eng;
    s_epoch_t *ep = s_eng_epoch(self);
    hf_link_opts_t lo = {
        .engine_id = S_ENGINE,
        .epoch = ep->epoch,
        .window = self->cfg.window,
        .batch_max = self->cfg.batch_max,
        .heartbeat_ms = self->cfg.heartbeat_ms,
        .peer_timeout_ms = self->cfg.peer_timeout_ms,
    };
    hf_err_t rc;
    e->link = hf_link_new(&lo, &rc);
    if (!e->link)
        return false;
    for (int l = 0; l < HF_LANE_COUNT; l++)
        hf_link_committed(e->link, (uint8_t)l, ep->nledger[l]);
    e->up = true;
    e->sock = NULL;
    e->nstaging = 0;
    e->first_staged = 0;
    e->backoff_ms = 100;
    e->reconnect_at = 0;
    s_win_clear(e);
    return true;
}

static void
s_eng_crash(hf_sim_t *self, bool wipe, uint32_t down_ms)
{
    s_engine_t *e = &self->eng;
    if (!e->up)
        return;
    uint32_t lost = e->nstaging;
    self->st.lost_staged += lost;
    e->nstaging = 0;
    if (e->sock) {
        /* The process died: the kernel closes its TCP connection. */
        s_conn_t *c = e->sock;
        c->engine_has = false;
        c->hs_event = false;
        s_ring_clear(&c->q[HF_SIM_A2E]);
        if (c->state == C_UP && s_below(self, 2) == 0) {
            c->state = C_CLOSING;
        } else {
            s_ring_clear(&c->q[HF_SIM_E2A]);
            c->state = C_DEAD;
        }
        s_conn_release_if_done(c);
        e->sock = NULL;
    }
    hf_link_destroy(&e->link);
    e->up = false;
    e->restart_at = self->now + down_ms;
    self->st.engine_crashes++;
    if (wipe) {
        int ix = s_new_epoch(self);
        if (ix < 0) {
            s_fail(self, "simulator: too many epochs", 0, 0, 0);
        } else {
            e->ep = ix;
            e->acked[0] = e->acked[1] = 0;
            self->st.wipes++;
        }
    }
    s_trace(self, T_E_CRASH, wipe, lost, e->restart_at);
}

static void
s_eng_step(hf_sim_t *self)
{
    s_engine_t *e = &self->eng;
    if (!e->up) {
        if (self->now < e->restart_at)
            return;
        if (!s_eng_start(self)) {
            s_fail(self, "hf_link_new failed on restart", 0, 0, 0);
            return;
        }
        s_trace(self, T_E_RESTART, (uint64_t)e->ep, s_eng_epoch(self)->nledger[0],
                s_eng_epoch(self)->nledger[1]);
    }
    s_eng_commit_due(self);
    if (!e->sock && self->now >= e->reconnect_at)
        s_eng_make_socket(self);
    hf_link_on_timer(e->link, self->now);
    s_eng_run_actions(self);
    if (!e->up)
        return;
    /* monitor first, as s_worker does */
    if (e->sock && e->sock->notice_at <= self->now) {
        s_eng_drop_socket(self, "connection closed");
    } else if (e->sock && e->sock->hs_event) {
        e->sock->hs_event = false;
        s_epoch_t *ep = s_eng_epoch(self);
        uint64_t last[HF_LANE_COUNT] = {ep->nledger[0], ep->nledger[1]};
        hf_link_connected(e->link, self->now, last, 0, 0);
    }
    for (int i = 0; i < 256 && e->up && e->sock; i++) {
        s_conn_t *c = e->sock;
        s_frame_t *f = s_ring_due(self, &c->q[HF_SIM_A2E], HF_SIM_A2E);
        if (!f)
            break;
        uint8_t type = f->len > 2 ? f->buf[2] : 0;
        hf_err_t rc = hf_link_on_frame(e->link, f->buf, f->len, self->now);
        s_trace(self, T_E_RECV, type, c->id, (uint64_t)rc);
        if (rc == HF_OK && (type == HF_FRAME_ACK || type == HF_FRAME_WELCOME)) {
            hf_frame_t fr;
            if (hf_frame_decode(f->buf, f->len, &fr, NULL, 0) == HF_OK) {
                if (type == HF_FRAME_WELCOME)
                    s_win_clear(e);
                else
                    s_win_acked(e, fr.u.ack.lane, fr.u.ack.seq);
            }
        }
        s_ring_pop(&c->q[HF_SIM_A2E]);
        s_eng_run_actions(self);
    }
}

/* ---- aggregator (mirrors hf_router.c) --------------------------------------- */

static void
s_agg_reply(hf_sim_t *self, const uint8_t *buf, size_t len)
{
    /* zmq_send to the engine's routing id: whichever pipe holds it now. */
    s_conn_t *c = s_agg_current(self);
    if (!c || c->state != C_UP || !c->engine_has)
        return; /* EHOSTUNREACH or a closed peer: dropped, as the router does */
    s_ring_push(self, &c->q[HF_SIM_A2E], buf, len);
}

static void
s_agg_welcome(hf_sim_t *self, const hf_welcome_t *w)
{
    uint8_t buf[128];
    size_t len = 0;
    if (hf_frame_encode_welcome(w, buf, sizeof buf, &len) == HF_OK)
        s_agg_reply(self, buf, len);
}

static bool
s_rec_equal(const hf_record_t *a, const hf_record_t *b)
{
    if (a->seq != b->seq || a->kind != b->kind || a->lane != b->lane || a->ts_ns != b->ts_ns ||
        a->mono_ns != b->mono_ns || a->run != b->run)
        return false;
    switch (a->kind) {
    case HF_KIND_SAMPLE:
        return a->u.sample.channel == b->u.sample.channel &&
               a->u.sample.value == b->u.sample.value;
    case HF_KIND_EVENT:
        return a->u.event.type == b->u.event.type && a->u.event.step == b->u.event.step &&
               strcmp(a->u.event.text, b->u.event.text) == 0;
    default: return false;
    }
}

static void s_agg_crash(hf_sim_t *self, uint32_t down_ms);

/* hf_store_commit's rule, on the in-memory store; then the router's ACK. */
static void
s_agg_batch(hf_sim_t *self, uint8_t lane, uint32_t n)
{
    hf_session_t *s = &self->agg.sess;
    const hf_record_t *recs = self->agg.recs;
    bool inject = self->hooks[HF_SIM_HOOK_AGG_COMMIT_FAILS] ||
                  (self->p_commit_fail && s_below(self, self->p_commit_fail) == 0);
    if (inject) {
        /* "commit failed: not acked (engine will resend)" */
        self->hooks[HF_SIM_HOOK_AGG_COMMIT_FAILS] = false;
        self->st.commit_failures++;
        s_trace(self, T_A_COMMIT_FAIL, lane, n ? recs[0].seq : 0, n);
        return;
    }
    s_epoch_t *ep = s_epoch(self, s->epoch);
    if (!ep) {
        s_fail(self, "aggregator session epoch %" PRIx64 " unknown to the engine", s->epoch, 0, 0);
        return;
    }
    uint64_t acked = ep->stored[lane];
    size_t skip = 0;
    while (skip < n && recs[skip].seq <= acked)
        skip++;
    bool gap = false;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].lane != lane || (i > 0 && recs[i].seq <= recs[i - 1].seq)) {
            s_fail(self, "BATCH with a wrong lane or out of order seq=%" PRIu64, recs[i].seq, 0, 0);
            return;
        }
        if (i >= skip && recs[i].seq != acked + 1 + (i - skip))
            gap = true;
    }
    if (gap) {
        hf_welcome_t w;
        hf_session_resync(s, &w);
        self->st.resyncs++;
        s_trace(self, T_A_RESYNC, lane, recs[skip].seq, acked);
        s_agg_welcome(self, &w);
        return;
    }
    size_t fresh = n - skip;
    self->st.dups_skipped += skip;
    bool ack_without_commit = self->bug == HF_SIM_BUG_ACK_BEFORE_COMMIT && !self->bug_done &&
                              fresh > 0;
    if (!ack_without_commit) {
        for (size_t i = skip; i < n; i++) {
            const hf_record_t *r = &recs[i];
            if (r->seq > ep->nledger[lane]) {
                s_fail(self, "store got lane=%" PRIu64 " seq=%" PRIu64
                             " that the engine never committed (last_seq=%" PRIu64 ")",
                       lane, r->seq, ep->nledger[lane]);
                return;
            }
            uint32_t id = ep->ledger[lane][r->seq - 1];
            if (!s_rec_equal(r, &self->pool[id])) {
                s_fail(self, "store got lane=%" PRIu64 " seq=%" PRIu64
                             " whose payload differs from the engine's (id %" PRIu64 ")",
                       lane, r->seq, id);
                return;
            }
            bool drop = self->bug == HF_SIM_BUG_STORE_DROPS_RECORD && !self->bug_done;
            if (drop) {
                self->bug_done = true;
                continue;
            }
            if (++self->pool_stored[id] > 1) {
                s_fail(self,
                       "record id %" PRIu64 " stored twice (lane=%" PRIu64 " seq=%" PRIu64 ")", id,
                       lane, r->seq);
                return;
            }
        }
        ep->stored[lane] = acked + fresh;
        ep->store_has = true;
        self->st.stored += fresh;
    }
    s_trace(self, T_E_DUPS, lane, fresh, skip);
    if (self->hooks[HF_SIM_HOOK_AGG_CRASH_AFTER_COMMIT] && fresh > 0) {
        self->hooks[HF_SIM_HOOK_AGG_CRASH_AFTER_COMMIT] = false;
        self->agg.crash_pending = true;
        return; /* committed, never acked */
    }
    hf_ack_t a;
    hf_session_committed(s, lane, ack_without_commit ? acked + fresh : ep->stored[lane], &a);
    uint8_t buf[64];
    size_t len = 0;
    if (hf_frame_encode_ack(&a, buf, sizeof buf, &len) == HF_OK)
        s_agg_reply(self, buf, len);
    s_conn_t *cur = s_agg_current(self);
    s_trace(self, T_A_ACK, a.lane, a.seq, cur ? cur->id : 0);
    if (ack_without_commit) {
        /* The bug under test: the ACK went out but the commit never
         * became durable (acked before commit, then lost it). */
        self->bug_done = true;
        return;
    }
    if (self->hooks[HF_SIM_HOOK_CUT_ON_ACK] && cur) {
        self->hooks[HF_SIM_HOOK_CUT_ON_ACK] = false;
        s_conn_cut(self, cur, false, false);
    }
}

static void
s_agg_frame(hf_sim_t *self, s_conn_t *c, const uint8_t *buf, size_t len)
{
    s_agg_t *g = &self->agg;
    hf_frame_t f;
    hf_err_t rc = hf_frame_decode(buf, len, &f, g->recs, S_AGG_RECS);
    if (rc != HF_OK) {
        s_fail(self, "aggregator could not decode a frame from the engine (err %" PRIu64 ")", rc,
               0, 0);
        return;
    }
    s_trace(self, T_A_RECV, f.type, c->id, 0);
    if (f.type == HF_FRAME_HELLO) {
        if (!g->have_sess) {
            hf_session_init(&g->sess, f.u.hello.engine);
            g->have_sess = true;
        }
        uint64_t acked[HF_LANE_COUNT] = {0, 0};
        s_epoch_t *ep = s_epoch(self, f.u.hello.epoch);
        if (ep) { /* hf_store_note_hello + hf_store_cursor */
            ep->store_has = true;
            acked[0] = ep->stored[0];
            acked[1] = ep->stored[1];
        }
        hf_welcome_t w;
        if (hf_session_hello(&g->sess, &f.u.hello, acked, self->now, 0, &w) != HF_OK) {
            s_fail(self, "hf_session_hello refused the engine's HELLO", 0, 0, 0);
            return;
        }
        s_agg_welcome(self, &w);
        s_trace(self, T_A_WELCOME, c->id, w.acked[0], w.acked[1]);
        if (self->hooks[HF_SIM_HOOK_CUT_ON_WELCOME]) {
            self->hooks[HF_SIM_HOOK_CUT_ON_WELCOME] = false;
            s_conn_cut(self, c, false, false);
        }
        return;
    }
    if (!g->have_sess || !g->sess.active) {
        /* no HELLO on this connection (we restarted): stay silent */
        self->st.ignored++;
        s_trace(self, T_A_IGNORED, f.type, c->id, 0);
        return;
    }
    hf_session_seen(&g->sess, self->now);
    switch (f.type) {
    case HF_FRAME_BATCH: s_agg_batch(self, f.u.batch.lane, f.u.batch.count); break;
    case HF_FRAME_PING: {
        uint8_t out[64];
        size_t n = 0;
        if (hf_frame_encode_pong(&f.u.ping, out, sizeof out, &n) == HF_OK)
            s_agg_reply(self, out, n);
        s_trace(self, T_A_PONG, c->id, 0, 0);
        break;
    }
    case HF_FRAME_PONG: break;
    case HF_FRAME_STATUS: hf_session_status(&g->sess, &f.u.status, self->now); break;
    default: s_fail(self, "engine sent frame type %" PRIu64 " (not allowed)", f.type, 0, 0); break;
    }
}

static void
s_agg_crash(hf_sim_t *self, uint32_t down_ms)
{
    s_agg_t *g = &self->agg;
    if (!g->up)
        return;
    g->up = false;
    g->have_sess = false;
    g->crash_pending = false;
    g->restart_at = self->now + down_ms;
    self->st.agg_crashes++;
    s_trace(self, T_A_CRASH, g->restart_at, 0, 0);
    for (int i = 0; i < S_MAX_CONNS; i++) {
        s_conn_t *c = &self->conns[i];
        if (c->state == C_CLOSING) {
            s_ring_clear(&c->q[0]);
            s_ring_clear(&c->q[1]);
            c->state = C_DEAD;
            c->agg_attached = false;
            s_conn_release_if_done(c);
        } else {
            /* The process died: its kernel may still send what the router
             * had written (then FIN), or the peer sees a reset. */
            s_conn_cut(self, c, true, s_below(self, 2) == 0);
        }
    }
}

static void
s_agg_step(hf_sim_t *self)
{
    s_agg_t *g = &self->agg;
    if (!g->up) {
        if (self->now < g->restart_at)
            return;
        g->up = true;
        g->have_sess = false;
        s_trace(self, T_A_RESTART, 0, 0, 0);
    }
    /* Older connections first: a draining pipe is read before the new one
     * takes over (after which its frames are refused). */
    for (int i = 0; i < S_MAX_CONNS && g->up; i++) {
        s_conn_t *c = &self->conns[i];
        for (int k = 0; k < 1024 && g->up; k++) {
            if (c->state != C_UP && c->state != C_CLOSING)
                break;
            s_frame_t *f = s_ring_due(self, &c->q[HF_SIM_E2A], HF_SIM_E2A);
            if (!f)
                break;
            /* Decode from a private copy: the handler may cut c. */
            uint8_t *buf = f->buf;
            size_t len = f->len;
            f->buf = NULL;
            s_ring_pop(&c->q[HF_SIM_E2A]);
            s_agg_frame(self, c, buf, len);
            free(buf);
            if (g->crash_pending)
                s_agg_crash(self, 1 + s_below(self, 300));
        }
        s_conn_release_if_done(c);
    }
    if (g->up && g->have_sess)
        hf_session_tick(&g->sess, self->now, 0, self->cfg.watchdog_ms);
}

/* ---- world ------------------------------------------------------------------ */

hf_sim_cfg_t
hf_sim_cfg_default(void)
{
    hf_sim_cfg_t c;
    memset(&c, 0, sizeof c);
    c.window = 4;
    c.batch_max = 8;
    c.heartbeat_ms = 100;
    c.peer_timeout_ms = 300;
    c.commit_max = 16;
    c.commit_window_ms = 5;
    c.staging_max = 64;
    c.reconnect_max_ms = 400;
    c.watchdog_ms = 300;
    c.delay_min_ms = 1;
    c.delay_max_ms = 5;
    c.connect_ms = 4;
    c.notice_max_ms = 50;
    c.max_records = 20000;
    return c;
}

hf_sim_cfg_t
hf_sim_cfg_random(uint64_t seed)
{
    uint64_t st = seed ^ 0xC0FFEE1234ull;
    uint64_t r[16];
    for (int i = 0; i < 16; i++)
        r[i] = hf_sim_splitmix(&st);
    hf_sim_cfg_t c = hf_sim_cfg_default();
    static const uint32_t windows[] = {1, 1, 2, 3, 4, 8, 16};
    static const uint32_t batches[] = {1, 2, 3, 5, 8, 16, 64};
    c.window = windows[r[0] % 7];
    c.batch_max = batches[r[1] % 7];
    c.heartbeat_ms = 20 + (uint32_t)(r[2] % 200);
    c.peer_timeout_ms = c.heartbeat_ms * (2 + (uint32_t)(r[3] % 3)) + (uint32_t)(r[4] % 50);
    c.commit_max = 1 + (uint32_t)(r[5] % 32);
    c.commit_window_ms = (uint32_t)(r[6] % 20);
    c.staging_max = c.commit_max * (1 + (uint32_t)(r[7] % 4));
    c.reconnect_max_ms = 100 + (uint32_t)(r[8] % 900);
    /* The router's watchdog may be shorter than the engine's heartbeat:
     * then the session goes inactive under a live connection and its
     * frames are ignored until the engine's own timeout says HELLO again. */
    c.watchdog_ms = c.heartbeat_ms + (uint32_t)(r[9] % (3 * c.peer_timeout_ms));
    c.delay_min_ms = (uint32_t)(r[10] % 5);
    c.delay_max_ms = c.delay_min_ms + (uint32_t)(r[11] % (r[12] % 4 == 0 ? 60 : 10));
    c.connect_ms = 1 + (uint32_t)(r[13] % 20);
    c.notice_max_ms = 1 + (uint32_t)(r[14] % (2 * c.peer_timeout_ms));
    return c;
}

static bool
s_cfg_valid(const hf_sim_cfg_t *c)
{
    return c->window >= 1 && c->window <= 64 && c->batch_max >= 1 && c->batch_max <= 64 &&
           c->heartbeat_ms > 0 && c->peer_timeout_ms > c->heartbeat_ms && c->commit_max > 0 &&
           c->staging_max >= c->commit_max && c->reconnect_max_ms > 0 && c->watchdog_ms > 0 &&
           c->delay_max_ms >= c->delay_min_ms && c->max_records > 0;
}

hf_sim_t *
hf_sim_new(const hf_sim_cfg_t *cfg, uint64_t seed)
{
    if (!cfg || !s_cfg_valid(cfg))
        return NULL;
    hf_sim_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = *cfg;
    uint64_t st = seed;
    self->rng = hf_sim_splitmix(&st) | 1;
    self->now = S_T0;
    self->pool = calloc(cfg->max_records, sizeof *self->pool);
    self->pool_stored = calloc(cfg->max_records, 1);
    self->eng.staging = calloc(cfg->staging_max, sizeof(uint32_t));
    self->eng.batch_buf = malloc(S_BATCH_BUF);
    self->agg.recs = calloc(S_AGG_RECS, sizeof(hf_record_t));
    self->eng.jitter_rng = hf_sim_splitmix(&st) | 1;
    self->p_auto_reconnect = 30;
    if (!self->pool || !self->pool_stored || !self->eng.staging || !self->eng.batch_buf ||
        !self->agg.recs)
        goto fail;
    self->eng.ep = s_new_epoch(self);
    if (self->eng.ep < 0 || !s_eng_start(self))
        goto fail;
    self->agg.up = true;
    self->producing = true;
    return self;
fail:
    hf_sim_destroy(&self);
    return NULL;
}

void
hf_sim_destroy(hf_sim_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hf_sim_t *self = *self_p;
    for (int i = 0; i < S_MAX_CONNS; i++) {
        s_ring_clear(&self->conns[i].q[0]);
        s_ring_clear(&self->conns[i].q[1]);
    }
    for (int i = 0; i < self->nepochs; i++)
        for (int l = 0; l < HF_LANE_COUNT; l++)
            free(self->epochs[i].ledger[l]);
    hf_link_destroy(&self->eng.link);
    free(self->eng.staging);
    free(self->eng.batch_buf);
    free(self->agg.recs);
    free(self->pool);
    free(self->pool_stored);
    free(self);
    *self_p = NULL;
}

uint32_t
hf_sim_produce(hf_sim_t *self, uint8_t lane, uint32_t n)
{
    s_engine_t *e = &self->eng;
    uint32_t done = 0;
    /* The engine's emit blocks on a full staging buffer (or while the
     * dispatcher is down): the record is not made. */
    while (done < n && e->up && e->nstaging < self->cfg.staging_max &&
           self->npool < self->cfg.max_records) {
        uint32_t id = self->npool++;
        uint64_t u = (uint64_t)id + 1;
        hf_record_t *r = &self->pool[id];
        if (lane == HF_LANE_DATA) {
            hf_record_sample(r, 0, u * 1000, u, (uint32_t)(u % 8), (double)u);
        } else {
            char text[24];
            snprintf(text, sizeof text, "step %" PRIu64, u);
            hf_record_event(r, 0, u * 1000, u, HF_EV_STEP, (uint32_t)u, text);
        }
        e->staging[e->nstaging++] = id;
        self->st.produced++;
        done++;
        s_trace(self, T_PRODUCE, lane, id, e->nstaging);
    }
    return done;
}

void
hf_sim_set_rate(hf_sim_t *self, uint32_t per_s)
{
    self->rate = per_s;
}

static void
s_step(hf_sim_t *self)
{
    self->now++;
    if (self->producing && self->rate) {
        self->rate_acc += self->rate;
        while (self->rate_acc >= 1000) {
            self->rate_acc -= 1000;
            hf_sim_produce(self, s_below(self, 8) == 0 ? HF_LANE_CONTROL : HF_LANE_DATA, 1);
        }
    }
    s_net_handshakes(self);
    if (s_below(self, 2)) {
        s_eng_step(self);
        s_agg_step(self);
    } else {
        s_agg_step(self);
        s_eng_step(self);
    }
}

void
hf_sim_run(hf_sim_t *self, uint32_t ms)
{
    for (uint32_t i = 0; i < ms && !self->failed; i++)
        s_step(self);
}

void
hf_sim_cut(hf_sim_t *self)
{
    if (self->eng.sock)
        s_conn_cut(self, self->eng.sock, true, false);
}

void
hf_sim_partition(hf_sim_t *self, bool on)
{
    if (self->partitioned != on)
        s_trace(self, T_PARTITION, on, 0, 0);
    self->partitioned = on;
}

void
hf_sim_stall(hf_sim_t *self, hf_sim_dir_t dir, uint32_t ms)
{
    self->stall_until[dir] = self->now + ms;
    s_trace(self, T_STALL, dir, self->stall_until[dir], 0);
}

void
hf_sim_engine_crash(hf_sim_t *self, bool wipe_spool, uint32_t down_ms)
{
    s_eng_crash(self, wipe_spool, down_ms);
}

void
hf_sim_agg_crash(hf_sim_t *self, uint32_t down_ms)
{
    s_agg_crash(self, down_ms);
}

void
hf_sim_arm(hf_sim_t *self, hf_sim_hook_t hook)
{
    if (hook > 0 && hook < HF_SIM_HOOK_COUNT)
        self->hooks[hook] = true;
}

void
hf_sim_set_reply_race(hf_sim_t *self, bool on)
{
    self->reply_race = on;
}

void
hf_sim_set_bug(hf_sim_t *self, hf_sim_bug_t bug)
{
    self->bug = bug;
    self->bug_done = false;
}

static bool
s_quiescent(const hf_sim_t *self)
{
    const s_engine_t *e = &self->eng;
    if (!e->up || !self->agg.up || e->nstaging > 0 ||
        hf_link_state(e->link) != HF_LINK_STREAMING)
        return false;
    const s_epoch_t *ep = &self->epochs[e->ep];
    for (int l = 0; l < HF_LANE_COUNT; l++)
        if (e->acked[l] != ep->nledger[l] || ep->stored[l] != ep->nledger[l])
            return false;
    return true;
}

static uint64_t
s_progress(const hf_sim_t *self)
{
    const s_epoch_t *ep = &self->epochs[self->eng.ep];
    return ep->stored[0] + ep->stored[1] + self->eng.acked[0] + self->eng.acked[1] +
           self->st.committed;
}

bool
hf_sim_settle(hf_sim_t *self, uint32_t max_ms)
{
    self->partitioned = false;
    self->stall_until[0] = self->stall_until[1] = 0;
    self->producing = false;
    self->p_commit_fail = 0;
    memset(self->hooks, 0, sizeof self->hooks);
    /* Liveness: fail after max_ms without progress (a slow link with a
     * backlog may take long, but it must keep moving); 30 min at most. */
    uint64_t last = s_progress(self);
    hf_ms_t moved = self->now;
    for (uint32_t i = 0; i < 30u * 60u * 1000u && !self->failed; i++) {
        if (s_quiescent(self))
            return true;
        s_step(self);
        uint64_t p = s_progress(self);
        if (p != last) {
            last = p;
            moved = self->now;
        } else if (self->now - moved >= max_ms) {
            break;
        }
    }
    return s_quiescent(self);
}

bool
hf_sim_failed(const hf_sim_t *self)
{
    return self->failed;
}

bool
hf_sim_check(hf_sim_t *self, char *why, size_t cap)
{
#define S_WHY(...)                                                                                 \
    do {                                                                                           \
        if (why && cap)                                                                            \
            snprintf(why, cap, __VA_ARGS__);                                                       \
        return false;                                                                              \
    } while (0)
    if (self->failed)
        S_WHY("%s", self->why);
    if (self->st.link_failed && !self->reply_race)
        S_WHY("the link went FAILED %" PRIu64 " times (a protocol violation in a healthy model)",
              self->st.link_failed);
    const s_epoch_t *cur = &self->epochs[self->eng.ep];
    for (int i = 0; i < self->nepochs; i++) {
        const s_epoch_t *ep = &self->epochs[i];
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            if (ep->stored[l] > ep->nledger[l])
                S_WHY("epoch#%d lane=%d: store cursor %" PRIu64 " above last_seq %" PRIu64, i, l,
                      ep->stored[l], ep->nledger[l]);
            if (ep == cur && ep->stored[l] != ep->nledger[l])
                S_WHY("epoch#%d lane=%d: engine committed 1..%" PRIu64 " but the store holds "
                      "1..%" PRIu64,
                      i, l, ep->nledger[l], ep->stored[l]);
            for (uint64_t s = 1; s <= ep->stored[l]; s++)
                if (self->pool_stored[ep->ledger[l][s - 1]] != 1)
                    S_WHY("epoch#%d lane=%d seq=%" PRIu64 ": store cursor covers it but it was "
                          "stored %u times",
                          i, l, s, self->pool_stored[ep->ledger[l][s - 1]]);
        }
    }
    uint64_t total = 0;
    for (uint32_t id = 0; id < self->npool; id++)
        total += self->pool_stored[id];
    if (total != self->st.stored)
        S_WHY("store counted %" PRIu64 " records but %" PRIu64 " pool records are stored",
              self->st.stored, total);
    uint64_t covered = 0;
    for (int i = 0; i < self->nepochs; i++)
        covered += self->epochs[i].stored[0] + self->epochs[i].stored[1];
    if (covered != total)
        S_WHY("store cursors cover %" PRIu64 " records but %" PRIu64 " were stored", covered,
              total);
    if (why && cap)
        why[0] = 0;
    return true;
#undef S_WHY
}

void
hf_sim_stats(const hf_sim_t *self, hf_sim_stats_t *out)
{
    *out = self->st;
    out->now = self->now;
}

uint64_t
hf_sim_digest(const hf_sim_t *self)
{
    return self->digest;
}

void
hf_sim_dump_trace(const hf_sim_t *self)
{
    uint64_t from = self->ntr > S_TRACE ? self->ntr - S_TRACE : 0;
    fprintf(stderr, "--- last %" PRIu64 " of %" PRIu64 " events ---\n", self->ntr - from,
            self->ntr);
    for (uint64_t i = from; i < self->ntr; i++) {
        const s_tev_t *e = &self->tr[i % S_TRACE];
        fprintf(stderr, "[%8" PRIu64 "] ", e->t);
        fprintf(stderr, s_tname[e->code], e->a, e->b, e->c);
        fputc('\n', stderr);
    }
}

int
hf_sim_link_state(const hf_sim_t *self)
{
    return self->eng.up ? (int)hf_link_state(self->eng.link) : -1;
}

uint64_t
hf_sim_engine_acked(const hf_sim_t *self, uint8_t lane)
{
    return self->eng.acked[lane];
}

uint64_t
hf_sim_engine_committed(const hf_sim_t *self, uint8_t lane)
{
    return self->epochs[self->eng.ep].nledger[lane];
}

uint64_t
hf_sim_store_count(const hf_sim_t *self, uint8_t lane)
{
    return self->epochs[self->eng.ep].stored[lane];
}

uint32_t
hf_sim_inflight(const hf_sim_t *self, hf_sim_dir_t dir)
{
    uint32_t n = 0;
    for (int i = 0; i < S_MAX_CONNS; i++)
        n += self->conns[i].q[dir].count;
    return n;
}

hf_ms_t
hf_sim_now(const hf_sim_t *self)
{
    return self->now;
}

uint64_t
hf_sim_epoch(const hf_sim_t *self)
{
    return self->epochs[self->eng.ep].epoch;
}

/* ---- random schedules -------------------------------------------------------- */

bool
hf_sim_schedule(uint64_t seed, bool verbose, char *why, size_t cap, hf_sim_stats_t *st)
{
    hf_sim_cfg_t cfg = hf_sim_cfg_random(seed);
    cfg.trace = verbose && getenv("HF_SIM_TRACE") != NULL;
    hf_sim_t *sim = hf_sim_new(&cfg, seed);
    if (!sim) {
        snprintf(why, cap, "hf_sim_new failed");
        return false;
    }
    uint64_t rs = seed ^ 0x5EED5EED5EEDull;
    uint64_t r = hf_sim_splitmix(&rs) | 1;
    uint32_t fault_ms = 300 + (uint32_t)(s_rand(&r) % 3000);
    /* how hostile this schedule is: per-ms odds of each fault */
    uint32_t p_cut = 200 + (uint32_t)(s_rand(&r) % 2000);
    uint32_t p_stall = 300 + (uint32_t)(s_rand(&r) % 3000);
    uint32_t p_part = 1000 + (uint32_t)(s_rand(&r) % 6000);
    uint32_t p_ecrash = 800 + (uint32_t)(s_rand(&r) % 8000);
    uint32_t p_acrash = 800 + (uint32_t)(s_rand(&r) % 8000);
    uint32_t p_hook = 500 + (uint32_t)(s_rand(&r) % 3000);
    sim->p_commit_fail = s_rand(&r) % 3 == 0 ? 5 + (uint32_t)(s_rand(&r) % 60) : 0;
    sim->p_auto_reconnect = (uint32_t)(s_rand(&r) % 60);
    sim->reply_race = s_rand(&r) % 4 == 0;
    /* Keep the offered load within a few times what the link carries
     * (window * batch_max per round trip), so a backlog builds under
     * faults and drains after the heal in bounded simulated time. */
    uint64_t rtt = 2ull * (cfg.delay_max_ms + 1);
    uint64_t cap_rate = 3000ull * cfg.window * cfg.batch_max / rtt;
    if (cap_rate < 50)
        cap_rate = 50;
    if (cap_rate > 3000)
        cap_rate = 3000;
    hf_ms_t part_end = 0;
    for (uint32_t t = 0; t < fault_ms && !hf_sim_failed(sim); t++) {
        if (t % 250 == 0)
            hf_sim_set_rate(sim, s_rand(&r) % 4 == 0 ? 0 : (uint32_t)(s_rand(&r) % cap_rate));
        if (s_rand(&r) % p_cut == 0)
            hf_sim_cut(sim);
        if (s_rand(&r) % p_stall == 0)
            hf_sim_stall(sim, (hf_sim_dir_t)(s_rand(&r) % 2),
                         (uint32_t)(s_rand(&r) % (3 * cfg.peer_timeout_ms)));
        if (part_end == 0 && s_rand(&r) % p_part == 0) {
            hf_sim_partition(sim, true);
            part_end = sim->now + s_rand(&r) % (4 * cfg.peer_timeout_ms);
        } else if (part_end && sim->now >= part_end) {
            hf_sim_partition(sim, false);
            part_end = 0;
        }
        if (s_rand(&r) % p_ecrash == 0)
            hf_sim_engine_crash(sim, s_rand(&r) % 6 == 0, (uint32_t)(s_rand(&r) % 400));
        if (s_rand(&r) % p_acrash == 0)
            hf_sim_agg_crash(sim, (uint32_t)(s_rand(&r) % 1200));
        if (s_rand(&r) % p_hook == 0)
            hf_sim_arm(sim, (hf_sim_hook_t)(1 + s_rand(&r) % (HF_SIM_HOOK_COUNT - 1)));
        hf_sim_run(sim, 1);
    }
    bool ok = hf_sim_settle(sim, 60000);
    if (!ok && !hf_sim_failed(sim)) {
        const s_epoch_t *ep = &sim->epochs[sim->eng.ep];
        snprintf(why, cap,
                 "healed network, but no progress for 60 s: link=%s committed=%" PRIu64
                 "/%" PRIu64 " stored=%" PRIu64 "/%" PRIu64 " trimmed=%" PRIu64 "/%" PRIu64,
                 sim->eng.up ? hf_link_state_name(hf_link_state(sim->eng.link)) : "(down)",
                 ep->nledger[0], ep->nledger[1], ep->stored[0], ep->stored[1], sim->eng.acked[0],
                 sim->eng.acked[1]);
    } else {
        ok = hf_sim_check(sim, why, cap);
    }
    if (!ok && verbose)
        hf_sim_dump_trace(sim);
    if (st)
        hf_sim_stats(sim, st);
    hf_sim_destroy(&sim);
    return ok;
}
