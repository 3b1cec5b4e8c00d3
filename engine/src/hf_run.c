/* hf_run.c - hf_run_t: executes one method on one instrument, driven by
 * time passed in.
 *
 *   IDLE --start--> RUNNING --completion due--> COMPLETED
 *                   RUNNING <--pause / resume--> PAUSED
 *                   RUNNING|PAUSED --abort--> ABORTED
 *                   RUNNING|PAUSED --interrupt--> INTERRUPTED
 *                   RUNNING --read disconnected/fatal, write keeps failing--> INTERRUPTED
 *   COMPLETED, ABORTED, INTERRUPTED are terminal.
 *
 * - Pause stops the schedule: pause first does everything due up to its
 *   time, then nothing is sampled or written until resume, which shifts
 *   every pending deadline (step, ramp, sample grid) by the time paused. A
 *   paused stretch is neither late nor missed: the method's clock stopped.
 *
 * Design notes:
 * - Time is a schedule, not the tick times. Step k+1 starts at the
 *   scheduled end of step k; samples sit on a fixed grid per sample step,
 *   start + round(k * 1e9 / rate). A late tick catches up: it performs
 *   everything due, in time order, with each action at its scheduled time
 *   (samples are read at and stamped with their grid time). So the records
 *   of a run depend on the method, the instrument and the tick *bound*, not
 *   on when ticks happen; lateness is only counted.
 * - At equal times, step actions go before samples (a sample step's first
 *   grid point is its own start time) and completion comes after every
 *   sample strictly before it. Samples are taken on [sample start, end).
 * - ts_ns of every record is wall_at_start + (mono - mono_at_start): one
 *   wall reading per run, so wall stamps never jump with NTP mid-run.
 * - Hardware errors (for now; the hal error layer will own retry policy):
 *   transient/timeout reads are retried read_retries times at once, then
 *   the grid point is counted missed and an hw_error is sent; disconnected
 *   or fatal reads, and writes that still fail after write_retries, send an
 *   hw_error and interrupt the run. s_hal_read / s_hal_write are the one
 *   place to change when that layer lands.
 * - hw_error.channel is the run's channel index for reads (like
 *   sample.channel) and the instrument's actuator index for writes; the
 *   text names the channel or actuator either way.
 * - A send the channel refuses is counted and reported from tick; the run
 *   carries on (the dispatcher blocks rather than refuse, so a refusal
 *   means the channel is closing).
 *
 * Invariants: state RUNNING iff started and no terminal transition;
 * step <= step count; samplers are sorted by creation, each due_ns equals
 * start_ns + round(k * period_ns); nothing on the tick path allocates.
 */
#include "hf_engine.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t first;     /* first run channel index                    */
    uint32_t count;     /* channels sampled together                  */
    uint64_t start_ns;  /* ns, monotonic: grid point 0                */
    double period_ns;   /* ns between grid points                     */
    uint64_t k;         /* index of the next grid point               */
    uint64_t due_ns;    /* ns, monotonic: time of grid point k        */
} s_sampler_t;

struct hf_run_s {
    const hf_method_t *method;   /* borrowed                                  */
    hf_hal_t hal;                /* ops and impl borrowed                     */
    hf_channel_t *channel;       /* borrowed                                  */
    hf_method_binding_t bind;
    hf_run_opts_t opts;
    uint64_t id;
    hf_run_state_t state;
    uint64_t mono0;              /* ns, monotonic: start                      */
    uint64_t paused_at;          /* ns, monotonic: when PAUSED began          */
    uint64_t paused_ns;          /* ns: total time spent paused               */
    uint64_t wall0;              /* ns since 1970 at mono0                    */
    uint32_t step;               /* current step index                        */
    uint64_t step_start_ns;      /* ns, monotonic: scheduled start of step    */
    int step_entered;            /* 1 once the current step's event was sent  */
    double ramp_from;            /* unit: actuator value when the ramp began  */
    uint64_t ramp_j;             /* index of the next ramp update             */
    uint32_t sampler_count;
    s_sampler_t samplers[HF_METHOD_MAX_CHANNELS];
    hf_run_counters_t counters;
    hf_err_t tick_err;           /* first send error of the current call      */
};

static void s_check_invariants(const hf_run_t *self);
static void s_emit(hf_run_t *self, const hf_record_t *rec);
static void s_emit_event(hf_run_t *self, uint64_t mono_ns, hf_event_type_t type, uint32_t step,
                         const char *text);
static void s_emit_hw_error(hf_run_t *self, uint64_t mono_ns, const hf_hal_error_t *e,
                            uint32_t index, const char *what);
