/* hf_router.c - the aggregator's shell: sockets, clock, store, sessions.
 *
 * One thread polls two ROUTER sockets: engines (records in, acks out) and
 * control (the CLI). For each engine frame it consults the engine's pure
 * session (hf_session.c), commits through the store (hf_store.c), and only
 * after the store's commit returned does it send the ACK.
 *
 * Invariants:
 * - ACK(lane, n) is sent only after records <= n and the cursor n are in
 *   one committed LMDB transaction (hf_store_commit).
 * - A batch is accepted only from an engine whose current connection said
 *   HELLO (session active); the routing id must equal the engine id in
 *   HELLO, so one connection can't speak for another engine.
 * - A batch that would leave a gap is not committed; the engine is sent a
 *   WELCOME with the store's cursor and resends from there.
 * - Sessions are bounded (max_engines); a HELLO past the bound is refused.
 *
 * - Commands (docs/commands.md): the pure per-engine queue (hf_cmdq.c)
 *   decides; this shell sends one COMMAND frame at a time to the engine and
 *   answers the control client when the engine's COMMAND record is
 *   committed, or at once when the engine is away, the link drops, or the
 *   engine does not answer in time. A command is sent at most once.
 *
 * Security (docs/security.md): unless opts.insecure, every socket is a
 * CURVE server with a ZAP domain, and hf_zap.c (polled in this loop)
 * decides each handshake. Per message the shell checks what the handshake
 * established: on the engines' socket the routing id must be the engine id
 * bound to the connection's key (ZAP User-Id), so an engine cannot speak
 * for another; on the control socket the key's role must allow the request
 * (operator: anything; reader: queries only). Both are checked against the
 * key directories as they are now, so a removed key stops working at once.
 *
 * ZeroMQ: ROUTER_HANDOVER lets a reconnecting engine (same routing id)
 * take over its old connection; ROUTER_MANDATORY turns a send to a gone
 * peer into an error instead of a silent drop; MAXMSGSIZE bounds what a
 * hostile peer can make us allocate.
 */
#include "hf_aggregator.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include <msgpack.h>
#include <zmq.h>

#include "hf_control.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_metrics.h"
#include "hf_session.h"
#include "hf_store.h"
#include "hf_time.h"
#include "hf_upkeep.h"
#include "hf_zap.h"

#define S_LOG "aggregator"
#define S_CONTROL_REPLY_MAX (8u << 20) /* bytes */
#define S_CONTROL_REQ_MAX (64u << 10)  /* bytes */
#define S_GROUP_MAX (4u * HF_PROTO_MAX_BATCH) /* records committed in one store txn */
#define S_COMMAND_FRAME_MAX (HF_COMMAND_BODY_MAX + 1024) /* bytes */
#define HF_EEXIST_HANDLED ((hf_err_t)-1) /* local: a request already answered */

/* A run of records of one engine and lane in the pending group. */
typedef struct {
    hf_session_t *s;
    uint8_t lane;
    uint32_t off;           /* first record in recs                    */
    uint32_t n;             /* records                                 */
} s_seg_t;
#define S_SEGS_MAX 1024
/* Group commit: a pass that finds the socket empty commits what it read,
 * unless the previous commit ended less than S_COMMIT_GAP_NS ago and the
 * group is still small; then the group waits out the rest of that gap,
 * gathering the batches that arrive meanwhile (at most S_COMMIT_GAP_NS
 * later). So a busy aggregator commits at most ~1000 times a second, each
 * commit covering many engines' batches (one fsync, fewer pages written per
 * record: docs/store.md), while a quiet one commits a lone batch at once
 * and adds no latency. */
#define S_COMMIT_GAP_NS 1000000ull
#define S_GROUP_EARLY HF_PROTO_MAX_BATCH /* records: commit now, gap or not */
#define S_STORE_PROBE_MS 1000 /* while the store is full: try it again this often */
#define S_STORE_CLEAR_MS 5000 /* writable this long: alarm 1007 cleared */

/* A long-lived part of the aggregator's loop supervised in-thread: the
 * control endpoint and the status feed (each engine's session carries its
 * own window in hf_session_t). */
typedef struct {
    hf_restart_window_t window;
    uint32_t restarts;      /* total                                   */
    bool fault;             /* HF_TESTING: fail at the next occasion   */
} s_task_t;

struct hf_aggregator_s {
    hf_aggregator_opts_t opts;
    hf_store_t *store;
    void *zctx;
    void *engines_sock;     /* ROUTER facing engines                 */
    void *control_sock;     /* ROUTER facing the CLI                 */
    void *status_sock;      /* PUB: the status feed, NULL if none     */
    uint64_t feed_dropped;  /* feed messages a full PUB queue refused  */
    char status_ep[256];    /* the feed's endpoint as bound            */
    hf_session_t *sessions; /* max_engines                            */
    uint32_t nsessions;
    hf_record_t *recs;      /* S_GROUP_MAX: decoded records of the pending group */
    uint32_t group_n;       /* records in the pending group            */
    s_seg_t *segs;          /* S_SEGS_MAX: the group's runs of one engine and lane */
    hf_store_batch_t *batches; /* S_SEGS_MAX: the same, for the store   */
    uint32_t nsegs;
    uint64_t commit_end_ns; /* mono ns: the last group commit returned  */
    uint8_t *reply;         /* S_CONTROL_REPLY_MAX                    */
    uint8_t *cmd_buf;       /* S_COMMAND_FRAME_MAX: one COMMAND frame  */
    uint64_t commands;      /* commands submitted                      */
    hf_live_t *live;        /* max_engines, rebuilt per control request */
    uint64_t frames_refused;/* frames dropped as invalid              */
    uint64_t quiet_before_hello; /* frames before HELLO, for log rate limiting */
    char endpoint[256];     /* engines' endpoint as bound             */
    char control_ep[256];   /* control endpoint as bound              */
    s_task_t control_task;  /* the control endpoint, supervised        */
    s_task_t feed_task;     /* the status feed, supervised             */
    bool gave_up;           /* a task exceeded its restart intensity   */
    hf_zap_t *zap;          /* ZAP handler; NULL when insecure         */
    hf_upkeep_t *upkeep;    /* storage watch, retention, metrics       */
    hf_metrics_engine_t *m_engines; /* max_engines: the metrics snapshot */
    uint64_t m_commands[HF_METRICS_ERR_MAX]; /* commands answered by result */
    uint8_t secret[32];     /* the aggregator's CURVE secret key       */
    void *mon;              /* PAIR: handshake failures of both ROUTERs */
    bool store_full;        /* a commit failed for lack of space: paused */
    bool store_probe;       /* the next commit may try the store again  */
    hf_ms_t store_retry_at; /* ms: when held engines are resynced        */
    hf_ms_t store_full_at;  /* ms: when the store became full            */
    uint64_t store_full_drops; /* batches not stored while full (resent)  */
    bool store_alarm;       /* alarm 1007 raised                         */
    hf_ms_t store_alarm_at; /* ms: when it was raised                    */
    hf_ms_t store_room_at;  /* ms: the last commit that fit after a failure */
    hf_ms_t store_paused_ms;/* ms paused since the alarm was raised      */
};

hf_aggregator_opts_t
hf_aggregator_opts_default(void)
{
    hf_aggregator_opts_t o;
    memset(&o, 0, sizeof o);
    o.watchdog_ms = 3000;
    o.max_engines = 1024;
    o.store_max_bytes = (size_t)64 << 30;
    o.command_timeout_ms = 10000;
    o.max_restarts = 10;
    o.disk_low_pct = 10;
    o.restart_period_ms = 60000;
    return o;
}

/* Make sock a CURVE server in ZAP domain (nothing when insecure). Before
 * bind: the mechanism of a listening socket is fixed at bind time. */
static void
s_secure(const hf_aggregator_t *self, void *sock, const char *domain)
{
    if (!self->zap)
        return;
    int one = 1;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret, sizeof self->secret);
    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain));
}

