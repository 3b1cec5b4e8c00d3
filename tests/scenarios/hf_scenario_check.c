/* hf_scenario_check.c - checks a scenario's expectations against what
 * reached the aggregator (tests/scenarios/run_scenarios.sh).
 *
 *   hf_scenario_check SCENARIO EXPORT.jsonl TRUTH.log SUMMARY
 *
 * SCENARIO is parsed with hf_hwsim_scenario_load, so the vocabulary of
 * `expect` lines lives in one place (hwsim). EXPORT is `holdfast export
 * --engine ID --format jsonl` of the scenario's engine, TRUTH the ground-
 * truth log hwsim wrote (--truth), SUMMARY the engine's summary line
 * (--summary). Prints one line per expectation ("ok" or "FAIL", the line,
 * what was observed) plus the consistency checks below, then
 * "checked N failed M". Exit 0 all hold, 1 some failed, 2 bad input.
 *
 * What each expectation is measured on:
 * - records of the engine's run (the summary's run=), in export order;
 *   gap records are counted whatever their run (the dispatcher's own);
 * - run_state: the last of run_started / paused / resumed / a terminal
 *   event of the run;
 * - missing_samples: the engine summary's missed= (grid points without a
 *   sample; paused time has no grid points). Checked alongside: the
 *   export's sample count equals the summary's samples=, so a sample the
 *   engine counted but the store lacks fails the scenario;
 * - actuator: the last accepted write in the truth log (else its initial).
 *
 * The export is JSON lines of flat objects (no nesting) written by the
 * aggregator; the reader below handles exactly that (strings with escapes,
 * bare numbers and booleans) and refuses anything else.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_hwsim.h"
#include "hf_record.h"

#define S_LINE_MAX 8192
#define S_KEYS_MAX 24
#define S_VAL_MAX 256

typedef struct {
    int n;
    char key[S_KEYS_MAX][32];
    char val[S_KEYS_MAX][S_VAL_MAX];
} s_obj_t;

/* Parse one flat JSON object; 0 ok, -1 malformed. Values are kept as text
 * (strings unescaped, \uXXXX kept as '?'). */
static int
s_parse_obj(const char *p, s_obj_t *o)
{
    o->n = 0;
    while (*p == ' ')
        p++;
    if (*p++ != '{')
        return -1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '}')
            return 0;
        if (*p++ != '"')
            return -1;
        char key[32];
        size_t k = 0;
        while (*p && *p != '"' && k + 1 < sizeof key)
            key[k++] = *p++;
        key[k] = 0;
        if (*p++ != '"')
            return -1;
        while (*p == ' ')
            p++;
        if (*p++ != ':')
            return -1;
        while (*p == ' ')
            p++;
        char val[S_VAL_MAX];
        size_t v = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    if (!c)
                        return -1;
                    if (c == 'u') {
                        for (int i = 0; i < 4; i++)
                            if (!*p++)
                                return -1;
                        c = '?';
                    } else if (c == 'n') {
                        c = '\n';
                    } else if (c == 't') {
                        c = '\t';
                    }
                }
                if (v + 1 < sizeof val)
                    val[v++] = c;
            }
            if (*p++ != '"')
                return -1;
        } else {
            while (*p && *p != ',' && *p != '}' && *p != ' ') {
                if (v + 1 < sizeof val)
                    val[v++] = *p;
                p++;
            }
            if (v == 0)
                return -1;
        }
        val[v] = 0;
        if (o->n < S_KEYS_MAX) {
            snprintf(o->key[o->n], sizeof o->key[o->n], "%s", key);
            snprintf(o->val[o->n], sizeof o->val[o->n], "%s", val);
            o->n++;
        }
    }
}

static const char *
s_get(const s_obj_t *o, const char *key)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->key[i], key) == 0)
            return o->val[i];
    return "";
}

/* value of KEY=... in a summary line, or "" */
static void
s_kv(const char *line, const char *key, char *out, size_t cap)
{
    out[0] = 0;
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            size_t n = strcspn(p + kl + 1, " \n");
            snprintf(out, cap, "%.*s", (int)n, p + kl + 1);
            return;
        }
    }
}

