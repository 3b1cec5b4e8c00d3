/* hf_hwsim.h - a simulated instrument behind the hf_hal_t interface.
 *
 * Every value hwsim returns is a pure function of (seed, the mono_ns passed
 * in, the actuator writes made so far, the faults injected): no clock, no
 * rand, no I/O. Two simulators built from the same options and driven with
 * the same calls return bit-identical values, which is what lets tests and
 * the simulation layer replay a run from its seed.
 *
 * Model: each channel has a signal model plus additive noise.
 *   CONSTANT  base
 *   RAMP      base + slope * t
 *   SINE      base + amplitude * sin(2 pi t / period)
 *   NOISE     base (same as CONSTANT; named for configs whose point is noise)
 *   LAG       first-order lag toward an actuator's value, time constant tau,
 *             starting at base: x' = (setpoint - x) / tau, solved exactly
 *             between writes, so reads never change the trajectory.
 * t is seconds since hf_hal open. Noise is uniform in [-noise, +noise], drawn
 * from splitmix64 keyed by (seed, channel, floor(t / noise_step)).
 *
 * Faults: a bounded table of windows [from_ns, until_ns) in which reads of a
 * channel (or of every channel) fail with a given class, optionally only the
 * first N reads in the window. This table is the extension point for the
 * fault schedule (stuck sensors, scenarios): a later model adds kinds here,
 * the read path already consults it.
 *
 * Thread-safety: one thread at a time, like every hf_hal_t.
 */
#ifndef HF_HWSIM_H_INCLUDED
#define HF_HWSIM_H_INCLUDED

#include <stdint.h>

#include "hf_err.h"
#include "hf_hal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_HWSIM_MAX_CHANNELS 32
#define HF_HWSIM_MAX_ACTUATORS 16
#define HF_HWSIM_MAX_FAULTS 32
#define HF_HWSIM_NAME_MAX 63           /* bytes, without the NUL         */
#define HF_HWSIM_ALL_CHANNELS UINT32_MAX /* fault applies to every channel */

typedef enum {
    HF_HWSIM_CONSTANT = 0,
    HF_HWSIM_RAMP = 1,
    HF_HWSIM_SINE = 2,
    HF_HWSIM_NOISE = 3,
    HF_HWSIM_LAG = 4,
} hf_hwsim_model_t;

typedef struct {
    const char *name;       /* borrowed during hf_hwsim_new, copied          */
    hf_hwsim_model_t model;
    double base;            /* unit: constant / centre / ramp start / lag start */
    double amplitude;       /* unit: SINE amplitude                          */
    double period_s;        /* s: SINE period, > 0                           */
    double slope;           /* unit per s: RAMP                              */
    double noise;           /* unit: half-width of the uniform noise, >= 0   */
    double tau_s;           /* s: LAG time constant, > 0                     */
    uint32_t actuator;      /* LAG: index of the actuator it follows         */
} hf_hwsim_channel_t;

typedef struct {
    const char *name;       /* borrowed during hf_hwsim_new, copied          */
    double initial;         /* unit: value before the first write            */
} hf_hwsim_actuator_t;

typedef struct {
    uint64_t seed;                  /* keys all noise                       */
    uint64_t noise_step_ns;         /* ns: noise changes once per step, > 0 */
    uint32_t channel_count;         /* 1..HF_HWSIM_MAX_CHANNELS             */
    hf_hwsim_channel_t channels[HF_HWSIM_MAX_CHANNELS];
    uint32_t actuator_count;        /* 0..HF_HWSIM_MAX_ACTUATORS            */
    hf_hwsim_actuator_t actuators[HF_HWSIM_MAX_ACTUATORS];
} hf_hwsim_opts_t;

/* The demo instrument, seed 1, noise step 1 ms:
 *   actuator oven.setpoint (initial 22.0 C)
 *   channel 0 oven.temp         LAG toward oven.setpoint, tau 1.5 s, from 22.0 C, noise 0.02
 *   channel 1 chamber.pressure  SINE 101.3 kPa +- 0.4, period 20 s, noise 0.005
 *   channel 2 flow              NOISE 2.0 L/min +- 0.05
 *   channel 3 ambient           CONSTANT 22.0 C                                        */
HF_EXPORT hf_hwsim_opts_t hf_hwsim_opts_default(void);

typedef struct hf_hwsim_s hf_hwsim_t;

/* Build a simulator. NULL on error with *err: HF_EINVAL (bad options; the
 * reason is logged), HF_ENOMEM. opts is only read during the call. */
HF_EXPORT hf_hwsim_t *hf_hwsim_new(const hf_hwsim_opts_t *opts, hf_err_t *err);

/* NULL-safe; sets *self_p to NULL. Any hf_hal_t view becomes invalid. */
HF_EXPORT void hf_hwsim_destroy(hf_hwsim_t **self_p);

/* The hf_hal_t view; impl is borrowed from self (do not free it). Reads and
 * writes fail with HF_HAL_DISCONNECTED until the hal's open op is called. */
HF_EXPORT hf_hal_t hf_hwsim_hal(hf_hwsim_t *self);

typedef struct {
    uint32_t channel;       /* channel index or HF_HWSIM_ALL_CHANNELS        */
    hf_hal_class_t cls;     /* class the read fails with, never HF_HAL_OK   */
    uint64_t from_ns;       /* ns, monotonic: first failing time (inclusive) */
    uint64_t until_ns;      /* ns, monotonic: end of the window (exclusive)  */
    uint32_t count;         /* fail only the first count reads; 0 = all      */
} hf_hwsim_fault_t;

/* Add a fault window. HF_EINVAL (cls OK, empty window, unknown channel),
 * HF_EFULL (HF_HWSIM_MAX_FAULTS already). */
HF_EXPORT hf_err_t hf_hwsim_add_fault(hf_hwsim_t *self, const hf_hwsim_fault_t *fault);

/* Shorthand: every read of channel in [from_ns, until_ns) fails with cls. */
HF_EXPORT hf_err_t hf_hwsim_inject(hf_hwsim_t *self, uint32_t channel, hf_hal_class_t cls,
                                   uint64_t from_ns, uint64_t until_ns);

/* Last value written to actuator idx (its initial value before any write);
 * NAN if idx is out of range. */
HF_EXPORT double hf_hwsim_actuator_value(const hf_hwsim_t *self, uint32_t idx);

/* Read attempts so far (successful or not), for tests of retry logic. */
HF_EXPORT uint64_t hf_hwsim_reads(const hf_hwsim_t *self);

#ifdef __cplusplus
}
#endif
#endif
