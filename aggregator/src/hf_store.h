/* hf_store.h - the aggregator's durable store (private to the aggregator).
 *
 * One LMDB environment in a directory (docs/store.md has the byte layout).
 * Named databases:
 *   "meta"     : magic "holdfast-store" + format version 1
 *   "engines"  : engine -> current epoch, epoch count, records per lane,
 *                first/last seen, last HELLO run + state
 *   "epochs"   : engine 0x00 epoch(8 BE) -> ordinal, acked per lane
 *   "ordinals" : engine 0x00 ordinal(4 BE) -> epoch (reverse of "epochs")
 *   "records"  : engine 0x00 ordinal(4 BE) lane(1) seq(8 BE) -> hf_record_encode bytes
 *   "runs"     : engine 0x00 run(8 BE) -> run row (state, times, method,
 *                channel names, counts, last event)
 *
 * Invariants:
 * - A record and the acked cursor covering it are written in the same write
 *   transaction: acked[lane] of an epoch is exactly the highest seq stored,
 *   and seqs 1..acked are all stored (a gap is refused with HF_EPROTO).
 * - The run table is derived only from committed records, in commit order,
 *   in the same transaction as those records: replaying a backlog reaches
 *   the same rows as seeing it live.
 * - Epoch ordinals are 0, 1, 2 ... in order of first HELLO (or first commit)
 *   for that engine; export order is (ordinal, lane, seq).
 * - Every commit is durable (full sync) before it returns HF_OK: the caller
 *   may ACK right after.
 * - An existing directory whose data lacks our magic or has another format
 *   version is refused with HF_ECORRUPT and left untouched.
 * - After an unrecoverable LMDB error (MDB_PANIC, corruption) the store is
 *   sticky-failed: every later call returns HF_ESTATE until it is closed.
 *
 * Thread-safety: one thread owns a store (the aggregator's main loop). The
 * env is opened with MDB_NOTLS. No transaction stays open between calls, so
 * the map can be grown safely inside any write call.
 */
#ifndef HF_STORE_H_INCLUDED
#define HF_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_STORE_FORMAT_VERSION 2 /* 1: one shared records table, upgraded at open */
#define HF_STORE_CHANNELS_MAX 1024 /* bytes of a run's comma-separated channel names */

typedef struct hf_store_s hf_store_t;

typedef struct {
    size_t map_bytes; /* initial LMDB map size (bytes), default 256 MiB            */
    size_t max_bytes; /* hard bound (bytes), default 64 GiB; the map doubles on
                         MDB_MAP_FULL up to this, then calls return HF_EFULL      */
    bool readonly;    /* open an existing store for reading only (backups, checks):
                         nothing is created or written; writes fail HF_ESTORE  */
} hf_store_opts_t;

HF_EXPORT hf_store_opts_t hf_store_opts_default(void);

/* Open (creating if absent) the store in directory dir (created 0700 with
 * parents if missing). opts NULL means defaults. NULL on error with *err:
 * HF_EINVAL bad arguments/options, HF_ECORRUPT foreign/corrupt/other-version
 * data (left untouched), HF_EIO directory trouble, HF_ESTORE other LMDB
 * failure, HF_ENOMEM. Runs mdb_reader_check at open. */
HF_EXPORT hf_store_t *hf_store_open(const char *dir, const hf_store_opts_t *opts, hf_err_t *err);
/* NULL-safe, idempotent; sets *self_p to NULL. */
HF_EXPORT void hf_store_close(hf_store_t **self_p);

/* What the store holds for (engine, epoch): acked[lane] = highest seq
 * committed, all 0 if the epoch (or engine) is new. Writes nothing.
 * HF_EINVAL bad engine id; HF_ESTORE/HF_ECORRUPT/HF_ESTATE on store trouble. */
HF_EXPORT hf_err_t hf_store_cursor(hf_store_t *self, const char *engine, uint64_t epoch,
                                   uint64_t acked[HF_LANE_COUNT]);

/* Record that engine said HELLO with this epoch/run/run_state at aggregator
 * wall time now_ns: creates the engine row if new, gives the epoch the next
 * ordinal if new, sets the engine's current epoch, last run and state and
 * last-seen time. One durable write transaction.
 * HF_EINVAL bad engine id or epoch 0; HF_EFULL map at max_bytes or no space on
 * the disk (ENOSPC, EDQUOT); HF_ESTORE. */
HF_EXPORT hf_err_t hf_store_note_hello(hf_store_t *self, const char *engine, uint64_t epoch,
                                       uint64_t run, uint8_t run_state, uint64_t now_ns);

