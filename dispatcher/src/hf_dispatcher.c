/* hf_dispatcher.c - the shell around the spool and the link protocol.
 *
 * One worker thread owns the spool and, per destination (aggregator), a
 * link state machine and a ZeroMQ DEALER. The producer (the engine) only
 * touches the staging buffer, under the mutex: send() copies a record in
 * and returns; the worker swaps the buffer out and commits it to the spool
 * in one LMDB transaction (group commit: when the buffer holds commit_max
 * records, when commit_window_ms has passed since the first record arrived,
 * or on flush). Trims are lazy (s_trim_due); backlog figures go out in
 * STATUS frames (s_update_status); a spool at its bound is handled by the
 * full-spool policy (s_keep_headroom, s_make_room).
 *
 * Invariants:
 * - A record reaches the network only after its spool commit returned.
 * - The spool is trimmed only for seqs EVERY destination acknowledged (a
 *   link emits TRIM for ACK/WELCOME only; both follow the peer's commit).
 * - A connection that dropped is never reused: its socket is closed (with
 *   zero linger) and a fresh one made, so frames queued for a dead
 *   connection can't surface later, and every connection starts with
 *   HELLO/WELCOME, which tells exactly where to resume.
 * - Staging is bounded (staging_max); a full buffer blocks the producer
 *   until the next commit. A group whose commit failed stays in `work` and
 *   is retried first, so order is kept and nothing is dropped silently.
 *
 * Security: with curve_* keys every DEALER is a CURVE client (keys set
 * before connect); a handshake the aggregator refuses (unknown key, wrong
 * role, plain vs CURVE) shows as a monitor event: the socket is dropped
 * and remade with backoff, as for any lost connection, and the refusal is
 * logged as an ERROR (rate-limited), since only an operator can fix it.
 *
 * Wake-ups: the producer signals an eventfd when the staging buffer goes
 * from empty to non-empty and on flush; zmq_poll watches it with the
 * socket, so the worker sleeps exactly until something is due.
 */
#include "hf_dispatcher.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>
#include <czmq.h>
#include <zmq.h>

#include "hf_link.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_spool.h"
#include "hf_time.h"

#define S_LOG "dispatcher"
#define S_SPARE 4 /* staging slots beyond staging_max for the dispatcher's own alarms */
#define S_BATCH_BYTES (4u << 20) /* bytes: one BATCH frame buffer */

/* One aggregator the engine streams to: its own connection, link state
 * machine and cursor. The spool is shared; it is trimmed only up to what
 * every destination acknowledged. */
typedef struct {
    char endpoint[256];
    uint32_t index;          /* position in the list, for logs              */
    hf_link_t *link;
    void *sock;              /* DEALER, NULL while disconnected             */
    void *mon;               /* PAIR receiving the socket's monitor events  */
    unsigned mon_serial;     /* makes each monitor endpoint unique          */
    hf_ms_t reconnect_at;    /* ms: when to make the next socket            */
    uint32_t backoff_ms;     /* current reconnect backoff                   */
    bool streaming;          /* handshake done on the current connection    */
    uint64_t acked[HF_LANE_COUNT]; /* what this destination acknowledged    */
    hf_ms_t refused_logged_at; /* ms: last "refused by the aggregator" ERROR */
} s_dest_t;

/* A command received from an aggregator, waiting for the engine. The
 * queue is small because an aggregator sends one command at a time per
 * engine (docs/commands.md): it holds one per destination with room over. */
#define S_CMDQ_MAX (2 * HF_DISPATCHER_MAX_DEST)
typedef struct {
    hf_command_t cmd;        /* body points at body below                   */
    char *body;              /* owned copy of the method text, or NULL      */
} s_cmd_t;

struct hf_dispatcher_s {
    hf_dispatcher_opts_t opts;
    hf_dispatcher_keys_t keys; /* copies of the curve_* options            */
    bool curve;                /* keys given: CURVE client                 */
    char engine[HF_ENGINE_ID_MAX + 1];
    char endpoints[HF_DISPATCHER_MAX_DEST * 256]; /* the list as given     */
    s_dest_t dest[HF_DISPATCHER_MAX_DEST];
    uint32_t ndest;
    hf_channel_t channel;

    /* ---- shared with the producer, under mu ---- */
    pthread_mutex_t mu;
    pthread_cond_t cond;     /* commits, acks, space in staging             */
    hf_record_t *fill;       /* staging buffer being filled (staging_max)   */
    uint32_t fill_count;     /* records in fill                             */
    uint64_t sent_total;     /* records accepted by send()                  */
    uint64_t committed_total;/* records committed to the spool              */
    uint64_t flush_req;      /* flush requests not yet served              */
    hf_err_t commit_err;     /* last commit failure, HF_OK when healthy     */
    hf_dispatcher_stats_t stats;
    bool stopping;
    volatile sig_atomic_t interrupted; /* hf_dispatcher_interrupt was called */
    s_cmd_t cmdq[S_CMDQ_MAX];/* commands received, oldest at cmd_head       */
    uint32_t cmd_head;
    uint32_t cmd_count;
    char *cmd_taken;         /* body of the command last handed out (owned) */
    uint64_t cmd_dropped;    /* commands lost to a full queue (a bad peer)  */
    uint64_t timing[3];      /* the engine's samples, late, missed          */
    int wake_fd;             /* eventfd: producer -> worker                 */

    /* ---- worker only ---- */
    pthread_t thread;
    bool thread_started;
    hf_record_t *work;       /* the group being committed (commit_max)       */
    uint32_t work_n;         /* records in work; > 0 after a failed commit  */
    bool spool_failed;       /* the spool went unusable: reopen it          */
    hf_ms_t reopen_at;       /* ms: next attempt to reopen the spool        */
    char *spool_dir;         /* owned copy, for reopening                   */
    hf_spool_t *spool;
    void *zctx;
    uint64_t first_staged_ms;/* ms: first record of the pending group seen  */
    uint64_t rng;            /* xorshift state for reconnect jitter         */
    uint64_t run;            /* the engine's current run, from its events   */
    uint8_t run_state;       /* hf_run_state_t                              */
    uint8_t *batch_buf;      /* S_BATCH_BYTES                               */
    hf_ms_t last_sync;       /* ms: last hf_spool_sync (relaxed mode)       */
    hf_ms_t commit_retry_at; /* ms: after a failed commit, retry no earlier  */
    bool alarm_raised;       /* "spool full, samples dropped" is raised      */
    bool level_raised;       /* "spool filling up" is raised                 */
    bool disk_raised;        /* "spool's disk low on space" is raised        */
    hf_ms_t drop_logged_at;  /* ms: last drop summary logged (rate limit)    */
    hf_ms_t status_at;       /* ms: backlog figures last computed            */
    uint64_t trim_to[HF_LANE_COUNT]; /* acked by the peer, to trim up to     */
    hf_ms_t trim_at;         /* ms: last trim                               */
    uint64_t rate_acked;     /* acked records (both lanes) at status_at      */
    double drain_per_s;      /* records/s, smoothed                          */
    bool unsynced;           /* relaxed mode: commits since last sync       */
};

/* ------------------------------------------------------------------ */

const char *
hf_full_policy_name(hf_full_policy_t p)
{
    switch (p) {
    case HF_FULL_DECIMATE: return "decimate";
    case HF_FULL_DROP_OLDEST: return "drop-oldest";
    case HF_FULL_BLOCK: return "block";
    }
    return "?";
}

hf_err_t
hf_full_policy_parse(const char *s, hf_full_policy_t *out)
{
    static const hf_full_policy_t all[] = {HF_FULL_DECIMATE, HF_FULL_DROP_OLDEST, HF_FULL_BLOCK};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(s, hf_full_policy_name(all[i])) == 0) {
            *out = all[i];
            return HF_OK;
        }
    }
    return HF_EINVAL;
}

hf_dispatcher_opts_t
hf_dispatcher_opts_default(void)
{
    hf_dispatcher_opts_t o;
    memset(&o, 0, sizeof o);
    o.spool_max_bytes = (size_t)1 << 30;
    o.durable = true;
    o.commit_window_ms = 2;
    o.commit_max = 8192;
    o.staging_max = 16384;
    o.batch_max = HF_PROTO_MAX_BATCH; /* frames grow with the backlog */
    o.window = 8;
    o.heartbeat_ms = 1000;
    o.peer_timeout_ms = 3000;
    o.reconnect_max_ms = 2000;
    return o;
}

