/* hf_run.c - hf_run_t: executes one method on one instrument, driven by
 * time passed in, and applies the hardware error policy.
 *
 *   IDLE --start--> RUNNING --completion due--> COMPLETED
 *                   RUNNING <--pause / resume--> PAUSED
 *                   RUNNING --hal disconnected--> PAUSED (device lost)
 *                   PAUSED (device lost) --reopen ok--> RUNNING
 *                   PAUSED (device lost) --grace over, or open fatal--> INTERRUPTED
 *                   RUNNING|PAUSED --abort--> ABORTED
 *                   RUNNING|PAUSED --interrupt--> INTERRUPTED
 *                   RUNNING --hal fatal, a write that keeps failing--> INTERRUPTED
 *                   RUNNING --wait-until not met in time--> FAILED
 *   COMPLETED, FAILED, ABORTED, INTERRUPTED are terminal.
 *
 * - Pause stops the schedule: pause first does everything due up to its
 *   time, then nothing is sampled or written until resume, which shifts
 *   every pending deadline (step, ramp, sample grid, read retry) by the time
 *   paused. A paused stretch is neither late nor missed: the method's clock
 *   stopped.
 * - Two reasons to be PAUSED: an operator's pause (hf_run_pause) and a lost
 *   device (device_lost). The second resumes by itself once the device
 *   reopens; an operator's resume is refused meanwhile (the device decides),
 *   abort always works.
 *
 * Design notes:
 * - Time is a schedule, not the tick times. Step k+1 starts at the
 *   scheduled end of step k; samples sit on a fixed grid per sample step,
 *   start + round(k * 1e9 / rate). A late tick catches up: it performs
 *   everything due, in time order, with each action at its scheduled time
 *   (samples are read at and stamped with their grid time; hal calls get the
 *   scheduled time too). So the records of a run depend on the method, the
 *   instrument and the tick *bound*, not on when ticks happen; lateness is
 *   only counted.
 * - At equal times, hw_error summaries go first, then step actions, then
 *   samples (a sample step's first grid point is its own start time);
 *   completion comes after every sample strictly before it. Samples are
 *   taken on [sample start, end).
 * - ts_ns of every record is wall_at_start + (mono - mono_at_start): one
 *   wall reading per run, so wall stamps never jump with NTP mid-run.
 * - Hardware errors (docs/hardware-errors.md), by class:
 *   transient/timeout read: the failed channels of a grid point are retried
 *   read_retries times, after retry_backoff (doubling, capped). A retry
 *   never waits past the next grid point: one that would is made at once,
 *   so every grid point is settled (sampled or missed) before the next is
 *   due and the grid never slips. The retried sample keeps its grid time.
 *   transient/timeout write: retried at once (an actuator must not lag the
 *   method); still failing: the run is interrupted, actuators made safe.
 *   disconnected (any call): the run pauses, alarm DEVICE_LOST, the device
 *   is reopened at reopen deadlines (backoff, doubling, capped) until the
 *   grace ends; the last attempt is at the end of the grace. A grid point
 *   the loss interrupted is missed; a write it interrupted is made again on
 *   resume.
 *   fatal (any call): alarm DEVICE_FATAL, actuators driven to their safe
 *   values, run interrupted.
 * - Every failed hal call goes through s_report (counted; a hw_error record
 *   or a count in a later one: hf_hwreport.h). hw_error.channel is the run's
 *   channel index for sample reads (like sample.channel), the instrument's
 *   index for writes and wait-until reads, UINT32_MAX for open.
 * - A send the channel refuses is counted and reported from tick; the run
 *   carries on (the dispatcher blocks rather than refuse, so a refusal
 *   means the channel is closing).
 *
 * Invariants: state RUNNING iff started and no terminal transition and not
 * paused; device_lost implies PAUSED; step <= step count; each sampler's
 * due_ns equals start_ns + round(k * period_ns), and a pending retry is due
 * before it (retry_ns < due_ns); nothing on the tick path allocates.
 */
#include "hf_engine.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_hwreport.h"

