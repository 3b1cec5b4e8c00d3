/* hf_link.c - the engine side of the link protocol (pure state machine).
 *
 * See hf_link.h for the transition diagram and guarantees. Design notes:
 * - Actions other than SEND_BATCH go through a small bounded FIFO; a full
 *   FIFO is a programming error in the shell (it must drain actions after
 *   every input), so it fails the link rather than dropping silently.
 * - SEND_BATCH is computed on demand from the cursors, so a window of many
 *   batches costs no memory beyond the in-flight ring of last seqs.
 * - The control lane is offered before the data lane on every call, which
 *   is what keeps run outcomes and alarms from waiting behind samples.
 * - Pacing: a batch is at most `batch` records, per lane, adapted to the
 *   link. Every ACK carries a round trip (sent -> acked), which includes
 *   the time the batch queued behind the others in flight: a quick one
 *   (<= peer_timeout / 8) doubles `batch` up to batch_max, a slow one
 *   (> peer_timeout / 3) halves it. On a fast link the cap reaches
 *   batch_max within a few ACKs; on a slow one (64 kB/s) it settles where
 *   a window of batches crosses the link in well under the peer timeout.
 *   Without it, one batch of batch_max records (~600 kB) takes longer than
 *   the peer timeout to cross such a link: both sides' watchdogs fire
 *   before any frame completes, and the link reconnects forever without
 *   progress (tests/chaos/net.sh, case netem).
 * - "Batch not acknowledged in time" counts from the later of the oldest
 *   batch's send and the lane's last ACK progress: a batch that waited
 *   behind others is not late while ACKs keep coming.
 */
#include "hf_link.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_WINDOW 64
#define S_BATCH_START 64 /* records: a lane's first batch cap on a new link */
#define S_BATCH_MIN 8    /* records: the cap never goes below this          */
#define S_QUEUE 16
#define S_FRAME_MAX 256 /* bytes: HELLO is the largest control frame */

typedef struct {
    hf_link_act_type_t type;
    uint8_t lane;
    uint64_t seq;
    const char *reason;
    size_t len;
    uint8_t frame[S_FRAME_MAX];
} s_action_t;

typedef struct {
    uint64_t committed; /* last seq the spool committed                  */
    uint64_t acked;     /* last seq the peer committed                   */
    uint64_t sent;      /* last seq sent on this connection              */
    uint64_t inflight[S_MAX_WINDOW]; /* last seq of each unacked batch (ring) */
    hf_ms_t inflight_at[S_MAX_WINDOW]; /* when each was sent (ms)        */
    uint32_t head;      /* ring index of the oldest in-flight batch      */
    uint32_t count;     /* batches in flight                             */
    uint32_t batch;     /* records per batch now (pacing, see top)       */
    hf_ms_t progress_at; /* ms: the last ACK that moved acked           */
    bool asking;        /* a SEND_BATCH action is out, awaiting batch_sent */
} s_lane_t;

struct hf_link_s {
    hf_link_opts_t opts;
    char engine[HF_ENGINE_ID_MAX + 1];
    hf_link_state_t state;
    uint16_t version;     /* negotiated protocol version                 */
    hf_ms_t last_rx;      /* ms: last frame received                     */
    hf_ms_t last_tx;      /* ms: last frame sent                         */
    hf_ms_t hello_at;     /* ms: HELLO queued                            */
    uint64_t ping_nonce;
    hf_status_t status;   /* latest backlog figures from the shell        */
    hf_ms_t status_at;    /* ms: last STATUS queued                      */
    s_lane_t lane[HF_LANE_COUNT];
    s_action_t queue[S_QUEUE];
    uint32_t q_head, q_count;
    s_action_t current;   /* the action handed out last (owns its frame) */
};

