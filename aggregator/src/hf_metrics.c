/* hf_metrics.c - Prometheus text rendering and the /metrics HTTP server.
 * See hf_metrics.h.
 *
 * Design notes:
 * - The server thread (libmicrohttpd's internal polling thread) only ever
 *   copies the last published text under a mutex; it never calls into the
 *   aggregator. A slow or hostile scraper costs a connection slot (bounded)
 *   and nothing else; idle connections time out.
 * - Rendering goes through a bounded writer that keeps counting past the
 *   end of the buffer, so the caller learns the size it needs.
 */
#include "hf_metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_log.h"

#define S_LOG "metrics"
#define S_CONN_MAX 16     /* concurrent scrapers                 */
#define S_CONN_TIMEOUT 10 /* s: an idle connection is closed      */

/* ---- rendering ---------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap;
    size_t len; /* bytes the text needs so far (may exceed cap) */
} s_w_t;

static void __attribute__((format(printf, 2, 3)))
s_printf(s_w_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = w->len < w->cap ? w->cap - w->len : 0;
    int n = vsnprintf(room ? w->buf + w->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t)n;
}

static void
s_head(s_w_t *w, const char *name, const char *type, const char *help)
{
    s_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *const k_lanes[2] = {"control", "data"};

size_t
hf_metrics_render(const hf_metrics_snapshot_t *s, char *buf, size_t cap)
{
    s_w_t w = {buf, cap, 0};
    if (buf && cap)
        buf[0] = 0;
    const hf_metrics_engine_t *e = s->engines;
    size_t n = s->engines ? s->nengines : 0;

    s_head(&w, "holdfast_engine_records_total", "counter",
           "Records stored, per engine and lane.");
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < 2; l++)
            s_printf(&w, "holdfast_engine_records_total{engine=\"%s\",lane=\"%s\"} %llu\n",
                     e[i].engine, k_lanes[l], (unsigned long long)e[i].records[l]);
    s_head(&w, "holdfast_engine_received_bytes_total", "counter",
           "Bytes of BATCH frames received, per engine.");
    for (size_t i = 0; i < n; i++)
        s_printf(&w, "holdfast_engine_received_bytes_total{engine=\"%s\"} %llu\n", e[i].engine,
                 (unsigned long long)e[i].bytes);
    s_head(&w, "holdfast_engine_batches_total", "counter", "BATCH frames received, per engine.");
    for (size_t i = 0; i < n; i++)
        s_printf(&w, "holdfast_engine_batches_total{engine=\"%s\"} %llu\n", e[i].engine,
                 (unsigned long long)e[i].batches);
    s_head(&w, "holdfast_engine_acks_total", "counter",
           "ACK frames sent (each after a durable commit), per engine.");
    for (size_t i = 0; i < n; i++)
        s_printf(&w, "holdfast_engine_acks_total{engine=\"%s\"} %llu\n", e[i].engine,
                 (unsigned long long)e[i].acks);
    s_head(&w, "holdfast_engine_available", "gauge", "1 if the engine is connected now.");
    for (size_t i = 0; i < n; i++)
        s_printf(&w, "holdfast_engine_available{engine=\"%s\"} %u\n", e[i].engine,
                 e[i].available ? 1u : 0u);
    s_head(&w, "holdfast_engine_backlog_records", "gauge",
           "Records waiting in the engine's spool (its last STATUS), per lane.");
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < 2 && e[i].has_backlog; l++)
            s_printf(&w, "holdfast_engine_backlog_records{engine=\"%s\",lane=\"%s\"} %llu\n",
                     e[i].engine, k_lanes[l], (unsigned long long)e[i].backlog[l]);
    s_head(&w, "holdfast_restarts_total", "counter",
           "Restarts of supervised tasks (an engine's session, control, feed).");
    for (size_t i = 0; i < n; i++)
        s_printf(&w, "holdfast_restarts_total{task=\"session:%s\"} %u\n", e[i].engine,
                 e[i].restarts);
    s_printf(&w, "holdfast_restarts_total{task=\"control\"} %u\n", s->control_restarts);
    s_printf(&w, "holdfast_restarts_total{task=\"feed\"} %u\n", s->feed_restarts);
    s_head(&w, "holdfast_commands_total", "counter", "Commands answered, by result.");
    for (int r = 0; r < HF_METRICS_ERR_MAX; r++)
        if (s->commands[r] || r == HF_OK)
            s_printf(&w, "holdfast_commands_total{result=\"%s\"} %llu\n",
                     hf_errname((hf_err_t)r), (unsigned long long)s->commands[r]);
    s_head(&w, "holdfast_refused_total", "counter", "Frames and connections refused.");
    s_printf(&w, "holdfast_refused_total{what=\"frame\"} %llu\n",
             (unsigned long long)s->frames_refused);
    s_printf(&w, "holdfast_refused_total{what=\"connection\"} %llu\n",
             (unsigned long long)s->connections_refused);
    s_head(&w, "holdfast_store_used_bytes", "gauge", "Bytes of the store file in use.");
    s_printf(&w, "holdfast_store_used_bytes %llu\n", (unsigned long long)s->store_used_bytes);
    s_head(&w, "holdfast_store_full", "gauge",
           "1 while the store cannot be written for lack of space (ingestion paused).");
    s_printf(&w, "holdfast_store_full %d\n", s->store_full ? 1 : 0);
    s_head(&w, "holdfast_store_live_bytes", "gauge",
           "Bytes of the store in use, minus pages free for reuse.");
    s_printf(&w, "holdfast_store_live_bytes %llu\n", (unsigned long long)s->store_live_bytes);
    s_head(&w, "holdfast_disk_free_bytes", "gauge", "Free bytes on the store's filesystem.");
    s_printf(&w, "holdfast_disk_free_bytes %llu\n", (unsigned long long)s->disk_free_bytes);
    s_head(&w, "holdfast_disk_size_bytes", "gauge", "Size of the store's filesystem.");
    s_printf(&w, "holdfast_disk_size_bytes %llu\n", (unsigned long long)s->disk_size_bytes);
    s_head(&w, "holdfast_retention_deleted_records_total", "counter",
           "Records deleted by the retention rules.");
    s_printf(&w, "holdfast_retention_deleted_records_total %llu\n",
             (unsigned long long)s->retained_records);
    s_head(&w, "holdfast_metrics_scrapes_total", "counter", "Scrapes of this endpoint.");
    s_printf(&w, "holdfast_metrics_scrapes_total %llu\n", (unsigned long long)s->scrapes);
    return w.len;
}