static void s_interrupt(hf_run_t *self, uint64_t mono_ns, const hf_hal_error_t *e,
                        const char *what);

hf_run_opts_t
hf_run_opts_default(void)
{
    return (hf_run_opts_t){
        .read_retries = 3,
        .write_retries = 3,
        .ramp_update_ns = 10000000ull,
        .max_records_per_tick = 100000,
    };
}

hf_run_t *
hf_run_new(const hf_method_t *method, const hf_hal_t *hal, hf_channel_t *channel,
           uint64_t run_id, const hf_run_opts_t *opts, char *errbuf, size_t errlen, hf_err_t *err)
{
    assert(method && hal && hal->ops && channel && channel->ops);
    hf_err_t rc = HF_OK;
    hf_run_t *self = NULL;
    hf_run_opts_t o = opts ? *opts : hf_run_opts_default();
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (run_id == 0 || o.ramp_update_ns == 0 || o.max_records_per_tick == 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s",
                     run_id == 0 ? "run id 0 is reserved" : "bad run options");
        rc = HF_EINVAL;
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    rc = hf_method_bind(method, hal, &self->bind, errbuf, errlen);
    if (rc != HF_OK)
        goto fail;
    self->method = method;
    self->hal = *hal;
    self->channel = channel;
    self->opts = o;
    self->id = run_id;
    self->state = HF_RUN_IDLE;
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_run_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_run_destroy(hf_run_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

hf_err_t
hf_run_start(hf_run_t *self, uint64_t mono_ns, uint64_t wall_ns)
{
    assert(self);
    if (self->state != HF_RUN_IDLE)
        return HF_ESTATE;
    self->tick_err = HF_OK;
    self->mono0 = mono_ns;
    self->wall0 = wall_ns;
    self->state = HF_RUN_RUNNING;
    self->step = 0;
    self->step_start_ns = mono_ns;
    self->step_entered = 0;
    s_emit_event(self, mono_ns, HF_EV_RUN_STARTED, 0, hf_method_name(self->method));

    /* HF_TEXT_MAX bytes hold a few names only: long lists go out as several
     * CHANNELS events, each with .step = index of its first channel and
     * never splitting a name. A method without channels sends one, empty. */
    uint32_t n = hf_method_channel_count(self->method);
    uint32_t i = 0;
    do {
        char text[HF_TEXT_MAX + 1];
        size_t len = 0;
        uint32_t first = i;
        text[0] = '\0';
        while (i < n) {
            const char *name = hf_method_channel_name(self->method, i);
            size_t need = strlen(name) + (len ? 1 : 0);
            if (len + need > HF_TEXT_MAX)
                break;
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", len ? "," : "", name);
            i++;
        }
        s_emit_event(self, mono_ns, HF_EV_CHANNELS, first, text);
    } while (i < n);
    s_check_invariants(self);
    return self->tick_err;
}

/* ---- the schedule ---------------------------------------------------------- */

/* Time the current step next needs attention (its start, a ramp update, its
 * end), or the completion time once every step is done. */
static uint64_t
s_step_due(const hf_run_t *self)
{
    if (self->step >= hf_method_step_count(self->method) || !self->step_entered)
        return self->step_start_ns;
    const hf_step_t *st = hf_method_step(self->method, self->step);
    uint64_t end = self->step_start_ns + st->duration_ns;
    if (st->kind == HF_STEP_RAMP) {
        uint64_t upd = self->step_start_ns + self->ramp_j * self->opts.ramp_update_ns;
        return upd < end ? upd : end;
    }
    return end; /* HOLD; SAMPLE and SET never stay entered */
}

static s_sampler_t *
s_next_sampler(hf_run_t *self)
{
    s_sampler_t *best = NULL;
    for (uint32_t i = 0; i < self->sampler_count; i++)
        if (!best || self->samplers[i].due_ns < best->due_ns)
            best = &self->samplers[i];
    return best;
}

static void
s_next_step(hf_run_t *self, uint64_t at_ns)
{
    self->step++;
    self->step_start_ns = at_ns;
    self->step_entered = 0;
    self->counters.step = self->step;
}

/* The value the method last prescribed for the actuator of step idx. The
 * parser guarantees an earlier SET or RAMP of it exists. */
static double
s_prior_value(const hf_run_t *self, uint32_t idx)
{
    uint32_t act = self->bind.actuator[idx];
    for (uint32_t i = idx; i-- > 0;) {
        const hf_step_t *st = hf_method_step(self->method, i);
        if ((st->kind == HF_STEP_SET || st->kind == HF_STEP_RAMP) && self->bind.actuator[i] == act)
            return st->value;
    }
    assert(!"ramp without a prior value");
    return 0.0;
}

/* ---- the hardware (the future hal error layer plugs in here) --------------- */

static int
s_retryable(hf_hal_class_t cls)
{
    return cls == HF_HAL_TRANSIENT || cls == HF_HAL_TIMEOUT;
}

static hf_hal_class_t
s_hal_read(hf_run_t *self, uint32_t hal_ch, uint64_t mono_ns, double *v, hf_hal_error_t *e)
{
    hf_hal_class_t cls = HF_HAL_OK;
    for (uint32_t a = 0; a <= self->opts.read_retries; a++) {
        memset(e, 0, sizeof *e);
        cls = self->hal.ops->read(self->hal.impl, hal_ch, mono_ns, v, e);
        if (cls == HF_HAL_OK || !s_retryable(cls))
            break;
    }
    if (cls != HF_HAL_OK)
        e->cls = cls; /* a driver that forgot to fill it still gets a class */
    return cls;
}

/* Write with retries; on failure sends hw_error, interrupts, returns 0. */
static int
s_write(hf_run_t *self, uint32_t step_idx, double value, uint64_t mono_ns)
{
    uint32_t act = self->bind.actuator[step_idx];
    hf_hal_error_t e;
    hf_hal_class_t cls = HF_HAL_OK;
    for (uint32_t a = 0; a <= self->opts.write_retries; a++) {
        memset(&e, 0, sizeof e);
        cls = self->hal.ops->write(self->hal.impl, act, mono_ns, value, &e);
        if (cls == HF_HAL_OK)
            return 1;
        if (!s_retryable(cls))
            break;
    }
    e.cls = cls;
    char what[HF_TEXT_MAX + 1];
    snprintf(what, sizeof what, "write %s", hf_method_step(self->method, step_idx)->actuator);
    s_emit_hw_error(self, mono_ns, &e, act, what);
    s_interrupt(self, mono_ns, &e, what);
    return 0;
}

/* ---- actions ---------------------------------------------------------------- */

static void
s_step_do(hf_run_t *self, uint64_t t)
{
    uint32_t n = hf_method_step_count(self->method);
    if (self->step >= n) {
        s_emit_event(self, t, HF_EV_COMPLETED, n, hf_method_name(self->method));
        self->state = HF_RUN_COMPLETED;
        return;
    }
    const hf_step_t *st = hf_method_step(self->method, self->step);
    if (!self->step_entered) {
        self->step_entered = 1;
        s_emit_event(self, t, HF_EV_STEP, self->step, st->text);
        switch (st->kind) {
        case HF_STEP_SAMPLE: {
            assert(self->sampler_count < HF_METHOD_MAX_CHANNELS);
            s_sampler_t *sp = &self->samplers[self->sampler_count++];
            *sp = (s_sampler_t){.first = st->first_channel,
                                .count = st->channel_count,
                                .start_ns = t,
                                .period_ns = 1e9 / st->rate_hz,
                                .k = 0,
                                .due_ns = t};
            s_next_step(self, t);
            return;
        }
        case HF_STEP_SET:
            if (s_write(self, self->step, st->value, t))
                s_next_step(self, t);
            return;
        case HF_STEP_RAMP:
            self->ramp_from = s_prior_value(self, self->step);
            self->ramp_j = 1;
            return;
        case HF_STEP_HOLD:
            return;
        }
        return;
    }
    uint64_t end = self->step_start_ns + st->duration_ns;
    if (st->kind == HF_STEP_RAMP && t < end) {
        double frac = (double)(t - self->step_start_ns) / (double)st->duration_ns;
        if (s_write(self, self->step, self->ramp_from + (st->value - self->ramp_from) * frac, t))
            self->ramp_j++;
        return;
    }
    if (st->kind == HF_STEP_RAMP && !s_write(self, self->step, st->value, end))
        return;
    s_next_step(self, end);
}

static void
s_sample_do(hf_run_t *self, s_sampler_t *sp, uint64_t now)
{
    uint64_t t = sp->due_ns;
    int late = (double)(now - t) > sp->period_ns;
    for (uint32_t c = sp->first; c < sp->first + sp->count; c++) {
        double v = 0.0;
        hf_hal_error_t e;
        hf_hal_class_t cls = s_hal_read(self, self->bind.channel[c], t, &v, &e);
        if (cls == HF_HAL_OK) {
            hf_record_t r;
            hf_record_sample(&r, self->id, self->wall0 + (t - self->mono0), t, c, v);
            s_emit(self, &r);
            self->counters.samples++;
            if (late)
                self->counters.late++;
            continue;
        }
        char what[HF_TEXT_MAX + 1];
        if (s_retryable(cls)) {
            self->counters.missed++;
            snprintf(what, sizeof what, "read %s (sample missed)",
                     hf_method_channel_name(self->method, c));
            s_emit_hw_error(self, t, &e, c, what);
            continue;
        }
        snprintf(what, sizeof what, "read %s", hf_method_channel_name(self->method, c));
        s_emit_hw_error(self, t, &e, c, what);
        s_interrupt(self, t, &e, what);
        return;
    }
    sp->k++;
    sp->due_ns = sp->start_ns + (uint64_t)llround((double)sp->k * sp->period_ns);
}

hf_err_t
hf_run_tick(hf_run_t *self, uint64_t mono_ns, uint64_t *next_mono_ns)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING) {
        if (next_mono_ns)
            *next_mono_ns = HF_RUN_NEVER;
        return self->state == HF_RUN_PAUSED ? HF_OK : HF_ESTATE;
    }
    self->tick_err = HF_OK;
    uint64_t budget = self->opts.max_records_per_tick;
    int over = 0;
    while (self->state == HF_RUN_RUNNING) {
        if (budget == 0) {
            over = 1;
            break;
        }
        uint64_t t_step = s_step_due(self);
        s_sampler_t *sp = s_next_sampler(self);
        if (!sp || t_step <= sp->due_ns) {
            if (t_step > mono_ns)
                break;
            s_step_do(self, t_step);
            budget--;
        } else {
            if (sp->due_ns > mono_ns)
                break;
            s_sample_do(self, sp, mono_ns);
            budget = budget > sp->count ? budget - sp->count : 0;
        }
    }
    if (next_mono_ns) {
        if (self->state != HF_RUN_RUNNING) {
            *next_mono_ns = HF_RUN_NEVER;
        } else if (over) {
            *next_mono_ns = mono_ns;
        } else {
            uint64_t next = s_step_due(self);
            s_sampler_t *sp = s_next_sampler(self);
            if (sp && sp->due_ns < next)
                next = sp->due_ns;
            *next_mono_ns = next;
        }
    }
    s_check_invariants(self);
    return self->tick_err;
}

