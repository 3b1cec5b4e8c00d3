/* hf_time.h - time types and the only clock readers.
 *
 * Pure code (protocol, sessions, runs) never reads a clock: shells call
 * these and pass the values in. Timers use the monotonic clock; wall time
 * is only a label on records.
 */
#ifndef HF_TIME_H_INCLUDED
#define HF_TIME_H_INCLUDED

#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t hf_ms_t; /* monotonic milliseconds, always supplied */
#define HF_MS_NEVER UINT64_MAX

HF_EXPORT uint64_t hf_clock_mono_ns(void); /* CLOCK_MONOTONIC, ns */
HF_EXPORT uint64_t hf_clock_wall_ns(void); /* CLOCK_REALTIME, ns since 1970 */
HF_EXPORT hf_ms_t hf_clock_mono_ms(void);
/* Sleep until the monotonic clock reaches mono_ns (returns early on signal). */
HF_EXPORT void hf_sleep_until_ns(uint64_t mono_ns);

#ifdef __cplusplus
}
#endif
#endif