hf_err_t
hf_dispatcher_keys_load(const char *cert, const char *server_cert, hf_dispatcher_keys_t *out)
{
    if (!cert || !server_cert || !out)
        return HF_EINVAL;
    memset(out, 0, sizeof *out);
    static const uint8_t zero[32] = {0};
    zcert_t *mine = zcert_load(cert); /* tries cert_secret first, then cert */
    zcert_t *srv = zcert_load(server_cert);
    hf_err_t rc = HF_OK;
    if (!mine || memcmp(zcert_secret_key(mine), zero, sizeof zero) == 0) {
        hf_log_error(S_LOG, "--cert %s: not a certificate with a secret key "
                            "(holdfast keygen NAME --engine ID writes NAME_secret)", cert);
        rc = HF_EINVAL;
    } else if (!srv) {
        hf_log_error(S_LOG, "--server-key %s: not a certificate", server_cert);
        rc = HF_EINVAL;
    } else {
        snprintf(out->public_key, sizeof out->public_key, "%s", zcert_public_txt(mine));
        snprintf(out->secret_key, sizeof out->secret_key, "%s", zcert_secret_txt(mine));
        snprintf(out->server_key, sizeof out->server_key, "%s", zcert_public_txt(srv));
    }
    zcert_destroy(&mine);
    zcert_destroy(&srv);
    return rc;
}

static hf_err_t s_send(void *impl, const hf_record_t *rec);
static hf_err_t s_flush(void *impl);
static void s_close_noop(void *impl);
static const hf_channel_ops_t s_channel_ops = {s_send, s_flush, s_close_noop};
static void *s_worker(void *arg);

static uint64_t
s_rand(hf_dispatcher_t *self)
{
    uint64_t x = self->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->rng = x;
    return x;
}

static void
s_wake(hf_dispatcher_t *self)
{
    uint64_t one = 1;
    ssize_t n = write(self->wake_fd, &one, sizeof one);
    (void)n; /* EAGAIN means a wake-up is already pending */
}

hf_dispatcher_t *
hf_dispatcher_open(const hf_dispatcher_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_EINVAL;
    hf_dispatcher_t *self = NULL;
    if (!opts || !opts->engine_id || !hf_engine_id_valid(opts->engine_id)) {
        hf_log_error(S_LOG, "invalid engine id (1-%d of [A-Za-z0-9._-])", HF_ENGINE_ID_MAX);
        goto fail;
    }
    if (!opts->endpoint || !*opts->endpoint ||
        strlen(opts->endpoint) >= HF_DISPATCHER_MAX_DEST * 256 ||
        !opts->spool_dir || !*opts->spool_dir) {
        hf_log_error(S_LOG, "endpoint and spool directory are required");
        goto fail;
    }
    if (opts->commit_max == 0 || opts->staging_max < opts->commit_max || opts->batch_max == 0 ||
        opts->batch_max > HF_PROTO_MAX_BATCH || opts->window == 0 || opts->window > 64 ||
        opts->heartbeat_ms == 0 || opts->peer_timeout_ms <= opts->heartbeat_ms ||
        opts->reconnect_max_ms == 0 ||
        (opts->full_policy != HF_FULL_DECIMATE && opts->full_policy != HF_FULL_DROP_OLDEST &&
         opts->full_policy != HF_FULL_BLOCK)) {
        hf_log_error(S_LOG, "invalid dispatcher options");
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->wake_fd = -1;
    self->opts = *opts;
    snprintf(self->engine, sizeof self->engine, "%s", opts->engine_id);
    snprintf(self->endpoints, sizeof self->endpoints, "%s", opts->endpoint);
    self->opts.engine_id = self->engine;
    self->opts.endpoint = self->endpoints;
    {
        /* "EP[,EP...]": one destination each, at most HF_DISPATCHER_MAX_DEST. */
        const char *p = opts->endpoint;
        while (*p) {
            size_t len = strcspn(p, ",");
            if (len == 0 || len >= sizeof self->dest[0].endpoint ||
                self->ndest == HF_DISPATCHER_MAX_DEST) {
                hf_log_error(S_LOG, "invalid endpoint list \"%s\" (at most %d, comma-separated)",
                             opts->endpoint, HF_DISPATCHER_MAX_DEST);
                rc = HF_EINVAL;
                goto fail;
            }
            s_dest_t *d = &self->dest[self->ndest];
            memcpy(d->endpoint, p, len);
            d->endpoint[len] = 0;
            d->index = self->ndest++;
            d->backoff_ms = 100;
            p += len;
            if (*p == ',')
                p++;
        }
    }
    if (opts->curve_server_key || opts->curve_public_key || opts->curve_secret_key) {
        const char *k[3] = {opts->curve_server_key, opts->curve_public_key,
                            opts->curve_secret_key};
        char *dst[3] = {self->keys.server_key, self->keys.public_key, self->keys.secret_key};
        for (int i = 0; i < 3; i++) {
            uint8_t bin[32];
            if (!k[i] || strlen(k[i]) != 40 || !zmq_z85_decode(bin, k[i])) {
                hf_log_error(S_LOG, "CURVE keys: server, public and secret key are all needed, "
                                    "as 40 characters of z85");
                rc = HF_EINVAL;
                goto fail;
            }
            memcpy(dst[i], k[i], 41);
        }
        self->curve = true;
    }
    self->opts.curve_server_key = self->opts.curve_public_key = NULL;
    self->opts.curve_secret_key = NULL; /* the copies in keys are used */
    self->spool_dir = strdup(opts->spool_dir);
    self->opts.spool_dir = self->spool_dir;
    self->channel.ops = &s_channel_ops;
    self->channel.impl = self;

    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &ca);
    pthread_condattr_destroy(&ca);

    /* + S_SPARE: room for the alarms the worker adds to a full group */
    self->fill = calloc((size_t)opts->staging_max + S_SPARE, sizeof(hf_record_t));
    self->work = calloc((size_t)opts->staging_max + S_SPARE, sizeof(hf_record_t));
    self->batch_buf = malloc(S_BATCH_BYTES);
    if (!self->fill || !self->work || !self->batch_buf || !self->spool_dir) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->wake_fd < 0) {
        hf_log_error(S_LOG, "eventfd: %s", strerror(errno));
        rc = HF_EIO;
        goto fail;
    }
    hf_spool_opts_t so = hf_spool_opts_default();
    so.max_bytes = opts->spool_max_bytes;
    if (so.map_bytes > so.max_bytes)
        so.map_bytes = so.max_bytes;
    so.durable = opts->durable;
    self->spool = hf_spool_open(opts->spool_dir, &so, &rc);
    if (!self->spool)
        goto fail;
    {
        /* One group must stay a small part of the spool (about 1%, at ~40
         * bytes a record), or the headroom kept for the full-spool policy
         * could not hold it. The bound is the spool's real one: a disk
         * with less room than --spool-max-bytes lowers it (hf_spool.c). */
        size_t cap = hf_spool_limit_bytes(self->spool) / 100 / 40;
        if (cap < 64)
            cap = 64;
        if (self->opts.staging_max > cap) {
            hf_log_info(S_LOG, "staging_max=%u lowered to %zu for a %zu-byte spool",
                        self->opts.staging_max, cap, hf_spool_limit_bytes(self->spool));
            self->opts.staging_max = (uint32_t)cap;
            if (self->opts.commit_max > cap)
                self->opts.commit_max = (uint32_t)cap;
        }
    }

    hf_link_opts_t lo = {
        .engine_id = self->engine,
        .epoch = hf_spool_epoch(self->spool),
        .window = opts->window,
        .batch_max = opts->batch_max,
        .heartbeat_ms = opts->heartbeat_ms,
        .peer_timeout_ms = opts->peer_timeout_ms,
    };
    for (uint32_t i = 0; i < self->ndest; i++) {
        self->dest[i].link = hf_link_new(&lo, &rc);
        if (!self->dest[i].link)
            goto fail;
    }
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        self->stats.committed[l] = hf_spool_last_seq(self->spool, (hf_lane_t)l);
        self->stats.acked[l] = hf_spool_acked(self->spool, (hf_lane_t)l);
        self->stats.pending[l] = hf_spool_depth(self->spool, (hf_lane_t)l);
        for (uint32_t i = 0; i < self->ndest; i++) {
            hf_link_committed(self->dest[i].link, (uint8_t)l, self->stats.committed[l]);
            self->dest[i].acked[l] = self->stats.acked[l];
        }
    }
    self->stats.destinations = self->ndest;
    self->stats.epoch = hf_spool_epoch(self->spool);

    if (getrandom(&self->rng, sizeof self->rng, 0) != sizeof self->rng || self->rng == 0)
        self->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        hf_log_error(S_LOG, "zmq_ctx_new: %s", zmq_strerror(errno));
        rc = HF_EIO;
        goto fail;
    }
    if (pthread_create(&self->thread, NULL, s_worker, self) != 0) {
        hf_log_error(S_LOG, "cannot start worker thread");
        rc = HF_ENOMEM;
        goto fail;
    }
    self->thread_started = true;
    hf_log_info(S_LOG,
                "open engine=%s epoch=%016" PRIx64 " endpoint=%s committed=%" PRIu64 "/%" PRIu64
                " pending=%" PRIu64 "/%" PRIu64 " durable=%d",
                self->engine, self->stats.epoch, self->endpoints, self->stats.committed[0],
                self->stats.committed[1], self->stats.pending[0], self->stats.pending[1],
                (int)opts->durable);
    if (err)
        *err = HF_OK;
    return self;
