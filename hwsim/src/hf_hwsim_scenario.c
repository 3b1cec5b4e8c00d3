/* hf_hwsim_scenario.c - hf_hwsim_scenario_t: a .scenario file, parsed.
 *
 * A scenario is a self-contained test case for the whole pipeline: the
 * simulated instrument (channels, actuators, seed), the fault schedule, the
 * engine policy to apply, the method to run (inline) and what must reach
 * the aggregator (expectations). The format is in docs/hwsim.md.
 *
 * Design notes:
 * - Line-based like method files: one directive per line, '#' comments,
 *   words split on blanks, the whole file refused on the first bad line
 *   with "line N: reason". The method block is copied verbatim (comments
 *   included): the engine's method parser owns that syntax.
 * - Names are declared before they are used (a fault or an expectation names
 *   a channel or actuator declared above it), so every error points at the
 *   line that has it.
 * - The parser builds the same hf_hwsim_opts_t / hf_hwsim_fault_t an API
 *   user would, and checks them with the same rules, so a scenario that
 *   parses always builds a simulator.
 * - No clock, no I/O except hf_hwsim_scenario_load's one bounded read.
 *
 * Invariants: counts within their HF_HWSIM_* maxima; every string
 * NUL-terminated; opts.channels[i].name points at chan_names[i] (same for
 * actuators, device and fault reasons); method holds at most
 * HF_HWSIM_SCENARIO_METHOD_MAX bytes.
 */
#include "hf_hwsim.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_record.h"

#define S_MAX_WORDS 32
#define S_DURATION_MAX_NS (30ull * 24 * 3600 * 1000000000ull) /* 30 days, as methods */
#define S_COUNT_MAX 1000000000ull /* counts in expectations and bursts */
#define S_RETRIES_MAX 100

struct hf_hwsim_scenario_s {
    char name[HF_HWSIM_NAME_MAX + 1];
    hf_hwsim_opts_t opts;                 /* names point into the arrays below */
    char chan_names[HF_HWSIM_MAX_CHANNELS][HF_HWSIM_NAME_MAX + 1];
    char act_names[HF_HWSIM_MAX_ACTUATORS][HF_HWSIM_NAME_MAX + 1];
    char device_name[HF_HWSIM_NAME_MAX + 1];
    hf_hwsim_policy_t policy;
    uint32_t fault_count;
    hf_hwsim_fault_t faults[HF_HWSIM_MAX_FAULTS]; /* since_open = 1            */
    char reasons[HF_HWSIM_MAX_FAULTS][HF_HAL_REASON_MAX + 1];
    uint32_t expect_count;
    hf_hwsim_expect_t expects[HF_HWSIM_MAX_EXPECTS];
    char method[HF_HWSIM_SCENARIO_METHOD_MAX + 1];
    size_t method_len;                    /* bytes                            */
    uint32_t method_line;                 /* line of the first method line    */
    uint32_t method_open_line;            /* line of `method`, 0 = none       */
    int in_method;                        /* parsing inside method ... end   */
    int method_done;                      /* a block was closed              */
    int seen_seed, seen_noise_step, seen_device;
};

typedef struct {
    char *w[S_MAX_WORDS];                 /* words, in buf                    */
    size_t off[S_MAX_WORDS];              /* byte offset of each word in line */
    uint32_t n;
    const char *line;                     /* the line, comment removed        */
} s_words_t;

static void s_errf(char *errbuf, size_t errlen, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hf_err_t s_parse_line(hf_hwsim_scenario_t *self, uint32_t line, const char *text,
                             char *errbuf, size_t errlen);

/* ---- public --------------------------------------------------------------- */

hf_hwsim_scenario_t *
hf_hwsim_scenario_parse(const char *name, const char *text, char *errbuf, size_t errlen,
                        hf_err_t *err)
{
    assert(name && text);
    hf_err_t rc = HF_OK;
    hf_hwsim_scenario_t *self = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!name[0] || strlen(name) > HF_HWSIM_NAME_MAX) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "scenario name must be 1..%d bytes", HF_HWSIM_NAME_MAX);
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        s_errf(errbuf, errlen, 0, "out of memory");
        goto fail;
    }
    snprintf(self->name, sizeof self->name, "%s", name);
    self->opts = hf_hwsim_opts_default();
    self->opts.channel_count = 0;
    self->opts.actuator_count = 0;
    memset(self->opts.channels, 0, sizeof self->opts.channels);
    memset(self->opts.actuators, 0, sizeof self->opts.actuators);
    snprintf(self->device_name, sizeof self->device_name, "hwsim");
    self->opts.device_name = self->device_name;
    self->policy.retries = 3;
    self->policy.disconnect_grace_ns = 5000000000ull;

    size_t total = strlen(text);
    if (total > HF_HWSIM_SCENARIO_FILE_MAX) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "scenario is larger than %d bytes", HF_HWSIM_SCENARIO_FILE_MAX);
        goto fail;
    }
    uint32_t line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (line > HF_HWSIM_SCENARIO_LINES_MAX) {
            rc = HF_EINVAL;
            s_errf(errbuf, errlen, line, "too many lines (max %d)", HF_HWSIM_SCENARIO_LINES_MAX);
            goto fail;
        }
        if (len > HF_HWSIM_SCENARIO_LINE_MAX) {
            rc = HF_EINVAL;
            s_errf(errbuf, errlen, line, "line longer than %d bytes",
                   HF_HWSIM_SCENARIO_LINE_MAX);
            goto fail;
        }
        char buf[HF_HWSIM_SCENARIO_LINE_MAX + 1];
        memcpy(buf, p, len);
        buf[len] = '\0';
        rc = s_parse_line(self, line, buf, errbuf, errlen);
        if (rc != HF_OK)
            goto fail;
        p = nl ? nl + 1 : p + len + (p[len] == '\r');
        if (!nl)
            break;
    }
    if (self->in_method) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, self->method_open_line, "method block not closed (missing 'end')");
        goto fail;
    }
    if (!self->method_done) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, line ? line : 1, "no method block (method ... end)");
        goto fail;
    }
    if (self->opts.channel_count == 0) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, line ? line : 1, "no channel declared");
        goto fail;
    }
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_hwsim_scenario_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

