/* hf_config.c - ZPL configuration files as extra command-line arguments.
 * See hf_config.h.
 *
 * Design notes:
 * - zconfig_load prints syntax errors itself (czmq's log) and returns
 *   NULL; we check the file's syntax first with our own line reader so
 *   the error carries the line: ZPL lines are "name", "name = value" or
 *   comments, indented by multiples of 4 spaces.
 * - Values are taken from zconfig (it handles quoting); the line reader
 *   only locates keys.
 */
#include "hf_config.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S_LINE_MAX 1024
#define S_FILE_MAX (1 << 20)

static bool
s_in(const char *name, const char *const *list)
{
    for (size_t i = 0; list && list[i]; i++)
        if (!strcmp(name, list[i]))
            return true;
    return false;
}

/* The 1-based line where `key` appears at depth 1 under `section`, or 0. */
static int
s_line_of(const char *text, const char *section, const char *key)
{
    int line = 0, in_section = 0;
    const char *p = text;
    size_t klen = strlen(key), slen = strlen(section);
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        size_t ind = 0;
        while (ind < n && p[ind] == ' ')
            ind++;
        const char *w = p + ind;
        if (ind == 0 && n > 0 && *w != '#')
            in_section = n >= slen && !strncmp(w, section, slen) &&
                         (n == slen || w[slen] == ' ' || w[slen] == '\r');
        else if (in_section && ind == 4 && n - ind >= klen && !strncmp(w, key, klen) &&
                 (n - ind == klen || w[klen] == ' ' || w[klen] == '='))
            return line;
        p = nl ? nl + 1 : p + n;
    }
    return 0;
}

/* Syntax: indentation in steps of 4 (one deeper at most), names of
 * [A-Za-z0-9$-_@.&+/], an optional "= value". */
static hf_err_t
s_check_syntax(const char *path, const char *text, char *errbuf, size_t errlen)
{
    int line = 0, depth = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > S_LINE_MAX) {
            snprintf(errbuf, errlen, "%s:%d: line longer than %d bytes", path, line, S_LINE_MAX);
            return HF_EINVAL;
        }
        size_t ind = 0;
        while (ind < n && p[ind] == ' ')
            ind++;
        const char *w = p + ind;
        size_t rest = n - ind;
        if (rest && w[rest - 1] == '\r')
            rest--;
        if (rest == 0 || *w == '#') {
            p = nl ? nl + 1 : p + n;
            continue;
        }
        if (memchr(p, '\t', n)) {
            snprintf(errbuf, errlen, "%s:%d: a tab: ZPL indents with 4 spaces", path, line);
            return HF_EINVAL;
        }
        if (ind % 4 || (int)(ind / 4) > depth + 1) {
            snprintf(errbuf, errlen, "%s:%d: indentation must be 4 spaces per level", path, line);
            return HF_EINVAL;
        }
        depth = (int)(ind / 4);
        size_t k = 0;
        while (k < rest && (isalnum((unsigned char)w[k]) || strchr("$-_@.&+/", w[k])))
            k++;
        if (k == 0) {
            snprintf(errbuf, errlen, "%s:%d: expected a name", path, line);
            return HF_EINVAL;
        }
        size_t q = k;
        while (q < rest && w[q] == ' ')
            q++;
        if (q < rest && w[q] != '=' && w[q] != '#') {
            snprintf(errbuf, errlen, "%s:%d: expected '= value' after '%.*s'", path, line, (int)k,
                     w);
            return HF_EINVAL;
        }
        p = nl ? nl + 1 : p + n;
    }
    return HF_OK;
}

static bool
s_truth(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "1", "on", NULL};
    static const char *const no[] = {"false", "no", "0", "off", NULL};
    for (size_t i = 0; yes[i]; i++)
        if (!strcasecmp(v, yes[i]))
            return *out = true, true;
    for (size_t i = 0; no[i]; i++)
        if (!strcasecmp(v, no[i]))
            return *out = false, true;
    return false;
}