static void *
s_bind(const hf_aggregator_t *self, const char *ep, int64_t maxmsg, const char *domain)
{
    int one = 1, zero = 0, hwm = 10000;
    void *s = zmq_socket(self->zctx, ZMQ_ROUTER);
    if (!s)
        return NULL;
    s_secure(self, s, domain);
    zmq_setsockopt(s, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(s, ep) != 0) {
        hf_log_error(S_LOG, "bind %s: %s", ep, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* CURVE and the ZAP handler, or --insecure (one or the other, never
 * neither: a mistyped flag must not start an open aggregator). */
static hf_err_t
s_security_open(hf_aggregator_t *self, const hf_aggregator_opts_t *opts)
{
    if (opts->insecure) {
        if (opts->cert || opts->engine_keys || opts->operator_keys) {
            hf_log_error(S_LOG, "--insecure excludes --cert, --engine-keys and --operator-keys");
            return HF_EINVAL;
        }
        hf_log_warn(S_LOG, "INSECURE: plain mechanism on every endpoint: no authentication, "
                           "no encryption; any peer can send records and command engines");
        return HF_OK;
    }
    if (!opts->cert || !opts->engine_keys || !opts->operator_keys) {
        hf_log_error(S_LOG, "security: --cert, --engine-keys and --operator-keys are required "
                            "(or --insecure)");
        return HF_EINVAL;
    }
    if (!zsys_has_curve()) {
        hf_log_error(S_LOG, "security: this libzmq has no CURVE support");
        return HF_EINVAL;
    }
    int maj = 0, min = 0, pat = 0;
    zmq_version(&maj, &min, &pat);
    if (maj * 10000 + min * 100 + pat < 40302) {
        /* CVE-2019-13132: unauthenticated overflow on CURVE servers */
        hf_log_error(S_LOG, "security: libzmq %d.%d.%d is older than 4.3.2", maj, min, pat);
        return HF_EINVAL;
    }
    zcert_t *cert = zcert_load(opts->cert);
    static const uint8_t zero[32] = {0};
    if (!cert || memcmp(zcert_secret_key(cert), zero, sizeof zero) == 0) {
        hf_log_error(S_LOG, "security: %s is not a certificate with a secret key (give the "
                            "file written by 'holdfast keygen NAME --server', NAME_secret)",
                     opts->cert);
        zcert_destroy(&cert);
        return HF_EINVAL;
    }
    memcpy(self->secret, zcert_secret_key(cert), sizeof self->secret);
    hf_log_info(S_LOG, "security: CURVE server key=%s engine_keys=%s operator_keys=%s",
                zcert_public_txt(cert), opts->engine_keys, opts->operator_keys);
    zcert_destroy(&cert);
    hf_err_t rc = HF_OK;
    self->zap = hf_zap_open(self->zctx, opts->engine_keys, opts->operator_keys,
                            hf_clock_mono_ms(), &rc);
    return self->zap ? HF_OK : HF_EINVAL;
}

/* Handshakes that fail before ZAP (a plain peer, a bad CURVE handshake)
 * show only as monitor events: count them as refusals. libzmq does not
 * give the peer's address with them. */
static void
s_monitor_open(hf_aggregator_t *self)
{
    if (!self->zap)
        return;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://hf-aggregator-mon-%p", (void *)self);
    if (zmq_socket_monitor(self->engines_sock, ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
        return;
    self->mon = zmq_socket(self->zctx, ZMQ_PAIR);
    int zero = 0;
    if (self->mon)
        zmq_setsockopt(self->mon, ZMQ_LINGER, &zero, sizeof zero);
    if (self->mon && zmq_connect(self->mon, ep) != 0) {
        zmq_close(self->mon);
        self->mon = NULL;
    }
}

static void
s_on_monitor(hf_aggregator_t *self, hf_ms_t now)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&m) >= 6) {
            memcpy(&event, zmq_msg_data(&m), sizeof event);
            memcpy(&value, (uint8_t *)zmq_msg_data(&m) + 2, sizeof value);
        }
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        char ep[256] = "";
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->mon, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            size_t n = zmq_msg_size(&m) < sizeof ep - 1 ? zmq_msg_size(&m) : sizeof ep - 1;
            memcpy(ep, zmq_msg_data(&m), n);
            ep[n] = 0;
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        char detail[320];
        snprintf(detail, sizeof detail, "endpoint=%s %s", ep,
                 value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                     ? "(not CURVE: a plain or misconfigured peer)"
                     : "(bad handshake)");
        hf_zap_refused(self->zap, HF_REFUSE_HANDSHAKE, NULL, NULL, detail, now);
    }
}

typedef struct {
    uint64_t start_ns;
    char reason[48];
    bool found;
} s_last_outage_t;

static int
s_newest_outage(const hf_store_outage_t *o, void *arg)
{
    s_last_outage_t *l = arg;
    if (o->end_ns == 0) {
        l->start_ns = o->start_ns;
        snprintf(l->reason, sizeof l->reason, "%s", o->reason);
    }
    l->found = true;
    return 1; /* newest first: one is enough */
}

static int
s_restore_one(const hf_store_engine_t *e, void *arg)
{
    hf_aggregator_t *self = arg;
    if (self->nsessions == self->opts.max_engines) {
        hf_log_warn(S_LOG, "more engines in the store than --max-engines=%u: engine=%s and later "
                           "ones are restored on their HELLO",
                    self->opts.max_engines, e->engine);
        return 1;
    }
    s_last_outage_t lo;
    memset(&lo, 0, sizeof lo);
    if (hf_store_outages_each(self->store, e->engine, s_newest_outage, &lo) != HF_OK)
        memset(&lo, 0, sizeof lo);
    hf_session_t *s = &self->sessions[self->nsessions++];
    hf_session_restore(s, e->engine, e->current_epoch, e->last_run, e->last_run_state,
                       lo.start_ns, lo.reason, hf_clock_mono_ms(), hf_clock_wall_ns());
    hf_restart_window_init(&s->window, self->opts.max_restarts, self->opts.restart_period_ms);
    return 0;
}

/* Sessions survive a restart: every engine the store knows comes back with
 * what it last said, and the watchdog decides about it from now on. */
static void
s_restore_sessions(hf_aggregator_t *self)
{
    hf_err_t rc = hf_store_engines_each(self->store, s_restore_one, self);
    if (rc != HF_OK)
        hf_log_error(S_LOG, "restore sessions err=%s: engines appear on their HELLO",
                     hf_errname(rc));
    else if (self->nsessions)
        hf_log_info(S_LOG, "restored sessions=%u (awaiting their HELLO)", self->nsessions);
}

hf_aggregator_t *
hf_aggregator_open(const hf_aggregator_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_EINVAL;
    hf_aggregator_t *self = NULL;
    if (!opts || !opts->bind || !opts->control || !opts->data_dir || opts->watchdog_ms < 100 ||
        opts->max_engines == 0 || opts->max_engines > 100000) {
        hf_log_error(S_LOG, "invalid options: --bind, --control and --data are required");
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->opts = *opts;
    if (hf_restart_window_init(&self->control_task.window, opts->max_restarts,
                               opts->restart_period_ms) != HF_OK ||
        hf_restart_window_init(&self->feed_task.window, opts->max_restarts,
                               opts->restart_period_ms) != HF_OK) {
        hf_log_error(S_LOG, "invalid restart intensity: %u restarts in %u ms",
                     opts->max_restarts, opts->restart_period_ms);
        goto fail;
    }
    self->sessions = calloc(opts->max_engines, sizeof *self->sessions);
    self->live = calloc(opts->max_engines, sizeof *self->live);
    self->recs = calloc(S_GROUP_MAX, sizeof *self->recs);
    self->reply = malloc(S_CONTROL_REPLY_MAX);
    self->cmd_buf = malloc(S_COMMAND_FRAME_MAX);
    self->segs = calloc(S_SEGS_MAX, sizeof *self->segs);
    self->batches = calloc(S_SEGS_MAX, sizeof *self->batches);
    if (self->opts.command_timeout_ms == 0)
        self->opts.command_timeout_ms = 10000;
    if (!self->sessions || !self->live || !self->recs || !self->reply || !self->cmd_buf ||
        !self->segs || !self->batches) {
        rc = HF_ENOMEM;
        goto fail;
    }
    hf_store_opts_t so = hf_store_opts_default();
    so.readonly = false; /* the service writes (hf_store_opts_default may leave it unset) */
    so.max_bytes = opts->store_max_bytes;
    if (so.map_bytes > so.max_bytes)
        so.map_bytes = so.max_bytes;
    self->store = hf_store_open(opts->data_dir, &so, &rc);
    if (!self->store)
        goto fail;
    {
        hf_upkeep_opts_t uo = {.data_dir = opts->data_dir,
                               .retain_age_ns = opts->retain_age_ms * 1000000ull,
                               .retain_bytes = opts->retain_bytes,
                               .metrics = opts->metrics,
                               .disk_low_pct = opts->disk_low_pct,
                               .store_max_bytes = so.max_bytes};
        self->upkeep = hf_upkeep_open(&uo, &rc);
        if (!self->upkeep)
            goto fail;
        if (opts->metrics) {
            self->m_engines = calloc(opts->max_engines, sizeof *self->m_engines);
            if (!self->m_engines) {
                rc = HF_ENOMEM;
                goto fail;
            }
        }
    }
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        rc = HF_EIO;
        goto fail;
    }
    rc = HF_EIO;
    if (s_security_open(self, opts) != HF_OK) {
        rc = HF_EINVAL;
        goto fail;
    }
    rc = HF_EIO;
    self->engines_sock = s_bind(self, opts->bind, HF_PROTO_MAX_FRAME, HF_ZAP_DOMAIN_ENGINES);
    if (!self->engines_sock)
        goto fail;
    self->control_sock = s_bind(self, opts->control, S_CONTROL_REQ_MAX, HF_ZAP_DOMAIN_CONTROL);
    if (!self->control_sock)
        goto fail;
    s_monitor_open(self);
    if (opts->status) {
        int zero = 0, hwm = 10000;
        self->status_sock = zmq_socket(self->zctx, ZMQ_PUB);
        if (!self->status_sock) {
            hf_log_error(S_LOG, "status feed socket: %s", zmq_strerror(errno));
            goto fail;
        }
        zmq_setsockopt(self->status_sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(self->status_sock, ZMQ_SNDHWM, &hwm, sizeof hwm); /* bounded */
        s_secure(self, self->status_sock, HF_ZAP_DOMAIN_FEED);
        if (zmq_bind(self->status_sock, opts->status) != 0) {
            hf_log_error(S_LOG, "bind status feed %s: %s", opts->status, zmq_strerror(errno));
            goto fail;
        }
        size_t l3 = sizeof self->status_ep;
        zmq_getsockopt(self->status_sock, ZMQ_LAST_ENDPOINT, self->status_ep, &l3);
        hf_log_info(S_LOG, "status feed on %s", self->status_ep);
    }
    s_restore_sessions(self);
    /* Persist the caller's strings' lifetime problem away: keep copies. */
    self->opts.bind = strdup(opts->bind);
    self->opts.control = strdup(opts->control);
    self->opts.data_dir = strdup(opts->data_dir);
    self->opts.cert = self->opts.engine_keys = self->opts.operator_keys = NULL; /* used once */
    /* Report the endpoints as bound: a port given as '*' is resolved here,
     * which is how scripts and tests get free ports without races. */
    char ep_eng[256] = "", ep_ctl[256] = "";
    size_t l1 = sizeof ep_eng, l2 = sizeof ep_ctl;
    zmq_getsockopt(self->engines_sock, ZMQ_LAST_ENDPOINT, ep_eng, &l1);
    zmq_getsockopt(self->control_sock, ZMQ_LAST_ENDPOINT, ep_ctl, &l2);
    snprintf(self->endpoint, sizeof self->endpoint, "%s", ep_eng);
    snprintf(self->control_ep, sizeof self->control_ep, "%s", ep_ctl);
    hf_log_info(S_LOG, "listening engines=%s control=%s data=%s watchdog_ms=%u", ep_eng, ep_ctl,
                opts->data_dir, opts->watchdog_ms);
    if (err)
        *err = HF_OK;
    return self;
fail:
    if (self) {
        self->opts.bind = self->opts.control = self->opts.data_dir = NULL;
    }
    hf_aggregator_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

const char *
hf_aggregator_control_endpoint(const hf_aggregator_t *self)
{
    assert(self);
    return self->control_ep;
}

const char *
hf_aggregator_endpoint(const hf_aggregator_t *self)
{
    return self->endpoint;
}

const char *
hf_aggregator_status_endpoint(const hf_aggregator_t *self)
{
    return self->status_sock ? self->status_ep : NULL;
}

void
hf_aggregator_close(hf_aggregator_t **self_p)
{
    assert(self_p);
    hf_aggregator_t *self = *self_p;
    if (!self)
        return;
    if (self->engines_sock)
        zmq_close(self->engines_sock);
    if (self->control_sock)
        zmq_close(self->control_sock);
    if (self->status_sock)
        zmq_close(self->status_sock);
    if (self->mon)
        zmq_close(self->mon);
    hf_zap_close(&self->zap);
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    hf_upkeep_close(&self->upkeep);
    free(self->m_engines);
    hf_store_close(&self->store);
    memset(self->secret, 0, sizeof self->secret);
    free((char *)self->opts.bind);
    free((char *)self->opts.control);
    free((char *)self->opts.data_dir);
    for (uint32_t i = 0; self->sessions && i < self->nsessions; i++)
        hf_cmdq_fini(&self->sessions[i].cmds);
    free(self->sessions);
    free(self->cmd_buf);
    free(self->segs);
    free(self->batches);
    free(self->live);
    free(self->recs);
    free(self->reply);
    free(self);
    *self_p = NULL;
}

/* ---- engines --------------------------------------------------------- */

static hf_session_t *
s_session(hf_aggregator_t *self, const char *engine, bool create)
{
    for (uint32_t i = 0; i < self->nsessions; i++)
        if (strcmp(self->sessions[i].engine, engine) == 0)
            return &self->sessions[i];
    if (!create || self->nsessions == self->opts.max_engines)
        return NULL;
    hf_session_t *s = &self->sessions[self->nsessions++];
    hf_session_init(s, engine);
    hf_restart_window_init(&s->window, self->opts.max_restarts, self->opts.restart_period_ms);
    return s;
}

static void
s_reply(hf_aggregator_t *self, const char *rid, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->engines_sock, rid, strlen(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->engines_sock, buf, len, ZMQ_DONTWAIT) < 0) {
        /* EHOSTUNREACH: the engine is gone; it resyncs on its next HELLO. */
        hf_log_debug(S_LOG, "reply to engine=%s dropped: %s", rid, zmq_strerror(errno));
    }
}

static void
s_send_welcome(hf_aggregator_t *self, const char *rid, const hf_welcome_t *w)
{
    uint8_t buf[128];
    size_t len = 0;
    if (hf_frame_encode_welcome(w, buf, sizeof buf, &len) == HF_OK)
        s_reply(self, rid, buf, len);
}

static void
s_refuse(hf_aggregator_t *self, const char *rid, const char *why, hf_err_t rc)
{
    self->frames_refused++;
    hf_log_warn(S_LOG, "frame refused peer=%s reason=\"%s\" err=%s", rid, why, hf_errname(rc));
}

/* ---- status feed ---------------------------------------------------------
 * One msgpack map per message, a frame of its own, topic-free (subscribers
 * filter on the map). PUB drops for slow subscribers by design; the HWM
 * bounds the queue and drops are counted. */

typedef struct {
    uint8_t buf[512];
    size_t len;
    bool full;
} s_feed_buf_t;

static int
s_feed_write(void *data, const char *b, size_t n)
{
    s_feed_buf_t *f = data;
    if (f->len + n > sizeof f->buf) {
        f->full = true;
        return -1;
    }
    memcpy(f->buf + f->len, b, n);
    f->len += n;
    return 0;
}

static void
s_feed_str(msgpack_packer *pk, const char *k, const char *v)
{
    size_t kl = strlen(k), vl = strlen(v);
    msgpack_pack_str(pk, kl);
    msgpack_pack_str_body(pk, k, kl);
    msgpack_pack_str(pk, vl);
    msgpack_pack_str_body(pk, v, vl);
}

static void
s_feed_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    size_t kl = strlen(k);
    msgpack_pack_str(pk, kl);
    msgpack_pack_str_body(pk, k, kl);
    msgpack_pack_uint64(pk, v);
}

static void
s_feed_send(hf_aggregator_t *self, const s_feed_buf_t *f)
{
    if (f->full || zmq_send(self->status_sock, f->buf, f->len, ZMQ_DONTWAIT) < 0)
        self->feed_dropped++;
}

/* {type:"availability", engine, state, reason, since_ns} */
static void
s_feed_availability(hf_aggregator_t *self, const hf_session_t *s)
{
    if (!self->status_sock)
        return;
    s_feed_buf_t f = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, s_feed_write);
    msgpack_pack_map(&pk, 5);
    s_feed_str(&pk, "type", "availability");
    s_feed_str(&pk, "engine", s->engine);
    s_feed_str(&pk, "state", hf_avail_name(s->avail));
    s_feed_str(&pk, "reason", s->reason);
    s_feed_u64(&pk, "since_ns", s->since_ns);
    s_feed_send(self, &f);
}

