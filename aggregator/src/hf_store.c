/* hf_store.c - the aggregator's durable store on LMDB.
 *
 * Design notes:
 * - Keys are engine-id bytes, a 0x00 separator, then big-endian integers, so
 *   LMDB's default memcmp order is (engine, ordinal, lane, seq) and an
 *   engine's keys form one contiguous range (ids never contain 0x00; the
 *   separator also keeps "ab" from being a prefix match of "abc").
 * - Values are fixed big-endian layouts (docs/store.md), never raw structs,
 *   so the file does not depend on padding or host byte order. Readers
 *   accept longer values than they know (room for appended fields) and
 *   refuse shorter ones as corrupt.
 * - Every write is one function run inside s_write(), which owns the retry
 *   on MDB_MAP_FULL: abort, grow the map with no transaction open (LMDB does
 *   not check this; we can guarantee it because no transaction outlives a
 *   call), run the function again from scratch. Write functions are
 *   therefore re-runnable: they read everything they need inside the txn.
 * - Records are appended with MDB_APPEND when the batch's first key sorts
 *   after the last key of the records DB (the common case: one busy engine,
 *   or the newest engine); otherwise plain puts. Encoding goes through one
 *   stack buffer; no allocation per record.
 * - The run table is updated through a one-row cache: a batch of samples of
 *   one run costs one get and one put of the run row.
 *
 * Invariants (see hf_store.h): records and the acked cursor are written in
 * one transaction; run rows are derived only from committed records;
 * foreign data is refused untouched; sticky failure after MDB_PANIC or
 * detected corruption.
 */
#include "hf_store.h"

#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "hf_fs.h"
#include "hf_log.h"
#include "hf_proto.h"

#define S_MAGIC "holdfast-store"
#define S_MIN_MAP (1u << 20)           /* bytes; smallest accepted map size    */
#define S_KEY_MAX (HF_ENGINE_ID_MAX + 14) /* bytes; longest key we build       */
#define S_ENGINE_ROW 53                /* bytes of an engine row (formats 1, 2) */
#define S_EPOCH_ROW 28                 /* bytes of an epoch row (formats 1, 2) */
#define S_RUN_FIXED 42                 /* bytes of a run row before its texts  */
#define S_RUN_ROW_MAX (S_RUN_FIXED + 1 + HF_TEXT_MAX + 2 + HF_STORE_CHANNELS_MAX + 1 + 48 + 8)
#define S_FULL_MARGIN (4u << 20)     /* bytes free under which EIO means ENOSPC */
#define S_DEFAULT_SCAN 1000000         /* records read per export call          */

/* Each engine's records live in a table of their own, "r:<engine>", keyed
 * (engine, 0, ordinal, lane, seq) like the format-1 shared table. In one
 * shared B-tree, every engine appends in the middle of the tree, next to
 * the first keys of the engine after it: LMDB splits such pages in half,
 * so every page of records stayed half empty and a commit across 256
 * engines wrote ~290 bytes per 33-byte sample. In its own table an engine
 * appends at the end (MDB_APPEND, pages filled): half the pages, twice the
 * records per second (docs/store.md, hf-bench lmdb-engines round|dbi). */
typedef struct {
    MDB_dbi dbi;        /* 0: empty slot (0 is LMDB's free-page table)      */
    bool pending;       /* opened in the running write txn: dropped on abort */
    char engine[HF_ENGINE_ID_MAX + 1];
} s_rdb_t;

#define S_CORE_DBS 16       /* maxdbs beside the engines' record tables      */
#define S_RDB_MAX 4096      /* engines' record tables a store has room for   */
#define S_RDB_PREFIX "r:"

struct hf_store_s {
    MDB_env *env;
    MDB_dbi db_meta;
    MDB_dbi db_engines;
    MDB_dbi db_epochs;
    MDB_dbi db_ordinals;
    s_rdb_t *rdb;       /* rdb_cap slots: engine -> its records table (hash) */
    uint32_t rdb_cap;   /* power of two, >= 2 * rdb_max                    */
    uint32_t rdb_n;     /* tables open                                      */
    uint32_t rdb_max;   /* tables the env has room for (maxdbs - core)      */
    bool rdb_pending;   /* some slots were opened in the running write txn  */
    MDB_dbi legacy;     /* format 1 opened read-only: its shared records table
                         * serves every engine (keys carry the engine); 0 if not */
    MDB_dbi db_runs;
    MDB_dbi db_gaps;    /* engine 0 ordinal lane first -> last: announced drops */
    MDB_dbi db_outages; /* engine 0 start_ns -> end_ns, reason: availability history */
    MDB_dbi db_backlogs; /* engine 0 ordinal lane first -> last: records replayed from a backlog */
    size_t map_bytes; /* current map size (bytes)                 */
    size_t max_bytes; /* growth bound (bytes)                     */
    hf_err_t broken;  /* HF_OK, or the sticky error that broke us */
    bool readonly;    /* opened MDB_RDONLY: reads only           */
    char *dir;        /* for log lines                            */
};

typedef struct {
    uint32_t ordinal;
    uint64_t acked[HF_LANE_COUNT];
    uint64_t first_seen_ns;
} s_epoch_row_t;

/* ---- byte helpers --------------------------------------------------------- */

static void
s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void
s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
s_get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* engine 0x00: the prefix of every per-engine key. Returns its length. */
static size_t
s_key_prefix(uint8_t *k, const char *engine, size_t elen)
{
    memcpy(k, engine, elen);
    k[elen] = 0;
    return elen + 1;
}

static size_t
s_key_u64(uint8_t *k, const char *engine, size_t elen, uint64_t v)
{
    size_t n = s_key_prefix(k, engine, elen);
    s_put64(k + n, v);
    return n + 8;
}

static size_t
s_key_ord(uint8_t *k, const char *engine, size_t elen, uint32_t ord)
{
    size_t n = s_key_prefix(k, engine, elen);
    s_put32(k + n, ord);
    return n + 4;
}

static size_t
s_key_rec(uint8_t *k, const char *engine, size_t elen, uint32_t ord, uint8_t lane, uint64_t seq)
{
    size_t n = s_key_prefix(k, engine, elen);
    s_put32(k + n, ord);
    k[n + 4] = lane;
    s_put64(k + n + 5, seq);
    return n + 13;
}

static int
s_has_prefix(const MDB_val *k, const uint8_t *prefix, size_t plen)
{
    return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}

/* Put cur on the newest key of engine in a database keyed engine 0 u64
 * (runs, outages): *k / *v are that entry (k may point into kb, which the
 * caller provides, S_KEY_MAX bytes). MDB_NOTFOUND when the engine has none. */
static int
s_seek_newest(MDB_cursor *cur, const char *engine, size_t elen, MDB_val *k, MDB_val *v,
              uint8_t *kb)
{
    uint8_t prefix[S_KEY_MAX];
    size_t plen = s_key_prefix(prefix, engine, elen);
    k->mv_data = kb;
    k->mv_size = s_key_u64(kb, engine, elen, UINT64_MAX);
    int mrc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (mrc == MDB_NOTFOUND)
        mrc = mdb_cursor_get(cur, k, v, MDB_LAST);
    else if (mrc == MDB_SUCCESS && !s_has_prefix(k, prefix, plen))
        mrc = mdb_cursor_get(cur, k, v, MDB_PREV);
    if (mrc == MDB_SUCCESS && !s_has_prefix(k, prefix, plen))
        mrc = MDB_NOTFOUND;
    return mrc;
}

/* ---- rows ----------------------------------------------------------------- */

static void
s_engine_pack(const hf_store_engine_t *e, uint8_t *b)
{
    s_put64(b, e->current_epoch);
    s_put32(b + 8, e->epoch_count);
    s_put64(b + 12, e->records[0]);
    s_put64(b + 20, e->records[1]);
    s_put64(b + 28, e->first_seen_ns);
    s_put64(b + 36, e->last_seen_ns);
    s_put64(b + 44, e->last_run);
    b[52] = e->last_run_state;
}

/* MDB_CORRUPTED for a short row or a bad key: it flows down the same error
 * path as LMDB's own corruption reports. */
static int
s_engine_unpack(const MDB_val *k, const MDB_val *v, hf_store_engine_t *e)
{
    if (v->mv_size < S_ENGINE_ROW || k->mv_size == 0 || k->mv_size > HF_ENGINE_ID_MAX)
        return MDB_CORRUPTED;
    const uint8_t *b = v->mv_data;
    memset(e, 0, sizeof *e);
    memcpy(e->engine, k->mv_data, k->mv_size);
    e->engine[k->mv_size] = 0;
    e->current_epoch = s_get64(b);
    e->epoch_count = s_get32(b + 8);
    e->records[0] = s_get64(b + 12);
    e->records[1] = s_get64(b + 20);
    e->first_seen_ns = s_get64(b + 28);
    e->last_seen_ns = s_get64(b + 36);
    e->last_run = s_get64(b + 44);
    e->last_run_state = b[52];
    return MDB_SUCCESS;
}

static void
s_epoch_pack(const s_epoch_row_t *r, uint8_t *b)
{
    s_put32(b, r->ordinal);
    s_put64(b + 4, r->acked[0]);
    s_put64(b + 12, r->acked[1]);
    s_put64(b + 20, r->first_seen_ns);
}

static int
s_epoch_unpack(const MDB_val *v, s_epoch_row_t *r)
{
    if (v->mv_size < S_EPOCH_ROW)
        return MDB_CORRUPTED;
    const uint8_t *b = v->mv_data;
    r->ordinal = s_get32(b);
    r->acked[0] = s_get64(b + 4);
    r->acked[1] = s_get64(b + 12);
    r->first_seen_ns = s_get64(b + 20);
    return MDB_SUCCESS;
}

static size_t
s_run_pack(const hf_store_run_t *r, uint8_t *b)
{
    b[0] = r->state;
    b[1] = r->last_event;
    s_put64(b + 2, r->started_ts_ns);
    s_put64(b + 10, r->ended_ts_ns);
    s_put64(b + 18, r->last_event_ts_ns);
    s_put64(b + 26, r->samples);
    s_put64(b + 34, r->control);
    size_t n = S_RUN_FIXED;
    size_t ml = strnlen(r->method, HF_TEXT_MAX);
    b[n++] = (uint8_t)ml;
    memcpy(b + n, r->method, ml);
    n += ml;
    size_t cl = strnlen(r->channels, HF_STORE_CHANNELS_MAX);
    b[n++] = (uint8_t)(cl >> 8);
    b[n++] = (uint8_t)cl;
    memcpy(b + n, r->channels, cl);
    n += cl;
    size_t zl = strnlen(r->cause, sizeof r->cause - 1);
    b[n++] = (uint8_t)zl;
    memcpy(b + n, r->cause, zl);
    n += zl;
    s_put64(b + n, r->last_ts_ns);
    return n + 8;
}

/* Fills everything but engine and run (taken from the key by the caller). */
static int
s_run_unpack(const MDB_val *v, hf_store_run_t *r)
{
    const uint8_t *b = v->mv_data;
    size_t len = v->mv_size;
    if (len < S_RUN_FIXED + 3)
        return MDB_CORRUPTED;
    r->state = b[0];
    r->last_event = b[1];
    r->started_ts_ns = s_get64(b + 2);
    r->ended_ts_ns = s_get64(b + 10);
    r->last_event_ts_ns = s_get64(b + 18);
    r->samples = s_get64(b + 26);
    r->control = s_get64(b + 34);
    size_t n = S_RUN_FIXED;
    size_t ml = b[n++];
    if (ml > HF_TEXT_MAX || n + ml + 2 > len)
        return MDB_CORRUPTED;
    memcpy(r->method, b + n, ml);
    r->method[ml] = 0;
    n += ml;
    size_t cl = ((size_t)b[n] << 8) | b[n + 1];
    n += 2;
    if (cl > HF_STORE_CHANNELS_MAX || n + cl > len)
        return MDB_CORRUPTED;
    memcpy(r->channels, b + n, cl);
    r->channels[cl] = 0;
    n += cl;
    r->cause[0] = 0;
    if (n < len) { /* rows written before causes existed end here */
        size_t zl = b[n++];
        if (zl >= sizeof r->cause || n + zl > len)
            return MDB_CORRUPTED;
        memcpy(r->cause, b + n, zl);
        r->cause[zl] = 0;
        n += zl;
        if (n + 8 <= len)
            r->last_ts_ns = s_get64(b + n);
    }
    return MDB_SUCCESS;
}