/* Commit recs[0..n) (all of lane `lane`, seq strictly increasing) for
 * (engine, epoch) in ONE durable write transaction together with the new
 * acked cursor, run-table updates and engine counters. Records with
 * seq <= acked are duplicates: skipped and counted in *dups. The first
 * remaining record must be acked+1 and the rest contiguous.
 * *acked_out = the cursor after the call (also set on HF_EPROTO: the
 * unchanged cursor, for the resync). An epoch never announced by HELLO is
 * created as note_hello would (without run info).
 * Errors (nothing committed on any error):
 *   HF_EINVAL bad engine id, epoch 0, lane, or recs NULL with n > 0;
 *   HF_EPROTO gap or disorder in seqs, a record of another lane or one that
 *             does not encode;
 *   HF_EFULL  the map reached max_bytes, or the disk has no space left;
 *   HF_ESTORE LMDB failure (logged); HF_ESTATE store sticky-failed.
 * recs is borrowed for the call; dups and acked_out may be NULL. */
/* One engine's batch for hf_store_commit_many. */
typedef struct {
    const char *engine;        /* in                                          */
    uint64_t epoch;            /* in                                          */
    uint8_t lane;              /* in                                          */
    const hf_record_t *recs;   /* in, borrowed for the call                   */
    size_t n;                  /* in                                          */
    hf_err_t rc;               /* out: HF_OK, or HF_EPROTO (gap, disorder,
                                  wrong lane: nothing of this batch written)  */
    uint64_t acked;            /* out: the (engine, epoch, lane) cursor after */
    size_t dups;               /* out: records skipped as already stored      */
    uint64_t close_after;      /* in: 0, or a control seq: once the batch's
                                  records pass it, every open run of the
                                  engine but close_keep ends interrupted,
                                  cause "engine restarted", in this txn (the
                                  reconciliation of a HELLO whose backlog
                                  ends at that seq; later runs untouched)   */
    uint64_t close_keep;       /* in: the run the engine said it is in       */
    bool closed;               /* out: that close was done                   */
    size_t ended;              /* out: runs it ended                         */
} hf_store_batch_t;

/* Commit several batches (of any engines, lanes, in order) in ONE
 * transaction: one fsync for all. Each batch is judged as hf_store_commit
 * judges one; a batch refused with HF_EPROTO writes nothing and does not
 * stop the others (its rc says so). Batches of the same (engine, epoch,
 * lane) follow each other in the order given. Returns HF_OK when the
 * transaction committed (look at each rc), or the whole call's error
 * (HF_EINVAL, HF_EFULL, HF_ESTORE, HF_ESTATE): then nothing was written. */
HF_EXPORT hf_err_t hf_store_commit_many(hf_store_t *self, hf_store_batch_t *b, size_t nb,
                                        uint64_t now_ns);

HF_EXPORT hf_err_t hf_store_commit(hf_store_t *self, const char *engine, uint64_t epoch,
                                   uint8_t lane, const hf_record_t *recs, size_t n,
                                   uint64_t now_ns, uint64_t *acked_out, size_t *dups);

/* The engine is back and not running `keep` (0: running nothing): every
 * other run of it still open (running or paused) ended while it was away
 * without a word, so it is ended as interrupted with `cause`, at the time
 * of its last record. Call only once the engine's backlog has been
 * committed (the router checks HELLO's last_seq against the cursor), so
 * that a run that did end in the backlog keeps its true outcome.
 * *ended gets how many runs were closed. */
/* Set a run's state and cause (creating its row if no record of it came),
 * when the aggregator concludes something the records do not say: after a
 * HELLO whose run state still disagrees with the records once the backlog
 * is in. HF_EINVAL, HF_ESTORE. */
HF_EXPORT hf_err_t hf_store_run_note(hf_store_t *self, const char *engine, uint64_t run,
                                     uint8_t state, const char *cause);
HF_EXPORT hf_err_t hf_store_close_open_runs(hf_store_t *self, const char *engine, uint64_t keep,
                                            const char *cause, size_t *ended);

/* At HELLO the engine had committed lane records up to last; the store had
 * up to acked: records (acked, last] of (engine, epoch, lane) come from the
 * backlog and are exported as observed offline. No-op when last <= acked. */
HF_EXPORT hf_err_t hf_store_note_backlog(hf_store_t *self, const char *engine, uint64_t epoch,
                                         uint8_t lane, uint64_t acked, uint64_t last);

/* Availability history: an outage begins (the engine went unavailable at
 * start_ns, aggregator wall clock, for reason) and ends (it said HELLO
 * again). begin is a no-op while an outage of the engine is open; end
 * closes the open one, if any. */
HF_EXPORT hf_err_t hf_store_outage_begin(hf_store_t *self, const char *engine, uint64_t start_ns,
                                         const char *reason);