static s_action_t *
s_push(hf_link_t *self, hf_link_act_type_t type)
{
    if (self->q_count == S_QUEUE) {
        self->state = HF_LINK_FAILED;
        return NULL;
    }
    s_action_t *a = &self->queue[(self->q_head + self->q_count) % S_QUEUE];
    self->q_count++;
    a->type = type;
    a->lane = 0;
    a->seq = 0;
    a->reason = NULL;
    a->len = 0;
    return a;
}

static void
s_forget_inflight(hf_link_t *self)
{
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        s_lane_t *ln = &self->lane[l];
        ln->count = 0;
        ln->head = 0;
        ln->asking = false;
        ln->sent = ln->acked;
    }
}

static void
s_go_down(hf_link_t *self, const char *reason)
{
    s_forget_inflight(self);
    self->state = HF_LINK_DOWN;
    s_action_t *a = s_push(self, HF_LINK_ACT_RECONNECT);
    if (a)
        a->reason = reason;
}

static void
s_check_invariants(const hf_link_t *self)
{
#ifndef NDEBUG
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        const s_lane_t *ln = &self->lane[l];
        assert(ln->acked <= ln->sent);
        assert(ln->count <= self->opts.window);
        if (ln->count > 0) {
            uint64_t prev = ln->acked;
            for (uint32_t i = 0; i < ln->count; i++) {
                uint64_t s = ln->inflight[(ln->head + i) % S_MAX_WINDOW];
                assert(s > prev);
                prev = s;
            }
            assert(prev == ln->sent);
        }
    }
#else
    (void)self;
#endif
}

