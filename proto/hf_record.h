/* hf_record.h - the records that flow from an engine to the aggregator.
 *
 * Every record has a lane, a sequence number (strictly increasing per spool
 * epoch and lane, assigned by the spool, never reused), two timestamps and a
 * kind. Records are plain values (no pointers): they are copied freely.
 *
 * Lanes: events, alarms, hw_errors and gaps travel in the control lane;
 * samples in the data lane. hf_record_lane_of() is the only place that
 * decides which.
 */
#ifndef HF_RECORD_H_INCLUDED
#define HF_RECORD_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_ENGINE_ID_MAX 64 /* bytes, without the NUL; [A-Za-z0-9._-]+ */
#define HF_TEXT_MAX 120     /* bytes of free text in a record, without NUL */

typedef enum {
    HF_LANE_CONTROL = 0,
    HF_LANE_DATA = 1,
} hf_lane_t;
#define HF_LANE_COUNT 2

typedef enum {
    HF_KIND_SAMPLE = 1,   /* data lane: one channel value                  */
    HF_KIND_EVENT = 2,    /* control lane: run lifecycle                   */
    HF_KIND_ALARM = 3,    /* control lane: raised / cleared                */
    HF_KIND_HW_ERROR = 4, /* control lane: a classified hardware error     */
    HF_KIND_GAP = 5,      /* control lane: a deliberate, announced drop    */
    HF_KIND_COMMAND = 6,  /* control lane: the outcome of a command        */
} hf_kind_t;
#define HF_KIND_MAX 6

/* Commands an operator sends an engine (docs/commands.md). */
typedef enum {
    HF_CMD_START = 1,  /* name: method name; body: method text (optional) */
    HF_CMD_PAUSE = 2,
    HF_CMD_RESUME = 3,
    HF_CMD_ABORT = 4,
    HF_CMD_SET = 5,    /* name: actuator; value                         */
} hf_command_verb_t;
#define HF_CMD_MAX 5
HF_EXPORT const char *hf_command_verb_name(uint8_t verb); /* "start", ... or "?" */
/* "start", ... -> HF_OK and *out; else HF_EINVAL. */
HF_EXPORT hf_err_t hf_command_verb_parse(const char *s, uint8_t *out);

typedef enum {
    HF_EV_RUN_STARTED = 1, /* text: method name; channel names follow in HF_EV_CHANNELS */
    HF_EV_STEP = 2,        /* step index in .step, text: the step           */
    HF_EV_PAUSED = 3,
    HF_EV_RESUMED = 4,
    HF_EV_COMPLETED = 5,
    HF_EV_FAILED = 6,
    HF_EV_ABORTED = 7,
    HF_EV_INTERRUPTED = 8,
    HF_EV_CHANNELS = 9, /* text: comma-separated channel names, index order */
} hf_event_type_t;
#define HF_EV_MAX 9

/* Engine-side run states (also carried in HELLO and kept by the aggregator). */
typedef enum {
    HF_RUN_IDLE = 0,
    HF_RUN_RUNNING = 1,
    HF_RUN_PAUSED = 2,
    HF_RUN_COMPLETED = 3,
    HF_RUN_FAILED = 4,
    HF_RUN_ABORTED = 5,
    HF_RUN_INTERRUPTED = 6,
} hf_run_state_t;
#define HF_RUN_STATE_MAX 6
HF_EXPORT const char *hf_run_state_name(uint8_t state); /* "idle", ... or "?" */

typedef enum {
    HF_ALARM_INFO = 0,
    HF_ALARM_WARNING = 1,
    HF_ALARM_CRITICAL = 2,
} hf_alarm_severity_t;

/* Alarm codes raised by Holdfast itself (1000..1999; instruments use others). */
#define HF_ALARM_CODE_SPOOL_FULL 1001 /* spool at its bound: samples dropped */
#define HF_ALARM_CODE_DEVICE_LOST 1002  /* warning: device link lost, run paused   */
#define HF_ALARM_CODE_DEVICE_FATAL 1003 /* critical: device fault, run interrupted */
#define HF_ALARM_CODE_DISK_LOW 1004     /* warning: the spool's / store's filesystem is
                                           nearly full                             */
