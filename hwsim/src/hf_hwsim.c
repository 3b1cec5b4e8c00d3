/* hf_hwsim.c - hf_hwsim_t: a deterministic simulated instrument.
 *
 * Design notes:
 * - Time origin is the mono_ns given to the hal open op; models see t >= 0
 *   seconds since then (earlier times are clamped to 0).
 * - LAG channels keep (value, time, setpoint) as of the last write to their
 *   actuator and evaluate the exact solution of the first-order ODE on read.
 *   Reads never mutate that state, so the value at a time does not depend
 *   on how often or in which order it was read. A write at a time earlier
 *   than the previous write is applied at the previous write's time (the
 *   simulated device cannot travel back).
 * - Noise is a hash, not a stream: splitmix64 of (seed, channel, time step).
 *   That keeps reads pure and lets any time be read in any order.
 * - Faults with count > 0 are the one place where reads have a side effect
 *   (the hit counter); that is their point (a transient that clears after N
 *   attempts).
 *
 * Invariants: channel_count >= 1; every LAG channel's actuator < actuator_count;
 * fault_count <= HF_HWSIM_MAX_FAULTS; names are unique, non-empty and
 * NUL-terminated within HF_HWSIM_NAME_MAX.
 */
#include "hf_hwsim.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"

typedef struct {
    hf_hwsim_channel_t cfg;              /* name pointer unused after new   */
    char name[HF_HWSIM_NAME_MAX + 1];
    double lag_value;                    /* unit: value at lag_ns           */
    uint64_t lag_ns;                     /* ns since open of the last write */
    double lag_setpoint;                 /* unit: setpoint since lag_ns     */
} s_channel_t;

typedef struct {
    char name[HF_HWSIM_NAME_MAX + 1];
    double value;                        /* unit: last written value        */
    uint64_t written_ns;                 /* ns since open of the last write */
} s_actuator_t;

typedef struct {
    hf_hwsim_fault_t cfg;
    uint32_t hits;                       /* reads failed so far by this fault */
} s_fault_t;

struct hf_hwsim_s {
    uint64_t seed;
    uint64_t noise_step_ns;              /* ns                              */
    uint32_t channel_count;
    uint32_t actuator_count;
    uint32_t fault_count;
    int open;                            /* 1 between open and close        */
    uint64_t open_ns;                    /* ns, monotonic time of open      */
    uint64_t reads;                      /* read attempts                   */
    s_channel_t channels[HF_HWSIM_MAX_CHANNELS];
    s_actuator_t actuators[HF_HWSIM_MAX_ACTUATORS];
    s_fault_t faults[HF_HWSIM_MAX_FAULTS];
};

static const hf_hal_ops_t s_ops;

static void s_copy_name(char *dst, const char *src);
static int s_name_ok(const char *name);
static double s_noise(const hf_hwsim_t *self, uint32_t channel, uint64_t t_ns);
static double s_lag_at(const s_channel_t *c, uint64_t t_ns);
static uint64_t s_since_open(const hf_hwsim_t *self, uint64_t mono_ns);
static void s_fill_error(hf_hal_error_t *err, hf_hal_class_t cls, uint32_t idx, int32_t code,
                         const char *reason);

hf_hwsim_opts_t
hf_hwsim_opts_default(void)
{
    hf_hwsim_opts_t o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    o.noise_step_ns = 1000000;
    o.actuator_count = 1;
    o.actuators[0] = (hf_hwsim_actuator_t){.name = "oven.setpoint", .initial = 22.0};
    o.channel_count = 4;
    o.channels[0] = (hf_hwsim_channel_t){.name = "oven.temp", .model = HF_HWSIM_LAG, .base = 22.0,
                                         .tau_s = 1.5, .actuator = 0, .noise = 0.02};
    o.channels[1] = (hf_hwsim_channel_t){.name = "chamber.pressure", .model = HF_HWSIM_SINE,
                                         .base = 101.3, .amplitude = 0.4, .period_s = 20.0,
                                         .noise = 0.005};
    o.channels[2] = (hf_hwsim_channel_t){.name = "flow", .model = HF_HWSIM_NOISE, .base = 2.0,
                                         .noise = 0.05};
    o.channels[3] = (hf_hwsim_channel_t){.name = "ambient", .model = HF_HWSIM_CONSTANT,
                                         .base = 22.0};
    return o;
}