hf_err_t
hf_config_parse(const char *name, const char *text, size_t len, const char *program,
                const struct option *opts, const char *const *skip, hf_config_args_t *out,
                char *errbuf, size_t errlen)
{
    char dummy[8];
    if (!errbuf || errlen == 0) {
        errbuf = dummy;
        errlen = sizeof dummy;
    }
    errbuf[0] = 0;
    memset(out, 0, sizeof *out);
    if (!name || !text || !program || !opts)
        return HF_EINVAL;
    if (len > S_FILE_MAX || memchr(text, 0, len)) {
        snprintf(errbuf, errlen, "%s: not a configuration file (over 1 MiB or binary)", name);
        return HF_EINVAL;
    }
    hf_err_t rc = HF_OK;
    zconfig_t *root = NULL;
    char *copy = malloc(len + 1); /* NUL-terminated for the line reader and zconfig */
    if (!copy)
        return HF_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = 0;
    rc = s_check_syntax(name, copy, errbuf, errlen);
    if (rc != HF_OK)
        goto done;
    root = zconfig_str_load(copy);
    if (!root) {
        snprintf(errbuf, errlen, "%s: not valid ZPL", name);
        rc = HF_EINVAL;
        goto done;
    }
    /* only our program's section; others (a shared file) are left alone */
    zconfig_t *sec = zconfig_locate(root, program);
    if (!sec) {
        snprintf(errbuf, errlen, "%s: no section '%s'", name, program);
        rc = HF_EINVAL;
        goto done;
    }
    for (zconfig_t *c = zconfig_child(sec); c; c = zconfig_next(c)) {
        const char *key = zconfig_name(c);
        const char *val = zconfig_value(c);
        int line = s_line_of(copy, program, key);
        const struct option *o = NULL;
        for (size_t i = 0; opts[i].name; i++)
            if (!strcmp(opts[i].name, key))
                o = &opts[i];
        if (!o || s_in(key, skip)) {
            snprintf(errbuf, errlen, "%s:%d: %s '%s'", name, line,
                     o ? "not settable in a file:" : "unknown option", key);
            rc = HF_EINVAL;
            goto done;
        }
        if (zconfig_child(c)) {
            snprintf(errbuf, errlen, "%s:%d: '%s' takes a value, not a section", name, line, key);
            rc = HF_EINVAL;
            goto done;
        }
        if (out->argc == HF_CONFIG_MAX_ARGS) {
            snprintf(errbuf, errlen, "%s:%d: more than %d options", name, line,
                     HF_CONFIG_MAX_ARGS);
            rc = HF_EINVAL;
            goto done;
        }
        char *arg = NULL;
        if (o->has_arg == no_argument) {
            bool on = false;
            if (!val || !s_truth(val, &on)) {
                snprintf(errbuf, errlen, "%s:%d: '%s' is a switch: true or false, not '%.40s'",
                         name, line, key, val ? val : "");
                rc = HF_EINVAL;
                goto done;
            }
            if (!on)
                continue;
            arg = malloc(strlen(key) + 3);
            if (arg)
                sprintf(arg, "--%s", key);
        } else {
            if (!val || !*val) {
                snprintf(errbuf, errlen, "%s:%d: '%s' needs a value", name, line, key);
                rc = HF_EINVAL;
                goto done;
            }
            arg = malloc(strlen(key) + strlen(val) + 4);
            if (arg)
                sprintf(arg, "--%s=%s", key, val);
        }
        if (!arg) {
            rc = HF_ENOMEM;
            goto done;
        }
        out->argv[out->argc++] = arg;
    }
done:
    zconfig_destroy(&root);
    free(copy);
    if (rc != HF_OK)
        hf_config_args_free(out);
    return rc;
}

hf_err_t
hf_config_load(const char *path, const char *program, const struct option *opts,
               const char *const *skip, hf_config_args_t *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (errbuf && errlen)
        errbuf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT ? HF_ENOTFOUND : HF_EIO;
    }
    char *text = malloc(S_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, S_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!text)
        return HF_ENOMEM;
    hf_err_t rc = hf_config_parse(path, text, n, program, opts, skip, out, errbuf, errlen);
    free(text);
    return rc;
}

void
hf_config_args_free(hf_config_args_t *args)
{
    if (!args)
        return;
    for (int i = 0; i < args->argc; i++)
        free(args->argv[i]);
    args->argc = 0;
}

char **
hf_config_merge(int argc, char **argv, const hf_config_args_t *file, int *argc_out)
{
    int n = argc + (file ? file->argc : 0);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v)
        return NULL;
    int k = 0;
    v[k++] = argv[0];
    for (int i = 0; file && i < file->argc; i++)
        v[k++] = file->argv[i];
    for (int i = 1; i < argc; i++)
        v[k++] = argv[i];
    v[k] = NULL;
    *argc_out = k;
    return v;
}

const char *
hf_config_path(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (!strcmp(argv[i], "--config"))
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (!strncmp(argv[i], "--config=", 9))
            return argv[i] + 9;
    }
    return NULL;
}