typedef struct {
    uint32_t first;         /* first run channel index                    */
    uint32_t count;         /* channels sampled together (<= 32)          */
    uint64_t start_ns;      /* ns, monotonic: grid point 0                */
    double period_ns;       /* ns between grid points                     */
    uint64_t k;             /* index of the next grid point               */
    uint64_t due_ns;        /* ns, monotonic: time of grid point k        */
    uint64_t retry_mask;    /* bit i: channel first + i of the point at
                               retry_grid_ns still to be read             */
    uint64_t retry_grid_ns; /* ns: grid time of the point being retried   */
    uint64_t retry_ns;      /* ns: when its next retry is due             */
    uint32_t attempt;       /* retries made for that point                */
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
    uint64_t ramp_j;             /* index of the next ramp update / wait poll */
    double wait_last;            /* unit: last value a wait-until read        */
    int wait_have;               /* 1: wait_last holds a value                */
    uint32_t sampler_count;
    s_sampler_t samplers[HF_METHOD_MAX_CHANNELS];
    hf_run_counters_t counters;
    hf_err_t tick_err;           /* first send error of the current call      */
    hf_hwreport_t report;        /* hw_error rate limit                       */
    int device_lost;             /* 1: PAUSED because the device link is lost */
    uint64_t lost_at;            /* ns, monotonic: the call that found it     */
    uint64_t grace_at;           /* ns, monotonic: interrupt if not back      */
    uint64_t reopen_at;          /* ns, monotonic: next open attempt          */
    uint32_t reopen_n;           /* failed open attempts in this episode      */
    int alarm_lost;              /* 1: DEVICE_LOST raised, not cleared        */
};

static void s_check_invariants(const hf_run_t *self);
static void s_textf(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_emit(hf_run_t *self, const hf_record_t *rec);
static void s_emit_event(hf_run_t *self, uint64_t mono_ns, hf_event_type_t type, uint32_t step,
                         const char *text);
static void s_emit_alarm(hf_run_t *self, uint64_t mono_ns, int raised,
                         hf_alarm_severity_t severity, uint32_t code, const char *text);
static void s_emit_hw_error(hf_run_t *self, uint64_t mono_ns, uint8_t op, uint32_t index,
                            const hf_hal_error_t *e, const char *prefix);

hf_hal_policy_t
hf_hal_policy_default(void)
{
    return (hf_hal_policy_t){
        .retry_backoff_ns = 1000000ull,
        .retry_backoff_cap_ns = 100000000ull,
        .disconnect_grace_ns = 5000000000ull,
        .reopen_backoff_ns = 100000000ull,
        .reopen_backoff_cap_ns = 1000000000ull,
        .report_interval_ns = 1000000000ull,
        .safe_state = 1,
        .safe_values = NULL,
        .safe_count = 0,
    };
}

hf_run_opts_t
hf_run_opts_default(void)
{
    return (hf_run_opts_t){
        .read_retries = 3,
        .write_retries = 3,
        .ramp_update_ns = 10000000ull,
        .max_records_per_tick = 100000,
        .hal = hf_hal_policy_default(),
        .wait_poll_ns = 10000000ull,
    };
}

static const char *
s_opts_invalid(const hf_run_opts_t *o)
{
    if (o->ramp_update_ns == 0 || o->max_records_per_tick == 0)
        return "bad run options";
    if (o->wait_poll_ns == 0)
        return "wait_poll_ns must be > 0";
    if (o->hal.reopen_backoff_ns == 0)
        return "reopen_backoff_ns must be > 0";
    if (o->hal.safe_count > 0 && !o->hal.safe_values)
        return "safe_count without safe_values";
    if (o->read_retries > 1000 || o->write_retries > 1000)
        return "retries above 1000";
    return NULL;
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
    const char *bad = run_id == 0 ? "run id 0 is reserved" : s_opts_invalid(&o);
    if (bad) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s", bad);
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
    hf_hwreport_init(&self->report, o.hal.report_interval_ns);
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

/* Time the current step next needs attention (its start, a ramp update, a
 * wait-until poll, its end), or the completion time once every step is done. */
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
    if (st->kind == HF_STEP_WAIT_UNTIL) {
        uint64_t poll = self->step_start_ns + self->ramp_j * self->opts.wait_poll_ns;
        return poll < end ? poll : end;
    }
    if (st->kind == HF_STEP_SET)
        return self->step_start_ns; /* entered: its write is to be made again */
    return end; /* HOLD; SAMPLE never stays entered */
}

static uint64_t
s_sampler_due(const s_sampler_t *sp)
{
    return sp->retry_mask ? sp->retry_ns : sp->due_ns;
}

static s_sampler_t *
s_next_sampler(hf_run_t *self)
{
    s_sampler_t *best = NULL;
    for (uint32_t i = 0; i < self->sampler_count; i++)
        if (!best || s_sampler_due(&self->samplers[i]) < s_sampler_due(best))
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

/* min(base * 2^(n-1), cap) without overflow; cap 0 = no cap. */
static uint64_t
s_backoff(uint64_t base, uint64_t cap, uint32_t n)
{
    if (cap == 0)
        cap = UINT64_MAX;
    uint64_t d = base;
    for (uint32_t i = 1; i < n && d < cap; i++)
        d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
    return d < cap ? d : cap;
}

static uint64_t
s_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t
s_popcount(uint64_t m)
{
    uint32_t n = 0;
    for (; m; m &= m - 1)
        n++;
    return n;
}

/* ---- state changes ------------------------------------------------------------ */

/* Every suppressed hw_error count goes out now, at t: a run never ends with
 * failures nobody was told about. */
static void
s_report_flush_all(hf_run_t *self, uint64_t t)
{
    hf_hwreport_due_t d;
    while (hf_hwreport_take_due(&self->report, UINT64_MAX, &d)) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "(%llu suppressed) ", (unsigned long long)d.count);
        s_emit_hw_error(self, d.at_ns < t ? d.at_ns : t, d.op, d.index, &d.last, prefix);
    }
}