static const char *
s_severity(int32_t s)
{
    switch (s) {
    case HF_ALARM_INFO: return "info";
    case HF_ALARM_WARNING: return "warning";
    case HF_ALARM_CRITICAL: return "critical";
    default: return "?";
    }
}

typedef struct {
    const hf_hwsim_scenario_t *sc;
    const char *export_path;
    const char *truth_path;
    uint64_t run;
    uint64_t summary_missed;
    uint64_t summary_samples;
} s_ctx_t;

/* Count export records matching e (count kinds). -1 on a read error. */
static int64_t
s_count(const s_ctx_t *c, const hf_hwsim_expect_t *e, char *state, size_t state_cap)
{
    FILE *f = fopen(c->export_path, "r");
    if (!f)
        return -1;
    char line[S_LINE_MAX];
    s_obj_t o;
    int64_t n = 0;
    snprintf(state, state_cap, "%s", "idle");
    while (fgets(line, sizeof line, f)) {
        if (s_parse_obj(line, &o) != 0) {
            fprintf(stderr, "hf_scenario_check: malformed export line: %.80s\n", line);
            fclose(f);
            return -1;
        }
        const char *kind = s_get(&o, "kind");
        if (e && e->kind == HF_HWSIM_EXPECT_GAPS) {
            n += strcmp(kind, "gap") == 0;
            continue;
        }
        if (strtoull(s_get(&o, "run"), NULL, 10) != c->run)
            continue;
        if (strcmp(kind, "event") == 0) {
            const char *ev = s_get(&o, "event");
            if (!strcmp(ev, "run_started") || !strcmp(ev, "resumed"))
                snprintf(state, state_cap, "running");
            else if (!strcmp(ev, "paused") || !strcmp(ev, "completed") || !strcmp(ev, "failed") ||
                     !strcmp(ev, "aborted") || !strcmp(ev, "interrupted"))
                snprintf(state, state_cap, "%s", ev);
        }
        if (!e)
            continue;
        switch (e->kind) {
        case HF_HWSIM_EXPECT_EVENT:
            n += !strcmp(kind, "event") &&
                 !strcmp(s_get(&o, "event"), hf_event_name((uint8_t)e->event));
            break;
        case HF_HWSIM_EXPECT_HW_ERROR:
            n += !strcmp(kind, "hw_error") &&
                 (e->cls == HF_HWSIM_ANY ||
                  !strcmp(s_get(&o, "class"), hf_hal_class_name((hf_hal_class_t)e->cls)));
            break;
        case HF_HWSIM_EXPECT_ALARM:
            n += !strcmp(kind, "alarm") &&
                 !strcmp(s_get(&o, "raised"), e->raised ? "true" : "false") &&
                 (e->alarm_code == HF_HWSIM_ANY ||
                  strtoll(s_get(&o, "code"), NULL, 10) == e->alarm_code) &&
                 (e->severity == HF_HWSIM_ANY ||
                  !strcmp(s_get(&o, "severity"), s_severity(e->severity)));
            break;
        case HF_HWSIM_EXPECT_SAMPLES:
            n += !strcmp(kind, "sample") &&
                 (!e->name[0] || !strcmp(s_get(&o, "channel_name"), e->name));
            break;
        default: break;
        }
    }
    fclose(f);
    return n;
}

/* Last value the device accepted for actuator name (truth log), else its
 * initial value. 0 ok, -1 unknown. */
static int
s_actuator(const s_ctx_t *c, const char *name, double *out)
{
    const hf_hwsim_opts_t *so = hf_hwsim_scenario_opts(c->sc);
    int found = -1;
    for (uint32_t i = 0; i < so->actuator_count; i++)
        if (!strcmp(so->actuators[i].name, name)) {
            *out = so->actuators[i].initial;
            found = 0;
        }
    FILE *f = fopen(c->truth_path, "r");
    if (!f)
        return -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char op[16], nm[80], res[32];
        int off = 0;
        if (line[0] == '#' || sscanf(line, "%*s %15s %79s %31s %n", op, nm, res, &off) != 3)
            continue;
        if (!strcmp(op, "write") && !strcmp(nm, name) && !strcmp(res, "ok")) {
            char *end = NULL;
            double v = strtod(line + off, &end);
            if (end != line + off) {
                *out = v;
                found = 0;
            }
        }
    }
    fclose(f);
    return found;
}

