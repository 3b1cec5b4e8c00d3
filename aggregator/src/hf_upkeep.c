/* hf_upkeep.c - the aggregator's periodic housekeeping. See hf_upkeep.h.
 *
 * Design notes:
 * - Thresholds have hysteresis (raise below disk_low_pct free, clear above
 *   disk_low_pct + 2; store alarm above 90 % of its bound, clear below 85 %)
 *   so a level hovering at the line does not flap the alarm.
 * - Retention runs every 10 s; a pass cut short by its per-call bound runs
 *   again on the next loop iteration (each pass is one bounded transaction,
 *   so engines' commits interleave with it).
 */
#include "hf_upkeep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "hf_log.h"

#define S_LOG "upkeep"
#define S_STORAGE_MS 2000
#define S_RETAIN_MS 10000
#define S_METRICS_MS 1000
#define S_TEXT_MAX (4u << 20) /* bytes of metrics text */

struct hf_upkeep_s {
    hf_upkeep_opts_t opts;
    char *data_dir;              /* owned copy                         */
    hf_metrics_t *metrics;       /* NULL when not asked for            */
    char *text;                  /* S_TEXT_MAX: rendering buffer       */
    hf_ms_t storage_at, retain_at, metrics_at; /* ms: next due         */
    bool retain_more;            /* the last pass was cut short        */
    hf_control_storage_t st;     /* figures and alarm states           */
};

hf_upkeep_t *
hf_upkeep_open(const hf_upkeep_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_ENOMEM;
    hf_upkeep_t *self = calloc(1, sizeof *self);
    if (!self || !opts || !opts->data_dir)
        goto fail;
    self->opts = *opts;
    if (!self->opts.disk_low_pct)
        self->opts.disk_low_pct = 10;
    if (self->opts.disk_low_pct > 90) {
        rc = HF_EINVAL;
        goto fail;
    }
    self->data_dir = strdup(opts->data_dir);
    if (!self->data_dir)
        goto fail;
    self->opts.data_dir = self->data_dir;
    self->st.store_max_bytes = opts->store_max_bytes;
    if (opts->metrics) {
        self->text = malloc(S_TEXT_MAX);
        if (!self->text)
            goto fail;
        self->metrics = hf_metrics_open(opts->metrics, &rc);
        if (!self->metrics)
            goto fail;
    }
    self->opts.metrics = NULL; /* not ours to keep */
    if (err)
        *err = HF_OK;
    return self;
fail:
    hf_upkeep_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_upkeep_close(hf_upkeep_t **self_p)
{
    hf_upkeep_t *self = *self_p;
    if (!self)
        return;
    hf_metrics_close(&self->metrics);
    free(self->text);
    free(self->data_dir);
    free(self);
    *self_p = NULL;
}

bool
hf_upkeep_metrics_due(const hf_upkeep_t *self, hf_ms_t now)
{
    return self->metrics && now >= self->metrics_at;
}

void
hf_upkeep_metrics(hf_upkeep_t *self, hf_metrics_snapshot_t *snap, hf_ms_t now)
{
    if (!self->metrics)
        return;
    self->metrics_at = now + S_METRICS_MS;
    snap->store_live_bytes = self->st.store_live_bytes;
    snap->disk_free_bytes = self->st.disk_free_bytes;
    snap->disk_size_bytes = self->st.disk_size_bytes;
    snap->retained_records = self->st.retained_records;
    snap->scrapes = hf_metrics_scrapes(self->metrics);
    size_t n = hf_metrics_render(snap, self->text, S_TEXT_MAX);
    if (n >= S_TEXT_MAX) {
        hf_log_warn(S_LOG, "metrics text of %zu bytes cut to %u", n, S_TEXT_MAX);
        n = S_TEXT_MAX - 1;
    }
    hf_metrics_publish(self->metrics, self->text, n);
}

static void
s_alarm(hf_upkeep_alarm_t *out, uint32_t *nout, uint32_t code, bool raised, const char *text)
{
    hf_upkeep_alarm_t *a = &out[(*nout)++];
    a->code = code;
    a->raised = raised;
    snprintf(a->text, sizeof a->text, "%s", text);
}

static void
s_storage(hf_upkeep_t *self, hf_store_t *store, hf_upkeep_alarm_t out[2], uint32_t *nout)
{
    struct statvfs vfs;
    hf_control_storage_t *st = &self->st;
    if (statvfs(self->data_dir, &vfs) == 0) {
        st->disk_free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        st->disk_size_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
    }
    st->store_live_bytes = hf_store_live_bytes(store);
    char text[HF_TEXT_MAX + 1];
    if (st->disk_size_bytes) {
        uint64_t pct = st->disk_free_bytes * 100 / st->disk_size_bytes;
        if (!st->disk_low && pct < self->opts.disk_low_pct) {
            st->disk_low = true;
            snprintf(text, sizeof text, "store disk %llu%% free (%llu MiB): below %u%%",
                     (unsigned long long)pct, (unsigned long long)(st->disk_free_bytes >> 20),
                     self->opts.disk_low_pct);
            s_alarm(out, nout, HF_ALARM_CODE_DISK_LOW, true, text);
        } else if (st->disk_low && pct >= self->opts.disk_low_pct + 2) {
            st->disk_low = false;
            snprintf(text, sizeof text, "store disk %llu%% free again", (unsigned long long)pct);
            s_alarm(out, nout, HF_ALARM_CODE_DISK_LOW, false, text);
        }
    }
    if (st->store_max_bytes) {
        uint64_t pct = st->store_live_bytes * 100 / st->store_max_bytes;
        if (!st->store_high && pct >= 90) {
            st->store_high = true;
            snprintf(text, sizeof text, "store at %llu%% of its bound (%llu MiB): add retention "
                                        "or space",
                     (unsigned long long)pct, (unsigned long long)(st->store_max_bytes >> 20));
            s_alarm(out, nout, HF_ALARM_CODE_STORE_LEVEL, true, text);
        } else if (st->store_high && pct < 85) {
            st->store_high = false;
            snprintf(text, sizeof text, "store at %llu%% of its bound",
                     (unsigned long long)pct);
            s_alarm(out, nout, HF_ALARM_CODE_STORE_LEVEL, false, text);
        }
    }
}

void
hf_upkeep_tick(hf_upkeep_t *self, hf_store_t *store, hf_ms_t now, uint64_t now_wall_ns,
               hf_upkeep_alarm_t out[2], uint32_t *nout)
{
    *nout = 0;
    if (now >= self->storage_at) {
        self->storage_at = now + S_STORAGE_MS;
        s_storage(self, store, out, nout);
    }
    bool rules = self->opts.retain_age_ns || self->opts.retain_bytes;
    if (rules && (self->retain_more || now >= self->retain_at)) {
        self->retain_at = now + S_RETAIN_MS;
        hf_store_retention_t r = {self->opts.retain_age_ns, self->opts.retain_bytes, 0};
        hf_store_retain_result_t res;
        hf_err_t rc = hf_store_retain(store, &r, now_wall_ns, &res);
        self->retain_more = rc == HF_OK && res.more;
        if (rc != HF_OK)
            hf_log_error(S_LOG, "retention err=%s", hf_errname(rc));
        else if (res.deleted) {
            self->st.retained_records += res.deleted;
            hf_log_info(S_LOG, "retention deleted=%zu by_age=%zu by_size=%zu%s", res.deleted,
                        res.by_age, res.by_size, res.more ? " (more to do)" : "");
        }
    }
}

void
hf_upkeep_storage(const hf_upkeep_t *self, hf_control_storage_t *out)
{
    *out = self->st;
}
