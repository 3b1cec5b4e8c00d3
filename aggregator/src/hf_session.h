/* hf_session.h - the aggregator's view of one engine (pure state machine).
 *
 * No sockets, no clock, no store: the router feeds frames' meaning and the
 * time in, and carries out what comes back (WELCOME, ACK, PONG, status).
 *
 *   UNKNOWN --HELLO--> AVAILABLE --no frame for watchdog_ms--> UNAVAILABLE
 *   UNKNOWN (restored from the store) --no HELLO for watchdog_ms--> UNAVAILABLE
 *   UNAVAILABLE --HELLO--> AVAILABLE
 *   AVAILABLE --HELLO with another epoch--> AVAILABLE (new log; reason kept)
 *
 * Only HELLO makes a session available: after the aggregator restarts or a
 * connection drops, frames from an engine that has not said HELLO on its
 * current connection are ignored (it times out and says HELLO again).
 *
 * Invariant: acked[l] is what the store holds for (engine, epoch); the
 * router updates it only from hf_store results.
 */
#ifndef HF_SESSION_H_INCLUDED
#define HF_SESSION_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "hf_cmdq.h"
#include "hf_control.h" /* hf_avail_t */
#include "hf_proto.h"
#include "hf_record.h"
#include "hf_supervisor.h"
#include "hf_time.h"


typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1];
    hf_avail_t avail;
    bool active;                       /* HELLO seen on the current connection */
    uint64_t epoch;                    /* epoch of the current connection      */
    uint16_t version;                  /* negotiated protocol version          */
    uint64_t acked[HF_LANE_COUNT];     /* store cursor for (engine, epoch)     */
    hf_ms_t last_rx;                   /* ms: last frame received              */
    hf_ms_t connected_at;              /* ms: last HELLO                       */
    uint64_t since_ns;                 /* wall ns: current availability began  */
    char reason[48];                   /* why the availability is what it is   */
    uint64_t run;                      /* engine's run as of its HELLO         */
    uint8_t run_state;                 /* hf_run_state_t as of its HELLO       */
    uint64_t hellos;                   /* connections accepted                 */
    hf_status_t backlog;               /* engine's last STATUS                 */
    bool reconcile;                    /* close runs the engine no longer runs... */
    uint64_t reconcile_at;             /* ...once control is acked up to this  */
    uint64_t reconcile_keep;           /* the run the engine says it is in     */
    hf_ms_t backlog_at;                /* ms: when it arrived (0 = never)      */
    hf_cmdq_t cmds;                    /* operators' commands to this engine   */
    bool restored;                     /* made from the store at start, no HELLO yet */
    hf_restart_window_t window;        /* its restarts as a supervised task    */
    uint32_t restarts;                 /* restarts of this session, total      */
    bool fault;                        /* HF_TESTING: fail at its next frame   */
    bool held;                         /* a batch of it was not stored (store
                                          full): resync once the store has room */
    uint64_t m_records[HF_LANE_COUNT]; /* metrics: records stored since start  */
    uint64_t m_bytes;                  /* metrics: BATCH bytes received        */
    uint64_t m_batches;                /* metrics: BATCH frames received       */
    uint64_t m_acks;                   /* metrics: ACK frames sent             */
} hf_session_t;

void hf_session_init(hf_session_t *s, const char *engine);

/* A session restored from the store when the aggregator starts: what the
 * engine last said (epoch, run, state). If it was unavailable when the
 * aggregator stopped (an outage still open: outage_since_ns != 0, with its
 * reason) it stays unavailable from then; otherwise it is UNKNOWN until its
 * HELLO, and the watchdog turns it UNAVAILABLE ("not reconnected since the
 * aggregator restarted") if no HELLO comes within watchdog_ms of now. */
void hf_session_restore(hf_session_t *s, const char *engine, uint64_t epoch, uint64_t run,
                        uint8_t run_state, uint64_t outage_since_ns, const char *outage_reason,
                        hf_ms_t now, uint64_t now_wall_ns);

/* HELLO arrived; acked is the store's cursor for (engine, h->epoch).
 * Fills *w. HF_EPROTO when no protocol version is common (the session
 * stays as it was). */
hf_err_t hf_session_hello(hf_session_t *s, const hf_hello_t *h, const uint64_t acked[HF_LANE_COUNT],
                          hf_ms_t now, uint64_t now_wall_ns, hf_welcome_t *w);
/* Any frame from the engine is a sign of life. */
void hf_session_seen(hf_session_t *s, hf_ms_t now);
/* The store committed lane up to acked: fills the ACK to send. */
void hf_session_committed(hf_session_t *s, uint8_t lane, uint64_t acked, hf_ack_t *a);
/* The engine said BYE (clean shutdown): unavailable at once, with that
 * reason; frames before its next HELLO are ignored. */
void hf_session_bye(hf_session_t *s, uint64_t now_wall_ns);

/* The engine reported its backlog (STATUS). */
void hf_session_status(hf_session_t *s, const hf_status_t *st, hf_ms_t now);
/* Fill a WELCOME that resyncs the engine to the session's cursor. */
void hf_session_resync(const hf_session_t *s, hf_welcome_t *w);
/* Time passed. true when the session just became unavailable. */
bool hf_session_tick(hf_session_t *s, hf_ms_t now, uint64_t now_wall_ns, uint32_t watchdog_ms);

#endif