/* RUNNING|PAUSED -> terminal at t with event type and text. */
static void
s_end(hf_run_t *self, uint64_t t, hf_event_type_t type, hf_run_state_t state, const char *text)
{
    s_report_flush_all(self, t);
    s_emit_event(self, t, type, self->step, text);
    if (self->state == HF_RUN_PAUSED && t > self->paused_at)
        self->paused_ns += t - self->paused_at; /* it ended paused: that counts too */
    self->state = state;
    self->device_lost = 0;
}

static void
s_enter_pause(hf_run_t *self, uint64_t t, const char *reason)
{
    self->paused_at = t;
    self->state = HF_RUN_PAUSED;
    s_emit_event(self, t, HF_EV_PAUSED, self->step, reason);
}

static void
s_leave_pause(hf_run_t *self, uint64_t t, const char *reason)
{
    if (t < self->paused_at)
        t = self->paused_at;
    uint64_t shift = t - self->paused_at;
    self->step_start_ns += shift;
    for (uint32_t i = 0; i < self->sampler_count; i++) {
        s_sampler_t *sp = &self->samplers[i];
        sp->start_ns += shift;
        sp->due_ns += shift;
        if (sp->retry_mask) {
            sp->retry_grid_ns += shift;
            sp->retry_ns += shift;
        }
    }
    self->paused_ns += shift;
    self->state = HF_RUN_RUNNING;
    s_emit_event(self, t, HF_EV_RESUMED, self->step, reason);
}

static int
s_retryable(hf_hal_class_t cls)
{
    return cls == HF_HAL_TRANSIENT || cls == HF_HAL_TIMEOUT;
}

/* One failed hal call: counted, and a hw_error record or a count for a
 * later one (hf_hwreport.h). */
static void
s_report(hf_run_t *self, uint8_t op, uint32_t index, uint64_t t, const hf_hal_error_t *e)
{
    uint64_t folded = 0;
    self->counters.hw_faults++;
    if (!hf_hwreport_fail(&self->report, op, index, t, e, &folded)) {
        self->counters.hw_suppressed++;
        return;
    }
    char prefix[48] = "";
    if (folded)
        snprintf(prefix, sizeof prefix, "(+%llu suppressed) ", (unsigned long long)folded);
    s_emit_hw_error(self, t, op, index, e, prefix);
}

/* Drive every actuator that has a safe value to it (writes retried at once,
 * like every write). Returns the number driven; *total gets how many have a
 * safe value. */
