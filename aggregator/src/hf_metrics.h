/* hf_metrics.h - Prometheus metrics of the aggregator (private).
 *
 * Two halves, so that nothing but the router's thread ever touches the
 * sessions or the store:
 *   - hf_metrics_render(): pure; a snapshot struct in, Prometheus text
 *     exposition format (version 0.0.4) out.
 *   - hf_metrics_t: a small HTTP server (libmicrohttpd, its own thread)
 *     that serves, on GET /metrics, the text last published with
 *     hf_metrics_publish(). The router renders and publishes about once a
 *     second; a scrape never waits for the router.
 *
 * Names follow Prometheus conventions: holdfast_ prefix, _total for
 * counters, the unit in the name (_bytes, _records).
 */
#ifndef HF_METRICS_H_INCLUDED
#define HF_METRICS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_record.h"

#define HF_METRICS_ERR_MAX 16 /* hf_err_t values counted for commands */

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1];
    uint8_t available;              /* 1 connected now                       */
    uint64_t records[2];            /* records stored, per lane              */
    uint64_t bytes;                 /* wire bytes of its batches             */
    uint64_t batches;               /* BATCH frames received                 */
    uint64_t acks;                  /* ACK frames sent                       */
    uint64_t backlog[2];            /* records pending in its spool (STATUS) */
    uint8_t has_backlog;            /* backlog known                         */
    uint32_t restarts;              /* session restarts                      */
} hf_metrics_engine_t;

typedef struct {
    const hf_metrics_engine_t *engines;
    size_t nengines;
    uint64_t commands[HF_METRICS_ERR_MAX]; /* commands answered, by hf_err_t result */
    uint64_t frames_refused;        /* engine frames refused as invalid      */
    uint64_t connections_refused;   /* connections refused (authentication)  */
    uint32_t control_restarts;
    uint32_t feed_restarts;
    uint64_t store_used_bytes;      /* pages of the store file in use        */
    uint64_t store_live_bytes;      /* minus LMDB's free list                */
    uint64_t disk_free_bytes;       /* the store's filesystem                */
    uint64_t disk_size_bytes;
    uint64_t retained_records;      /* records deleted by retention, total   */
    uint64_t scrapes;               /* served so far                         */
    bool store_full;                /* a commit failed for space: paused     */
} hf_metrics_snapshot_t;

/* Write the exposition text into buf (cap bytes, NUL-terminated when cap >
 * 0). Returns the length the whole text needs, like snprintf: a return >=
 * cap means it was cut short. */
size_t hf_metrics_render(const hf_metrics_snapshot_t *s, char *buf, size_t cap);

typedef struct hf_metrics_s hf_metrics_t;

/* Serve on address "HOST:PORT" (HOST an IPv4 address; PORT 0 picks one).
 * NULL with *err: HF_EINVAL (bad address), HF_EIO (bind failed, logged). */
hf_metrics_t *hf_metrics_open(const char *address, hf_err_t *err);
/* The port bound. */
uint16_t hf_metrics_port(const hf_metrics_t *self);
/* Serve text (copied) from now on. HF_ENOMEM keeps the previous text. */
hf_err_t hf_metrics_publish(hf_metrics_t *self, const char *text, size_t len);
/* Scrapes served. Thread-safe. */
uint64_t hf_metrics_scrapes(hf_metrics_t *self);
/* Stop the server; NULL-safe, sets *self_p to NULL. */
void hf_metrics_close(hf_metrics_t **self_p);

#endif
