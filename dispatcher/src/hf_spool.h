/* hf_spool.h - the engine's durable log (private to the dispatcher).
 *
 * One LMDB environment in a directory. Named databases:
 *   "meta"    : magic + format version, epoch, next seq per lane, acked per lane
 *   "control" : seq (8-byte big-endian key) -> encoded record (hf_record_encode)
 *   "data"    : same, for the data lane
 *
 * Invariants:
 * - Sequence numbers are strictly increasing per lane, start at 1, and are
 *   never reused: the last assigned seq lives in "meta" and is updated in
 *   the same write transaction as the records (a trim never lowers it).
 * - A record is deleted only by hf_spool_trim(), i.e. after an ACK covering
 *   its seq; the acked cursor is stored in the same transaction.
 * - The epoch is a random non-zero 64-bit id made when the spool is
 *   created; a wiped spool gets a new one.
 * - An existing directory whose meta lacks our magic or has another format
 *   version is refused with HF_ECORRUPT and left untouched.
 *
 * Thread-safety: one thread owns a spool (the dispatcher's). The env is
 * opened with MDB_NOTLS so read transactions are not tied to threads.
 */
#ifndef HF_SPOOL_H_INCLUDED
#define HF_SPOOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_spool_s hf_spool_t;

typedef struct {
    size_t map_bytes; /* initial LMDB map size (bytes), default 64 MiB      */
    size_t max_bytes; /* hard bound on the map (bytes), default 1 GiB; the
                         map grows on MDB_MAP_FULL up to this, then HF_EFULL */
    bool durable;     /* true (default): fsync every commit; false: relaxed */
} hf_spool_opts_t;

hf_spool_opts_t hf_spool_opts_default(void);

/* Option limits (checked by hf_spool_open, HF_EINVAL outside them). */
#define HF_SPOOL_MIN_MAP_BYTES ((size_t)64 << 10) /* bytes, smallest map_bytes  */
#define HF_SPOOL_MIN_MAX_BYTES ((size_t)1 << 20)  /* bytes, smallest max_bytes  */
/* The last part of max_bytes is kept for trims (an LMDB delete copies pages
 * before freeing them, so a full map could otherwise never be trimmed):
 * appends stop with HF_EFULL at max_bytes - reserve, with
 * reserve = max(max_bytes / 16, 32 pages), at most max_bytes / 2. The map
 * never exceeds max_bytes (unless an existing file was already larger). */

/* Open (creating if absent) the spool in directory dir (created 0700 if
 * missing). NULL on error with *err set: HF_EINVAL bad options,
 * HF_ECORRUPT foreign/corrupt/other-version spool, HF_ESTORE other LMDB
 * failure, HF_EIO directory trouble. Runs mdb_reader_check at open.
 * opts NULL means hf_spool_opts_default(). Only the last path component is
 * created. An LMDB environment that holds no key at all (left by a crash
 * during our own creation) is adopted as a fresh spool; any other
 * environment without our meta is refused and not written to. Never open
 * the same directory twice in one process, nor use a spool across fork(). */
hf_spool_t *hf_spool_open(const char *dir, const hf_spool_opts_t *opts, hf_err_t *err);
/* NULL-safe, idempotent; sets *self_p to NULL. In relaxed mode
 * (durable=false) it syncs first. */
void hf_spool_close(hf_spool_t **self_p);

uint64_t hf_spool_epoch(const hf_spool_t *self);
/* Last seq assigned (committed) in lane, 0 if none ever. */
uint64_t hf_spool_last_seq(const hf_spool_t *self, hf_lane_t lane);
/* Highest seq trimmed as acked in lane (0 if none). */
uint64_t hf_spool_acked(const hf_spool_t *self, hf_lane_t lane);
/* Records held (not yet trimmed) in lane. */
uint64_t hf_spool_depth(const hf_spool_t *self, hf_lane_t lane);