/* The time an end event of a paused run carries: the pause's start if the
 * caller's clock is behind it (it never is in the daemon; tests may be). */
static uint64_t
s_end_time(const hf_run_t *self, uint64_t mono_ns)
{
    return mono_ns < self->step_start_ns ? self->step_start_ns : mono_ns;
}

hf_err_t
hf_run_abort(hf_run_t *self, uint64_t mono_ns)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING && self->state != HF_RUN_PAUSED)
        return HF_ESTATE;
    self->tick_err = HF_OK;
    s_emit_event(self, s_end_time(self, mono_ns), HF_EV_ABORTED, self->step, "aborted");
    self->state = HF_RUN_ABORTED;
    s_check_invariants(self);
    return self->tick_err;
}

hf_err_t
hf_run_pause(hf_run_t *self, uint64_t mono_ns, const char *reason)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING)
        return HF_ESTATE;
    /* Everything due before the pause happens first, so that a late tick
     * does not turn into samples "taken" during the pause. The per-tick
     * bound may leave work over: loop until nothing due is left. */
    uint64_t next = 0;
    hf_err_t first = HF_OK;
    while (self->state == HF_RUN_RUNNING) {
        hf_err_t rc = hf_run_tick(self, mono_ns, &next);
        if (first == HF_OK)
            first = rc;
        if (next > mono_ns)
            break;
    }
    if (self->state != HF_RUN_RUNNING)
        return first == HF_OK ? HF_ESTATE : first; /* it ended on its own */
    self->tick_err = first;
    self->paused_at = mono_ns;
    self->state = HF_RUN_PAUSED;
    s_emit_event(self, mono_ns, HF_EV_PAUSED, self->step, reason ? reason : "paused");
    s_check_invariants(self);
    return self->tick_err;
}

