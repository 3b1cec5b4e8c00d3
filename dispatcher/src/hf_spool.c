/* hf_spool.c - the engine's durable log: one LMDB environment per spool.
 *
 * Layout (docs/spool.md is the longer version):
 *   "meta"    : "magic" -> "holdfast-spool", "version" -> u32 BE (1),
 *               "epoch" -> u64 BE, "last.<lane>" / "acked.<lane>" -> u64 BE
 *   "control" : u64 BE seq -> hf_record_encode() bytes
 *   "data"    : the same for the data lane
 * Keys are big-endian so that LMDB's byte order is seq order, which lets
 * every put use MDB_APPEND (seqs only increase).
 *
 * Design notes:
 * - Group commit: hf_spool_append writes a whole batch in one write txn.
 *   The in-memory counters change only after mdb_txn_commit succeeds, so an
 *   aborted txn consumes no seq. Records are encoded from a copy, so the
 *   caller's array is untouched on error.
 * - Map growth: on MDB_MAP_FULL the txn is aborted, the map is doubled with
 *   mdb_env_set_mapsize (legal only with no txn open; one thread owns the
 *   spool and the kept read txn is aborted first) and the txn is retried.
 * - Reserve: an LMDB delete copies pages (copy-on-write) before freeing, so
 *   a map filled to the last page can never be trimmed. Appends therefore
 *   stop at append_limit = max_bytes - reserve; trims (and the touch txn
 *   below) may grow the map into the reserve, after which the map is put
 *   back to append_limit (LMDB keeps it at least as large as the pages in
 *   use).
 * - Page reuse: pages freed by txn T are reusable only from txn T+2 on (LMDB
 *   keeps the previous snapshot intact). When an append hits the limit just
 *   after a trim, one idempotent "touch" txn is committed and the append is
 *   retried, otherwise a full spool would stay full after being trimmed.
 * - Reads keep one read txn handle (reset/renewed) and a cursor per lane, so
 *   a read costs no malloc. A reset txn holds no snapshot, so it never pins
 *   freed pages.
 *
 * Invariants:
 * - For each lane: acked <= last_seq; every key k in the lane DB satisfies
 *   acked < k <= last_seq; last_seq and acked never decrease and are written
 *   in the same txn as the records / deletions they describe (open checks
 *   this and refuses a spool that breaks it).
 * - depth[lane] == entries of the lane DB after every committed txn.
 * - map_bytes <= max(max_bytes, size of the file found at open).
 * - After an unrecoverable failure (MDB_PANIC, I/O error during commit or
 *   sync, failed remap) the spool is sticky: every mutating call returns
 *   HF_ESTATE.
 */
#include "hf_spool.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_fs.h"
#include "hf_log.h"
#include "hf_proto.h"

#define S_MAGIC "holdfast-spool"
#define S_VERSION 1u
#define S_LOG "spool"

struct hf_spool_s {
    MDB_env *env;                         /* owned                              */
    MDB_dbi meta;                         /* "meta" database                    */
    MDB_dbi lane_dbi[HF_LANE_COUNT];      /* "control", "data"                  */
    MDB_txn *rtxn;                        /* kept read txn (reset when idle)    */
    MDB_cursor *rcur[HF_LANE_COUNT];      /* read cursors bound to rtxn         */
    MDB_dbi thin_dbi;                     /* "thin": decimated data-lane history */
    MDB_cursor *rcur_thin;                /* read cursor on "thin"              */
    uint64_t thin_depth;                  /* records in "thin"                  */
    hf_spool_opts_t opts;                 /* as given, validated                */
    char *dir;                            /* owned copy, for logs               */
    size_t psize;                         /* bytes per LMDB page                */
    size_t map_bytes;                     /* bytes, current map size            */
    size_t append_limit;                  /* bytes, appends never grow past it  */
    size_t hard_limit;                    /* bytes, nothing grows past it       */
    uint64_t epoch;                       /* random, non-zero                   */
    uint64_t last_seq[HF_LANE_COUNT];     /* last committed seq                 */
    uint64_t acked[HF_LANE_COUNT];        /* last trimmed seq                   */
    uint64_t depth[HF_LANE_COUNT];        /* records held                       */
    bool reuse_pending;                   /* a trim freed pages not yet reusable */
    uintptr_t map_lo, map_hi;             /* our data.mdb mapping (0 = unknown)  */
    size_t read_since_advise;             /* bytes read since the last madvise  */
    bool broken;                          /* sticky failure, see invariants     */
};

static const char *const s_lane_db[HF_LANE_COUNT] = {"control", "data"};
static const char *const s_last_key[HF_LANE_COUNT] = {"last.control", "last.data"};
static const char *const s_acked_key[HF_LANE_COUNT] = {"acked.control", "acked.data"};

static hf_err_t s_map_mdb(int mrc);
static void s_put_be64(uint8_t out[8], uint64_t v);
static uint64_t s_get_be64(const uint8_t in[8]);
static size_t s_round_up(size_t v, size_t to);
static int s_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);
static hf_err_t s_fail(hf_spool_t *self, const char *what, int mrc);
static hf_err_t s_grow(hf_spool_t *self, size_t limit);
static hf_err_t s_reserve_disk(hf_spool_t *self, size_t bytes);
static void s_find_map(hf_spool_t *self);
static void s_fit_disk(hf_spool_t *self);
static void s_release_read_pages(hf_spool_t *self, size_t bytes);
static hf_err_t s_set_map(hf_spool_t *self, size_t bytes);
static void s_read_drop(hf_spool_t *self);
static hf_err_t s_touch(hf_spool_t *self, bool *grew);
static void s_shrink_back(hf_spool_t *self);
static hf_err_t s_prepare_dir(const char *dir, size_t *file_bytes);
static hf_err_t s_load(hf_spool_t *self, bool *created);
static hf_err_t s_append_once(hf_spool_t *self, const hf_record_t *recs, size_t n, int *mrc_out);

hf_spool_opts_t
hf_spool_opts_default(void)
{
    hf_spool_opts_t o = {
        .map_bytes = (size_t)64 << 20,
        .max_bytes = (size_t)1 << 30,
        .durable = true,
    };
    return o;
}

