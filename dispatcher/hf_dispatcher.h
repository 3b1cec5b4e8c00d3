/* hf_dispatcher.h - the durable store-and-forward decorator.
 *
 * A dispatcher owns a spool (LMDB, on disk) and a link to each of one or
 * more aggregators (ZeroMQ DEALER). It implements hf_channel_t: the engine sends records,
 * the dispatcher commits them to the spool in groups (batch size or a
 * short window, whichever comes first), streams them to the aggregator,
 * and trims them once the aggregator acknowledges its own commit. The link
 * may be down for any length of time: records accumulate on disk and flow
 * in order when it returns. The engine never sees the link.
 *
 * Threads: hf_dispatcher_open starts one worker thread that owns the spool
 * and the socket. hf_channel send/flush may be called from one producer
 * thread. Every other function is for the thread that opened it.
 */
#ifndef HF_DISPATCHER_H_INCLUDED
#define HF_DISPATCHER_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_channel.h"
#include "hf_err.h"
#include "hf_proto.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_dispatcher_s hf_dispatcher_t;

#define HF_DISPATCHER_MAX_DEST 8 /* aggregators one engine streams to */

/* What happens when the spool reaches its bound (spool_max_bytes). Events,
 * alarms and hw_errors are never dropped; every dropped range of samples is
 * counted, announced to the aggregator as a gap record (range, count,
 * reason) and raises an alarm. */
typedef enum {
    HF_FULL_DECIMATE = 0,    /* default: thin the sample backlog, keeping every
                                2nd, 4th, 8th ... as needed                  */
    HF_FULL_DROP_OLDEST = 1, /* delete the oldest quarter of the samples      */
    HF_FULL_BLOCK = 2,       /* drop nothing: send() blocks once staging fills */
} hf_full_policy_t;

HF_EXPORT const char *hf_full_policy_name(hf_full_policy_t p);
/* "decimate", "drop-oldest", "block" -> HF_OK; else HF_EINVAL. */
HF_EXPORT hf_err_t hf_full_policy_parse(const char *s, hf_full_policy_t *out);

typedef struct {
    const char *engine_id;   /* required, hf_engine_id_valid                   */
    const char *endpoint;    /* required, e.g. "tcp://127.0.0.1:5555"; several
                                aggregators as "EP1,EP2" (at most
                                HF_DISPATCHER_MAX_DEST): each gets every
                                record, with its own connection and cursor */
    const char *spool_dir;   /* required                                       */
    size_t spool_max_bytes;  /* bound on the spool (bytes), default 1 GiB      */
    bool durable;            /* fsync every group commit (default true)        */
    uint32_t commit_window_ms;  /* group-commit window, default 2 ms           */
    uint32_t commit_max;        /* records per group commit, default 8192      */
    uint32_t staging_max;       /* records held in memory before commit, default 16384;
                                   lowered for small spools (a group stays ~1% of it) */
    uint32_t batch_max;         /* records per BATCH frame, default HF_PROTO_MAX_BATCH:
                                   frames are as large as the committed backlog allows */
    uint32_t window;            /* BATCH frames in flight per lane, default 8  */
    uint32_t heartbeat_ms;      /* PING interval when idle, default 1000 ms    */
    uint32_t peer_timeout_ms;   /* no frame for this long: reconnect, default 3000 ms */
    uint32_t reconnect_max_ms;  /* reconnect backoff cap, default 2000 ms      */
    hf_full_policy_t full_policy; /* default HF_FULL_DECIMATE                  */
    /* CURVE (docs/security.md): z85 keys, 40 characters each, copied at
     * open; all three or none. NULL (the default): the plain mechanism. */
    const char *curve_server_key;  /* the aggregator's public key             */
    const char *curve_public_key;  /* this engine's key pair                  */
    const char *curve_secret_key;
} hf_dispatcher_opts_t;

HF_EXPORT hf_dispatcher_opts_t hf_dispatcher_opts_default(void);

/* CURVE keys as z85 text (40 characters and a NUL each). */
typedef struct {
    char server_key[41];
    char public_key[41];
    char secret_key[41];
} hf_dispatcher_keys_t;

/* Load this engine's certificate (a czmq zcert file: "NAME" or
 * "NAME_secret", as written by `holdfast keygen`; the secret key is
 * required) and the aggregator's public certificate into *out, for the
 * curve_* options. HF_OK; HF_EINVAL when a file is missing or is not such a
 * certificate (logged). */