hf_err_t
hf_run_resume(hf_run_t *self, uint64_t mono_ns, const char *reason)
{
    assert(self);
    if (self->state != HF_RUN_PAUSED)
        return HF_ESTATE;
    if (mono_ns < self->paused_at)
        mono_ns = self->paused_at;
    uint64_t shift = mono_ns - self->paused_at;
    self->tick_err = HF_OK;
    self->step_start_ns += shift;
    for (uint32_t i = 0; i < self->sampler_count; i++) {
        self->samplers[i].start_ns += shift;
        self->samplers[i].due_ns += shift;
    }
    self->paused_ns += shift;
    self->state = HF_RUN_RUNNING;
    s_emit_event(self, mono_ns, HF_EV_RESUMED, self->step, reason ? reason : "resumed");
    s_check_invariants(self);
    return self->tick_err;
}

hf_err_t
hf_run_interrupt(hf_run_t *self, uint64_t mono_ns, const char *reason)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING && self->state != HF_RUN_PAUSED)
        return HF_ESTATE;
    self->tick_err = HF_OK;
    s_emit_event(self, s_end_time(self, mono_ns), HF_EV_INTERRUPTED, self->step,
                 reason ? reason : "interrupted");
    self->state = HF_RUN_INTERRUPTED;
    s_check_invariants(self);
    return self->tick_err;
}

