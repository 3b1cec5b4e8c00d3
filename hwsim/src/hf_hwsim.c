/* hf_hwsim.c - hf_hwsim_t: a deterministic simulated instrument.
 *
 * Design notes:
 * - Time origin is the mono_ns of the FIRST open call; models see t >= 0
 *   seconds since then (earlier times are clamped to 0). A reopen after a
 *   disconnect keeps the origin: the simulated process kept running.
 * - LAG channels keep (value, time, setpoint) as of the last write to their
 *   actuator and evaluate the exact solution of the first-order ODE on read.
 *   Reads never mutate that state, so the value at a time does not depend
 *   on how often or in which order it was read. A write at a time earlier
 *   than the previous write is applied at the previous write's time (the
 *   simulated device cannot travel back).
 * - Noise is a hash, not a stream: splitmix64 of (seed, channel, time step).
 *   That keeps reads pure and lets any time be read in any order.
 * - Side effects of calls, each deterministic given the calls: FAIL hit
 *   counters (a burst clears after N calls: that is its point), FATAL's
 *   sticky "fired", DISCONNECT's "link lost / reopened", and a STUCK
 *   channel's frozen value. The frozen value is the model at `from`; it is
 *   computed lazily, and a write that would change a LAG trajectory first
 *   captures it, so the result never depends on when it was read.
 * - Faults given since_open are "armed" (turned absolute) at the first open.
 *   Unarmed faults never match; before the first open every call fails
 *   "device not open" anyway.
 * - The truth log is the only I/O. It is written from a bounded buffer and
 *   never feeds back into a value.
 *
 * Invariants: channel_count >= 1; every LAG channel's actuator < actuator_count;
 * fault_count <= HF_HWSIM_MAX_FAULTS; names are unique, non-empty and
 * NUL-terminated within HF_HWSIM_NAME_MAX; truth_len <= HF_HWSIM_TRUTH_BUF;
 * lost implies a DISCONNECT was seen and no open succeeded since.
 */
#include "hf_hwsim.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"

#define S_TRUTH_DEFAULT_MAX (64ull << 20) /* bytes */
#define S_TRUTH_LINE_MAX 256              /* bytes: a name, a value, a reason */

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
    int has_safe;
    double safe;                         /* unit                            */
} s_actuator_t;

typedef struct {
    hf_hwsim_fault_t cfg;                /* reason unused; times absolute once armed */
    char reason[HF_HAL_REASON_MAX + 1];  /* "" = a generated reason          */
    int armed;                           /* cfg times are absolute mono ns   */
    uint32_t hits;                       /* FAIL: calls failed so far        */
    int fired;                           /* FATAL: seen once, sticky         */
    int recovered;                       /* DISCONNECT: reopened after it    */
    uint32_t frozen_mask;                /* STUCK: bit ch = frozen[ch] valid */
    double frozen[HF_HWSIM_MAX_CHANNELS]; /* unit: STUCK value per channel   */
} s_fault_t;

struct hf_hwsim_s {
    uint64_t seed;
    uint64_t noise_step_ns;              /* ns                              */
    uint32_t channel_count;
    uint32_t actuator_count;
    uint32_t fault_count;
    uint32_t device;                     /* hf_hal_error_t.device           */
    char device_name[HF_HWSIM_NAME_MAX + 1];
    int started;                         /* 1 once open was called          */
    int open;                            /* 1 between open and close        */
    int lost;                            /* 1: link lost, reopen needed     */
    uint64_t open_ns;                    /* ns, monotonic time of first open */
    uint64_t reads;                      /* read attempts                   */
    uint64_t writes;                     /* write attempts                  */
    s_channel_t channels[HF_HWSIM_MAX_CHANNELS];
    s_actuator_t actuators[HF_HWSIM_MAX_ACTUATORS];
    s_fault_t faults[HF_HWSIM_MAX_FAULTS];
    /* ground-truth log */
    FILE *truth;                         /* NULL = no log                   */
    char *truth_buf;                     /* HF_HWSIM_TRUTH_BUF bytes        */
    size_t truth_len;                    /* bytes buffered                  */
    uint64_t truth_bytes;                /* bytes accepted so far (file size) */
    uint64_t truth_max;                  /* bytes: cap                      */
    uint64_t truth_dropped;              /* lines not written               */
    int truth_failed;                    /* a write failed: log incomplete  */
    int truth_capped;                    /* cap reached, marker written     */
};