/* {type:"run", engine, run, event, ts_ns}: a run event was committed */
static void
s_feed_run(hf_aggregator_t *self, const char *engine, const hf_record_t *r)
{
    if (!self->status_sock)
        return;
    s_feed_buf_t f = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, s_feed_write);
    msgpack_pack_map(&pk, 5);
    s_feed_str(&pk, "type", "run");
    s_feed_str(&pk, "engine", engine);
    s_feed_u64(&pk, "run", r->run);
    s_feed_str(&pk, "event", hf_event_name(r->u.event.type));
    s_feed_u64(&pk, "ts_ns", r->ts_ns);
    s_feed_send(self, &f);
}

/* {type:"backlog", engine, pending_control, pending_data, drain_per_s, eta_ms, dropped} */
static void
s_feed_backlog(hf_aggregator_t *self, const hf_session_t *s)
{
    if (!self->status_sock)
        return;
    s_feed_buf_t f = {.len = 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, s_feed_write);
    msgpack_pack_map(&pk, 7);
    s_feed_str(&pk, "type", "backlog");
    s_feed_str(&pk, "engine", s->engine);
    s_feed_u64(&pk, "pending_control", s->backlog.pending[HF_LANE_CONTROL]);
    s_feed_u64(&pk, "pending_data", s->backlog.pending[HF_LANE_DATA]);
    s_feed_u64(&pk, "drain_per_s", s->backlog.drain_per_s);
    s_feed_u64(&pk, "eta_ms", s->backlog.eta_ms);
    s_feed_u64(&pk, "dropped", s->backlog.dropped);
    s_feed_send(self, &f);
}

static void s_maybe_reconcile(hf_aggregator_t *self, hf_session_t *s);

/* {type:"restart", task, restarts, err, reason}: a supervised task restarted */
static void
s_feed_restart(hf_aggregator_t *self, const char *task, uint32_t restarts, hf_err_t err,
               const char *reason)
{
    if (!self->status_sock)
        return;
    s_feed_buf_t f = {.len = 0, .full = false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, s_feed_write);
    msgpack_pack_map(&pk, 5);
    s_feed_str(&pk, "type", "restart");
    s_feed_str(&pk, "task", task);
    s_feed_u64(&pk, "restarts", restarts);
    s_feed_str(&pk, "err", hf_errname(err));
    s_feed_str(&pk, "reason", reason);
    s_feed_send(self, &f);
}

/* ---- supervision (docs/supervision.md) -----------------------------------
 * The loop is one thread; its long-lived parts (each engine's session, the
 * control endpoint, the status feed) are supervised in it: a part that
 * fails is rebuilt from durable state (the store, the configuration), the
 * restart is logged and counted, and past the restart intensity (R in P)
 * the aggregator gives up: the run loop returns and the daemon exits with
 * HF_AGGREGATOR_EXIT_GAVE_UP for the service manager to restart it. */

static void s_feed_restart(hf_aggregator_t *self, const char *task, uint32_t restarts,
                           hf_err_t err, const char *reason);

/* A task failed: true to restart it, false when the aggregator gave up. */
static bool
s_task_failed(hf_aggregator_t *self, hf_restart_window_t *w, uint32_t *restarts,
              const char *task, hf_err_t err, const char *reason)
{
    hf_ms_t now = hf_clock_mono_ms();
    if (hf_restart_window_on_exit(w, HF_TASK_PERMANENT, err, now) == HF_RESTART_ESCALATE) {
        hf_log_error(S_LOG, "supervisor=aggregator gave up: task=%s failed more than %u times in "
                            "%u s, last failure err=%s reason=\"%s\"",
                     task, self->opts.max_restarts, self->opts.restart_period_ms / 1000,
                     hf_errname(err), reason);
        self->gave_up = true;
        return false;
    }
    (*restarts)++;
    uint32_t in_window = hf_restart_window_count(w, now);
    hf_log_warn(S_LOG, "restart task=%s cause=%s reason=\"%s\" restarts_in_window=%u/%u "
                       "period_s=%u total=%u",
                task, hf_errname(err), reason, in_window, self->opts.max_restarts,
                self->opts.restart_period_ms / 1000, *restarts);
    s_feed_restart(self, task, *restarts, err, reason);
    return true;
}