hf_spool_t *
hf_spool_open(const char *dir, const hf_spool_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_OK;
    int mrc = MDB_SUCCESS;
    hf_spool_t *self = NULL;
    hf_spool_opts_t o = opts ? *opts : hf_spool_opts_default();
    size_t file_bytes = 0;
    bool created = false;

    if (!dir || !*dir) {
        hf_log_error(S_LOG, "open: no directory given err=HF_EINVAL");
        rc = HF_EINVAL;
        goto fail;
    }
    if (o.map_bytes < HF_SPOOL_MIN_MAP_BYTES || o.max_bytes < HF_SPOOL_MIN_MAX_BYTES ||
        o.map_bytes > o.max_bytes) {
        hf_log_error(S_LOG,
                     "open dir=%s: bad options map_bytes=%zu max_bytes=%zu (need map_bytes>=%zu, "
                     "max_bytes>=%zu, map_bytes<=max_bytes) err=HF_EINVAL",
                     dir, o.map_bytes, o.max_bytes, HF_SPOOL_MIN_MAP_BYTES,
                     HF_SPOOL_MIN_MAX_BYTES);
        rc = HF_EINVAL;
        goto fail;
    }
    rc = s_prepare_dir(dir, &file_bytes);
    if (rc != HF_OK)
        goto fail;

    self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->opts = o;

    /* LMDB uses the OS page size for new files; the real value is read back
     * after open and the limits recomputed with it. */
    long ps = sysconf(_SC_PAGESIZE);
    self->psize = ps > 0 ? (size_t)ps : 4096;

    size_t reserve = o.max_bytes / 16;
    if (reserve < 32 * self->psize)
        reserve = 32 * self->psize;
    if (reserve > o.max_bytes / 2)
        reserve = o.max_bytes / 2;
    self->hard_limit = o.max_bytes / self->psize * self->psize;
    self->append_limit = (o.max_bytes - reserve) / self->psize * self->psize;

    size_t want = s_round_up(o.map_bytes, self->psize);
    if (want > self->append_limit)
        want = self->append_limit;
    if (file_bytes > want) {
        /* An existing file larger than the configured map: the map must
         * cover it (LMDB would refuse to shrink below the pages in use). */
        want = s_round_up(file_bytes, self->psize);
        if (want > self->append_limit)
            hf_log_warn(S_LOG, "open dir=%s: file_bytes=%zu already beyond the append limit "
                               "(%zu of max_bytes=%zu): appends will see HF_EFULL until trimmed",
                        dir, file_bytes, self->append_limit, o.max_bytes);
        if (want > self->hard_limit)
            self->hard_limit = want;
    }

    mrc = mdb_env_create(&self->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(self->env, 8);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(self->env, want);
    if (mrc == MDB_SUCCESS) {
        unsigned flags = MDB_NOTLS | (o.durable ? 0u : MDB_NOSYNC);
        mrc = mdb_env_open(self->env, dir, flags, 0600);
    }
    if (mrc != MDB_SUCCESS) {
        rc = s_map_mdb(mrc);
        if (mrc == MDB_INVALID || mrc == MDB_VERSION_MISMATCH) {
            rc = HF_ECORRUPT;
            hf_log_error(S_LOG, "open dir=%s: not a usable LMDB environment (%s); left untouched "
                                "err=HF_ECORRUPT", dir, mdb_strerror(mrc));
        } else {
            hf_log_error(S_LOG, "open dir=%s: mdb_env_open: %s err=%s", dir, mdb_strerror(mrc),
                         hf_errname(rc));
        }
        goto fail;
    }

    int dead = 0;
    mrc = mdb_reader_check(self->env, &dead);
    if (mrc != MDB_SUCCESS)
        hf_log_warn(S_LOG, "open dir=%s: mdb_reader_check: %s", dir, mdb_strerror(mrc));
    else if (dead > 0)
        hf_log_warn(S_LOG, "open dir=%s: cleared stale_readers=%d", dir, dead);

    MDB_stat st;
    MDB_envinfo info;
    mrc = mdb_env_stat(self->env, &st);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_info(self->env, &info);
    if (mrc != MDB_SUCCESS) {
        rc = s_map_mdb(mrc);
        hf_log_error(S_LOG, "open dir=%s: env stat: %s", dir, mdb_strerror(mrc));
        goto fail;
    }
    self->psize = st.ms_psize;
    self->map_bytes = info.me_mapsize;
    if (self->map_bytes > self->hard_limit)
        self->hard_limit = self->map_bytes;
    {
        /* A data file shorter than the pages its meta page claims (cut
         * short by a copy, a full disk, a bad restore) would SIGBUS on
         * the first read of a missing page: refuse it here. */
        char path[4096];
        struct stat sb;
        size_t need = ((size_t)info.me_last_pgno + 1) * self->psize;
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        if (stat(path, &sb) == 0 && (size_t)sb.st_size < need) {
            hf_log_error(S_LOG, "open dir=%s: data.mdb is %lld bytes but its meta needs %zu: "
                                "truncated; refusing it, left untouched err=HF_ECORRUPT",
                         dir, (long long)sb.st_size, need);
            rc = HF_ECORRUPT;
            goto fail;
        }
    }

    rc = s_load(self, &created);
    if (rc != HF_OK)
        goto fail;
    if (s_reserve_disk(self, self->map_bytes) != HF_OK)
        s_fit_disk(self);
    s_find_map(self);

    hf_log_info(S_LOG,
                "open dir=%s %s epoch=%016" PRIx64 " durable=%d map_bytes=%zu max_bytes=%zu "
                "control=%" PRIu64 "..%" PRIu64 " data=%" PRIu64 "..%" PRIu64,
                dir, created ? "created" : "reopened", self->epoch, (int)o.durable,
                self->map_bytes, o.max_bytes, self->acked[HF_LANE_CONTROL],
                self->last_seq[HF_LANE_CONTROL], self->acked[HF_LANE_DATA],
                self->last_seq[HF_LANE_DATA]);
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_spool_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_spool_close(hf_spool_t **self_p)
{
    assert(self_p);
    hf_spool_t *self = *self_p;
    if (!self)
        return;
    s_read_drop(self);
    if (self->env) {
        if (!self->opts.durable && !self->broken && self->epoch) {
            int mrc = mdb_env_sync(self->env, 1);
            if (mrc != MDB_SUCCESS)
                hf_log_error(S_LOG, "close dir=%s: sync: %s", self->dir, mdb_strerror(mrc));
        }
        if (self->epoch)
            hf_log_info(S_LOG, "close dir=%s depth control=%" PRIu64 " data=%" PRIu64,
                        self->dir, self->depth[HF_LANE_CONTROL], self->depth[HF_LANE_DATA]);
        mdb_env_close(self->env); /* also correct after a failed mdb_env_open */
    }
    free(self->dir);
    free(self);
    *self_p = NULL;
}

uint64_t
hf_spool_epoch(const hf_spool_t *self)
{
    assert(self);
    return self->epoch;
}

uint64_t
hf_spool_last_seq(const hf_spool_t *self, hf_lane_t lane)
{
    assert(self && (unsigned)lane < HF_LANE_COUNT);
    return self->last_seq[lane];
}

uint64_t
hf_spool_acked(const hf_spool_t *self, hf_lane_t lane)
{
    assert(self && (unsigned)lane < HF_LANE_COUNT);
    return self->acked[lane];
}

uint64_t
hf_spool_depth(const hf_spool_t *self, hf_lane_t lane)
{
    assert(self && (unsigned)lane < HF_LANE_COUNT);
    return self->depth[lane];
}

hf_err_t
hf_spool_append(hf_spool_t *self, hf_record_t *recs, size_t n)
{
    assert(self);
    assert(recs || n == 0);
    if (self->broken)
        return HF_ESTATE;
    if (n == 0)
        return HF_OK;

    bool touched = false;
    for (;;) {
        int mrc = MDB_SUCCESS;
        hf_err_t rc = s_append_once(self, recs, n, &mrc);
        if (rc == HF_OK)
            break;
        if (mrc != MDB_MAP_FULL)
            return rc;
        rc = s_grow(self, self->append_limit);
        if (rc == HF_EFULL && self->reuse_pending && !touched) {
            /* Pages freed by the last trim become reusable one commit later. */
            bool grew = false;
            touched = true;
            rc = s_touch(self, &grew);
            if (grew)
                s_shrink_back(self);
        }
        if (rc != HF_OK) {
            if (rc == HF_EFULL)
                hf_log_warn(S_LOG, "append dir=%s n=%zu map_bytes=%zu: spool full err=HF_EFULL",
                            self->dir, n, self->map_bytes);
            return rc;
        }
    }

    /* Committed: publish the seqs to the caller and the counters. */
    for (size_t i = 0; i < n; i++) {
        hf_lane_t lane = hf_record_lane_of(recs[i].kind);
        recs[i].lane = (uint8_t)lane;
        recs[i].seq = ++self->last_seq[lane];
        self->depth[lane]++;
    }
    self->reuse_pending = false;
    /* appends read the last leaf through the map: every leaf gets touched */
    s_release_read_pages(self, n * 32);
    hf_log_debug(S_LOG, "append dir=%s n=%zu last control=%" PRIu64 " data=%" PRIu64, self->dir,
                 n, self->last_seq[HF_LANE_CONTROL], self->last_seq[HF_LANE_DATA]);
    return HF_OK;
}

/* Visit one database from `from` on, adding to *n / *bytes; *more is false
 * once a limit stopped the visit (as opposed to running out of records). */
static hf_err_t
s_visit(hf_spool_t *self, MDB_cursor *cur, const char *db, uint64_t from, size_t max_n,
        size_t max_bytes, hf_spool_read_fn *fn, void *arg, size_t *n, size_t *bytes, bool *more,
        int *mrc_out)
{
    uint8_t kb[8];
    s_put_be64(kb, from);
    MDB_val key = {sizeof kb, kb};
    MDB_val val;
    hf_err_t rc = HF_OK;
    int mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS) {
        if (*n >= max_n) {
            *more = false;
            break;
        }
        if (key.mv_size != 8 || val.mv_size == 0 || val.mv_size > HF_PROTO_MAX_RECORD) {
            hf_log_error(S_LOG, "read dir=%s db=%s: bad entry key_len=%zu val_len=%zu "
                                "err=HF_ECORRUPT", self->dir, db, key.mv_size, val.mv_size);
            rc = HF_ECORRUPT;
            break;
        }
        if (*n > 0 && *bytes + val.mv_size > max_bytes) {
            *more = false;
            break;
        }
        rc = fn(arg, s_get_be64(key.mv_data), val.mv_data, val.mv_size);
        if (rc != HF_OK)
            break;
        (*n)++;
        *bytes += val.mv_size;
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    *mrc_out = mrc;
    return rc;
}

hf_err_t
hf_spool_read(hf_spool_t *self, hf_lane_t lane, uint64_t from, size_t max_n, size_t max_bytes,
              hf_spool_read_fn *fn, void *arg, size_t *n_out)
{
    assert(self && fn && (unsigned)lane < HF_LANE_COUNT);
    size_t n = 0;
    hf_err_t rc = HF_OK;
    int mrc = MDB_SUCCESS;
    if (n_out)
        *n_out = 0;
    if (self->broken)
        return HF_ESTATE;
    if (max_n == 0)
        return HF_OK;
    if (from == 0)
        from = 1;

    if (self->rtxn) {
        mrc = mdb_txn_renew(self->rtxn);
    } else {
        mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &self->rtxn);
        if (mrc != MDB_SUCCESS)
            self->rtxn = NULL;
    }
    if (mrc != MDB_SUCCESS) {
        s_read_drop(self);
        return s_fail(self, "read: txn", mrc);
    }
    MDB_cursor *cur = self->rcur[lane];
    if (cur)
        mrc = mdb_cursor_renew(self->rtxn, cur);
    else
        mrc = mdb_cursor_open(self->rtxn, self->lane_dbi[lane], &self->rcur[lane]);
    if (mrc != MDB_SUCCESS) {
        rc = s_fail(self, "read: cursor", mrc);
        s_read_drop(self);
        return rc;
    }
    cur = self->rcur[lane];

    size_t bytes = 0;
    bool more = true;
    if (lane == HF_LANE_DATA && self->thin_depth > 0) {
        /* The decimated history comes first: every key in "thin" is below
         * every key in "data". */
        if (self->rcur_thin)
            mrc = mdb_cursor_renew(self->rtxn, self->rcur_thin);
        else
            mrc = mdb_cursor_open(self->rtxn, self->thin_dbi, &self->rcur_thin);
        if (mrc != MDB_SUCCESS) {
            rc = s_fail(self, "read: thin cursor", mrc);
            s_read_drop(self);
            return rc;
        }
        rc = s_visit(self, self->rcur_thin, "thin", from, max_n, max_bytes, fn, arg, &n, &bytes,
                     &more, &mrc);
    }
    if (rc == HF_OK && more && (mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND))
        rc = s_visit(self, cur, s_lane_db[lane], from, max_n, max_bytes, fn, arg, &n, &bytes,
                     &more, &mrc);
    if (rc == HF_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = s_fail(self, "read: cursor get", mrc);
    /* Release the snapshot now: a held snapshot would pin freed pages. */
    mdb_txn_reset(self->rtxn);
    s_release_read_pages(self, bytes);
    if (n_out)
        *n_out = n;
    return rc;
}

/* Delete every key <= upto from dbi (keys are 8-byte BE seqs). Returns
 * MDB_SUCCESS or MDB_NOTFOUND when done, else an LMDB error. */
static int
s_delete_upto(MDB_txn *txn, MDB_dbi dbi, uint64_t upto, uint64_t *deleted)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (key.mv_size != 8) {
            mrc = MDB_CORRUPTED;
            break;
        }
        if (s_get_be64(key.mv_data) > upto)
            break;
        mrc = mdb_cursor_del(cur, 0);
        if (mrc != MDB_SUCCESS)
            break;
        (*deleted)++;
        /* After a delete the cursor already sits on the next entry and
         * MDB_NEXT returns that entry (LMDB's C_DEL flag). */
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    return mrc;
}

hf_err_t
hf_spool_trim(hf_spool_t *self, hf_lane_t lane, uint64_t upto)
{
    assert(self && (unsigned)lane < HF_LANE_COUNT);
    if (self->broken)
        return HF_ESTATE;
    if (upto <= self->acked[lane])
        return HF_OK;
    if (upto > self->last_seq[lane]) {
        hf_log_error(S_LOG, "trim dir=%s lane=%s upto=%" PRIu64 " beyond last_seq=%" PRIu64
                            " err=HF_EINVAL", self->dir, s_lane_db[lane], upto,
                     self->last_seq[lane]);
        return HF_EINVAL;
    }

    bool grew = false;
    uint64_t deleted = 0, deleted_thin = 0;
    hf_err_t rc = HF_OK;
    for (;;) {
        MDB_txn *txn = NULL;
        deleted = deleted_thin = 0;
        int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
        if (mrc == MDB_SUCCESS && lane == HF_LANE_DATA && self->thin_depth > 0)
            mrc = s_delete_upto(txn, self->thin_dbi, upto, &deleted_thin);
        if (mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND)
            mrc = s_delete_upto(txn, self->lane_dbi[lane], upto, &deleted);
        if (mrc == MDB_NOTFOUND || mrc == MDB_SUCCESS)
            mrc = s_meta_put_u64(txn, self->meta, s_acked_key[lane], upto);
        if (mrc == MDB_SUCCESS) {
            mrc = mdb_txn_commit(txn);
        } else if (txn) {
            mdb_txn_abort(txn);
        }
        if (mrc == MDB_SUCCESS)
            break;
        if (mrc != MDB_MAP_FULL) {
            rc = s_fail(self, "trim", mrc);
            break;
        }
        rc = s_grow(self, self->hard_limit);
        if (rc != HF_OK) {
            hf_log_error(S_LOG, "trim dir=%s lane=%s: no room even in the reserve err=%s",
                         self->dir, s_lane_db[lane], hf_errname(rc));
            break;
        }
        grew = true;
    }
    if (grew)
        s_shrink_back(self);
    if (rc != HF_OK)
        return rc;

    self->acked[lane] = upto;
    s_release_read_pages(self, (size_t)8 << 20); /* trims touch pages through the map too */
    deleted += deleted_thin;
    self->thin_depth -= deleted_thin <= self->thin_depth ? deleted_thin : self->thin_depth;
    self->depth[lane] -= deleted <= self->depth[lane] ? deleted : self->depth[lane];
    if (deleted > 0)
        self->reuse_pending = true;
    hf_log_debug(S_LOG, "trim dir=%s lane=%s upto=%" PRIu64 " deleted=%" PRIu64, self->dir,
                 s_lane_db[lane], upto, deleted);
    return HF_OK;
}

/* Walk the oldest `limit` records of dbi. Per record: keep it (and, when
 * `to` is set, move it there with MDB_APPEND) or delete it. keep_odd: keep
 * positions 0, 2, 4 ... (decimate); otherwise delete all (drop-oldest).
 * Updates the range and counts. */
static int
s_thin_range(MDB_txn *txn, MDB_dbi dbi, const MDB_dbi *to, uint64_t limit, bool keep_even,
             uint64_t *first, uint64_t *last, uint64_t *deleted, uint64_t *moved,
             uint64_t *removed_from_src)
{
    MDB_cursor *cur = NULL;
    MDB_val key, val;
    uint8_t copy[HF_PROTO_MAX_RECORD], kb[8];
    uint64_t pos = 0;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
    (void)removed_from_src;
    while (mrc == MDB_SUCCESS && pos < limit) {
        if (key.mv_size != 8 || val.mv_size == 0 || val.mv_size > sizeof copy) {
            mrc = MDB_CORRUPTED;
            break;
        }
        uint64_t seq = s_get_be64(key.mv_data);
        if (*first == 0)
            *first = seq;
        *last = seq;
        bool keep = keep_even && (pos % 2) == 0;
        pos++;
        if (keep && !to) { /* kept in place */
            mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
            continue;
        }
        if (keep) {
            size_t len = val.mv_size;
            memcpy(copy, val.mv_data, len);
            memcpy(kb, key.mv_data, 8);
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != MDB_SUCCESS)
                break;
            MDB_val k2 = {8, kb}, v2 = {len, copy};
            mrc = mdb_put(txn, *to, &k2, &v2, MDB_APPEND);
            if (mrc != MDB_SUCCESS)
                break;
            (*moved)++;
            (*removed_from_src)++;
        } else {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != MDB_SUCCESS)
                break;
            (*deleted)++;
            (*removed_from_src)++;
        }
        /* After a delete the cursor sits on the next entry (C_DEL). */
        mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* One attempt at a drop; see hf_spool_drop.
 *
 * Why a "thin" database: LMDB frees a leaf page only when it empties or
 * falls below a quarter full, so deleting every other record in place
 * would free nothing. Decimation therefore moves the oldest chunk of
 * "data" out whole (freeing its pages) and appends every second record
 * to "thin" with MDB_APPEND (densely packed): room appears at once. Once
 * everything is thinned, further passes thin "thin" in place (n doubles
 * again; its pages free up from the second such pass). Chunks are bounded
 * so that one transaction fits in the spool's reserve. */
static int
s_drop_once(hf_spool_t *self, hf_spool_drop_t how, hf_record_t *gap, uint64_t *deleted,
            uint64_t *thin_delta)
{
    MDB_txn *txn = NULL;
    uint64_t first = 0, last = 0, n = 0, moved = 0, from_thin = 0, from_data = 0;
    uint64_t data_only = self->depth[HF_LANE_DATA] - self->thin_depth;
    uint64_t chunk_max = (self->hard_limit - self->append_limit) / 64;
    if (chunk_max > 65536)
        chunk_max = 65536;
    if (chunk_max < 2)
        chunk_max = 2;
    *deleted = 0;
    *thin_delta = 0;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != MDB_SUCCESS)
        return mrc;
    if (how == HF_SPOOL_DROP_DECIMATE) {
        if (data_only >= 2) {
            uint64_t c = data_only / 4 < 2 ? 2 : data_only / 4;
            if (c > chunk_max)
                c = chunk_max;
            mrc = s_thin_range(txn, self->lane_dbi[HF_LANE_DATA], &self->thin_dbi, c, true,
                               &first, &last, &n, &moved, &from_data);
        } else {
            uint64_t c = self->thin_depth < chunk_max ? self->thin_depth : chunk_max;
            mrc = s_thin_range(txn, self->thin_dbi, NULL, c, true, &first, &last, &n, &moved,
                               &from_thin);
        }
    } else {
        uint64_t quota = self->depth[HF_LANE_DATA] / 4;
        if (quota < 1)
            quota = 1;
        if (quota > chunk_max)
            quota = chunk_max;
        uint64_t t = self->thin_depth < quota ? self->thin_depth : quota;
        if (t > 0)
            mrc = s_thin_range(txn, self->thin_dbi, NULL, t, false, &first, &last, &n, &moved,
                               &from_thin);
        if (mrc == MDB_SUCCESS && quota > t)
            mrc = s_thin_range(txn, self->lane_dbi[HF_LANE_DATA], NULL, quota - t, false, &first,
                               &last, &n, &moved, &from_data);
    }
    if (mrc == MDB_SUCCESS && n > 0) {
        hf_record_t r = *gap;
        r.kind = HF_KIND_GAP;
        r.lane = HF_LANE_CONTROL;
        r.seq = self->last_seq[HF_LANE_CONTROL] + 1;
        memset(&r.u, 0, sizeof r.u);
        r.u.gap.lane = HF_LANE_DATA;
        r.u.gap.first = first;
        r.u.gap.last = last;
        r.u.gap.count = n;
        r.u.gap.reason = (uint8_t)how;
        uint8_t buf[HF_PROTO_MAX_RECORD], kb[8];
        size_t len = 0;
        if (hf_record_encode(&r, buf, sizeof buf, &len) != HF_OK) {
            mrc = MDB_BAD_VALSIZE; /* cannot happen: a gap record always encodes */
        } else {
            s_put_be64(kb, r.seq);
            MDB_val k = {8, kb}, v = {len, buf};
            mrc = mdb_put(txn, self->lane_dbi[HF_LANE_CONTROL], &k, &v, MDB_APPEND);
        }
        if (mrc == MDB_SUCCESS)
            mrc = s_meta_put_u64(txn, self->meta, s_last_key[HF_LANE_CONTROL], r.seq);
        if (mrc == MDB_SUCCESS)
            *gap = r;
    }
    if (mrc == MDB_SUCCESS && n > 0) {
        mrc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    if (mrc == MDB_SUCCESS) {
        *deleted = n;
        /* thin gains what was moved in and loses what was deleted from it;
         * unsigned wrap-around makes a net decrease come out right when added */
        *thin_delta = moved - from_thin;
    }
    return mrc;
}

hf_err_t
hf_spool_drop(hf_spool_t *self, hf_spool_drop_t how, hf_record_t *gap, uint64_t *dropped)
{
    assert(self && gap && dropped);
    *dropped = 0;
    if (self->broken)
        return HF_ESTATE;
    if (how != HF_SPOOL_DROP_DECIMATE && how != HF_SPOOL_DROP_OLDEST)
        return HF_EINVAL;
    if (self->depth[HF_LANE_DATA] < 2)
        return HF_ENOTFOUND;
    bool grew = false;
    uint64_t n = 0;
    hf_err_t rc = HF_OK;
    uint64_t thin_delta = 0;
    for (;;) {
        int mrc = s_drop_once(self, how, gap, &n, &thin_delta);
        if (mrc == MDB_SUCCESS)
            break;
        if (mrc != MDB_MAP_FULL) {
            rc = s_fail(self, "drop", mrc);
            break;
        }
        /* Deleting copies pages first: like a trim, a drop may use the reserve. */
        rc = s_grow(self, self->hard_limit);
        if (rc != HF_OK)
            break;
        grew = true;
    }
    if (grew)
        s_shrink_back(self);
    if (rc != HF_OK)
        return rc;
    if (n == 0)
        return HF_ENOTFOUND;
    self->depth[HF_LANE_DATA] -= n;
    self->thin_depth += thin_delta; /* wraps correctly for a decrease */
    self->depth[HF_LANE_CONTROL]++;
    self->last_seq[HF_LANE_CONTROL] = gap->seq;
    self->reuse_pending = true;
    *dropped = n;
    hf_log_debug(S_LOG, "drop dir=%s policy=%s data=%" PRIu64 "..%" PRIu64 " dropped=%" PRIu64
                " gap_seq=%" PRIu64, self->dir, how == HF_SPOOL_DROP_DECIMATE ? "decimate"
                : "drop-oldest", gap->u.gap.first, gap->u.gap.last, n, gap->seq);
    return HF_OK;
}

hf_err_t
hf_spool_sync(hf_spool_t *self)
{
    assert(self);
    if (self->broken)
        return HF_ESTATE;
    if (self->opts.durable)
        return HF_OK;
    int mrc = mdb_env_sync(self->env, 1);
    if (mrc != MDB_SUCCESS) {
        /* After a failed fsync the kernel may have dropped the dirty pages:
         * what is on disk is unknown, so stop trusting this handle. */
        self->broken = true;
        hf_log_error(S_LOG, "sync dir=%s: %s; spool unusable until reopened err=HF_EIO",
                     self->dir, mdb_strerror(mrc));
        return HF_EIO;
    }
    return HF_OK;
}

size_t
hf_spool_used_bytes(const hf_spool_t *self)
{
    assert(self);
    MDB_envinfo info;
    if (mdb_env_info(self->env, &info) != MDB_SUCCESS)
        return 0;
    return ((size_t)info.me_last_pgno + 1) * self->psize;
}

size_t
hf_spool_live_bytes(hf_spool_t *self)
{
    assert(self);
    MDB_envinfo info;
    if (self->broken || mdb_env_info(self->env, &info) != MDB_SUCCESS)
        return 0;
    size_t pages = (size_t)info.me_last_pgno + 1;
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn) != MDB_SUCCESS)
        return pages * self->psize;
    size_t free_pages = hf_lmdb_free_pages(txn);
    mdb_txn_abort(txn);
    return (free_pages < pages ? pages - free_pages : 0) * self->psize;
}