static uint32_t
s_safe_state(hf_run_t *self, uint64_t t, uint32_t *total)
{
    const hf_hal_policy_t *p = &self->opts.hal;
    uint32_t ok = 0;
    *total = 0;
    if (!p->safe_state || !p->safe_values)
        return 0;
    for (uint32_t i = 0; i < p->safe_count; i++) {
        if (isnan(p->safe_values[i]))
            continue;
        (*total)++;
        for (uint32_t a = 0; a <= self->opts.write_retries; a++) {
            hf_hal_error_t e;
            memset(&e, 0, sizeof e);
            hf_hal_class_t cls = self->hal.ops->write(self->hal.impl, i, t, p->safe_values[i], &e);
            if (cls == HF_HAL_OK) {
                ok++;
                self->counters.safe_writes++;
                break;
            }
            e.cls = cls;
            s_report(self, HF_HWOP_WRITE, i, t, &e);
            if (!s_retryable(cls))
                break;
        }
    }
    return ok;
}

/* The hardware gave up: actuators to safe values (if the policy says so),
 * then INTERRUPTED with the reason and what the safe state achieved. */
static void
s_interrupt_hw(hf_run_t *self, uint64_t t, const char *why)
{
    uint32_t total = 0;
    uint32_t ok = s_safe_state(self, t, &total);
    char text[HF_TEXT_MAX + 1];
    if (total)
        snprintf(text, sizeof text, "%.90s; safe state %u/%u", why, ok, total);
    else
        snprintf(text, sizeof text, "%s", why);
    s_end(self, t, HF_EV_INTERRUPTED, HF_RUN_INTERRUPTED, text);
}

/* A call at t returned fatal (its hw_error is out). */
static void
s_fatal(hf_run_t *self, uint64_t t, const hf_hal_error_t *e, const char *what)
{
    char text[HF_TEXT_MAX + 1];
    if (self->alarm_lost) {
        s_emit_alarm(self, t, 0, HF_ALARM_WARNING, HF_ALARM_CODE_DEVICE_LOST,
                     "device answered again, with a fatal fault");
        self->alarm_lost = 0;
    }
    snprintf(text, sizeof text, "device fatal: %.100s", e->reason);
    s_emit_alarm(self, t, 1, HF_ALARM_CRITICAL, HF_ALARM_CODE_DEVICE_FATAL, text);
    snprintf(text, sizeof text, "%.60s: fatal", what);
    s_interrupt_hw(self, t, text);
}

/* Every pending read retry is given up: the device is gone. */
static void
s_drop_retries(hf_run_t *self)
{
    for (uint32_t i = 0; i < self->sampler_count; i++) {
        self->counters.missed += s_popcount(self->samplers[i].retry_mask);
        self->samplers[i].retry_mask = 0;
    }
}

/* A call at t returned disconnected (its hw_error is out): RUNNING -> PAUSED
 * (device lost), reopen attempts scheduled. */
static void
s_device_lost(hf_run_t *self, uint64_t t, const hf_hal_error_t *e)
{
    const hf_hal_policy_t *p = &self->opts.hal;
    s_drop_retries(self);
    self->device_lost = 1;
    self->lost_at = t;
    self->grace_at = s_add(t, p->disconnect_grace_ns);
    self->reopen_n = 0;
    self->reopen_at = s_add(t, p->reopen_backoff_ns);
    if (self->reopen_at > self->grace_at)
        self->reopen_at = self->grace_at;
    if (!self->alarm_lost) {
        char text[HF_TEXT_MAX + 1];
        snprintf(text, sizeof text, "device lost: %.100s", e->reason);
        s_emit_alarm(self, t, 1, HF_ALARM_WARNING, HF_ALARM_CODE_DEVICE_LOST, text);
        self->alarm_lost = 1;
    }
    s_enter_pause(self, t, "device disconnected");
}