/* Engine and run id out of a runs key (engine 0x00 run). */
static int
s_run_key_unpack(const MDB_val *k, hf_store_run_t *r)
{
    const uint8_t *b = k->mv_data;
    if (k->mv_size < 10 || k->mv_size > HF_ENGINE_ID_MAX + 9 || b[k->mv_size - 9] != 0)
        return MDB_CORRUPTED;
    size_t elen = k->mv_size - 9;
    memcpy(r->engine, b, elen);
    r->engine[elen] = 0;
    r->run = s_get64(b + elen + 1);
    return MDB_SUCCESS;
}

/* ---- errors and the write loop ------------------------------------------- */

static hf_err_t
s_map_mdb(int mrc)
{
    switch (mrc) {
    case MDB_SUCCESS: return HF_OK;
    case MDB_MAP_FULL: return HF_EFULL;
    case MDB_NOTFOUND: return HF_ENOTFOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_VALSIZE: return HF_ECORRUPT;
    case ENOMEM: return HF_ENOMEM;
    case ENOSPC:
    case EDQUOT: return HF_EFULL; /* no room on the disk: as full as a full map */
    case EIO:
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOTDIR:
    case EROFS: return HF_EIO;
    default: return HF_ESTORE;
    }
}

/* Map, log, and go sticky on errors after which the env cannot be trusted. */
static hf_err_t
s_fail(hf_store_t *self, const char *what, int mrc)
{
    hf_err_t rc = s_map_mdb(mrc);
    hf_log_error("store", "%s dir=%s err=%s mdb=\"%s\"", what, self->dir ? self->dir : "?",
                 hf_errname(rc), mdb_strerror(mrc));
    if (mrc == MDB_PANIC || rc == HF_ECORRUPT)
        self->broken = rc == HF_OK ? HF_ESTORE : rc;
    return rc;
}

/* LMDB turns a short write into EIO (mdb_page_flush), and a write that
 * runs out of disk space is short: a failed commit on a disk with almost
 * nothing free is taken as ENOSPC. */
static bool
s_disk_nearly_full(const hf_store_t *self)
{
    struct statvfs vfs;
    if (!self->dir || statvfs(self->dir, &vfs) != 0)
        return false;
    return (uint64_t)vfs.f_bavail * vfs.f_frsize < S_FULL_MARGIN;
}

static hf_err_t
s_grow(hf_store_t *self)
{
    if (self->map_bytes >= self->max_bytes) {
        hf_log_error("store", "full dir=%s map=%zu max=%zu err=HF_EFULL", self->dir,
                     self->map_bytes, self->max_bytes);
        return HF_EFULL;
    }
    size_t next = self->map_bytes > self->max_bytes / 2 ? self->max_bytes : self->map_bytes * 2;
    /* Safe only because no transaction of ours is open here (see top). */
    int mrc = mdb_env_set_mapsize(self->env, next);
    if (mrc != MDB_SUCCESS)
        return s_fail(self, "grow", mrc);
    MDB_envinfo info;
    mdb_env_info(self->env, &info);
    self->map_bytes = info.me_mapsize;
    hf_log_info("store", "grow dir=%s map=%zu max=%zu", self->dir, self->map_bytes,
                self->max_bytes);
    return HF_OK;
}

/* A write step: returns an MDB code; *herr carries a logical outcome
 * (HF_EPROTO ...) that aborts without logging as a store failure; *noop
 * asks for an abort because nothing needs writing. */
/* ---- engines' record tables ---------------------------------------------- */

static uint32_t
s_hash(const char *engine, size_t elen)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < elen; i++)
        h = (h ^ (uint8_t)engine[i]) * 16777619u;
    return h;
}

/* The engine's slot, or the empty slot where it would go. */
static s_rdb_t *
s_rdb_slot(hf_store_t *self, const char *engine, size_t elen)
{
    uint32_t mask = self->rdb_cap - 1;
    for (uint32_t i = s_hash(engine, elen) & mask;; i = (i + 1) & mask) {
        s_rdb_t *t = &self->rdb[i];
        if (t->dbi == 0 || (strncmp(t->engine, engine, elen) == 0 && t->engine[elen] == 0))
            return t; /* the table is never more than half full: this ends */
    }
}

/* Fill slot t (empty) with the engine's table dbi, opened in the running
 * txn: pending until it commits. */
static void
s_rdb_add(hf_store_t *self, s_rdb_t *t, const char *engine, size_t elen, MDB_dbi dbi)
{
    t->dbi = dbi;
    t->pending = true;
    memcpy(t->engine, engine, elen);
    t->engine[elen] = 0;
    self->rdb_n++;
    self->rdb_pending = true;
}

/* The engine's records table in txn: *dbi. MDB_NOTFOUND if it has none and
 * !create (create needs a write txn); MDB_DBS_FULL if the store already
 * holds S_RDB_MAX engines' tables. */
static int
s_rdb(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, bool create, MDB_dbi *dbi)
{
    if (self->legacy) {
        *dbi = self->legacy;
        return MDB_SUCCESS;
    }
    s_rdb_t *t = s_rdb_slot(self, engine, elen);
    if (t->dbi != 0) {
        *dbi = t->dbi;
        return MDB_SUCCESS;
    }
    if (!create)
        return MDB_NOTFOUND; /* every table there is was opened with the store */
    if (self->rdb_n >= self->rdb_max) {
        hf_log_error("store", "engine=%s: no room for another engine's records table "
                              "(the store holds %u, its bound) err=HF_ESTATE",
                     engine, self->rdb_n);
        return MDB_DBS_FULL;
    }
    char name[sizeof S_RDB_PREFIX + HF_ENGINE_ID_MAX];
    snprintf(name, sizeof name, S_RDB_PREFIX "%.*s", (int)elen, engine);
    int mrc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
    if (mrc != MDB_SUCCESS)
        return mrc;
    s_rdb_add(self, t, engine, elen, *dbi);
    return MDB_SUCCESS;
}

/* After a write txn: tables it opened stay (committed) or are forgotten
 * (aborted: LMDB closed their handles). */
static void
s_rdb_settle(hf_store_t *self, bool committed)
{
    if (!self->rdb_pending)
        return;
    self->rdb_pending = false;
    if (committed) {
        for (uint32_t i = 0; i < self->rdb_cap; i++)
            self->rdb[i].pending = false;
        return;
    }
    /* rebuild without them (rare: a txn that made a new engine failed) */
    s_rdb_t *old = self->rdb;
    self->rdb = calloc(self->rdb_cap, sizeof *self->rdb);
    if (!self->rdb) { /* keep the old table, minus nothing: mark the env broken */
        self->rdb = old;
        self->broken = HF_ENOMEM;
        return;
    }
    self->rdb_n = 0;
    for (uint32_t i = 0; i < self->rdb_cap; i++) {
        if (old[i].dbi == 0 || old[i].pending)
            continue;
        size_t elen = strlen(old[i].engine);
        *s_rdb_slot(self, old[i].engine, elen) = old[i];
        self->rdb_n++;
    }
    free(old);
}

typedef int(s_write_fn)(hf_store_t *self, MDB_txn *txn, void *ctx, hf_err_t *herr, int *noop);

static hf_err_t
s_write(hf_store_t *self, const char *what, s_write_fn *fn, void *ctx)
{
    for (;;) {
        MDB_txn *txn = NULL;
        int mrc = mdb_txn_begin(self->env, NULL, 0, &txn);
        if (mrc == MDB_MAP_RESIZED) {
            /* another process grew the map: adopt its size, try again */
            mrc = mdb_env_set_mapsize(self->env, 0);
            if (mrc == MDB_SUCCESS)
                continue;
        }
        if (mrc != MDB_SUCCESS)
            return s_fail(self, what, mrc);
        hf_err_t herr = HF_OK;
        int noop = 0;
        mrc = fn(self, txn, ctx, &herr, &noop);
        if (mrc == MDB_SUCCESS && herr == HF_OK && !noop) {
            mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
            s_rdb_settle(self, mrc == MDB_SUCCESS);
            if (mrc == MDB_SUCCESS)
                return HF_OK;
            if (mrc == EIO && s_disk_nearly_full(self))
                mrc = ENOSPC; /* LMDB reports a short write as EIO */
        } else {
            mdb_txn_abort(txn);
            s_rdb_settle(self, false);
            if (mrc == MDB_SUCCESS)
                return herr;
        }
        if (mrc != MDB_MAP_FULL)
            return s_fail(self, what, mrc);
        hf_err_t grc = s_grow(self);
        if (grc != HF_OK)
            return grc;
    }
}

static hf_err_t
s_check(hf_store_t *self)
{
    assert(self);
    return self->broken;
}

static hf_err_t
s_read_begin(hf_store_t *self, MDB_txn **txn)
{
    int mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn);
    if (mrc == MDB_MAP_RESIZED) {
        mrc = mdb_env_set_mapsize(self->env, 0);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn);
    }
    if (mrc != MDB_SUCCESS) {
        *txn = NULL;
        return s_fail(self, "read begin", mrc);
    }
    return HF_OK;
}

static hf_err_t
s_engine_arg(const char *engine, size_t *elen)
{
    if (!engine || !hf_engine_id_valid(engine))
        return HF_EINVAL;
    *elen = strlen(engine);
    return HF_OK;
}

/* ---- open / close --------------------------------------------------------- */

hf_store_opts_t
hf_store_opts_default(void)
{
    hf_store_opts_t o;
    memset(&o, 0, sizeof o);
    o.map_bytes = (size_t)256 << 20;
    o.max_bytes = (size_t)64 << 30;
    o.readonly = false;
    return o;
}

/* 0 if dir is an existing directory, else an errno value. */
/* Format 1 kept every engine's records in one table, "records": move them
 * to their engines' tables (keys unchanged, sorted: appends), drop it, and
 * say format 2. One transaction: a crash leaves format 1 as it was. */
static int
s_upgrade_1(hf_store_t *self, MDB_txn *txn)
{
    MDB_dbi old;
    int mrc = mdb_dbi_open(txn, "records", 0, &old);
    if (mrc == MDB_NOTFOUND)
        mrc = MDB_SUCCESS;
    else if (mrc == MDB_SUCCESS) {
        MDB_cursor *cur = NULL;
        size_t moved = 0;
        mrc = mdb_cursor_open(txn, old, &cur);
        MDB_val k, v;
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (mrc == MDB_SUCCESS) {
            const char *nul = memchr(k.mv_data, 0, k.mv_size);
            size_t elen = nul ? (size_t)(nul - (const char *)k.mv_data) : 0;
            if (elen == 0 || elen > HF_ENGINE_ID_MAX) {
                mrc = MDB_CORRUPTED;
                break;
            }
            MDB_dbi dbi;
            mrc = s_rdb(self, txn, k.mv_data, elen, true, &dbi);
            if (mrc == MDB_SUCCESS)
                mrc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
            if (mrc == MDB_SUCCESS) {
                moved++;
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            }
        }
        if (cur)
            mdb_cursor_close(cur);
        if (mrc == MDB_NOTFOUND)
            mrc = mdb_drop(txn, old, 1);
        if (mrc == MDB_SUCCESS)
            hf_log_info("store", "upgraded dir=%s from format 1 to %u: %zu records moved to "
                                 "%u engines' tables", self->dir, HF_STORE_FORMAT_VERSION, moved,
                        self->rdb_n);
    }
    if (mrc != MDB_SUCCESS)
        return mrc;
    uint8_t ver[4];
    s_put32(ver, HF_STORE_FORMAT_VERSION);
    MDB_val k = {strlen("version"), "version"}, v = {4, ver};
    return mdb_put(txn, self->db_meta, &k, &v, 0);
}

