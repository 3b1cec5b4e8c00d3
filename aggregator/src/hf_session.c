/* hf_session.c - the aggregator's per-engine state machine (pure).
 * See hf_session.h for the diagram. */
#include "hf_session.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

void
hf_session_init(hf_session_t *s, const char *engine)
{
    assert(s && engine);
    memset(s, 0, sizeof *s);
    snprintf(s->engine, sizeof s->engine, "%s", engine);
    s->avail = HF_AVAIL_UNKNOWN;
    snprintf(s->reason, sizeof s->reason, "not seen since start");
}

void
hf_session_restore(hf_session_t *s, const char *engine, uint64_t epoch, uint64_t run,
                   uint8_t run_state, uint64_t outage_since_ns, const char *outage_reason,
                   hf_ms_t now, uint64_t now_wall_ns)
{
    assert(s && engine);
    hf_session_init(s, engine);
    s->epoch = epoch;
    s->run = run;
    s->run_state = run_state;
    s->last_rx = now; /* the watchdog counts from the restart */
    s->restored = true;
    if (outage_since_ns) {
        s->avail = HF_AVAIL_UNAVAILABLE;
        s->since_ns = outage_since_ns;
        snprintf(s->reason, sizeof s->reason, "%s", outage_reason ? outage_reason : "");
    } else {
        s->avail = HF_AVAIL_UNKNOWN;
        s->since_ns = now_wall_ns;
        snprintf(s->reason, sizeof s->reason, "aggregator restarted: awaiting HELLO");
    }
}

hf_err_t
hf_session_hello(hf_session_t *s, const hf_hello_t *h, const uint64_t acked[HF_LANE_COUNT],
                 hf_ms_t now, uint64_t now_wall_ns, hf_welcome_t *w)
{
    assert(s && h && acked && w);
    uint16_t hi = h->ver_max < HF_PROTO_VERSION ? h->ver_max : HF_PROTO_VERSION;
    uint16_t lo = h->ver_min > HF_PROTO_VERSION_MIN ? h->ver_min : HF_PROTO_VERSION_MIN;
    if (hi < lo || h->epoch == 0)
        return HF_EPROTO;
    bool new_epoch = s->epoch != 0 && s->epoch != h->epoch;
    s->active = true;
    s->epoch = h->epoch;
    s->version = hi;
    memcpy(s->acked, acked, sizeof s->acked);
    s->last_rx = now;
    s->connected_at = now;
    s->run = h->run;
    s->run_state = h->run_state;
    s->restored = false;
    s->hellos++;
    if (s->avail != HF_AVAIL_AVAILABLE) {
        s->avail = HF_AVAIL_AVAILABLE;
        s->since_ns = now_wall_ns;
    }
    snprintf(s->reason, sizeof s->reason, "%s", new_epoch ? "engine restarted with a new log"
                                                          : "connected");
    memset(w, 0, sizeof *w);
    w->version = s->version;
    w->epoch = s->epoch;
    memcpy(w->acked, s->acked, sizeof w->acked);
    return HF_OK;
}

void
hf_session_seen(hf_session_t *s, hf_ms_t now)
{
    s->last_rx = now;
}

void
hf_session_committed(hf_session_t *s, uint8_t lane, uint64_t acked, hf_ack_t *a)
{
    assert(lane < HF_LANE_COUNT);
    if (acked > s->acked[lane])
        s->acked[lane] = acked;
    a->lane = lane;
    a->seq = s->acked[lane];
}

void
hf_session_bye(hf_session_t *s, uint64_t now_wall_ns)
{
    s->active = false;
    s->backlog_at = 0;
    if (s->avail != HF_AVAIL_UNAVAILABLE)
        s->since_ns = now_wall_ns;
    s->avail = HF_AVAIL_UNAVAILABLE;
    snprintf(s->reason, sizeof s->reason, "clean shutdown");
}

void
hf_session_status(hf_session_t *s, const hf_status_t *st, hf_ms_t now)
{
    s->backlog = *st;
    s->backlog_at = now;
}

void
hf_session_resync(const hf_session_t *s, hf_welcome_t *w)
{
    memset(w, 0, sizeof *w);
    w->version = s->version;
    w->epoch = s->epoch;
    memcpy(w->acked, s->acked, sizeof w->acked);
}

bool
hf_session_tick(hf_session_t *s, hf_ms_t now, uint64_t now_wall_ns, uint32_t watchdog_ms)
{
    if (s->avail == HF_AVAIL_UNKNOWN && s->restored && now - s->last_rx >= watchdog_ms) {
        s->avail = HF_AVAIL_UNAVAILABLE;
        s->since_ns = now_wall_ns;
        snprintf(s->reason, sizeof s->reason, "not reconnected since the aggregator restarted");
        return true;
    }
    if (s->avail != HF_AVAIL_AVAILABLE || now - s->last_rx < watchdog_ms)
        return false;
    s->avail = HF_AVAIL_UNAVAILABLE;
    s->active = false;
    s->since_ns = now_wall_ns;
    snprintf(s->reason, sizeof s->reason, "link lost (no heartbeat for %u ms)", watchdog_ms);
    return true;
}
