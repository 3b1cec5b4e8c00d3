/* hf_method.c - hf_method_t: parsing and binding of method files.
 *
 * Format (docs/methods.md): one step per line, '#' starts a comment, blank
 * lines are ignored.
 *   sample CH[,CH...] RATE[Hz]    start sampling these channels until the end
 *   set ACTUATOR VALUE            write a value now
 *   ramp ACTUATOR TARGET DURATION linear from the last set value to TARGET
 *   hold DURATION                 wait
 *   wait-until CH OP VALUE TIMEOUT  poll CH until (CH OP VALUE); fail the run
 *                                 if it does not hold within TIMEOUT
 * DURATION is a positive decimal with a unit: ns, us, ms, s, min, h.
 *
 * Design notes:
 * - Everything is bounded and checked up front (line length, steps,
 *   channels, names, ranges), so a run never meets a surprise: the run
 *   state machine trusts a parsed method.
 * - A method is immutable after parsing; binding to an instrument produces
 *   a separate value (hf_method_binding_t), so one method may serve several
 *   runs and instruments.
 * - Every refusal names the line and the reason; the first error wins.
 *
 * Invariants of a parsed method: 1 <= step_count <= HF_METHOD_MAX_STEPS;
 * channel names are unique, valid, in order of first appearance, and each
 * SAMPLE step owns the contiguous range [first_channel, +channel_count);
 * every RAMP's actuator was SET (or ramped) by an earlier step; a
 * WAIT_UNTIL has a valid channel name, an op and a finite value; every
 * duration is in (0, HF_METHOD_DURATION_MAX_NS]; every rate in
 * (0, HF_METHOD_RATE_MAX]; every value finite.
 */
#include "hf_engine.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_TOKENS 8

struct hf_method_s {
    char name[HF_METHOD_NAME_MAX + 1];
    uint32_t step_count;
    uint32_t channel_count;
    uint64_t duration_ns;                                       /* ns           */
    char channels[HF_METHOD_MAX_CHANNELS][HF_METHOD_NAME_MAX + 1];
    uint32_t channel_line[HF_METHOD_MAX_CHANNELS];              /* 1-based line */
    hf_step_t steps[HF_METHOD_MAX_STEPS];
};

static void s_errf(char *errbuf, size_t errlen, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static hf_err_t s_parse_line(hf_method_t *self, uint32_t line, char *buf, char *errbuf,
                             size_t errlen);

hf_method_t *
hf_method_parse(const char *name, const char *text, char *errbuf, size_t errlen, hf_err_t *err)
{
    assert(name && text);
    hf_err_t rc = HF_OK;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    hf_method_t *self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        s_errf(errbuf, errlen, 0, "out of memory");
        goto fail;
    }
    snprintf(self->name, sizeof self->name, "%s", name);

    const char *p = text;
    uint32_t line = 0;
    while (*p) {
        line++;
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len > HF_METHOD_LINE_MAX) {
            s_errf(errbuf, errlen, line, "line too long (%zu bytes, max %d)", len,
                   HF_METHOD_LINE_MAX);
            rc = HF_EINVAL;
            goto fail;
        }
        char buf[HF_METHOD_LINE_MAX + 1];
        memcpy(buf, p, len);
        buf[len] = '\0';
        rc = s_parse_line(self, line, buf, errbuf, errlen);
        if (rc != HF_OK)
            goto fail;
        if (!eol)
            break;
        p = eol + 1;
    }
    if (self->step_count == 0) {
        s_errf(errbuf, errlen, 0, "method has no steps");
        rc = HF_EINVAL;
        goto fail;
    }
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_method_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