/* The reopen attempt due at reopen_at. */
static void
s_reopen_do(hf_run_t *self)
{
    const hf_hal_policy_t *p = &self->opts.hal;
    uint64_t t = self->reopen_at;
    hf_hal_error_t e;
    memset(&e, 0, sizeof e);
    self->counters.reopens++;
    hf_hal_class_t cls = self->hal.ops->open(self->hal.impl, t, &e);
    char text[HF_TEXT_MAX + 1];
    if (cls == HF_HAL_OK) {
        snprintf(text, sizeof text, "device back after %llu ms (%u failed reopens)",
                 (unsigned long long)((t - self->lost_at) / 1000000u), self->reopen_n);
        s_emit_alarm(self, t, 0, HF_ALARM_WARNING, HF_ALARM_CODE_DEVICE_LOST, text);
        self->alarm_lost = 0;
        self->device_lost = 0;
        s_leave_pause(self, t, "device reconnected");
        return;
    }
    e.cls = cls;
    e.channel = UINT32_MAX;
    s_report(self, HF_HWOP_OPEN, UINT32_MAX, t, &e);
    if (cls == HF_HAL_FATAL) {
        s_fatal(self, t, &e, "open device");
        return;
    }
    if (t >= self->grace_at) {
        snprintf(text, sizeof text, "device did not come back within %gs",
                 (double)p->disconnect_grace_ns / 1e9);
        s_end(self, t, HF_EV_INTERRUPTED, HF_RUN_INTERRUPTED, text);
        return;
    }
    self->reopen_n++;
    uint64_t next =
        s_add(t, s_backoff(p->reopen_backoff_ns, p->reopen_backoff_cap_ns, self->reopen_n + 1));
    self->reopen_at = next < self->grace_at ? next : self->grace_at;
}

/* The earliest hw_error summary due, if at or before t. */
static void
s_report_due(hf_run_t *self, uint64_t t)
{
    hf_hwreport_due_t d;
    if (!hf_hwreport_take_due(&self->report, t, &d))
        return;
    char prefix[48];
    snprintf(prefix, sizeof prefix, "(%llu suppressed) ", (unsigned long long)d.count);
    s_emit_hw_error(self, d.at_ns, d.op, d.index, &d.last, prefix);
}

/* ---- the hardware ---------------------------------------------------------------- */

static hf_hal_class_t
s_hal_read(hf_run_t *self, uint32_t hal_ch, uint64_t mono_ns, double *v, hf_hal_error_t *e)
{
    memset(e, 0, sizeof *e);
    hf_hal_class_t cls = self->hal.ops->read(self->hal.impl, hal_ch, mono_ns, v, e);
    if (cls != HF_HAL_OK)
        e->cls = cls; /* a driver that forgot to fill it still gets a class */
    return cls;
}

/* Write with immediate retries of transient/timeout. 1: written. 0: not,
 * and the policy acted (device lost: PAUSED, the write is made again on
 * resume; fatal or retries exhausted: INTERRUPTED). */
static int
s_write(hf_run_t *self, uint32_t step_idx, double value, uint64_t mono_ns)
{
    uint32_t act = self->bind.actuator[step_idx];
    hf_hal_error_t e;
    hf_hal_class_t cls = HF_HAL_OK;
    for (uint32_t a = 0; a <= self->opts.write_retries; a++) {
        if (a > 0)
            self->counters.retries++;
        memset(&e, 0, sizeof e);
        cls = self->hal.ops->write(self->hal.impl, act, mono_ns, value, &e);
        if (cls == HF_HAL_OK)
            return 1;
        e.cls = cls;
        s_report(self, HF_HWOP_WRITE, act, mono_ns, &e);
        if (!s_retryable(cls))
            break;
    }
    const char *name = hf_method_step(self->method, step_idx)->actuator;
    char what[HF_TEXT_MAX + 1];
    if (cls == HF_HAL_DISCONNECTED) {
        s_device_lost(self, mono_ns, &e);
    } else if (cls == HF_HAL_FATAL) {
        snprintf(what, sizeof what, "write %.60s", name);
        s_fatal(self, mono_ns, &e, what);
    } else {
        snprintf(what, sizeof what, "write %.60s keeps failing: %s", name,
                 hf_hal_class_name(cls));
        s_interrupt_hw(self, mono_ns, what);
    }
    return 0;
}

/* ---- actions ---------------------------------------------------------------- */

static int
s_wait_holds(uint8_t op, double v, double x)
{
    switch (op) {
    case HF_WAIT_LT: return v < x;
    case HF_WAIT_LE: return v <= x;
    case HF_WAIT_GT: return v > x;
    case HF_WAIT_GE: return v >= x;
    case HF_WAIT_EQ: return v == x;
    case HF_WAIT_NE: return v != x;
    default: return 0;
    }
}