hf_link_t *
hf_link_new(const hf_link_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_EINVAL;
    hf_link_t *self = NULL;
    if (!opts || !opts->engine_id || !hf_engine_id_valid(opts->engine_id) || opts->epoch == 0 ||
        opts->window < 1 || opts->window > S_MAX_WINDOW || opts->batch_max < 1 ||
        opts->batch_max > HF_PROTO_MAX_BATCH || opts->heartbeat_ms == 0 ||
        opts->peer_timeout_ms <= opts->heartbeat_ms)
        goto fail;
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->opts = *opts;
    snprintf(self->engine, sizeof self->engine, "%s", opts->engine_id);
    self->opts.engine_id = self->engine;
    self->state = HF_LINK_DOWN;
    for (int l = 0; l < HF_LANE_COUNT; l++)
        self->lane[l].batch = S_BATCH_START < opts->batch_max ? S_BATCH_START : opts->batch_max;
    if (err)
        *err = HF_OK;
    return self;
fail:
    hf_link_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_link_destroy(hf_link_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

hf_err_t
hf_link_connected(hf_link_t *self, hf_ms_t now, const uint64_t last_seq[HF_LANE_COUNT],
                  uint64_t run, uint8_t run_state)
{
    assert(self);
    if (self->state == HF_LINK_FAILED)
        return HF_ESTATE;
    s_forget_inflight(self);
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    snprintf(h.engine, sizeof h.engine, "%s", self->engine);
    h.epoch = self->opts.epoch;
    h.ver_min = HF_PROTO_VERSION_MIN;
    h.ver_max = HF_PROTO_VERSION;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        h.last_seq[l] = last_seq[l];
        if (last_seq[l] > self->lane[l].committed)
            self->lane[l].committed = last_seq[l];
    }
    h.run = run;
    h.run_state = run_state;
    s_action_t *a = s_push(self, HF_LINK_ACT_SEND);
    if (!a)
        return HF_ESTATE;
    hf_err_t rc = hf_frame_encode_hello(&h, a->frame, sizeof a->frame, &a->len);
    if (rc != HF_OK) {
        self->state = HF_LINK_FAILED;
        return rc;
    }
    self->state = HF_LINK_HELLO_SENT;
    self->hello_at = now;
    self->last_rx = now;
    self->last_tx = now;
    s_check_invariants(self);
    return HF_OK;
}

void
hf_link_disconnected(hf_link_t *self, hf_ms_t now)
{
    assert(self);
    (void)now;
    if (self->state == HF_LINK_FAILED)
        return;
    s_forget_inflight(self);
    self->state = HF_LINK_DOWN;
    /* Actions queued for the old connection are void. */
    self->q_count = 0;
    s_check_invariants(self);
}

/* Pacing (see top): adapt the lane's batch cap to a batch's round trip. */
static void
s_pace(hf_link_t *self, s_lane_t *ln, hf_ms_t rtt)
{
    uint32_t t = self->opts.peer_timeout_ms;
    if (rtt <= t / 8 && ln->batch < self->opts.batch_max)
        ln->batch = ln->batch > self->opts.batch_max / 2 ? self->opts.batch_max : ln->batch * 2;
    else if (rtt > t / 3 && ln->batch > S_BATCH_MIN)
        ln->batch = ln->batch / 2 < S_BATCH_MIN ? S_BATCH_MIN : ln->batch / 2;
}

static void
s_acked(hf_link_t *self, uint8_t lane, uint64_t seq, hf_ms_t now)
{
    s_lane_t *ln = &self->lane[lane];
    if (seq <= ln->acked)
        return;
    ln->acked = seq;
    ln->progress_at = now;
    hf_ms_t sent_at = HF_MS_NEVER;
    while (ln->count > 0 && ln->inflight[ln->head] <= seq) {
        sent_at = ln->inflight_at[ln->head];
        ln->head = (ln->head + 1) % S_MAX_WINDOW;
        ln->count--;
    }
    if (sent_at != HF_MS_NEVER && now >= sent_at)
        s_pace(self, ln, now - sent_at);
    s_action_t *a = s_push(self, HF_LINK_ACT_TRIM);
    if (a) {
        a->lane = lane;
        a->seq = seq;
    }
}

static hf_err_t
s_fail(hf_link_t *self)
{
    self->state = HF_LINK_FAILED;
    return HF_EPROTO;
}

hf_err_t
hf_link_on_frame(hf_link_t *self, const uint8_t *buf, size_t len, hf_ms_t now)
{
    assert(self);
    if (self->state == HF_LINK_FAILED)
        return HF_ESTATE;
    if (self->state == HF_LINK_DOWN)
        return HF_OK; /* a stray frame from a dead connection */
    hf_frame_t f;
    hf_err_t rc = hf_frame_decode(buf, len, &f, NULL, 0);
    if (rc != HF_OK) {
        s_go_down(self, "undecodable frame from aggregator");
        return rc;
    }
    self->last_rx = now; /* any frame is a sign of life */
    switch (f.type) {
    case HF_FRAME_WELCOME: {
        const hf_welcome_t *w = &f.u.welcome;
        if (w->epoch != self->opts.epoch || w->version < HF_PROTO_VERSION_MIN ||
            w->version > HF_PROTO_VERSION) {
            s_go_down(self, "WELCOME for another epoch or version");
            return HF_EPROTO;
        }
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            /* The aggregator claims records this spool never committed:
             * two logs are confused. Never stream into that. */
            if (w->acked[l] > self->lane[l].committed)
                return s_fail(self);
        }
        bool first = self->state == HF_LINK_HELLO_SENT;
        self->version = w->version;
        /* Resync: everything after acked is resent, in order. */
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            s_lane_t *ln = &self->lane[l];
            if (w->acked[l] < ln->acked) {
                /* The aggregator lost what it had acked (restored from
                 * an older backup): resend from its cursor. The spool
                 * may already have trimmed those records; the shell
                 * sees a gap when it reads and reports it. */
                ln->acked = w->acked[l];
            }
            s_acked(self, (uint8_t)l, w->acked[l], now);
            ln->count = 0;
            ln->head = 0;
            ln->asking = false;
            ln->sent = ln->acked;
        }
        self->state = HF_LINK_STREAMING;
        if (first) {
            self->status_at = now - self->opts.heartbeat_ms; /* first STATUS right away */
            s_action_t *a = s_push(self, HF_LINK_ACT_STREAMING);
            if (a)
                a->seq = w->version;
        }
        break;
    }
    case HF_FRAME_ACK: {
        /* In HELLO_SENT an ACK can only be a stale reply: the aggregator
         * may answer a batch of the old connection on the new one (ROUTER
         * handover attaches the new pipe under the same id). Ignoring it
         * trims nothing; WELCOME brings the cursor. */
        if (self->state == HF_LINK_HELLO_SENT)
            break;
        s_lane_t *ln = &self->lane[f.u.ack.lane];
        if (f.u.ack.seq > ln->sent) {
            /* An ack for something not sent on this connection: a stale
             * frame of an earlier connection can't reach a fresh socket,
             * so this is a broken peer. */
            return s_fail(self);
        }
        s_acked(self, f.u.ack.lane, f.u.ack.seq, now);
        break;
    }
    case HF_FRAME_PING: {
        s_action_t *a = s_push(self, HF_LINK_ACT_SEND);
        if (!a)
            return HF_ESTATE;
        hf_ping_t p = {.nonce = f.u.ping.nonce};
        if (hf_frame_encode_pong(&p, a->frame, sizeof a->frame, &a->len) != HF_OK)
            return s_fail(self);
        self->last_tx = now;
        break;
    }
    case HF_FRAME_PONG:
        break;
    case HF_FRAME_COMMAND:
        break; /* the dispatcher hands it to the engine (if STREAMING) */
    default:
        return s_fail(self); /* HELLO or BATCH never flow this way */
    }
    s_check_invariants(self);
    return HF_OK;
}

