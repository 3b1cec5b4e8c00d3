/* hf_log.c - the log sink. The sink and level are the only mutable globals
 * besides the fault hook; they are set once at start, before threads. */
#include "hf_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static hf_log_fn *s_sink = NULL;
static void *s_sink_arg = NULL;
static hf_log_level_t s_max = HF_LOG_INFO;

void
hf_log_set_sink(hf_log_fn *fn, void *arg)
{
    s_sink = fn;
    s_sink_arg = arg;
}

void
hf_log_set_level(hf_log_level_t max)
{
    s_max = max;
}

const char *
hf_log_level_name(hf_log_level_t lvl)
{
    switch (lvl) {
    case HF_LOG_ERROR: return "ERROR";
    case HF_LOG_WARN: return "WARN";
    case HF_LOG_INFO: return "INFO";
    case HF_LOG_DEBUG: return "DEBUG";
    }
    return "?";
}

void
hf_log_stderr_sink(hf_log_level_t lvl, const char *component, const char *msg, void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            hf_log_level_name(lvl), component, msg);
}

void
hf_log(hf_log_level_t lvl, const char *component, const char *fmt, ...)
{
    if (!s_sink || lvl > s_max)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s_sink(lvl, component, buf, s_sink_arg);
}