int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: hf_scenario_check SCENARIO EXPORT.jsonl TRUTH.log SUMMARY\n");
        return 2;
    }
    char err[HF_HWSIM_SCENARIO_ERR_MAX];
    hf_err_t rc = HF_OK;
    hf_hwsim_scenario_t *sc = hf_hwsim_scenario_load(argv[1], err, sizeof err, &rc);
    if (!sc) {
        fprintf(stderr, "hf_scenario_check: %s: %s\n", argv[1], err);
        return 2;
    }
    char summary[2048] = "";
    FILE *sf = fopen(argv[4], "r");
    if (!sf || !fgets(summary, sizeof summary, sf)) {
        fprintf(stderr, "hf_scenario_check: cannot read summary %s\n", argv[4]);
        if (sf)
            fclose(sf);
        hf_hwsim_scenario_destroy(&sc);
        return 2;
    }
    fclose(sf);
    char v[64];
    s_ctx_t c = {.sc = sc, .export_path = argv[2], .truth_path = argv[3]};
    s_kv(summary, "run", v, sizeof v);
    c.run = strtoull(v, NULL, 10);
    s_kv(summary, "missed", v, sizeof v);
    c.summary_missed = strtoull(v, NULL, 10);
    s_kv(summary, "samples", v, sizeof v);
    c.summary_samples = strtoull(v, NULL, 10);
    if (c.run == 0) {
        fprintf(stderr, "hf_scenario_check: no run= in the summary: %s\n", summary);
        hf_hwsim_scenario_destroy(&sc);
        return 2;
    }

    uint32_t checked = 0, failed = 0;
    char state[32];
    hf_hwsim_expect_t all = {.kind = HF_HWSIM_EXPECT_SAMPLES, .name = ""};
    int64_t stored = s_count(&c, &all, state, sizeof state);
    if (stored < 0) {
        hf_hwsim_scenario_destroy(&sc);
        return 2;
    }
    checked++;
    int ok = (uint64_t)stored == c.summary_samples;
    failed += !ok;
    printf("  %-4s (consistency) samples stored == engine samples=%llu (observed %lld)\n",
           ok ? "ok" : "FAIL", (unsigned long long)c.summary_samples, (long long)stored);

    for (uint32_t i = 0; i < hf_hwsim_scenario_expect_count(sc); i++) {
        const hf_hwsim_expect_t *e = hf_hwsim_scenario_expect(sc, i);
        char obs[64];
        ok = 0;
        switch (e->kind) {
        case HF_HWSIM_EXPECT_RUN_STATE:
            s_count(&c, NULL, state, sizeof state);
            ok = !strcmp(state, hf_run_state_name((uint8_t)e->run_state));
            snprintf(obs, sizeof obs, "%s", state);
            break;
        case HF_HWSIM_EXPECT_MISSING:
            ok = hf_hwsim_expect_holds(e, c.summary_missed);
            snprintf(obs, sizeof obs, "%llu", (unsigned long long)c.summary_missed);
            break;
        case HF_HWSIM_EXPECT_ACTUATOR: {
            double a = NAN;
            if (s_actuator(&c, e->name, &a) != 0) {
                snprintf(obs, sizeof obs, "unknown");
            } else {
                ok = fabs(a - e->value) <= 1e-9 * (1.0 + fabs(e->value));
                snprintf(obs, sizeof obs, "%.17g", a);
            }
            break;
        }
        default: {
            int64_t n = s_count(&c, e, state, sizeof state);
            ok = n >= 0 && hf_hwsim_expect_holds(e, (uint64_t)n);
            snprintf(obs, sizeof obs, "%lld", (long long)n);
            break;
        }
        }
        checked++;
        failed += !ok;
        printf("  %-4s line %u: expect %s (observed %s)\n", ok ? "ok" : "FAIL", e->line, e->text,
               obs);
    }
    printf("checked %u failed %u\n", checked, failed);
    hf_hwsim_scenario_destroy(&sc);
    return failed ? 1 : 0;
}