/* One poll of a wait-until step at t. A failed poll is "not yet" for
 * transient/timeout; disconnected and fatal act as for any call. */
static void
s_wait_poll(hf_run_t *self, const hf_step_t *st, uint64_t t)
{
    uint32_t ch = self->bind.wait_channel[self->step];
    double v = 0.0;
    hf_hal_error_t e;
    hf_hal_class_t cls = s_hal_read(self, ch, t, &v, &e);
    if (cls == HF_HAL_OK) {
        self->wait_last = v;
        self->wait_have = 1;
        if (s_wait_holds(st->op, v, st->value)) {
            s_next_step(self, t);
            return;
        }
    } else {
        s_report(self, HF_HWOP_POLL, ch, t, &e);
        if (cls == HF_HAL_DISCONNECTED) {
            s_device_lost(self, t, &e);
            return;
        }
        if (cls == HF_HAL_FATAL) {
            char what[HF_TEXT_MAX + 1];
            snprintf(what, sizeof what, "wait-until read %.60s", st->channel);
            s_fatal(self, t, &e, what);
            return;
        }
    }
    uint64_t end = self->step_start_ns + st->duration_ns;
    if (t >= end) {
        char text[HF_TEXT_MAX + 1];
        char last[40] = "no value read";
        if (self->wait_have)
            snprintf(last, sizeof last, "last %.6g", self->wait_last);
        s_textf(text, sizeof text, "%.70s: not met within %gs (%s)", st->text,
                 (double)st->duration_ns / 1e9, last);
        s_end(self, t, HF_EV_FAILED, HF_RUN_FAILED, text);
        return;
    }
    self->ramp_j++;
}

