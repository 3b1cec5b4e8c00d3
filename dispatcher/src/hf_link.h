/* hf_link.h - the engine side of the link protocol, as a pure state machine.
 *
 * No sockets, no clock, no threads, no randomness: the shell (hf_dispatcher.c)
 * feeds events in (connected, frame, timer, committed) and carries actions
 * out (send this frame, fill and send a batch from the spool, trim the spool,
 * reconnect). docs/protocol.md is the normative description.
 *
 *   DOWN --connected--> HELLO_SENT --WELCOME--> STREAMING
 *   HELLO_SENT --no WELCOME in peer_timeout--> DOWN (+RECONNECT)
 *   STREAMING --nothing received in peer_timeout, or oldest batch unacked
 *              for peer_timeout--> DOWN (+RECONNECT)
 *   STREAMING --WELCOME--> STREAMING (resync: rewind send cursor to acked+1)
 *   any --disconnected--> DOWN
 *   any --protocol violation--> FAILED (sticky until hf_link_reset)
 *
 * Guarantees per state:
 * - DOWN: nothing is in flight; the send cursor will be reset by WELCOME.
 * - HELLO_SENT: only HELLO (and PONG) were sent on this connection.
 * - STREAMING: batches go out in seq order per lane, at most `window`
 *   unacked batches per lane; the control lane is offered first, so it
 *   never waits behind the data backlog.
 *
 * Invariants: acked[l] <= sent[l] <= committed[l]; batches in flight cover
 * (acked[l], sent[l]] in increasing order; TRIM is emitted only for seqs
 * the peer acknowledged (ACK or WELCOME), i.e. after its commit.
 */
#ifndef HF_LINK_H_INCLUDED
#define HF_LINK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_proto.h"
#include "hf_record.h"
#include "hf_time.h"

typedef struct hf_link_s hf_link_t;

typedef enum {
    HF_LINK_DOWN = 0,
    HF_LINK_HELLO_SENT = 1,
    HF_LINK_STREAMING = 2,
    HF_LINK_FAILED = 3,
} hf_link_state_t;

typedef struct {
    const char *engine_id;    /* copied                                      */
    uint64_t epoch;           /* spool epoch, non-zero                       */
    uint32_t window;          /* batches in flight per lane, 1..64           */
    uint32_t batch_max;       /* records per batch, 1..HF_PROTO_MAX_BATCH    */
    uint32_t heartbeat_ms;    /* PING when nothing sent for this long        */
    uint32_t peer_timeout_ms; /* silence (or unacked batch) for this long: reconnect */
} hf_link_opts_t;

typedef enum {
    HF_LINK_ACT_SEND = 1,       /* send frame/len (borrowed until next call)  */
    HF_LINK_ACT_SEND_BATCH = 2, /* read lane from from_seq, at most max records
                                   up to committed, send, then hf_link_batch_sent */
    HF_LINK_ACT_TRIM = 3,       /* spool may delete lane records <= seq       */
    HF_LINK_ACT_RECONNECT = 4,  /* drop the connection and make a new one     */
    HF_LINK_ACT_STREAMING = 5,  /* handshake done (for logs): version chosen  */
} hf_link_act_type_t;

typedef struct {
    hf_link_act_type_t type;
    const uint8_t *frame; /* SEND: borrowed                                  */
    size_t len;           /* SEND: bytes                                     */
    uint8_t lane;         /* SEND_BATCH, TRIM                                */
    uint64_t seq;         /* SEND_BATCH: first seq wanted; TRIM: upto        */
    uint32_t max;         /* SEND_BATCH: max records                         */
    const char *reason;   /* RECONNECT: static text                          */
} hf_link_action_t;

hf_link_t *hf_link_new(const hf_link_opts_t *opts, hf_err_t *err);
void hf_link_destroy(hf_link_t **self_p);

/* The transport is connected: queue HELLO with what the spool holds and the
 * engine's run. */
hf_err_t hf_link_connected(hf_link_t *self, hf_ms_t now, const uint64_t last_seq[HF_LANE_COUNT],
                           uint64_t run, uint8_t run_state);
/* The transport dropped: in-flight batches are forgotten (they may or may
 * not have arrived; WELCOME on the next connection tells). */
void hf_link_disconnected(hf_link_t *self, hf_ms_t now);
/* A frame arrived. HF_EPROTO on a frame the protocol forbids (the link is
 * then FAILED, or DOWN with a RECONNECT action for recoverable cases). */
hf_err_t hf_link_on_frame(hf_link_t *self, const uint8_t *buf, size_t len, hf_ms_t now);
/* Time passed: heartbeats, watchdogs. */
void hf_link_on_timer(hf_link_t *self, hf_ms_t now);
/* The spool committed up to seq in lane. */
void hf_link_committed(hf_link_t *self, uint8_t lane, uint64_t seq);
/* The shell sent a batch whose last record is last_seq (first was the
 * SEND_BATCH action's seq). count 0 = nothing could be read (no-op). */
void hf_link_batch_sent(hf_link_t *self, uint8_t lane, uint64_t last_seq, hf_ms_t now);

/* The engine's backlog figures; sent to the aggregator in a STATUS frame
 * every heartbeat_ms while streaming (copied). */
void hf_link_set_status(hf_link_t *self, const hf_status_t *st);

/* Next action, or false when there is none now. */
bool hf_link_next_action(hf_link_t *self, hf_link_action_t *out);
/* When hf_link_on_timer wants to be called next (HF_MS_NEVER if never). */
hf_ms_t hf_link_deadline(const hf_link_t *self);

hf_link_state_t hf_link_state(const hf_link_t *self);
const char *hf_link_state_name(hf_link_state_t state);
uint64_t hf_link_acked(const hf_link_t *self, uint8_t lane);
uint16_t hf_link_version(const hf_link_t *self);
/* Leave FAILED (or any state) for DOWN. */
void hf_link_reset(hf_link_t *self);

#endif
