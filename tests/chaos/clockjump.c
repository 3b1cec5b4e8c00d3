/*
 * clockjump.c - an LD_PRELOAD shim that steps a process's wall clock (an
 * operator's `date -s`, a bad NTP step, a VM resumed with a stale clock)
 * while its monotonic clock runs on untouched.
 *
 *   LD_PRELOAD=libhf_clockjump.so HF_CLOCKJUMP="2500:+3600,5500:-3600" \
 *       holdfast-engine ...
 *
 * HF_CLOCKJUMP is a schedule of steps "MS:SECONDS,...": MS milliseconds
 * after the process started (its CLOCK_MONOTONIC at the shim's first use),
 * SECONDS (signed) are added to the wall clock. Steps accumulate: the
 * example moves the clock an hour ahead 2.5 s in, and back to true time
 * 3 s later. HF_CLOCKJUMP_LOG=1 prints one line to stderr the first time a
 * step shows (`clockjump: pid=N step +3600 s at 2500 ms (seen at 2501 ms),
 * offset +3600 s, true_wall_ms=...`, the unshifted wall clock), so a test
 * can tell when the process saw it.
 *
 * Design notes:
 * - Wrapped: clock_gettime (CLOCK_REALTIME, CLOCK_REALTIME_COARSE,
 *   CLOCK_TAI, CLOCK_REALTIME_ALARM get the offset; every other clock,
 *   CLOCK_MONOTONIC above all, passes through), gettimeofday, time and
 *   timespec_get. Holdfast reads the wall clock through clock_gettime only
 *   (common/src/hf_time.c, common/src/hf_log.c); the others are wrapped so
 *   that a library reading the clock another way sees the same time.
 *   Calls glibc makes internally (e.g. inside localtime) do not go through
 *   the PLT and are not shifted; holdfast does not depend on those.
 * - A time-based schedule, not a signal: the daemons own SIGINT/SIGTERM,
 *   the power-loss shim SIGUSR2, and a schedule needs no coordination with
 *   the test script (the log line says when the step was seen).
 * - The elapsed time comes from the real CLOCK_MONOTONIC, so the schedule
 *   itself never depends on the clock it shifts.
 * - Not async-signal-unsafe: the wrappers only read atomics and call the
 *   real functions; the log line is a single write(2).
 *
 * Invariants: the offset at elapsed time t is the sum of the steps whose MS
 * is <= t; monotonic clocks are never changed; a malformed HF_CLOCKJUMP
 * aborts the process loudly at its first clock read (a misconfigured test,
 * never a silent no-op).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The wrappers must be visible to interpose (the build hides by default). */
#define S_PUBLIC __attribute__((visibility("default")))

#define S_MAX_STEPS 32

typedef struct {
    int64_t at_ms;   /* ms after the process's start */
    int64_t delta_s; /* seconds added to the wall clock from then on */
} s_step_t;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static s_step_t s_steps[S_MAX_STEPS];
static int s_nsteps;
static int s_log;
static uint64_t s_t0_ns;          /* real CLOCK_MONOTONIC at the first use, ns */
static atomic_int s_shown;        /* steps already logged */

static int (*r_clock_gettime)(clockid_t, struct timespec *);
static int (*r_gettimeofday)(struct timeval *, void *);
static time_t (*r_time)(time_t *);
static int (*r_timespec_get)(struct timespec *, int);

static void
s_die(const char *msg)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "clockjump: %s\n", msg);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}

/* The real clock_gettime, or the system call if the symbol cannot be found. */
static int
s_real_clock(clockid_t id, struct timespec *ts)
{
    if (r_clock_gettime)
        return r_clock_gettime(id, ts);
    return (int)syscall(SYS_clock_gettime, id, ts);
}

