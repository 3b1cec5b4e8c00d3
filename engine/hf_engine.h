/* hf_engine.h - the engine library: methods and the run state machine.
 *
 * A method (hf_method_t) is a parsed, immutable list of steps read from a
 * line-based text file (docs/methods.md). A run (hf_run_t) executes one
 * method against one instrument (hf_hal_t) and sends what happens as
 * records to one outbound channel (hf_channel_t). The engine library sees
 * nothing else: no dispatcher, no sockets, no clock.
 *
 * The run is a state machine driven by time passed in (sans-I/O):
 *
 *   IDLE --start--> RUNNING --last step ends--> COMPLETED
 *                   RUNNING <--pause/resume--> PAUSED
 *                   RUNNING|PAUSED --abort--> ABORTED
 *                   RUNNING|PAUSED --interrupt--> INTERRUPTED
 *                   RUNNING --device disconnected--> PAUSED (device lost)
 *                             --reopened--> RUNNING, or --grace over--> INTERRUPTED
 *                   RUNNING --hal fatal, or a write that keeps failing--> INTERRUPTED
 *                   RUNNING --wait-until timed out--> FAILED
 *
 * RUNNING guarantees: every sample on a channel's grid up to the last tick
 * time was taken or counted as missed; actuators hold the value the method
 * prescribes at the last tick time. Terminal states are sticky: every later
 * start/tick returns HF_ESTATE, abort returns HF_ESTATE.
 *
 * Thread-safety: a method may be shared read-only by any number of threads
 * once parsed; a run belongs to one thread.
 */
#ifndef HF_ENGINE_H_INCLUDED
#define HF_ENGINE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_channel.h"
#include "hf_err.h"
#include "hf_hal.h"
#include "hf_proto.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- methods ------------------------------------------------------------- */

#define HF_METHOD_MAX_STEPS 256      /* steps per method                       */
#define HF_METHOD_MAX_CHANNELS 32    /* distinct sampled channels per method   */
#define HF_METHOD_LINE_MAX 200       /* bytes per line, without the newline    */
#define HF_METHOD_NAME_MAX 63        /* bytes of a method/channel/actuator name */
#define HF_METHOD_FILE_MAX (1 << 20) /* bytes per method file                  */
#define HF_METHOD_RATE_MAX 10000.0   /* Hz                                     */
#define HF_METHOD_DURATION_MAX_NS (30ull * 24 * 3600 * 1000000000ull) /* 30 days */
#define HF_METHOD_ERR_MAX 256        /* a useful size for error buffers        */

typedef enum {
    HF_STEP_SAMPLE = 1, /* sample CH[,CH...] RATE_HZ  */
    HF_STEP_SET = 2,    /* set ACTUATOR VALUE         */
    HF_STEP_RAMP = 3,   /* ramp ACTUATOR TARGET DURATION */
    HF_STEP_HOLD = 4,   /* hold DURATION              */
    HF_STEP_WAIT_UNTIL = 5, /* wait-until CHANNEL OP VALUE TIMEOUT */
} hf_step_kind_t;

/* The comparison of a wait-until step: CHANNEL OP VALUE. */
typedef enum {
    HF_WAIT_LT = 1, /* <  */
    HF_WAIT_LE = 2, /* <= */
    HF_WAIT_GT = 3, /* >  */
    HF_WAIT_GE = 4, /* >= */
    HF_WAIT_EQ = 5, /* == */
    HF_WAIT_NE = 6, /* != */
} hf_wait_op_t;

typedef struct {
    hf_step_kind_t kind;
    uint32_t line;                          /* 1-based line in the source   */
    char text[HF_METHOD_LINE_MAX + 1];      /* the step, whitespace-normalised */
    char actuator[HF_METHOD_NAME_MAX + 1];  /* SET, RAMP                    */
    double value;                           /* SET value, RAMP target,
                                               WAIT_UNTIL threshold         */
    uint64_t duration_ns;                   /* ns: RAMP, HOLD; WAIT_UNTIL
                                               timeout; > 0                 */
    double rate_hz;                         /* Hz: SAMPLE                   */
    uint32_t first_channel;                 /* SAMPLE: index into the method's channel list */
    uint32_t channel_count;                 /* SAMPLE: channels in this step */
    char channel[HF_METHOD_NAME_MAX + 1];   /* WAIT_UNTIL: the channel polled */
    uint8_t op;                             /* WAIT_UNTIL: hf_wait_op_t     */
} hf_step_t;