size_t
hf_spool_limit_bytes(const hf_spool_t *self)
{
    assert(self);
    return self->append_limit;
}

size_t
hf_spool_map_bytes(const hf_spool_t *self)
{
    assert(self);
    return self->map_bytes;
}

/* ---- static helpers ---------------------------------------------------- */

static hf_err_t
s_map_mdb(int mrc)
{
    switch (mrc) {
    case MDB_SUCCESS: return HF_OK;
    case MDB_MAP_FULL: return HF_EFULL;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
    case MDB_KEYEXIST: /* an append below the last key: seq invariant broken */
        return HF_ECORRUPT;
    case MDB_TXN_FULL: return HF_EINVAL; /* batch too large for one txn */
    case ENOMEM: return HF_ENOMEM;
    case EIO:
    case ENOSPC:
    case EACCES:
    case EPERM:
    case EROFS:
    case ENOENT:
    case ENOTDIR:
        return HF_EIO;
    default: return HF_ESTORE;
    }
}

static void
s_put_be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_get_be64(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

static size_t
s_round_up(size_t v, size_t to)
{
    return (v + to - 1) / to * to;
}

static int
s_meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
    uint8_t b[8];
    s_put_be64(b, v);
    MDB_val k = {strlen(key), (void *)key};
    MDB_val d = {sizeof b, b};
    return mdb_put(txn, dbi, &k, &d, 0);
}