static void s_commands_lost(hf_aggregator_t *self, hf_session_t *s, const char *why);
static void s_store_full(hf_aggregator_t *self, hf_ms_t now, hf_err_t why);
static void s_store_room(hf_aggregator_t *self, hf_ms_t now);

/* An engine's session failed: rebuild it from the store (its cursor) and
 * resync the engine, which resends what the store lacks. Other engines are
 * not touched. */
static void
s_session_failed(hf_aggregator_t *self, hf_session_t *s, hf_err_t err, const char *reason)
{
    char task[HF_ENGINE_ID_MAX + 16];
    snprintf(task, sizeof task, "session:%s", s->engine);
    if (!s_task_failed(self, &s->window, &s->restarts, task, err, reason))
        return;
    s_commands_lost(self, s, "engine session restarted");
    uint64_t acked[HF_LANE_COUNT] = {0, 0};
    hf_err_t rc = s->epoch ? hf_store_cursor(self->store, s->engine, s->epoch, acked) : HF_EINVAL;
    s->backlog_at = 0;
    s->reconcile = false;
    if (rc != HF_OK || !s->active) {
        /* nothing to resume from: the engine says HELLO again after its
         * watchdog, and the session starts over from that */
        s->active = false;
        return;
    }
    memcpy(s->acked, acked, sizeof s->acked);
    hf_welcome_t w;
    hf_session_resync(s, &w);
    s_send_welcome(self, s->engine, &w);
}

/* Recreate a ROUTER or PUB socket on the endpoint it had (a '*' port was
 * resolved at the first bind, so clients find it where it was). */
static void *
s_rebind(hf_aggregator_t *self, void *old, int type, const char *ep, int64_t maxmsg)
{
    if (old)
        zmq_close(old);
    void *sock = zmq_socket(self->zctx, type);
    if (!sock)
        return NULL;
    int zero = 0, one = 1, hwm = 10000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    s_secure(self, sock, type == ZMQ_ROUTER ? HF_ZAP_DOMAIN_CONTROL : HF_ZAP_DOMAIN_FEED);
    if (type == ZMQ_ROUTER) {
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    } else {
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    }
    /* the old socket's port may take a moment to be released */
    for (int i = 0; i < 50; i++) {
        if (zmq_bind(sock, ep) == 0)
            return sock;
        hf_sleep_until_ns(hf_clock_mono_ns() + 20000000ull);
    }
    hf_log_error(S_LOG, "rebind %s: %s", ep, zmq_strerror(errno));
    zmq_close(sock);
    return NULL;
}

static void
s_control_failed(hf_aggregator_t *self, hf_err_t err, const char *reason)
{
    if (!s_task_failed(self, &self->control_task.window, &self->control_task.restarts, "control",
                       err, reason))
        return;
    self->control_sock = s_rebind(self, self->control_sock, ZMQ_ROUTER, self->control_ep,
                                  S_CONTROL_REQ_MAX);
    if (!self->control_sock)
        s_task_failed(self, &self->control_task.window, &self->control_task.restarts, "control",
                      HF_EIO, "rebind failed"), self->gave_up = true;
}

static void
s_feed_failed(hf_aggregator_t *self, hf_err_t err, const char *reason)
{
    if (!self->status_sock)
        return;
    if (!s_task_failed(self, &self->feed_task.window, &self->feed_task.restarts, "feed", err,
                       reason))
        return;
    self->status_sock = s_rebind(self, self->status_sock, ZMQ_PUB, self->status_ep, 0);
    if (!self->status_sock) {
        hf_log_error(S_LOG, "status feed lost: %s", self->status_ep);
        self->gave_up = true;
    }
}

#ifdef HF_TESTING
/* The fault hook (docs/supervision.md): make a task fail on demand. */
static hf_err_t
s_inject_fault(hf_aggregator_t *self, const char *task)
{
    if (!strcmp(task, "control")) {
        self->control_task.fault = true;
        return HF_OK;
    }
    if (!strcmp(task, "feed")) {
        self->feed_task.fault = true;
        return HF_OK;
    }
    if (!strncmp(task, "session:", 8)) {
        hf_session_t *s = s_session(self, task + 8, false);
        if (!s)
            return HF_ENOTFOUND;
        s->fault = true;
        return HF_OK;
    }
    return HF_ENOTFOUND;
}
#endif

/* ---- commands -------------------------------------------------------------- */