typedef struct hf_method_s hf_method_t;

/* Parse method text. name is the method's name (truncated to
 * HF_METHOD_NAME_MAX). NULL on error with *err: HF_EINVAL (the text is
 * invalid: errbuf gets "line N: reason"), HF_ENOMEM. errbuf may be NULL;
 * otherwise it always receives a NUL-terminated string ("" on success).
 * text is only read during the call. */
HF_EXPORT hf_method_t *hf_method_parse(const char *name, const char *text, char *errbuf,
                                       size_t errlen, hf_err_t *err);

/* Read and parse a file; the name is the file's basename without a
 * ".method" suffix. Errors as hf_method_parse, plus HF_ENOTFOUND / HF_EIO
 * (unreadable: errbuf names the path and the reason) and HF_EINVAL for a
 * file over HF_METHOD_FILE_MAX or containing a NUL byte. */
HF_EXPORT hf_method_t *hf_method_load(const char *path, char *errbuf, size_t errlen,
                                      hf_err_t *err);

/* NULL-safe; sets *self_p to NULL. No run may still use the method. */
HF_EXPORT void hf_method_destroy(hf_method_t **self_p);

HF_EXPORT const char *hf_method_name(const hf_method_t *self); /* borrowed */
HF_EXPORT uint32_t hf_method_step_count(const hf_method_t *self);
/* Borrowed, valid as long as the method; NULL if idx is out of range. */
HF_EXPORT const hf_step_t *hf_method_step(const hf_method_t *self, uint32_t idx);
/* The sampled channels, in order of first appearance: this is the run's
 * channel list (HF_EV_CHANNELS, sample.channel). */
HF_EXPORT uint32_t hf_method_channel_count(const hf_method_t *self);
HF_EXPORT const char *hf_method_channel_name(const hf_method_t *self, uint32_t idx);
/* Scheduled length of the method: the sum of ramp and hold durations
 * (wait-until steps are not included: they last as long as they wait). */
HF_EXPORT uint64_t hf_method_duration_ns(const hf_method_t *self);

/* Names resolved against one instrument. A plain value. */
typedef struct {
    uint32_t channel[HF_METHOD_MAX_CHANNELS]; /* hal channel index per method channel */
    uint32_t actuator[HF_METHOD_MAX_STEPS];   /* hal actuator index per SET/RAMP step */
    uint32_t wait_channel[HF_METHOD_MAX_STEPS]; /* hal channel index per WAIT_UNTIL step */
} hf_method_binding_t;

/* Resolve every channel and actuator name of the method on hal. HF_OK, or
 * HF_ENOTFOUND with errbuf "line N: unknown channel 'x'" (or actuator). */
HF_EXPORT hf_err_t hf_method_bind(const hf_method_t *self, const hf_hal_t *hal,
                                  hf_method_binding_t *out, char *errbuf, size_t errlen);

/* ---- runs ---------------------------------------------------------------- */

#define HF_RUN_NEVER UINT64_MAX /* no further deadline */

/* What a run does about hardware errors, per class (docs/hardware-errors.md).
 * The retry counts themselves are hf_run_opts_t.read_retries/write_retries.
 *   transient, timeout  retried: reads after a backoff (never past the next
 *                       grid point), writes at once; a grid point whose
 *                       retries all fail is counted missed; a write whose
 *                       retries all fail interrupts the run
 *   disconnected        alarm HF_ALARM_CODE_DEVICE_LOST, run paused, the
 *                       device reopened with backoff; back: alarm cleared,
 *                       run resumed; not back within the grace: interrupted
 *   fatal               alarm HF_ALARM_CODE_DEVICE_FATAL, run interrupted,
 *                       every actuator with a safe value driven to it
 * Every failed call is counted; hw_error records are rate-limited per
 * (operation, channel, class): at most one per report_interval_ns, the
 * failures in between are summed into the next record of that key. */
