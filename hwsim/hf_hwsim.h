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
 * Time: every mono_ns passed in is the caller's monotonic clock. The model
 * time origin is the FIRST open call (successful or not) and never moves:
 * closing and reopening the device (a reconnect) does not restart ramps,
 * sines or lags, because the simulated process kept running meanwhile.
 *
 * Faults: a bounded table (HF_HWSIM_MAX_FAULTS) of entries, each of a kind:
 *   FAIL        calls in [from, until) fail with cls; count > 0 fails only the
 *               first count calls (a "burst": the next k calls after from;
 *               until = HF_HWSIM_FOREVER for "whenever they come").
 *   STUCK       channel returns its value at from, frozen, in [from, until);
 *               no error: only the data shows it.
 *   DRIFT       channel gains rate * (t - from) in [from, until); back to
 *               normal at until (HF_HWSIM_FOREVER: never).
 *   DISCONNECT  device-wide link loss in [from, until): every read, write and
 *               open fails DISCONNECTED. After until the device is reachable
 *               but the link must be re-established: reads and writes keep
 *               failing DISCONNECTED ("device not reopened") until an open
 *               call at a time >= until succeeds. An open is all it takes
 *               (close first or not). A window nobody called into still
 *               requires the reopen: the first call after from sees it.
 *   FATAL       from `from` on, sticky until destroy: on a channel, its reads
 *               fail FATAL; on an actuator, its writes; on the device, every
 *               read, write and open fails FATAL - except a write of an
 *               actuator's declared safe value, which is accepted (the
 *               device's interlock path still works: the engine can drive
 *               actuators to safe state and a test can see it did).
 * Target: a channel (reads), an actuator (writes), all channels / all
 * actuators, or the whole device (reads and writes). Fault times are
 * absolute mono ns, or ns since the first open when since_open is set (how
 * scenario files give them). Order of checks on a call: device FATAL,
 * DISCONNECT window, not open, link lost and not reopened, then the first
 * matching FAIL / FATAL entry in table order; STUCK and DRIFT shape the value
 * of a call that succeeds.
 *
 * Every error carries the device index, the channel (read) or actuator
 * (write) index, or HF_HWSIM_WHOLE_DEVICE (open), a code (below) and a
 * reason "DEVICE/NAME: what happened", or the fault's own reason text.
 *
 * Error codes: 1 no such channel/actuator, 2 device not open, 3 value not
 * finite, 100 + cls a FAIL entry, 200 link down (DISCONNECT window), 201 link
 * lost and device not reopened, 300 FATAL.
 *
 * Ground truth (optional, hf_hwsim_truth_open): a text file with one line per
 * open/read/write/close and its result; see docs/hwsim.md. Writing it never
 * changes a value.
 *
 * Scenarios: hf_hwsim_scenario_t parses a .scenario file (instrument, seed,
 * fault schedule, engine policy, inline method, expectations; the format is
 * in docs/hwsim.md) and hf_hwsim_new_from_scenario builds the simulator.
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
#define HF_HWSIM_NAME_MAX 63             /* bytes, without the NUL           */
#define HF_HWSIM_ALL_CHANNELS UINT32_MAX   /* fault applies to every channel   */
#define HF_HWSIM_ALL_ACTUATORS UINT32_MAX  /* fault applies to every actuator  */
#define HF_HWSIM_WHOLE_DEVICE UINT32_MAX   /* hf_hal_error_t.channel of open   */
#define HF_HWSIM_FOREVER UINT64_MAX        /* until_ns of a fault with no end  */
#define HF_HWSIM_TRUTH_BUF 65536           /* bytes buffered before a write    */

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
    int has_safe;           /* 1: safe is declared                           */
    double safe;            /* unit: value the engine drives it to on a fatal fault */
} hf_hwsim_actuator_t;

typedef struct {
    uint64_t seed;                  /* keys all noise                       */
    uint64_t noise_step_ns;         /* ns: noise changes once per step, > 0 */
    uint32_t channel_count;         /* 1..HF_HWSIM_MAX_CHANNELS             */
    hf_hwsim_channel_t channels[HF_HWSIM_MAX_CHANNELS];
    uint32_t actuator_count;        /* 0..HF_HWSIM_MAX_ACTUATORS            */
    hf_hwsim_actuator_t actuators[HF_HWSIM_MAX_ACTUATORS];
    const char *device_name;        /* in error reasons; NULL = "hwsim"; copied */
    uint32_t device;                /* hf_hal_error_t.device of every error  */
    const char *truth_path;         /* NULL = none; else hf_hwsim_truth_open */
    uint64_t truth_max_bytes;       /* bytes: truth log cap, 0 = 64 MiB      */
} hf_hwsim_opts_t;