static void
s_control_send(hf_aggregator_t *self, const hf_cmdq_client_t *c, const uint8_t *buf, size_t len)
{
    if (zmq_send(self->control_sock, c->id, c->len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->control_sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(self->control_sock, buf, len, ZMQ_DONTWAIT) < 0)
        hf_log_debug(S_LOG, "control reply dropped (client gone): %s", zmq_strerror(errno));
}

static void
s_answer(hf_aggregator_t *self, const char *engine, const hf_cmdq_answer_t *a)
{
    if ((unsigned)a->result < HF_METRICS_ERR_MAX)
        self->m_commands[a->result]++;
    size_t len = 0;
    if (hf_control_command_reply(engine, a->id, a->verb, a->result, a->by_engine, a->text,
                                 self->reply, S_CONTROL_REPLY_MAX, &len) == HF_OK)
        s_control_send(self, &a->client, self->reply, len);
    if (a->result == HF_OK)
        hf_log_info(S_LOG, "engine=%s command id=%" PRIu64 " verb=%s ok: %s", engine, a->id,
                    hf_command_verb_name(a->verb), a->text);
    else
        hf_log_warn(S_LOG, "engine=%s command id=%" PRIu64 " verb=%s err=%s: %s", engine, a->id,
                    hf_command_verb_name(a->verb), hf_errname(a->result), a->text);
}

static void
s_answers(hf_aggregator_t *self, const char *engine, const hf_cmdq_answer_t *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        s_answer(self, engine, &a[i]);
}

static void
s_commands_lost(hf_aggregator_t *self, hf_session_t *s, const char *why)
{
    hf_cmdq_answer_t ans[HF_CMDQ_ANSWERS_MAX];
    uint32_t n = 0;
    hf_cmdq_lost(&s->cmds, why, ans, &n);
    s_answers(self, s->engine, ans, n);
}

/* Send the next command if none is in flight. */
static void
s_commands_pump(hf_aggregator_t *self, hf_session_t *s, hf_ms_t now)
{
    const hf_cmdq_item_t *it = hf_cmdq_next(&s->cmds, now);
    if (!it)
        return;
    size_t len = 0;
    hf_err_t rc = hf_frame_encode_command(&it->cmd, self->cmd_buf, S_COMMAND_FRAME_MAX, &len);
    if (rc == HF_OK &&
        (zmq_send(self->engines_sock, s->engine, strlen(s->engine), ZMQ_SNDMORE | ZMQ_DONTWAIT) <
             0 ||
         zmq_send(self->engines_sock, self->cmd_buf, len, ZMQ_DONTWAIT) < 0))
        rc = HF_EUNAVAIL;
    if (rc != HF_OK) {
        /* Not sent: the engine cannot have it. Answer it and the rest. */
        hf_cmdq_answer_t a;
        hf_cmdq_result(&s->cmds, it->cmd.id, rc,
                       rc == HF_EUNAVAIL ? "engine connection gone: not sent"
                                         : "command could not be encoded",
                       &a);
        s_answer(self, s->engine, &a);
        s_commands_lost(self, s, "engine connection gone");
        return;
    }
    hf_log_info(S_LOG, "engine=%s command id=%" PRIu64 " verb=%s sent", s->engine, it->cmd.id,
                hf_command_verb_name(it->cmd.verb));
}

/* The engine's COMMAND records, committed: answer whoever waits. */
static void
s_commands_answered(hf_aggregator_t *self, hf_session_t *s, const hf_record_t *r, hf_ms_t now)
{
    hf_cmdq_answer_t a;
    if (hf_cmdq_result(&s->cmds, r->u.command.id, (hf_err_t)r->u.command.result,
                       r->u.command.text, &a)) {
        s_answer(self, s->engine, &a);
        s_commands_pump(self, s, now);
    } else {
        hf_log_info(S_LOG, "engine=%s late answer to command id=%" PRIu64 " verb=%s result=%s: %s",
                    s->engine, r->u.command.id, hf_command_verb_name(r->u.command.verb),
                    hf_errname((hf_err_t)r->u.command.result), r->u.command.text);
    }
}

/* A command request from client c. */
static void
s_command_submit(hf_aggregator_t *self, const hf_cmdq_client_t *c, hf_control_command_t *cc,
                 hf_ms_t now)
{
    hf_session_t *s = s_session(self, cc->engine, false);
    hf_cmdq_answer_t ans[HF_CMDQ_ANSWERS_MAX];
    uint32_t n = 0;
    if (!s) {
        hf_store_engine_t e;
        bool known = hf_store_engine_get(self->store, cc->engine, &e) == HF_OK;
        hf_cmdq_answer_t a;
        memset(&a, 0, sizeof a);
        a.client = *c;
        a.verb = cc->cmd.verb;
        a.result = known ? HF_EUNAVAIL : HF_ENOTFOUND;
        snprintf(a.text, sizeof a.text, "%s",
                 known ? "engine is not available (not connected since the aggregator started)"
                       : "no such engine");
        s_answer(self, cc->engine, &a);
        return;
    }
    hf_err_t rc = hf_store_next_command_id(self->store, &cc->cmd.id);
    if (rc != HF_OK) {
        hf_cmdq_answer_t a;
        memset(&a, 0, sizeof a);
        a.client = *c;
        a.verb = cc->cmd.verb;
        a.result = rc;
        snprintf(a.text, sizeof a.text, "store refused a command id: %s", hf_strerror(rc));
        s_answer(self, cc->engine, &a);
        return;
    }
    self->commands++;
    bool available = s->active && s->avail == HF_AVAIL_AVAILABLE;
    hf_cmdq_submit(&s->cmds, &cc->cmd, c, available, now, ans, &n);
    if (n && ans[n - 1].id == cc->cmd.id && ans[n - 1].result == HF_EUNAVAIL) {
        char why[HF_TEXT_MAX + 1];
        snprintf(why, sizeof why, "engine is %.16s: %.90s", hf_avail_name((uint8_t)s->avail),
                 s->reason);
        snprintf(ans[n - 1].text, sizeof ans[n - 1].text, "%s", why);
    }
    s_answers(self, s->engine, ans, n);
    s_commands_pump(self, s, now);
}

static void
s_on_hello(hf_aggregator_t *self, const char *rid, const hf_hello_t *h, hf_ms_t now)
{
    if (strcmp(rid, h->engine) != 0) {
        s_refuse(self, rid, "HELLO names another engine than the connection's id", HF_EPROTO);
        return;
    }
    /* Versions first: a HELLO we cannot answer must not take a session
     * slot or a row in the store (a peer could lock engines out). */
    uint16_t hi = h->ver_max < HF_PROTO_VERSION ? h->ver_max : HF_PROTO_VERSION;
    uint16_t lo = h->ver_min > HF_PROTO_VERSION_MIN ? h->ver_min : HF_PROTO_VERSION_MIN;
    if (hi < lo) {
        self->frames_refused++;
        hf_log_warn(S_LOG, "engine=%s epoch=%016" PRIx64 " versions=%u..%u supported=%u..%u: "
                           "no common protocol version, refused",
                    h->engine, h->epoch, h->ver_min, h->ver_max, HF_PROTO_VERSION_MIN,
                    HF_PROTO_VERSION);
        return;
    }
    hf_session_t *s = s_session(self, h->engine, true);
    if (!s) {
        s_refuse(self, rid, "too many engines (max_engines)", HF_EFULL);
        return;
    }
    uint64_t acked[HF_LANE_COUNT] = {0, 0};
    uint64_t wall = hf_clock_wall_ns();
    hf_err_t rc = hf_store_note_hello(self->store, h->engine, h->epoch, h->run, h->run_state, wall);
    if (rc == HF_OK)
        rc = hf_store_cursor(self->store, h->engine, h->epoch, acked);
    if (rc == HF_EFULL || rc == HF_EIO) {
        /* no room to note the connection: no WELCOME; the engine says
         * HELLO again after its timeout, and is served once there is room */
        hf_log_warn(S_LOG, "engine=%s HELLO not answered: the store cannot be written (%s)",
                    h->engine, hf_errname(rc));
        s_store_full(self, hf_clock_mono_ms(), rc);
        return;
    }
    if (rc != HF_OK) {
        hf_log_error(S_LOG, "store refused HELLO engine=%s err=%s", h->engine, hf_errname(rc));
        s_session_failed(self, s, rc, "store refused HELLO");
        return;
    }
    if (self->store_full)
        s_store_room(self, hf_clock_mono_ms());
    for (uint8_t l = 0; l < HF_LANE_COUNT; l++) {
        /* what the engine had committed before this connection began: its
         * backlog, exported as observed offline */
        hf_err_t brc = hf_store_note_backlog(self->store, h->engine, h->epoch, l, acked[l],
                                             h->last_seq[l]);
        if (brc != HF_OK)
            hf_log_error(S_LOG, "engine=%s note backlog err=%s", h->engine, hf_errname(brc));
    }
    hf_avail_t before = s->avail;
    s_commands_lost(self, s, "engine reconnected");
    hf_welcome_t w;
    rc = hf_session_hello(s, h, acked, now, wall, &w);
    if (rc != HF_OK) {
        s_refuse(self, rid, "no common protocol version", rc);
        return;
    }
    s_send_welcome(self, rid, &w);
    s_feed_availability(self, s); /* available (again), or reconnected: new reason */
    if (before != HF_AVAIL_AVAILABLE) {
        rc = hf_store_outage_end(self->store, h->engine, wall);
        if (rc != HF_OK)
            hf_log_error(S_LOG, "engine=%s outage end err=%s", h->engine, hf_errname(rc));
    }
    s->reconcile = true;
    s->reconcile_at = h->last_seq[HF_LANE_CONTROL];
    s->reconcile_keep =
        h->run_state == HF_RUN_IDLE ? 0 : h->run; /* idle: no run of it is still open */
    s_maybe_reconcile(self, s);
    hf_log_info(S_LOG,
                "engine=%s %s epoch=%016" PRIx64 " version=%u resume=%" PRIu64 "/%" PRIu64
                " engine_has=%" PRIu64 "/%" PRIu64 " run=%" PRIu64 " state=%s",
                h->engine, before == HF_AVAIL_AVAILABLE ? "reconnected" : "available", h->epoch,
                w.version, acked[0], acked[1], h->last_seq[0], h->last_seq[1], h->run,
                hf_run_state_name(h->run_state));
}

/* Reconciliation: once the backlog the engine had at HELLO is committed
 * (its records tell how runs really ended), any run still open that the
 * engine is no longer in ended while it was away without a word: it is
 * closed as interrupted, cause "engine restarted". */
static void
s_maybe_reconcile(hf_aggregator_t *self, hf_session_t *s)
{
    if (!s->reconcile || s->acked[HF_LANE_CONTROL] < s->reconcile_at)
        return;
    s->reconcile = false;
    if (s->acked[HF_LANE_CONTROL] > s->reconcile_at) {
        /* records past the backlog were committed without the store's
         * reconciliation (it runs inside the commit that crosses the
         * backlog's end): closing now could end a run the engine started
         * since. Leave it; a later run_started closes what is stale. */
        hf_log_warn(S_LOG, "engine=%s reconcile skipped: control acked %" PRIu64 " past the "
                    "backlog's end %" PRIu64, s->engine, s->acked[HF_LANE_CONTROL],
                    s->reconcile_at);
        return;
    }
    size_t ended = 0;
    hf_err_t rc = hf_store_close_open_runs(self->store, s->engine, s->reconcile_keep,
                                           "engine restarted", &ended);
    if (rc != HF_OK)
        hf_log_error(S_LOG, "engine=%s reconcile runs err=%s", s->engine, hf_errname(rc));
    else if (ended)
        hf_log_warn(S_LOG, "engine=%s runs_interrupted=%zu cause=\"engine restarted\"",
                    s->engine, ended);
    /* The backlog is in: what the engine said at HELLO about its run must
     * now agree with the records. A disagreement is logged and recorded
     * (the run takes the engine's word, with the cause saying why). */
    if (s->run == 0 || s->acked[HF_LANE_CONTROL] != s->reconcile_at)
        return; /* newer records than the HELLO's already speak for the run */
    hf_store_run_t row;
    rc = hf_store_run_get(self->store, s->engine, s->run, &row);
    if (rc != HF_OK && rc != HF_ENOTFOUND)
        return;
    if (rc == HF_OK && row.state == s->run_state)
        return;
    char cause[48];
    snprintf(cause, sizeof cause, "HELLO said %.10s; records said %.10s",
             hf_run_state_name(s->run_state),
             rc == HF_OK ? hf_run_state_name(row.state) : "nothing");
    hf_log_warn(S_LOG, "engine=%s run=%" PRIu64 " mismatch after the backlog: engine says %s, "
                       "records say %s: recorded",
                s->engine, s->run, hf_run_state_name(s->run_state),
                rc == HF_OK ? hf_run_state_name(row.state) : "nothing (no record of the run)");
    bool terminal = rc == HF_OK && row.state != HF_RUN_RUNNING && row.state != HF_RUN_PAUSED &&
                    row.state != HF_RUN_IDLE;
    /* a run the records ended stays ended; otherwise the engine's word is
     * the newer one */
    rc = hf_store_run_note(self->store, s->engine, s->run, terminal ? row.state : s->run_state,
                           cause);
    if (rc != HF_OK)
        hf_log_error(S_LOG, "engine=%s run note err=%s", s->engine, hf_errname(rc));
}

/* ---- a full store ------------------------------------------------------- */

static void s_feed_alarm(hf_aggregator_t *self, const hf_upkeep_alarm_t *a);

static void
s_store_resync_held(hf_aggregator_t *self)
{
    for (uint32_t i = 0; i < self->nsessions; i++) {
        hf_session_t *s = &self->sessions[i];
        if (!s->held)
            continue;
        s->held = false;
        if (!s->active)
            continue; /* it says HELLO again */
        hf_welcome_t w;
        hf_session_resync(s, &w);
        s_send_welcome(self, s->engine, &w);
    }
}

/* A write failed for lack of space (or the disk failed it). Ingestion
 * pauses: nothing is acked, so every engine keeps its records in its
 * spool. Probed once a second by resyncing the engines held back
 * (s_store_tick). The alarm is raised at the first failure and cleared
 * only after S_STORE_CLEAR_MS without one: a disk with a few pages of room
 * fills again at once, and the alarm must not flap with it. */
static void
s_store_full(hf_aggregator_t *self, hf_ms_t now, hf_err_t why)
{
    self->store_probe = false;
    self->store_retry_at = now + S_STORE_PROBE_MS;
    if (!self->store_full) {
        self->store_full = true;
        self->store_full_at = now;
    }
    if (self->store_alarm)
        return;
    self->store_alarm = true;
    self->store_alarm_at = now;
    self->store_paused_ms = 0;
    hf_upkeep_alarm_t a = {.code = HF_ALARM_CODE_STORE_FULL, .raised = true};
    if (why == HF_EFULL)
        snprintf(a.text, sizeof a.text,
                 "store full (disk or map): ingestion paused, engines keep their backlog; "
                 "make room to resume");
    else
        snprintf(a.text, sizeof a.text,
                 "store cannot be written (%s): ingestion paused, engines keep their backlog",
                 hf_errname(why));
    hf_log_error(S_LOG, "alarm raised code=%u: %s", a.code, a.text);
    s_feed_alarm(self, &a);
}

/* A write succeeded again: resume, and resync every engine held back. */
static void
s_store_room(hf_aggregator_t *self, hf_ms_t now)
{
    self->store_full = false;
    self->store_probe = false;
    self->store_room_at = now;
    self->store_paused_ms += now - self->store_full_at;
    hf_log_info(S_LOG, "store writable again after %" PRIu64 " ms: ingestion resumes (%" PRIu64
                " batches were not stored and are resent)",
                (uint64_t)(now - self->store_full_at), self->store_full_drops);
    self->store_full_drops = 0;
    s_store_resync_held(self);
}

/* While full: once a second, let the next commit try the store, and have
 * the engines held back resend (which also keeps their unacked-batch
 * timers from expiring, so they stay connected and available). Once
 * writable for S_STORE_CLEAR_MS: clear the alarm. */
static void
s_store_tick(hf_aggregator_t *self, hf_ms_t now)
{
    if (self->store_alarm && !self->store_full &&
        now - self->store_room_at >= S_STORE_CLEAR_MS) {
        self->store_alarm = false;
        hf_upkeep_alarm_t a = {.code = HF_ALARM_CODE_STORE_FULL, .raised = false};
        snprintf(a.text, sizeof a.text,
                 "store writable for %u s: ingestion paused %" PRIu64 " ms in all since the "
                 "alarm", S_STORE_CLEAR_MS / 1000, (uint64_t)self->store_paused_ms);
        hf_log_info(S_LOG, "alarm cleared code=%u: %s", a.code, a.text);
        s_feed_alarm(self, &a);
    }
    if (!self->store_full || now < self->store_retry_at)
        return;
    self->store_retry_at = now + S_STORE_PROBE_MS;
    self->store_probe = true;
    s_store_resync_held(self);
}

/* Commit the pending group in ONE store transaction, then ACK. The group
 * is every BATCH drained in one pass over the socket, of any engines:
 * with many engines interleaving, one fsync covers them all (a commit per
 * engine would cap the aggregator at a few hundred fsyncs a second,
 * docs/benchmarks.md). A segment refused for a gap is resynced and does
 * not hold back the others. */
static void
s_flush_group(hf_aggregator_t *self)
{
    uint32_t nsegs = self->nsegs;
    self->nsegs = 0;
    self->group_n = 0;
    if (nsegs == 0)
        return;
    if (self->store_full && !self->store_probe) {
        /* the store has no room: the batches are not stored and not acked;
         * their engines keep them and resend after the next probe */
        for (uint32_t i = 0; i < nsegs; i++)
            self->segs[i].s->held = true;
        self->store_full_drops += nsegs;
        return;
    }
    uint64_t before[S_SEGS_MAX][1];
    for (uint32_t i = 0; i < nsegs; i++) {
        const s_seg_t *g = &self->segs[i];
        hf_store_batch_t *b = &self->batches[i];
        b->engine = g->s->engine;
        b->epoch = g->s->epoch;
        b->lane = g->lane;
        b->recs = self->recs + g->off;
        b->n = g->n;
        /* a HELLO's reconciliation falls inside this batch: the store does
         * it in the same transaction, exactly at the backlog's end */
        b->close_after = g->lane == HF_LANE_CONTROL && g->s->reconcile ? g->s->reconcile_at : 0;
        b->close_keep = g->s->reconcile_keep;
        before[i][0] = g->s->acked[g->lane]; /* events above this are new */
    }
    hf_err_t rc = hf_store_commit_many(self->store, self->batches, nsegs, hf_clock_wall_ns());
    self->commit_end_ns = hf_clock_mono_ns();
    if (rc == HF_EFULL || rc == HF_EIO) {
        /* Out of space (disk full, or the map at its bound) or a failing
         * disk is not the session's fault and restarting it would not
         * help: pause ingestion, keep serving, probe again in a second. */
        for (uint32_t i = 0; i < nsegs; i++)
            self->segs[i].s->held = true;
        self->store_full_drops += nsegs;
        s_store_full(self, hf_clock_mono_ms(), rc);
        return;
    }
    if (rc == HF_OK && self->store_full)
        s_store_room(self, hf_clock_mono_ms());
    if (rc != HF_OK) {
        hf_log_error(S_LOG, "commit of %u batches failed err=%s: not acked (engines resend)",
                     nsegs, hf_errname(rc));
        /* each session involved restarts from what the store holds */
        for (uint32_t i = 0; i < nsegs && !self->gave_up; i++) {
            bool seen = false;
            for (uint32_t j = 0; j < i && !seen; j++)
                seen = self->segs[j].s == self->segs[i].s;
            if (!seen)
                s_session_failed(self, self->segs[i].s, rc, "store commit failed");
        }
        return;
    }
    hf_ms_t now = hf_clock_mono_ms();
    for (uint32_t i = 0; i < nsegs; i++) {
        const s_seg_t *g = &self->segs[i];
        const hf_store_batch_t *b = &self->batches[i];
        hf_session_t *s = g->s;
        uint8_t lane = g->lane;
        if (b->rc == HF_EPROTO) {
            /* one WELCOME per engine and lane is enough: later segments of
             * it in this group fail the same way */
            bool again = false;
            for (uint32_t j = 0; j < i && !again; j++)
                again = self->segs[j].s == s && self->segs[j].lane == lane &&
                        self->batches[j].rc == HF_EPROTO;
            if (again)
                continue;
            hf_welcome_t w;
            hf_session_resync(s, &w);
            hf_log_warn(S_LOG,
                        "engine=%s lane=%s batch from seq=%" PRIu64 " leaves a gap after %" PRIu64
                        ": resync",
                        s->engine, hf_lane_name(lane), b->recs[0].seq, s->acked[lane]);
            s_send_welcome(self, s->engine, &w);
            continue;
        }
        if (b->rc != HF_OK)
            continue;
        if (b->closed && s->reconcile) {
            s->reconcile = false; /* done by the store, in this commit */
            if (b->ended)
                hf_log_warn(S_LOG, "engine=%s runs_interrupted=%zu cause=\"engine restarted\"",
                            s->engine, b->ended);
        }
        if (b->dups)
            hf_log_info(S_LOG, "engine=%s lane=%s duplicates_skipped=%zu", s->engine,
                        hf_lane_name(lane), b->dups);
        hf_ack_t a;
        hf_session_committed(s, lane, b->acked, &a);
        uint8_t buf[64];
        size_t len = 0;
        if (hf_frame_encode_ack(&a, buf, sizeof buf, &len) == HF_OK)
            s_reply(self, s->engine, buf, len);
        s->m_acks++;
        s->m_records[lane] += b->n - b->dups;
        if (lane == HF_LANE_CONTROL) {
            for (uint32_t k = 0; k < b->n && self->status_sock; k++)
                if (b->recs[k].kind == HF_KIND_EVENT && b->recs[k].seq > before[i][0] &&
                    b->recs[k].u.event.type != HF_EV_STEP &&
                    b->recs[k].u.event.type != HF_EV_CHANNELS)
                    s_feed_run(self, s->engine, &b->recs[k]);
            for (uint32_t k = 0; k < b->n; k++)
                if (b->recs[k].kind == HF_KIND_COMMAND && b->recs[k].seq > before[i][0])
                    s_commands_answered(self, s, &b->recs[k], now);
            s_maybe_reconcile(self, s);
        }
    }
}

/* The socket is empty for now: commit the group unless it may wait for
 * more (see S_COMMIT_GAP_NS). Returns the ms the loop may sleep before the
 * group is due (-1: nothing pending, so no limit). */
static long
s_flush_due(hf_aggregator_t *self)
{
    if (self->nsegs == 0)
        return -1;
    uint64_t now = hf_clock_mono_ns();
    uint64_t since = now - self->commit_end_ns;
    if (self->group_n >= S_GROUP_EARLY || since >= S_COMMIT_GAP_NS || self->store_full) {
        s_flush_group(self);
        return -1;
    }
    return (long)((S_COMMIT_GAP_NS - since + 999999) / 1000000);
}

/* Does the pending group hold records of s? */
static bool
s_in_group(const hf_aggregator_t *self, const hf_session_t *s)
{
    for (uint32_t i = 0; i < self->nsegs; i++)
        if (self->segs[i].s == s)
            return true;
    return false;
}

static void
s_on_engine_frame(hf_aggregator_t *self, const char *rid, const uint8_t *buf, size_t len,
                  hf_ms_t now)
{
    /* A BATCH decodes straight behind the pending group; if it turns out
     * to belong to another engine or lane, the group is committed first
     * and the records moved to the front. */
    if (self->group_n + HF_PROTO_MAX_BATCH > S_GROUP_MAX || self->nsegs == S_SEGS_MAX)
        s_flush_group(self);
    hf_frame_t f;
    hf_record_t *at = self->recs + self->group_n;
    hf_err_t rc = hf_frame_decode(buf, len, &f, at, HF_PROTO_MAX_BATCH);
    if (rc != HF_OK) {
        s_refuse(self, rid, "malformed frame", rc);
        return;
    }
    if (f.type == HF_FRAME_HELLO || f.type == HF_FRAME_BYE) {
        /* keep order: a HELLO reads the store's cursor, a BYE ends the
         * session: both must see every record that came before them */
        hf_session_t *gs = s_session(self, rid, false);
        if (gs && s_in_group(self, gs))
            s_flush_group(self);
    }
    if (f.type == HF_FRAME_HELLO) {
        s_on_hello(self, rid, &f.u.hello, now);
        return;
    }
    hf_session_t *s = s_session(self, rid, false);
    if (!s || !s->active) {
        /* No HELLO on this connection (e.g. we restarted): stay silent so
         * the engine's watchdog reconnects and says HELLO. */
        if (!s || s->avail != HF_AVAIL_UNAVAILABLE || self->quiet_before_hello++ % 1000 == 0)
            hf_log_info(S_LOG, "frame %s from engine=%s before HELLO on this connection: "
                               "ignored (it reconnects and says HELLO)",
                        hf_frame_name(f.type), rid);
        return;
    }
    hf_session_seen(s, now);
    if (s->fault) { /* HF_TESTING fault hook; the frame is resent after the resync */
        s->fault = false;
        s_session_failed(self, s, HF_EIO, "injected fault");
        return;
    }
    switch (f.type) {
    case HF_FRAME_BATCH: {
        uint32_t n = f.u.batch.count;
        if (n == 0)
            break;
        s->m_batches++;
        s->m_bytes += len;
        s_seg_t *last = self->nsegs ? &self->segs[self->nsegs - 1] : NULL;
        if (last && last->s == s && last->lane == f.u.batch.lane &&
            last->off + last->n == self->group_n) {
            last->n += n; /* the same engine and lane again: one segment */
        } else {
            self->segs[self->nsegs++] =
                (s_seg_t){.s = s, .lane = f.u.batch.lane, .off = self->group_n, .n = n};
        }
        self->group_n += n;
        break;
    }
    case HF_FRAME_PING: {
        uint8_t out[64];
        size_t n = 0;
        if (hf_frame_encode_pong(&f.u.ping, out, sizeof out, &n) == HF_OK)
            s_reply(self, rid, out, n);
        break;
    }
    case HF_FRAME_PONG: break;
    case HF_FRAME_STATUS:
        hf_session_status(s, &f.u.status, now);
        s_feed_backlog(self, s);
        break;
    case HF_FRAME_BYE: {
        uint64_t wall = hf_clock_wall_ns();
        hf_session_bye(s, wall);
        s_commands_lost(self, s, "engine shut down");
        s_feed_availability(self, s);
        hf_log_info(S_LOG, "engine=%s unavailable reason=\"clean shutdown\"", s->engine);
        hf_err_t orc = hf_store_outage_begin(self->store, s->engine, wall, s->reason);
        if (orc != HF_OK)
            hf_log_error(S_LOG, "engine=%s outage begin err=%s", s->engine, hf_errname(orc));
        break;
    }
    default: s_refuse(self, rid, "frame type not allowed from an engine", HF_EPROTO); break;
    }
}

/* The connection's key (established by the CURVE handshake and ZAP) must
 * still be trusted and be bound to the engine id the message claims. */
static bool
s_engine_allowed(hf_aggregator_t *self, const char *rid, zmq_msg_t *body, hf_ms_t now)
{
    const char *user = zmq_msg_gets(body, "User-Id");
    const char *key = zmq_msg_gets(body, "Key");
    const char *peer = zmq_msg_gets(body, "Peer-Address");
    char who[200];
    if (!user || strcmp(user, rid) != 0) {
        snprintf(who, sizeof who, "claimed=%s key_engine=%s", rid, user ? user : "?");
        hf_zap_refused(self->zap, HF_REFUSE_NOT_BOUND, peer, who, NULL, now);
        return false;
    }
    if (!hf_zap_engine_trusted(self->zap, key, rid)) {
        snprintf(who, sizeof who, "engine=%s key=%s", rid, key ? key : "?");
        hf_zap_refused(self->zap, HF_REFUSE_UNKNOWN_KEY, peer, who, "(key removed)", now);
        return false;
    }
    return true;
}

static void
s_drain_engines(hf_aggregator_t *self)
{
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, self->engines_sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            s_flush_due(self);
            return;
        }
        char rid[HF_ENGINE_ID_MAX + 1] = "";
        size_t idlen = zmq_msg_size(&id);
        bool id_ok = idlen > 0 && idlen <= HF_ENGINE_ID_MAX;
        if (id_ok) {
            memcpy(rid, zmq_msg_data(&id), idlen);
            rid[idlen] = 0;
            id_ok = hf_engine_id_valid(rid) && strlen(rid) == idlen;
        }
        bool more = zmq_msg_more(&id);
        zmq_msg_close(&id);
        int parts = 0;
        zmq_msg_init(&body);
        bool have = false;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->engines_sock, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            parts++;
            if (parts == 1) {
                zmq_msg_move(&body, &m);
                have = true;
            }
            zmq_msg_close(&m);
        }
        hf_ms_t now = hf_clock_mono_ms();
        if (!id_ok) {
            s_refuse(self, "(invalid routing id)", "peer without a valid engine id", HF_EPROTO);
        } else if (!have || parts != 1) {
            s_refuse(self, rid, "message must be exactly one frame", HF_EPROTO);
        } else if (self->zap && !s_engine_allowed(self, rid, &body, now)) {
            self->frames_refused++; /* logged and counted by the ZAP handler */
        } else {
            s_on_engine_frame(self, rid, zmq_msg_data(&body), zmq_msg_size(&body), now);
        }
        zmq_msg_close(&body);
    }
    s_flush_due(self);
}

