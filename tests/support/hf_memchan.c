/* hf_memchan.c - hf_memchan_t, an in-memory hf_channel_t for tests.
 *
 * Invariants: count <= capacity; seq[lane] is the seq given to the last
 * stored record of that lane.
 */
#include "hf_memchan.h"

#include <assert.h>
#include <stdlib.h>

struct hf_memchan_s {
    hf_channel_t channel;
    hf_record_t *recs;              /* capacity entries                     */
    size_t capacity;                /* records                              */
    size_t count;                   /* records stored                       */
    uint64_t sends;                 /* send calls                           */
    uint64_t refused;               /* sends not stored                     */
    uint64_t flushes;               /* flush calls                          */
    uint64_t fail_from;             /* UINT64_MAX: never                    */
    hf_err_t fail_rc;
    uint64_t seq[HF_LANE_COUNT];    /* last seq per lane                    */
};

static hf_err_t
s_send(void *impl, const hf_record_t *rec)
{
    hf_memchan_t *self = impl;
    uint64_t n = self->sends++;
    if (n >= self->fail_from) {
        self->refused++;
        return self->fail_rc;
    }
    if (self->count >= self->capacity) {
        self->refused++;
        return HF_EFULL;
    }
    hf_record_t *r = &self->recs[self->count++];
    *r = *rec;
    if (r->lane < HF_LANE_COUNT)
        r->seq = ++self->seq[r->lane];
    return HF_OK;
}

static hf_err_t
s_flush(void *impl)
{
    ((hf_memchan_t *)impl)->flushes++;
    return HF_OK;
}

static void
s_close(void *impl)
{
    (void)impl;
}

static const hf_channel_ops_t s_ops = {.send = s_send, .flush = s_flush, .close = s_close};

hf_memchan_t *
hf_memchan_new(size_t capacity, hf_err_t *err)
{
    hf_err_t rc = HF_OK;
    hf_memchan_t *self = NULL;
    if (capacity == 0) {
        rc = HF_EINVAL;
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (self)
        self->recs = calloc(capacity, sizeof *self->recs);
    if (!self || !self->recs) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->capacity = capacity;
    self->fail_from = UINT64_MAX;
    self->channel = (hf_channel_t){.ops = &s_ops, .impl = self};
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_memchan_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_memchan_destroy(hf_memchan_t **self_p)
{
    assert(self_p);
    hf_memchan_t *self = *self_p;
    if (!self)
        return;
    free(self->recs);
    free(self);
    *self_p = NULL;
}

hf_channel_t *
hf_memchan_channel(hf_memchan_t *self)
{
    assert(self);
    return &self->channel;
}

size_t
hf_memchan_count(const hf_memchan_t *self)
{
    assert(self);
    return self->count;
}

const hf_record_t *
hf_memchan_at(const hf_memchan_t *self, size_t idx)
{
    assert(self);
    return idx < self->count ? &self->recs[idx] : NULL;
}

size_t
hf_memchan_count_kind(const hf_memchan_t *self, uint8_t kind, uint8_t ev_type)
{
    assert(self);
    size_t n = 0;
    for (size_t i = 0; i < self->count; i++) {
        const hf_record_t *r = &self->recs[i];
        int type_ok = kind != HF_KIND_EVENT || ev_type == 0 || r->u.event.type == ev_type;
        if (r->kind == kind && type_ok)
            n++;
    }
    return n;
}

uint64_t
hf_memchan_refused(const hf_memchan_t *self)
{
    assert(self);
    return self->refused;
}

uint64_t
hf_memchan_flushes(const hf_memchan_t *self)
{
    assert(self);
    return self->flushes;
}

void
hf_memchan_fail_from(hf_memchan_t *self, uint64_t n, hf_err_t rc)
{
    assert(self);
    self->fail_from = n;
    self->fail_rc = rc;
}

void
hf_memchan_clear(hf_memchan_t *self)
{
    assert(self);
    self->count = 0;
}