hf_hwsim_scenario_t *
hf_hwsim_scenario_load(const char *path, char *errbuf, size_t errlen, hf_err_t *err)
{
    assert(path);
    hf_err_t rc = HF_OK;
    hf_hwsim_scenario_t *self = NULL;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? HF_ENOTFOUND : HF_EIO;
        s_errf(errbuf, errlen, 0, "cannot open scenario %s: %s", path, strerror(errno));
        goto fail;
    }
    text = malloc(HF_HWSIM_SCENARIO_FILE_MAX + 2);
    if (!text) {
        rc = HF_ENOMEM;
        s_errf(errbuf, errlen, 0, "out of memory");
        goto fail;
    }
    size_t n = fread(text, 1, HF_HWSIM_SCENARIO_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = HF_EIO;
        s_errf(errbuf, errlen, 0, "cannot read scenario %s", path);
        goto fail;
    }
    if (n > HF_HWSIM_SCENARIO_FILE_MAX) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "scenario %s is larger than %d bytes", path,
               HF_HWSIM_SCENARIO_FILE_MAX);
        goto fail;
    }
    if (memchr(text, '\0', n)) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "scenario %s contains a NUL byte", path);
        goto fail;
    }
    text[n] = '\0';
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[HF_HWSIM_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", base);
    size_t nl = strlen(name);
    if (nl > 9 && strcmp(name + nl - 9, ".scenario") == 0)
        name[nl - 9] = '\0';
    self = hf_hwsim_scenario_parse(name, text, errbuf, errlen, &rc);
    if (!self)
        goto fail;
    free(text);
    fclose(f);
    if (err)
        *err = HF_OK;
    return self;

fail:
    free(text);
    if (f)
        fclose(f);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_hwsim_scenario_destroy(hf_hwsim_scenario_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

const char *
hf_hwsim_scenario_name(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return self->name;
}

const hf_hwsim_opts_t *
hf_hwsim_scenario_opts(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return &self->opts;
}

const char *
hf_hwsim_scenario_method(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return self->method;
}

uint32_t
hf_hwsim_scenario_method_line(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return self->method_line;
}

const hf_hwsim_policy_t *
hf_hwsim_scenario_policy(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return &self->policy;
}

uint32_t
hf_hwsim_scenario_fault_count(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return self->fault_count;
}

const hf_hwsim_fault_t *
hf_hwsim_scenario_fault(const hf_hwsim_scenario_t *self, uint32_t idx)
{
    assert(self);
    return idx < self->fault_count ? &self->faults[idx] : NULL;
}

uint32_t
hf_hwsim_scenario_expect_count(const hf_hwsim_scenario_t *self)
{
    assert(self);
    return self->expect_count;
}

const hf_hwsim_expect_t *
hf_hwsim_scenario_expect(const hf_hwsim_scenario_t *self, uint32_t idx)
{
    assert(self);
    return idx < self->expect_count ? &self->expects[idx] : NULL;
}

hf_hwsim_t *
hf_hwsim_new_from_scenario(const hf_hwsim_scenario_t *sc, const char *truth_path, hf_err_t *err)
{
    assert(sc);
    hf_hwsim_opts_t o = sc->opts;
    o.truth_path = truth_path;
    hf_err_t rc = HF_OK;
    hf_hwsim_t *sim = hf_hwsim_new(&o, &rc);
    if (!sim)
        goto fail;
    for (uint32_t i = 0; i < sc->fault_count; i++) {
        rc = hf_hwsim_add_fault(sim, &sc->faults[i]);
        if (rc != HF_OK)
            goto fail; /* the parser checked them: a broken invariant */
    }
    if (err)
        *err = HF_OK;
    return sim;

fail:
    hf_hwsim_destroy(&sim);
    if (err)
        *err = rc;
    return NULL;
}

int
hf_hwsim_expect_holds(const hf_hwsim_expect_t *e, uint64_t observed)
{
    assert(e);
    switch (e->kind) {
    case HF_HWSIM_EXPECT_EVENT:
    case HF_HWSIM_EXPECT_HW_ERROR:
    case HF_HWSIM_EXPECT_ALARM:
    case HF_HWSIM_EXPECT_SAMPLES:
    case HF_HWSIM_EXPECT_MISSING:
    case HF_HWSIM_EXPECT_GAPS:
        break;
    default:
        return 0;
    }
    switch (e->cmp) {
    case HF_HWSIM_CMP_EQ:
        return observed == e->count;
    case HF_HWSIM_CMP_NE:
        return observed != e->count;
    case HF_HWSIM_CMP_LT:
        return observed < e->count;
    case HF_HWSIM_CMP_LE:
        return observed <= e->count;
    case HF_HWSIM_CMP_GT:
        return observed > e->count;
    case HF_HWSIM_CMP_GE:
        return observed >= e->count;
    }
    return 0;
}

const char *
hf_hwsim_cmp_name(hf_hwsim_cmp_t cmp)
{
    switch (cmp) {
    case HF_HWSIM_CMP_EQ:
        return "==";
    case HF_HWSIM_CMP_NE:
        return "!=";
    case HF_HWSIM_CMP_LT:
        return "<";
    case HF_HWSIM_CMP_LE:
        return "<=";
    case HF_HWSIM_CMP_GT:
        return ">";
    case HF_HWSIM_CMP_GE:
        return ">=";
    }
    return "?";
}

/* ---- lexical helpers ------------------------------------------------------ */

static void
s_errf(char *errbuf, size_t errlen, uint32_t line, const char *fmt, ...)
{
    if (!errbuf || errlen == 0)
        return;
    int off = 0;
    if (line > 0)
        off = snprintf(errbuf, errlen, "line %u: ", line);
    if (off < 0 || (size_t)off >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf + off, errlen - (size_t)off, fmt, ap);
    va_end(ap);
}

static int
s_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HF_HWSIM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* A finite plain decimal: all of s, or (suffix given) a prefix of s. */
static int
s_number(const char *s, double *out, const char **suffix)
{
    const char *q = s;
    if (*q == '+' || *q == '-')
        q++;
    if (!((*q >= '0' && *q <= '9') || *q == '.'))
        return 0;
    if (q[0] == '0' && (q[1] == 'x' || q[1] == 'X'))
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v))
        return 0;
    if (!suffix && *end != '\0')
        return 0;
    if (suffix)
        *suffix = end;
    *out = v;
    return 1;
}