/* A new command id: 1, 2, ... for the life of the store, durable, so that
 * ids never repeat across aggregator restarts (engines refuse a repeat). */
HF_EXPORT hf_err_t hf_store_next_command_id(hf_store_t *self, uint64_t *id);
HF_EXPORT hf_err_t hf_store_outage_end(hf_store_t *self, const char *engine, uint64_t end_ns);

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1];
    uint64_t start_ns; /* aggregator wall clock                          */
    uint64_t end_ns;   /* 0 while it lasts                               */
    char reason[48];
} hf_store_outage_t;
typedef int(hf_store_outage_fn)(const hf_store_outage_t *o, void *arg);
/* Outages of one engine (NULL: all), newest first per engine. */
HF_EXPORT hf_err_t hf_store_outages_each(hf_store_t *self, const char *engine,
                                         hf_store_outage_fn *fn, void *arg);

/* ---- reads -------------------------------------------------------------
 * Every read runs in its own short read transaction. Callbacks receive
 * borrowed structs valid only during the call; they must not call back into
 * the store. A callback returning non-zero stops the iteration (the
 * function still returns HF_OK). */

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1]; /* NUL-terminated                         */
    uint64_t current_epoch;            /* epoch of the last HELLO (or commit)    */
    uint32_t epoch_count;              /* epochs seen (next ordinal)             */
    uint64_t records[HF_LANE_COUNT];   /* records committed, per lane            */
    uint64_t first_seen_ns;            /* aggregator wall clock, ns since 1970   */
    uint64_t last_seen_ns;             /* aggregator wall clock: HELLO or commit */
    uint64_t last_run;                 /* run id in the last HELLO (0 = none)    */
    uint8_t last_run_state;            /* hf_run_state_t in the last HELLO       */
} hf_store_engine_t;

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1];
    uint64_t run;                              /* engine's run id                  */
    uint8_t state;                             /* hf_run_state_t, from records     */
    uint8_t last_event;                        /* hf_event_type_t, 0 = none yet    */
    uint64_t started_ts_ns;                    /* engine wall clock; 0 = unknown   */
    uint64_t ended_ts_ns;                      /* engine wall clock; 0 = not ended */
    uint64_t last_event_ts_ns;                 /* engine wall clock                */
    uint64_t samples;                          /* sample records committed         */
    uint64_t control;                          /* control-lane records of the run  */
    char method[HF_TEXT_MAX + 1];              /* from run_started text            */
    char channels[HF_STORE_CHANNELS_MAX + 1];  /* comma-separated, index order     */
    uint64_t last_ts_ns;                       /* engine wall clock of its newest record */
    char cause[48];                            /* why it ended, when the aggregator
                                                  concluded it (e.g. "engine restarted"); "" otherwise */
} hf_store_run_t;

typedef struct {
    uint64_t epoch;                  /* the spool's log id                  */
    uint32_t ordinal;                /* 0.. in order of first HELLO         */
    uint64_t acked[HF_LANE_COUNT];   /* highest committed seq per lane      */
    uint64_t first_seen_ns;          /* aggregator wall clock               */
} hf_store_epoch_t;

typedef int(hf_store_engine_fn)(const hf_store_engine_t *e, void *arg);
typedef int(hf_store_run_fn)(const hf_store_run_t *r, void *arg);
typedef int(hf_store_epoch_fn)(const hf_store_epoch_t *e, void *arg);

/* One engine row. HF_ENOTFOUND if unknown, HF_EINVAL bad id. */
HF_EXPORT hf_err_t hf_store_engine_get(hf_store_t *self, const char *engine,
                                       hf_store_engine_t *out);
/* Every engine, in byte order of the id. */
HF_EXPORT hf_err_t hf_store_engines_each(hf_store_t *self, hf_store_engine_fn *fn, void *arg);
/* One run row. HF_ENOTFOUND if unknown. */
HF_EXPORT hf_err_t hf_store_run_get(hf_store_t *self, const char *engine, uint64_t run,
                                    hf_store_run_t *out);
/* Runs of one engine (engine NULL: of all engines, engine by engine), in
 * run-id order, or newest (highest id) first per engine when reverse. */
HF_EXPORT hf_err_t hf_store_runs_each(hf_store_t *self, const char *engine, bool reverse,
                                      hf_store_run_fn *fn, void *arg);
/* Epochs of one engine, in ordinal order. */
HF_EXPORT hf_err_t hf_store_epochs_each(hf_store_t *self, const char *engine,
                                        hf_store_epoch_fn *fn, void *arg);

/* ---- export ------------------------------------------------------------ */

/* Where an export resumes. Zero-initialise to start at the beginning; pass
 * back what the previous call left. Treat as opaque (it is a key:
 * the next record at or after (ordinal, lane, seq) is visited next).
 * hf_store_pos_pack/unpack turn it into 13 bytes for the wire. */