#define HF_ALARM_CODE_SPOOL_LEVEL 1005  /* warning: the spool is filling up (a long
                                           outage): it will reach its bound        */
#define HF_ALARM_CODE_STORE_LEVEL 1006  /* warning: the aggregator's store nears its
                                           bound (retention or more space needed)  */
#define HF_ALARM_CODE_STORE_FULL 1007   /* critical: the aggregator's store cannot be
                                           written (disk full, or the map at its
                                           bound): ingestion paused, nothing acked */

typedef struct {
    uint64_t seq;     /* per (epoch, lane); 0 until the spool assigns one  */
    uint64_t ts_ns;   /* engine wall clock, ns since 1970                  */
    uint64_t mono_ns; /* engine monotonic clock, ns                        */
    uint64_t run;     /* run id, 0 = outside any run                       */
    uint8_t kind;     /* hf_kind_t                                         */
    uint8_t lane;     /* hf_lane_t; set by hf_record_lane_of(kind)         */
    union {
        struct {
            uint32_t channel; /* index into the run's channel list        */
            double value;     /* in the channel's unit                    */
        } sample;
        struct {
            uint8_t type;                /* hf_event_type_t               */
            uint32_t step;               /* method step index             */
            char text[HF_TEXT_MAX + 1];  /* NUL-terminated                */
        } event;
        struct {
            uint8_t raised;              /* 1 raised, 0 cleared           */
            uint8_t severity;            /* hf_alarm_severity_t           */
            uint32_t code;               /* alarm code                    */
            char text[HF_TEXT_MAX + 1];
        } alarm;
        struct {
            uint8_t cls;                 /* hf_hal_class_t value          */
            uint32_t device;
            uint32_t channel;
            int32_t code;                /* driver-specific code          */
            char text[HF_TEXT_MAX + 1];
        } hw_error;
        struct {
            uint8_t lane;                /* lane whose records were dropped */
            uint64_t first;              /* first dropped seq             */
            uint64_t last;               /* last dropped seq (inclusive)  */
            uint64_t count;              /* records dropped in the range  */
            uint8_t reason;              /* 1 decimate, 2 drop-oldest     */
        } gap;
        struct {
            uint64_t id;                 /* the command's id (aggregator's) */
            uint8_t verb;                /* hf_command_verb_t             */
            int32_t result;              /* hf_err_t: HF_OK or why not    */
            char text[HF_TEXT_MAX + 1];  /* what was done, or the reason  */
        } command;
    } u;
} hf_record_t;

/* The lane a kind travels in. */
HF_EXPORT hf_lane_t hf_record_lane_of(uint8_t kind);
HF_EXPORT const char *hf_kind_name(uint8_t kind);       /* "sample", ... or "?" */
HF_EXPORT const char *hf_event_name(uint8_t type);      /* "run_started", ... or "?" */
HF_EXPORT const char *hf_lane_name(uint8_t lane);       /* "control" / "data" / "?" */

/* Helpers that fill a record (seq 0, lane set from the kind). Text is
 * truncated to HF_TEXT_MAX bytes. */
HF_EXPORT void hf_record_sample(hf_record_t *r, uint64_t run, uint64_t ts_ns, uint64_t mono_ns,
                                uint32_t channel, double value);
HF_EXPORT void hf_record_event(hf_record_t *r, uint64_t run, uint64_t ts_ns, uint64_t mono_ns,
                               hf_event_type_t type, uint32_t step, const char *text);

/* An engine id is 1..HF_ENGINE_ID_MAX bytes of [A-Za-z0-9._-]. */
HF_EXPORT int hf_engine_id_valid(const char *id);

#ifdef __cplusplus
}
#endif
#endif