/* Opens the DBs. A fresh environment gets them created plus the magic; an
 * environment with data but no valid meta is foreign: the txn is aborted so
 * nothing is written. */
static int
s_open_dbs(hf_store_t *self, MDB_txn *txn, void *ctx, hf_err_t *herr, int *noop)
{
    (void)ctx;
    (void)noop;
    MDB_dbi main_db;
    MDB_stat st;
    int mrc = mdb_dbi_open(txn, NULL, 0, &main_db);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_stat(txn, main_db, &st);
    if (mrc != MDB_SUCCESS)
        return mrc;
    int fresh = st.ms_entries == 0;
    bool upgrade = false, legacy = false;
    if (fresh && self->readonly) {
        hf_log_error("store", "open dir=%s readonly: no store there err=HF_ENOTFOUND", self->dir);
        *herr = HF_ENOTFOUND;
        return MDB_SUCCESS;
    }
    mrc = mdb_dbi_open(txn, "meta", fresh ? MDB_CREATE : 0, &self->db_meta);
    if (mrc == MDB_NOTFOUND || mrc == MDB_INCOMPATIBLE) {
        hf_log_error("store", "foreign dir=%s reason=no-meta err=HF_ECORRUPT", self->dir);
        *herr = HF_ECORRUPT;
        return MDB_SUCCESS;
    }
    if (mrc != MDB_SUCCESS)
        return mrc;
    MDB_val k = {strlen("magic"), "magic"};
    MDB_val v;
    uint8_t ver[4];
    if (fresh) {
        v.mv_size = strlen(S_MAGIC);
        v.mv_data = S_MAGIC;
        mrc = mdb_put(txn, self->db_meta, &k, &v, 0);
        if (mrc != MDB_SUCCESS)
            return mrc;
        s_put32(ver, HF_STORE_FORMAT_VERSION);
        k.mv_size = strlen("version");
        k.mv_data = "version";
        v.mv_size = 4;
        v.mv_data = ver;
        mrc = mdb_put(txn, self->db_meta, &k, &v, 0);
        if (mrc != MDB_SUCCESS)
            return mrc;
    } else {
        mrc = mdb_get(txn, self->db_meta, &k, &v);
        if (mrc != MDB_SUCCESS || v.mv_size != strlen(S_MAGIC) ||
            memcmp(v.mv_data, S_MAGIC, v.mv_size) != 0) {
            hf_log_error("store", "foreign dir=%s reason=bad-magic err=HF_ECORRUPT", self->dir);
            *herr = HF_ECORRUPT;
            return MDB_SUCCESS;
        }
        k.mv_size = strlen("version");
        k.mv_data = "version";
        mrc = mdb_get(txn, self->db_meta, &k, &v);
        uint32_t found = (mrc == MDB_SUCCESS && v.mv_size == 4) ? s_get32(v.mv_data) : 0;
        legacy = found == 1 && self->readonly;
        if (found != HF_STORE_FORMAT_VERSION && found != 1) {
            hf_log_error("store", "version dir=%s found=%u want=%u err=HF_ECORRUPT", self->dir,
                         found, HF_STORE_FORMAT_VERSION);
            *herr = HF_ECORRUPT;
            return MDB_SUCCESS;
        }
        upgrade = found == 1 && !self->readonly;
    }
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"engines", &self->db_engines}, {"epochs", &self->db_epochs},
               {"ordinals", &self->db_ordinals}, {"runs", &self->db_runs}, {"gaps", &self->db_gaps},
               {"outages", &self->db_outages}, {"backlogs", &self->db_backlogs}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
        mrc = mdb_dbi_open(txn, dbs[i].name, self->readonly ? 0 : MDB_CREATE, dbs[i].dbi);
        if (mrc == MDB_NOTFOUND && self->readonly) {
            hf_log_error("store", "open dir=%s readonly: table %s missing err=HF_ECORRUPT",
                         self->dir, dbs[i].name);
            *herr = HF_ECORRUPT;
            return MDB_SUCCESS;
        }
        if (mrc != MDB_SUCCESS)
            return mrc;
    }
    if (upgrade) {
        mrc = s_upgrade_1(self, txn);
        if (mrc != MDB_SUCCESS)
            return mrc;
    }
    if (legacy) {
        /* read as it is (a format-1 backup being checked, say): the
         * aggregator upgrades it when it opens it */
        mrc = mdb_dbi_open(txn, "records", 0, &self->legacy);
        if (mrc == MDB_NOTFOUND) {
            hf_log_error("store", "open dir=%s format 1 without its records table "
                                  "err=HF_ECORRUPT", self->dir);
            *herr = HF_ECORRUPT;
            return MDB_SUCCESS;
        }
        return mrc;
    }
    /* every engine's records table, opened once for the store's life */
    MDB_cursor *ec = NULL;
    mrc = mdb_cursor_open(txn, self->db_engines, &ec);
    MDB_val ek, ev;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(ec, &ek, &ev, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (ek.mv_size == 0 || ek.mv_size > HF_ENGINE_ID_MAX) {
            mrc = MDB_CORRUPTED;
            break;
        }
        MDB_dbi dbi;
        char name[sizeof S_RDB_PREFIX + HF_ENGINE_ID_MAX];
        snprintf(name, sizeof name, S_RDB_PREFIX "%.*s", (int)ek.mv_size,
                 (const char *)ek.mv_data);
        s_rdb_t *t = s_rdb_slot(self, ek.mv_data, ek.mv_size);
        mrc = t->dbi != 0 ? MDB_KEYEXIST : mdb_dbi_open(txn, name, 0, &dbi);
        if (mrc == MDB_KEYEXIST) {
            mrc = MDB_SUCCESS; /* opened by the upgrade */
        } else if (mrc == MDB_SUCCESS) {
            s_rdb_add(self, t, ek.mv_data, ek.mv_size, dbi);
        } else if (mrc != MDB_NOTFOUND) {
            break; /* NOTFOUND: an engine that never sent a record */
        }
        mrc = mdb_cursor_get(ec, &ek, &ev, MDB_NEXT);
    }
    if (ec)
        mdb_cursor_close(ec);
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

hf_store_t *
hf_store_open(const char *dir, const hf_store_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_OK;
    int mrc = MDB_SUCCESS;
    hf_store_t *self = NULL;
    hf_store_opts_t o = opts ? *opts : hf_store_opts_default();
    if (!dir || !*dir || o.map_bytes < S_MIN_MAP || o.max_bytes < o.map_bytes) {
        hf_log_error("store", "open dir=%s err=HF_EINVAL reason=bad-options map=%zu max=%zu",
                     dir ? dir : "(null)", o.map_bytes, o.max_bytes);
        rc = HF_EINVAL;
        goto fail;
    }
    self = calloc(1, sizeof *self);
    if (!self || !(self->dir = strdup(dir))) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->max_bytes = o.max_bytes;
    self->readonly = o.readonly;
    int e = o.readonly ? hf_isdir(dir) : hf_mkdirs(dir);
    if (e != 0) {
        hf_log_error("store", "mkdir dir=%s err=HF_EIO errno=\"%s\"", dir, strerror(e));
        rc = HF_EIO;
        goto fail;
    }
    /* Room for S_RDB_MAX engines' records tables: LMDB fixes it at open */
    self->rdb_max = S_RDB_MAX;
    for (self->rdb_cap = 1; self->rdb_cap < 2 * self->rdb_max; self->rdb_cap <<= 1)
        ;
    self->rdb = calloc(self->rdb_cap, sizeof *self->rdb);
    if (!self->rdb) {
        rc = HF_ENOMEM;
        goto fail;
    }
    mrc = mdb_env_create(&self->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(self->env, S_CORE_DBS + self->rdb_max);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(self->env, o.map_bytes);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open(self->env, dir, MDB_NOTLS | (o.readonly ? MDB_RDONLY : 0), 0600);
    if (mrc != MDB_SUCCESS) {
        rc = s_fail(self, "open", mrc);
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(self->env, &dead);
    if (dead > 0)
        hf_log_warn("store", "stale readers cleared dir=%s count=%d", dir, dead);
    MDB_envinfo info;
    MDB_stat est;
    mdb_env_info(self->env, &info);
    if (mdb_env_stat(self->env, &est) == MDB_SUCCESS) {
        /* A data file shorter than the pages its meta page claims (cut
         * short by a copy, a full disk, a bad restore) would SIGBUS on
         * the first read of a missing page: refuse it here. */
        char path[4096];
        struct stat sb;
        size_t need = ((size_t)info.me_last_pgno + 1) * est.ms_psize;
        snprintf(path, sizeof path, "%s/data.mdb", dir);
        if (stat(path, &sb) == 0 && (size_t)sb.st_size < need) {
            hf_log_error("store", "open dir=%s: data.mdb is %lld bytes but its meta needs "
                                  "%zu: truncated; refusing it, left untouched err=HF_ECORRUPT",
                         dir, (long long)sb.st_size, need);
            rc = HF_ECORRUPT;
            goto fail;
        }
    }
    self->map_bytes = info.me_mapsize;
    if (self->map_bytes > self->max_bytes)
        self->max_bytes = self->map_bytes; /* the file is already that big */
    if (o.readonly) {
        /* the same checks in a read transaction: handles opened in it stay
         * open once it commits */
        MDB_txn *txn = NULL;
        hf_err_t herr = HF_OK;
        int noop = 0;
        mrc = mdb_txn_begin(self->env, NULL, MDB_RDONLY, &txn);
        if (mrc == MDB_SUCCESS)
            mrc = s_open_dbs(self, txn, NULL, &herr, &noop);
        if (mrc == MDB_SUCCESS && herr == HF_OK) {
            mrc = mdb_txn_commit(txn);
            s_rdb_settle(self, mrc == MDB_SUCCESS);
        } else if (txn) {
            mdb_txn_abort(txn);
            s_rdb_settle(self, false);
        }
        rc = mrc != MDB_SUCCESS ? s_fail(self, "open", mrc) : herr;
    } else {
        rc = s_write(self, "open", s_open_dbs, NULL);
    }
    if (rc != HF_OK)
        goto fail;
    self->broken = HF_OK;
    hf_log_info("store", "open dir=%s map=%zu max=%zu used=%zu", dir, self->map_bytes,
                self->max_bytes, hf_store_used_bytes(self));
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_store_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_store_close(hf_store_t **self_p)
{
    assert(self_p);
    hf_store_t *self = *self_p;
    if (!self)
        return;
    if (self->env)
        mdb_env_close(self->env);
    free(self->rdb);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

/* ---- engine + epoch rows -------------------------------------------------- */

typedef struct {
    hf_store_engine_t eng; /* engine row, loaded or new            */
    s_epoch_row_t ep;      /* epoch row, loaded or new             */
    int eng_new;           /* engine row did not exist             */
    int ep_new;            /* epoch row did not exist              */
} s_rows_t;

/* Load (or initialise in memory) the engine and epoch rows. Nothing is
 * written: s_rows_put does that. */
static int
s_rows_get(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint64_t epoch,
           uint64_t now_ns, s_rows_t *r)
{
    memset(r, 0, sizeof *r);
    MDB_val k = {elen, (void *)engine};
    MDB_val v;
    int mrc = mdb_get(txn, self->db_engines, &k, &v);
    if (mrc == MDB_SUCCESS)
        mrc = s_engine_unpack(&k, &v, &r->eng);
    else if (mrc == MDB_NOTFOUND) {
        r->eng_new = 1;
        memcpy(r->eng.engine, engine, elen);
        r->eng.first_seen_ns = now_ns;
        mrc = MDB_SUCCESS;
    }
    if (mrc != MDB_SUCCESS)
        return mrc;
    uint8_t kb[S_KEY_MAX];
    k.mv_data = kb;
    k.mv_size = s_key_u64(kb, engine, elen, epoch);
    mrc = mdb_get(txn, self->db_epochs, &k, &v);
    if (mrc == MDB_SUCCESS)
        return s_epoch_unpack(&v, &r->ep);
    if (mrc != MDB_NOTFOUND)
        return mrc;
    r->ep_new = 1;
    r->ep.ordinal = r->eng.epoch_count;
    r->ep.first_seen_ns = now_ns;
    return MDB_SUCCESS;
}

static int
s_rows_put(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint64_t epoch,
           s_rows_t *r)
{
    uint8_t kb[S_KEY_MAX];
    uint8_t vb[S_ENGINE_ROW];
    MDB_val k, v;
    int mrc;
    if (r->ep_new) {
        uint8_t eb[8];
        s_put64(eb, epoch);
        k.mv_data = kb;
        k.mv_size = s_key_ord(kb, engine, elen, r->ep.ordinal);
        v.mv_data = eb;
        v.mv_size = 8;
        mrc = mdb_put(txn, self->db_ordinals, &k, &v, 0);
        if (mrc != MDB_SUCCESS)
            return mrc;
        r->eng.epoch_count = r->ep.ordinal + 1;
        r->eng.current_epoch = epoch;
        r->ep_new = 0;
    }
    uint8_t pb[S_EPOCH_ROW];
    s_epoch_pack(&r->ep, pb);
    k.mv_data = kb;
    k.mv_size = s_key_u64(kb, engine, elen, epoch);
    v.mv_data = pb;
    v.mv_size = S_EPOCH_ROW;
    mrc = mdb_put(txn, self->db_epochs, &k, &v, 0);
    if (mrc != MDB_SUCCESS)
        return mrc;
    s_engine_pack(&r->eng, vb);
    k.mv_data = (void *)engine;
    k.mv_size = elen;
    v.mv_data = vb;
    v.mv_size = S_ENGINE_ROW;
    return mdb_put(txn, self->db_engines, &k, &v, 0);
}

hf_err_t
hf_store_cursor(hf_store_t *self, const char *engine, uint64_t epoch,
                uint64_t acked[HF_LANE_COUNT])
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen;
    if (!acked || s_engine_arg(engine, &elen) != HF_OK)
        return HF_EINVAL;
    for (int i = 0; i < HF_LANE_COUNT; i++)
        acked[i] = 0;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    uint8_t kb[S_KEY_MAX];
    MDB_val k = {s_key_u64(kb, engine, elen, epoch), kb};
    MDB_val v;
    s_epoch_row_t ep;
    int mrc = mdb_get(txn, self->db_epochs, &k, &v);
    if (mrc == MDB_SUCCESS)
        mrc = s_epoch_unpack(&v, &ep);
    if (mrc == MDB_SUCCESS) {
        for (int i = 0; i < HF_LANE_COUNT; i++)
            acked[i] = ep.acked[i];
    }
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        return HF_OK;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "cursor", mrc);
}

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t epoch;
    uint64_t run;
    uint8_t run_state;
    uint64_t now_ns;
} s_hello_ctx_t;

static int
s_hello_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)noop;
    s_hello_ctx_t *c = vctx;
    s_rows_t r;
    MDB_dbi rdb; /* its records table, made with the engine's row */
    int mrc = s_rdb(self, txn, c->engine, c->elen, true, &rdb);
    if (mrc == MDB_DBS_FULL) {
        *herr = HF_ESTATE; /* logged by s_rdb: a new engine past the bound */
        return MDB_SUCCESS;
    }
    if (mrc == MDB_SUCCESS)
        mrc = s_rows_get(self, txn, c->engine, c->elen, c->epoch, c->now_ns, &r);
    if (mrc != MDB_SUCCESS)
        return mrc;
    r.eng.current_epoch = c->epoch;
    r.eng.last_seen_ns = c->now_ns;
    r.eng.last_run = c->run;
    r.eng.last_run_state = c->run_state;
    return s_rows_put(self, txn, c->engine, c->elen, c->epoch, &r);
}