static void
s_step_do(hf_run_t *self, uint64_t t)
{
    uint32_t n = hf_method_step_count(self->method);
    if (self->step >= n) {
        s_end(self, t, HF_EV_COMPLETED, HF_RUN_COMPLETED, hf_method_name(self->method));
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
            break; /* the write below */
        case HF_STEP_RAMP:
            self->ramp_from = s_prior_value(self, self->step);
            self->ramp_j = 1;
            return;
        case HF_STEP_HOLD:
            return;
        case HF_STEP_WAIT_UNTIL:
            self->ramp_j = 0;
            self->wait_have = 0;
            break; /* first poll below */
        }
    }
    if (st->kind == HF_STEP_SET) {
        if (s_write(self, self->step, st->value, t))
            s_next_step(self, t);
        return;
    }
    if (st->kind == HF_STEP_WAIT_UNTIL) {
        s_wait_poll(self, st, t);
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

/* A grid point (or a retry of its failed channels). */
static void
s_sample_do(hf_run_t *self, s_sampler_t *sp, uint64_t now)
{
    int retry = sp->retry_mask != 0;
    uint64_t grid, at, todo;
    if (retry) {
        grid = sp->retry_grid_ns;
        at = sp->retry_ns;
        todo = sp->retry_mask;
        sp->attempt++;
    } else {
        grid = at = sp->due_ns;
        todo = sp->count >= 64 ? UINT64_MAX : (1ull << sp->count) - 1;
        sp->k++;
        sp->due_ns = sp->start_ns + (uint64_t)llround((double)sp->k * sp->period_ns);
        sp->retry_grid_ns = grid;
        sp->attempt = 0;
    }
    sp->retry_mask = 0;
    int late = (double)(now - grid) > sp->period_ns;
    uint64_t failed = 0;
    for (uint32_t i = 0; i < sp->count; i++) {
        uint64_t bit = 1ull << i;
        if (!(todo & bit))
            continue;
        uint32_t c = sp->first + i;
        if (retry)
            self->counters.retries++;
        double v = 0.0;
        hf_hal_error_t e;
        hf_hal_class_t cls = s_hal_read(self, self->bind.channel[c], at, &v, &e);
        if (cls == HF_HAL_OK) {
            hf_record_t r;
            hf_record_sample(&r, self->id, self->wall0 + (grid - self->mono0), grid, c, v);
            s_emit(self, &r);
            self->counters.samples++;
            if (late)
                self->counters.late++;
            continue;
        }
        s_report(self, HF_HWOP_READ, c, at, &e);
        if (s_retryable(cls)) {
            failed |= bit;
            continue;
        }
        /* this channel, the ones not read yet and the failed ones: missed */
        uint64_t rest = todo & ~((bit << 1) - 1);
        self->counters.missed += 1 + s_popcount(failed) + s_popcount(rest);
        if (cls == HF_HAL_DISCONNECTED) {
            s_device_lost(self, at, &e);
        } else {
            char what[HF_TEXT_MAX + 1];
            snprintf(what, sizeof what, "read %.60s", hf_method_channel_name(self->method, c));
            s_fatal(self, at, &e, what);
        }
        return;
    }
    if (!failed)
        return;
    if (sp->attempt >= self->opts.read_retries) {
        self->counters.missed += s_popcount(failed);
        return;
    }
    /* Retry after the backoff, but never at or past the next grid point:
     * then at once, so the grid never slips. */
    const hf_hal_policy_t *p = &self->opts.hal;
    uint64_t r = s_add(at, s_backoff(p->retry_backoff_ns, p->retry_backoff_cap_ns,
                                     sp->attempt + 1));
    sp->retry_mask = failed;
    sp->retry_ns = r < sp->due_ns ? r : at;
}

hf_err_t
hf_run_tick(hf_run_t *self, uint64_t mono_ns, uint64_t *next_mono_ns)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING && self->state != HF_RUN_PAUSED) {
        if (next_mono_ns)
            *next_mono_ns = HF_RUN_NEVER;
        return HF_ESTATE;
    }
    self->tick_err = HF_OK;
    uint64_t budget = self->opts.max_records_per_tick;
    int over = 0;
    for (;;) {
        if (self->state != HF_RUN_RUNNING && self->state != HF_RUN_PAUSED)
            break;
        if (budget == 0) {
            over = 1;
            break;
        }
        uint64_t t_rep = hf_hwreport_next(&self->report);
        if (self->state == HF_RUN_PAUSED) {
            if (self->device_lost && self->reopen_at <= mono_ns &&
                self->reopen_at <= t_rep) {
                s_reopen_do(self);
            } else if (t_rep <= mono_ns) {
                s_report_due(self, t_rep);
            } else {
                break;
            }
            budget--;
            continue;
        }
        uint64_t t_step = s_step_due(self);
        s_sampler_t *sp = s_next_sampler(self);
        uint64_t t_samp = sp ? s_sampler_due(sp) : HF_RUN_NEVER;
        if (t_rep <= t_step && t_rep <= t_samp) {
            if (t_rep > mono_ns)
                break;
            s_report_due(self, t_rep);
            budget--;
        } else if (t_step <= t_samp) {
            if (t_step > mono_ns)
                break;
            s_step_do(self, t_step);
            budget--;
        } else {
            if (t_samp > mono_ns)
                break;
            s_sample_do(self, sp, mono_ns);
            budget = budget > sp->count ? budget - sp->count : 0;
        }
    }
    if (next_mono_ns) {
        uint64_t next = HF_RUN_NEVER;
        if (self->state == HF_RUN_RUNNING || self->state == HF_RUN_PAUSED) {
            next = hf_hwreport_next(&self->report);
            if (over) {
                next = mono_ns;
            } else if (self->state == HF_RUN_PAUSED) {
                if (self->device_lost && self->reopen_at < next)
                    next = self->reopen_at;
            } else {
                uint64_t t_step = s_step_due(self);
                s_sampler_t *sp = s_next_sampler(self);
                if (t_step < next)
                    next = t_step;
                if (sp && s_sampler_due(sp) < next)
                    next = s_sampler_due(sp);
            }
        }
        *next_mono_ns = next;
    }
    s_check_invariants(self);
    return self->tick_err;
}

/* The time an end event of a paused run carries: the pause's start if the
 * caller's clock is behind it (it never is in the daemon; tests may be). */
static uint64_t
s_end_time(const hf_run_t *self, uint64_t mono_ns)
{
    uint64_t floor = self->state == HF_RUN_PAUSED ? self->paused_at : self->step_start_ns;
    if (self->step_start_ns > floor)
        floor = self->step_start_ns;
    return mono_ns < floor ? floor : mono_ns;
}