HF_EXPORT hf_err_t hf_dispatcher_keys_load(const char *cert, const char *server_cert,
                                           hf_dispatcher_keys_t *out);

/* Open the spool, start the worker. NULL on error with *err set
 * (HF_EINVAL bad options, HF_ECORRUPT foreign spool, HF_ESTORE, HF_EIO). */
HF_EXPORT hf_dispatcher_t *hf_dispatcher_open(const hf_dispatcher_opts_t *opts, hf_err_t *err);

/* The channel view; borrowed, valid until hf_dispatcher_close. Its close op
 * is a no-op: the dispatcher is closed with hf_dispatcher_close. */
HF_EXPORT hf_channel_t *hf_dispatcher_channel(hf_dispatcher_t *self);

typedef struct {
    uint64_t epoch;                         /* spool epoch                 */
    uint64_t committed[HF_LANE_COUNT];      /* last seq committed          */
    uint64_t acked[HF_LANE_COUNT];          /* last seq acked by EVERY destination */
    uint64_t pending[HF_LANE_COUNT];        /* records in spool, not acked */
    uint64_t reconnects;                    /* connections made             */
    uint64_t dropped;                       /* samples dropped by the full-spool policy */
    uint64_t gaps;                          /* gap records written          */
    uint64_t spool_bytes;                   /* bytes of the spool map in use */
    hf_status_t backlog;                    /* backlog figures as last sent in STATUS */
    bool connected;                         /* at least one link streaming now */
    uint32_t destinations;                  /* aggregators configured      */
    uint32_t connected_count;               /* links streaming now         */
    bool spool_level_alarm;                 /* raised: spool >= 50 % of its bound */
    bool disk_low_alarm;                    /* raised: spool's disk < 10 % free  */
} hf_dispatcher_stats_t;

/* A snapshot of the figures; thread-safe. */
HF_EXPORT void hf_dispatcher_stats(hf_dispatcher_t *self, hf_dispatcher_stats_t *out);

/* Wait until everything committed is acked or timeout_ms passes:
 * HF_OK or HF_ETIMEDOUT. Does not flush; call hf_channel_flush first. */
HF_EXPORT hf_err_t hf_dispatcher_drain(hf_dispatcher_t *self, uint32_t timeout_ms);

/* Make every blocked or later send / drain return HF_ECLOSED within
 * ~100 ms, and flush within ~500 ms (time enough for a healthy spool to
 * commit what was sent), so that a shutdown is never stuck behind a full
 * spool or a dead link. Async-signal-safe: may be called from a signal
 * handler. Records already committed stay in the spool. */
HF_EXPORT void hf_dispatcher_interrupt(hf_dispatcher_t *self);

/* The engine's sample timing (its current run's counters: samples taken,
 * late, missed), carried to the aggregator in the next STATUS frames so
 * that `holdfast status` shows them. Any thread; cheap. */
HF_EXPORT void hf_dispatcher_set_timing(hf_dispatcher_t *self, uint64_t samples, uint64_t late,
                                        uint64_t missed);

/* The engine's run as its committed records tell it (the spool's view,
 * what HELLO reports): the last run started and its state. Any thread. A
 * supervised engine task that restarts reads this to end a run it left
 * behind (docs/supervision.md). */
HF_EXPORT void hf_dispatcher_run(hf_dispatcher_t *self, uint64_t *run, uint8_t *state);

/* Commands from the aggregator(s) (docs/commands.md), in arrival order.
 * Waits until deadline_mono_ns (hf_clock_mono_ns) for one: HF_OK and *out
 * (its body, if any, stays valid until the next call or close),
 * HF_ETIMEDOUT, or HF_ECLOSED once interrupted or closing. For the thread
 * that runs the engine's controller; answer with hf_controller_command. */
HF_EXPORT hf_err_t hf_dispatcher_next_command(hf_dispatcher_t *self, uint64_t deadline_mono_ns,
                                              hf_command_t *out);

/* Flush what was sent, stop the worker, close the spool; NULL-safe,
 * sets *self_p to NULL. Records not yet acked stay in the spool. */
HF_EXPORT void hf_dispatcher_close(hf_dispatcher_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