hf_err_t
hf_store_note_hello(hf_store_t *self, const char *engine, uint64_t epoch, uint64_t run,
                    uint8_t run_state, uint64_t now_ns)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_hello_ctx_t c = {engine, 0, epoch, run, run_state, now_ns};
    if (s_engine_arg(engine, &c.elen) != HF_OK || epoch == 0)
        return HF_EINVAL;
    return s_write(self, "hello", s_hello_txn, &c);
}

/* ---- commit ----------------------------------------------------------------- */

/* One cached run row while a batch is applied. */
typedef struct {
    uint64_t run;     /* 0 = nothing cached */
    int dirty;
    hf_store_run_t row;
} s_run_cache_t;

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t epoch;
    uint8_t lane;
    const hf_record_t *recs;
    size_t n;
    uint64_t now_ns;
    uint64_t acked; /* out */
    size_t dups;    /* out */
    uint64_t close_after; /* 0, or: close open runs but close_keep once past it */
    uint64_t close_keep;
    bool closed;          /* out: that close was done, in this txn */
    size_t ended;         /* out: runs it ended */
} s_commit_ctx_t;

static int
s_run_flush(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, s_run_cache_t *c)
{
    if (!c->run || !c->dirty)
        return MDB_SUCCESS;
    uint8_t kb[S_KEY_MAX];
    uint8_t vb[S_RUN_ROW_MAX];
    MDB_val k = {s_key_u64(kb, engine, elen, c->run), kb};
    MDB_val v = {s_run_pack(&c->row, vb), vb};
    c->dirty = 0;
    return mdb_put(txn, self->db_runs, &k, &v, 0);
}

static int
s_run_load(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint64_t run,
           s_run_cache_t *c)
{
    if (c->run == run)
        return MDB_SUCCESS;
    int mrc = s_run_flush(self, txn, engine, elen, c);
    if (mrc != MDB_SUCCESS)
        return mrc;
    uint8_t kb[S_KEY_MAX];
    MDB_val k = {s_key_u64(kb, engine, elen, run), kb};
    MDB_val v;
    memset(&c->row, 0, sizeof c->row);
    memcpy(c->row.engine, engine, elen);
    c->row.run = run;
    c->run = run;
    mrc = mdb_get(txn, self->db_runs, &k, &v);
    if (mrc == MDB_SUCCESS)
        return s_run_unpack(&v, &c->row);
    if (mrc != MDB_NOTFOUND)
        return mrc;
    c->row.state = HF_RUN_RUNNING; /* a run we hear of first through its records */
    c->dirty = 1;
    return MDB_SUCCESS;
}

/* Number of names in a comma-separated list. */
static size_t
s_count_names(const char *list)
{
    if (!*list)
        return 0;
    size_t n = 1;
    for (; *list; list++)
        n += *list == ',';
    return n;
}

/* HF_EV_CHANNELS: .step is the index of the fragment's first channel, so a
 * long list can come in several events: step 0 starts the list, a fragment
 * whose step equals the names held so far extends it, others are ignored
 * (they would misnumber channels). */
static void
s_apply_channels(hf_store_run_t *row, const hf_record_t *r)
{
    const char *text = r->u.event.text;
    if (r->u.event.step == 0) {
        snprintf(row->channels, sizeof row->channels, "%s", text);
        return;
    }
    size_t have = strlen(row->channels);
    if (s_count_names(row->channels) != r->u.event.step || !*text)
        return;
    if (have + 1 + strlen(text) > HF_STORE_CHANNELS_MAX)
        return;
    row->channels[have] = ',';
    memcpy(row->channels + have + 1, text, strlen(text) + 1);
}

static void
s_apply(hf_store_run_t *row, const hf_record_t *r)
{
    if (r->ts_ns > row->last_ts_ns)
        row->last_ts_ns = r->ts_ns;
    if (r->kind == HF_KIND_SAMPLE) {
        row->samples++;
        return;
    }
    row->control++;
    if (r->kind != HF_KIND_EVENT)
        return;
    uint8_t t = r->u.event.type;
    row->last_event = t;
    row->last_event_ts_ns = r->ts_ns;
    switch (t) {
    case HF_EV_RUN_STARTED:
        row->state = HF_RUN_RUNNING;
        row->started_ts_ns = r->ts_ns;
        row->ended_ts_ns = 0;
        snprintf(row->method, sizeof row->method, "%s", r->u.event.text);
        break;
    case HF_EV_PAUSED: row->state = HF_RUN_PAUSED; break;
    case HF_EV_RESUMED: row->state = HF_RUN_RUNNING; break;
    case HF_EV_COMPLETED:
    case HF_EV_FAILED:
    case HF_EV_ABORTED:
    case HF_EV_INTERRUPTED:
        row->state = t == HF_EV_COMPLETED ? HF_RUN_COMPLETED
                     : t == HF_EV_FAILED  ? HF_RUN_FAILED
                     : t == HF_EV_ABORTED ? HF_RUN_ABORTED
                                          : HF_RUN_INTERRUPTED;
        row->ended_ts_ns = r->ts_ns;
        break;
    case HF_EV_CHANNELS: s_apply_channels(row, r); break;
    default: break; /* STEP and unknown types: last_event only */
    }
}

/* End every open (running or paused) run of engine other than keep as
 * interrupted with cause, at ended_ns (0: the run's last record). At most
 * one run is open at a time once this rule applies, so the newest-first
 * scan stops at the first run that had already ended. */