/* The demo instrument, seed 1, noise step 1 ms, device "hwsim" index 0:
 *   actuator oven.setpoint (initial 22.0 C, no safe value)
 *   channel 0 oven.temp         LAG toward oven.setpoint, tau 1.5 s, from 22.0 C, noise 0.02
 *   channel 1 chamber.pressure  SINE 101.3 kPa +- 0.4, period 20 s, noise 0.005
 *   channel 2 flow              NOISE 2.0 L/min +- 0.05
 *   channel 3 ambient           CONSTANT 22.0 C                                        */
HF_EXPORT hf_hwsim_opts_t hf_hwsim_opts_default(void);

typedef struct hf_hwsim_s hf_hwsim_t;

/* Build a simulator. NULL on error with *err: HF_EINVAL (bad options; the
 * reason is logged), HF_ENOMEM, HF_EIO (truth_path cannot be created).
 * opts is only read during the call. */
HF_EXPORT hf_hwsim_t *hf_hwsim_new(const hf_hwsim_opts_t *opts, hf_err_t *err);

/* NULL-safe; sets *self_p to NULL; flushes and closes the truth log. Any
 * hf_hal_t view becomes invalid. */
HF_EXPORT void hf_hwsim_destroy(hf_hwsim_t **self_p);

/* The hf_hal_t view; impl is borrowed from self (do not free it). Reads and
 * writes fail with HF_HAL_DISCONNECTED until the hal's open op is called. */
HF_EXPORT hf_hal_t hf_hwsim_hal(hf_hwsim_t *self);

typedef enum {
    HF_HWSIM_FAIL = 0,       /* calls fail with cls; count > 0: a burst     */
    HF_HWSIM_STUCK = 1,      /* channel frozen at its value at from_ns      */
    HF_HWSIM_DRIFT = 2,      /* channel + rate * (t - from)                 */
    HF_HWSIM_DISCONNECT = 3, /* device link down in [from, until), reopen   */
    HF_HWSIM_FATAL = 4,      /* sticky FATAL from from_ns on                */
} hf_hwsim_fault_kind_t;

typedef enum {
    HF_HWSIM_ON_CHANNEL = 0,  /* reads of channel (or HF_HWSIM_ALL_CHANNELS) */
    HF_HWSIM_ON_ACTUATOR = 1, /* writes of actuator (or HF_HWSIM_ALL_ACTUATORS) */
    HF_HWSIM_ON_DEVICE = 2,   /* every read and write (index ignored)       */
} hf_hwsim_target_t;

/* A zero-initialised fault is a FAIL on channel 0 with absolute times, so
 * code written before kinds existed keeps its meaning. Valid per kind:
 *   FAIL        any target; cls != OK; until > from (HF_HWSIM_FOREVER ok)
 *   STUCK/DRIFT target CHANNEL or DEVICE (= every channel); until > from;
 *               DRIFT: rate finite
 *   DISCONNECT  target DEVICE; until > from; cls, count ignored
 *   FATAL       any target; until, count ignored (forever)                 */
typedef struct {
    uint32_t channel;       /* channel or actuator index (per target), or ALL */
    hf_hal_class_t cls;     /* FAIL: class the call fails with, never OK    */
    uint64_t from_ns;       /* ns: first affected time (inclusive)          */
    uint64_t until_ns;      /* ns: end (exclusive); HF_HWSIM_FOREVER = none */
    uint32_t count;         /* FAIL: fail only the first count calls; 0 = all */
    hf_hwsim_fault_kind_t kind;
    hf_hwsim_target_t target;
    double rate;            /* unit per s: DRIFT                            */
    int since_open;         /* 1: from/until are ns since the first open;
                               0: absolute monotonic ns                     */
    const char *reason;     /* NULL or text for the error reason, borrowed
                               during the call, copied (truncated)          */
} hf_hwsim_fault_t;

/* Add a fault. HF_EINVAL (invalid for its kind, see above; unknown index),
 * HF_EFULL (HF_HWSIM_MAX_FAULTS already). */
HF_EXPORT hf_err_t hf_hwsim_add_fault(hf_hwsim_t *self, const hf_hwsim_fault_t *fault);

/* Shorthand: every read of channel in [from_ns, until_ns) fails with cls. */
HF_EXPORT hf_err_t hf_hwsim_inject(hf_hwsim_t *self, uint32_t channel, hf_hal_class_t cls,
                                   uint64_t from_ns, uint64_t until_ns);

/* Last value written to actuator idx (its initial value before any write);
 * NAN if idx is out of range. */
HF_EXPORT double hf_hwsim_actuator_value(const hf_hwsim_t *self, uint32_t idx);

/* The declared safe value of actuator idx: HF_OK and *value, or
 * HF_ENOTFOUND (none declared, or idx out of range). */