typedef struct {
    uint64_t retry_backoff_ns;      /* ns: delay before a read's first retry, doubling
                                       after; 0 = retry at once; default 1 ms           */
    uint64_t retry_backoff_cap_ns;  /* ns: cap on one retry delay, default 100 ms       */
    uint64_t disconnect_grace_ns;   /* ns: how long a run stays paused for a lost device
                                       before it is interrupted, default 5 s            */
    uint64_t reopen_backoff_ns;     /* ns: first reopen attempt after a disconnect,
                                       doubling after; default 100 ms; > 0              */
    uint64_t reopen_backoff_cap_ns; /* ns: cap on the reopen delay, default 1 s         */
    uint64_t report_interval_ns;    /* ns: at most one hw_error record per key per
                                       interval; 0 = a record per failure; default 1 s  */
    int safe_state;                 /* 1: drive actuators to their safe values when the
                                       device fails (fatal, a write that keeps failing);
                                       default 1                                        */
    const double *safe_values;      /* borrowed, must outlive the run: safe value per hal
                                       actuator index, NAN = none; NULL = no table     */
    uint32_t safe_count;            /* entries in safe_values                           */
} hf_hal_policy_t;

HF_EXPORT hf_hal_policy_t hf_hal_policy_default(void);

typedef struct {
    uint32_t read_retries;      /* extra attempts after a transient/timeout read error, default 3 */
    uint32_t write_retries;     /* same for actuator writes, default 3                   */
    uint64_t ramp_update_ns;    /* ns between actuator writes during a ramp, default 10 ms */
    uint32_t max_records_per_tick; /* bound on work per tick; the rest is due at once,
                                      default 100000                                    */
    hf_hal_policy_t hal;        /* hardware error policy                                 */
    uint64_t wait_poll_ns;      /* ns between reads of a wait-until step, default 10 ms  */
} hf_run_opts_t;

HF_EXPORT hf_run_opts_t hf_run_opts_default(void);

typedef struct {
    uint64_t samples;      /* samples read and sent                                   */
    uint64_t late;         /* of those, taken more than one period after their time  */
    uint64_t missed;       /* grid points with no value (read kept failing)           */
    uint64_t hw_errors;    /* hw_error records emitted                                */
    uint64_t send_errors;  /* records the channel refused (not retried)               */
    uint32_t step;         /* index of the current step (step count once finished)    */
    uint64_t paused_ns;    /* ns spent paused                                         */
    uint64_t hw_faults;    /* failed hal calls (every attempt, every class)           */
    uint64_t hw_suppressed; /* of those, reported only as a count in a later record:
                              hw_faults = records' own failures + hw_suppressed      */
    uint64_t retries;      /* retry attempts of transient/timeout reads and writes    */
    uint64_t reopens;      /* device open attempts after a disconnect                 */
    uint64_t safe_writes;  /* actuators driven to their safe value                    */
} hf_run_counters_t;

typedef struct hf_run_s hf_run_t;

/* Make a run of method on hal, sending to channel, with id run_id (> 0).
 * method, hal and channel are borrowed and must outlive the run. The hal
 * must be open before hf_run_start. opts may be NULL (defaults).
 * NULL on error with *err: HF_EINVAL (bad opts or run_id 0), HF_ENOTFOUND
 * (a name is not on the instrument: errbuf says which, with its line),
 * HF_ENOMEM. */
HF_EXPORT hf_run_t *hf_run_new(const hf_method_t *method, const hf_hal_t *hal,
                               hf_channel_t *channel, uint64_t run_id, const hf_run_opts_t *opts,
                               char *errbuf, size_t errlen, hf_err_t *err);

