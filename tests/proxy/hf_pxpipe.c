/* hf_pxpipe.c - hf_pxpipe_t: a bounded byte pipe released on a schedule.
 * See hf_pxpipe.h for the design and the invariants.
 *
 * Offsets are absolute byte counts (in_total, out_total, chunk ends); the
 * ring index is offset % cap. 64-bit counts never wrap in a test's life.
 */
#include "hf_pxpipe.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CAP ((size_t)1 << 30) /* bytes */
#define S_REFILL_MAX_MS 1000000u    /* caps dt * rate well inside 64 bits */

typedef struct {
    uint64_t end;     /* absolute offset one past the chunk's last byte */
    hf_ms_t ready_at; /* ms: the chunk may leave from then on           */
} s_mark_t;

struct hf_pxpipe_s {
    uint8_t *buf;       /* cap bytes                                    */
    size_t cap;         /* bytes                                        */
    uint64_t in_total;  /* bytes pushed, ever                           */
    uint64_t out_total; /* bytes consumed, ever                         */
    s_mark_t marks[HF_PXPIPE_MAX_CHUNKS];
    uint32_t m_head;    /* index of the oldest mark                     */
    uint32_t m_n;       /* marks held                                   */
    uint64_t rate;      /* bytes/s, 0 = unlimited                       */
    uint64_t burst;     /* bytes the bucket holds at most               */
    uint64_t tokens;    /* milli-bytes                                  */
    hf_ms_t tok_at;     /* ms: tokens were last refilled                */
};

hf_pxpipe_t *
hf_pxpipe_new(size_t cap, hf_err_t *err)
{
    hf_err_t rc = HF_EINVAL;
    hf_pxpipe_t *self = NULL;
    if (cap == 0 || cap > S_MAX_CAP)
        goto fail;
    rc = HF_ENOMEM;
    self = calloc(1, sizeof *self);
    if (!self)
        goto fail;
    self->buf = malloc(cap);
    if (!self->buf)
        goto fail;
    self->cap = cap;
    if (err)
        *err = HF_OK;
    return self;
fail:
    hf_pxpipe_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_pxpipe_destroy(hf_pxpipe_t **self_p)
{
    assert(self_p);
    hf_pxpipe_t *self = *self_p;
    if (!self)
        return;
    free(self->buf);
    free(self);
    *self_p = NULL;
}

size_t
hf_pxpipe_pending(const hf_pxpipe_t *self)
{
    assert(self);
    return (size_t)(self->in_total - self->out_total);
}

size_t
hf_pxpipe_space(const hf_pxpipe_t *self)
{
    assert(self);
    if (self->m_n == HF_PXPIPE_MAX_CHUNKS)
        return 0;
    return self->cap - hf_pxpipe_pending(self);
}

size_t
hf_pxpipe_push(hf_pxpipe_t *self, const uint8_t *data, size_t len, hf_ms_t ready_at)
{
    assert(self && (data || len == 0));
    size_t n = hf_pxpipe_space(self);
    if (len < n)
        n = len;
    if (n == 0)
        return 0;
    size_t at = (size_t)(self->in_total % self->cap);
    size_t first = self->cap - at < n ? self->cap - at : n;
    memcpy(self->buf + at, data, first);
    memcpy(self->buf, data + first, n - first);
    self->in_total += n;
    s_mark_t *last = NULL;
    if (self->m_n)
        last = &self->marks[(self->m_head + self->m_n - 1) % HF_PXPIPE_MAX_CHUNKS];
    if (last && last->ready_at == ready_at) {
        last->end = self->in_total;
    } else {
        s_mark_t *m = &self->marks[(self->m_head + self->m_n) % HF_PXPIPE_MAX_CHUNKS];
        m->end = self->in_total;
        m->ready_at = ready_at;
        self->m_n++;
    }
    return n;
}

hf_err_t
hf_pxpipe_set_rate(hf_pxpipe_t *self, uint64_t bytes_per_s, hf_ms_t now)
{
    assert(self);
    if (bytes_per_s > HF_PXPIPE_MAX_RATE)
        return HF_EINVAL;
    self->rate = bytes_per_s;
    /* 50 ms worth: small enough that a rate test over a second sees the
     * cap, large enough that the proxy wakes at most ~20 times a second. */
    self->burst = bytes_per_s / 20 ? bytes_per_s / 20 : 1;
    self->tokens = self->burst * 1000;
    self->tok_at = now;
    return HF_OK;
}

/* Tokens the bucket would hold at `now` (milli-bytes). */
static uint64_t
s_tokens_at(const hf_pxpipe_t *self, hf_ms_t now)
{
    uint64_t dt = now > self->tok_at ? now - self->tok_at : 0;
    if (dt > S_REFILL_MAX_MS)
        dt = S_REFILL_MAX_MS;
    uint64_t t = self->tokens + dt * self->rate;
    return t > self->burst * 1000 ? self->burst * 1000 : t;
}

/* Bytes a throttled write waits for: the head chunk, at most one burst. */
static uint64_t
s_need(const hf_pxpipe_t *self)
{
    uint64_t head = self->marks[self->m_head].end - self->out_total;
    return head < self->burst ? head : self->burst;
}

size_t
hf_pxpipe_peek(hf_pxpipe_t *self, hf_ms_t now, const uint8_t **data)
{
    assert(self && data);
    *data = NULL;
    if (self->m_n == 0)
        return 0;
    uint64_t ready_end = self->out_total;
    for (uint32_t i = 0; i < self->m_n; i++) {
        const s_mark_t *m = &self->marks[(self->m_head + i) % HF_PXPIPE_MAX_CHUNKS];
        if (m->ready_at > now)
            break;
        ready_end = m->end;
    }
    uint64_t n = ready_end - self->out_total;
    if (n == 0)
        return 0;
    if (self->rate) {
        self->tokens = s_tokens_at(self, now);
        self->tok_at = now;
        if (self->tokens < s_need(self) * 1000)
            return 0;
        if (n > self->tokens / 1000)
            n = self->tokens / 1000;
    }
    size_t at = (size_t)(self->out_total % self->cap);
    if (n > self->cap - at)
        n = self->cap - at;
    *data = self->buf + at;
    return (size_t)n;
}

void
hf_pxpipe_consume(hf_pxpipe_t *self, size_t n, hf_ms_t now)
{
    assert(self && n <= hf_pxpipe_pending(self));
    self->out_total += n;
    while (self->m_n && self->marks[self->m_head].end <= self->out_total) {
        self->m_head = (self->m_head + 1) % HF_PXPIPE_MAX_CHUNKS;
        self->m_n--;
    }
    if (self->rate) {
        self->tokens = s_tokens_at(self, now);
        self->tok_at = now;
        uint64_t spend = (uint64_t)n * 1000;
        self->tokens = self->tokens > spend ? self->tokens - spend : 0;
    }
}

hf_ms_t
hf_pxpipe_deadline(const hf_pxpipe_t *self, hf_ms_t now)
{
    assert(self);
    if (self->m_n == 0)
        return HF_MS_NEVER;
    hf_ms_t at = self->marks[self->m_head].ready_at;
    if (at < now)
        at = now;
    if (self->rate) {
        uint64_t need = s_need(self) * 1000;
        uint64_t have = s_tokens_at(self, at);
        if (have < need)
            at += (need - have + self->rate - 1) / self->rate; /* ceil, ms */
    }
    return at;
}