hf_err_t
hf_run_abort(hf_run_t *self, uint64_t mono_ns)
{
    assert(self);
    if (self->state != HF_RUN_RUNNING && self->state != HF_RUN_PAUSED)
        return HF_ESTATE;
    self->tick_err = HF_OK;
    s_end(self, s_end_time(self, mono_ns), HF_EV_ABORTED, HF_RUN_ABORTED, "aborted");
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
        return first == HF_OK ? HF_ESTATE : first; /* it ended (or lost the device) */
    self->tick_err = first;
    s_enter_pause(self, mono_ns, reason ? reason : "paused");
    s_check_invariants(self);
    return self->tick_err;
}

hf_err_t
hf_run_resume(hf_run_t *self, uint64_t mono_ns, const char *reason)
{
    assert(self);
    if (self->state != HF_RUN_PAUSED || self->device_lost)
        return HF_ESTATE;
    self->tick_err = HF_OK;
    s_leave_pause(self, mono_ns, reason ? reason : "resumed");
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
    s_end(self, s_end_time(self, mono_ns), HF_EV_INTERRUPTED, HF_RUN_INTERRUPTED,
          reason ? reason : "interrupted");
    s_check_invariants(self);
    return self->tick_err;
}

int
hf_run_device_lost(const hf_run_t *self)
{
    assert(self);
    return self->device_lost;
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

/* snprintf for record texts, which are truncated on purpose (bounded). */
static void
s_textf(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}

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
    assert(!self->device_lost || self->state == HF_RUN_PAUSED);
    for (uint32_t i = 0; i < self->sampler_count; i++) {
        const s_sampler_t *sp = &self->samplers[i];
        assert(sp->due_ns >= sp->start_ns && sp->start_ns >= self->mono0);
        assert(sp->first + sp->count <= hf_method_channel_count(self->method));
        assert(!sp->retry_mask || (sp->retry_ns < sp->due_ns && sp->retry_grid_ns <= sp->retry_ns));
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
s_emit_alarm(hf_run_t *self, uint64_t mono_ns, int raised, hf_alarm_severity_t severity,
             uint32_t code, const char *text)
{
    hf_record_t r;
    memset(&r, 0, sizeof r);
    r.kind = HF_KIND_ALARM;
    r.lane = (uint8_t)hf_record_lane_of(HF_KIND_ALARM);
    r.run = self->id;
    r.ts_ns = s_wall(self, mono_ns);
    r.mono_ns = mono_ns;
    r.u.alarm.raised = (uint8_t)(raised != 0);
    r.u.alarm.severity = (uint8_t)severity;
    r.u.alarm.code = code;
    snprintf(r.u.alarm.text, sizeof r.u.alarm.text, "%s", text);
    s_emit(self, &r);
}

/* "read flow", "write oven.setpoint", "open device", "wait-until read x". */
static void
s_what(const hf_run_t *self, uint8_t op, uint32_t index, char *buf, size_t cap)
{
    const char *name = NULL;
    switch (op) {
    case HF_HWOP_READ:
        name = hf_method_channel_name(self->method, index);
        snprintf(buf, cap, "read %s", name ? name : "?");
        return;
    case HF_HWOP_WRITE:
        name = self->hal.ops->actuator_name(self->hal.impl, index);
        snprintf(buf, cap, "write %s", name ? name : "?");
        return;
    case HF_HWOP_POLL:
        name = self->hal.ops->channel_name(self->hal.impl, index);
        snprintf(buf, cap, "wait-until read %s", name ? name : "?");
        return;
    default:
        snprintf(buf, cap, "open device");
        return;
    }
}

static void
s_emit_hw_error(hf_run_t *self, uint64_t mono_ns, uint8_t op, uint32_t index,
                const hf_hal_error_t *e, const char *prefix)
{
    char what[HF_TEXT_MAX + 1];
    s_what(self, op, index, what, sizeof what);
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
    s_textf(r.u.hw_error.text, sizeof r.u.hw_error.text, "%s%s: %s: %s", prefix, what,
             hf_hal_class_name(e->cls), e->reason);
    s_emit(self, &r);
    self->counters.hw_errors++;
}