static hf_err_t
s_validate(const hf_hwsim_opts_t *o)
{
    if (o->channel_count < 1 || o->channel_count > HF_HWSIM_MAX_CHANNELS) {
        hf_log_error("hwsim", "channel_count=%u out of 1..%d", o->channel_count,
                     HF_HWSIM_MAX_CHANNELS);
        return HF_EINVAL;
    }
    if (o->actuator_count > HF_HWSIM_MAX_ACTUATORS) {
        hf_log_error("hwsim", "actuator_count=%u above %d", o->actuator_count,
                     HF_HWSIM_MAX_ACTUATORS);
        return HF_EINVAL;
    }
    if (o->noise_step_ns == 0) {
        hf_log_error("hwsim", "noise_step_ns must be > 0");
        return HF_EINVAL;
    }
    for (uint32_t i = 0; i < o->actuator_count; i++) {
        const hf_hwsim_actuator_t *a = &o->actuators[i];
        if (!s_name_ok(a->name) || !isfinite(a->initial)) {
            hf_log_error("hwsim", "actuator=%u bad name or initial value", i);
            return HF_EINVAL;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(o->actuators[j].name, a->name) == 0) {
                hf_log_error("hwsim", "actuator=%s defined twice", a->name);
                return HF_EINVAL;
            }
    }
    for (uint32_t i = 0; i < o->channel_count; i++) {
        const hf_hwsim_channel_t *c = &o->channels[i];
        if (!s_name_ok(c->name)) {
            hf_log_error("hwsim", "channel=%u bad name", i);
            return HF_EINVAL;
        }
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(o->channels[j].name, c->name) == 0) {
                hf_log_error("hwsim", "channel=%s defined twice", c->name);
                return HF_EINVAL;
            }
        int ok = isfinite(c->base) && isfinite(c->noise) && c->noise >= 0.0;
        switch (c->model) {
        case HF_HWSIM_CONSTANT:
        case HF_HWSIM_NOISE:
            break;
        case HF_HWSIM_RAMP:
            ok = ok && isfinite(c->slope);
            break;
        case HF_HWSIM_SINE:
            ok = ok && isfinite(c->amplitude) && isfinite(c->period_s) && c->period_s > 0.0;
            break;
        case HF_HWSIM_LAG:
            ok = ok && isfinite(c->tau_s) && c->tau_s > 0.0 && c->actuator < o->actuator_count;
            break;
        default:
            ok = 0;
        }
        if (!ok) {
            hf_log_error("hwsim", "channel=%s bad model parameters", c->name);
            return HF_EINVAL;
        }
    }
    return HF_OK;
}