static int
s_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *key, MDB_val *out)
{
    MDB_val k = {strlen(key), (void *)key};
    return mdb_get(txn, dbi, &k, out);
}

/* Logs an LMDB failure, maps it, and makes the spool sticky when the
 * environment can no longer be trusted. */
static hf_err_t
s_fail(hf_spool_t *self, const char *what, int mrc)
{
    hf_err_t rc = s_map_mdb(mrc);
    if (mrc == MDB_PANIC || mrc == EIO) {
        self->broken = true;
        hf_log_error(S_LOG, "dir=%s %s: %s; spool unusable until reopened err=%s", self->dir,
                     what, mdb_strerror(mrc), hf_errname(rc));
    } else {
        hf_log_error(S_LOG, "dir=%s %s: %s err=%s", self->dir, what, mdb_strerror(mrc),
                     hf_errname(rc));
    }
    return rc;
}

/* The kept read txn must go before a remap: mdb_env_set_mapsize is legal
 * only with no transaction open (LMDB does not check read txns). */
static void
s_read_drop(hf_spool_t *self)
{
    for (int i = 0; i < HF_LANE_COUNT; i++) {
        if (self->rcur[i])
            mdb_cursor_close(self->rcur[i]);
        self->rcur[i] = NULL;
    }
    if (self->rcur_thin)
        mdb_cursor_close(self->rcur_thin);
    self->rcur_thin = NULL;
    if (self->rtxn)
        mdb_txn_abort(self->rtxn);
    self->rtxn = NULL;
}