/* Group commit: assign seqs to recs[0..n) (each in the lane of its kind,
 * hf_record_lane_of), encode them and write them all in ONE write
 * transaction. recs[i].seq and .lane are set on HF_OK. On error nothing
 * was committed and no seq was consumed. HF_EFULL when the map cannot
 * grow further (max_bytes). HF_EINVAL for a record that does not encode
 * (unknown kind, larger than HF_PROTO_MAX_RECORD); HF_ECORRUPT if the
 * store contradicts the seq invariants; HF_ESTORE / HF_EIO for LMDB or
 * disk failures (an I/O failure during commit, or a panic, makes the spool
 * sticky: later calls return HF_ESTATE). n == 0 is a no-op. recs is
 * borrowed; it is left untouched on error. */
hf_err_t hf_spool_append(hf_spool_t *self, hf_record_t *recs, size_t n);

/* Callback for hf_spool_read: one encoded record, borrowed for the call. */
typedef hf_err_t(hf_spool_read_fn)(void *arg, uint64_t seq, const uint8_t *rec, size_t len);

/* Visit records of lane with seq >= from, in seq order, at most max_n
 * records and at most max_bytes of encoded data (at least one record is
 * visited if any exists), in one read transaction. *n_out gets the number
 * visited. A callback error stops the visit and is returned.
 * rec is valid only during the callback (copy what must outlive it); the
 * callback must not call any other hf_spool function on self.
 * *n_out (n_out may be NULL) counts the records whose callback returned
 * HF_OK. max_n == 0 visits nothing (HF_OK). HF_ECORRUPT for a stored
 * entry with a bad key or a length outside 1..HF_PROTO_MAX_RECORD. */
hf_err_t hf_spool_read(hf_spool_t *self, hf_lane_t lane, uint64_t from, size_t max_n,
                       size_t max_bytes, hf_spool_read_fn *fn, void *arg, size_t *n_out);

/* Delete every record of lane with seq <= upto and remember upto as acked,
 * in one write transaction. upto below the current acked is a no-op;
 * upto above last_seq is HF_EINVAL. A trim may use the reserve kept at
 * the end of max_bytes (HF_EFULL only if even that is exhausted). */
hf_err_t hf_spool_trim(hf_spool_t *self, hf_lane_t lane, uint64_t upto);

/* Relaxed mode (durable=false) only: flush every commit made so far to
 * disk (mdb_env_sync, forced). The owner calls it periodically; commits
 * since the last sync may be lost on an OS crash or power loss, see
 * docs/spool.md. In durable mode it is a cheap no-op. HF_EIO on failure
 * (the spool then turns sticky, HF_ESTATE). */
hf_err_t hf_spool_sync(hf_spool_t *self);

/* Bytes used in the map (pages in use x page size). This is the file's
 * high-water mark: trimmed pages are reused but the file never shrinks. */
size_t hf_spool_used_bytes(const hf_spool_t *self);
/* Current LMDB map size (bytes): starts at map_bytes, doubles on demand. */
size_t hf_spool_map_bytes(const hf_spool_t *self);

/* Bytes of pages holding data (pages in use minus LMDB's free list): what
 * the full-spool policy watches. Reads the free list; call it sparingly. */
size_t hf_spool_live_bytes(hf_spool_t *self);
/* The bound appends may grow the map to (max_bytes less the reserve kept
 * for trims and drops). */
size_t hf_spool_limit_bytes(const hf_spool_t *self);

/* How hf_spool_drop makes room in the data lane. */
typedef enum {
    HF_SPOOL_DROP_DECIMATE = 1, /* keep every 2nd record of the unacked backlog
                                   (repeated calls: every 4th, 8th, ...)      */
    HF_SPOOL_DROP_OLDEST = 2,   /* delete the oldest quarter of the backlog   */
} hf_spool_drop_t;

/* Make room by deleting unacked samples (data lane only: the control lane
 * is never dropped) and append ONE gap record to the control lane that
 * announces the range and the count, in ONE write transaction, so that no
 * crash can leave an unannounced hole. *gap is the template (its ts_ns,
 * mono_ns and run are kept); on HF_OK it is filled in (kind, lane, seq,
 * u.gap) and *dropped gets the count. HF_ENOTFOUND when the data lane holds
 * fewer than 2 records (nothing useful to drop). Records in flight to the
 * aggregator may be among those dropped; the gap record covers them. */
hf_err_t hf_spool_drop(hf_spool_t *self, hf_spool_drop_t how, hf_record_t *gap,
                       uint64_t *dropped);

#ifdef __cplusplus
}
#endif
#endif
