/* hf_sim.h - deterministic simulation of the link protocol (test code).
 *
 * One simulated world holds:
 * - an engine model: the real hf_link_t (dispatcher/src/hf_link.c) plus an
 *   in-memory spool (per lane: committed records with seqs, an acked/trim
 *   cursor) and an uncommitted staging group, driven exactly the way
 *   hf_dispatcher.c drives them (group commit, actions, socket drop with
 *   backoff and jitter, reset after FAILED);
 * - an aggregator model: the real hf_session_t (aggregator/src/hf_session.c)
 *   plus an in-memory store keyed by (epoch, lane) that applies
 *   hf_store_commit's rule, driven the way hf_router.c drives it;
 * - a network of connections on a simulated millisecond clock: per
 *   connection two FIFO directions (TCP: in order, never duplicated), with
 *   delay, stalls, cuts (everything in flight is lost), partitions, zmq's
 *   transparent reconnect and ROUTER_HANDOVER;
 * - crashes: engine (staging group and memory lost, spool kept; optionally
 *   the spool is wiped, which makes a new epoch) and aggregator (sessions
 *   lost, store kept).
 *
 * Everything random comes from one seed, so a run replays exactly. The
 * world checks its invariants as it goes (a TRIM only for seqs the store
 * holds; every record the store commits equals the record the engine
 * committed under that (epoch, lane, seq); nothing stored twice) and at the
 * end (hf_sim_check: the store holds exactly the engine's committed records).
 *
 * Not thread-safe; one world per thread. Nothing here reads a clock.
 */
#ifndef HF_SIM_H_INCLUDED
#define HF_SIM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_time.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    /* link (hf_link_opts_t) */
    uint32_t window;          /* batches in flight per lane                 */
    uint32_t batch_max;       /* records per batch                          */
    uint32_t heartbeat_ms;
    uint32_t peer_timeout_ms;
    /* dispatcher shell */
    uint32_t commit_max;       /* records per group commit                  */
    uint32_t commit_window_ms; /* group commit delay                        */
    uint32_t staging_max;      /* staging bound; a full staging blocks      */
    uint32_t reconnect_max_ms; /* backoff cap                               */
    /* aggregator */
    uint32_t watchdog_ms;
    /* network */
    uint32_t delay_min_ms;  /* one-way frame delay                          */
    uint32_t delay_max_ms;
    uint32_t connect_ms;    /* TCP + ZMTP handshake                         */
    uint32_t notice_max_ms; /* a side learns of a cut within this           */
    uint32_t max_records;   /* producer stops after this many records       */
    bool trace;             /* print every event to stderr                  */
} hf_sim_cfg_t;

typedef enum {
    HF_SIM_A2E = 0, /* aggregator -> engine */
    HF_SIM_E2A = 1, /* engine -> aggregator */
} hf_sim_dir_t;

/* One-shot hooks for scripted scenarios: armed, they fire once. */
typedef enum {
    HF_SIM_HOOK_CUT_ON_HELLO = 1,     /* cut right after the engine sent HELLO  */
    HF_SIM_HOOK_CUT_ON_WELCOME,       /* cut right after the aggregator sent WELCOME */
    HF_SIM_HOOK_CUT_ON_ACK,           /* cut right after an ACK was sent (lost)  */
    HF_SIM_HOOK_CUT_ON_FULL_WINDOW,   /* cut once a lane has `window` batches out */
    HF_SIM_HOOK_AGG_CRASH_AFTER_COMMIT, /* aggregator dies after commit, before ACK */
    HF_SIM_HOOK_AGG_COMMIT_FAILS,     /* next store commit fails (HF_ESTORE)     */
    HF_SIM_HOOK_ENGINE_CRASH_AFTER_BATCH, /* engine dies right after sending a BATCH */
    HF_SIM_HOOK_COUNT
} hf_sim_hook_t;

/* Deliberate bugs, so that tests can show the checker catches them. */
typedef enum {
    HF_SIM_BUG_NONE = 0,
    HF_SIM_BUG_ACK_BEFORE_COMMIT = 1, /* aggregator ACKs, then the commit is lost */
    HF_SIM_BUG_STORE_DROPS_RECORD = 2, /* store skips one record but advances cursor */
} hf_sim_bug_t;