static hf_err_t
s_set_map(hf_spool_t *self, size_t bytes)
{
    s_read_drop(self);
    int mrc = mdb_env_set_mapsize(self->env, bytes);
    MDB_envinfo info;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_info(self->env, &info);
    if (mrc != MDB_SUCCESS) {
        /* A failed remap leaves the env without a usable map. */
        self->broken = true;
        hf_log_error(S_LOG, "dir=%s set map_bytes=%zu: %s; spool unusable err=HF_ESTORE",
                     self->dir, bytes, mdb_strerror(mrc));
        return HF_ESTORE;
    }
    self->map_bytes = info.me_mapsize;
    s_find_map(self);
    return HF_OK;
}

/* Reserve the disk blocks of the whole map up front, so that a full disk
 * shows up here, as "cannot grow" (HF_EFULL: the full-spool policy
 * applies), and never as a failed write in the middle of a commit, which
 * LMDB reports as EIO and which would leave the spool unusable. */
static hf_err_t
s_reserve_disk(hf_spool_t *self, size_t bytes)
{
    int fd = -1;
    if (mdb_env_get_fd(self->env, &fd) != MDB_SUCCESS || fd < 0)
        return HF_OK;
    int e = posix_fallocate(fd, 0, (off_t)bytes);
    if (e == 0 || e == EOPNOTSUPP || e == EINVAL)
        return HF_OK; /* done, or a filesystem that can't: LMDB writes as usual */
    hf_log_warn(S_LOG, "dir=%s cannot reserve %zu bytes on disk: %s: spool full", self->dir,
                bytes, strerror(e));
    return HF_EFULL;
}