/* Since when the lane's oldest batch has waited for an ACK: its send, or
 * the last ACK progress if that came later. */
static hf_ms_t
s_waiting_since(const s_lane_t *ln)
{
    hf_ms_t t = ln->inflight_at[ln->head];
    return ln->progress_at > t ? ln->progress_at : t;
}

void
hf_link_on_timer(hf_link_t *self, hf_ms_t now)
{
    assert(self);
    if (self->state == HF_LINK_HELLO_SENT) {
        if (now - self->hello_at >= self->opts.peer_timeout_ms)
            s_go_down(self, "no WELCOME in time");
        return;
    }
    if (self->state != HF_LINK_STREAMING)
        return;
    if (now - self->last_rx >= self->opts.peer_timeout_ms) {
        s_go_down(self, "aggregator silent (heartbeat timeout)");
        return;
    }
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        s_lane_t *ln = &self->lane[l];
        if (ln->count > 0 && now - s_waiting_since(ln) >= self->opts.peer_timeout_ms) {
            /* a slower link next time: a quarter of the batch */
            ln->batch = ln->batch / 4 < S_BATCH_MIN ? S_BATCH_MIN : ln->batch / 4;
            s_go_down(self, "batch not acknowledged in time");
            return;
        }
    }
    if (now - self->status_at >= self->opts.heartbeat_ms) {
        /* Backlog figures go out on a timer of their own: under load no
         * PING is due, and that is when the backlog matters most. */
        s_action_t *a = s_push(self, HF_LINK_ACT_SEND);
        if (!a)
            return;
        if (hf_frame_encode_status(&self->status, a->frame, sizeof a->frame, &a->len) != HF_OK) {
            self->state = HF_LINK_FAILED;
            return;
        }
        self->status_at = now;
        self->last_tx = now;
    }
    if (now - self->last_tx >= self->opts.heartbeat_ms) {
        s_action_t *a = s_push(self, HF_LINK_ACT_SEND);
        if (!a)
            return;
        hf_ping_t p = {.nonce = ++self->ping_nonce};
        if (hf_frame_encode_ping(&p, a->frame, sizeof a->frame, &a->len) != HF_OK) {
            self->state = HF_LINK_FAILED;
            return;
        }
        self->last_tx = now;
    }
}

void
hf_link_committed(hf_link_t *self, uint8_t lane, uint64_t seq)
{
    assert(self && lane < HF_LANE_COUNT);
    if (seq > self->lane[lane].committed)
        self->lane[lane].committed = seq;
}

