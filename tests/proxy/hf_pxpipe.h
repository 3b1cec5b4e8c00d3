/* hf_pxpipe.h - one direction of hf-proxy: a bounded byte pipe that
 * releases bytes on a schedule (delay and throttle). Pure: no sockets, no
 * clock; the caller passes the time in.
 *
 * Design: a byte ring (capacity fixed at creation) plus a ring of chunk
 * marks (end offset, ready time). A chunk pushed at time t with delay d is
 * held until t + d. A token bucket (rate bytes/s, burst = 50 ms of rate,
 * at least 1 byte) caps how many ready bytes may leave. The proxy reads a
 * socket only while hf_pxpipe_space() > 0: that is its backpressure.
 *
 * Invariants:
 * - 0 <= pending <= cap; bytes leave in the order they came in, unchanged.
 * - chunk marks are in increasing end offset; the last mark ends at
 *   in_total; ready times only matter per chunk (a later chunk with an
 *   earlier ready time still waits for the chunks before it: FIFO).
 * - tokens <= burst (in milli-bytes, so that rates below 1000 B/s work on
 *   a millisecond clock).
 */
#ifndef HF_PXPIPE_H_INCLUDED
#define HF_PXPIPE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_time.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_PXPIPE_MAX_CHUNKS 4096u          /* chunk marks held at once      */
#define HF_PXPIPE_MAX_RATE 10000000000ull   /* bytes/s, throttle upper bound */

typedef struct hf_pxpipe_s hf_pxpipe_t;

/* A pipe holding up to cap bytes (1..1 GiB); throttle off, nothing held.
 * NULL with *err = HF_EINVAL (bad cap) or HF_ENOMEM. */
hf_pxpipe_t *hf_pxpipe_new(size_t cap, hf_err_t *err);
/* NULL-safe; sets *self_p to NULL. */
void hf_pxpipe_destroy(hf_pxpipe_t **self_p);

/* Bytes a push may take now (0: stop reading the source socket). */
size_t hf_pxpipe_space(const hf_pxpipe_t *self);
/* Bytes held (ready or not). */
size_t hf_pxpipe_pending(const hf_pxpipe_t *self);

/* Copy up to len bytes in, released no earlier than ready_at. Returns the
 * bytes taken (min(len, space)). A push whose ready_at equals the last
 * chunk's extends that chunk, so that a steady stream does not use up the
 * chunk marks. */
size_t hf_pxpipe_push(hf_pxpipe_t *self, const uint8_t *data, size_t len, hf_ms_t ready_at);

/* Set the throttle: bytes_per_s 0 = unlimited; at most HF_PXPIPE_MAX_RATE
 * (HF_EINVAL above). The bucket starts full (one burst). */
hf_err_t hf_pxpipe_set_rate(hf_pxpipe_t *self, uint64_t bytes_per_s, hf_ms_t now);

/* Bytes that may leave at `now` (ready, within the tokens), contiguous at
 * *data (borrowed: valid until the next push or consume). 0 if none. */
size_t hf_pxpipe_peek(hf_pxpipe_t *self, hf_ms_t now, const uint8_t **data);
/* n bytes (<= the last peek's result) left: drop them, spend the tokens. */
void hf_pxpipe_consume(hf_pxpipe_t *self, size_t n, hf_ms_t now);

/* When the next bytes may leave: `now` if some may leave now, HF_MS_NEVER
 * if nothing is held, else the later of the head chunk's ready time and the
 * time the bucket holds min(ready bytes, burst). */
hf_ms_t hf_pxpipe_deadline(const hf_pxpipe_t *self, hf_ms_t now);

#ifdef __cplusplus
}
#endif
#endif
