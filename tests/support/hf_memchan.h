/* hf_memchan.h - an in-memory hf_channel_t for tests.
 *
 * Stores a copy of every record sent, in a bounded array, assigning seq per
 * lane (1, 2, ...) to the stored copy like a spool would. A send past the
 * capacity returns HF_EFULL and is counted, never stored. Tests can also
 * make sends fail from a given count on (hf_memchan_fail_from).
 *
 * Not thread-safe: one test thread.
 */
#ifndef HF_MEMCHAN_H_INCLUDED
#define HF_MEMCHAN_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_channel.h"
#include "hf_err.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_memchan_s hf_memchan_t;

/* capacity: records kept (>= 1). NULL on HF_EINVAL / HF_ENOMEM. */
hf_memchan_t *hf_memchan_new(size_t capacity, hf_err_t *err);
/* NULL-safe; sets *self_p to NULL. */
void hf_memchan_destroy(hf_memchan_t **self_p);

/* The channel view, borrowed (valid until destroy). Its close op is a no-op. */
hf_channel_t *hf_memchan_channel(hf_memchan_t *self);

size_t hf_memchan_count(const hf_memchan_t *self);
/* Borrowed; NULL if idx >= count. */
const hf_record_t *hf_memchan_at(const hf_memchan_t *self, size_t idx);
/* Records of kind (and, for events, of type; 0 = any type) stored. */
size_t hf_memchan_count_kind(const hf_memchan_t *self, uint8_t kind, uint8_t ev_type);
uint64_t hf_memchan_refused(const hf_memchan_t *self); /* sends refused (full or failing) */
uint64_t hf_memchan_flushes(const hf_memchan_t *self);
/* From the n-th send on (0-based), every send returns rc without storing. */
void hf_memchan_fail_from(hf_memchan_t *self, uint64_t n, hf_err_t rc);
void hf_memchan_clear(hf_memchan_t *self);

#ifdef __cplusplus
}
#endif
#endif