/* Where LMDB mapped data.mdb (it does not say unless MDB_FIXEDMAP): the
 * line of /proc/self/maps naming our file. */
static void
s_find_map(hf_spool_t *self)
{
    self->map_lo = self->map_hi = 0;
    char want[4096], path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", self->dir);
    if (!realpath(path, want))
        return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[4608];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char *slash = strchr(line, '/');
        if (!slash || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        slash[strcspn(slash, "\n")] = 0;
        if (strcmp(slash, want) == 0) {
            if (!self->map_lo || lo < self->map_lo)
                self->map_lo = lo;
            if (hi > self->map_hi)
                self->map_hi = hi;
        }
    }
    fclose(f);
}

/* Reading a large backlog touches every page of the read-only map, and
 * touched pages count as the process's memory: a 500 MB drain would show
 * 500 MB of RSS. The pages are the page cache's anyway, so every few MiB
 * read they are unmapped from us (the next access maps them again). */
static void
s_release_read_pages(hf_spool_t *self, size_t bytes)
{
    self->read_since_advise += bytes;
    if (self->read_since_advise < ((size_t)8 << 20) || !self->map_lo)
        return;
    self->read_since_advise = 0;
    (void)madvise((void *)self->map_lo, self->map_hi - self->map_lo, MADV_DONTNEED);
}

/* The disk cannot hold the map: bound the spool by what it can hold, so
 * that LMDB never writes past what is reserved (a write that fails for
 * space inside a commit is reported as EIO and makes the spool unusable;
 * a bound is handled by the full-spool policy). The new bound is the
 * largest size, between the file as it is and the map, that could be
 * reserved; a quarter of it is kept for trims and drops. */
static void
s_fit_disk(hf_spool_t *self)
{
    int fd = -1;
    struct stat sb;
    if (mdb_env_get_fd(self->env, &fd) != MDB_SUCCESS || fd < 0 || fstat(fd, &sb) != 0)
        return;
    size_t have = (size_t)sb.st_size / self->psize * self->psize;
    size_t fit = have;
    for (size_t want = self->map_bytes; want > have; want /= 2) {
        want = want / self->psize * self->psize;
        if (want > have && posix_fallocate(fd, 0, (off_t)want) == 0) {
            fit = want;
            break;
        }
    }
    if (fit < 8 * self->psize)
        fit = 8 * self->psize;
    if (fit < self->map_bytes && s_set_map(self, fit) != HF_OK)
        return;
    self->hard_limit = self->map_bytes;
    size_t reserve = self->hard_limit / 4;
    if (reserve < 4 * self->psize)
        reserve = 4 * self->psize;
    self->append_limit = self->hard_limit > reserve ? self->hard_limit - reserve : self->psize;
    self->append_limit = self->append_limit / self->psize * self->psize;
    hf_log_warn(S_LOG, "dir=%s the disk holds only %zu bytes for the spool: bound lowered to "
                       "that (appends up to %zu)", self->dir, self->hard_limit,
                self->append_limit);
}

static hf_err_t
s_grow(hf_spool_t *self, size_t limit)
{
    if (self->map_bytes >= limit)
        return HF_EFULL;
    size_t next = self->map_bytes > limit / 2 ? limit : self->map_bytes * 2;
    next = next / self->psize * self->psize;
    if (next <= self->map_bytes)
        return HF_EFULL;
    if (s_reserve_disk(self, next) != HF_OK)
        return HF_EFULL;
    size_t old = self->map_bytes;
    hf_err_t rc = s_set_map(self, next);
    if (rc == HF_OK)
        hf_log_info(S_LOG, "dir=%s map grown map_bytes=%zu->%zu", self->dir, old,
                    self->map_bytes);
    return rc;
}