typedef struct {
    uint32_t ordinal; /* epoch ordinal                     */
    uint8_t lane;     /* hf_lane_t                         */
    uint64_t seq;     /* next seq to look at in that lane  */
} hf_store_pos_t;
#define HF_STORE_POS_BYTES 13
HF_EXPORT void hf_store_pos_pack(const hf_store_pos_t *pos, uint8_t out[HF_STORE_POS_BYTES]);
/* HF_EPROTO if len is wrong or the lane is out of range. */
HF_EXPORT hf_err_t hf_store_pos_unpack(const uint8_t *buf, size_t len, hf_store_pos_t *pos);

typedef struct {
    uint64_t epoch;       /* the record's epoch (log id)                          */
    uint32_t ordinal;     /* that epoch's ordinal                                 */
    hf_record_t rec;      /* decoded record (rec.seq, rec.lane set)               */
    const char *channels; /* the run's channel names (comma-separated) or NULL;
                             borrowed, valid during the callback only           */
    bool observed_offline; /* it came from the engine's backlog (it was already
                              in the engine's spool when the connection that
                              brought it began), not seen live                */
} hf_store_export_rec_t;

/* Return 0 to take the record and continue, non-zero to refuse it and stop
 * (the position then stays AT the refused record, so the next call resumes
 * with it, e.g. when a reply buffer is full). */
typedef int(hf_store_export_fn)(const hf_store_export_rec_t *r, void *arg);

typedef struct {
    uint64_t run;         /* only records of this run; 0 = any                 */
    int lane;             /* HF_LANE_CONTROL / HF_LANE_DATA; -1 = any          */
    size_t max_records;   /* records handed to fn per call, >= 1               */
    size_t max_scan;      /* records read per call (bounds a filtered scan);
                             0 = default 1,000,000                            */
} hf_store_export_opts_t;

/* Hand engine's records from *pos onwards, in (ordinal, lane, seq) order,
 * to fn, until max_records were taken, max_scan were read, fn refused one,
 * or the end. *pos is advanced past every record taken (or scanned and
 * filtered out). *done is true when the end of the engine's records was
 * reached (nothing more to export). *taken (may be NULL) gets the count.
 * HF_ENOTFOUND unknown engine; HF_EINVAL bad arguments; HF_ECORRUPT a stored
 * record that does not decode (logged); HF_ESTORE. */
HF_EXPORT hf_err_t hf_store_export(hf_store_t *self, const char *engine,
                                   const hf_store_export_opts_t *opts, hf_store_pos_t *pos,
                                   hf_store_export_fn *fn, void *arg, size_t *taken, bool *done);

/* ---- retention ------------------------------------------------------------ */

typedef struct {
    uint64_t max_age_ns;  /* delete records older than this (engine timestamps); 0 = keep */
    size_t max_bytes;     /* delete the oldest records while live pages exceed this; 0 = none */
    size_t max_delete;    /* records deleted per call at most; 0 = 100,000              */
} hf_store_retention_t;

typedef struct {
    size_t deleted;       /* records deleted by the call                 */
    size_t by_age;        /* of those, for the age rule                  */
    size_t by_size;       /* of those, for the size rule                 */
    size_t live_bytes;    /* live bytes measured before (size rule only) */
    bool more;            /* max_delete stopped it: call again           */
} hf_store_retain_result_t;

/* Apply the retention rules once, in one transaction (docs/store.md):
 * records older than max_age go (per engine, epoch and lane, from the
 * oldest); then, if live pages exceed max_bytes, every engine's oldest
 * records go, a fair share each. What stays of each (epoch, lane) is a
 * contiguous newest suffix; cursors, runs, outages and gap ranges stay.
 * HF_OK (see *out), HF_EINVAL, HF_ESTORE. */
HF_EXPORT hf_err_t hf_store_retain(hf_store_t *self, const hf_store_retention_t *r,
                                   uint64_t now_ns, hf_store_retain_result_t *out);

/* Write a compacted copy of the store, as of one snapshot taken now, to
 * fd (LMDB's copy; writers go on meanwhile). HF_OK or HF_EIO/HF_ESTORE. */
HF_EXPORT hf_err_t hf_store_copy_to_fd(hf_store_t *self, int fd);

/* Bytes of live pages (in use minus LMDB's free list). */
HF_EXPORT size_t hf_store_live_bytes(hf_store_t *self);

/* Bytes of the map in use (pages x page size), and the current map size. */
HF_EXPORT size_t hf_store_used_bytes(hf_store_t *self);
HF_EXPORT size_t hf_store_map_bytes(hf_store_t *self);

#ifdef __cplusplus
}
#endif
#endif