/* ---- control ----------------------------------------------------------- */

static size_t
s_fill_live(hf_aggregator_t *self)
{
    hf_ms_t now = hf_clock_mono_ms();
    for (uint32_t i = 0; i < self->nsessions; i++) {
        const hf_session_t *s = &self->sessions[i];
        hf_live_t *l = &self->live[i];
        memset(l, 0, sizeof *l);
        snprintf(l->engine, sizeof l->engine, "%s", s->engine);
        l->availability = (uint8_t)s->avail;
        l->since_ns = s->since_ns;
        snprintf(l->reason, sizeof l->reason, "%s", s->reason);
        l->epoch = s->epoch;
        l->restarts = s->restarts;
        l->connected_ms = s->avail == HF_AVAIL_AVAILABLE ? now - s->connected_at : 0;
        if (s->backlog_at && s->avail == HF_AVAIL_AVAILABLE) {
            l->has_backlog = 1;
            l->backlog = s->backlog;
            l->backlog_age_ms = now - s->backlog_at;
        }
    }
    return self->nsessions;
}

static void
s_security_figures(const hf_aggregator_t *self, hf_control_security_t *out)
{
    memset(out, 0, sizeof *out);
    if (!self->zap)
        return;
    hf_zap_stats_t st;
    hf_zap_stats(self->zap, &st);
    out->secure = true;
    out->engine_keys = st.engine_keys;
    out->operator_keys = st.operator_keys;
    out->accepted = st.accepted;
    out->refused_unknown_key = st.refused[HF_REFUSE_UNKNOWN_KEY];
    out->refused_wrong_role = st.refused[HF_REFUSE_WRONG_ROLE];
    out->refused_not_bound = st.refused[HF_REFUSE_NOT_BOUND];
    out->refused_handshake = st.refused[HF_REFUSE_HANDSHAKE];
}