fail:
    hf_dispatcher_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

hf_channel_t *
hf_dispatcher_channel(hf_dispatcher_t *self)
{
    assert(self);
    return &self->channel;
}

void
hf_dispatcher_stats(hf_dispatcher_t *self, hf_dispatcher_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->mu);
    *out = self->stats;
    pthread_mutex_unlock(&self->mu);
}

static bool
s_drained(const hf_dispatcher_t *self)
{
    for (int l = 0; l < HF_LANE_COUNT; l++)
        if (self->stats.acked[l] < self->stats.committed[l])
            return false;
    return self->committed_total == self->sent_total;
}

static struct timespec
s_abs_deadline(uint32_t timeout_ms)
{
    uint64_t t = hf_clock_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    return ts;
}

hf_err_t
hf_dispatcher_drain(hf_dispatcher_t *self, uint32_t timeout_ms)
{
    assert(self);
    struct timespec dl = s_abs_deadline(timeout_ms);
    hf_err_t rc = HF_OK;
    pthread_mutex_lock(&self->mu);
    while (!s_drained(self)) {
        if (self->interrupted) {
            rc = HF_ECLOSED;
            break;
        }
        struct timespec slice = s_abs_deadline(100);
        if (slice.tv_sec > dl.tv_sec || (slice.tv_sec == dl.tv_sec && slice.tv_nsec > dl.tv_nsec))
            slice = dl;
        if (pthread_cond_timedwait(&self->cond, &self->mu, &slice) == ETIMEDOUT &&
            hf_clock_mono_ns() >= (uint64_t)dl.tv_sec * 1000000000ull + (uint64_t)dl.tv_nsec) {
            rc = s_drained(self) ? HF_OK : HF_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

void
hf_dispatcher_set_timing(hf_dispatcher_t *self, uint64_t samples, uint64_t late, uint64_t missed)
{
    assert(self);
    pthread_mutex_lock(&self->mu);
    self->timing[0] = samples;
    self->timing[1] = late;
    self->timing[2] = missed;
    pthread_mutex_unlock(&self->mu);
}

void
hf_dispatcher_run(hf_dispatcher_t *self, uint64_t *run, uint8_t *state)
{
    assert(self && run && state);
    pthread_mutex_lock(&self->mu);
    *run = self->run;
    *state = self->run_state;
    pthread_mutex_unlock(&self->mu);
}

hf_err_t
hf_dispatcher_next_command(hf_dispatcher_t *self, uint64_t deadline_mono_ns, hf_command_t *out)
{
    assert(self && out);
    hf_err_t rc = HF_OK;
    pthread_mutex_lock(&self->mu);
    free(self->cmd_taken);
    self->cmd_taken = NULL;
    while (self->cmd_count == 0) {
        uint64_t now = hf_clock_mono_ns();
        if (self->interrupted || self->stopping) {
            rc = HF_ECLOSED;
            break;
        }
        if (now >= deadline_mono_ns) {
            rc = HF_ETIMEDOUT;
            break;
        }
        struct timespec dl = {.tv_sec = (time_t)(deadline_mono_ns / 1000000000ull),
                              .tv_nsec = (long)(deadline_mono_ns % 1000000000ull)};
        struct timespec slice = s_abs_deadline(100); /* see interrupted soon */
        if (slice.tv_sec < dl.tv_sec || (slice.tv_sec == dl.tv_sec && slice.tv_nsec < dl.tv_nsec))
            dl = slice;
        pthread_cond_timedwait(&self->cond, &self->mu, &dl);
    }
    if (rc == HF_OK) {
        s_cmd_t *c = &self->cmdq[self->cmd_head];
        *out = c->cmd;
        self->cmd_taken = c->body; /* freed at the next call or at close */
        c->body = NULL;
        self->cmd_head = (self->cmd_head + 1) % S_CMDQ_MAX;
        self->cmd_count--;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

/* Worker: a COMMAND arrived on a streaming connection. */
static void
s_command_push(hf_dispatcher_t *self, const s_dest_t *d, const hf_command_t *cmd)
{
    char *body = NULL;
    if (cmd->body) {
        body = malloc(cmd->body_len ? cmd->body_len : 1);
        if (!body) {
            hf_log_error(S_LOG, "command id=%" PRIu64 " dropped: out of memory", cmd->id);
            return;
        }
        memcpy(body, cmd->body, cmd->body_len);
    }
    pthread_mutex_lock(&self->mu);
    if (self->cmd_count == S_CMDQ_MAX) {
        self->cmd_dropped++;
        pthread_mutex_unlock(&self->mu);
        free(body);
        hf_log_error(S_LOG, "command id=%" PRIu64 " from %s dropped: %d commands already wait "
                            "(the aggregator sends one at a time)",
                     cmd->id, d->endpoint, S_CMDQ_MAX);
        return;
    }
    s_cmd_t *c = &self->cmdq[(self->cmd_head + self->cmd_count) % S_CMDQ_MAX];
    c->cmd = *cmd;
    c->cmd.body = body;
    c->body = body;
    self->cmd_count++;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    hf_log_info(S_LOG, "command id=%" PRIu64 " verb=%s from %s", cmd->id,
                hf_command_verb_name(cmd->verb), d->endpoint);
}

void
hf_dispatcher_close(hf_dispatcher_t **self_p)
{
    assert(self_p);
    hf_dispatcher_t *self = *self_p;
    if (!self)
        return;
    if (self->thread_started) {
        s_flush(self);
        pthread_mutex_lock(&self->mu);
        self->stopping = true;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->mu);
        s_wake(self);
        pthread_join(self->thread, NULL);
        hf_log_info(S_LOG,
                    "close engine=%s committed=%" PRIu64 "/%" PRIu64 " acked=%" PRIu64
                    "/%" PRIu64 " pending=%" PRIu64 "/%" PRIu64,
                    self->engine, self->stats.committed[0], self->stats.committed[1],
                    self->stats.acked[0], self->stats.acked[1], self->stats.pending[0],
                    self->stats.pending[1]);
    }
    for (uint32_t i = 0; i < self->ndest; i++) {
        if (self->dest[i].sock)
            zmq_close(self->dest[i].sock);
        if (self->dest[i].mon)
            zmq_close(self->dest[i].mon);
        hf_link_destroy(&self->dest[i].link);
    }
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    memset(&self->keys, 0, sizeof self->keys); /* no secret left in freed memory */
    hf_spool_close(&self->spool);
    if (self->wake_fd >= 0)
        close(self->wake_fd);
    while (self->cmd_count) {
        free(self->cmdq[self->cmd_head].body);
        self->cmd_head = (self->cmd_head + 1) % S_CMDQ_MAX;
        self->cmd_count--;
    }
    free(self->cmd_taken);
    free(self->spool_dir);
    free(self->fill);
    free(self->work);
    free(self->batch_buf);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

/* ---- the channel face (producer thread) --------------------------- */

/* Wait on cond for at most 100 ms: blocked producers re-check the
 * interrupt flag, which a signal handler may set without the mutex. */
static void
s_wait_slice(hf_dispatcher_t *self)
{
    struct timespec dl = s_abs_deadline(100);
    pthread_cond_timedwait(&self->cond, &self->mu, &dl);
}

void
hf_dispatcher_interrupt(hf_dispatcher_t *self)
{
    if (!self)
        return;
    self->interrupted = 1;
    uint64_t one = 1;
    ssize_t n = write(self->wake_fd, &one, sizeof one); /* async-signal-safe */
    (void)n;
}

static hf_err_t
s_send(void *impl, const hf_record_t *rec)
{
    hf_dispatcher_t *self = impl;
    if (!rec || rec->kind < HF_KIND_SAMPLE || rec->kind > HF_KIND_MAX)
        return HF_EINVAL;
    pthread_mutex_lock(&self->mu);
    /* >=, not ==: the worker may have put its "backlog drained" alarm in
     * the one slot kept beyond staging_max. */
    while (self->fill_count >= self->opts.staging_max && !self->stopping && !self->interrupted)
        s_wait_slice(self);
    if (self->stopping || (self->interrupted && self->fill_count >= self->opts.staging_max)) {
        pthread_mutex_unlock(&self->mu);
        return HF_ECLOSED;
    }
    hf_record_t *slot = &self->fill[self->fill_count++];
    *slot = *rec;
    slot->seq = 0;
    slot->lane = (uint8_t)hf_record_lane_of(rec->kind);
    self->sent_total++;
    bool wake = self->fill_count == 1 || self->fill_count == self->opts.commit_max;
    pthread_mutex_unlock(&self->mu);
    if (wake)
        s_wake(self);
    return HF_OK;
}

static hf_err_t
s_flush(void *impl)
{
    hf_dispatcher_t *self = impl;
    hf_err_t rc = HF_OK;
    pthread_mutex_lock(&self->mu);
    uint64_t target = self->sent_total;
    if (self->committed_total < target) {
        self->flush_req++;
        pthread_mutex_unlock(&self->mu);
        s_wake(self);
        pthread_mutex_lock(&self->mu);
        /* Interrupted: still give the commit up to 500 ms (a healthy spool
         * commits in milliseconds), so a shutdown keeps its last records
         * and still ends well within 2 s behind a full or failing one. */
        uint64_t give_up = hf_clock_mono_ns() + 500000000ull;
        while (self->committed_total < target && !self->stopping &&
               (!self->interrupted || hf_clock_mono_ns() < give_up))
            s_wait_slice(self);
        if (self->committed_total < target)
            rc = self->commit_err != HF_OK && !self->interrupted ? self->commit_err : HF_ECLOSED;
    }
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static void
s_close_noop(void *impl)
{
    (void)impl; /* the dispatcher is closed by hf_dispatcher_close */
}

/* ---- worker -------------------------------------------------------- */

static void
s_track_run(hf_dispatcher_t *self, const hf_record_t *r)
{
    if (r->kind != HF_KIND_EVENT)
        return;
    uint64_t run = self->run;
    uint8_t st = self->run_state;
    switch (r->u.event.type) {
    case HF_EV_RUN_STARTED:
        run = r->run;
        st = HF_RUN_RUNNING;
        break;
    case HF_EV_PAUSED: st = HF_RUN_PAUSED; break;
    case HF_EV_RESUMED: st = HF_RUN_RUNNING; break;
    case HF_EV_COMPLETED: st = HF_RUN_COMPLETED; break;
    case HF_EV_FAILED: st = HF_RUN_FAILED; break;
    case HF_EV_ABORTED: st = HF_RUN_ABORTED; break;
    case HF_EV_INTERRUPTED: st = HF_RUN_INTERRUPTED; break;
    default: return;
    }
    /* the worker is the only writer; hf_dispatcher_run reads under mu */
    pthread_mutex_lock(&self->mu);
    self->run = run;
    self->run_state = st;
    pthread_mutex_unlock(&self->mu);
}

/* One step of the full-spool policy: drop (the spool writes the gap
 * record in the same transaction), count, and raise the alarm once (added
 * to the group being committed, work[0..*n)). */
static hf_err_t
s_drop_step(hf_dispatcher_t *self, uint32_t *n)
{
    hf_spool_drop_t how =
        self->opts.full_policy == HF_FULL_DROP_OLDEST ? HF_SPOOL_DROP_OLDEST : HF_SPOOL_DROP_DECIMATE;
    hf_record_t gap;
    memset(&gap, 0, sizeof gap);
    gap.ts_ns = hf_clock_wall_ns();
    gap.mono_ns = hf_clock_mono_ns();
    gap.run = self->run;
    uint64_t dropped = 0;
    hf_err_t drc = hf_spool_drop(self->spool, how, &gap, &dropped);
    if (drc != HF_OK)
        return drc;
    pthread_mutex_lock(&self->mu);
    self->stats.dropped += dropped;
    self->stats.gaps++;
    uint64_t total = self->stats.dropped;
    pthread_mutex_unlock(&self->mu);
    hf_ms_t now = hf_clock_mono_ms();
    if (now - self->drop_logged_at >= 5000 || !self->alarm_raised) {
        hf_log_warn(S_LOG, "spool full: policy=%s dropped=%" PRIu64 " (total %" PRIu64
                    ") data=%" PRIu64 "..%" PRIu64 " gap_seq=%" PRIu64,
                    hf_full_policy_name(self->opts.full_policy), dropped, total,
                    gap.u.gap.first, gap.u.gap.last, gap.seq);
        self->drop_logged_at = now;
    }
    if (!self->alarm_raised && *n <= self->opts.staging_max) {
        hf_record_t *a = &self->work[(*n)++];
        memset(a, 0, sizeof *a);
        a->kind = HF_KIND_ALARM;
        a->lane = HF_LANE_CONTROL;
        a->ts_ns = gap.ts_ns;
        a->mono_ns = gap.mono_ns;
        a->run = self->run;
        a->u.alarm.raised = 1;
        a->u.alarm.severity = HF_ALARM_WARNING;
        a->u.alarm.code = HF_ALARM_CODE_SPOOL_FULL;
        snprintf(a->u.alarm.text, sizeof a->u.alarm.text, "spool full: dropping samples (%s)",
                 hf_full_policy_name(self->opts.full_policy));
        self->alarm_raised = true;
        pthread_mutex_lock(&self->mu);
        self->sent_total++; /* so flush() accounting stays exact */
        pthread_mutex_unlock(&self->mu);
    }
    return HF_OK;
}

/* Keep headroom: LMDB needs free pages for its copy-on-write even to
 * delete, so waiting for MDB_MAP_FULL would leave a drop no room to work
 * in. Above 85% of the bound (live pages, free list excluded) the policy
 * drops until 75%. The cheap high-water check avoids reading the free
 * list on every commit. */
static void
s_keep_headroom(hf_dispatcher_t *self, uint32_t *n)
{
    size_t limit = hf_spool_limit_bytes(self->spool);
    if (hf_spool_used_bytes(self->spool) < limit / 100 * 85)
        return;
    size_t live = hf_spool_live_bytes(self->spool);
    hf_log_debug(S_LOG, "headroom check used=%zu live=%zu limit=%zu",
                 hf_spool_used_bytes(self->spool), live, limit);
    for (int i = 0; i < 256 && live > limit / 100 * 75; i++) {
        if (live <= limit / 100 * 85 && i == 0)
            return;
        if (s_drop_step(self, n) != HF_OK)
            return;
        live = hf_spool_live_bytes(self->spool);
    }
}

/* The spool refused the group even so: drop and retry, a bounded number of
 * times. Returns the append's final result. */
static hf_err_t
s_make_room(hf_dispatcher_t *self, uint32_t *n)
{
    hf_err_t rc = HF_EFULL;
    for (int attempt = 0; attempt < 64 && rc == HF_EFULL; attempt++) {
        hf_err_t drc = s_drop_step(self, n);
        if (drc != HF_OK) {
            if (drc != HF_ENOTFOUND)
                hf_log_warn(S_LOG, "full spool: cannot drop more samples err=%s",
                            hf_errname(drc));
            return HF_EFULL; /* nothing left to drop: the group waits */
        }
        rc = hf_spool_append(self->spool, self->work, *n);
    }
    return rc;
}

/* An alarm record of the dispatcher's own, through the staging buffer
 * (its spare slots) like any other record. With mu held. false when no
 * spare slot is free: the caller tries again later. */
static bool
s_alarm_locked(hf_dispatcher_t *self, bool raised, uint8_t severity, uint32_t code,
               const char *text)
{
    if (self->fill_count >= self->opts.staging_max + S_SPARE)
        return false;
    hf_record_t *a = &self->fill[self->fill_count++];
    memset(a, 0, sizeof *a);
    a->kind = HF_KIND_ALARM;
    a->lane = HF_LANE_CONTROL;
    a->ts_ns = hf_clock_wall_ns();
    a->mono_ns = hf_clock_mono_ns();
    a->run = self->run;
    a->u.alarm.raised = raised;
    a->u.alarm.severity = severity;
    a->u.alarm.code = code;
    snprintf(a->u.alarm.text, sizeof a->u.alarm.text, "%s", text);
    self->sent_total++;
    return true;
}

/* Storage watch (docs/operations.md): the spool's fill level against its
 * bound (raised at 50 %, cleared under 40 %: a long outage is filling it)
 * and the free space of its filesystem (raised under 10 %, cleared at
 * 12 %). Each crossing is an alarm record; hysteresis keeps a level at the
 * line from flapping. Worker thread, with the status figures. */
static void
s_level_watch(hf_dispatcher_t *self)
{
    size_t limit = hf_spool_limit_bytes(self->spool);
    size_t live = hf_spool_live_bytes(self->spool);
    unsigned pct = limit ? (unsigned)((uint64_t)live * 100 / limit) : 0;
    struct statvfs vfs;
    int free_pct = -1;
    if (statvfs(self->spool_dir, &vfs) == 0 && vfs.f_blocks)
        free_pct = (int)((uint64_t)vfs.f_bavail * 100 / vfs.f_blocks);
    char text[HF_TEXT_MAX + 1];
    pthread_mutex_lock(&self->mu);
    if (!self->level_raised && pct >= 50) {
        snprintf(text, sizeof text, "spool at %u%% of its bound (%zu MiB): a long outage",
                 pct, limit >> 20);
        if (s_alarm_locked(self, true, HF_ALARM_WARNING, HF_ALARM_CODE_SPOOL_LEVEL, text))
            self->level_raised = true;
    } else if (self->level_raised && pct < 40) {
        snprintf(text, sizeof text, "spool at %u%% of its bound", pct);
        if (s_alarm_locked(self, false, HF_ALARM_INFO, HF_ALARM_CODE_SPOOL_LEVEL, text))
            self->level_raised = false;
    }
    if (free_pct >= 0 && !self->disk_raised && free_pct < 10) {
        snprintf(text, sizeof text, "spool disk %d%% free: the spool may not reach its bound",
                 free_pct);
        if (s_alarm_locked(self, true, HF_ALARM_WARNING, HF_ALARM_CODE_DISK_LOW, text))
            self->disk_raised = true;
    } else if (free_pct >= 12 && self->disk_raised) {
        snprintf(text, sizeof text, "spool disk %d%% free again", free_pct);
        if (s_alarm_locked(self, false, HF_ALARM_INFO, HF_ALARM_CODE_DISK_LOW, text))
            self->disk_raised = false;
    }
    self->stats.spool_level_alarm = self->level_raised;
    self->stats.disk_low_alarm = self->disk_raised;
    pthread_mutex_unlock(&self->mu);
}

/* Once the backlog has drained after drops, clear the alarm: the record
 * goes through the staging buffer like any other. Called with mu held, so
 * that a drain waiting on mu can't see "everything acked" in between. */
static void
s_maybe_clear_alarm_locked(hf_dispatcher_t *self)
{
    if (!self->alarm_raised || !self->spool ||
        self->trim_to[HF_LANE_DATA] < hf_spool_last_seq(self->spool, HF_LANE_DATA) ||
        self->fill_count >= self->opts.staging_max + S_SPARE)
        return;
    hf_record_t *a = &self->fill[self->fill_count++];
    memset(a, 0, sizeof *a);
    a->kind = HF_KIND_ALARM;
    a->lane = HF_LANE_CONTROL;
    a->ts_ns = hf_clock_wall_ns();
    a->mono_ns = hf_clock_mono_ns();
    a->run = self->run;
    a->u.alarm.raised = 0;
    a->u.alarm.severity = HF_ALARM_INFO;
    a->u.alarm.code = HF_ALARM_CODE_SPOOL_FULL;
    snprintf(a->u.alarm.text, sizeof a->u.alarm.text, "spool backlog drained");
    self->sent_total++;
    self->alarm_raised = false;
}

/* Commit the staging buffer if a group is due. Returns true if it did. */
static bool
s_commit_due(hf_dispatcher_t *self, hf_ms_t now, bool force)
{
    pthread_mutex_lock(&self->mu);
    uint32_t n = self->work_n;
    if (n > 0) {
        /* A group whose commit failed waits in `work`, ahead of what
         * arrived since (in `fill`, where the producer blocks once it is
         * full): order is kept, nothing is dropped. */
        if (!force && now < self->commit_retry_at) {
            pthread_mutex_unlock(&self->mu);
            return false; /* don't spin on a full or failing disk */
        }
    } else {
        n = self->fill_count;
        if (n == 0) {
            pthread_mutex_unlock(&self->mu);
            return false;
        }
        if (self->first_staged_ms == 0)
            self->first_staged_ms = now;
        bool due = force || self->stopping || self->flush_req > 0 ||
                   n >= self->opts.commit_max ||
                   now - self->first_staged_ms >= self->opts.commit_window_ms;
        if (!due) {
            pthread_mutex_unlock(&self->mu);
            return false;
        }
        /* The whole staging buffer becomes the group (swap, no copy):
         * under load groups grow up to staging_max, which is what makes
         * the spool faster, not slower, when it falls behind. */
        hf_record_t *t = self->fill;
        self->fill = self->work;
        self->work = t;
        self->fill_count = 0;
        self->work_n = n;
        self->flush_req = 0;
        pthread_cond_broadcast(&self->cond); /* room in staging */
    }
    pthread_mutex_unlock(&self->mu);

    if (!self->spool) {
        pthread_mutex_lock(&self->mu);
        self->commit_retry_at = now + 1000;
        pthread_mutex_unlock(&self->mu);
        return false; /* being reopened after a failure */
    }
    if (self->opts.full_policy != HF_FULL_BLOCK)
        s_keep_headroom(self, &n);
    hf_err_t rc = hf_spool_append(self->spool, self->work, n);
    if (rc == HF_EFULL && self->opts.full_policy != HF_FULL_BLOCK)
        rc = s_make_room(self, &n);
    pthread_mutex_lock(&self->mu);
    self->work_n = n; /* s_drop_step may have added the alarm */
    if (rc != HF_OK) {
        if (self->commit_err != rc)
            hf_log_error(S_LOG, "spool commit failed err=%s records=%u: will retry",
                         hf_errname(rc), n);
        self->commit_err = rc;
        self->commit_retry_at = now + (rc == HF_EFULL ? 50 : 1000);
        pthread_mutex_unlock(&self->mu);
        if (rc == HF_ESTATE)
            self->spool_failed = true; /* the worker reopens it */
        return false;
    }
    self->work_n = 0;
    if (self->commit_err != HF_OK)
        hf_log_info(S_LOG, "spool commit recovered");
    self->commit_err = HF_OK;
    self->committed_total += n;
    self->first_staged_ms = self->fill_count > 0 ? now : 0;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        self->stats.committed[l] = hf_spool_last_seq(self->spool, (hf_lane_t)l);
        self->stats.pending[l] = hf_spool_depth(self->spool, (hf_lane_t)l);
    }
    self->stats.spool_bytes = hf_spool_used_bytes(self->spool);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
    self->unsynced = !self->opts.durable;
    for (uint32_t i = 0; i < n; i++)
        s_track_run(self, &self->work[i]);
    for (uint32_t i = 0; i < self->ndest; i++)
        for (int l = 0; l < HF_LANE_COUNT; l++)
            hf_link_committed(self->dest[i].link, (uint8_t)l,
                              hf_spool_last_seq(self->spool, (hf_lane_t)l));
    return true;
}

static void
s_drop_socket(hf_dispatcher_t *self, s_dest_t *d, hf_ms_t now, const char *reason)
{
    if (d->sock) {
        zmq_close(d->sock);
        d->sock = NULL;
    }
    if (d->mon) {
        zmq_close(d->mon);
        d->mon = NULL;
    }
    hf_link_disconnected(d->link, now);
    uint32_t jitter = (uint32_t)(s_rand(self) % (d->backoff_ms / 2 + 1));
    d->reconnect_at = now + d->backoff_ms / 2 + jitter;
    d->backoff_ms *= 2;
    if (d->backoff_ms > self->opts.reconnect_max_ms)
        d->backoff_ms = self->opts.reconnect_max_ms;
    bool was = d->streaming;
    d->streaming = false;
    pthread_mutex_lock(&self->mu);
    if (was && self->stats.connected_count > 0)
        self->stats.connected_count--;
    self->stats.connected = self->stats.connected_count > 0;
    pthread_mutex_unlock(&self->mu);
    if (was || reason)
        hf_log_warn(S_LOG, "link down engine=%s endpoint=%s reason=\"%s\" retry_in_ms=%" PRIu64,
                    self->engine, d->endpoint, reason ? reason : "disconnected",
                    d->reconnect_at - now);
}

static void
s_make_socket(hf_dispatcher_t *self, s_dest_t *d)
{
    int one = 1, zero = 0, hwm = 1000;
    int rivl = 100, rmax = (int)self->opts.reconnect_max_ms;
    int64_t maxmsg = HF_PROTO_MAX_FRAME;
    char mon_ep[96];
    d->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    if (!d->sock)
        goto fail;
    /* IMMEDIATE: never queue for a connection that is not complete;
     * LINGER 0: the spool, not the socket, is the source of truth. */
    zmq_setsockopt(d->sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(d->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(d->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(d->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(d->sock, ZMQ_RECONNECT_IVL, &rivl, sizeof rivl);
    zmq_setsockopt(d->sock, ZMQ_RECONNECT_IVL_MAX, &rmax, sizeof rmax);
    zmq_setsockopt(d->sock, ZMQ_ROUTING_ID, self->engine, strlen(self->engine));
    if (self->curve &&
        (zmq_setsockopt(d->sock, ZMQ_CURVE_SERVERKEY, self->keys.server_key, 41) != 0 ||
         zmq_setsockopt(d->sock, ZMQ_CURVE_PUBLICKEY, self->keys.public_key, 41) != 0 ||
         zmq_setsockopt(d->sock, ZMQ_CURVE_SECRETKEY, self->keys.secret_key, 41) != 0))
        goto fail;
    snprintf(mon_ep, sizeof mon_ep, "inproc://hf-dispatcher-mon-%p-%u-%u", (void *)self,
             d->index, ++d->mon_serial);
    /* HANDSHAKE_SUCCEEDED, not CONNECTED: with IMMEDIATE the pipe exists
     * only once the ZMTP handshake is done, so HELLO sent at CONNECTED
     * could be refused with EAGAIN. */
    if (zmq_socket_monitor(d->sock, mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
        goto fail;
    d->mon = zmq_socket(self->zctx, ZMQ_PAIR);
    if (!d->mon || zmq_connect(d->mon, mon_ep) != 0)
        goto fail;
    zmq_setsockopt(d->mon, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(d->sock, d->endpoint) != 0)
        goto fail;
    return;
fail:
    hf_log_error(S_LOG, "socket setup for %s failed: %s", d->endpoint, zmq_strerror(errno));
    if (d->sock)
        zmq_close(d->sock);
    if (d->mon)
        zmq_close(d->mon);
    d->sock = d->mon = NULL;
    d->reconnect_at = hf_clock_mono_ms() + self->opts.reconnect_max_ms;
}

typedef struct {
    uint8_t lane;
    hf_batch_writer_t *w;
    uint64_t expect;  /* next seq expected                            */
    uint64_t last;    /* last seq added                               */
    bool gap;
} s_fill_t;

static hf_err_t
s_fill_cb(void *arg, uint64_t seq, const uint8_t *rec, size_t len)
{
    s_fill_t *f = arg;
    /* Only the full-spool policy deletes unacked records, and only in the
     * data lane, always with a gap record: holes there are announced. */
    if (seq != f->expect && !(f->lane == HF_LANE_DATA && seq > f->expect)) {
        f->gap = true;
        return HF_ECORRUPT;
    }
    hf_err_t rc = hf_batch_add_encoded(f->w, seq, rec, len);
    if (rc != HF_OK)
        return rc;
    f->last = seq;
    f->expect = seq + 1;
    return HF_OK;
}

static void
s_send_batch(hf_dispatcher_t *self, s_dest_t *d, const hf_link_action_t *a, hf_ms_t now)
{
    hf_batch_writer_t w;
    hf_batch_begin(&w, a->lane, self->batch_buf, S_BATCH_BYTES);
    s_fill_t f = {.lane = a->lane, .w = &w, .expect = a->seq, .last = 0, .gap = false};
    size_t n = 0;
    hf_err_t rc = hf_spool_read(self->spool, (hf_lane_t)a->lane, a->seq, a->max,
                                S_BATCH_BYTES - 64, s_fill_cb, &f, &n);
    if (f.gap) {
        /* The peer asked for records this spool no longer holds. */
        hf_log_error(S_LOG, "spool lacks lane=%s seq=%" PRIu64 ": aggregator behind the spool",
                     hf_lane_name(a->lane), a->seq);
        hf_link_batch_sent(d->link, a->lane, 0, now);
        s_drop_socket(self, d, now, "spool cannot serve the aggregator's cursor");
        return;
    }
    if ((rc != HF_OK && rc != HF_EFULL) || f.last == 0) {
        hf_link_batch_sent(d->link, a->lane, 0, now);
        if (rc != HF_OK) {
            /* Never retry at once: back off through a reconnect, and
             * reopen a spool that went unusable. */
            hf_log_error(S_LOG, "spool read lane=%s from=%" PRIu64 " err=%s",
                         hf_lane_name(a->lane), a->seq, hf_errname(rc));
            if (rc == HF_ESTATE)
                self->spool_failed = true;
            s_drop_socket(self, d, now, "spool read failed");
        }
        return;
    }
    size_t len = 0;
    hf_batch_finish(&w, &len);
    if (zmq_send(d->sock, self->batch_buf, len, ZMQ_DONTWAIT) < 0) {
        hf_link_batch_sent(d->link, a->lane, 0, now);
        s_drop_socket(self, d, now, "send failed (peer gone or not keeping up)");
        return;
    }
    hf_link_batch_sent(d->link, a->lane, f.last, now);
    hf_log_debug(S_LOG, "batch lane=%s seq=%" PRIu64 "..%" PRIu64 " bytes=%zu",
                 hf_lane_name(a->lane), a->seq, f.last, len);
}

/* Trim what the peer acknowledged: every 100 ms, at once when the spool
 * is past half its bound (room matters more than fsyncs then), and when
 * forced (closing). Until then the records stay; a crash before the trim
 * only means they are resent and the aggregator skips them as duplicates. */
static void
s_trim_due(hf_dispatcher_t *self, hf_ms_t now, bool force)
{
    if (!self->spool)
        return;
    bool due = force || now - self->trim_at >= 100 ||
               hf_spool_used_bytes(self->spool) > hf_spool_limit_bytes(self->spool) / 2;
    if (!due)
        return;
    bool trimmed = false;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        uint64_t to = self->trim_to[l];
        if (to > hf_spool_last_seq(self->spool, (hf_lane_t)l))
            to = hf_spool_last_seq(self->spool, (hf_lane_t)l);
        if (to <= hf_spool_acked(self->spool, (hf_lane_t)l))
            continue;
        hf_err_t rc = hf_spool_trim(self->spool, (hf_lane_t)l, to);
        if (rc != HF_OK) {
            /* Not fatal for delivery: the records stay, a later trim takes them. */
            hf_log_error(S_LOG, "spool trim lane=%s upto=%" PRIu64 " err=%s", hf_lane_name(l),
                         to, hf_errname(rc));
            if (rc == HF_ESTATE)
                self->spool_failed = true;
            continue;
        }
        trimmed = true;
    }
    self->trim_at = now;
    if (!trimmed)
        return;
    pthread_mutex_lock(&self->mu);
    for (int l = 0; l < HF_LANE_COUNT; l++)
        self->stats.pending[l] = hf_spool_depth(self->spool, (hf_lane_t)l);
    self->stats.spool_bytes = hf_spool_used_bytes(self->spool);
    s_maybe_clear_alarm_locked(self);
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
}

static void
s_run_actions(hf_dispatcher_t *self, s_dest_t *d, hf_ms_t now)
{
    hf_link_action_t a;
    while (hf_link_next_action(d->link, &a)) {
        switch (a.type) {
        case HF_LINK_ACT_SEND:
            if (!d->sock)
                break;
            if (zmq_send(d->sock, a.frame, a.len, ZMQ_DONTWAIT) < 0)
                s_drop_socket(self, d, now, "send failed");
            break;
        case HF_LINK_ACT_SEND_BATCH:
            if (!d->sock) {
                hf_link_batch_sent(d->link, a.lane, 0, now);
                break;
            }
            s_send_batch(self, d, &a, now);
            break;
        case HF_LINK_ACT_TRIM: {
            /* This destination committed up to a.seq. The spool may drop
             * only what EVERY destination has; and it is trimmed lazily
             * (s_trim_due): a trim is a durable write of its own, and one
             * per ACK would put an fsync in the way of every next commit. */
            if (a.seq > d->acked[a.lane])
                d->acked[a.lane] = a.seq;
            uint64_t all = UINT64_MAX;
            for (uint32_t i = 0; i < self->ndest; i++)
                if (self->dest[i].acked[a.lane] < all)
                    all = self->dest[i].acked[a.lane];
            if (all > self->trim_to[a.lane])
                self->trim_to[a.lane] = all;
            pthread_mutex_lock(&self->mu);
            if (all > self->stats.acked[a.lane])
                self->stats.acked[a.lane] = all;
            s_maybe_clear_alarm_locked(self); /* before a drain can see "all acked" */
            pthread_cond_broadcast(&self->cond);
            pthread_mutex_unlock(&self->mu);
            break;
        }
        case HF_LINK_ACT_RECONNECT: s_drop_socket(self, d, now, a.reason); break;
        case HF_LINK_ACT_STREAMING:
            d->backoff_ms = 100;
            d->streaming = true;
            pthread_mutex_lock(&self->mu);
            self->stats.connected = true;
            self->stats.connected_count++;
            self->stats.reconnects++;
            pthread_mutex_unlock(&self->mu);
            hf_log_info(S_LOG,
                        "streaming engine=%s version=%" PRIu64 " resume_from=%" PRIu64
                        "/%" PRIu64,
                        self->engine, a.seq, hf_link_acked(d->link, 0) + 1,
                        hf_link_acked(d->link, 1) + 1);
            break;
        }
    }
    if (hf_link_state(d->link) == HF_LINK_FAILED) {
        hf_log_error(S_LOG, "link failed (protocol violation by the aggregator or a confused "
                            "log): reconnecting afresh");
        hf_link_reset(d->link);
        s_drop_socket(self, d, now, "protocol failure");
    }
}

static void
s_on_monitor(hf_dispatcher_t *self, s_dest_t *d, hf_ms_t now)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, d->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&event, zmq_msg_data(&m), sizeof event);
            memcpy(&value, (const uint8_t *)zmq_msg_data(&m) + 2, sizeof value);
        }
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, d->mon, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            uint64_t last[HF_LANE_COUNT];
            for (int l = 0; l < HF_LANE_COUNT; l++)
                last[l] = hf_spool_last_seq(self->spool, (hf_lane_t)l);
            hf_log_info(S_LOG, "connected engine=%s endpoint=%s: HELLO", self->engine,
                        d->endpoint);
            hf_link_connected(d->link, now, last, self->run, self->run_state);
        } else if (event == ZMQ_EVENT_DISCONNECTED) {
            s_drop_socket(self, d, now, "connection closed");
            return; /* the monitor socket is gone */
        } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                   event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            char why[160];
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                snprintf(why, sizeof why, "refused by the aggregator (status %u): is this "
                                          "engine's key in its --engine-keys, bound to id %s?",
                         value, self->engine);
            else if (!self->curve)
                snprintf(why, sizeof why, "handshake failed (error 0x%x): security mechanism "
                                          "mismatch? this engine runs --insecure, the "
                                          "aggregator may require CURVE", value);
            else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
                snprintf(why, sizeof why, "security mechanism mismatch: the aggregator runs "
                                          "--insecure, this engine CURVE");
            else
                snprintf(why, sizeof why, "handshake failed (error 0x%x): wrong --server-key, "
                                          "or the aggregator runs --insecure?", value);
            bool log = d->refused_logged_at == 0 || now - d->refused_logged_at >= 30000;
            if (log) {
                d->refused_logged_at = now ? now : 1;
                hf_log_error(S_LOG, "engine=%s endpoint=%s %s", self->engine, d->endpoint, why);
            }
            s_drop_socket(self, d, now, log ? why : NULL);
            return;
        }
    }
}

static void
s_on_socket(hf_dispatcher_t *self, s_dest_t *d, hf_ms_t now)
{
    for (int i = 0; i < 256 && d->sock; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, d->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        bool more = zmq_msg_more(&m);
        if (!more) {
            hf_err_t rc = hf_link_on_frame(d->link, zmq_msg_data(&m), zmq_msg_size(&m), now);
            if (rc != HF_OK)
                hf_log_warn(S_LOG, "frame from aggregator refused err=%s", hf_errname(rc));
            /* Commands are the engine's business, not the link's: the link
             * only vouches that the connection is streaming. */
            hf_frame_t f;
            if (rc == HF_OK && hf_frame_decode(zmq_msg_data(&m), zmq_msg_size(&m), &f, NULL, 0) ==
                                   HF_OK && f.type == HF_FRAME_COMMAND) {
                if (hf_link_state(d->link) == HF_LINK_STREAMING)
                    s_command_push(self, d, &f.u.command);
                else
                    hf_log_warn(S_LOG, "command id=%" PRIu64 " on a connection not streaming: "
                                       "ignored", f.u.command.id);
            }
        }
        zmq_msg_close(&m);
        while (more && d->sock) { /* multi-part messages are not ours */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, d->sock, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        s_run_actions(self, d, now);
    }
}

typedef struct {
    uint64_t ts_ns; /* wall clock of the record read */
} s_first_t;

static hf_err_t
s_first_cb(void *arg, uint64_t seq, const uint8_t *rec, size_t len)
{
    (void)seq;
    s_first_t *f = arg;
    hf_record_t r;
    size_t used = 0;
    if (hf_record_decode(rec, len, &r, &used) == HF_OK)
        f->ts_ns = r.ts_ns;
    return HF_OK;
}

/* Backlog in sight: pending records, the age of the oldest, the drain
 * rate and the time left, for the STATUS frame and hf_dispatcher_stats. */
static void
s_update_status(hf_dispatcher_t *self, hf_ms_t now)
{
    if (self->status_at && now - self->status_at < self->opts.heartbeat_ms / 2)
        return;
    hf_status_t st;
    memset(&st, 0, sizeof st);
    uint64_t wall = hf_clock_wall_ns();
    uint64_t acked_total = 0;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        st.pending[l] = hf_spool_depth(self->spool, (hf_lane_t)l);
        uint64_t untrimmed = self->trim_to[l] > hf_spool_acked(self->spool, (hf_lane_t)l)
                                 ? self->trim_to[l] - hf_spool_acked(self->spool, (hf_lane_t)l)
                                 : 0;
        st.pending[l] = st.pending[l] > untrimmed ? st.pending[l] - untrimmed : 0;
        acked_total += self->trim_to[l] > hf_spool_acked(self->spool, (hf_lane_t)l)
                           ? self->trim_to[l]
                           : hf_spool_acked(self->spool, (hf_lane_t)l);
        if (st.pending[l] > 0) {
            s_first_t f = {0};
            size_t n = 0;
            uint64_t from = hf_spool_acked(self->spool, (hf_lane_t)l);
            if (self->trim_to[l] > from)
                from = self->trim_to[l];
            hf_spool_read(self->spool, (hf_lane_t)l, from + 1, 1, HF_PROTO_MAX_RECORD,
                          s_first_cb, &f, &n);
            if (n == 1 && f.ts_ns && f.ts_ns < wall)
                st.oldest_age_ms[l] = (wall - f.ts_ns) / 1000000ull;
        }
    }
    if (self->status_at && now > self->status_at) {
        double inst = (double)(acked_total - self->rate_acked) * 1000.0 /
                      (double)(now - self->status_at);
        self->drain_per_s = self->drain_per_s == 0 ? inst : 0.5 * self->drain_per_s + 0.5 * inst;
    }
    self->status_at = now;
    self->rate_acked = acked_total;
    st.drain_per_s = (uint64_t)self->drain_per_s;
    uint64_t pending = st.pending[0] + st.pending[1];
    if (pending > 0 && st.drain_per_s > 0)
        st.eta_ms = pending * 1000ull / st.drain_per_s;
    pthread_mutex_lock(&self->mu);
    st.dropped = self->stats.dropped;
    st.samples = self->timing[0];
    st.late = self->timing[1];
    st.missed = self->timing[2];
    self->stats.backlog = st;
    pthread_mutex_unlock(&self->mu);
    st.spool_bytes = hf_spool_used_bytes(self->spool);
    st.spool_limit = hf_spool_limit_bytes(self->spool);
    s_level_watch(self);
    for (uint32_t i = 0; i < self->ndest; i++) {
        /* Each destination hears its own backlog: what IT has not acked
         * (the spool's figures are those of the slowest destination). */
        hf_status_t sd = st;
        const s_dest_t *d = &self->dest[i];
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            uint64_t last = hf_spool_last_seq(self->spool, (hf_lane_t)l);
            uint64_t behind = last > d->acked[l] ? last - d->acked[l] : 0;
            if (behind < sd.pending[l])
                sd.pending[l] = behind;
            if (sd.pending[l] == 0)
                sd.oldest_age_ms[l] = 0;
        }
        if (sd.pending[0] + sd.pending[1] == 0)
            sd.eta_ms = 0;
        else if (sd.drain_per_s > 0)
            sd.eta_ms = (sd.pending[0] + sd.pending[1]) * 1000ull / sd.drain_per_s;
        hf_link_set_status(d->link, &sd);
    }
}

/* The spool went unusable (an I/O error during a commit, a failed sync):
 * what it committed before is intact on disk, so close it and open it
 * again, with a pause between attempts. The connection is dropped so that
 * HELLO/WELCOME resynchronise the link with the reopened spool. */
static void
s_reopen_spool(hf_dispatcher_t *self, hf_ms_t now)
{
    if (self->spool && !self->spool_failed)
        return;
    if (now < self->reopen_at)
        return;
    for (uint32_t i = 0; i < self->ndest; i++)
        if (self->dest[i].sock)
            s_drop_socket(self, &self->dest[i], now, "spool being reopened");
    hf_spool_close(&self->spool);
    hf_spool_opts_t so = hf_spool_opts_default();
    so.max_bytes = self->opts.spool_max_bytes;
    if (so.map_bytes > so.max_bytes)
        so.map_bytes = so.max_bytes;
    so.durable = self->opts.durable;
    hf_err_t rc = HF_OK;
    self->spool = hf_spool_open(self->spool_dir, &so, &rc);
    if (!self->spool) {
        hf_log_error(S_LOG, "spool reopen dir=%s failed err=%s: retrying in 2 s",
                     self->spool_dir, hf_errname(rc));
        self->reopen_at = now + 2000;
        return;
    }
    self->spool_failed = false;
    for (int l = 0; l < HF_LANE_COUNT; l++)
        for (uint32_t i = 0; i < self->ndest; i++)
            hf_link_committed(self->dest[i].link, (uint8_t)l,
                              hf_spool_last_seq(self->spool, (hf_lane_t)l));
    hf_log_info(S_LOG, "spool reopened dir=%s", self->spool_dir);
}

static void *
s_worker(void *arg)
{
    hf_dispatcher_t *self = arg;
    for (;;) {
        hf_ms_t now = hf_clock_mono_ms();
        pthread_mutex_lock(&self->mu);
        bool stopping = self->stopping;
        pthread_mutex_unlock(&self->mu);
        if (self->spool_failed || !self->spool)
            s_reopen_spool(self, now);
        s_commit_due(self, now, stopping);
        s_trim_due(self, now, stopping);
        if (self->unsynced && self->spool && (stopping || now - self->last_sync >= 1000)) {
            /* relaxed mode: bound what an OS crash can take (decision 0001) */
            hf_err_t src = hf_spool_sync(self->spool);
            if (src != HF_OK)
                hf_log_error(S_LOG, "spool sync failed err=%s", hf_errname(src));
            self->unsynced = false;
            self->last_sync = now;
        }
        if (stopping)
            break;
        if (!self->spool) {
            /* nothing to send from until the spool is back */
            hf_sleep_until_ns(hf_clock_mono_ns() + 50000000ull);
            continue;
        }
        for (uint32_t i = 0; i < self->ndest; i++) {
            s_dest_t *d = &self->dest[i];
            if (!d->sock && now >= d->reconnect_at)
                s_make_socket(self, d);
        }
        s_update_status(self, now);
        for (uint32_t i = 0; i < self->ndest; i++) {
            hf_link_on_timer(self->dest[i].link, now);
            s_run_actions(self, &self->dest[i], now);
        }

        zmq_pollitem_t items[1 + 2 * HF_DISPATCHER_MAX_DEST];
        int ni = 0;
        items[ni++] = (zmq_pollitem_t){.socket = NULL, .fd = self->wake_fd, .events = ZMQ_POLLIN};
        int i_sock[HF_DISPATCHER_MAX_DEST], i_mon[HF_DISPATCHER_MAX_DEST];
        hf_ms_t deadline = HF_MS_NEVER;
        for (uint32_t i = 0; i < self->ndest; i++) {
            s_dest_t *d = &self->dest[i];
            i_sock[i] = i_mon[i] = -1;
            if (d->sock) {
                i_sock[i] = ni;
                items[ni++] = (zmq_pollitem_t){.socket = d->sock, .events = ZMQ_POLLIN};
                i_mon[i] = ni;
                items[ni++] = (zmq_pollitem_t){.socket = d->mon, .events = ZMQ_POLLIN};
            }
            hf_ms_t dl = hf_link_deadline(d->link);
            if (!d->sock && d->reconnect_at < dl)
                dl = d->reconnect_at;
            if (dl < deadline)
                deadline = dl;
        }
        pthread_mutex_lock(&self->mu);
        if (self->fill_count > 0) {
            hf_ms_t c = (self->first_staged_ms ? self->first_staged_ms : now) +
                        self->opts.commit_window_ms;
            if (c < deadline)
                deadline = c;
        }
        pthread_mutex_unlock(&self->mu);
        long timeout = 100; /* at most: lazy trims and status run on the loop */
        if (deadline != HF_MS_NEVER)
            timeout = deadline <= now ? 0 : (long)(deadline - now);
        if (timeout > 100)
            timeout = 100;
        int rc = zmq_poll(items, ni, timeout);
        if (rc < 0 && errno != EINTR) {
            hf_log_error(S_LOG, "zmq_poll: %s", zmq_strerror(errno));
            hf_sleep_until_ns(hf_clock_mono_ns() + 10000000ull);
            continue;
        }
        now = hf_clock_mono_ms();
        if (items[0].revents & ZMQ_POLLIN) {
            uint64_t v;
            ssize_t r = read(self->wake_fd, &v, sizeof v);
            (void)r;
        }
        for (uint32_t i = 0; i < self->ndest; i++) {
            s_dest_t *d = &self->dest[i];
            if (i_mon[i] >= 0 && d->mon && (items[i_mon[i]].revents & ZMQ_POLLIN))
                s_on_monitor(self, d, now);
            if (i_sock[i] >= 0 && d->sock && (items[i_sock[i]].revents & ZMQ_POLLIN))
                s_on_socket(self, d, now);
        }
    }
    /* A clean shutdown says so: BYE on every streaming connection, so the
     * aggregator shows "clean shutdown" at once instead of "link lost"
     * three seconds later. The socket lingers briefly to let it out. */
    for (uint32_t i = 0; i < self->ndest; i++) {
        s_dest_t *d = &self->dest[i];
        uint8_t bye[8];
        size_t blen = 0;
        if (!d->streaming || !d->sock || hf_frame_encode_bye(bye, sizeof bye, &blen) != HF_OK)
            continue;
        int linger = 200;
        zmq_setsockopt(d->sock, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_send(d->sock, bye, blen, ZMQ_DONTWAIT) < 0)
            hf_log_debug(S_LOG, "BYE to %s not sent: %s", d->endpoint, zmq_strerror(errno));
    }
    /* The final commit happened above (stopping forces it); committed but
     * unsent records stay in the spool for the next start. What could not
     * be committed (a spool failing at the very end) is said, not hidden. */
    pthread_mutex_lock(&self->mu);
    uint64_t lost = (uint64_t)self->work_n + self->fill_count;
    pthread_mutex_unlock(&self->mu);
    if (lost)
        hf_log_error(S_LOG, "close engine=%s: %" PRIu64 " records sent but never committed "
                            "(spool failing at shutdown) err=%s",
                     self->engine, lost, hf_errname(self->commit_err));
    return NULL;
}