HF_EXPORT hf_err_t hf_hwsim_actuator_safe(const hf_hwsim_t *self, uint32_t idx, double *value);

/* Read / write attempts so far (successful or not), for tests of retry logic. */
HF_EXPORT uint64_t hf_hwsim_reads(const hf_hwsim_t *self);
HF_EXPORT uint64_t hf_hwsim_writes(const hf_hwsim_t *self);

/* ---- ground-truth log ----------------------------------------------------
 * One line per hal call made after it is opened (format in docs/hwsim.md):
 *   MONO_NS OP NAME RESULT VALUE_OR_REASON
 * Buffered (HF_HWSIM_TRUTH_BUF bytes), written when the buffer fills, on
 * flush, close and destroy; capped at truth_max_bytes (then one
 * "# truncated" line and further lines are counted, not written). A kill -9
 * loses at most the buffer. */

/* Create/truncate path and start logging. HF_ESTATE (already open),
 * HF_EIO (cannot create; logged), HF_EINVAL (empty path). */
HF_EXPORT hf_err_t hf_hwsim_truth_open(hf_hwsim_t *self, const char *path);

/* Write the buffer out. HF_OK (also when no log is open), HF_EIO (a write
 * failed now or earlier: the log is incomplete; logged once). */
HF_EXPORT hf_err_t hf_hwsim_truth_flush(hf_hwsim_t *self);

/* Flush and close. HF_OK when no log is open; HF_EIO as flush. */
HF_EXPORT hf_err_t hf_hwsim_truth_close(hf_hwsim_t *self);

/* Lines not written because of the cap or a write error. */
HF_EXPORT uint64_t hf_hwsim_truth_dropped(const hf_hwsim_t *self);

/* ---- scenarios ------------------------------------------------------------ */

#define HF_HWSIM_SCENARIO_FILE_MAX 65536   /* bytes                            */
#define HF_HWSIM_SCENARIO_LINE_MAX 255     /* bytes per line, without newline  */
#define HF_HWSIM_SCENARIO_LINES_MAX 1024   /* lines per file                   */
#define HF_HWSIM_SCENARIO_METHOD_MAX 16384 /* bytes of inline method text      */
#define HF_HWSIM_MAX_EXPECTS 64
#define HF_HWSIM_EXPECT_TEXT_MAX 127       /* bytes, without the NUL           */
#define HF_HWSIM_SCENARIO_ERR_MAX 256      /* a useful size for error buffers  */
#define HF_HWSIM_ANY (-1)                  /* "any" in an expectation field    */

/* Engine policy a scenario asks for; the runner applies it to the engine. */
#define HF_HWSIM_POLICY_RETRIES 0x1u
#define HF_HWSIM_POLICY_GRACE 0x2u
#define HF_HWSIM_POLICY_BACKOFF 0x4u
typedef struct {
    uint32_t set;                  /* HF_HWSIM_POLICY_* bits the file set    */
    uint32_t retries;              /* transient/timeout retries per call; 3  */
    uint64_t disconnect_grace_ns;  /* ns: pause this long, then interrupt; 5 s */
    uint64_t retry_backoff_ns;     /* ns: first retry delay (doubles); 0 = engine default */
} hf_hwsim_policy_t;

typedef enum {
    HF_HWSIM_EXPECT_RUN_STATE = 1,  /* final run state == run_state             */
    HF_HWSIM_EXPECT_EVENT = 2,      /* events of type `event` CMP count         */
    HF_HWSIM_EXPECT_HW_ERROR = 3,   /* hw_error records of class cls CMP count  */
    HF_HWSIM_EXPECT_ALARM = 4,      /* alarm records (raised/cleared) CMP count */
    HF_HWSIM_EXPECT_SAMPLES = 5,    /* sample records of channel name CMP count */
    HF_HWSIM_EXPECT_MISSING = 6,    /* sampling grid points with no sample CMP count */
    HF_HWSIM_EXPECT_GAPS = 7,       /* gap records CMP count                    */
    HF_HWSIM_EXPECT_ACTUATOR = 8,   /* last value written to actuator == value  */
} hf_hwsim_expect_kind_t;

typedef enum {
    HF_HWSIM_CMP_EQ = 0,
    HF_HWSIM_CMP_NE = 1,
    HF_HWSIM_CMP_LT = 2,
    HF_HWSIM_CMP_LE = 3,
    HF_HWSIM_CMP_GT = 4,
    HF_HWSIM_CMP_GE = 5,
} hf_hwsim_cmp_t;

/* One parsed `expect` line. Count kinds (EVENT, HW_ERROR, ALARM, SAMPLES,
 * MISSING, GAPS) hold when (observed cmp count): hf_hwsim_expect_holds. */