typedef struct {
    uint64_t produced;      /* records handed to the engine                 */
    uint64_t lost_staged;   /* records lost uncommitted in an engine crash  */
    uint64_t committed;     /* records committed to the engine's spool      */
    uint64_t stored;        /* records the store committed                  */
    uint64_t dups_skipped;  /* records the store skipped as duplicates      */
    uint64_t batches;       /* BATCH frames sent                            */
    uint64_t trims;         /* TRIM actions carried out                     */
    uint64_t hellos;        /* HELLOs sent                                  */
    uint64_t resyncs;       /* WELCOME resyncs sent after a gap             */
    uint64_t ignored;       /* frames the aggregator ignored (no HELLO)     */
    uint64_t link_failed;   /* times the link went FAILED (reset by shell)  */
    uint64_t races;         /* replies routed to a newer connection         */
    uint64_t reconnects;    /* sockets dropped by the engine                */
    uint64_t cuts;          /* connections cut by the network               */
    uint64_t engine_crashes;
    uint64_t wipes;         /* spool wipes (new epochs)                     */
    uint64_t agg_crashes;
    uint64_t commit_failures; /* injected store commit failures             */
    uint64_t spool_gaps;    /* SEND_BATCH asked for records already trimmed */
    uint64_t now;           /* ms: simulated time at the end                */
} hf_sim_stats_t;

typedef struct hf_sim_s hf_sim_t;

/* Sensible fixed defaults (small timeouts so that a run covers many). */
hf_sim_cfg_t hf_sim_cfg_default(void);
/* Parameters drawn from seed (windows, batch sizes, timeouts, delays). */
hf_sim_cfg_t hf_sim_cfg_random(uint64_t seed);

/* A new world: engine and aggregator up, no connection yet. seed drives
 * every random choice the world makes (delays, jitter, orderings). NULL on
 * invalid cfg or out of memory. */
hf_sim_t *hf_sim_new(const hf_sim_cfg_t *cfg, uint64_t seed);
void hf_sim_destroy(hf_sim_t **self_p);

/* Advance the clock by ms milliseconds, one millisecond at a time. */
void hf_sim_run(hf_sim_t *self, uint32_t ms);
/* Hand n records of lane to the engine (staging); fewer if staging is full. */
uint32_t hf_sim_produce(hf_sim_t *self, uint8_t lane, uint32_t n);
/* Producer rate: records per second (both lanes; 1 in 8 is control). */
void hf_sim_set_rate(hf_sim_t *self, uint32_t per_s);

void hf_sim_cut(hf_sim_t *self);                 /* cut the engine's connection */
void hf_sim_partition(hf_sim_t *self, bool on);  /* no delivery, no new connections */
void hf_sim_stall(hf_sim_t *self, hf_sim_dir_t dir, uint32_t ms); /* hold frames */
void hf_sim_engine_crash(hf_sim_t *self, bool wipe_spool, uint32_t down_ms);
void hf_sim_agg_crash(hf_sim_t *self, uint32_t down_ms);
void hf_sim_arm(hf_sim_t *self, hf_sim_hook_t hook);
void hf_sim_set_bug(hf_sim_t *self, hf_sim_bug_t bug);
/* Model libzmq's ROUTER_HANDOVER send race: replies to frames the router
 * read from an engine's old pipe go out on its new connection, ahead of
 * WELCOME. With it on, a FAILED link (reset by the shell) is tolerated by
 * hf_sim_check; without it, FAILED is a check failure. */
void hf_sim_set_reply_race(hf_sim_t *self, bool on);

/* End of faults: heal the network, let crashed sides come back, stop the
 * producer, and run until every committed record is stored and trimmed
 * (true) or max_ms passed (false). */
bool hf_sim_settle(hf_sim_t *self, uint32_t max_ms);

/* Every invariant, continuous and final. false with the reason in why. */
bool hf_sim_check(hf_sim_t *self, char *why, size_t cap);
/* true when a continuous check already failed (the run can stop early). */
bool hf_sim_failed(const hf_sim_t *self);

void hf_sim_stats(const hf_sim_t *self, hf_sim_stats_t *out);
/* Digest of every event so far: equal seeds give equal digests. */
uint64_t hf_sim_digest(const hf_sim_t *self);
/* Print the last events (for a failing seed) to stderr. */
void hf_sim_dump_trace(const hf_sim_t *self);

/* Queries for scripted scenarios. */
int hf_sim_link_state(const hf_sim_t *self);       /* hf_link_state_t, -1 if engine down */
uint64_t hf_sim_engine_acked(const hf_sim_t *self, uint8_t lane);
uint64_t hf_sim_engine_committed(const hf_sim_t *self, uint8_t lane);
uint64_t hf_sim_store_count(const hf_sim_t *self, uint8_t lane); /* current epoch */
uint32_t hf_sim_inflight(const hf_sim_t *self, hf_sim_dir_t dir);
hf_ms_t hf_sim_now(const hf_sim_t *self);
uint64_t hf_sim_epoch(const hf_sim_t *self);

/* One whole random schedule from seed: random cfg, random faults for a
 * bounded time, then settle and check. Returns true when it passed; on
 * failure writes the reason to why (and dumps the trace when verbose). */
bool hf_sim_schedule(uint64_t seed, bool verbose, char *why, size_t cap, hf_sim_stats_t *st);

/* splitmix64: derive well-mixed seeds from a counter. */
uint64_t hf_sim_splitmix(uint64_t *state);

#ifdef __cplusplus
}
#endif
#endif