/* Back to the append limit after a trim used the reserve; LMDB keeps the
 * map at least as large as the pages in use. Not fatal if it fails. */
static void
s_shrink_back(hf_spool_t *self)
{
    if (self->broken || self->map_bytes <= self->append_limit)
        return;
    (void)s_set_map(self, self->append_limit);
}

/* Commit one idempotent write (the epoch again) so that pages freed by the
 * previous txn become reusable by the next one. May use the reserve. */
static hf_err_t
s_touch(hf_spool_t *self, bool *grew)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
        if (mrc == MDB_SUCCESS) {
            mrc = s_meta_put_u64(txn, self->meta, "epoch", self->epoch);
            if (mrc == MDB_SUCCESS)
                mrc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
        if (mrc == MDB_SUCCESS) {
            self->reuse_pending = false;
            hf_log_debug(S_LOG, "dir=%s touch committed: trimmed pages now reusable", self->dir);
            return HF_OK;
        }
        if (mrc != MDB_MAP_FULL)
            return s_fail(self, "touch", mrc);
        hf_err_t rc = s_grow(self, self->hard_limit);
        if (rc != HF_OK)
            return rc;
        *grew = true;
    }
}

/* One attempt at writing a batch. *mrc_out gets the LMDB code of the
 * failure (MDB_MAP_FULL means: grow and retry). */
static hf_err_t
s_append_once(hf_spool_t *self, const hf_record_t *recs, size_t n, int *mrc_out)
{
    uint64_t next[HF_LANE_COUNT];
    memcpy(next, self->last_seq, sizeof next);
    MDB_txn *txn = NULL;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != MDB_SUCCESS) {
        *mrc_out = mrc;
        return s_fail(self, "append: txn", mrc);
    }
    uint8_t buf[HF_PROTO_MAX_RECORD];
    uint8_t kb[8];
    for (size_t i = 0; i < n; i++) {
        hf_record_t r = recs[i];
        hf_lane_t lane = hf_record_lane_of(r.kind);
        if ((unsigned)lane >= HF_LANE_COUNT) {
            hf_log_error(S_LOG, "append dir=%s: record %zu kind=%u has no lane err=HF_EINVAL",
                         self->dir, i, (unsigned)r.kind);
            mdb_txn_abort(txn);
            return HF_EINVAL;
        }
        r.lane = (uint8_t)lane;
        r.seq = ++next[lane];
        size_t len = 0;
        hf_err_t erc = hf_record_encode(&r, buf, sizeof buf, &len);
        if (erc != HF_OK) {
            /* HF_EFULL from the encoder means "record too large": that is
             * the caller's error, not spool backpressure. */
            hf_log_error(S_LOG, "append dir=%s: record %zu kind=%u does not encode (%s) "
                                "err=HF_EINVAL", self->dir, i, (unsigned)r.kind,
                         hf_errname(erc));
            mdb_txn_abort(txn);
            return HF_EINVAL;
        }
        s_put_be64(kb, r.seq);
        MDB_val key = {sizeof kb, kb};
        MDB_val val = {len, buf};
        mrc = mdb_put(txn, self->lane_dbi[lane], &key, &val, MDB_APPEND);
        if (mrc != MDB_SUCCESS)
            break;
    }
    for (int l = 0; l < HF_LANE_COUNT && mrc == MDB_SUCCESS; l++) {
        if (next[l] != self->last_seq[l])
            mrc = s_meta_put_u64(txn, self->meta, s_last_key[l], next[l]);
    }
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
    else
        mdb_txn_abort(txn);
    *mrc_out = mrc;
    if (mrc == MDB_SUCCESS)
        return HF_OK;
    if (mrc == MDB_MAP_FULL)
        return HF_EFULL;
    return s_fail(self, "append", mrc);
}

/* Creates dir (0700) if missing; *file_bytes gets the size of an existing
 * data.mdb (0 if none). */
static hf_err_t
s_prepare_dir(const char *dir, size_t *file_bytes)
{
    struct stat st;
    *file_bytes = 0;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT || mkdir(dir, 0700) != 0) {
            hf_log_error(S_LOG, "open dir=%s: %s err=HF_EIO", dir, strerror(errno));
            return HF_EIO;
        }
        return HF_OK;
    }
    if (!S_ISDIR(st.st_mode)) {
        hf_log_error(S_LOG, "open dir=%s: not a directory err=HF_EIO", dir);
        return HF_EIO;
    }
    char path[4096];
    int w = snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (w < 0 || (size_t)w >= sizeof path) {
        hf_log_error(S_LOG, "open dir=%s: path too long err=HF_EINVAL", dir);
        return HF_EINVAL;
    }
    if (stat(path, &st) == 0)
        *file_bytes = (size_t)st.st_size;
    return HF_OK;
}

/* Reads (or, for a new environment, creates) meta and the lane databases,
 * checking the invariants. A foreign environment is refused before any
 * write: the txn is aborted, so data.mdb is not modified. */
/* Open the named database (it must exist) and read its entry count and
 * its first and last keys (8-byte BE seqs; 0 and 0 when empty).
 * MDB_CORRUPTED for a key of another size. */