static int
s_close_open_runs(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint64_t keep,
                  uint64_t ended_ns, const char *cause, size_t *ended)
{
    MDB_cursor *cur = NULL;
    uint8_t prefix[S_KEY_MAX], kb[S_KEY_MAX], vb[S_RUN_ROW_MAX];
    size_t plen = s_key_prefix(prefix, engine, elen);
    MDB_val k, v;
    hf_store_run_t row;
    int mrc = mdb_cursor_open(txn, self->db_runs, &cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    mrc = s_seek_newest(cur, engine, elen, &k, &v, kb);
    while (mrc == MDB_SUCCESS && s_has_prefix(&k, prefix, plen)) {
        memset(&row, 0, sizeof row);
        mrc = s_run_key_unpack(&k, &row);
        if (mrc == MDB_SUCCESS)
            mrc = s_run_unpack(&v, &row);
        if (mrc != MDB_SUCCESS)
            break;
        if (row.run != keep) {
            if (row.state != HF_RUN_RUNNING && row.state != HF_RUN_PAUSED)
                break;
            row.state = HF_RUN_INTERRUPTED;
            row.ended_ts_ns = ended_ns                              ? ended_ns
                              : row.last_ts_ns > row.last_event_ts_ns ? row.last_ts_ns
                                                                      : row.last_event_ts_ns;
            snprintf(row.cause, sizeof row.cause, "%s", cause);
            MDB_val nv = {s_run_pack(&row, vb), vb};
            /* The key must not point into the page being changed: a row
             * whose size changes is deleted and re-inserted, which moves
             * nodes under a key taken from the cursor (that put the B-tree
             * out of order once engines interleaved). Copy it, put, and
             * position the cursor on it again. */
            uint8_t kc[S_KEY_MAX];
            if (k.mv_size > sizeof kc) {
                mrc = MDB_CORRUPTED;
                break;
            }
            memcpy(kc, k.mv_data, k.mv_size);
            MDB_val kk = {k.mv_size, kc};
            mrc = mdb_put(txn, self->db_runs, &kk, &nv, 0);
            if (mrc == MDB_SUCCESS) {
                k = kk;
                mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            }
            if (mrc != MDB_SUCCESS)
                break;
            if (ended)
                (*ended)++;
            hf_log_info("store", "engine=%s run=%llu interrupted cause=\"%s\"", engine,
                        (unsigned long long)row.run, cause);
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* Is every seq in [from, to] of (engine, ordinal, lane) inside a range an
 * engine announced as deliberately dropped (a committed gap record)? Ranges
 * are visited in order of their first seq and merged as we go. */
static int
s_gap_covered(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint32_t ord,
              uint8_t lane, uint64_t from, uint64_t to, bool *covered)
{
    *covered = false;
    uint8_t kb[S_KEY_MAX];
    size_t klen = s_key_rec(kb, engine, elen, ord, lane, 0);
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(txn, self->db_gaps, &cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    MDB_val k = {klen, kb}, v;
    uint64_t next = from; /* first seq not yet known to be covered */
    mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS && k.mv_size == klen && memcmp(k.mv_data, kb, klen - 8) == 0 &&
           v.mv_size == 8) {
        uint64_t first = s_get64((const uint8_t *)k.mv_data + klen - 8);
        uint64_t last = s_get64(v.mv_data);
        if (first > next)
            break;
        if (last >= next)
            next = last + 1;
        if (next > to) {
            *covered = true;
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* Remember a gap record's range so that later commits of its lane accept
 * the hole. A range already known with the same first keeps the larger last. */
static int
s_gap_put(hf_store_t *self, MDB_txn *txn, const char *engine, size_t elen, uint32_t ord,
          const hf_record_t *r)
{
    if (r->u.gap.lane >= HF_LANE_COUNT || r->u.gap.first == 0 || r->u.gap.last < r->u.gap.first)
        return MDB_SUCCESS; /* nothing usable to remember; the record itself is stored */
    uint8_t kb[S_KEY_MAX], vb[8];
    MDB_val k = {s_key_rec(kb, engine, elen, ord, r->u.gap.lane, r->u.gap.first), kb}, v;
    int mrc = mdb_get(txn, self->db_gaps, &k, &v);
    if (mrc == MDB_SUCCESS && v.mv_size == 8 && s_get64(v.mv_data) >= r->u.gap.last)
        return MDB_SUCCESS;
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        return mrc;
    s_put64(vb, r->u.gap.last);
    v.mv_data = vb;
    v.mv_size = 8;
    return mdb_put(txn, self->db_gaps, &k, &v, 0);
}

/* One batch inside a write txn. Refusals found before any write (gap,
 * disorder, wrong lane) set *herr and write nothing, so a caller with
 * several batches may go on with the others; *noop is set when nothing
 * needed writing. */
static int
s_commit_one(hf_store_t *self, MDB_txn *txn, s_commit_ctx_t *c, hf_err_t *herr, int *noop,
             bool *partial)
{
    s_rows_t rows;
    int mrc = s_rows_get(self, txn, c->engine, c->elen, c->epoch, c->now_ns, &rows);
    if (mrc != MDB_SUCCESS)
        return mrc;
    uint64_t acked = rows.ep.acked[c->lane];
    c->acked = acked;
    c->dups = 0;
    size_t skip = 0;
    while (skip < c->n && c->recs[skip].seq <= acked)
        skip++;
    for (size_t i = 0; i < c->n; i++) {
        const hf_record_t *r = &c->recs[i];
        if (r->lane != c->lane || hf_record_lane_of(r->kind) != c->lane) {
            hf_log_warn("store", "commit engine=%s lane=%u seq=%llu reason=wrong-lane "
                        "err=HF_EPROTO", c->engine, c->lane, (unsigned long long)r->seq);
            *herr = HF_EPROTO;
            return MDB_SUCCESS;
        }
        if (i > 0 && r->seq <= c->recs[i - 1].seq) {
            hf_log_warn("store", "commit engine=%s lane=%u seq=%llu reason=disorder "
                        "err=HF_EPROTO", c->engine, c->lane, (unsigned long long)r->seq);
            *herr = HF_EPROTO;
            return MDB_SUCCESS;
        }
        if (i < skip)
            continue; /* already stored: skipped below */
        uint64_t expect = i == skip ? acked + 1 : c->recs[i - 1].seq + 1;
        bool covered = false;
        if (r->seq != expect) {
            /* A hole is legal only where the engine announced a drop. */
            mrc = s_gap_covered(self, txn, c->engine, c->elen, rows.ep.ordinal, c->lane, expect,
                                r->seq - 1, &covered);
            if (mrc != MDB_SUCCESS)
                return mrc;
        }
        if (i >= skip && r->seq != expect && !covered) {
            hf_log_warn("store", "commit engine=%s epoch=%016llx lane=%u acked=%llu "
                        "first=%llu reason=gap err=HF_EPROTO", c->engine,
                        (unsigned long long)c->epoch, c->lane, (unsigned long long)acked,
                        (unsigned long long)r->seq);
            *herr = HF_EPROTO;
            return MDB_SUCCESS;
        }
    }
    c->dups = skip;
    if (skip == c->n && !rows.eng_new && !rows.ep_new) {
        *noop = 1;
        return MDB_SUCCESS;
    }
    size_t fresh = c->n - skip;
    if (fresh > 0) {
        MDB_cursor *cur = NULL;
        MDB_dbi rdb;
        mrc = s_rdb(self, txn, c->engine, c->elen, true, &rdb);
        if (mrc == MDB_DBS_FULL) {
            *herr = HF_ESTATE; /* logged by s_rdb */
            return MDB_SUCCESS;
        }
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_open(txn, rdb, &cur);
        if (mrc != MDB_SUCCESS)
            return mrc;
        uint8_t kb[S_KEY_MAX];
        uint8_t vb[HF_PROTO_MAX_RECORD];
        MDB_val k, v;
        k.mv_data = kb;
        k.mv_size = s_key_rec(kb, c->engine, c->elen, rows.ep.ordinal, c->lane,
                              c->recs[skip].seq);
        unsigned flags = MDB_APPEND;
        MDB_val lk, lv;
        mrc = mdb_cursor_get(cur, &lk, &lv, MDB_LAST);
        if (mrc == MDB_SUCCESS) {
            size_t m = lk.mv_size < k.mv_size ? lk.mv_size : k.mv_size;
            int cmp = memcmp(k.mv_data, lk.mv_data, m);
            if (cmp < 0 || (cmp == 0 && k.mv_size <= lk.mv_size))
                flags = 0;
        } else if (mrc != MDB_NOTFOUND) {
            mdb_cursor_close(cur);
            return mrc;
        }
        mrc = MDB_SUCCESS;
        for (size_t i = skip; i < c->n && mrc == MDB_SUCCESS; i++) {
            const hf_record_t *r = &c->recs[i];
            size_t len = 0;
            hf_err_t erc = hf_record_encode(r, vb, sizeof vb, &len);
            if (erc != HF_OK) {
                hf_log_warn("store", "commit engine=%s lane=%u seq=%llu reason=encode-%s "
                            "err=HF_EPROTO", c->engine, c->lane, (unsigned long long)r->seq,
                            hf_errname(erc));
                *herr = HF_EPROTO;
                *partial = true; /* earlier records of this batch are in the txn */
                break;
            }
            s_put64(kb + k.mv_size - 8, r->seq);
            v.mv_data = vb;
            v.mv_size = len;
            mrc = mdb_cursor_put(cur, &k, &v, flags);
            if (mrc == MDB_SUCCESS && r->kind == HF_KIND_GAP)
                mrc = s_gap_put(self, txn, c->engine, c->elen, rows.ep.ordinal, r);
        }
        mdb_cursor_close(cur);
        if (mrc != MDB_SUCCESS || *herr != HF_OK)
            return mrc;

        s_run_cache_t rc;
        rc.run = 0;
        rc.dirty = 0;
        for (size_t i = skip; i < c->n && mrc == MDB_SUCCESS; i++) {
            const hf_record_t *r = &c->recs[i];
            if (c->close_after && !c->closed && acked <= c->close_after &&
                r->seq > c->close_after) {
                /* the reconciliation of a HELLO, exactly where the
                 * engine's backlog at that HELLO ends: runs it started
                 * later are not touched */
                mrc = s_run_flush(self, txn, c->engine, c->elen, &rc);
                rc.run = 0;
                if (mrc == MDB_SUCCESS)
                    mrc = s_close_open_runs(self, txn, c->engine, c->elen, c->close_keep, 0,
                                            "engine restarted", &c->ended);
                if (mrc != MDB_SUCCESS)
                    break;
                c->closed = true;
            }
            if (r->run == 0)
                continue;
            if (r->kind == HF_KIND_EVENT && r->u.event.type == HF_EV_RUN_STARTED) {
                /* A new run while another is open: the engine was restarted
                 * mid-run (the control lane is in order, so everything of
                 * the old run that was committed came before this). */
                mrc = s_run_flush(self, txn, c->engine, c->elen, &rc);
                rc.run = 0;
                if (mrc == MDB_SUCCESS)
                    mrc = s_close_open_runs(self, txn, c->engine, c->elen, r->run, 0,
                                            "engine restarted", NULL);
                if (mrc != MDB_SUCCESS)
                    break;
            }
            mrc = s_run_load(self, txn, c->engine, c->elen, r->run, &rc);
            if (mrc == MDB_SUCCESS) {
                s_apply(&rc.row, r);
                rc.dirty = 1;
            }
        }
        if (mrc == MDB_SUCCESS)
            mrc = s_run_flush(self, txn, c->engine, c->elen, &rc);
        if (mrc != MDB_SUCCESS)
            return mrc;
        rows.ep.acked[c->lane] = c->recs[c->n - 1].seq;
        rows.eng.records[c->lane] += fresh;
    }
    rows.eng.last_seen_ns = c->now_ns;
    mrc = s_rows_put(self, txn, c->engine, c->elen, c->epoch, &rows);
    if (mrc == MDB_SUCCESS)
        c->acked = rows.ep.acked[c->lane];
    return mrc;
}

static int
s_commit_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    bool partial = false;
    return s_commit_one(self, txn, vctx, herr, noop, &partial);
}

typedef struct {
    hf_store_batch_t *b;
    size_t nb;
    uint64_t now_ns;
} s_many_ctx_t;

static int
s_many_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    s_many_ctx_t *m = vctx;
    int all_noop = 1;
    for (size_t i = 0; i < m->nb; i++) {
        hf_store_batch_t *b = &m->b[i];
        s_commit_ctx_t c = {b->engine, 0, b->epoch, b->lane, b->recs, b->n, m->now_ns, 0, 0,
                            b->close_after, b->close_keep, false, 0};
        s_engine_arg(b->engine, &c.elen); /* checked by the caller */
        hf_err_t one = HF_OK;
        int one_noop = 0;
        bool partial = false;
        int mrc = s_commit_one(self, txn, &c, &one, &one_noop, &partial);
        if (mrc != MDB_SUCCESS)
            return mrc; /* the whole txn fails (and may be retried after growing) */
        if (partial) {
            *herr = one; /* a half-written batch: nothing of this txn may stand */
            return MDB_SUCCESS;
        }
        b->rc = one;
        b->acked = c.acked;
        b->dups = one == HF_OK ? c.dups : 0;
        b->closed = one == HF_OK && c.closed;
        b->ended = b->closed ? c.ended : 0;
        if (one == HF_OK && !one_noop)
            all_noop = 0;
    }
    *noop = all_noop;
    return MDB_SUCCESS;
}

hf_err_t
hf_store_commit_many(hf_store_t *self, hf_store_batch_t *b, size_t nb, uint64_t now_ns)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    if (!b && nb)
        return HF_EINVAL;
    for (size_t i = 0; i < nb; i++) {
        size_t elen;
        b[i].rc = HF_OK;
        b[i].acked = 0;
        b[i].dups = 0;
        if (s_engine_arg(b[i].engine, &elen) != HF_OK || b[i].epoch == 0 ||
            b[i].lane >= HF_LANE_COUNT || (b[i].n > 0 && !b[i].recs))
            return HF_EINVAL;
    }
    s_many_ctx_t m = {b, nb, now_ns};
    return s_write(self, "commit", s_many_txn, &m);
}

hf_err_t
hf_store_commit(hf_store_t *self, const char *engine, uint64_t epoch, uint8_t lane,
                const hf_record_t *recs, size_t n, uint64_t now_ns, uint64_t *acked_out,
                size_t *dups)
{
    if (dups)
        *dups = 0;
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_commit_ctx_t c = {engine, 0, epoch, lane, recs, n, now_ns, 0, 0, 0, 0, false, 0};
    if (s_engine_arg(engine, &c.elen) != HF_OK || epoch == 0 || lane >= HF_LANE_COUNT ||
        (n > 0 && !recs))
        return HF_EINVAL;
    rc = s_write(self, "commit", s_commit_txn, &c);
    if (rc == HF_OK || rc == HF_EPROTO) {
        if (acked_out)
            *acked_out = c.acked;
    }
    if (rc == HF_OK && dups)
        *dups = c.dups;
    if (rc == HF_OK)
        hf_log_debug("store", "commit engine=%s epoch=%016llx lane=%u n=%zu dups=%zu acked=%llu",
                     engine, (unsigned long long)epoch, lane, n, c.dups,
                     (unsigned long long)c.acked);
    return rc;
}

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t run;
    uint8_t state;
    const char *cause;
} s_note_ctx_t;

static int
s_note_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)herr;
    (void)noop;
    s_note_ctx_t *c = vctx;
    s_run_cache_t rc;
    memset(&rc, 0, sizeof rc);
    int mrc = s_run_load(self, txn, c->engine, c->elen, c->run, &rc);
    if (mrc != MDB_SUCCESS)
        return mrc;
    rc.row.state = c->state;
    snprintf(rc.row.cause, sizeof rc.row.cause, "%s", c->cause);
    rc.dirty = 1;
    return s_run_flush(self, txn, c->engine, c->elen, &rc);
}

hf_err_t
hf_store_run_note(hf_store_t *self, const char *engine, uint64_t run, uint8_t state,
                  const char *cause)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_note_ctx_t c = {engine, 0, run, state, cause ? cause : ""};
    if (s_engine_arg(engine, &c.elen) != HF_OK || run == 0 || state > HF_RUN_STATE_MAX)
        return HF_EINVAL;
    return s_write(self, "run note", s_note_txn, &c);
}

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t keep;
    const char *cause;
    size_t ended;
} s_close_ctx_t;