/* Decimal digits only, <= max. */
static int
s_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!*s || strlen(s) > 20)
        return 0;
    uint64_t v = 0;
    for (const char *q = s; *q; q++) {
        if (*q < '0' || *q > '9')
            return 0;
        uint64_t d = (uint64_t)(*q - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    if (v > max)
        return 0;
    *out = v;
    return 1;
}

/* NUMBER immediately followed by ns, us, ms, s, min or h; at most 30 days.
 * zero_ok: 0 allowed (a time "at 0s"), else it must be >= 1 ns. */
static int
s_duration(const char *s, int zero_ok, uint64_t *out_ns, const char **why)
{
    double v = 0;
    const char *unit = NULL;
    if (!s_number(s, &v, &unit)) {
        *why = "is not a number with a unit";
        return 0;
    }
    double mult;
    if (strcmp(unit, "ns") == 0)
        mult = 1.0;
    else if (strcmp(unit, "us") == 0)
        mult = 1e3;
    else if (strcmp(unit, "ms") == 0)
        mult = 1e6;
    else if (strcmp(unit, "s") == 0)
        mult = 1e9;
    else if (strcmp(unit, "min") == 0)
        mult = 60e9;
    else if (strcmp(unit, "h") == 0)
        mult = 3600e9;
    else {
        *why = *unit ? "has an unknown unit (use ns, us, ms, s, min or h)"
                     : "has no unit (use ns, us, ms, s, min or h)";
        return 0;
    }
    double ns = v * mult;
    if (zero_ok ? !(ns >= 0.0) : !(ns >= 1.0)) {
        *why = zero_ok ? "must not be negative" : "must be positive";
        return 0;
    }
    if (ns > (double)S_DURATION_MAX_NS) {
        *why = "is longer than 30 days";
        return 0;
    }
    *out_ns = (uint64_t)llround(ns);
    return 1;
}

static void
s_split(char *buf, s_words_t *w, int *too_many)
{
    w->n = 0;
    *too_many = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return;
        if (w->n == S_MAX_WORDS) {
            *too_many = 1;
            return;
        }
        w->off[w->n] = (size_t)(p - buf);
        w->w[w->n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

static int
s_find_channel(const hf_hwsim_scenario_t *self, const char *name, uint32_t *idx)
{
    for (uint32_t i = 0; i < self->opts.channel_count; i++)
        if (strcmp(self->chan_names[i], name) == 0) {
            *idx = i;
            return 1;
        }
    return 0;
}

static int
s_find_actuator(const hf_hwsim_scenario_t *self, const char *name, uint32_t *idx)
{
    for (uint32_t i = 0; i < self->opts.actuator_count; i++)
        if (strcmp(self->act_names[i], name) == 0) {
            *idx = i;
            return 1;
        }
    return 0;
}

static int
s_class(const char *s, hf_hal_class_t *cls)
{
    for (int c = HF_HAL_TRANSIENT; c <= HF_HAL_FATAL; c++)
        if (strcmp(s, hf_hal_class_name((hf_hal_class_t)c)) == 0) {
            *cls = (hf_hal_class_t)c;
            return 1;
        }
    return 0;
}

/* ---- directives ----------------------------------------------------------- */

#define S_FAIL(...)                                                                              \
    do {                                                                                         \
        s_errf(errbuf, errlen, line, __VA_ARGS__);                                               \
        return HF_EINVAL;                                                                        \
    } while (0)

static hf_err_t
s_parse_actuator(hf_hwsim_scenario_t *self, uint32_t line, const s_words_t *w, char *errbuf,
                 size_t errlen)
{
    if (w->n < 2)
        S_FAIL("missing arguments: usage: actuator NAME [initial VALUE] [safe VALUE]");
    const char *name = w->w[1];
    if (!s_name_valid(name))
        S_FAIL("bad actuator name '%s' (1..63 of [A-Za-z0-9._-])", name);
    uint32_t dummy;
    if (s_find_actuator(self, name, &dummy))
        S_FAIL("actuator '%s' is already declared", name);
    if (self->opts.actuator_count >= HF_HWSIM_MAX_ACTUATORS)
        S_FAIL("too many actuators (max %d)", HF_HWSIM_MAX_ACTUATORS);
    hf_hwsim_actuator_t a = {.initial = 0.0};
    int seen_initial = 0;
    for (uint32_t i = 2; i < w->n; i += 2) {
        const char *key = w->w[i];
        if (i + 1 >= w->n)
            S_FAIL("'%s' needs a value", key);
        double v;
        if (!s_number(w->w[i + 1], &v, NULL))
            S_FAIL("bad number '%s' for '%s'", w->w[i + 1], key);
        if (strcmp(key, "initial") == 0 && !seen_initial) {
            a.initial = v;
            seen_initial = 1;
        } else if (strcmp(key, "safe") == 0 && !a.has_safe) {
            a.safe = v;
            a.has_safe = 1;
        } else if (strcmp(key, "initial") == 0 || strcmp(key, "safe") == 0) {
            S_FAIL("'%s' given twice", key);
        } else {
            S_FAIL("unknown actuator key '%s' (expected initial or safe)", key);
        }
    }
    uint32_t idx = self->opts.actuator_count++;
    snprintf(self->act_names[idx], sizeof self->act_names[idx], "%s", name);
    a.name = self->act_names[idx];
    self->opts.actuators[idx] = a;
    return HF_OK;
}

static hf_err_t
s_parse_channel(hf_hwsim_scenario_t *self, uint32_t line, const s_words_t *w, char *errbuf,
                size_t errlen)
{
    if (w->n < 3)
        S_FAIL("missing arguments: usage: channel NAME MODEL [KEY VALUE]...");
    const char *name = w->w[1];
    if (!s_name_valid(name))
        S_FAIL("bad channel name '%s' (1..63 of [A-Za-z0-9._-])", name);
    uint32_t dummy;
    if (s_find_channel(self, name, &dummy))
        S_FAIL("channel '%s' is already declared", name);
    if (self->opts.channel_count >= HF_HWSIM_MAX_CHANNELS)
        S_FAIL("too many channels (max %d)", HF_HWSIM_MAX_CHANNELS);
    static const char *const models[] = {"constant", "ramp", "sine", "noise", "lag"};
    hf_hwsim_channel_t c = {.model = HF_HWSIM_CONSTANT};
    int model = -1;
    for (int m = 0; m < 5; m++)
        if (strcmp(w->w[2], models[m]) == 0)
            model = m;
    if (model < 0)
        S_FAIL("unknown model '%s' (expected constant, ramp, sine, noise or lag)", w->w[2]);
    c.model = (hf_hwsim_model_t)model;
    /* which keys a model takes; base and noise apply to all */
    enum { K_AMPLITUDE = 1, K_PERIOD = 2, K_SLOPE = 4, K_TAU = 8, K_FOLLOWS = 16 };
    unsigned allowed = 0;
    switch (c.model) {
    case HF_HWSIM_SINE:
        allowed = K_AMPLITUDE | K_PERIOD;
        break;
    case HF_HWSIM_RAMP:
        allowed = K_SLOPE;
        break;
    case HF_HWSIM_LAG:
        allowed = K_TAU | K_FOLLOWS;
        break;
    default:
        break;
    }
    unsigned seen = 0;
    int seen_base = 0, seen_noise = 0;
    for (uint32_t i = 3; i < w->n; i += 2) {
        const char *key = w->w[i];
        if (i + 1 >= w->n)
            S_FAIL("'%s' needs a value", key);
        const char *val = w->w[i + 1];
        unsigned k = 0;
        if (strcmp(key, "base") == 0 || strcmp(key, "noise") == 0) {
            int *flag = key[0] == 'b' ? &seen_base : &seen_noise;
            if (*flag)
                S_FAIL("'%s' given twice", key);
            *flag = 1;
            double v;
            if (!s_number(val, &v, NULL))
                S_FAIL("bad number '%s' for '%s'", val, key);
            if (key[0] == 'n' && v < 0.0)
                S_FAIL("noise must be >= 0");
            if (key[0] == 'b')
                c.base = v;
            else
                c.noise = v;
            continue;
        }
        if (strcmp(key, "amplitude") == 0)
            k = K_AMPLITUDE;
        else if (strcmp(key, "period") == 0)
            k = K_PERIOD;
        else if (strcmp(key, "slope") == 0)
            k = K_SLOPE;
        else if (strcmp(key, "tau") == 0)
            k = K_TAU;
        else if (strcmp(key, "follows") == 0)
            k = K_FOLLOWS;
        else
            S_FAIL("unknown channel key '%s' (expected base, noise, amplitude, period, slope, "
                   "tau or follows)",
                   key);
        if (!(allowed & k))
            S_FAIL("'%s' does not apply to model %s", key, models[model]);
        if (seen & k)
            S_FAIL("'%s' given twice", key);
        seen |= k;
        const char *why = NULL;
        uint64_t ns = 0;
        double v = 0;
        switch (k) {
        case K_AMPLITUDE:
        case K_SLOPE:
            if (!s_number(val, &v, NULL))
                S_FAIL("bad number '%s' for '%s'", val, key);
            if (k == K_AMPLITUDE)
                c.amplitude = v;
            else
                c.slope = v;
            break;
        case K_PERIOD:
        case K_TAU:
            if (!s_duration(val, 0, &ns, &why))
                S_FAIL("bad duration '%s' for '%s': %s", val, key, why);
            if (k == K_PERIOD)
                c.period_s = (double)ns / 1e9;
            else
                c.tau_s = (double)ns / 1e9;
            break;
        case K_FOLLOWS:
            if (!s_find_actuator(self, val, &c.actuator))
                S_FAIL("unknown actuator '%s' (declare it above with 'actuator')", val);
            break;
        default:
            break;
        }
    }
    if (c.model == HF_HWSIM_SINE && !(seen & K_PERIOD))
        S_FAIL("model sine needs 'period DURATION'");
    if (c.model == HF_HWSIM_LAG && !(seen & K_FOLLOWS))
        S_FAIL("model lag needs 'follows ACTUATOR'");
    if (c.model == HF_HWSIM_LAG && !(seen & K_TAU))
        S_FAIL("model lag needs 'tau DURATION'");
    uint32_t idx = self->opts.channel_count++;
    snprintf(self->chan_names[idx], sizeof self->chan_names[idx], "%s", name);
    c.name = self->chan_names[idx];
    self->opts.channels[idx] = c;
    return HF_OK;
}

static hf_err_t
s_parse_policy(hf_hwsim_scenario_t *self, uint32_t line, const s_words_t *w, char *errbuf,
               size_t errlen)
{
    if (w->n != 3)
        S_FAIL("usage: policy retries N | disconnect_grace DURATION | disconnect_grace_s "
               "SECONDS | retry_backoff DURATION");
    const char *key = w->w[1], *val = w->w[2];
    const char *why = NULL;
    uint64_t v = 0;
    uint32_t bit;
    if (strcmp(key, "retries") == 0) {
        if (!s_uint(val, S_RETRIES_MAX, &v))
            S_FAIL("bad retries '%s' (0..%d)", val, S_RETRIES_MAX);
        bit = HF_HWSIM_POLICY_RETRIES;
        self->policy.retries = (uint32_t)v;
    } else if (strcmp(key, "disconnect_grace") == 0) {
        if (!s_duration(val, 1, &v, &why))
            S_FAIL("bad duration '%s': %s", val, why);
        bit = HF_HWSIM_POLICY_GRACE;
        self->policy.disconnect_grace_ns = v;
    } else if (strcmp(key, "disconnect_grace_s") == 0) {
        double s = 0;
        if (!s_number(val, &s, NULL) || s < 0.0 || s > (double)S_DURATION_MAX_NS / 1e9)
            S_FAIL("bad seconds '%s' (0..30 days)", val);
        bit = HF_HWSIM_POLICY_GRACE;
        self->policy.disconnect_grace_ns = (uint64_t)llround(s * 1e9);
    } else if (strcmp(key, "retry_backoff") == 0) {
        if (!s_duration(val, 1, &v, &why))
            S_FAIL("bad duration '%s': %s", val, why);
        bit = HF_HWSIM_POLICY_BACKOFF;
        self->policy.retry_backoff_ns = v;
    } else {
        S_FAIL("unknown policy '%s' (expected retries, disconnect_grace, disconnect_grace_s or "
               "retry_backoff)",
               key);
    }
    if (self->policy.set & bit)
        S_FAIL("policy '%s' given twice", key);
    self->policy.set |= bit;
    return HF_OK;
}

/* fault KIND TARGET at TIME [for DURATION] [count N] [class CLASS] [rate R] [reason TEXT...] */
static hf_err_t
s_parse_fault(hf_hwsim_scenario_t *self, uint32_t line, const s_words_t *w, char *errbuf,
              size_t errlen)
{
    if (w->n < 4)
        S_FAIL("missing arguments: usage: fault KIND TARGET at TIME [KEY VALUE]...");
    if (self->fault_count >= HF_HWSIM_MAX_FAULTS)
        S_FAIL("too many faults (max %d)", HF_HWSIM_MAX_FAULTS);
    static const char *const kinds[] = {"burst", "fail", "stuck", "drift", "disconnect", "fatal"};
    int kind = -1;
    for (int k = 0; k < 6; k++)
        if (strcmp(w->w[1], kinds[k]) == 0)
            kind = k;
    if (kind < 0)
        S_FAIL("unknown fault '%s' (expected burst, fail, stuck, drift, disconnect or fatal)",
               w->w[1]);
    hf_hwsim_fault_t f = {.since_open = 1, .until_ns = HF_HWSIM_FOREVER};
    f.kind = kind <= 1 ? HF_HWSIM_FAIL : (hf_hwsim_fault_kind_t)(kind - 1);
    uint32_t i = 2;
    const char *tgt = w->w[i++];
    if (strcmp(tgt, "device") == 0) {
        f.target = HF_HWSIM_ON_DEVICE;
        f.channel = UINT32_MAX;
    } else if (strcmp(tgt, "channel") == 0 || strcmp(tgt, "actuator") == 0) {
        if (i >= w->n)
            S_FAIL("'%s' needs a name or *", tgt);
        const char *nm = w->w[i++];
        int is_ch = tgt[0] == 'c';
        f.target = is_ch ? HF_HWSIM_ON_CHANNEL : HF_HWSIM_ON_ACTUATOR;
        if (strcmp(nm, "*") == 0)
            f.channel = UINT32_MAX;
        else if (is_ch ? !s_find_channel(self, nm, &f.channel)
                       : !s_find_actuator(self, nm, &f.channel))
            S_FAIL("unknown %s '%s' (declare it above)", tgt, nm);
    } else {
        S_FAIL("bad target '%s' (expected channel NAME|*, actuator NAME|* or device)", tgt);
    }
    if (i + 1 >= w->n || strcmp(w->w[i], "at") != 0)
        S_FAIL("missing 'at TIME' after the target");
    const char *why = NULL;
    if (!s_duration(w->w[i + 1], 1, &f.from_ns, &why))
        S_FAIL("bad time '%s': %s", w->w[i + 1], why);
    i += 2;
    int has_for = 0, has_count = 0, has_class = 0, has_rate = 0;
    uint64_t dur = 0;
    while (i < w->n) {
        const char *key = w->w[i];
        if (strcmp(key, "reason") == 0) {
            if (i + 1 >= w->n)
                S_FAIL("'reason' needs text");
            /* the rest of the line, blanks kept, trailing blanks dropped */
            const char *r = w->line + w->off[i + 1];
            size_t n = strlen(r);
            while (n > 0 && (r[n - 1] == ' ' || r[n - 1] == '\t'))
                n--;
            if (n > HF_HAL_REASON_MAX)
                S_FAIL("reason longer than %d bytes", HF_HAL_REASON_MAX);
            memcpy(self->reasons[self->fault_count], r, n);
            self->reasons[self->fault_count][n] = '\0';
            f.reason = self->reasons[self->fault_count];
            break;
        }
        if (i + 1 >= w->n)
            S_FAIL("'%s' needs a value", key);
        const char *val = w->w[i + 1];
        uint64_t u = 0;
        if (strcmp(key, "for") == 0 && !has_for) {
            if (!s_duration(val, 0, &dur, &why))
                S_FAIL("bad duration '%s': %s", val, why);
            has_for = 1;
        } else if (strcmp(key, "count") == 0 && !has_count) {
            if (!s_uint(val, S_COUNT_MAX, &u) || u == 0)
                S_FAIL("bad count '%s' (1..%llu)", val, (unsigned long long)S_COUNT_MAX);
            f.count = (uint32_t)u;
            has_count = 1;
        } else if (strcmp(key, "class") == 0 && !has_class) {
            if (!s_class(val, &f.cls))
                S_FAIL("bad class '%s' (expected transient, timeout, disconnected or fatal)", val);
            has_class = 1;
        } else if (strcmp(key, "rate") == 0 && !has_rate) {
            if (!s_number(val, &f.rate, NULL))
                S_FAIL("bad rate '%s' (units per second)", val);
            has_rate = 1;
        } else if (strcmp(key, "for") == 0 || strcmp(key, "count") == 0 ||
                   strcmp(key, "class") == 0 || strcmp(key, "rate") == 0) {
            S_FAIL("'%s' given twice", key);
        } else {
            S_FAIL("unknown fault key '%s' (expected for, count, class, rate or reason)", key);
        }
        i += 2;
    }
    const char *kn = kinds[kind];
    switch (kind) {
    case 0: /* burst */
        if (!has_count)
            S_FAIL("burst needs 'count N'");
        break;
    case 1: /* fail */
        break;
    case 2: /* stuck */
    case 3: /* drift */
        if (f.target == HF_HWSIM_ON_ACTUATOR)
            S_FAIL("%s applies to channels (or device), not actuators", kn);
        if (has_count || has_class)
            S_FAIL("%s takes no count or class (it is silent: no error)", kn);
        if (kind == 3 && !has_rate)
            S_FAIL("drift needs 'rate R' (units per second)");
        break;
    case 4: /* disconnect */
        if (f.target != HF_HWSIM_ON_DEVICE)
            S_FAIL("disconnect applies to the whole device: use 'fault disconnect device'");
        if (!has_for)
            S_FAIL("disconnect needs 'for DURATION'");
        if (has_count || has_class)
            S_FAIL("disconnect takes no count or class (always disconnected)");
        break;
    case 5: /* fatal */
        if (has_for || has_count || has_class)
            S_FAIL("fatal takes no for, count or class (fatal lasts until the end)");
        break;
    default:
        break;
    }
    if (has_rate && kind != 3)
        S_FAIL("'rate' applies to drift only");
    if (kind <= 1 && !has_class)
        f.cls = HF_HAL_TRANSIENT;
    if (has_for) {
        if (dur == 0)
            S_FAIL("'for' must be positive");
        f.until_ns = f.from_ns + dur;
    }
    self->faults[self->fault_count++] = f;
    return HF_OK;
}

static int
s_cmp(const char *s, hf_hwsim_cmp_t *cmp)
{
    static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">="};
    for (int i = 0; i < 6; i++)
        if (strcmp(s, ops[i]) == 0) {
            *cmp = (hf_hwsim_cmp_t)i;
            return 1;
        }
    return 0;
}

/* expect [no] WHAT ... ; see docs/hwsim.md for the vocabulary. */
static hf_err_t
s_parse_expect(hf_hwsim_scenario_t *self, uint32_t line, const s_words_t *w, char *errbuf,
               size_t errlen)
{
    if (self->expect_count >= HF_HWSIM_MAX_EXPECTS)
        S_FAIL("too many expectations (max %d)", HF_HWSIM_MAX_EXPECTS);
    hf_hwsim_expect_t e;
    memset(&e, 0, sizeof e);
    e.line = line;
    e.cls = HF_HWSIM_ANY;
    e.alarm_code = HF_HWSIM_ANY;
    e.severity = HF_HWSIM_ANY;
    e.run_state = HF_HWSIM_ANY;
    e.event = HF_HWSIM_ANY;
    /* normalised text for reports */
    size_t off = 0;
    for (uint32_t k = 1; k < w->n && off < sizeof e.text; k++) {
        int n = snprintf(e.text + off, sizeof e.text - off, "%s%s", k > 1 ? " " : "", w->w[k]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    uint32_t i = 1;
    int neg = 0;
    if (i < w->n && strcmp(w->w[i], "no") == 0) {
        neg = 1;
        i++;
    }
    if (i >= w->n)
        S_FAIL("missing arguments: usage: expect [no] run_state|event|hw_error|alarm|samples|"
               "missing_samples|gaps|actuator ...");
    const char *what = w->w[i++];
    int count_kind = 1;
    int default_ge1 = 1; /* bare "expect event paused" means >= 1 */
    if (strcmp(what, "run_state") == 0) {
        e.kind = HF_HWSIM_EXPECT_RUN_STATE;
        count_kind = 0;
        if (i >= w->n)
            S_FAIL("usage: expect run_state STATE");
        for (int s = 0; s <= HF_RUN_STATE_MAX; s++)
            if (strcmp(w->w[i], hf_run_state_name((uint8_t)s)) == 0)
                e.run_state = s;
        if (e.run_state == HF_HWSIM_ANY)
            S_FAIL("unknown run state '%s' (expected idle, running, paused, completed, failed, "
                   "aborted or interrupted)",
                   w->w[i]);
        i++;
    } else if (strcmp(what, "event") == 0) {
        e.kind = HF_HWSIM_EXPECT_EVENT;
        if (i >= w->n)
            S_FAIL("usage: expect [no] event NAME [OP N]");
        for (int t = 1; t <= HF_EV_MAX; t++)
            if (strcmp(w->w[i], hf_event_name((uint8_t)t)) == 0)
                e.event = t;
        if (e.event == HF_HWSIM_ANY)
            S_FAIL("unknown event '%s' (e.g. run_started, paused, resumed, completed, aborted, "
                   "interrupted)",
                   w->w[i]);
        i++;
    } else if (strcmp(what, "hw_error") == 0) {
        e.kind = HF_HWSIM_EXPECT_HW_ERROR;
        if (i < w->n && strcmp(w->w[i], "any") == 0) {
            i++;
        } else if (i < w->n) {
            hf_hal_class_t c;
            if (s_class(w->w[i], &c)) {
                e.cls = (int32_t)c;
                i++;
            } else if (!s_cmp(w->w[i], &e.cmp)) {
                S_FAIL("bad class '%s' (expected transient, timeout, disconnected, fatal or any)",
                       w->w[i]);
            }
        }
    } else if (strcmp(what, "alarm") == 0) {
        e.kind = HF_HWSIM_EXPECT_ALARM;
        if (i >= w->n || (strcmp(w->w[i], "raised") != 0 && strcmp(w->w[i], "cleared") != 0))
            S_FAIL("usage: expect [no] alarm raised|cleared [CODE|info|warning|critical|any] "
                   "[OP N]");
        e.raised = w->w[i][0] == 'r';
        i++;
        if (i < w->n) {
            const char *q = w->w[i];
            uint64_t code = 0;
            hf_hwsim_cmp_t dummy;
            if (strcmp(q, "any") == 0)
                i++;
            else if (strcmp(q, "info") == 0)
                e.severity = HF_ALARM_INFO, i++;
            else if (strcmp(q, "warning") == 0)
                e.severity = HF_ALARM_WARNING, i++;
            else if (strcmp(q, "critical") == 0)
                e.severity = HF_ALARM_CRITICAL, i++;
            else if (s_uint(q, UINT32_MAX, &code))
                e.alarm_code = (int64_t)code, i++;
            else if (!s_cmp(q, &dummy))
                S_FAIL("bad alarm selector '%s' (a code, info, warning, critical or any)", q);
        }
    } else if (strcmp(what, "samples") == 0) {
        e.kind = HF_HWSIM_EXPECT_SAMPLES;
        default_ge1 = 0;
        if (i >= w->n)
            S_FAIL("usage: expect samples CHANNEL|any OP N");
        uint32_t dummy;
        if (strcmp(w->w[i], "any") != 0) {
            if (!s_find_channel(self, w->w[i], &dummy))
                S_FAIL("unknown channel '%s' (declare it above)", w->w[i]);
            snprintf(e.name, sizeof e.name, "%s", w->w[i]);
        }
        i++;
    } else if (strcmp(what, "missing_samples") == 0) {
        e.kind = HF_HWSIM_EXPECT_MISSING;
        default_ge1 = 0;
    } else if (strcmp(what, "gaps") == 0) {
        e.kind = HF_HWSIM_EXPECT_GAPS;
        default_ge1 = 0;
    } else if (strcmp(what, "actuator") == 0) {
        e.kind = HF_HWSIM_EXPECT_ACTUATOR;
        count_kind = 0;
        if (i + 1 >= w->n)
            S_FAIL("usage: expect actuator NAME VALUE|safe");
        uint32_t a;
        if (!s_find_actuator(self, w->w[i], &a))
            S_FAIL("unknown actuator '%s' (declare it above)", w->w[i]);
        snprintf(e.name, sizeof e.name, "%s", w->w[i]);
        if (strcmp(w->w[i + 1], "safe") == 0) {
            if (!self->opts.actuators[a].has_safe)
                S_FAIL("actuator '%s' declares no safe value", w->w[i]);
            e.value = self->opts.actuators[a].safe;
        } else if (!s_number(w->w[i + 1], &e.value, NULL)) {
            S_FAIL("bad number '%s'", w->w[i + 1]);
        }
        i += 2;
    } else {
        S_FAIL("unknown expectation '%s' (expected run_state, event, hw_error, alarm, samples, "
               "missing_samples, gaps or actuator)",
               what);
    }
    if (!count_kind) {
        if (neg)
            S_FAIL("'no' applies to counts only, not to %s", what);
        if (i < w->n)
            S_FAIL("unexpected '%s' at the end", w->w[i]);
    } else if (neg) {
        if (i < w->n)
            S_FAIL("'expect no ...' takes no comparison (it means == 0)");
        e.cmp = HF_HWSIM_CMP_EQ;
        e.count = 0;
    } else if (i >= w->n) {
        if (!default_ge1)
            S_FAIL("%s needs a comparison, e.g. '== 0' or '>= 10'", what);
        e.cmp = HF_HWSIM_CMP_GE;
        e.count = 1;
    } else {
        if (!s_cmp(w->w[i], &e.cmp))
            S_FAIL("bad comparison '%s' (expected ==, !=, <, <=, > or >=)", w->w[i]);
        if (i + 1 >= w->n || !s_uint(w->w[i + 1], S_COUNT_MAX, &e.count))
            S_FAIL("comparison needs a count (0..%llu)", (unsigned long long)S_COUNT_MAX);
        if (i + 2 < w->n)
            S_FAIL("unexpected '%s' at the end", w->w[i + 2]);
    }
    self->expects[self->expect_count++] = e;
    return HF_OK;
}

static hf_err_t
s_method_line(hf_hwsim_scenario_t *self, uint32_t line, const char *text, char *errbuf,
              size_t errlen)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 3 && strncmp(p, "end", 3) == 0) {
        if (self->method_len == 0)
            S_FAIL("empty method block");
        self->in_method = 0;
        self->method_done = 1;
        return HF_OK;
    }
    size_t len = strlen(text);
    if (self->method_len + len + 1 > HF_HWSIM_SCENARIO_METHOD_MAX)
        S_FAIL("method block larger than %d bytes", HF_HWSIM_SCENARIO_METHOD_MAX);
    if (self->method_len == 0 && n == 0)
        return HF_OK; /* leading blank lines: keep method_line on the first real one */
    if (self->method_len == 0)
        self->method_line = line;
    memcpy(self->method + self->method_len, text, len);
    self->method_len += len;
    self->method[self->method_len++] = '\n';
    self->method[self->method_len] = '\0';
    return HF_OK;
}

static hf_err_t
s_parse_line(hf_hwsim_scenario_t *self, uint32_t line, const char *text, char *errbuf,
             size_t errlen)
{
    if (self->in_method)
        return s_method_line(self, line, text, errbuf, errlen);
    char orig[HF_HWSIM_SCENARIO_LINE_MAX + 1];
    char buf[HF_HWSIM_SCENARIO_LINE_MAX + 1];
    snprintf(orig, sizeof orig, "%s", text);
    char *hash = strchr(orig, '#');
    if (hash)
        *hash = '\0';
    memcpy(buf, orig, sizeof buf);
    s_words_t w;
    int too_many = 0;
    s_split(buf, &w, &too_many);
    w.line = orig;
    if (too_many)
        S_FAIL("too many words (max %d)", S_MAX_WORDS);
    if (w.n == 0)
        return HF_OK;
    for (const char *q = orig; *q; q++)
        if ((unsigned char)*q < 0x20 && *q != '\t')
            S_FAIL("control character in line");
    const char *d = w.w[0];
    const char *why = NULL;
    if (strcmp(d, "seed") == 0) {
        if (w.n != 2 || !s_uint(w.w[1], UINT64_MAX, &self->opts.seed))
            S_FAIL("usage: seed N (a decimal integer)");
        if (self->seen_seed++)
            S_FAIL("seed given twice");
    } else if (strcmp(d, "noise_step") == 0) {
        if (w.n != 2)
            S_FAIL("usage: noise_step DURATION");
        if (!s_duration(w.w[1], 0, &self->opts.noise_step_ns, &why))
            S_FAIL("bad duration '%s': %s", w.w[1], why);
        if (self->seen_noise_step++)
            S_FAIL("noise_step given twice");
    } else if (strcmp(d, "device") == 0) {
        uint64_t idx = 0;
        if (!(w.n == 2 || (w.n == 4 && strcmp(w.w[2], "index") == 0 &&
                           s_uint(w.w[3], UINT32_MAX, &idx))))
            S_FAIL("usage: device NAME [index N]");
        if (!s_name_valid(w.w[1]))
            S_FAIL("bad device name '%s' (1..63 of [A-Za-z0-9._-])", w.w[1]);
        if (self->seen_device++)
            S_FAIL("device given twice");
        snprintf(self->device_name, sizeof self->device_name, "%s", w.w[1]);
        self->opts.device = (uint32_t)idx;
    } else if (strcmp(d, "actuator") == 0) {
        return s_parse_actuator(self, line, &w, errbuf, errlen);
    } else if (strcmp(d, "channel") == 0) {
        return s_parse_channel(self, line, &w, errbuf, errlen);
    } else if (strcmp(d, "policy") == 0) {
        return s_parse_policy(self, line, &w, errbuf, errlen);
    } else if (strcmp(d, "fault") == 0) {
        return s_parse_fault(self, line, &w, errbuf, errlen);
    } else if (strcmp(d, "expect") == 0) {
        return s_parse_expect(self, line, &w, errbuf, errlen);
    } else if (strcmp(d, "method") == 0) {
        if (w.n != 1)
            S_FAIL("'method' stands alone on its line; the steps follow, then 'end'");
        if (self->method_done)
            S_FAIL("second method block (one per scenario)");
        self->in_method = 1;
        self->method_open_line = line;
    } else if (strcmp(d, "end") == 0) {
        S_FAIL("'end' outside a method block");
    } else {
        S_FAIL("unknown directive '%s' (expected seed, noise_step, device, actuator, channel, "
               "policy, fault, method or expect)",
               d);
    }
    return HF_OK;
}