hf_hwsim_t *
hf_hwsim_new(const hf_hwsim_opts_t *opts, hf_err_t *err)
{
    assert(opts);
    hf_err_t rc = s_validate(opts);
    hf_hwsim_t *self = NULL;
    if (rc != HF_OK)
        goto fail;
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->seed = opts->seed;
    self->noise_step_ns = opts->noise_step_ns;
    self->channel_count = opts->channel_count;
    self->actuator_count = opts->actuator_count;
    for (uint32_t i = 0; i < self->actuator_count; i++) {
        s_copy_name(self->actuators[i].name, opts->actuators[i].name);
        self->actuators[i].value = opts->actuators[i].initial;
    }
    for (uint32_t i = 0; i < self->channel_count; i++) {
        s_channel_t *c = &self->channels[i];
        c->cfg = opts->channels[i];
        c->cfg.name = NULL;
        s_copy_name(c->name, opts->channels[i].name);
        if (c->cfg.model == HF_HWSIM_LAG) {
            c->lag_value = c->cfg.base;
            c->lag_setpoint = self->actuators[c->cfg.actuator].value;
        }
    }
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_hwsim_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_hwsim_destroy(hf_hwsim_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

hf_hal_t
hf_hwsim_hal(hf_hwsim_t *self)
{
    assert(self);
    return (hf_hal_t){.ops = &s_ops, .impl = self};
}

hf_err_t
hf_hwsim_add_fault(hf_hwsim_t *self, const hf_hwsim_fault_t *fault)
{
    assert(self && fault);
    if (fault->cls == HF_HAL_OK || fault->cls > HF_HAL_FATAL || fault->until_ns <= fault->from_ns)
        return HF_EINVAL;
    if (fault->channel != HF_HWSIM_ALL_CHANNELS && fault->channel >= self->channel_count)
        return HF_EINVAL;
    if (self->fault_count >= HF_HWSIM_MAX_FAULTS)
        return HF_EFULL;
    self->faults[self->fault_count++] = (s_fault_t){.cfg = *fault, .hits = 0};
    return HF_OK;
}

hf_err_t
hf_hwsim_inject(hf_hwsim_t *self, uint32_t channel, hf_hal_class_t cls, uint64_t from_ns,
                uint64_t until_ns)
{
    hf_hwsim_fault_t f = {
        .channel = channel, .cls = cls, .from_ns = from_ns, .until_ns = until_ns, .count = 0};
    return hf_hwsim_add_fault(self, &f);
}

double
hf_hwsim_actuator_value(const hf_hwsim_t *self, uint32_t idx)
{
    assert(self);
    if (idx >= self->actuator_count)
        return NAN;
    return self->actuators[idx].value;
}

uint64_t
hf_hwsim_reads(const hf_hwsim_t *self)
{
    assert(self);
    return self->reads;
}

/* ---- hf_hal_ops_t -------------------------------------------------------- */

static hf_hal_class_t
s_open(void *impl, uint64_t mono_ns, hf_hal_error_t *err)
{
    (void)err;
    hf_hwsim_t *self = impl;
    if (!self->open) {
        self->open = 1;
        self->open_ns = mono_ns;
    }
    return HF_HAL_OK;
}

static uint32_t
s_channel_count(void *impl)
{
    return ((hf_hwsim_t *)impl)->channel_count;
}

static uint32_t
s_actuator_count(void *impl)
{
    return ((hf_hwsim_t *)impl)->actuator_count;
}

static const char *
s_channel_name(void *impl, uint32_t idx)
{
    hf_hwsim_t *self = impl;
    return idx < self->channel_count ? self->channels[idx].name : NULL;
}

static const char *
s_actuator_name(void *impl, uint32_t idx)
{
    hf_hwsim_t *self = impl;
    return idx < self->actuator_count ? self->actuators[idx].name : NULL;
}

/* The first fault window covering (channel, mono_ns) that still fires. */
static s_fault_t *
s_fault_at(hf_hwsim_t *self, uint32_t channel, uint64_t mono_ns)
{
    for (uint32_t i = 0; i < self->fault_count; i++) {
        s_fault_t *f = &self->faults[i];
        if (f->cfg.channel != HF_HWSIM_ALL_CHANNELS && f->cfg.channel != channel)
            continue;
        if (mono_ns < f->cfg.from_ns || mono_ns >= f->cfg.until_ns)
            continue;
        if (f->cfg.count != 0 && f->hits >= f->cfg.count)
            continue;
        return f;
    }
    return NULL;
}

static hf_hal_class_t
s_read(void *impl, uint32_t channel, uint64_t mono_ns, double *value, hf_hal_error_t *err)
{
    hf_hwsim_t *self = impl;
    self->reads++;
    if (channel >= self->channel_count) {
        s_fill_error(err, HF_HAL_FATAL, channel, 1, "no such channel");
        return HF_HAL_FATAL;
    }
    if (!self->open) {
        s_fill_error(err, HF_HAL_DISCONNECTED, channel, 2, "device not open");
        return HF_HAL_DISCONNECTED;
    }
    s_fault_t *f = s_fault_at(self, channel, mono_ns);
    if (f) {
        f->hits++;
        char reason[HF_HAL_REASON_MAX + 1];
        snprintf(reason, sizeof reason, "injected %s fault on %s", hf_hal_class_name(f->cfg.cls),
                 self->channels[channel].name);
        s_fill_error(err, f->cfg.cls, channel, 100 + (int32_t)f->cfg.cls, reason);
        return f->cfg.cls;
    }
    const s_channel_t *c = &self->channels[channel];
    uint64_t t_ns = s_since_open(self, mono_ns);
    double t = (double)t_ns / 1e9;
    double v = c->cfg.base;
    switch (c->cfg.model) {
    case HF_HWSIM_CONSTANT:
    case HF_HWSIM_NOISE:
        break;
    case HF_HWSIM_RAMP:
        v = c->cfg.base + c->cfg.slope * t;
        break;
    case HF_HWSIM_SINE:
        v = c->cfg.base + c->cfg.amplitude * sin(2.0 * M_PI * t / c->cfg.period_s);
        break;
    case HF_HWSIM_LAG:
        v = s_lag_at(c, t_ns);
        break;
    }
    if (c->cfg.noise > 0.0)
        v += c->cfg.noise * s_noise(self, channel, t_ns);
    if (value)
        *value = v;
    return HF_HAL_OK;
}

static hf_hal_class_t
s_write(void *impl, uint32_t actuator, uint64_t mono_ns, double value, hf_hal_error_t *err)
{
    hf_hwsim_t *self = impl;
    if (actuator >= self->actuator_count) {
        s_fill_error(err, HF_HAL_FATAL, actuator, 1, "no such actuator");
        return HF_HAL_FATAL;
    }
    if (!self->open) {
        s_fill_error(err, HF_HAL_DISCONNECTED, actuator, 2, "device not open");
        return HF_HAL_DISCONNECTED;
    }
    if (!isfinite(value)) {
        s_fill_error(err, HF_HAL_FATAL, actuator, 3, "value is not finite");
        return HF_HAL_FATAL;
    }
    s_actuator_t *a = &self->actuators[actuator];
    uint64_t t_ns = s_since_open(self, mono_ns);
    if (t_ns < a->written_ns)
        t_ns = a->written_ns;
    for (uint32_t i = 0; i < self->channel_count; i++) {
        s_channel_t *c = &self->channels[i];
        if (c->cfg.model != HF_HWSIM_LAG || c->cfg.actuator != actuator)
            continue;
        c->lag_value = s_lag_at(c, t_ns);
        c->lag_ns = t_ns;
        c->lag_setpoint = value;
    }
    a->value = value;
    a->written_ns = t_ns;
    return HF_HAL_OK;
}

static void
s_close(void *impl)
{
    ((hf_hwsim_t *)impl)->open = 0;
}

static const hf_hal_ops_t s_ops = {
    .open = s_open,
    .channel_count = s_channel_count,
    .actuator_count = s_actuator_count,
    .channel_name = s_channel_name,
    .actuator_name = s_actuator_name,
    .read = s_read,
    .write = s_write,
    .close = s_close,
};

/* ---- helpers ------------------------------------------------------------- */

static void
s_copy_name(char *dst, const char *src)
{
    snprintf(dst, HF_HWSIM_NAME_MAX + 1, "%s", src);
}

static int
s_name_ok(const char *name)
{
    return name && name[0] && strlen(name) <= HF_HWSIM_NAME_MAX;
}

static uint64_t
s_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [-1, 1), keyed by (seed, channel, time step). */
static double
s_noise(const hf_hwsim_t *self, uint32_t channel, uint64_t t_ns)
{
    uint64_t h = s_splitmix64(self->seed);
    h = s_splitmix64(h ^ ((uint64_t)channel + 1));
    h = s_splitmix64(h ^ (t_ns / self->noise_step_ns));
    return (double)(h >> 11) * 0x1.0p-52 - 1.0;
}

static double
s_lag_at(const s_channel_t *c, uint64_t t_ns)
{
    if (t_ns <= c->lag_ns)
        return c->lag_value;
    double dt = (double)(t_ns - c->lag_ns) / 1e9;
    return c->lag_setpoint + (c->lag_value - c->lag_setpoint) * exp(-dt / c->cfg.tau_s);
}

static uint64_t
s_since_open(const hf_hwsim_t *self, uint64_t mono_ns)
{
    return mono_ns > self->open_ns ? mono_ns - self->open_ns : 0;
}

static void
s_fill_error(hf_hal_error_t *err, hf_hal_class_t cls, uint32_t idx, int32_t code,
             const char *reason)
{
    if (!err)
        return;
    err->cls = cls;
    err->device = 0;
    err->channel = idx;
    err->code = code;
    snprintf(err->reason, sizeof err->reason, "%s", reason);
}