#define S_DENIED "permission denied: this key's role may not do that (docs/security.md)"

/* The request's sender (its key's role as the directories say now) may
 * query (operator, reader) or command (operator); else count, log, false. */
static bool
s_control_permitted(hf_aggregator_t *self, zmq_msg_t *req, bool command)
{
    const char *key = zmq_msg_gets(req, "Key");
    const char *peer = zmq_msg_gets(req, "Peer-Address");
    const char *user = zmq_msg_gets(req, "User-Id");
    hf_role_t role = hf_zap_operator_role(self->zap, key);
    char who[200];
    snprintf(who, sizeof who, "operator=%s role=%s", user ? user : "?", hf_role_name(role));
    hf_ms_t now = hf_clock_mono_ms();
    if (role == HF_ROLE_NONE) {
        hf_zap_refused(self->zap, HF_REFUSE_UNKNOWN_KEY, peer, who, "(key removed)", now);
        return false;
    }
    if (command && role != HF_ROLE_OPERATOR) {
        hf_zap_refused(self->zap, HF_REFUSE_WRONG_ROLE, peer, who, "(a command)", now);
        return false;
    }
    return true;
}

static void
s_drain_control(hf_aggregator_t *self)
{
    for (int i = 0; i < 64; i++) {
        zmq_msg_t parts[3];
        int n = 0;
        bool more = true, bad = false;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->control_sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                int e = errno;
                zmq_msg_close(&m);
                if (n == 0 && e != EAGAIN && e != EINTR) {
                    for (int k = 0; k < n; k++)
                        zmq_msg_close(&parts[k]);
                    s_control_failed(self, HF_EIO, zmq_strerror(e));
                    return;
                }
                if (n == 0)
                    return;
                bad = true;
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 3) {
                zmq_msg_init(&parts[n]);
                zmq_msg_move(&parts[n], &m);
                n++;
            } else {
                bad = true;
            }
            zmq_msg_close(&m);
        }
        /* A REQ client sends [id, empty, request]. */
        hf_control_command_t cc;
        char msg[160];
        hf_err_t crc = HF_ENOTFOUND;
        hf_cmdq_client_t client = {.len = 0};
        if (!bad && n == 3 && zmq_msg_size(&parts[1]) == 0 &&
            zmq_msg_size(&parts[0]) <= HF_CMDQ_CLIENT_MAX) {
            client.len = (uint8_t)zmq_msg_size(&parts[0]);
            memcpy(client.id, zmq_msg_data(&parts[0]), client.len);
            crc = hf_control_parse_command(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), &cc,
                                           msg, sizeof msg);
        }
        bool wants_command = crc != HF_ENOTFOUND;
