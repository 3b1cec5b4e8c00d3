/* hf_pxcmd.c - parse hf-proxy control lines (see hf_pxcmd.h).
 *
 * Invariant: the parser reads only line[0..len); the line need not be
 * NUL-terminated, and any byte value is safe.
 */
#include "hf_pxcmd.h"

#include <assert.h>
#include <string.h>

#include "hf_pxpipe.h"

#define S_WORDS_MAX 3 /* one more than any command takes: detects extras */

typedef struct {
    const char *p; /* start of the word */
    size_t n;      /* bytes             */
} s_word_t;

static const struct {
    const char *name;
    hf_pxcmd_kind_t kind;
    int args;      /* 0 or 1 */
    uint64_t max;  /* argument's upper bound */
    int opt;       /* optional arguments after it: 0 or 1 (delay's jitter) */
} s_table[] = {
    {"pass", HF_PXCMD_PASS, 0, 0},
    {"cut", HF_PXCMD_CUT, 0, 0},
    {"reset", HF_PXCMD_RESET, 0, 0},
    {"blackhole", HF_PXCMD_BLACKHOLE, 0, 0},
    {"refuse", HF_PXCMD_REFUSE, 0, 0},
    {"delay", HF_PXCMD_DELAY, 1, HF_PXCMD_DELAY_MAX, 1},
    {"throttle", HF_PXCMD_THROTTLE, 1, HF_PXPIPE_MAX_RATE},
    {"halfopen", HF_PXCMD_HALFOPEN, 0, 0},
    {"stats", HF_PXCMD_STATS, 0, 0},
};

static int
s_split(const char *line, size_t len, s_word_t *w)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        if (n == S_WORDS_MAX)
            return n + 1;
        w[n].p = line + i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        w[n].n = (size_t)(line + i - w[n].p);
        n++;
    }
    return n;
}

/* Decimal, no sign, no leading '+', at most max. */
static hf_err_t
s_number(const s_word_t *w, uint64_t max, uint64_t *out)
{
    if (w->n == 0 || w->n > 20)
        return HF_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < w->n; i++) {
        char c = w->p[i];
        if (c < '0' || c > '9')
            return HF_EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (d > max || v > (max - d) / 10) /* d > max first: max - d must not wrap */
            return HF_EINVAL;
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return HF_OK;
}

hf_err_t
hf_pxcmd_parse(const char *line, size_t len, hf_pxcmd_t *out, const char **why)
{
    assert((line || len == 0) && out && why);
    if (len > HF_PXCMD_LINE_MAX) {
        *why = "line too long";
        return HF_EINVAL;
    }
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 && c != '\t') {
            *why = "control character in line";
            return HF_EINVAL;
        }
    }
    s_word_t w[S_WORDS_MAX];
    int n = s_split(line, len, w);
    if (n == 0) {
        *why = "empty command";
        return HF_EINVAL;
    }
    for (size_t k = 0; k < sizeof s_table / sizeof s_table[0]; k++) {
        if (strlen(s_table[k].name) != w[0].n || memcmp(s_table[k].name, w[0].p, w[0].n) != 0)
            continue;
        if (n - 1 < s_table[k].args || n - 1 > s_table[k].args + s_table[k].opt) {
            *why = s_table[k].args ? "missing or extra argument" : "unexpected argument";
            return HF_EINVAL;
        }
        uint64_t arg = 0, arg2 = 0;
        if (s_table[k].args && s_number(&w[1], s_table[k].max, &arg) != HF_OK) {
            *why = "argument must be a decimal number within range";
            return HF_EINVAL;
        }
        if (n - 1 > s_table[k].args && s_number(&w[2], arg, &arg2) != HF_OK) {
            *why = "jitter must be a decimal number no larger than the delay";
            return HF_EINVAL;
        }
        out->kind = s_table[k].kind;
        out->arg = arg;
        out->arg2 = arg2;
        return HF_OK;
    }
    *why = "unknown command";
    return HF_EINVAL;
}

const char *
hf_pxcmd_name(hf_pxcmd_kind_t kind)
{
    for (size_t k = 0; k < sizeof s_table / sizeof s_table[0]; k++)
        if (s_table[k].kind == kind)
            return s_table[k].name;
    return "?";
}