static const hf_hal_ops_t s_ops;

static void s_copy_name(char *dst, const char *src);
static int s_name_ok(const char *name);
static double s_noise(const hf_hwsim_t *self, uint32_t channel, uint64_t t_ns);
static double s_lag_at(const s_channel_t *c, uint64_t t_ns);
static uint64_t s_since_open(const hf_hwsim_t *self, uint64_t mono_ns);
static void s_fill_error(const hf_hwsim_t *self, hf_hal_error_t *err, hf_hal_class_t cls,
                         uint32_t idx, int32_t code, const char *reason);
static void s_truth(hf_hwsim_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_reasonf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_truth_result(hf_hwsim_t *self, uint64_t mono_ns, const char *op, const char *name,
                           hf_hal_class_t cls, double value, const hf_hal_error_t *err);

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
    o.device_name = "hwsim";
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
    if (o->device_name && !s_name_ok(o->device_name)) {
        hf_log_error("hwsim", "bad device_name");
        return HF_EINVAL;
    }
    for (uint32_t i = 0; i < o->actuator_count; i++) {
        const hf_hwsim_actuator_t *a = &o->actuators[i];
        if (!s_name_ok(a->name) || !isfinite(a->initial) || (a->has_safe && !isfinite(a->safe))) {
            hf_log_error("hwsim", "actuator=%u bad name, initial or safe value", i);
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
    self->device = opts->device;
    s_copy_name(self->device_name, opts->device_name ? opts->device_name : "hwsim");
    self->truth_max = opts->truth_max_bytes ? opts->truth_max_bytes : S_TRUTH_DEFAULT_MAX;
    for (uint32_t i = 0; i < self->actuator_count; i++) {
        s_copy_name(self->actuators[i].name, opts->actuators[i].name);
        self->actuators[i].value = opts->actuators[i].initial;
        self->actuators[i].has_safe = opts->actuators[i].has_safe != 0;
        self->actuators[i].safe = opts->actuators[i].safe;
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
    if (opts->truth_path) {
        rc = hf_hwsim_truth_open(self, opts->truth_path);
        if (rc != HF_OK)
            goto fail;
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
    hf_hwsim_t *self = *self_p;
    if (!self)
        return;
    (void)hf_hwsim_truth_close(self); /* a failure was logged by the flush */
    free(self);
    *self_p = NULL;
}

hf_hal_t
hf_hwsim_hal(hf_hwsim_t *self)
{
    assert(self);
    return (hf_hal_t){.ops = &s_ops, .impl = self};
}

static uint64_t
s_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void
s_arm(const hf_hwsim_t *self, s_fault_t *f)
{
    if (f->armed)
        return;
    f->cfg.from_ns = s_sat_add(f->cfg.from_ns, self->open_ns);
    if (f->cfg.until_ns != HF_HWSIM_FOREVER)
        f->cfg.until_ns = s_sat_add(f->cfg.until_ns, self->open_ns);
    f->armed = 1;
}

hf_err_t
hf_hwsim_add_fault(hf_hwsim_t *self, const hf_hwsim_fault_t *fault)
{
    assert(self && fault);
    const hf_hwsim_fault_t *f = fault;
    int window_ok = f->until_ns > f->from_ns;
    int ok = 1;
    uint32_t limit = 0; /* index bound for the target */
    switch (f->target) {
    case HF_HWSIM_ON_CHANNEL:
        limit = self->channel_count;
        break;
    case HF_HWSIM_ON_ACTUATOR:
        limit = self->actuator_count;
        break;
    case HF_HWSIM_ON_DEVICE:
        limit = UINT32_MAX;
        break;
    default:
        return HF_EINVAL;
    }
    if (f->target != HF_HWSIM_ON_DEVICE && f->channel != UINT32_MAX && f->channel >= limit)
        return HF_EINVAL;
    switch (f->kind) {
    case HF_HWSIM_FAIL:
        ok = f->cls != HF_HAL_OK && f->cls <= HF_HAL_FATAL && window_ok;
        break;
    case HF_HWSIM_STUCK:
        ok = f->target != HF_HWSIM_ON_ACTUATOR && window_ok;
        break;
    case HF_HWSIM_DRIFT:
        ok = f->target != HF_HWSIM_ON_ACTUATOR && window_ok && isfinite(f->rate);
        break;
    case HF_HWSIM_DISCONNECT:
        ok = f->target == HF_HWSIM_ON_DEVICE && window_ok;
        break;
    case HF_HWSIM_FATAL:
        break;
    default:
        ok = 0;
    }
    if (!ok)
        return HF_EINVAL;
    if (self->fault_count >= HF_HWSIM_MAX_FAULTS)
        return HF_EFULL;
    s_fault_t *sf = &self->faults[self->fault_count++];
    memset(sf, 0, sizeof *sf);
    sf->cfg = *f;
    sf->cfg.reason = NULL;
    if (f->kind == HF_HWSIM_FATAL) {
        sf->cfg.until_ns = HF_HWSIM_FOREVER;
        sf->cfg.cls = HF_HAL_FATAL;
    } else if (f->kind == HF_HWSIM_DISCONNECT) {
        sf->cfg.cls = HF_HAL_DISCONNECTED;
    }
    if (f->reason) {
        /* One line in a log or a record: control characters become spaces. */
        snprintf(sf->reason, sizeof sf->reason, "%s", f->reason);
        for (char *p = sf->reason; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
    }
    sf->armed = !f->since_open;
    if (f->since_open && self->started)
        s_arm(self, sf);
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

hf_err_t
hf_hwsim_actuator_safe(const hf_hwsim_t *self, uint32_t idx, double *value)
{
    assert(self);
    if (idx >= self->actuator_count || !self->actuators[idx].has_safe)
        return HF_ENOTFOUND;
    if (value)
        *value = self->actuators[idx].safe;
    return HF_OK;
}

uint64_t
hf_hwsim_reads(const hf_hwsim_t *self)
{
    assert(self);
    return self->reads;
}

uint64_t
hf_hwsim_writes(const hf_hwsim_t *self)
{
    assert(self);
    return self->writes;
}

/* ---- ground-truth log ------------------------------------------------------ */

hf_err_t
hf_hwsim_truth_open(hf_hwsim_t *self, const char *path)
{
    assert(self);
    if (!path || !path[0])
        return HF_EINVAL;
    if (self->truth)
        return HF_ESTATE;
    char *buf = malloc(HF_HWSIM_TRUTH_BUF);
    if (!buf)
        return HF_ENOMEM;
    FILE *f = fopen(path, "w");
    if (!f) {
        hf_log_error("hwsim", "truth log %s: %s", path, strerror(errno));
        free(buf);
        return HF_EIO;
    }
    /* Our own buffer is the bound; stdio's would only add a second copy. */
    setvbuf(f, NULL, _IONBF, 0);
    self->truth = f;
    self->truth_buf = buf;
    self->truth_len = 0;
    self->truth_bytes = 0;
    self->truth_dropped = 0;
    self->truth_failed = 0;
    self->truth_capped = 0;
    s_truth(self, "# hwsim truth v1 device=%s seed=%llu\n", self->device_name,
            (unsigned long long)self->seed);
    return HF_OK;
}

hf_err_t
hf_hwsim_truth_flush(hf_hwsim_t *self)
{
    assert(self);
    if (!self->truth)
        return HF_OK;
    if (self->truth_len > 0 && !self->truth_failed) {
        if (fwrite(self->truth_buf, 1, self->truth_len, self->truth) != self->truth_len) {
            hf_log_error("hwsim", "truth log write failed: %s (log incomplete)",
                         strerror(errno));
            self->truth_failed = 1;
        }
    }
    self->truth_len = 0;
    return self->truth_failed ? HF_EIO : HF_OK;
}

hf_err_t
hf_hwsim_truth_close(hf_hwsim_t *self)
{
    assert(self);
    if (!self->truth)
        return HF_OK;
    hf_err_t rc = hf_hwsim_truth_flush(self);
    if (fclose(self->truth) != 0 && rc == HF_OK) {
        hf_log_error("hwsim", "truth log close failed: %s", strerror(errno));
        rc = HF_EIO;
    }
    self->truth = NULL;
    free(self->truth_buf);
    self->truth_buf = NULL;
    return rc;
}

uint64_t
hf_hwsim_truth_dropped(const hf_hwsim_t *self)
{
    assert(self);
    return self->truth_dropped;
}

static void
s_truth_append(hf_hwsim_t *self, const char *line, size_t n)
{
    if (self->truth_len + n > HF_HWSIM_TRUTH_BUF)
        (void)hf_hwsim_truth_flush(self);
    memcpy(self->truth_buf + self->truth_len, line, n);
    self->truth_len += n;
    self->truth_bytes += n;
}

static void
s_truth(hf_hwsim_t *self, const char *fmt, ...)
{
    if (!self->truth)
        return;
    if (self->truth_failed || self->truth_capped) {
        self->truth_dropped++;
        return;
    }
    char line[S_TRUTH_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        self->truth_dropped++;
        return;
    }
    if ((size_t)n >= sizeof line) { /* cannot happen with our bounded fields; keep it a line */
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (self->truth_bytes + (uint64_t)n > self->truth_max) {
        /* The marker may pass the cap by one short line: a reader must see
         * that the log was cut, not guess it from its size. */
        char mark[96];
        int m = snprintf(mark, sizeof mark, "# truncated: cap of %llu bytes reached\n",
                         (unsigned long long)self->truth_max);
        s_truth_append(self, mark, (size_t)m);
        self->truth_capped = 1;
        self->truth_dropped++;
        return;
    }
    s_truth_append(self, line, (size_t)n);
}

static void
s_truth_result(hf_hwsim_t *self, uint64_t mono_ns, const char *op, const char *name,
               hf_hal_class_t cls, double value, const hf_hal_error_t *err)
{
    if (!self->truth)
        return;
    if (cls == HF_HAL_OK && strcmp(op, "open") != 0 && strcmp(op, "close") != 0)
        s_truth(self, "%llu %s %s ok %.17g\n", (unsigned long long)mono_ns, op, name, value);
    else if (cls == HF_HAL_OK)
        s_truth(self, "%llu %s %s ok\n", (unsigned long long)mono_ns, op, name);
    else
        s_truth(self, "%llu %s %s %s %s\n", (unsigned long long)mono_ns, op, name,
                hf_hal_class_name(cls), err->reason);
}

/* ---- fault lookup --------------------------------------------------------- */

static int
s_in_window(const s_fault_t *f, uint64_t t)
{
    return f->armed && t >= f->cfg.from_ns && t < f->cfg.until_ns;
}

/* A device-wide FATAL that has begun (sticky once seen). */
static s_fault_t *
s_device_fatal(hf_hwsim_t *self, uint64_t t)
{
    for (uint32_t i = 0; i < self->fault_count; i++) {
        s_fault_t *f = &self->faults[i];
        if (f->cfg.kind != HF_HWSIM_FATAL || f->cfg.target != HF_HWSIM_ON_DEVICE || !f->armed)
            continue;
        if (f->fired || t >= f->cfg.from_ns) {
            f->fired = 1;
            return f;
        }
    }
    return NULL;
}

/* Any call at t >= from of a DISCONNECT not yet followed by a successful
 * open means the link was lost: the device must be reopened. The DISCONNECT
 * whose window covers t, if any, is returned. */
static s_fault_t *
s_link_check(hf_hwsim_t *self, uint64_t t, int is_open_call)
{
    s_fault_t *down = NULL;
    for (uint32_t i = 0; i < self->fault_count; i++) {
        s_fault_t *f = &self->faults[i];
        if (f->cfg.kind != HF_HWSIM_DISCONNECT || !f->armed || f->recovered ||
            t < f->cfg.from_ns)
            continue;
        if (!is_open_call)
            self->lost = 1;
        if (t < f->cfg.until_ns && !down)
            down = f;
    }
    return down;
}

static int
s_index_match(uint32_t want, uint32_t idx)
{
    return want == UINT32_MAX || want == idx;
}

/* The first FAIL or target-level FATAL entry for this call that fires now. */
static s_fault_t *
s_fail_at(hf_hwsim_t *self, hf_hwsim_target_t target, uint32_t idx, uint64_t t)
{
    for (uint32_t i = 0; i < self->fault_count; i++) {
        s_fault_t *f = &self->faults[i];
        if (!f->armed)
            continue;
        int on_me = f->cfg.target == HF_HWSIM_ON_DEVICE ||
                    (f->cfg.target == target && s_index_match(f->cfg.channel, idx));
        if (!on_me)
            continue;
        if (f->cfg.kind == HF_HWSIM_FATAL && f->cfg.target != HF_HWSIM_ON_DEVICE) {
            if (f->fired || t >= f->cfg.from_ns) {
                f->fired = 1;
                return f;
            }
            continue;
        }
        if (f->cfg.kind != HF_HWSIM_FAIL || !s_in_window(f, t))
            continue;
        if (f->cfg.count != 0 && f->hits >= f->cfg.count)
            continue;
        f->hits++;
        return f;
    }
    return NULL;
}

/* Reasons are cut to HF_HAL_REASON_MAX on purpose: long names lose the tail. */
static void
s_reasonf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, HF_HAL_REASON_MAX + 1, fmt, ap);
    va_end(ap);
}

static void
s_fault_reason(const hf_hwsim_t *self, const s_fault_t *f, const char *what, char *out)
{
    if (f->reason[0]) {
        s_reasonf(out, "%s/%s: %s", self->device_name, what, f->reason);
        return;
    }
    switch (f->cfg.kind) {
    case HF_HWSIM_FAIL:
        if (f->cfg.count)
            s_reasonf(out, "%s/%s: injected %s (burst, %u of %u)", self->device_name,
                     what, hf_hal_class_name(f->cfg.cls), f->hits, f->cfg.count);
        else
            s_reasonf(out, "%s/%s: injected %s fault", self->device_name, what,
                     hf_hal_class_name(f->cfg.cls));
        break;
    case HF_HWSIM_FATAL:
        s_reasonf(out, "%s/%s: injected fatal fault (sticky)", self->device_name, what);
        break;
    default:
        s_reasonf(out, "%s/%s: injected fault", self->device_name, what);
    }
}

/* Shared checks of read, write and open, in the documented order; HF_HAL_OK
 * if the call may proceed. target DEVICE means open. */
static hf_hal_class_t
s_check_call(hf_hwsim_t *self, hf_hwsim_target_t target, uint32_t idx, const char *what,
             uint64_t t, int safe_write, hf_hal_error_t *err)
{
    char reason[HF_HAL_REASON_MAX + 1];
    int is_open = target == HF_HWSIM_ON_DEVICE;
    uint32_t eidx = is_open ? HF_HWSIM_WHOLE_DEVICE : idx;
    s_fault_t *f = s_device_fatal(self, t);
    if (f && !safe_write) {
        s_fault_reason(self, f, what, reason);
        s_fill_error(self, err, HF_HAL_FATAL, eidx, 300, reason);
        return HF_HAL_FATAL;
    }
    f = s_link_check(self, t, is_open);
    if (f) {
        double back = (double)(f->cfg.until_ns - t) / 1e9;
        if (f->reason[0])
            s_reasonf(reason, "%s/%s: %s", self->device_name, what, f->reason);
        else if (f->cfg.until_ns == HF_HWSIM_FOREVER)
            s_reasonf(reason, "%s/%s: link down (simulated disconnect)",
                     self->device_name, what);
        else
            s_reasonf(reason, "%s/%s: link down (simulated disconnect, back in %.3f s)",
                     self->device_name, what, back);
        s_fill_error(self, err, HF_HAL_DISCONNECTED, eidx, 200, reason);
        return HF_HAL_DISCONNECTED;
    }
    if (is_open)
        return HF_HAL_OK;
    if (!self->open) {
        s_reasonf(reason, "%s/%s: device not open", self->device_name, what);
        s_fill_error(self, err, HF_HAL_DISCONNECTED, idx, 2, reason);
        return HF_HAL_DISCONNECTED;
    }
    if (self->lost) {
        s_reasonf(reason, "%s/%s: link was lost; device not reopened",
                 self->device_name, what);
        s_fill_error(self, err, HF_HAL_DISCONNECTED, idx, 201, reason);
        return HF_HAL_DISCONNECTED;
    }
    f = s_fail_at(self, target, idx, t);
    if (f) {
        s_fault_reason(self, f, what, reason);
        s_fill_error(self, err, f->cfg.cls,
                     idx, f->cfg.kind == HF_HWSIM_FATAL ? 300 : 100 + (int32_t)f->cfg.cls, reason);
        return f->cfg.cls;
    }
    return HF_HAL_OK;
}

/* ---- values --------------------------------------------------------------- */

/* Model plus noise at absolute time mono_ns. */
static double
s_model(const hf_hwsim_t *self, uint32_t channel, uint64_t mono_ns)
{
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
    return v;
}

static int
s_shapes(const s_fault_t *f, hf_hwsim_fault_kind_t kind, uint32_t channel)
{
    return f->armed && f->cfg.kind == kind &&
           (f->cfg.target == HF_HWSIM_ON_DEVICE ||
            (f->cfg.target == HF_HWSIM_ON_CHANNEL && s_index_match(f->cfg.channel, channel)));
}

static double
s_drift(const hf_hwsim_t *self, uint32_t channel, uint64_t t)
{
    double off = 0.0;
    for (uint32_t i = 0; i < self->fault_count; i++) {
        const s_fault_t *f = &self->faults[i];
        if (s_shapes(f, HF_HWSIM_DRIFT, channel) && s_in_window(f, t))
            off += f->cfg.rate * ((double)(t - f->cfg.from_ns) / 1e9);
    }
    return off;
}

static void
s_freeze(hf_hwsim_t *self, s_fault_t *f, uint32_t channel)
{
    uint32_t bit = 1u << channel;
    if (f->frozen_mask & bit)
        return;
    f->frozen[channel] = s_model(self, channel, f->cfg.from_ns) +
                         s_drift(self, channel, f->cfg.from_ns);
    f->frozen_mask |= bit;
}

static double
s_value(hf_hwsim_t *self, uint32_t channel, uint64_t t)
{
    for (uint32_t i = 0; i < self->fault_count; i++) {
        s_fault_t *f = &self->faults[i];
        if (s_shapes(f, HF_HWSIM_STUCK, channel) && s_in_window(f, t)) {
            s_freeze(self, f, channel);
            return f->frozen[channel];
        }
    }
    return s_model(self, channel, t) + s_drift(self, channel, t);
}

/* ---- hf_hal_ops_t -------------------------------------------------------- */

static hf_hal_class_t
s_open(void *impl, uint64_t mono_ns, hf_hal_error_t *err)
{
    hf_hwsim_t *self = impl;
    if (!self->started) {
        self->started = 1;
        self->open_ns = mono_ns;
        for (uint32_t i = 0; i < self->fault_count; i++)
            s_arm(self, &self->faults[i]);
    }
    hf_hal_error_t local;
    hf_hal_error_t *e = err ? err : &local;
    hf_hal_class_t cls = s_check_call(self, HF_HWSIM_ON_DEVICE, 0, "device", mono_ns, 0, e);
    if (cls == HF_HAL_OK) {
        self->open = 1;
        self->lost = 0;
        for (uint32_t i = 0; i < self->fault_count; i++) {
            s_fault_t *f = &self->faults[i];
            if (f->cfg.kind == HF_HWSIM_DISCONNECT && f->armed && mono_ns >= f->cfg.from_ns)
                f->recovered = 1;
        }
    }
    s_truth_result(self, mono_ns, "open", "-", cls, 0.0, e);
    return cls;
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

static hf_hal_class_t
s_read(void *impl, uint32_t channel, uint64_t mono_ns, double *value, hf_hal_error_t *err)
{
    hf_hwsim_t *self = impl;
    self->reads++;
    hf_hal_error_t local;
    hf_hal_error_t *e = err ? err : &local;
    if (channel >= self->channel_count) {
        s_fill_error(self, e, HF_HAL_FATAL, channel, 1, "no such channel");
        s_truth_result(self, mono_ns, "read", "?", HF_HAL_FATAL, 0.0, e);
        return HF_HAL_FATAL;
    }
    const char *name = self->channels[channel].name;
    hf_hal_class_t cls = s_check_call(self, HF_HWSIM_ON_CHANNEL, channel, name, mono_ns, 0, e);
    double v = 0.0;
    if (cls == HF_HAL_OK) {
        v = s_value(self, channel, mono_ns);
        if (value)
            *value = v;
    }
    s_truth_result(self, mono_ns, "read", name, cls, v, e);
    return cls;
}

static hf_hal_class_t
s_write(void *impl, uint32_t actuator, uint64_t mono_ns, double value, hf_hal_error_t *err)
{
    hf_hwsim_t *self = impl;
    self->writes++;
    hf_hal_error_t local;
    hf_hal_error_t *e = err ? err : &local;
    if (actuator >= self->actuator_count) {
        s_fill_error(self, e, HF_HAL_FATAL, actuator, 1, "no such actuator");
        s_truth_result(self, mono_ns, "write", "?", HF_HAL_FATAL, value, e);
        return HF_HAL_FATAL;
    }
    s_actuator_t *a = &self->actuators[actuator];
    int safe_write = a->has_safe && value == a->safe;
    hf_hal_class_t cls =
        s_check_call(self, HF_HWSIM_ON_ACTUATOR, actuator, a->name, mono_ns, safe_write, e);
    if (cls == HF_HAL_OK && !isfinite(value)) {
        char reason[HF_HAL_REASON_MAX + 1];
        s_reasonf(reason, "%s/%s: value is not finite", self->device_name,
                 a->name);
        s_fill_error(self, e, HF_HAL_FATAL, actuator, 3, reason);
        cls = HF_HAL_FATAL;
    }
    if (cls != HF_HAL_OK) {
        s_truth_result(self, mono_ns, "write", a->name, cls, value, e);
        return cls;
    }
    uint64_t t_ns = s_since_open(self, mono_ns);
    if (t_ns < a->written_ns)
        t_ns = a->written_ns;
    for (uint32_t i = 0; i < self->channel_count; i++) {
        s_channel_t *c = &self->channels[i];
        if (c->cfg.model != HF_HWSIM_LAG || c->cfg.actuator != actuator)
            continue;
        /* A STUCK that began before this write froze the pre-write trajectory. */
        for (uint32_t k = 0; k < self->fault_count; k++) {
            s_fault_t *f = &self->faults[k];
            if (s_shapes(f, HF_HWSIM_STUCK, i) && f->cfg.from_ns <= mono_ns)
                s_freeze(self, f, i);
        }
        c->lag_value = s_lag_at(c, t_ns);
        c->lag_ns = t_ns;
        c->lag_setpoint = value;
    }
    a->value = value;
    a->written_ns = t_ns;
    s_truth_result(self, mono_ns, "write", a->name, HF_HAL_OK, value, e);
    return HF_HAL_OK;
}

static void
s_close(void *impl)
{
    hf_hwsim_t *self = impl;
    self->open = 0;
    if (self->truth)
        s_truth(self, "- close - ok\n");
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
s_fill_error(const hf_hwsim_t *self, hf_hal_error_t *err, hf_hal_class_t cls, uint32_t idx,
             int32_t code, const char *reason)
{
    if (!err)
        return;
    err->cls = cls;
    err->device = self->device;
    err->channel = idx;
    err->code = code;
    snprintf(err->reason, sizeof err->reason, "%s", reason);
}