#ifdef HF_TESTING
        char task[HF_ENGINE_ID_MAX + 16];
        bool is_fault = crc == HF_ENOTFOUND && client.len &&
                        hf_control_parse_fault(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                                               task, sizeof task) == HF_OK;
        wants_command = wants_command || is_fault;
#endif
        if (self->zap && client.len && !s_control_permitted(self, &parts[2], wants_command)) {
            size_t outlen = 0;
            if (hf_control_command_reply(crc == HF_ENOTFOUND ? NULL : cc.engine, 0,
                                         crc == HF_ENOTFOUND ? HF_CMD_ABORT : cc.cmd.verb,
                                         HF_EPROTO, false, S_DENIED, self->reply,
                                         S_CONTROL_REPLY_MAX, &outlen) == HF_OK)
                s_control_send(self, &client, self->reply, outlen);
            crc = HF_EEXIST_HANDLED;
        }
#ifdef HF_TESTING
        if (crc != HF_EEXIST_HANDLED && is_fault) {
            hf_err_t frc = s_inject_fault(self, task);
            hf_log_warn(S_LOG, "fault hook: task=%s err=%s", task, hf_errname(frc));
            size_t outlen = 0;
            if (hf_control_command_reply(NULL, 0, HF_CMD_ABORT, frc, false,
                                         frc == HF_OK ? "fault injected" : "no such task",
                                         self->reply, S_CONTROL_REPLY_MAX, &outlen) == HF_OK)
                s_control_send(self, &client, self->reply, outlen);
            crc = HF_EEXIST_HANDLED;
        }
#endif
        if (crc == HF_EEXIST_HANDLED) {
            /* answered above */
        } else if (crc == HF_OK) {
            s_command_submit(self, &client, &cc, hf_clock_mono_ms());
        } else if (crc != HF_ENOTFOUND) {
            size_t outlen = 0;
            if (hf_control_command_reply(cc.engine, 0, cc.cmd.verb, crc, false, msg, self->reply,
                                         S_CONTROL_REPLY_MAX, &outlen) == HF_OK)
                s_control_send(self, &client, self->reply, outlen);
        } else if (!bad && n == 3 && zmq_msg_size(&parts[1]) == 0) {
            size_t nlive = s_fill_live(self);
            size_t outlen = 0;
            hf_control_security_t sec;
            s_security_figures(self, &sec);
            hf_control_storage_t storage;
            hf_upkeep_storage(self->upkeep, &storage);
            storage.store_full = self->store_alarm;
            hf_err_t rc = hf_control_handle_ex(self->store, self->live, nlive, &sec, &storage,
                                               zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                                               self->reply, S_CONTROL_REPLY_MAX, &outlen);
            if (rc == HF_OK) {
                zmq_send(self->control_sock, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]),
                         ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(self->control_sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(self->control_sock, self->reply, outlen, ZMQ_DONTWAIT);
            } else {
                hf_log_warn(S_LOG, "control request failed err=%s", hf_errname(rc));
            }
        } else {
            hf_log_warn(S_LOG, "control: malformed request envelope (parts=%d): ignored", n);
        }
        for (int k = 0; k < n; k++)
            zmq_msg_close(&parts[k]);
    }
}

/* ---- loop ----------------------------------------------------------------- */

/* {type:"alarm", source:"aggregator", code, raised, text} */
static void
s_feed_alarm(hf_aggregator_t *self, const hf_upkeep_alarm_t *a)
{
    if (!self->status_sock)
        return;
    s_feed_buf_t f = {.len = 0, .full = false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, s_feed_write);
    msgpack_pack_map(&pk, 5);
    s_feed_str(&pk, "type", "alarm");
    s_feed_str(&pk, "source", "aggregator");
    s_feed_u64(&pk, "code", a->code);
    s_feed_str(&pk, "raised", a->raised ? "raised" : "cleared");
    s_feed_str(&pk, "text", a->text);
    s_feed_send(self, &f);
}

/* Housekeeping (hf_upkeep): storage alarms, retention, metrics. */
static void
s_upkeep(hf_aggregator_t *self, hf_ms_t now, uint64_t wall)
{
    hf_upkeep_alarm_t al[2];
    uint32_t nal = 0;
    hf_upkeep_tick(self->upkeep, self->store, now, wall, al, &nal);
    for (uint32_t i = 0; i < nal; i++) {
        if (al[i].raised)
            hf_log_warn(S_LOG, "alarm raised code=%u: %s", al[i].code, al[i].text);
        else
            hf_log_info(S_LOG, "alarm cleared code=%u: %s", al[i].code, al[i].text);
        s_feed_alarm(self, &al[i]);
    }
    if (!hf_upkeep_metrics_due(self->upkeep, now) || !self->m_engines)
        return;
    hf_metrics_snapshot_t snap;
    memset(&snap, 0, sizeof snap);
    for (uint32_t i = 0; i < self->nsessions; i++) {
        const hf_session_t *s = &self->sessions[i];
        hf_metrics_engine_t *e = &self->m_engines[i];
        memset(e, 0, sizeof *e);
        snprintf(e->engine, sizeof e->engine, "%s", s->engine);
        e->available = s->avail == HF_AVAIL_AVAILABLE;
        memcpy(e->records, s->m_records, sizeof e->records);
        e->bytes = s->m_bytes;
        e->batches = s->m_batches;
        e->acks = s->m_acks;
        e->has_backlog = s->backlog_at != 0;
        e->backlog[0] = s->backlog.pending[0];
        e->backlog[1] = s->backlog.pending[1];
        e->restarts = s->restarts;
    }
    snap.engines = self->m_engines;
    snap.nengines = self->nsessions;
    memcpy(snap.commands, self->m_commands, sizeof snap.commands);
    snap.frames_refused = self->frames_refused;
    hf_control_security_t sec;
    s_security_figures(self, &sec);
    snap.connections_refused = sec.refused_unknown_key + sec.refused_wrong_role +
                               sec.refused_not_bound + sec.refused_handshake;
    snap.control_restarts = self->control_task.restarts;
    snap.feed_restarts = self->feed_task.restarts;
    snap.store_used_bytes = hf_store_used_bytes(self->store);
    snap.store_full = self->store_alarm;
    hf_upkeep_metrics(self->upkeep, &snap, now);
}

hf_err_t
hf_aggregator_run(hf_aggregator_t *self, volatile sig_atomic_t *stop)
{
    assert(self && stop);
    while (!*stop && !self->gave_up) {
        if (self->control_task.fault) {
            self->control_task.fault = false;
            s_control_failed(self, HF_EIO, "injected fault");
        }
        if (self->feed_task.fault) {
            self->feed_task.fault = false;
            s_feed_failed(self, HF_EIO, "injected fault");
        }
        if (self->gave_up || !self->control_sock)
            break;
        /* The ZAP socket comes first: a handshake waits on this loop. */
        zmq_pollitem_t items[4] = {
            {.socket = self->engines_sock, .events = ZMQ_POLLIN},
            {.socket = self->control_sock, .events = ZMQ_POLLIN},
            {.socket = self->zap ? hf_zap_socket(self->zap) : NULL, .events = ZMQ_POLLIN},
            {.socket = self->mon, .events = ZMQ_POLLIN},
        };
        int nitems = self->mon ? 4 : self->zap ? 3 : 2;
        long wait = s_flush_due(self); /* a group waiting out the gap */
        int rc = zmq_poll(items, nitems, wait < 0 || wait > 100 ? 100 : wait);
        if (rc < 0 && errno != EINTR) {
            hf_log_error(S_LOG, "zmq_poll: %s", zmq_strerror(errno));
            return HF_EIO;
        }
        if (self->zap) {
            hf_ms_t t = hf_clock_mono_ms();
            if (items[2].revents & ZMQ_POLLIN)
                hf_zap_handle(self->zap, t);
            if (nitems > 3 && (items[3].revents & ZMQ_POLLIN))
                s_on_monitor(self, t);
            hf_zap_tick(self->zap, t);
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_drain_engines(self);
        if (items[1].revents & ZMQ_POLLIN)
            s_drain_control(self);
        hf_ms_t now = hf_clock_mono_ms();
        uint64_t wall = hf_clock_wall_ns();
        s_upkeep(self, now, wall);
        s_store_tick(self, now);
        for (uint32_t i = 0; i < self->nsessions; i++) {
            hf_session_t *s = &self->sessions[i];
            hf_cmdq_answer_t ans[HF_CMDQ_ANSWERS_MAX];
            uint32_t nans = 0;
            hf_cmdq_tick(&s->cmds, now, self->opts.command_timeout_ms, ans, &nans);
            if (nans) {
                s_answers(self, s->engine, ans, nans);
                s_commands_pump(self, s, now);
            }
            if (hf_session_tick(s, now, wall, self->opts.watchdog_ms)) {
                hf_log_warn(S_LOG, "engine=%s unavailable reason=\"%s\"", s->engine, s->reason);
                s_commands_lost(self, s, "link to the engine lost");
                s_feed_availability(self, s);
                hf_err_t orc = hf_store_outage_begin(self->store, s->engine, wall, s->reason);
                if (orc != HF_OK)
                    hf_log_error(S_LOG, "engine=%s outage begin err=%s", s->engine,
                                 hf_errname(orc));
            }
        }
    }
    if (!self->gave_up)
        s_flush_group(self); /* a group waiting out the gap: acked if it still can be */
    hf_log_info(S_LOG, "stopping: engines=%u frames_refused=%" PRIu64, self->nsessions,
                self->frames_refused);
    return self->gave_up ? HF_ESTATE : HF_OK;
}