hf_run_state_t
hf_run_state(const hf_run_t *self)
{
    assert(self);
    return self->state;
}

uint64_t
hf_run_id(const hf_run_t *self)
{
    assert(self);
    return self->id;
}

void
hf_run_counters(const hf_run_t *self, hf_run_counters_t *out)
{
    assert(self && out);
    *out = self->counters;
    out->paused_ns = self->paused_ns;
}

/* ---- records ------------------------------------------------------------ */

static void
s_check_invariants(const hf_run_t *self)
{
#ifndef NDEBUG
    uint32_t steps = hf_method_step_count(self->method);
    assert(self->state <= HF_RUN_STATE_MAX);
    assert(self->step <= steps);
    assert(self->counters.step == self->step);
    assert(self->sampler_count <= hf_method_channel_count(self->method));
    assert(self->state == HF_RUN_IDLE || self->step_start_ns >= self->mono0);
    for (uint32_t i = 0; i < self->sampler_count; i++) {
        const s_sampler_t *sp = &self->samplers[i];
        assert(sp->due_ns >= sp->start_ns && sp->start_ns >= self->mono0);
        assert(sp->first + sp->count <= hf_method_channel_count(self->method));
    }
#else
    (void)self;
#endif
}

static uint64_t
s_wall(const hf_run_t *self, uint64_t mono_ns)
{
    return mono_ns >= self->mono0 ? self->wall0 + (mono_ns - self->mono0) : self->wall0;
}

static void
s_emit(hf_run_t *self, const hf_record_t *rec)
{
    hf_err_t rc = hf_channel_send(self->channel, rec);
    if (rc != HF_OK) {
        self->counters.send_errors++;
        if (self->tick_err == HF_OK)
            self->tick_err = rc;
    }
}

static void
s_emit_event(hf_run_t *self, uint64_t mono_ns, hf_event_type_t type, uint32_t step,
             const char *text)
{
    hf_record_t r;
    hf_record_event(&r, self->id, s_wall(self, mono_ns), mono_ns, type, step, text);
    s_emit(self, &r);
}

static void
s_emit_hw_error(hf_run_t *self, uint64_t mono_ns, const hf_hal_error_t *e, uint32_t index,
                const char *what)
{
    hf_record_t r;
    memset(&r, 0, sizeof r);
    r.kind = HF_KIND_HW_ERROR;
    r.lane = (uint8_t)hf_record_lane_of(HF_KIND_HW_ERROR);
    r.run = self->id;
    r.ts_ns = s_wall(self, mono_ns);
    r.mono_ns = mono_ns;
    r.u.hw_error.cls = (uint8_t)e->cls;
    r.u.hw_error.device = e->device;
    r.u.hw_error.channel = index;
    r.u.hw_error.code = e->code;
    snprintf(r.u.hw_error.text, sizeof r.u.hw_error.text, "%s: %s: %s", what,
             hf_hal_class_name(e->cls), e->reason);
    s_emit(self, &r);
    self->counters.hw_errors++;
}

static void
s_interrupt(hf_run_t *self, uint64_t mono_ns, const hf_hal_error_t *e, const char *what)
{
    char text[HF_TEXT_MAX + 1];
    /* bounded: the hw_error record carries the full detail */
    snprintf(text, sizeof text, "%.80s: %.20s", what, hf_hal_class_name(e->cls));
    s_emit_event(self, mono_ns, HF_EV_INTERRUPTED, self->step, text);
    self->state = HF_RUN_INTERRUPTED;
}