/* ---- the server ------------------------------------------------------------------ */

struct hf_metrics_s {
    struct MHD_Daemon *mhd;
    pthread_mutex_t mu;
    char *text;          /* last published, owned; under mu */
    size_t len;
    uint64_t scrapes;    /* under mu */
    uint16_t port;
};

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *upload, size_t *upload_len, void **req_cls)
{
    (void)version;
    (void)upload;
    (void)upload_len;
    (void)req_cls;
    hf_metrics_t *self = cls;
    struct MHD_Response *resp;
    unsigned status;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        resp = MHD_create_response_from_buffer(strlen("method not allowed\n"),
                                               (void *)"method not allowed\n",
                                               MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else if (strcmp(url, "/metrics") != 0) {
        resp = MHD_create_response_from_buffer(strlen("not found: try /metrics\n"),
                                               (void *)"not found: try /metrics\n",
                                               MHD_RESPMEM_PERSISTENT);
        status = MHD_HTTP_NOT_FOUND;
    } else {
        pthread_mutex_lock(&self->mu);
        resp = MHD_create_response_from_buffer(self->len, self->text ? self->text : (char *)"",
                                               MHD_RESPMEM_MUST_COPY);
        self->scrapes++;
        pthread_mutex_unlock(&self->mu);
        status = MHD_HTTP_OK;
        if (resp)
            MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4");
    }
    if (!resp)
        return MHD_NO;
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

hf_metrics_t *
hf_metrics_open(const char *address, hf_err_t *err)
{
    hf_err_t rc = HF_EINVAL;
    hf_metrics_t *self = NULL;
    char host[64];
    unsigned port = 0;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    const char *colon = address ? strrchr(address, ':') : NULL;
    if (!colon || (size_t)(colon - address) >= sizeof host ||
        sscanf(colon + 1, "%u", &port) != 1 || port > 65535) {
        hf_log_error(S_LOG, "invalid address '%s': expected HOST:PORT", address ? address : "");
        goto fail;
    }
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = 0;
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        hf_log_error(S_LOG, "invalid address '%s': HOST must be an IPv4 address", address);
        goto fail;
    }
    sa.sin_port = htons((uint16_t)port);
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    pthread_mutex_init(&self->mu, NULL);
    self->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL, NULL,
                                 s_handle, self, MHD_OPTION_SOCK_ADDR, &sa,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)S_CONN_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)S_CONN_TIMEOUT,
                                 MHD_OPTION_END);
    if (!self->mhd) {
        hf_log_error(S_LOG, "cannot serve metrics on %s (address in use?)", address);
        rc = HF_EIO;
        pthread_mutex_destroy(&self->mu);
        free(self);
        self = NULL;
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->mhd, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : (uint16_t)port;
    hf_log_info(S_LOG, "metrics on http://%s:%u/metrics", host[0] ? host : "0.0.0.0", self->port);
    if (err)
        *err = HF_OK;
    return self;
fail:
    if (err)
        *err = rc;
    return NULL;
}

uint16_t
hf_metrics_port(const hf_metrics_t *self)
{
    return self->port;
}

hf_err_t
hf_metrics_publish(hf_metrics_t *self, const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return HF_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = 0;
    pthread_mutex_lock(&self->mu);
    char *old = self->text;
    self->text = copy;
    self->len = len;
    pthread_mutex_unlock(&self->mu);
    free(old);
    return HF_OK;
}

uint64_t
hf_metrics_scrapes(hf_metrics_t *self)
{
    pthread_mutex_lock(&self->mu);
    uint64_t n = self->scrapes;
    pthread_mutex_unlock(&self->mu);
    return n;
}

void
hf_metrics_close(hf_metrics_t **self_p)
{
    hf_metrics_t *self = *self_p;
    if (!self)
        return;
    MHD_stop_daemon(self->mhd);
    pthread_mutex_destroy(&self->mu);
    free(self->text);
    free(self);
    *self_p = NULL;
}