/* NULL-safe; sets *self_p to NULL. Does not touch the hal or the channel. */
HF_EXPORT void hf_run_destroy(hf_run_t **self_p);

/* IDLE -> RUNNING at mono_ns; wall_ns is the wall clock at that instant.
 * Every record's ts_ns is wall_ns + (its mono_ns - mono_ns). Emits
 * HF_EV_RUN_STARTED and HF_EV_CHANNELS. The first step runs at the next
 * tick. HF_ESTATE if not IDLE; else HF_OK or the channel's send error
 * (the run is RUNNING either way). */
HF_EXPORT hf_err_t hf_run_start(hf_run_t *self, uint64_t mono_ns, uint64_t wall_ns);

/* Do everything due at or before mono_ns, in time order: step actions,
 * ramp writes, wait-until polls, samples and read retries (each with its
 * scheduled time as mono_ns, samples with their grid time), hw_error
 * summaries, reopen attempts, completion. Hardware errors are handled per
 * hf_hal_policy_t (the run may pause, fail or be interrupted here).
 * *next_mono_ns (may be NULL) gets the time of the next thing due,
 * HF_RUN_NEVER once the run has ended, or mono_ns itself when the per-tick
 * bound left work over. HF_ESTATE if neither RUNNING nor PAUSED; otherwise
 * HF_OK, or the first send error met (the run goes on; see counters).
 * Never allocates. */
HF_EXPORT hf_err_t hf_run_tick(hf_run_t *self, uint64_t mono_ns, uint64_t *next_mono_ns);
/* PAUSED: HF_OK; no sample or write; a run paused for a lost device makes
 * its reopen attempts (and resumes, or is interrupted at the end of the
 * grace); suppressed hw_error counts are summarised at their deadlines.
 * *next_mono_ns is the next such deadline (HF_RUN_NEVER if none). */

/* RUNNING|PAUSED -> ABORTED at mono_ns: emits HF_EV_ABORTED (always works,
 * also while the run waits for a lost device). Nothing
 * further is sampled or written. HF_ESTATE otherwise. */
HF_EXPORT hf_err_t hf_run_abort(hf_run_t *self, uint64_t mono_ns);

/* RUNNING -> PAUSED at mono_ns: first does everything due up to mono_ns
 * (as tick), then emits HF_EV_PAUSED with reason (NULL: "paused"). While
 * paused, tick does nothing (HF_OK, next HF_RUN_NEVER): no sample is due,
 * none is late or missed, actuators keep their last value. HF_ESTATE if
 * not RUNNING, or if the run ended while catching up. */
HF_EXPORT hf_err_t hf_run_pause(hf_run_t *self, uint64_t mono_ns, const char *reason);

/* PAUSED -> RUNNING at mono_ns: every pending deadline moves later by the
 * time paused; emits HF_EV_RESUMED with reason (NULL: "resumed").
 * HF_ESTATE if not PAUSED, or if the run is paused because the device is
 * lost (hf_run_device_lost): it resumes by itself when the device is back;
 * abort or interrupt it to stop waiting. */
HF_EXPORT hf_err_t hf_run_resume(hf_run_t *self, uint64_t mono_ns, const char *reason);

/* RUNNING|PAUSED -> INTERRUPTED at mono_ns: emits HF_EV_INTERRUPTED with
 * reason (the engine gave up, e.g. a device that did not come back).
 * HF_ESTATE otherwise. */
HF_EXPORT hf_err_t hf_run_interrupt(hf_run_t *self, uint64_t mono_ns, const char *reason);

/* 1 while the run is paused because the device link is lost (it reopens the
 * device at its deadlines and resumes by itself), else 0. */
HF_EXPORT int hf_run_device_lost(const hf_run_t *self);

HF_EXPORT hf_run_state_t hf_run_state(const hf_run_t *self);
HF_EXPORT uint64_t hf_run_id(const hf_run_t *self);
HF_EXPORT void hf_run_counters(const hf_run_t *self, hf_run_counters_t *out);

/* ---- the controller: one instrument, one run at a time, commands ---------- */