static int
s_close_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)herr;
    s_close_ctx_t *c = vctx;
    c->ended = 0;
    int mrc = s_close_open_runs(self, txn, c->engine, c->elen, c->keep, 0, c->cause, &c->ended);
    if (mrc == MDB_SUCCESS && c->ended == 0)
        *noop = 1;
    return mrc;
}

hf_err_t
hf_store_close_open_runs(hf_store_t *self, const char *engine, uint64_t keep, const char *cause,
                         size_t *ended)
{
    if (ended)
        *ended = 0;
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_close_ctx_t c = {engine, 0, keep, cause ? cause : "", 0};
    if (s_engine_arg(engine, &c.elen) != HF_OK)
        return HF_EINVAL;
    rc = s_write(self, "close runs", s_close_txn, &c);
    if (rc == HF_OK && ended)
        *ended = c.ended;
    return rc;
}

/* Is seq inside a [first, last] range stored in dbi for (engine, ord,
 * lane)? Ranges are keyed by their first seq; the candidate is the range
 * with the largest first <= seq. */
static int
s_in_range(MDB_cursor *cur, const char *engine, size_t elen, uint32_t ord, uint8_t lane,
           uint64_t seq, bool *in, uint64_t *first_out, uint64_t *last_out)
{
    uint8_t kb[S_KEY_MAX];
    size_t klen = s_key_rec(kb, engine, elen, ord, lane, seq);
    MDB_val k = {klen, kb}, v;
    *in = false;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool exact = mrc == MDB_SUCCESS && k.mv_size == klen && memcmp(k.mv_data, kb, klen) == 0;
    if (!exact) {
        mrc = mrc == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_LAST)
                                  : mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (mrc == MDB_NOTFOUND)
        return MDB_SUCCESS;
    if (mrc != MDB_SUCCESS)
        return mrc;
    if (k.mv_size != klen || memcmp(k.mv_data, kb, klen - 8) != 0 || v.mv_size != 8)
        return MDB_SUCCESS; /* another engine, epoch or lane */
    uint64_t first = s_get64((const uint8_t *)k.mv_data + klen - 8);
    uint64_t last = s_get64(v.mv_data);
    if (first <= seq && seq <= last) {
        *in = true;
        *first_out = first;
        *last_out = last;
    }
    return MDB_SUCCESS;
}

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t epoch;
    uint8_t lane;
    uint64_t first, last;
} s_backlog_ctx_t;

static int
s_backlog_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    s_backlog_ctx_t *c = vctx;
    uint8_t kb[S_KEY_MAX], vb[8];
    MDB_val k = {s_key_u64(kb, c->engine, c->elen, c->epoch), kb}, v;
    int mrc = mdb_get(txn, self->db_epochs, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        *herr = HF_ENOTFOUND; /* HELLO is noted first; an unknown epoch is a caller bug */
        *noop = 1;
        return MDB_SUCCESS;
    }
    if (mrc != MDB_SUCCESS || v.mv_size < 4)
        return mrc != MDB_SUCCESS ? mrc : MDB_CORRUPTED;
    uint32_t ord = s_get32(v.mv_data);
    MDB_val rk = {s_key_rec(kb, c->engine, c->elen, ord, c->lane, c->first), kb};
    s_put64(vb, c->last);
    MDB_val rv = {8, vb};
    return mdb_put(txn, self->db_backlogs, &rk, &rv, 0);
}

hf_err_t
hf_store_note_backlog(hf_store_t *self, const char *engine, uint64_t epoch, uint8_t lane,
                      uint64_t acked, uint64_t last)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_backlog_ctx_t c = {engine, 0, epoch, lane, acked + 1, last};
    if (s_engine_arg(engine, &c.elen) != HF_OK || lane >= HF_LANE_COUNT)
        return HF_EINVAL;
    if (last <= acked)
        return HF_OK;
    return s_write(self, "backlog", s_backlog_txn, &c);
}

typedef struct {
    const char *engine;
    size_t elen;
    uint64_t at_ns;
    const char *reason; /* NULL: end the open outage */
} s_outage_ctx_t;

/* Outages are keyed by their start (the aggregator's wall clock), which a
 * clock stepped back can make sort before an older one: the open outage
 * (end 0) is therefore looked for among the engine's newest few, not
 * assumed to be the newest key. */
#define S_OUTAGE_SCAN 64

static int
s_outage_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)herr;
    s_outage_ctx_t *c = vctx;
    MDB_cursor *cur = NULL;
    uint8_t kb[S_KEY_MAX], vb[8 + 1 + 48], prefix[S_KEY_MAX];
    size_t plen = s_key_prefix(prefix, c->engine, c->elen);
    MDB_val k, v;
    int mrc = mdb_cursor_open(txn, self->db_outages, &cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    mrc = s_seek_newest(cur, c->engine, c->elen, &k, &v, kb);
    bool open = false;
    uint8_t ok[S_KEY_MAX];
    size_t oklen = 0;
    uint64_t open_start = 0;
    for (int n = 0; mrc == MDB_SUCCESS && n < S_OUTAGE_SCAN && s_has_prefix(&k, prefix, plen);
         n++) {
        if (v.mv_size >= 8 && s_get64(v.mv_data) == 0 && k.mv_size <= sizeof ok) {
            open = true;
            oklen = k.mv_size;
            memcpy(ok, k.mv_data, oklen);
            memcpy(vb, v.mv_data, v.mv_size < sizeof vb ? v.mv_size : sizeof vb);
            open_start = k.mv_size >= 8 ? s_get64((const uint8_t *)k.mv_data + k.mv_size - 8) : 0;
            v.mv_size = v.mv_size < sizeof vb ? v.mv_size : sizeof vb;
            break;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        return mrc;
    }
    mrc = MDB_SUCCESS;
    if (c->reason && !open) {
        size_t rl = strnlen(c->reason, 47);
        s_put64(vb, 0);
        vb[8] = (uint8_t)rl;
        memcpy(vb + 9, c->reason, rl);
        MDB_val nk = {s_key_u64(kb, c->engine, c->elen, c->at_ns), kb}, nv = {9 + rl, vb};
        mrc = mdb_cursor_put(cur, &nk, &nv, 0);
    } else if (!c->reason && open) {
        /* an end before the start (the clock stepped back) is the start */
        uint64_t end = c->at_ns > open_start ? c->at_ns : open_start;
        s_put64(vb, end ? end : 1);
        MDB_val kk = {oklen, ok}, nv = {v.mv_size, vb};
        mrc = mdb_put(txn, self->db_outages, &kk, &nv, 0);
    } else {
        *noop = 1;
    }
    mdb_cursor_close(cur);
    return mrc;
}

static hf_err_t
s_outage(hf_store_t *self, const char *engine, uint64_t at_ns, const char *reason)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    s_outage_ctx_t c = {engine, 0, at_ns, reason};
    if (s_engine_arg(engine, &c.elen) != HF_OK)
        return HF_EINVAL;
    return s_write(self, "outage", s_outage_txn, &c);
}

hf_err_t
hf_store_outage_begin(hf_store_t *self, const char *engine, uint64_t start_ns, const char *reason)
{
    return s_outage(self, engine, start_ns, reason ? reason : "");
}

/* ---- command ids ------------------------------------------------------------- */

static int
s_cmdid_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)noop;
    uint64_t *id = vctx;
    MDB_val k = {strlen("next_command"), "next_command"}, v;
    int mrc = mdb_get(txn, self->db_meta, &k, &v);
    uint64_t next = 1;
    if (mrc == MDB_SUCCESS) {
        if (v.mv_size != 8) {
            *herr = HF_ECORRUPT;
            return MDB_SUCCESS;
        }
        next = s_get64(v.mv_data);
    } else if (mrc != MDB_NOTFOUND) {
        return mrc;
    }
    uint8_t b[8];
    s_put64(b, next + 1);
    v.mv_size = 8;
    v.mv_data = b;
    *id = next;
    return mdb_put(txn, self->db_meta, &k, &v, 0);
}

hf_err_t
hf_store_next_command_id(hf_store_t *self, uint64_t *id)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    if (!id)
        return HF_EINVAL;
    return s_write(self, "command id", s_cmdid_txn, id);
}

hf_err_t
hf_store_outage_end(hf_store_t *self, const char *engine, uint64_t end_ns)
{
    return s_outage(self, engine, end_ns, NULL);
}

hf_err_t
hf_store_outages_each(hf_store_t *self, const char *engine, hf_store_outage_fn *fn, void *arg)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen = 0;
    if (!fn || (engine && s_engine_arg(engine, &elen) != HF_OK))
        return HF_EINVAL;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(txn, self->db_outages, &cur);
    MDB_val k, v;
    hf_store_outage_t o;
    /* Keys are engine 0 start: walk backwards (newest first per engine). */
    if (mrc == MDB_SUCCESS) {
        if (engine) {
            uint8_t kb[S_KEY_MAX];
            mrc = s_seek_newest(cur, engine, elen, &k, &v, kb);
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        }
    }
    while (mrc == MDB_SUCCESS) {
        const uint8_t *kp = k.mv_data;
        const uint8_t *nul = memchr(kp, 0, k.mv_size);
        if (!nul || (size_t)(nul - kp) > HF_ENGINE_ID_MAX || k.mv_size != (size_t)(nul - kp) + 9 ||
            v.mv_size < 9 || v.mv_size > 9 + 47 || (size_t)((const uint8_t *)v.mv_data)[8] + 9 != v.mv_size) {
            mrc = MDB_CORRUPTED;
            break;
        }
        size_t el = (size_t)(nul - kp);
        if (engine && (el != elen || memcmp(kp, engine, el) != 0))
            break;
        memset(&o, 0, sizeof o);
        memcpy(o.engine, kp, el);
        o.start_ns = s_get64(nul + 1);
        o.end_ns = s_get64(v.mv_data);
        memcpy(o.reason, (const uint8_t *)v.mv_data + 9, v.mv_size - 9);
        if (fn(&o, arg) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        mrc = MDB_SUCCESS;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "outages", mrc);
}

/* ---- reads ------------------------------------------------------------------- */

hf_err_t
hf_store_engine_get(hf_store_t *self, const char *engine, hf_store_engine_t *out)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen;
    if (!out || s_engine_arg(engine, &elen) != HF_OK)
        return HF_EINVAL;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    MDB_val k = {elen, (void *)engine};
    MDB_val v;
    int mrc = mdb_get(txn, self->db_engines, &k, &v);
    if (mrc == MDB_SUCCESS)
        mrc = s_engine_unpack(&k, &v, out);
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        return HF_ENOTFOUND;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "engine get", mrc);
}

