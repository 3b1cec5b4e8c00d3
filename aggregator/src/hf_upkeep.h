/* hf_upkeep.h - the aggregator's periodic housekeeping (private).
 *
 * Three chores the router's loop hands over once per iteration, each on its
 * own period, each bounded so ingestion never waits long:
 *   - storage watch (every 2 s): free space of the store's filesystem and
 *     the store's live size against thresholds, with hysteresis; crossing
 *     one raises or clears an alarm (returned as events: the router logs
 *     them, publishes them on the feed and shows them in status);
 *   - retention (every 10 s, again at once while a pass was cut short):
 *     hf_store_retain with the configured age and size;
 *   - metrics (every 1 s): render the snapshot the router fills and publish
 *     it to the /metrics server (hf_metrics.h).
 * Time comes in as an argument; the only I/O is statvfs and the store.
 */
#ifndef HF_UPKEEP_H_INCLUDED
#define HF_UPKEEP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_control.h"
#include "hf_metrics.h"
#include "hf_store.h"
#include "hf_time.h"

typedef struct {
    const char *data_dir;       /* the store's directory (statvfs)           */
    uint64_t retain_age_ns;     /* 0: keep records of any age                */
    size_t retain_bytes;        /* 0: no size rule                           */
    const char *metrics;        /* "HOST:PORT" or NULL: no /metrics          */
    uint32_t disk_low_pct;      /* alarm when free space < this % (default 10) */
    size_t store_max_bytes;     /* the store's bound; alarm above 90 % of it */
} hf_upkeep_opts_t;

typedef struct {
    uint32_t code;              /* HF_ALARM_CODE_DISK_LOW / _STORE_LEVEL     */
    bool raised;                /* raised now (false: cleared)               */
    char text[HF_TEXT_MAX + 1];
} hf_upkeep_alarm_t;

typedef struct hf_upkeep_s hf_upkeep_t;

/* NULL with *err: HF_EIO (metrics could not bind), HF_ENOMEM, HF_EINVAL. */
hf_upkeep_t *hf_upkeep_open(const hf_upkeep_opts_t *opts, hf_err_t *err);
void hf_upkeep_close(hf_upkeep_t **self_p);

/* Does the metrics server want a snapshot now? (once a second) */
bool hf_upkeep_metrics_due(const hf_upkeep_t *self, hf_ms_t now);
/* Publish a snapshot (the storage figures and scrapes are filled in here). */
void hf_upkeep_metrics(hf_upkeep_t *self, hf_metrics_snapshot_t *snap, hf_ms_t now);

/* Storage watch and retention, when due. Alarm changes go to out (at most
 * 2), *nout says how many. */
void hf_upkeep_tick(hf_upkeep_t *self, hf_store_t *store, hf_ms_t now, uint64_t now_wall_ns,
                    hf_upkeep_alarm_t out[2], uint32_t *nout);

/* The figures status shows. */
void hf_upkeep_storage(const hf_upkeep_t *self, hf_control_storage_t *out);

#endif