static int
s_open_db_bounds(MDB_txn *txn, const char *name, MDB_dbi *dbi, uint64_t *n, uint64_t *first,
                 uint64_t *last)
{
    MDB_stat st;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    *n = *first = *last = 0;
    int mrc = mdb_dbi_open(txn, name, 0, dbi);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_stat(txn, *dbi, &st);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(txn, *dbi, &cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    *n = st.ms_entries;
    mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (mrc == MDB_SUCCESS) {
        if (k.mv_size != 8) {
            mrc = MDB_CORRUPTED;
        } else {
            *first = s_get_be64(k.mv_data);
            mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
            if (mrc == MDB_SUCCESS && k.mv_size != 8)
                mrc = MDB_CORRUPTED;
            else if (mrc == MDB_SUCCESS)
                *last = s_get_be64(k.mv_data);
        }
    } else if (mrc == MDB_NOTFOUND) {
        mrc = MDB_SUCCESS;
    }
    mdb_cursor_close(cur);
    return mrc;
}

static hf_err_t
s_load(hf_spool_t *self, bool *created)
{
    MDB_txn *txn = NULL;
    hf_err_t rc = HF_OK;
    const char *why = NULL; /* reason for HF_ECORRUPT */
    MDB_val v;
    int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;

    mrc = mdb_dbi_open(txn, "meta", 0, &self->meta);
    if (mrc == MDB_NOTFOUND) {
        MDB_dbi main_dbi;
        MDB_stat st;
        mrc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_stat(txn, main_dbi, &st);
        if (mrc != MDB_SUCCESS)
            goto mdb_fail;
        if (st.ms_entries != 0) {
            why = "LMDB environment without holdfast meta (foreign data)";
            goto corrupt;
        }
        /* Empty environment: ours, new (or a crash before the first commit). */
        uint64_t epoch = 0;
        while (epoch == 0) {
            if (getrandom(&epoch, sizeof epoch, 0) != (ssize_t)sizeof epoch) {
                if (errno == EINTR)
                    continue;
                hf_log_error(S_LOG, "open dir=%s: getrandom: %s err=HF_EIO", self->dir,
                             strerror(errno));
                rc = HF_EIO;
                goto fail;
            }
        }
        uint8_t ver[4] = {0, 0, 0, S_VERSION};
        MDB_val mk = {5, "magic"}, mv = {strlen(S_MAGIC), S_MAGIC};
        MDB_val vk = {7, "version"}, vv = {sizeof ver, ver};
        mrc = mdb_dbi_open(txn, "meta", MDB_CREATE, &self->meta);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_put(txn, self->meta, &mk, &mv, 0);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_put(txn, self->meta, &vk, &vv, 0);
        if (mrc == MDB_SUCCESS)
            mrc = s_meta_put_u64(txn, self->meta, "epoch", epoch);
        for (int l = 0; l < HF_LANE_COUNT && mrc == MDB_SUCCESS; l++) {
            mrc = s_meta_put_u64(txn, self->meta, s_last_key[l], 0);
            if (mrc == MDB_SUCCESS)
                mrc = s_meta_put_u64(txn, self->meta, s_acked_key[l], 0);
            if (mrc == MDB_SUCCESS)
                mrc = mdb_dbi_open(txn, s_lane_db[l], MDB_CREATE, &self->lane_dbi[l]);
        }
        if (mrc == MDB_SUCCESS)
            mrc = mdb_dbi_open(txn, "thin", MDB_CREATE, &self->thin_dbi);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        txn = NULL;
        if (mrc != MDB_SUCCESS)
            goto mdb_fail;
        self->epoch = epoch;
        *created = true;
        return HF_OK;
    }
    if (mrc == MDB_INCOMPATIBLE) {
        why = "\"meta\" exists but is not a named database";
        goto corrupt;
    }
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;

    mrc = s_meta_get(txn, self->meta, "magic", &v);
    if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && (v.mv_size != strlen(S_MAGIC) ||
                                                       memcmp(v.mv_data, S_MAGIC, v.mv_size)))) {
        why = "no holdfast-spool magic in meta";
        goto corrupt;
    }
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;
    mrc = s_meta_get(txn, self->meta, "version", &v);
    if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && v.mv_size != 4)) {
        why = "missing or malformed format version";
        goto corrupt;
    }
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;
    const uint8_t *vb = v.mv_data;
    uint32_t version = (uint32_t)vb[0] << 24 | (uint32_t)vb[1] << 16 | (uint32_t)vb[2] << 8 | vb[3];
    if (version != S_VERSION) {
        hf_log_error(S_LOG, "open dir=%s: spool format version=%u, this build reads only %u; "
                            "left untouched err=HF_ECORRUPT", self->dir, version, S_VERSION);
        rc = HF_ECORRUPT;
        goto fail;
    }

    struct {
        const char *key;
        uint64_t *dst;
    } fields[1 + 2 * HF_LANE_COUNT];
    size_t nf = 0;
    fields[nf].key = "epoch";
    fields[nf++].dst = &self->epoch;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        fields[nf].key = s_last_key[l];
        fields[nf++].dst = &self->last_seq[l];
        fields[nf].key = s_acked_key[l];
        fields[nf++].dst = &self->acked[l];
    }
    for (size_t i = 0; i < nf; i++) {
        mrc = s_meta_get(txn, self->meta, fields[i].key, &v);
        if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && v.mv_size != 8)) {
            why = "meta field missing or malformed";
            goto corrupt;
        }
        if (mrc != MDB_SUCCESS)
            goto mdb_fail;
        *fields[i].dst = s_get_be64(v.mv_data);
    }
    if (self->epoch == 0) {
        why = "epoch is 0";
        goto corrupt;
    }

    /* Every key of a lane lies in (acked, last_seq]; every key of "thin"
     * (decimated data-lane history) is also below every key of "data". */
    uint64_t first[HF_LANE_COUNT], last[HF_LANE_COUNT], n;
    for (int l = 0; l < HF_LANE_COUNT; l++) {
        if (self->acked[l] > self->last_seq[l]) {
            why = "acked beyond last seq";
            goto corrupt;
        }
        mrc = s_open_db_bounds(txn, s_lane_db[l], &self->lane_dbi[l], &n, &first[l], &last[l]);
        if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
            why = "lane database missing";
            goto corrupt;
        }
        if (mrc == MDB_CORRUPTED || (n && (first[l] <= self->acked[l] ||
                                           last[l] > self->last_seq[l]))) {
            why = "lane holds seqs outside (acked, last]";
            goto corrupt;
        }
        if (mrc != MDB_SUCCESS)
            goto mdb_fail;
        self->depth[l] = n;
    }
    uint64_t tfirst, tlast;
    mrc = s_open_db_bounds(txn, "thin", &self->thin_dbi, &n, &tfirst, &tlast);
    if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
        why = "thin database missing";
        goto corrupt;
    }
    if (mrc == MDB_CORRUPTED ||
        (n && (tfirst <= self->acked[HF_LANE_DATA] || tlast > self->last_seq[HF_LANE_DATA] ||
               (self->depth[HF_LANE_DATA] && tlast >= first[HF_LANE_DATA])))) {
        why = "thin database holds seqs outside (acked, first of data)";
        goto corrupt;
    }
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;
    self->thin_depth = n;
    self->depth[HF_LANE_DATA] += n;
    /* Nothing was written; committing (not aborting) keeps the dbi handles
     * open for later transactions. */
    mrc = mdb_txn_commit(txn);
    txn = NULL;
    if (mrc != MDB_SUCCESS)
        goto mdb_fail;
    *created = false;
    return HF_OK;

corrupt:
    hf_log_error(S_LOG, "open dir=%s: %s; refusing it, left untouched err=HF_ECORRUPT",
                 self->dir, why);
    rc = HF_ECORRUPT;
    goto fail;
mdb_fail:
    rc = s_map_mdb(mrc);
    hf_log_error(S_LOG, "open dir=%s: %s err=%s", self->dir, mdb_strerror(mrc), hf_errname(rc));
fail:
    if (txn)
        mdb_txn_abort(txn);
    self->epoch = 0; /* marks "not opened" for close */
    return rc;
}
