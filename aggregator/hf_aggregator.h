/* hf_aggregator.h - the aggregator service: takes engines' records over
 * ZeroMQ, commits them to its LMDB store (records and the engine's cursor
 * in one transaction, then ACK), tracks each engine's availability, and
 * answers the `holdfast` CLI on its control endpoint.
 *
 * One thread: hf_aggregator_run polls both sockets until *stop is set.
 */
#ifndef HF_AGGREGATOR_H_INCLUDED
#define HF_AGGREGATOR_H_INCLUDED

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hf_aggregator_s hf_aggregator_t;

typedef struct {
    const char *bind;      /* engines' endpoint, e.g. "tcp://127.0.0.1:5555" (required) */
    const char *control;   /* CLI endpoint, e.g. "tcp://127.0.0.1:5556" (required)      */
    const char *data_dir;  /* store directory (required)                               */
    uint32_t watchdog_ms;  /* no frame for this long: unavailable (default 3000)       */
    uint32_t max_engines;  /* sessions held at once (default 1024)                     */
    size_t store_max_bytes;/* bound on the store's map (default 64 GiB)                */
    const char *status;    /* status feed (ZeroMQ PUB), e.g. "tcp://127.0.0.1:5557";
                              NULL: none. Messages: docs/cli.md, "status feed"   */
    uint32_t command_timeout_ms; /* a command the engine has not answered in this
                                    long is answered "outcome unknown" (default 10000) */
    uint32_t max_restarts;  /* restart intensity of each task (an engine's session,
                               the control endpoint, the status feed): at most this
                               many restarts ...                   (default 10)  */
    uint32_t restart_period_ms; /* ... in this window; past it the aggregator gives
                               up: hf_aggregator_run returns HF_ESTATE (default 60000) */
    /* Security (docs/security.md). CURVE on every socket unless insecure:
     * then cert, engine_keys and operator_keys are all required. */
    const char *cert;          /* the aggregator's certificate (zcert file; its
                                  NAME_secret holds the secret key)                  */
    const char *engine_keys;   /* directory of engine public certificates, each bound
                                  to an engine id ("engine-id", else the file name)  */
    const char *operator_keys; /* directory of operator public certificates, each
                                  with "role" = operator (query, command) or reader
                                  (query only)                                        */
    bool insecure;             /* the plain mechanism: no authentication, no
                                  encryption (a WARN at open); default false         */
    /* Operations (docs/operations.md). */
    uint64_t retain_age_ms;    /* delete records older than this; 0 = keep (default) */
    size_t retain_bytes;       /* delete the oldest records while the store's live
                                  size exceeds this; 0 = no size rule (default)      */
    const char *metrics;       /* Prometheus /metrics on "HOST:PORT"; NULL = off     */
    uint32_t disk_low_pct;     /* alarm when the store's filesystem has less than
                                  this % free (default 10)                           */
} hf_aggregator_opts_t;

/* The exit code the daemon uses when the aggregator gave up on a task that
 * kept failing (docs/supervision.md): the service manager restarts it. */
#define HF_AGGREGATOR_EXIT_GAVE_UP 70

HF_EXPORT hf_aggregator_opts_t hf_aggregator_opts_default(void);
/* Open the store and bind both endpoints. NULL with *err on failure
 * (HF_EINVAL options, HF_ECORRUPT foreign store, HF_EIO bind failed). */
HF_EXPORT hf_aggregator_t *hf_aggregator_open(const hf_aggregator_opts_t *opts, hf_err_t *err);
/* The engines' endpoint as bound (a '*' port resolved); borrowed. */
HF_EXPORT const char *hf_aggregator_endpoint(const hf_aggregator_t *self);
/* The control endpoint as bound (a '*' port resolved); borrowed. */
HF_EXPORT const char *hf_aggregator_control_endpoint(const hf_aggregator_t *self);
/* The status feed's endpoint as bound, or NULL when there is none; borrowed. */
HF_EXPORT const char *hf_aggregator_status_endpoint(const hf_aggregator_t *self);
/* Serve until *stop becomes non-zero (checked at least every 100 ms):
 * HF_OK. HF_ESTATE when a task failed more often than the restart
 * intensity allows (logged: "supervisor=aggregator gave up ..."); HF_EIO
 * when polling itself failed. */
HF_EXPORT hf_err_t hf_aggregator_run(hf_aggregator_t *self, volatile sig_atomic_t *stop);
HF_EXPORT void hf_aggregator_close(hf_aggregator_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