/* The engine's command handler (docs/commands.md). It owns the current
 * run and its method, and carries out operators' commands against them:
 *
 *   START name [method text]  idle (or the last run ended): load the
 *                             method (the text if given, else
 *                             methods_dir/NAME.method), start a run
 *   PAUSE / RESUME            the running / paused run
 *   ABORT                     the running or paused run
 *   SET actuator value        write the actuator; refused while a run is
 *                             running (the method drives the actuators)
 *
 * Every command is answered with exactly one COMMAND record on the channel
 * (control lane, so it is durable and reaches the aggregator whatever the
 * link does): result HF_OK and what was done, or the error and the reason.
 * A command id seen before is not carried out again (at most once); it is
 * answered HF_EPROTO "duplicate command id". Records a command causes (the
 * run's events) go out before its COMMAND record.
 *
 * Sans-I/O like the run: time comes in as arguments. The only I/O is
 * reading a method file for START by name.
 */
typedef struct hf_controller_s hf_controller_t;

typedef struct {
    const char *methods_dir;   /* START by name reads DIR/NAME.method; NULL:
                                  only methods sent with the command      */
    hf_run_opts_t run;         /* for every run                           */
} hf_controller_opts_t;

HF_EXPORT hf_controller_opts_t hf_controller_opts_default(void);

/* hal (open) and channel are borrowed and must outlive the controller;
 * opts is copied (methods_dir too). NULL on error with *err (HF_ENOMEM,
 * HF_EINVAL). */
HF_EXPORT hf_controller_t *hf_controller_new(const hf_hal_t *hal, hf_channel_t *channel,
                                             const hf_controller_opts_t *opts, hf_err_t *err);

/* NULL-safe; sets *self_p to NULL. Destroys the run and method it owns. */
HF_EXPORT void hf_controller_destroy(hf_controller_t **self_p);

/* Start a run of method (ownership passes to the controller, even on
 * error) at mono_ns / wall_ns. Run ids increase strictly: wall_ns, or one
 * more than the last run's id. HF_ESTATE if a run is running or paused;
 * HF_ENOTFOUND if the method names something the instrument lacks (errbuf
 * says what); else HF_OK or the channel's send error. */
HF_EXPORT hf_err_t hf_controller_start(hf_controller_t *self, hf_method_t *method,
                                       uint64_t mono_ns, uint64_t wall_ns, char *errbuf,
                                       size_t errlen);

/* Carry out cmd at mono_ns / wall_ns and send its COMMAND record. Returns
 * the command's result (what the record says); the record's send error is
 * counted in the run's counters and logged, not returned. */
HF_EXPORT hf_err_t hf_controller_command(hf_controller_t *self, const hf_command_t *cmd,
                                         uint64_t mono_ns, uint64_t wall_ns);

/* Run ids never go back: the next run's id will be above last (e.g. the id
 * of the last run a previous process started, kept by the daemon), even if
 * the wall clock stepped back since. */
HF_EXPORT void hf_controller_seed_run_id(hf_controller_t *self, uint64_t last);

/* Tick the current run (see hf_run_tick). With no run, or an ended one:
 * HF_OK and *next_mono_ns HF_RUN_NEVER. */
HF_EXPORT hf_err_t hf_controller_tick(hf_controller_t *self, uint64_t mono_ns,
                                      uint64_t *next_mono_ns);

/* Abort the current run if it is running or paused (signal, shutdown). */
HF_EXPORT hf_err_t hf_controller_abort(hf_controller_t *self, uint64_t mono_ns);

/* The current (or last) run: NULL before the first start. Borrowed. */
HF_EXPORT const hf_run_t *hf_controller_run(const hf_controller_t *self);
/* The current run's state, HF_RUN_IDLE before the first start. */
HF_EXPORT hf_run_state_t hf_controller_state(const hf_controller_t *self);
/* Commands carried out (any result) and refused as duplicates. */
HF_EXPORT uint64_t hf_controller_commands(const hf_controller_t *self);

#ifdef __cplusplus
}
#endif
#endif