static uint64_t
s_mono_ns(void)
{
    struct timespec ts;
    s_real_clock(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
s_parse(const char *spec)
{
    const char *p = spec;
    while (*p) {
        if (s_nsteps == S_MAX_STEPS)
            s_die("HF_CLOCKJUMP: more than 32 steps");
        char *end;
        errno = 0;
        long long at = strtoll(p, &end, 10);
        if (end == p || *end != ':' || at < 0 || errno)
            s_die("HF_CLOCKJUMP: want MS:SECONDS[,MS:SECONDS...]");
        p = end + 1;
        long long d = strtoll(p, &end, 10);
        if (end == p || (*end && *end != ',') || errno)
            s_die("HF_CLOCKJUMP: want MS:SECONDS[,MS:SECONDS...]");
        s_steps[s_nsteps].at_ms = at;
        s_steps[s_nsteps].delta_s = d;
        s_nsteps++;
        p = *end ? end + 1 : end;
    }
    for (int i = 1; i < s_nsteps; i++)
        if (s_steps[i].at_ms < s_steps[i - 1].at_ms)
            s_die("HF_CLOCKJUMP: steps must be in time order");
}

static void
s_init(void)
{
    r_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    r_gettimeofday = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    r_time = (time_t(*)(time_t *))dlsym(RTLD_NEXT, "time");
    r_timespec_get = (int (*)(struct timespec *, int))dlsym(RTLD_NEXT, "timespec_get");
    s_t0_ns = s_mono_ns();
    const char *spec = getenv("HF_CLOCKJUMP");
    const char *log = getenv("HF_CLOCKJUMP_LOG");
    s_log = log && *log && strcmp(log, "0") != 0;
    if (spec)
        s_parse(spec);
}

__attribute__((constructor)) static void
s_ctor(void)
{
    pthread_once(&s_once, s_init);
}

/* The wall clock's offset now, ns; logs each step the first time it shows. */
static int64_t
s_offset_ns(void)
{
    pthread_once(&s_once, s_init);
    if (s_nsteps == 0)
        return 0;
    int64_t el_ms = (int64_t)((s_mono_ns() - s_t0_ns) / 1000000ull);
    int64_t off = 0;
    int n = 0;
    while (n < s_nsteps && s_steps[n].at_ms <= el_ms)
        off += s_steps[n++].delta_s;
    int shown = atomic_load(&s_shown);
    while (s_log && shown < n) {
        if (atomic_compare_exchange_weak(&s_shown, &shown, shown + 1)) {
            int64_t cum = 0;
            for (int i = 0; i <= shown; i++)
                cum += s_steps[i].delta_s;
            struct timespec tw;
            s_real_clock(CLOCK_REALTIME, &tw);
            char buf[200];
            int len = snprintf(buf, sizeof buf,
                               "clockjump: pid=%d step %+lld s at %lld ms (seen at %lld ms), "
                               "offset %+lld s, true_wall_ms=%lld\n",
                               (int)getpid(), (long long)s_steps[shown].delta_s,
                               (long long)s_steps[shown].at_ms, (long long)el_ms, (long long)cum,
                               (long long)tw.tv_sec * 1000ll + tw.tv_nsec / 1000000);
            if (len > 0)
                (void)!write(2, buf, (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1);
            shown++;
        }
    }
    return off * 1000000000ll;
}

static bool
s_is_wall(clockid_t id)
{
    switch (id) {
    case CLOCK_REALTIME:
#ifdef CLOCK_REALTIME_COARSE
    case CLOCK_REALTIME_COARSE:
#endif
#ifdef CLOCK_TAI
    case CLOCK_TAI:
#endif
#ifdef CLOCK_REALTIME_ALARM
    case CLOCK_REALTIME_ALARM:
#endif
        return true;
    default: return false;
    }
}

static void
s_shift(struct timespec *ts, int64_t off_ns)
{
    int64_t ns = (int64_t)ts->tv_sec * 1000000000ll + ts->tv_nsec + off_ns;
    ts->tv_sec = (time_t)(ns / 1000000000ll);
    ts->tv_nsec = (long)(ns % 1000000000ll);
}

S_PUBLIC int
clock_gettime(clockid_t id, struct timespec *ts)
{
    pthread_once(&s_once, s_init);
    int rc = s_real_clock(id, ts);
    if (rc == 0 && s_is_wall(id))
        s_shift(ts, s_offset_ns());
    return rc;
}

S_PUBLIC int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    pthread_once(&s_once, s_init);
    if (!r_gettimeofday)
        s_die("cannot resolve gettimeofday");
    int rc = r_gettimeofday(tv, tz);
    if (rc == 0) {
        int64_t us = (int64_t)tv->tv_sec * 1000000ll + tv->tv_usec + s_offset_ns() / 1000;
        tv->tv_sec = (time_t)(us / 1000000ll);
        tv->tv_usec = (suseconds_t)(us % 1000000ll);
    }
    return rc;
}

S_PUBLIC time_t
time(time_t *t)
{
    pthread_once(&s_once, s_init);
    if (!r_time)
        s_die("cannot resolve time");
    time_t v = r_time(NULL) + (time_t)(s_offset_ns() / 1000000000ll);
    if (t)
        *t = v;
    return v;
}

S_PUBLIC int
timespec_get(struct timespec *ts, int base)
{
    pthread_once(&s_once, s_init);
    if (!r_timespec_get)
        s_die("cannot resolve timespec_get");
    int rc = r_timespec_get(ts, base);
    if (rc == TIME_UTC)
        s_shift(ts, s_offset_ns());
    return rc;
}
