/* hf_hwreport.c - hf_hwreport_t: rate limit of hw_error records (see the
 * header for the rule).
 *
 * Design notes:
 * - Linear search over a small table: at most a few keys fail at once and
 *   the table is touched only on failures, never on the success path.
 * - A slot is free for another key once it holds no suppressed count and
 *   its interval is over: forgetting it then changes nothing (the next
 *   failure of that key would make a record anyway).
 *
 * Invariants: a used slot with suppressed > 0 has last_ns set and reports
 * at last_ns + interval_ns at the latest; suppressed counts are never lost
 * (a slot holding one is never reused).
 */
#include "hf_hwreport.h"

#include <assert.h>
#include <string.h>

void
hf_hwreport_init(hf_hwreport_t *self, uint64_t interval_ns)
{
    assert(self);
    memset(self, 0, sizeof *self);
    self->interval_ns = interval_ns;
}

static uint64_t
s_due(const hf_hwreport_t *self, const hf_hwreport_slot_t *s)
{
    return s->last_ns > UINT64_MAX - self->interval_ns ? UINT64_MAX
                                                       : s->last_ns + self->interval_ns;
}

int
hf_hwreport_fail(hf_hwreport_t *self, uint8_t op, uint32_t index, uint64_t t_ns,
                 const hf_hal_error_t *e, uint64_t *folded)
{
    assert(self && e && folded);
    *folded = 0;
    if (self->interval_ns == 0)
        return 1;
    hf_hwreport_slot_t *free_slot = NULL;
    for (uint32_t i = 0; i < HF_HWREPORT_SLOTS; i++) {
        hf_hwreport_slot_t *s = &self->slots[i];
        if (s->used && s->op == op && s->index == index && s->cls == (uint8_t)e->cls) {
            if (t_ns >= s_due(self, s)) {
                *folded = s->suppressed;
                s->suppressed = 0;
                s->last_ns = t_ns;
                return 1;
            }
            s->suppressed++;
            s->last = *e;
            return 0;
        }
        if (!free_slot && (!s->used || (s->suppressed == 0 && t_ns >= s_due(self, s))))
            free_slot = s;
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->used = 1;
        free_slot->op = op;
        free_slot->index = index;
        free_slot->cls = (uint8_t)e->cls;
        free_slot->last_ns = t_ns;
    }
    return 1; /* first failure of the key (or the table is full: no limit) */
}

uint64_t
hf_hwreport_next(const hf_hwreport_t *self)
{
    assert(self);
    uint64_t next = UINT64_MAX;
    for (uint32_t i = 0; i < HF_HWREPORT_SLOTS; i++) {
        const hf_hwreport_slot_t *s = &self->slots[i];
        if (s->used && s->suppressed > 0 && s_due(self, s) < next)
            next = s_due(self, s);
    }
    return next;
}

int
hf_hwreport_take_due(hf_hwreport_t *self, uint64_t t_ns, hf_hwreport_due_t *out)
{
    assert(self && out);
    hf_hwreport_slot_t *best = NULL;
    for (uint32_t i = 0; i < HF_HWREPORT_SLOTS; i++) {
        hf_hwreport_slot_t *s = &self->slots[i];
        if (s->used && s->suppressed > 0 && (t_ns == UINT64_MAX || s_due(self, s) <= t_ns) &&
            (!best || s_due(self, s) < s_due(self, best)))
            best = s;
    }
    if (!best)
        return 0;
    uint64_t due = s_due(self, best);
    out->op = best->op;
    out->index = best->index;
    out->count = best->suppressed;
    out->at_ns = due;
    out->last = best->last;
    best->suppressed = 0;
    if (due != UINT64_MAX)
        best->last_ns = due;
    return 1;
}