void
hf_link_batch_sent(hf_link_t *self, uint8_t lane, uint64_t last_seq, hf_ms_t now)
{
    assert(self && lane < HF_LANE_COUNT);
    s_lane_t *ln = &self->lane[lane];
    if (!ln->asking)
        return;
    ln->asking = false;
    if (self->state != HF_LINK_STREAMING || last_seq <= ln->sent)
        return;
    assert(last_seq <= ln->committed);
    uint32_t slot = (ln->head + ln->count) % S_MAX_WINDOW;
    ln->inflight[slot] = last_seq;
    ln->inflight_at[slot] = now;
    ln->count++;
    ln->sent = last_seq;
    self->last_tx = now;
    s_check_invariants(self);
}

bool
hf_link_next_action(hf_link_t *self, hf_link_action_t *out)
{
    assert(self && out);
    memset(out, 0, sizeof *out);
    if (self->q_count > 0) {
        self->current = self->queue[self->q_head];
        self->q_head = (self->q_head + 1) % S_QUEUE;
        self->q_count--;
        out->type = self->current.type;
        out->frame = self->current.frame;
        out->len = self->current.len;
        out->lane = self->current.lane;
        out->seq = self->current.seq;
        out->reason = self->current.reason;
        return true;
    }
    if (self->state != HF_LINK_STREAMING)
        return false;
    for (int l = 0; l < HF_LANE_COUNT; l++) { /* control lane first */
        s_lane_t *ln = &self->lane[l];
        if (ln->asking || ln->count >= self->opts.window || ln->sent >= ln->committed)
            continue;
        ln->asking = true;
        out->type = HF_LINK_ACT_SEND_BATCH;
        out->lane = (uint8_t)l;
        out->seq = ln->sent + 1;
        uint64_t avail = ln->committed - ln->sent;
        out->max = avail < ln->batch ? (uint32_t)avail : ln->batch;
        return true;
    }
    return false;
}

hf_ms_t
hf_link_deadline(const hf_link_t *self)
{
    assert(self);
    switch (self->state) {
    case HF_LINK_HELLO_SENT: return self->hello_at + self->opts.peer_timeout_ms;
    case HF_LINK_STREAMING: {
        hf_ms_t d = self->last_tx + self->opts.heartbeat_ms;
        if (self->status_at + self->opts.heartbeat_ms < d)
            d = self->status_at + self->opts.heartbeat_ms;
        hf_ms_t w = self->last_rx + self->opts.peer_timeout_ms;
        if (w < d)
            d = w;
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            const s_lane_t *ln = &self->lane[l];
            if (ln->count > 0) {
                hf_ms_t b = s_waiting_since(ln) + self->opts.peer_timeout_ms;
                if (b < d)
                    d = b;
            }
        }
        return d;
    }
    case HF_LINK_DOWN:
    case HF_LINK_FAILED: return HF_MS_NEVER;
    }
    return HF_MS_NEVER;
}

hf_link_state_t
hf_link_state(const hf_link_t *self)
{
    return self->state;
}

const char *
hf_link_state_name(hf_link_state_t state)
{
    switch (state) {
    case HF_LINK_DOWN: return "down";
    case HF_LINK_HELLO_SENT: return "hello-sent";
    case HF_LINK_STREAMING: return "streaming";
    case HF_LINK_FAILED: return "failed";
    }
    return "?";
}

uint64_t
hf_link_acked(const hf_link_t *self, uint8_t lane)
{
    return self->lane[lane].acked;
}

uint16_t
hf_link_version(const hf_link_t *self)
{
    return self->version;
}

void
hf_link_set_status(hf_link_t *self, const hf_status_t *st)
{
    assert(self && st);
    self->status = *st;
}

void
hf_link_reset(hf_link_t *self)
{
    s_forget_inflight(self);
    self->q_count = 0;
    self->state = HF_LINK_DOWN;
}