hf_err_t
hf_store_engines_each(hf_store_t *self, hf_store_engine_fn *fn, void *arg)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    if (!fn)
        return HF_EINVAL;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    MDB_cursor *cur = NULL;
    int mrc = mdb_cursor_open(txn, self->db_engines, &cur);
    MDB_val k, v;
    hf_store_engine_t e;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        mrc = s_engine_unpack(&k, &v, &e);
        if (mrc != MDB_SUCCESS || fn(&e, arg) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        mrc = MDB_SUCCESS;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "engines", mrc);
}

hf_err_t
hf_store_run_get(hf_store_t *self, const char *engine, uint64_t run, hf_store_run_t *out)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen;
    if (!out || s_engine_arg(engine, &elen) != HF_OK)
        return HF_EINVAL;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    uint8_t kb[S_KEY_MAX];
    MDB_val k = {s_key_u64(kb, engine, elen, run), kb};
    MDB_val v;
    int mrc = mdb_get(txn, self->db_runs, &k, &v);
    if (mrc == MDB_SUCCESS) {
        memset(out, 0, sizeof *out);
        mrc = s_run_key_unpack(&k, out);
        if (mrc == MDB_SUCCESS)
            mrc = s_run_unpack(&v, out);
    }
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        return HF_ENOTFOUND;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "run get", mrc);
}

/* Runs of one engine within an open txn. Returns MDB_SUCCESS, an error, or
 * 1 when the callback asked to stop. */
static int
s_runs_of(hf_store_t *self, MDB_cursor *cur, const char *engine, size_t elen, bool reverse,
          hf_store_run_fn *fn, void *arg, hf_store_run_t *row)
{
    uint8_t prefix[S_KEY_MAX];
    size_t plen = s_key_prefix(prefix, engine, elen);
    uint8_t kb[S_KEY_MAX];
    MDB_val k, v;
    int mrc;
    (void)self;
    if (!reverse) {
        k.mv_data = prefix;
        k.mv_size = plen;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        mrc = s_seek_newest(cur, engine, elen, &k, &v, kb);
    }
    while (mrc == MDB_SUCCESS && s_has_prefix(&k, prefix, plen)) {
        memset(row, 0, sizeof *row);
        mrc = s_run_key_unpack(&k, row);
        if (mrc == MDB_SUCCESS)
            mrc = s_run_unpack(&v, row);
        if (mrc != MDB_SUCCESS)
            return mrc;
        if (fn(row, arg) != 0)
            return 1;
        mrc = mdb_cursor_get(cur, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
    }
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

hf_err_t
hf_store_runs_each(hf_store_t *self, const char *engine, bool reverse, hf_store_run_fn *fn,
                   void *arg)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen = 0;
    if (!fn || (engine && s_engine_arg(engine, &elen) != HF_OK))
        return HF_EINVAL;
    hf_store_run_t *row = malloc(sizeof *row);
    if (!row)
        return HF_ENOMEM;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK) {
        free(row);
        return rc;
    }
    MDB_cursor *cur = NULL;
    MDB_cursor *ecur = NULL;
    int mrc = mdb_cursor_open(txn, self->db_runs, &cur);
    if (mrc == MDB_SUCCESS && engine) {
        mrc = s_runs_of(self, cur, engine, elen, reverse, fn, arg, row);
    } else if (mrc == MDB_SUCCESS) {
        MDB_val k, v;
        char name[HF_ENGINE_ID_MAX + 1];
        mrc = mdb_cursor_open(txn, self->db_engines, &ecur);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(ecur, &k, &v, MDB_FIRST);
        while (mrc == MDB_SUCCESS) {
            if (k.mv_size == 0 || k.mv_size > HF_ENGINE_ID_MAX) {
                mrc = MDB_CORRUPTED;
                break;
            }
            memcpy(name, k.mv_data, k.mv_size);
            name[k.mv_size] = 0;
            mrc = s_runs_of(self, cur, name, k.mv_size, reverse, fn, arg, row);
            if (mrc != MDB_SUCCESS)
                break;
            mrc = mdb_cursor_get(ecur, &k, &v, MDB_NEXT);
        }
    }
    if (ecur)
        mdb_cursor_close(ecur);
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    free(row);
    if (mrc == MDB_NOTFOUND || mrc == 1)
        mrc = MDB_SUCCESS;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "runs", mrc);
}

hf_err_t
hf_store_epochs_each(hf_store_t *self, const char *engine, hf_store_epoch_fn *fn, void *arg)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen;
    if (!fn || s_engine_arg(engine, &elen) != HF_OK)
        return HF_EINVAL;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK)
        return rc;
    uint8_t prefix[S_KEY_MAX];
    size_t plen = s_key_prefix(prefix, engine, elen);
    uint8_t kb[S_KEY_MAX];
    MDB_cursor *cur = NULL;
    MDB_val k = {plen, prefix};
    MDB_val v;
    int mrc = mdb_cursor_open(txn, self->db_ordinals, &cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (mrc == MDB_SUCCESS && s_has_prefix(&k, prefix, plen)) {
        if (v.mv_size != 8) {
            mrc = MDB_CORRUPTED;
            break;
        }
        hf_store_epoch_t e;
        s_epoch_row_t row;
        e.epoch = s_get64(v.mv_data);
        MDB_val ek = {s_key_u64(kb, engine, elen, e.epoch), kb};
        MDB_val ev;
        mrc = mdb_get(txn, self->db_epochs, &ek, &ev);
        if (mrc == MDB_SUCCESS)
            mrc = s_epoch_unpack(&ev, &row);
        if (mrc == MDB_NOTFOUND)
            mrc = MDB_CORRUPTED; /* an ordinal without its epoch row */
        if (mrc != MDB_SUCCESS)
            break;
        e.ordinal = row.ordinal;
        e.acked[0] = row.acked[0];
        e.acked[1] = row.acked[1];
        e.first_seen_ns = row.first_seen_ns;
        if (fn(&e, arg) != 0)
            break;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (mrc == MDB_NOTFOUND)
        mrc = MDB_SUCCESS;
    return mrc == MDB_SUCCESS ? HF_OK : s_fail(self, "epochs", mrc);
}

/* ---- export ---------------------------------------------------------------- */

void
hf_store_pos_pack(const hf_store_pos_t *pos, uint8_t out[HF_STORE_POS_BYTES])
{
    s_put32(out, pos->ordinal);
    out[4] = pos->lane;
    s_put64(out + 5, pos->seq);
}

hf_err_t
hf_store_pos_unpack(const uint8_t *buf, size_t len, hf_store_pos_t *pos)
{
    if (!buf || !pos || len != HF_STORE_POS_BYTES || buf[4] > HF_LANE_COUNT)
        return HF_EPROTO;
    pos->ordinal = s_get32(buf);
    pos->lane = buf[4];
    pos->seq = s_get64(buf + 5);
    return HF_OK;
}

/* The position just after (ord, lane, seq) in key order. */
static hf_store_pos_t
s_pos_after(uint32_t ord, uint8_t lane, uint64_t seq)
{
    hf_store_pos_t p = {ord, lane, seq + 1};
    if (seq == UINT64_MAX) {
        p.lane = (uint8_t)(lane + 1);
        p.seq = 0;
    }
    return p;
}

typedef struct {
    uint32_t ordinal; /* cached ordinal -> epoch               */
    uint64_t epoch;
    int have_epoch;
    uint64_t run;     /* cached run -> channels (0 = none)     */
    int have_run;
    hf_store_run_t row;
} s_export_cache_t;

hf_err_t
hf_store_export(hf_store_t *self, const char *engine, const hf_store_export_opts_t *opts,
                hf_store_pos_t *pos, hf_store_export_fn *fn, void *arg, size_t *taken,
                bool *done)
{
    if (taken)
        *taken = 0;
    if (done)
        *done = false;
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    size_t elen;
    if (!opts || !pos || !fn || s_engine_arg(engine, &elen) != HF_OK || opts->max_records == 0 ||
        opts->lane < -1 || opts->lane >= HF_LANE_COUNT)
        return HF_EINVAL;
    size_t max_scan = opts->max_scan ? opts->max_scan : S_DEFAULT_SCAN;
    s_export_cache_t *cache = calloc(1, sizeof *cache);
    if (!cache)
        return HF_ENOMEM;
    MDB_txn *txn;
    rc = s_read_begin(self, &txn);
    if (rc != HF_OK) {
        free(cache);
        return rc;
    }
    MDB_cursor *cur = NULL;
    MDB_val k = {elen, (void *)engine};
    MDB_val v;
    int mrc = mdb_get(txn, self->db_engines, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        free(cache);
        return HF_ENOTFOUND;
    }
    MDB_dbi rdb;
    if (mrc == MDB_SUCCESS) {
        mrc = s_rdb(self, txn, engine, elen, false, &rdb);
        if (mrc == MDB_NOTFOUND) { /* an engine that never sent a record has no table */
            mdb_txn_abort(txn);
            free(cache);
            if (done)
                *done = true;
            return HF_OK;
        }
    }
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(txn, rdb, &cur);
    MDB_cursor *bcur = NULL;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(txn, self->db_backlogs, &bcur);
    /* the backlog range the previous record fell in (most fall in the same) */
    uint32_t b_ord = UINT32_MAX;
    uint8_t b_lane = 0xff;
    uint64_t b_first = 1, b_last = 0;

    uint8_t prefix[S_KEY_MAX];
    size_t plen = s_key_prefix(prefix, engine, elen);
    uint8_t kb[S_KEY_MAX];
    size_t n_taken = 0;
    size_t scanned = 0;
    bool at_end = false;
    bool seek = true;
    /* Where to stay if a lane jump finds nothing: the wanted lane's end in
     * the newest epoch, not the start of an epoch that does not exist yet
     * (a tail of one lane must see that lane's next record). */
    bool jumped = false;
    hf_store_pos_t before_jump = *pos;
    hf_store_export_rec_t out;
    while (mrc == MDB_SUCCESS) {
        if (seek) {
            k.mv_data = kb;
            k.mv_size = s_key_rec(kb, engine, elen, pos->ordinal, pos->lane, pos->seq);
            mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            seek = false;
        } else {
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && !s_has_prefix(&k, prefix, plen))) {
            at_end = true;
            mrc = MDB_SUCCESS;
            if (jumped)
                *pos = before_jump;
            break;
        }
        if (mrc != MDB_SUCCESS)
            break;
        if (k.mv_size != plen + 13) {
            mrc = MDB_CORRUPTED;
            break;
        }
        const uint8_t *kp = (const uint8_t *)k.mv_data + plen;
        uint32_t ord = s_get32(kp);
        uint8_t lane = kp[4];
        uint64_t seq = s_get64(kp + 5);
        if (opts->lane >= 0 && lane != opts->lane) {
            /* jump to the wanted lane of this epoch, or of the next one */
            hf_store_pos_t p = {lane < opts->lane ? ord : ord + 1, (uint8_t)opts->lane, 0};
            if (lane > opts->lane && ord == UINT32_MAX) {
                at_end = true;
                break;
            }
            if (!jumped)
                before_jump = *pos;
            jumped = true;
            *pos = p;
            seek = true;
            continue;
        }
        jumped = false;
        if (scanned >= max_scan) {
            pos->ordinal = ord;
            pos->lane = lane;
            pos->seq = seq;
            break;
        }
        scanned++;
        size_t used = 0;
        hf_err_t drc = hf_record_decode(v.mv_data, v.mv_size, &out.rec, &used);
        if (drc != HF_OK) {
            hf_log_error("store", "export engine=%s ordinal=%u lane=%u seq=%llu reason=decode "
                         "err=%s", engine, ord, lane, (unsigned long long)seq, hf_errname(drc));
            mrc = MDB_CORRUPTED;
            break;
        }
        if (opts->run && out.rec.run != opts->run) {
            *pos = s_pos_after(ord, lane, seq);
            continue;
        }
        if (n_taken >= opts->max_records) {
            pos->ordinal = ord;
            pos->lane = lane;
            pos->seq = seq;
            break;
        }
        out.rec.seq = seq;
        out.rec.lane = lane;
        if (!cache->have_epoch || cache->ordinal != ord) {
            MDB_val ok = {s_key_ord(kb, engine, elen, ord), kb};
            MDB_val ov;
            mrc = mdb_get(txn, self->db_ordinals, &ok, &ov);
            if (mrc == MDB_NOTFOUND || (mrc == MDB_SUCCESS && ov.mv_size != 8))
                mrc = MDB_CORRUPTED;
            if (mrc != MDB_SUCCESS)
                break;
            cache->ordinal = ord;
            cache->epoch = s_get64(ov.mv_data);
            cache->have_epoch = 1;
        }
        out.epoch = cache->epoch;
        out.ordinal = ord;
        if (b_ord == ord && b_lane == lane && b_first <= seq && seq <= b_last) {
            out.observed_offline = true;
        } else {
            bool in = false;
            uint64_t f = 0, l = 0;
            mrc = s_in_range(bcur, engine, elen, ord, lane, seq, &in, &f, &l);
            if (mrc != MDB_SUCCESS)
                break;
            out.observed_offline = in;
            if (in) {
                b_ord = ord;
                b_lane = lane;
                b_first = f;
                b_last = l;
            }
        }
        out.channels = NULL;
        if (out.rec.kind == HF_KIND_SAMPLE && out.rec.run != 0) {
            if (!cache->have_run || cache->run != out.rec.run) {
                cache->run = out.rec.run;
                cache->have_run = 1;
                cache->row.channels[0] = 0;
                MDB_val rk = {s_key_u64(kb, engine, elen, out.rec.run), kb};
                MDB_val rv;
                mrc = mdb_get(txn, self->db_runs, &rk, &rv);
                if (mrc == MDB_SUCCESS)
                    mrc = s_run_unpack(&rv, &cache->row);
                else if (mrc == MDB_NOTFOUND)
                    mrc = MDB_SUCCESS;
                if (mrc != MDB_SUCCESS)
                    break;
            }
            if (cache->row.channels[0])
                out.channels = cache->row.channels;
        }
        if (fn(&out, arg) != 0) {
            pos->ordinal = ord;
            pos->lane = lane;
            pos->seq = seq;
            break;
        }
        n_taken++;
        *pos = s_pos_after(ord, lane, seq);
        /* kb was reused for lookups; the cursor keeps its own position */
    }
    if (cur)
        mdb_cursor_close(cur);
    if (bcur)
        mdb_cursor_close(bcur);
    mdb_txn_abort(txn);
    free(cache);
    if (taken)
        *taken = n_taken;
    if (mrc != MDB_SUCCESS)
        return s_fail(self, "export", mrc);
    if (done)
        *done = at_end;
    return HF_OK;
}