hf_method_t *
hf_method_load(const char *path, char *errbuf, size_t errlen, hf_err_t *err)
{
    assert(path);
    hf_err_t rc = HF_OK;
    hf_method_t *self = NULL;
    char *text = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? HF_ENOTFOUND : HF_EIO;
        s_errf(errbuf, errlen, 0, "cannot open method file %s: %s", path, strerror(errno));
        goto fail;
    }
    text = malloc(HF_METHOD_FILE_MAX + 1);
    if (!text) {
        rc = HF_ENOMEM;
        s_errf(errbuf, errlen, 0, "out of memory");
        goto fail;
    }
    size_t n = fread(text, 1, HF_METHOD_FILE_MAX + 1, f);
    if (ferror(f)) {
        rc = HF_EIO;
        s_errf(errbuf, errlen, 0, "cannot read method file %s", path);
        goto fail;
    }
    if (n > HF_METHOD_FILE_MAX) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "method file %s is larger than %d bytes", path,
               HF_METHOD_FILE_MAX);
        goto fail;
    }
    if (memchr(text, '\0', n)) {
        rc = HF_EINVAL;
        s_errf(errbuf, errlen, 0, "method file %s contains a NUL byte", path);
        goto fail;
    }
    text[n] = '\0';

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[HF_METHOD_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", base);
    size_t nl = strlen(name);
    if (nl > 7 && strcmp(name + nl - 7, ".method") == 0)
        name[nl - 7] = '\0';
    self = hf_method_parse(name, text, errbuf, errlen, &rc);
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
hf_method_destroy(hf_method_t **self_p)
{
    assert(self_p);
    free(*self_p);
    *self_p = NULL;
}

const char *
hf_method_name(const hf_method_t *self)
{
    assert(self);
    return self->name;
}

uint32_t
hf_method_step_count(const hf_method_t *self)
{
    assert(self);
    return self->step_count;
}

const hf_step_t *
hf_method_step(const hf_method_t *self, uint32_t idx)
{
    assert(self);
    return idx < self->step_count ? &self->steps[idx] : NULL;
}

uint32_t
hf_method_channel_count(const hf_method_t *self)
{
    assert(self);
    return self->channel_count;
}

const char *
hf_method_channel_name(const hf_method_t *self, uint32_t idx)
{
    assert(self);
    return idx < self->channel_count ? self->channels[idx] : NULL;
}

uint64_t
hf_method_duration_ns(const hf_method_t *self)
{
    assert(self);
    return self->duration_ns;
}

hf_err_t
hf_method_bind(const hf_method_t *self, const hf_hal_t *hal, hf_method_binding_t *out,
               char *errbuf, size_t errlen)
{
    assert(self && hal && out);
    if (errbuf && errlen)
        errbuf[0] = '\0';
    memset(out, 0, sizeof *out);
    for (uint32_t i = 0; i < self->channel_count; i++) {
        if (hf_hal_find_channel(hal, self->channels[i], &out->channel[i]) != HF_OK) {
            s_errf(errbuf, errlen, self->channel_line[i], "unknown channel '%s'",
                   self->channels[i]);
            return HF_ENOTFOUND;
        }
    }
    for (uint32_t i = 0; i < self->step_count; i++) {
        const hf_step_t *s = &self->steps[i];
        if (s->kind != HF_STEP_SET && s->kind != HF_STEP_RAMP)
            continue;
        if (hf_hal_find_actuator(hal, s->actuator, &out->actuator[i]) != HF_OK) {
            s_errf(errbuf, errlen, s->line, "unknown actuator '%s'", s->actuator);
            return HF_ENOTFOUND;
        }
    }
    for (uint32_t i = 0; i < self->step_count; i++) {
        const hf_step_t *s = &self->steps[i];
        if (s->kind != HF_STEP_WAIT_UNTIL)
            continue;
        if (hf_hal_find_channel(hal, s->channel, &out->wait_channel[i]) != HF_OK) {
            s_errf(errbuf, errlen, s->line, "unknown channel '%s'", s->channel);
            return HF_ENOTFOUND;
        }
    }
    return HF_OK;
}

/* ---- parsing helpers ------------------------------------------------------ */

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
    if (n == 0 || n > HF_METHOD_NAME_MAX)
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

/* A finite decimal number: all of s, or (suffix given) a prefix of s with
 * *suffix pointing at what follows. */
static int
s_number(const char *s, double *out, const char **suffix)
{
    /* strtod also takes "inf", "nan" and hex floats; a method file means
     * plain decimals, so the first character must start one. */
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

static int
s_duration(const char *s, uint64_t *out_ns, const char **why)
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
    if (!(ns >= 1.0)) {
        *why = "must be positive";
        return 0;
    }
    if (ns > (double)HF_METHOD_DURATION_MAX_NS) {
        *why = "is longer than 30 days";
        return 0;
    }
    *out_ns = (uint64_t)llround(ns);
    return 1;
}

static hf_err_t
s_add_step(hf_method_t *self, uint32_t line, hf_step_t **out, char *errbuf, size_t errlen)
{
    if (self->step_count >= HF_METHOD_MAX_STEPS) {
        s_errf(errbuf, errlen, line, "too many steps (max %d)", HF_METHOD_MAX_STEPS);
        return HF_EINVAL;
    }
    hf_step_t *s = &self->steps[self->step_count++];
    memset(s, 0, sizeof *s);
    s->line = line;
    *out = s;
    return HF_OK;
}

/* 1 if an earlier SET/RAMP step gave actuator a value. */
static int
s_actuator_known(const hf_method_t *self, const char *actuator)
{
    for (uint32_t i = 0; i < self->step_count; i++) {
        const hf_step_t *s = &self->steps[i];
        if ((s->kind == HF_STEP_SET || s->kind == HF_STEP_RAMP) &&
            strcmp(s->actuator, actuator) == 0)
            return 1;
    }
    return 0;
}

static hf_err_t
s_parse_sample(hf_method_t *self, uint32_t line, char *list, const char *rate, hf_step_t *st,
               char *errbuf, size_t errlen)
{
    double hz = 0;
    const char *unit = NULL;
    if (!s_number(rate, &hz, &unit) || (*unit && strcmp(unit, "Hz") != 0)) {
        s_errf(errbuf, errlen, line, "bad rate '%s' (a number of Hz)", rate);
        return HF_EINVAL;
    }
    if (!(hz > 0.0) || hz > HF_METHOD_RATE_MAX) {
        s_errf(errbuf, errlen, line, "rate %s out of range (0, %g] Hz", rate,
               HF_METHOD_RATE_MAX);
        return HF_EINVAL;
    }
    st->rate_hz = hz;
    st->first_channel = self->channel_count;
    char *save = NULL;
    if (list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,")) {
        s_errf(errbuf, errlen, line, "empty channel name in '%s'", list);
        return HF_EINVAL;
    }
    for (char *ch = strtok_r(list, ",", &save); ch; ch = strtok_r(NULL, ",", &save)) {
        if (!s_name_valid(ch)) {
            s_errf(errbuf, errlen, line, "bad channel name '%s'", ch);
            return HF_EINVAL;
        }
        for (uint32_t i = 0; i < self->channel_count; i++)
            if (strcmp(self->channels[i], ch) == 0) {
                s_errf(errbuf, errlen, line, "channel '%s' is already sampled (line %u)", ch,
                       self->channel_line[i]);
                return HF_EINVAL;
            }
        if (self->channel_count >= HF_METHOD_MAX_CHANNELS) {
            s_errf(errbuf, errlen, line, "too many channels (max %d)", HF_METHOD_MAX_CHANNELS);
            return HF_EINVAL;
        }
        snprintf(self->channels[self->channel_count], HF_METHOD_NAME_MAX + 1, "%s", ch);
        self->channel_line[self->channel_count] = line;
        self->channel_count++;
        st->channel_count++;
    }
    return HF_OK;
}

/* wait-until CHANNEL OP VALUE TIMEOUT (tok[0] is the keyword). */
static hf_err_t
s_parse_wait(uint32_t line, char **tok, hf_step_t *st, char *errbuf, size_t errlen)
{
    static const struct {
        const char *word;
        hf_wait_op_t op;
    } k_ops[] = {
        {"<", HF_WAIT_LT},  {"<=", HF_WAIT_LE}, {">", HF_WAIT_GT},
        {">=", HF_WAIT_GE}, {"==", HF_WAIT_EQ}, {"!=", HF_WAIT_NE},
    };
    const char *why = NULL;
    if (!s_name_valid(tok[1])) {
        s_errf(errbuf, errlen, line, "bad channel name '%s'", tok[1]);
        return HF_EINVAL;
    }
    size_t k = 0;
    while (k < sizeof k_ops / sizeof k_ops[0] && strcmp(tok[2], k_ops[k].word) != 0)
        k++;
    if (k == sizeof k_ops / sizeof k_ops[0]) {
        s_errf(errbuf, errlen, line, "bad comparison '%s' (expected <, <=, >, >=, == or !=)",
               tok[2]);
        return HF_EINVAL;
    }
    if (!s_number(tok[3], &st->value, NULL)) {
        s_errf(errbuf, errlen, line, "bad value '%s' (a decimal number)", tok[3]);
        return HF_EINVAL;
    }
    if (!s_duration(tok[4], &st->duration_ns, &why)) {
        s_errf(errbuf, errlen, line, "bad timeout '%s': %s", tok[4], why);
        return HF_EINVAL;
    }
    st->op = (uint8_t)k_ops[k].op;
    snprintf(st->channel, sizeof st->channel, "%s", tok[1]);
    return HF_OK;
}

static hf_err_t
s_parse_line(hf_method_t *self, uint32_t line, char *buf, char *errbuf, size_t errlen)
{
    char *hash = strchr(buf, '#');
    if (hash)
        *hash = '\0';
    char *tok[S_MAX_TOKENS];
    size_t ntok = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t\r\v\f", &save); t; t = strtok_r(NULL, " \t\r\v\f", &save)) {
        if (ntok == S_MAX_TOKENS) {
            s_errf(errbuf, errlen, line, "unexpected argument '%s'", t);
            return HF_EINVAL;
        }
        tok[ntok++] = t;
    }
    if (ntok == 0)
        return HF_OK;

    static const struct {
        const char *word;
        hf_step_kind_t kind;
        size_t nargs;
        const char *usage;
    } k_steps[] = {
        {"sample", HF_STEP_SAMPLE, 2, "sample CHANNEL[,CHANNEL...] RATE_HZ"},
        {"set", HF_STEP_SET, 2, "set ACTUATOR VALUE"},
        {"ramp", HF_STEP_RAMP, 3, "ramp ACTUATOR TARGET DURATION"},
        {"hold", HF_STEP_HOLD, 1, "hold DURATION"},
        {"wait-until", HF_STEP_WAIT_UNTIL, 4, "wait-until CHANNEL OP VALUE TIMEOUT"},
    };
    size_t k = 0;
    while (k < sizeof k_steps / sizeof k_steps[0] && strcmp(tok[0], k_steps[k].word) != 0)
        k++;
    if (k == sizeof k_steps / sizeof k_steps[0]) {
        s_errf(errbuf, errlen, line,
               "unknown step '%s' (expected sample, set, ramp, hold or wait-until)", tok[0]);
        return HF_EINVAL;
    }
    if (ntok - 1 < k_steps[k].nargs) {
        s_errf(errbuf, errlen, line, "missing arguments: usage: %s", k_steps[k].usage);
        return HF_EINVAL;
    }
    if (ntok - 1 > k_steps[k].nargs) {
        s_errf(errbuf, errlen, line, "unexpected argument '%s': usage: %s",
               tok[k_steps[k].nargs + 1], k_steps[k].usage);
        return HF_EINVAL;
    }

    /* The normalised text first: parsing below may cut tokens up. */
    char text[HF_METHOD_LINE_MAX + 1];
    size_t off = 0;
    for (size_t i = 0; i < ntok; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "%s%s", i ? " " : "", tok[i]);

    hf_step_t *st = NULL;
    hf_err_t rc = s_add_step(self, line, &st, errbuf, errlen);
    if (rc != HF_OK)
        return rc;
    st->kind = k_steps[k].kind;
    snprintf(st->text, sizeof st->text, "%s", text);
    const char *why = NULL;

    switch (st->kind) {
    case HF_STEP_SAMPLE:
        return s_parse_sample(self, line, tok[1], tok[2], st, errbuf, errlen);
    case HF_STEP_SET:
    case HF_STEP_RAMP:
        if (!s_name_valid(tok[1])) {
            s_errf(errbuf, errlen, line, "bad actuator name '%s'", tok[1]);
            return HF_EINVAL;
        }
        if (!s_number(tok[2], &st->value, NULL)) {
            s_errf(errbuf, errlen, line, "bad value '%s' (a decimal number)", tok[2]);
            return HF_EINVAL;
        }
        if (st->kind == HF_STEP_RAMP) {
            if (!s_duration(tok[3], &st->duration_ns, &why)) {
                s_errf(errbuf, errlen, line, "bad duration '%s': %s", tok[3], why);
                return HF_EINVAL;
            }
            /* this step's own actuator is still "", so it cannot match itself */
            if (!s_actuator_known(self, tok[1])) {
                s_errf(errbuf, errlen, line,
                       "ramp of '%s' before any set of it (the start value is unknown)",
                       tok[1]);
                return HF_EINVAL;
            }
            self->duration_ns += st->duration_ns;
        }
        snprintf(st->actuator, sizeof st->actuator, "%s", tok[1]);
        return HF_OK;
    case HF_STEP_HOLD:
        if (!s_duration(tok[1], &st->duration_ns, &why)) {
            s_errf(errbuf, errlen, line, "bad duration '%s': %s", tok[1], why);
            return HF_EINVAL;
        }
        self->duration_ns += st->duration_ns;
        return HF_OK;
    case HF_STEP_WAIT_UNTIL:
        return s_parse_wait(line, tok, st, errbuf, errlen);
    }
    return HF_EINVAL;
}