typedef struct {
    hf_hwsim_expect_kind_t kind;
    uint32_t line;                  /* line in the scenario file            */
    hf_hwsim_cmp_t cmp;             /* count kinds                          */
    uint64_t count;                 /* count kinds: right-hand side         */
    int32_t run_state;              /* RUN_STATE: hf_run_state_t (hf_record.h) */
    int32_t event;                  /* EVENT: hf_event_type_t (hf_record.h) */
    int32_t cls;                    /* HW_ERROR: hf_hal_class_t, or HF_HWSIM_ANY */
    int32_t raised;                 /* ALARM: 1 raised, 0 cleared           */
    int64_t alarm_code;             /* ALARM: code, or HF_HWSIM_ANY         */
    int32_t severity;               /* ALARM: hf_alarm_severity_t, or HF_HWSIM_ANY */
    char name[HF_HWSIM_NAME_MAX + 1]; /* SAMPLES: channel ("" = any);
                                       ACTUATOR: actuator                  */
    double value;                   /* ACTUATOR: expected last written value */
    char text[HF_HWSIM_EXPECT_TEXT_MAX + 1]; /* the line as written, normalised */
} hf_hwsim_expect_t;

/* 1 if observed satisfies a count expectation (cmp, count); 0 otherwise,
 * and 0 for non-count kinds. */
HF_EXPORT int hf_hwsim_expect_holds(const hf_hwsim_expect_t *e, uint64_t observed);

/* "==", "!=", "<", "<=", ">", ">=" or "?". */
HF_EXPORT const char *hf_hwsim_cmp_name(hf_hwsim_cmp_t cmp);

typedef struct hf_hwsim_scenario_s hf_hwsim_scenario_t;

/* Parse scenario text. name is the scenario's name (copied, 1..63 bytes).
 * NULL on error with *err: HF_EINVAL (errbuf gets "line N: reason"),
 * HF_ENOMEM. Caller owns the result: hf_hwsim_scenario_destroy. */
HF_EXPORT hf_hwsim_scenario_t *hf_hwsim_scenario_parse(const char *name, const char *text,
                                                       char *errbuf, size_t errlen,
                                                       hf_err_t *err);

/* Read and parse a file; the name is the file name without ".scenario".
 * Errors as parse, plus HF_ENOTFOUND (no such file), HF_EIO, HF_EINVAL
 * (larger than HF_HWSIM_SCENARIO_FILE_MAX, NUL byte). */
HF_EXPORT hf_hwsim_scenario_t *hf_hwsim_scenario_load(const char *path, char *errbuf,
                                                      size_t errlen, hf_err_t *err);

/* NULL-safe; sets *self_p to NULL. Invalidates every borrowed view. */
HF_EXPORT void hf_hwsim_scenario_destroy(hf_hwsim_scenario_t **self_p);

/* Borrowed views, valid until the scenario is destroyed. */
HF_EXPORT const char *hf_hwsim_scenario_name(const hf_hwsim_scenario_t *self);
/* The instrument; names point into self. truth_path is NULL. */
HF_EXPORT const hf_hwsim_opts_t *hf_hwsim_scenario_opts(const hf_hwsim_scenario_t *self);
/* The inline method, lines joined with '\n', for hf_method_parse. */
HF_EXPORT const char *hf_hwsim_scenario_method(const hf_hwsim_scenario_t *self);
/* Line of the first method line in the scenario file (to map method errors). */
HF_EXPORT uint32_t hf_hwsim_scenario_method_line(const hf_hwsim_scenario_t *self);
HF_EXPORT const hf_hwsim_policy_t *hf_hwsim_scenario_policy(const hf_hwsim_scenario_t *self);
HF_EXPORT uint32_t hf_hwsim_scenario_fault_count(const hf_hwsim_scenario_t *self);
/* Fault idx (since_open = 1; reason points into self), NULL if out of range. */
HF_EXPORT const hf_hwsim_fault_t *hf_hwsim_scenario_fault(const hf_hwsim_scenario_t *self,
                                                          uint32_t idx);
HF_EXPORT uint32_t hf_hwsim_scenario_expect_count(const hf_hwsim_scenario_t *self);
HF_EXPORT const hf_hwsim_expect_t *hf_hwsim_scenario_expect(const hf_hwsim_scenario_t *self,
                                                            uint32_t idx);

/* A simulator for the scenario: its instrument plus its fault schedule.
 * truth_path: NULL or a ground-truth log to open. Errors as hf_hwsim_new. */
HF_EXPORT hf_hwsim_t *hf_hwsim_new_from_scenario(const hf_hwsim_scenario_t *sc,
                                                 const char *truth_path, hf_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