/* ---- sizes ---------------------------------------------------------------- */

size_t
hf_store_used_bytes(hf_store_t *self)
{
    assert(self);
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(self->env, &info) != MDB_SUCCESS || mdb_env_stat(self->env, &st) != 0)
        return 0;
    return (info.me_last_pgno + 1) * (size_t)st.ms_psize;
}

hf_err_t
hf_store_copy_to_fd(hf_store_t *self, int fd)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    int mrc = mdb_env_copyfd2(self->env, fd, MDB_CP_COMPACT);
    if (mrc != MDB_SUCCESS) {
        hf_log_error("store", "copy dir=%s err=%s", self->dir, mdb_strerror(mrc));
        return mrc == EPIPE || mrc == EIO || mrc == ENOSPC ? HF_EIO : HF_ESTORE;
    }
    return HF_OK;
}

size_t
hf_store_live_bytes(hf_store_t *self)
{
    assert(self);
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(self->env, &info) != MDB_SUCCESS || mdb_env_stat(self->env, &st) != 0)
        return 0;
    size_t pages = (size_t)info.me_last_pgno + 1;
    MDB_txn *txn = NULL;
    if (s_read_begin(self, &txn) != HF_OK)
        return pages * (size_t)st.ms_psize;
    size_t free_pages = hf_lmdb_free_pages(txn);
    mdb_txn_abort(txn);
    return (free_pages < pages ? pages - free_pages : 0) * (size_t)st.ms_psize;
}

/* ---- retention ---------------------------------------------------------------
 * Records go, oldest first, when they are older than max_age (by the
 * engine's own timestamp) or while the store holds more than max_bytes of
 * live pages. What is kept of every engine is a suffix of each (epoch,
 * lane): the newest records, contiguous. Cursors, runs, outages and gap
 * ranges stay (they are small and the history of what was ingested); a
 * retained run's row still says how many samples it had. Each call deletes
 * at most max_delete records in one transaction, so ingestion is never held
 * up for long; the caller calls again while *more is set. */

typedef struct {
    const hf_store_retention_t *r;
    uint64_t cutoff_ns;     /* delete ts_ns < this (0: no age rule)      */
    size_t quota;           /* size rule: records to delete (0: none)    */
    size_t deleted;         /* out                                       */
    size_t by_age;          /* out                                       */
    bool more;              /* out: the limit stopped the pass           */
} s_retain_ctx_t;

/* Pass 1 over one engine's table, age: per (ord, lane), delete from the
 * start while the record is older than the cutoff, then jump to the next
 * lane. */
static int
s_retain_age(s_retain_ctx_t *c, MDB_cursor *cur, size_t budget)
{
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS && c->deleted < budget) {
        const uint8_t *kp = k.mv_data;
        const uint8_t *nul = memchr(kp, 0, k.mv_size);
        if (!nul || k.mv_size != (size_t)(nul - kp) + 14) {
            mrc = MDB_CORRUPTED;
            break;
        }
        hf_record_t rec;
        size_t used = 0;
        if (hf_record_decode(v.mv_data, v.mv_size, &rec, &used) != HF_OK) {
            mrc = MDB_CORRUPTED;
            break;
        }
        if (rec.ts_ns < c->cutoff_ns) {
            mrc = mdb_cursor_del(cur, 0);
            if (mrc != MDB_SUCCESS)
                break;
            c->deleted++;
            c->by_age++;
            mrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
            if (mrc == MDB_NOTFOUND || mrc == EINVAL)
                mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* a young record: the rest of this (engine, ord, lane) is younger */
        uint8_t kb[S_KEY_MAX + 1];
        size_t plen = (size_t)(nul - kp) + 1 + 5;
        memcpy(kb, kp, plen);
        /* next lane: bump (ord, lane) as one 40-bit number */
        int i = (int)plen - 1;
        while (i >= (int)(nul - kp) + 1 && kb[i] == 0xff)
            kb[i--] = 0;
        if (i < (int)(nul - kp) + 1) {
            /* (ord, lane) was all ones: the engine's last possible lane */
            kb[(nul - kp)]++; /* past this engine: its 0 terminator becomes 1 */
            MDB_val nk = {(size_t)(nul - kp) + 1, kb};
            mrc = mdb_cursor_get(cur, &nk, &v, MDB_SET_RANGE);
            k = nk;
            continue;
        }
        kb[i]++;
        MDB_val nk = {plen, kb};
        mrc = mdb_cursor_get(cur, &nk, &v, MDB_SET_RANGE);
        k = nk;
    }
    return mrc == MDB_NOTFOUND ? MDB_SUCCESS : mrc;
}

/* One retention pass, engine by engine (each has its records table): the
 * age rule from each (ord, lane)'s start, then the size rule, a share of
 * the quota per engine from its start, within max_delete. */
static int
s_retain_txn(hf_store_t *self, MDB_txn *txn, void *vctx, hf_err_t *herr, int *noop)
{
    (void)herr;
    s_retain_ctx_t *c = vctx;
    c->deleted = c->by_age = 0;
    c->more = false;
    size_t budget = c->r->max_delete ? c->r->max_delete : 100000;
    MDB_cursor *ec = NULL, *cur = NULL;
    MDB_val ek, ev, k, v;
    size_t nengines = 0, share = 0;
    int mrc = mdb_cursor_open(txn, self->db_engines, &ec);
    if (mrc == MDB_SUCCESS && c->quota) {
        mrc = mdb_cursor_get(ec, &ek, &ev, MDB_FIRST);
        while (mrc == MDB_SUCCESS) {
            nengines++;
            mrc = mdb_cursor_get(ec, &ek, &ev, MDB_NEXT);
        }
        if (mrc == MDB_NOTFOUND)
            mrc = MDB_SUCCESS;
    }
    for (int pass = 1; pass <= 2 && mrc == MDB_SUCCESS; pass++) {
        if (pass == 1 && !c->cutoff_ns)
            continue;
        if (pass == 2) {
            if (!c->quota || c->deleted >= budget)
                break;
            size_t want = c->quota < budget - c->deleted ? c->quota : budget - c->deleted;
            share = nengines ? (want + nengines - 1) / nengines : 0;
            if (!share)
                break;
        }
        mrc = mdb_cursor_get(ec, &ek, &ev, MDB_FIRST);
        while (mrc == MDB_SUCCESS && c->deleted < budget) {
            MDB_dbi rdb;
            int rrc = ek.mv_size <= HF_ENGINE_ID_MAX
                          ? s_rdb(self, txn, ek.mv_data, ek.mv_size, false, &rdb)
                          : MDB_NOTFOUND;
            if (rrc == MDB_SUCCESS)
                rrc = mdb_cursor_open(txn, rdb, &cur);
            if (rrc == MDB_SUCCESS && pass == 1) {
                rrc = s_retain_age(c, cur, budget);
            } else if (rrc == MDB_SUCCESS) {
                /* pass 2, size: the engine's oldest records, its share */
                size_t n = 0;
                rrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
                while (rrc == MDB_SUCCESS && n < share && c->deleted < budget) {
                    rrc = mdb_cursor_del(cur, 0);
                    if (rrc != MDB_SUCCESS)
                        break;
                    n++;
                    c->deleted++;
                    rrc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
                }
                if (rrc == EINVAL)
                    rrc = MDB_SUCCESS;
            }
            if (cur) {
                mdb_cursor_close(cur);
                cur = NULL;
            }
            if (rrc != MDB_SUCCESS && rrc != MDB_NOTFOUND) {
                mrc = rrc;
                break;
            }
            mrc = mdb_cursor_get(ec, &ek, &ev, MDB_NEXT);
        }
        if (mrc == MDB_NOTFOUND)
            mrc = MDB_SUCCESS;
    }
    if (ec)
        mdb_cursor_close(ec);
    c->more = c->deleted >= budget;
    if (mrc == MDB_SUCCESS && c->deleted == 0)
        *noop = 1;
    return mrc;
}

hf_err_t
hf_store_retain(hf_store_t *self, const hf_store_retention_t *r, uint64_t now_ns,
                hf_store_retain_result_t *out)
{
    hf_err_t rc = s_check(self);
    if (rc != HF_OK)
        return rc;
    if (!r || !out)
        return HF_EINVAL;
    memset(out, 0, sizeof *out);
    s_retain_ctx_t c;
    memset(&c, 0, sizeof c);
    c.r = r;
    if (r->max_age_ns && now_ns > r->max_age_ns)
        c.cutoff_ns = now_ns - r->max_age_ns;
    if (r->max_bytes) {
        size_t live = hf_store_live_bytes(self);
        out->live_bytes = live;
        if (live > r->max_bytes) {
            /* aim a little under the bound; ~64 bytes of pages per record */
            size_t excess = live - r->max_bytes + r->max_bytes / 20;
            c.quota = excess / 64 + 1;
        }
    }
    if (!c.cutoff_ns && !c.quota)
        return HF_OK;
    rc = s_write(self, "retain", s_retain_txn, &c);
    if (rc == HF_OK) {
        out->deleted = c.deleted;
        out->by_age = c.by_age;
        out->by_size = c.deleted - c.by_age;
        out->more = c.more;
    }
    return rc;
}

size_t
hf_store_map_bytes(hf_store_t *self)
{
    assert(self);
    return self->map_bytes;
}
