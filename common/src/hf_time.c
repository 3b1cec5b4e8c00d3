/* hf_time.c - clock readers for the shells (daemons, dispatcher thread). */
#define _POSIX_C_SOURCE 200809L
#include "hf_time.h"

#include <time.h>

static uint64_t
s_read(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
hf_clock_mono_ns(void)
{
    return s_read(CLOCK_MONOTONIC);
}

uint64_t
hf_clock_wall_ns(void)
{
    return s_read(CLOCK_REALTIME);
}

hf_ms_t
hf_clock_mono_ms(void)
{
    return s_read(CLOCK_MONOTONIC) / 1000000ull;
}

void
hf_sleep_until_ns(uint64_t mono_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000ull),
                          .tv_nsec = (long)(mono_ns % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}
