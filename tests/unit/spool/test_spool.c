/* test_spool.c - unit tests of the engine's LMDB spool (hf_spool_t).
 *
 * Every test works in its own mkdtemp directory under /tmp, removed in the
 * suite's fini. Foreign environments are built with plain mdb_* calls. The
 * crash test forks a child that owns its own spool (an LMDB env is never
 * carried across fork), kills it with SIGKILL after a seeded random number
 * of reported commits, and checks the invariants after reopening. The seed
 * is printed; HF_SEED=<n> replays it.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_proto.h"
#include "hf_spool.h"

/* ---- fixture -------------------------------------------------------------- */

static char s_dir[64];       /* this test's temporary directory            */
static char s_last_err[1024]; /* last ERROR line logged by the spool       */

static void
s_sink(hf_log_level_t lvl, const char *component, const char *msg, void *arg)
{
    (void)arg;
    if (lvl == HF_LOG_ERROR)
        snprintf(s_last_err, sizeof s_last_err, "%s: %s", component, msg);
}

static void
s_setup(void)
{
    strcpy(s_dir, "/tmp/hf_spool_XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir), "mkdtemp: %s", strerror(errno));
    s_last_err[0] = '\0';
    hf_log_set_sink(s_sink, NULL);
}

static int
s_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void
s_teardown(void)
{
    nftw(s_dir, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(spool, .init = s_setup, .fini = s_teardown, .timeout = 10);

/* ---- helpers -------------------------------------------------------------- */

static void
s_sample(hf_record_t *r, uint32_t channel)
{
    hf_record_sample(r, 7, 1700000000000000000ull + channel, 1000u + channel, channel,
                     channel * 0.5);
}

static void
s_event(hf_record_t *r, uint32_t step)
{
    hf_record_event(r, 7, 1700000000000000000ull, 1000, HF_EV_STEP, step, "step");
}

static hf_spool_t *
s_open(const hf_spool_opts_t *o)
{
    hf_err_t err = HF_ESTATE;
    hf_spool_t *sp = hf_spool_open(s_dir, o, &err);
    cr_assert_not_null(sp, "open %s: %s (%s)", s_dir, hf_errname(err), s_last_err);
    cr_assert_eq(err, HF_OK);
    return sp;
}

/* Appends n samples with channel = start .. start+n-1. */
static void
s_append_samples(hf_spool_t *sp, uint32_t start, size_t n)
{
    hf_record_t *recs = calloc(n, sizeof *recs);
    cr_assert_not_null(recs);
    for (size_t i = 0; i < n; i++)
        s_sample(&recs[i], start + (uint32_t)i);
    hf_err_t rc = hf_spool_append(sp, recs, n);
    cr_assert_eq(rc, HF_OK, "append: %s", hf_errname(rc));
    free(recs);
}

#define S_MAX_SEEN 4096
typedef struct {
    uint64_t seq[S_MAX_SEEN];    /* seqs visited, in order              */
    size_t len[S_MAX_SEEN];      /* encoded bytes of each               */
    size_t n;                    /* records visited                     */
    size_t fail_at;              /* return HF_EIO on this visit (1-based), 0 never */
    bool decode;                 /* decode and check seq                */
    hf_lane_t lane;              /* lane expected when decoding         */
} s_seen_t;

static hf_err_t
s_collect(void *arg, uint64_t seq, const uint8_t *rec, size_t len)
{
    s_seen_t *s = arg;
    if (s->fail_at && s->n + 1 == s->fail_at)
        return HF_EIO;
    if (s->decode) {
        hf_record_t r;
        size_t used = 0;
        hf_err_t rc = hf_record_decode(rec, len, &r, &used);
        cr_assert_eq(rc, HF_OK, "decode seq=%" PRIu64 ": %s", seq, hf_errname(rc));
        cr_assert_eq(used, len);
        cr_assert_eq(r.seq, seq, "stored seq %" PRIu64 " != key %" PRIu64, r.seq, seq);
        cr_assert_eq(r.lane, s->lane);
    }
    if (s->n < S_MAX_SEEN) {
        s->seq[s->n] = seq;
        s->len[s->n] = len;
    }
    s->n++;
    return HF_OK;
}

static size_t
s_read_all(hf_spool_t *sp, hf_lane_t lane, uint64_t from, s_seen_t *seen)
{
    size_t n = 0;
    hf_err_t rc = hf_spool_read(sp, lane, from, SIZE_MAX, SIZE_MAX, s_collect, seen, &n);
    cr_assert_eq(rc, HF_OK, "read: %s", hf_errname(rc));
    cr_assert_eq(n, seen->n);
    return n;
}

static char *
s_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", s_dir, name);
    return p;
}

/* Reads a whole file; *len gets its size. Caller frees. */
static uint8_t *
s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(sz > 0 ? (size_t)sz : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *len = (size_t)sz;
    return buf;
}

/* Opens the spool dir with hf_spool_open and expects HF_ECORRUPT with the
 * data file byte-for-byte unchanged. */
static void
s_expect_refused_untouched(void)
{
    size_t before_len = 0, after_len = 0;
    uint8_t *before = s_slurp(s_path("data.mdb"), &before_len);
    hf_err_t err = HF_OK;
    hf_spool_t *sp = hf_spool_open(s_dir, NULL, &err);
    cr_assert_null(sp);
    cr_assert_eq(err, HF_ECORRUPT, "got %s", hf_errname(err));
    cr_assert(strstr(s_last_err, "HF_ECORRUPT"), "no clear log line: '%s'", s_last_err);
    uint8_t *after = s_slurp(s_path("data.mdb"), &after_len);
    cr_assert_eq(before_len, after_len);
    cr_assert(memcmp(before, after, before_len) == 0, "data.mdb was modified");
    free(before);
    free(after);
}

/* Runs fn on a plain LMDB env in s_dir (maxdbs 8). */
static void
s_plain_env(void (*fn)(MDB_env *env, MDB_txn *txn))
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    fn(env, txn);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void
s_put_str(MDB_txn *txn, MDB_dbi dbi, const char *k, const void *v, size_t vlen)
{
    MDB_val key = {strlen(k), (void *)k};
    MDB_val val = {vlen, (void *)v};
    cr_assert_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
}

/* ---- behaviour: seqs and lanes ------------------------------------------ */

Test(spool, append_assigns_seqs_from_one_per_lane_independently, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    cr_assert_neq(hf_spool_epoch(sp), 0);
    hf_record_t recs[5];
    s_sample(&recs[0], 0);
    s_event(&recs[1], 1);
    s_sample(&recs[2], 1);
    s_sample(&recs[3], 2);
    s_event(&recs[4], 2);
    cr_assert_eq(hf_spool_append(sp, recs, 5), HF_OK);
    uint64_t want_seq[5] = {1, 1, 2, 3, 2};
    uint8_t want_lane[5] = {HF_LANE_DATA, HF_LANE_CONTROL, HF_LANE_DATA, HF_LANE_DATA,
                            HF_LANE_CONTROL};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(recs[i].seq, want_seq[i], "rec %d seq %" PRIu64, i, recs[i].seq);
        cr_assert_eq(recs[i].lane, want_lane[i]);
    }
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 3);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_CONTROL), 2);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 3);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_CONTROL), 2);

    s_event(&recs[0], 3);
    cr_assert_eq(hf_spool_append(sp, recs, 1), HF_OK);
    cr_assert_eq(recs[0].seq, 3);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 3);
    cr_assert_eq(hf_spool_append(sp, recs, 0), HF_OK);

    s_seen_t seen = {.decode = true, .lane = HF_LANE_CONTROL};
    cr_assert_eq(s_read_all(sp, HF_LANE_CONTROL, 1, &seen), 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(seen.seq[i], i + 1);
    hf_spool_close(&sp);
    cr_assert_null(sp);
    hf_spool_close(&sp); /* idempotent */
}

Test(spool, append_of_a_bad_record_commits_nothing_and_consumes_no_seq, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 2);
    hf_record_t recs[3];
    s_sample(&recs[0], 10);
    s_sample(&recs[1], 11);
    s_sample(&recs[2], 12);
    recs[2].kind = 99; /* unknown kind: does not encode */
    cr_assert_eq(hf_spool_append(sp, recs, 3), HF_EINVAL);
    cr_assert_eq(recs[0].seq, 0, "caller's records must stay untouched on error");
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 2);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 2);
    recs[2].kind = HF_KIND_SAMPLE;
    cr_assert_eq(hf_spool_append(sp, recs, 3), HF_OK);
    cr_assert_eq(recs[0].seq, 3);
    cr_assert_eq(recs[2].seq, 5);
    s_seen_t seen = {.decode = true, .lane = HF_LANE_DATA};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 1, &seen), 5);
    hf_spool_close(&sp);
}

/* ---- behaviour: reads ----------------------------------------------------- */

Test(spool, read_from_seq_returns_exactly_those_in_order, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 10);
    s_seen_t seen = {.decode = true, .lane = HF_LANE_DATA};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 4, &seen), 7);
    for (size_t i = 0; i < 7; i++)
        cr_assert_eq(seen.seq[i], i + 4);

    s_seen_t none = {0};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 11, &none), 0);
    cr_assert_eq(s_read_all(sp, HF_LANE_CONTROL, 1, &none), 0);
    s_seen_t from0 = {0};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 0, &from0), 10, "from 0 reads from the start");
    hf_spool_close(&sp);
}

Test(spool, read_respects_max_n_and_max_bytes, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 10);
    s_seen_t all = {0};
    s_read_all(sp, HF_LANE_DATA, 1, &all);

    size_t n = 99;
    s_seen_t a = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 2, 3, SIZE_MAX, s_collect, &a, &n), HF_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(a.seq[0], 2);
    cr_assert_eq(a.seq[2], 4);

    /* max_bytes below one record still visits one record. */
    s_seen_t b = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 5, 100, 1, s_collect, &b, &n), HF_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(b.seq[0], 5);

    /* Exactly the bytes of records 1..3: three records, not four. */
    size_t cap = all.len[0] + all.len[1] + all.len[2];
    s_seen_t c = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, 100, cap, s_collect, &c, &n), HF_OK);
    cr_assert_eq(n, 3);
    s_seen_t d = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, 100, cap - 1, s_collect, &d, &n), HF_OK);
    cr_assert_eq(n, 2);

    s_seen_t e = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, 0, SIZE_MAX, s_collect, &e, &n), HF_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(e.n, 0);
    hf_spool_close(&sp);
}

Test(spool, read_stops_at_callback_error_and_returns_it, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 5);
    size_t n = 0;
    s_seen_t s = {.fail_at = 3};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, 100, SIZE_MAX, s_collect, &s, &n), HF_EIO);
    cr_assert_eq(n, 2);
    /* The spool is still usable afterwards. */
    s_seen_t t = {0};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 1, &t), 5);
    hf_spool_close(&sp);
}

/* ---- behaviour: trim ------------------------------------------------------ */

Test(spool, trim_deletes_up_to_seq_and_updates_acked_and_depth, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 10);
    hf_record_t ev[3];
    for (int i = 0; i < 3; i++)
        s_event(&ev[i], (uint32_t)i);
    cr_assert_eq(hf_spool_append(sp, ev, 3), HF_OK);

    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 4), HF_OK);
    cr_assert_eq(hf_spool_acked(sp, HF_LANE_DATA), 4);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 6);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_CONTROL), 3, "other lane untouched");
    cr_assert_eq(hf_spool_acked(sp, HF_LANE_CONTROL), 0);
    s_seen_t s = {0};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 1, &s), 6);
    cr_assert_eq(s.seq[0], 5);

    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 2), HF_OK, "below acked: no-op");
    cr_assert_eq(hf_spool_acked(sp, HF_LANE_DATA), 4);
    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 11), HF_EINVAL);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 6);

    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 10), HF_OK);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 0);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 10, "trim never lowers last_seq");
    s_seen_t t = {0};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 1, &t), 0);
    hf_spool_close(&sp);
}

/* ---- behaviour: persistence ----------------------------------------------- */

Test(spool, reopen_keeps_epoch_seqs_acked_and_records, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 8);
    hf_record_t ev[2];
    s_event(&ev[0], 0);
    s_event(&ev[1], 1);
    cr_assert_eq(hf_spool_append(sp, ev, 2), HF_OK);
    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 3), HF_OK);
    uint64_t epoch = hf_spool_epoch(sp);
    hf_spool_close(&sp);

    sp = s_open(NULL);
    cr_assert_eq(hf_spool_epoch(sp), epoch);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 8);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_CONTROL), 2);
    cr_assert_eq(hf_spool_acked(sp, HF_LANE_DATA), 3);
    cr_assert_eq(hf_spool_acked(sp, HF_LANE_CONTROL), 0);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 5);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_CONTROL), 2);
    s_seen_t s = {.decode = true, .lane = HF_LANE_DATA};
    cr_assert_eq(s_read_all(sp, HF_LANE_DATA, 1, &s), 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(s.seq[i], i + 4);
    s_append_samples(sp, 100, 1);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 9);
    hf_spool_close(&sp);
}

Test(spool, seq_is_never_reused_after_trimming_everything_and_reopening, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 5);
    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 5), HF_OK);
    hf_spool_close(&sp);
    sp = s_open(NULL);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 0);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 5);
    hf_record_t r;
    s_sample(&r, 1);
    cr_assert_eq(hf_spool_append(sp, &r, 1), HF_OK);
    cr_assert_eq(r.seq, 6);
    hf_spool_close(&sp);
}

Test(spool, two_fresh_spools_get_different_nonzero_epochs, .timeout = 10)
{
    char sub_a[128], sub_b[128];
    snprintf(sub_a, sizeof sub_a, "%s/a", s_dir);
    snprintf(sub_b, sizeof sub_b, "%s/b", s_dir);
    hf_err_t err = HF_ESTATE;
    hf_spool_t *a = hf_spool_open(sub_a, NULL, &err);
    cr_assert_not_null(a, "%s", hf_errname(err));
    hf_spool_t *b = hf_spool_open(sub_b, NULL, &err);
    cr_assert_not_null(b, "%s", hf_errname(err));
    cr_assert_neq(hf_spool_epoch(a), 0);
    cr_assert_neq(hf_spool_epoch(b), 0);
    cr_assert_neq(hf_spool_epoch(a), hf_spool_epoch(b));
    hf_spool_close(&a);
    hf_spool_close(&b);
}

Test(spool, missing_directory_is_created_private, .timeout = 10)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/new", s_dir);
    hf_err_t err = HF_ESTATE;
    hf_spool_t *sp = hf_spool_open(sub, NULL, &err);
    cr_assert_not_null(sp, "%s", hf_errname(err));
    struct stat st;
    cr_assert_eq(stat(sub, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0700);
    hf_spool_close(&sp);
}

/* ---- behaviour: refusing what is not ours --------------------------------- */

static void
s_fill_foreign(MDB_env *env, MDB_txn *txn)
{
    (void)env;
    MDB_dbi dbi;
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    s_put_str(txn, dbi, "hello", "world", 5);
}

Test(spool, foreign_lmdb_environment_is_refused_and_left_untouched, .timeout = 10)
{
    s_plain_env(s_fill_foreign);
    s_expect_refused_untouched();
}

static void
s_fill_wrong_version(MDB_env *env, MDB_txn *txn)
{
    (void)env;
    MDB_dbi dbi;
    uint8_t ver[4] = {0, 0, 0, 2};
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    s_put_str(txn, dbi, "magic", "holdfast-spool", 14);
    s_put_str(txn, dbi, "version", ver, 4);
}

Test(spool, other_format_version_is_refused_and_left_untouched, .timeout = 10)
{
    s_plain_env(s_fill_wrong_version);
    s_expect_refused_untouched();
    cr_assert(strstr(s_last_err, "version=2"), "log names the version: '%s'", s_last_err);
}

static void
s_fill_wrong_magic(MDB_env *env, MDB_txn *txn)
{
    (void)env;
    MDB_dbi dbi;
    uint8_t ver[4] = {0, 0, 0, 1};
    cr_assert_eq(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
    s_put_str(txn, dbi, "magic", "someone-else", 12);
    s_put_str(txn, dbi, "version", ver, 4);
}

Test(spool, meta_without_our_magic_is_refused_and_left_untouched, .timeout = 10)
{
    s_plain_env(s_fill_wrong_magic);
    s_expect_refused_untouched();
}

Test(spool, garbage_data_file_is_refused_and_left_untouched, .timeout = 10)
{
    FILE *f = fopen(s_path("data.mdb"), "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 16384; i++)
        fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    s_expect_refused_untouched();
}

static void
s_fill_nothing(MDB_env *env, MDB_txn *txn)
{
    (void)env;
    (void)txn;
}

Test(spool, empty_lmdb_environment_is_adopted_as_fresh, .timeout = 10)
{
    /* What a crash between env creation and our first commit leaves. */
    s_plain_env(s_fill_nothing);
    hf_spool_t *sp = s_open(NULL);
    cr_assert_neq(hf_spool_epoch(sp), 0);
    s_append_samples(sp, 0, 1);
    hf_spool_close(&sp);
}

Test(spool, stored_seq_beyond_last_seq_is_refused, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 3);
    hf_spool_close(&sp);

    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 8), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "data", 0, &dbi), 0);
    uint8_t k[8] = {0, 0, 0, 0, 0, 0, 0, 9};
    MDB_val key = {8, k}, val = {1, "x"};
    cr_assert_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    s_expect_refused_untouched();
}

Test(spool, bad_options_are_rejected, .timeout = 10)
{
    hf_err_t err = HF_OK;
    hf_spool_opts_t o = hf_spool_opts_default();
    o.map_bytes = 0;
    cr_assert_null(hf_spool_open(s_dir, &o, &err));
    cr_assert_eq(err, HF_EINVAL);

    o = hf_spool_opts_default();
    o.max_bytes = o.map_bytes - 1;
    cr_assert_null(hf_spool_open(s_dir, &o, &err));
    cr_assert_eq(err, HF_EINVAL);

    o = hf_spool_opts_default();
    o.map_bytes = HF_SPOOL_MIN_MAP_BYTES;
    o.max_bytes = HF_SPOOL_MIN_MAX_BYTES - 1;
    cr_assert_null(hf_spool_open(s_dir, &o, &err));
    cr_assert_eq(err, HF_EINVAL);

    cr_assert_null(hf_spool_open("", NULL, &err));
    cr_assert_eq(err, HF_EINVAL);
    cr_assert_null(hf_spool_open(NULL, NULL, &err));
    cr_assert_eq(err, HF_EINVAL);
    cr_assert_null(hf_spool_open(s_dir, &o, NULL), "err is optional");

    /* Nothing was created by the refused opens. */
    struct stat st;
    cr_assert_neq(stat(s_path("data.mdb"), &st), 0);
}

Test(spool, path_that_is_a_file_is_an_io_error, .timeout = 10)
{
    FILE *f = fopen(s_path("plain"), "w");
    cr_assert_not_null(f);
    fclose(f);
    hf_err_t err = HF_OK;
    cr_assert_null(hf_spool_open(s_path("plain"), NULL, &err));
    cr_assert_eq(err, HF_EIO);
}

/* ---- behaviour: size ------------------------------------------------------ */

Test(spool, map_grows_from_a_small_map_up_to_the_bound, .timeout = 60)
{
    hf_spool_opts_t o = hf_spool_opts_default();
    o.map_bytes = 1u << 20;
    o.max_bytes = 64u << 20;
    o.durable = false; /* also covers relaxed mode + hf_spool_sync */
    hf_spool_t *sp = s_open(&o);
    cr_assert_eq(hf_spool_map_bytes(sp), 1u << 20);
    uint32_t ch = 0;
    size_t batches = 0;
    while (hf_spool_used_bytes(sp) < (20u << 20) && batches < 1000) {
        s_append_samples(sp, ch, 2000);
        ch += 2000;
        batches++;
        if (batches % 20 == 0)
            cr_assert_eq(hf_spool_sync(sp), HF_OK);
    }
    cr_assert_geq(hf_spool_used_bytes(sp), 20u << 20);
    cr_assert_gt(hf_spool_map_bytes(sp), 16u << 20);
    cr_assert_leq(hf_spool_map_bytes(sp), 64u << 20);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), ch);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), ch);
    cr_assert_eq(hf_spool_sync(sp), HF_OK);
    size_t n = 0;
    s_seen_t s = {0};
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, ch - 9, 100, SIZE_MAX, s_collect, &s, &n),
                 HF_OK);
    cr_assert_eq(n, 10);
    cr_assert_eq(s.seq[9], ch);
    hf_spool_close(&sp);

    /* Reopening with the small map_bytes uses the (larger) file. */
    sp = s_open(&o);
    cr_assert_geq(hf_spool_map_bytes(sp), 20u << 20);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), ch);
    s_append_samples(sp, ch, 10);
    hf_spool_close(&sp);
}

static hf_err_t
s_fill_until_full(hf_spool_t *sp, uint32_t *ch)
{
    hf_record_t recs[200];
    for (int b = 0; b < 2000; b++) {
        for (int i = 0; i < 200; i++)
            s_sample(&recs[i], (*ch)++);
        hf_err_t rc = hf_spool_append(sp, recs, 200);
        if (rc != HF_OK) {
            for (int i = 0; i < 200; i++)
                cr_assert_eq(recs[i].seq, 0, "refused batch was modified");
            return rc;
        }
    }
    return HF_OK;
}

Test(spool, full_spool_refuses_whole_batch_and_recovers_after_trim, .timeout = 30)
{
    hf_spool_opts_t o = hf_spool_opts_default();
    o.map_bytes = HF_SPOOL_MIN_MAP_BYTES;
    o.max_bytes = HF_SPOOL_MIN_MAX_BYTES;
    hf_spool_t *sp = s_open(&o);
    uint32_t ch = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t before_last = hf_spool_last_seq(sp, HF_LANE_DATA);
        cr_assert_eq(s_fill_until_full(sp, &ch), HF_EFULL, "round %d", round);
        uint64_t last = hf_spool_last_seq(sp, HF_LANE_DATA);
        uint64_t depth = hf_spool_depth(sp, HF_LANE_DATA);
        cr_assert_gt(last, before_last, "round %d: something fitted", round);
        cr_assert_leq(hf_spool_map_bytes(sp), o.max_bytes);
        cr_assert_leq(hf_spool_used_bytes(sp), o.max_bytes);

        /* Still full, and the refused batch left nothing behind. */
        hf_record_t big[200];
        for (int i = 0; i < 200; i++)
            s_sample(&big[i], (uint32_t)i);
        cr_assert_eq(hf_spool_append(sp, big, 200), HF_EFULL);
        cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), last);
        s_seen_t s = {0};
        size_t n = 0;
        cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, last + 1, 10, SIZE_MAX, s_collect, &s, &n),
                     HF_OK);
        cr_assert_eq(n, 0, "a refused batch must not be partially committed");
        cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), depth);

        cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, last), HF_OK, "round %d: full spool trims",
                     round);
        cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 0);
        /* A whole batch: it needs the pages the trim freed, which LMDB
         * hands out only one commit later (the spool's touch txn). */
        for (int i = 0; i < 200; i++)
            s_sample(&big[i], (uint32_t)i);
        cr_assert_eq(hf_spool_append(sp, big, 200), HF_OK, "round %d: room after trim", round);
        cr_assert_eq(big[0].seq, last + 1);
        cr_assert_eq(big[199].seq, last + 200);
        cr_assert_leq(hf_spool_map_bytes(sp), o.max_bytes);
    }
    hf_spool_close(&sp);
    sp = s_open(&o);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 200);
    hf_spool_close(&sp);
}

/* ---- behaviour: crash ----------------------------------------------------- */

/* Child: own spool, append mixed batches, report the last seqs after each
 * commit. Never returns. */
static void
s_crash_child(int wfd, bool durable)
{
    hf_log_set_sink(NULL, NULL);
    hf_spool_opts_t o = hf_spool_opts_default();
    o.durable = durable;
    hf_spool_t *sp = hf_spool_open(s_dir, &o, NULL);
    if (!sp)
        _exit(2);
    hf_record_t recs[8];
    for (uint32_t b = 0; b < 100000; b++) {
        for (uint32_t i = 0; i < 8; i++) {
            if (i % 4 == 3)
                s_event(&recs[i], b);
            else
                s_sample(&recs[i], b * 8 + i);
        }
        if (hf_spool_append(sp, recs, 8) != HF_OK)
            _exit(3);
        uint64_t rep[2] = {hf_spool_last_seq(sp, HF_LANE_CONTROL),
                           hf_spool_last_seq(sp, HF_LANE_DATA)};
        if (write(wfd, rep, sizeof rep) != (ssize_t)sizeof rep)
            _exit(4);
    }
    _exit(0);
}

static void
s_crash_rounds(bool durable)
{
    unsigned seed = (unsigned)getpid();
    const char *env_seed = getenv("HF_SEED");
    if (env_seed)
        seed = (unsigned)strtoul(env_seed, NULL, 10);
    cr_log_info("crash test seed=%u (HF_SEED=%u replays)", seed, seed);

    for (int round = 0; round < 3; round++) {
        int pfd[2];
        cr_assert_eq(pipe(pfd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(pfd[0]);
            s_crash_child(pfd[1], durable);
        }
        close(pfd[1]);
        int kill_after = 1 + (int)(rand_r(&seed) % 150);
        uint64_t rep[2] = {0, 0}, got[2];
        int reports = 0;
        bool killed = false;
        for (;;) {
            ssize_t r = read(pfd[0], got, sizeof got);
            if (r == 0)
                break;
            if (r < 0 && errno == EINTR)
                continue;
            cr_assert_eq(r, (ssize_t)sizeof got, "short report");
            memcpy(rep, got, sizeof rep);
            if (++reports == kill_after && !killed) {
                kill(pid, SIGKILL);
                killed = true;
            }
        }
        close(pfd[0]);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(killed, "child ended on its own: status=%d", status);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status=%d", status);

        hf_spool_t *sp = s_open(NULL);
        for (int l = 0; l < HF_LANE_COUNT; l++) {
            uint64_t last = hf_spool_last_seq(sp, (hf_lane_t)l);
            cr_assert_geq(last, rep[l], "round %d lane %d: last=%" PRIu64 " < reported %" PRIu64,
                          round, l, last, rep[l]);
            cr_assert_eq(hf_spool_depth(sp, (hf_lane_t)l), last);
            s_seen_t *s = calloc(1, sizeof *s);
            cr_assert_not_null(s);
            s->decode = true;
            s->lane = (hf_lane_t)l;
            uint64_t want = 1;
            while (want <= last) {
                size_t n = 0;
                s->n = 0;
                cr_assert_eq(hf_spool_read(sp, (hf_lane_t)l, want, S_MAX_SEEN, SIZE_MAX,
                                           s_collect, s, &n),
                             HF_OK);
                cr_assert_gt(n, 0, "lane %d: seq %" PRIu64 " missing", l, want);
                for (size_t i = 0; i < n; i++)
                    cr_assert_eq(s->seq[i], want + i, "lane %d: hole before %" PRIu64, l,
                                 s->seq[i]);
                want += n;
            }
            cr_assert_eq(want, last + 1);
            free(s);
        }
        hf_spool_close(&sp); /* closed before the next fork */
    }
}

Test(spool, sigkill_loses_no_reported_commit_durable, .timeout = 60)
{
    s_crash_rounds(true);
}

Test(spool, sigkill_loses_no_reported_commit_relaxed, .timeout = 60)
{
    s_crash_rounds(false);
}

/* ---- behaviour: full-spool drops ------------------------------------------ */

typedef struct {
    uint64_t seqs[65536]; /* data seqs still held, in order */
    size_t n;
} s_held_t;

static hf_err_t
s_hold_cb(void *arg, uint64_t seq, const uint8_t *rec, size_t len)
{
    (void)rec;
    (void)len;
    s_held_t *h = arg;
    if (h->n < 65536)
        h->seqs[h->n] = seq;
    h->n++;
    return HF_OK;
}

Test(spool, decimate_keeps_every_second_and_announces_the_drop_atomically, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 1000);
    hf_record_t ev;
    s_event(&ev, 1);
    cr_assert_eq(hf_spool_append(sp, &ev, 1), HF_OK);
    hf_record_t gap;
    memset(&gap, 0, sizeof gap);
    gap.ts_ns = 123;
    uint64_t dropped = 0;
    /* One step thins the oldest quarter of the backlog. */
    cr_assert_eq(hf_spool_drop(sp, HF_SPOOL_DROP_DECIMATE, &gap, &dropped), HF_OK);
    cr_assert_eq(dropped, 125);
    cr_assert_eq(gap.kind, HF_KIND_GAP);
    cr_assert_eq(gap.lane, HF_LANE_CONTROL);
    cr_assert_eq(gap.seq, 2, "gap record follows the event in the control lane");
    cr_assert_eq(gap.u.gap.lane, HF_LANE_DATA);
    cr_assert_eq(gap.u.gap.first, 1);
    cr_assert_eq(gap.u.gap.last, 250);
    cr_assert_eq(gap.u.gap.count, 125);
    cr_assert_eq(gap.u.gap.reason, HF_SPOOL_DROP_DECIMATE);
    cr_assert_eq(gap.ts_ns, 123);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 875);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 1000, "last seq unchanged: never reused");
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_CONTROL), 2);
    hf_spool_close(&sp);

    sp = s_open(NULL); /* the drop and its gap record were one durable commit */
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 875);
    static s_held_t h;
    h.n = 0;
    size_t n = 0;
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, SIZE_MAX, SIZE_MAX, s_hold_cb, &h, &n), HF_OK);
    cr_assert_eq(h.n, 875);
    for (size_t i = 0; i < 125; i++)
        cr_assert_eq(h.seqs[i], 1 + 2 * i, "kept seq %zu is %" PRIu64, i, h.seqs[i]);
    for (size_t i = 125; i < h.n; i++)
        cr_assert_eq(h.seqs[i], 251 + (i - 125));
    /* Reads from inside the thinned history, with limits, stay in order. */
    h.n = 0;
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 248, 3, SIZE_MAX, s_hold_cb, &h, &n), HF_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(h.seqs[0], 249);
    cr_assert_eq(h.seqs[1], 251);
    cr_assert_eq(h.seqs[2], 252);
    /* Trim reaches into the thinned history too. */
    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 100), HF_OK);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), 825);
    s_seen_t s = {.decode = true, .lane = HF_LANE_CONTROL};
    cr_assert_eq(s_read_all(sp, HF_LANE_CONTROL, 1, &s), 2);
    hf_spool_close(&sp);
}

Test(spool, repeated_decimation_thins_everything_then_doubles_n, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 1024);
    hf_record_t gap;
    uint64_t dropped = 0, total = 0;
    for (int i = 0; i < 200 && hf_spool_depth(sp, HF_LANE_DATA) > 300; i++) {
        memset(&gap, 0, sizeof gap);
        cr_assert_eq(hf_spool_drop(sp, HF_SPOOL_DROP_DECIMATE, &gap, &dropped), HF_OK);
        cr_assert_gt(dropped, 0);
        total += dropped;
    }
    uint64_t depth = hf_spool_depth(sp, HF_LANE_DATA);
    cr_assert_eq(depth + total, 1024, "every record is either held or counted as dropped");
    static s_held_t h;
    h.n = 0;
    size_t n = 0;
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 1, SIZE_MAX, SIZE_MAX, s_hold_cb, &h, &n), HF_OK);
    cr_assert_eq(h.n, depth);
    for (size_t i = 1; i < h.n; i++)
        cr_assert_gt(h.seqs[i], h.seqs[i - 1], "order kept");
    cr_assert_eq(h.seqs[h.n - 1], 1024, "the newest record survives");
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_DATA), 1024);
    hf_spool_close(&sp);
    sp = s_open(NULL);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_DATA), depth);
    hf_spool_close(&sp);
}

Test(spool, drop_oldest_removes_the_oldest_quarter, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    s_append_samples(sp, 0, 400);
    cr_assert_eq(hf_spool_trim(sp, HF_LANE_DATA, 100), HF_OK);
    hf_record_t gap;
    memset(&gap, 0, sizeof gap);
    uint64_t dropped = 0;
    cr_assert_eq(hf_spool_drop(sp, HF_SPOOL_DROP_OLDEST, &gap, &dropped), HF_OK);
    cr_assert_eq(dropped, 75);
    cr_assert_eq(gap.u.gap.first, 101, "acked records are not the policy's business");
    cr_assert_eq(gap.u.gap.last, 175);
    cr_assert_eq(gap.u.gap.count, 75);
    cr_assert_eq(gap.u.gap.reason, HF_SPOOL_DROP_OLDEST);
    static s_held_t h;
    h.n = 0;
    size_t n = 0;
    cr_assert_eq(hf_spool_read(sp, HF_LANE_DATA, 101, SIZE_MAX, SIZE_MAX, s_hold_cb, &h, &n),
                 HF_OK);
    cr_assert_eq(h.seqs[0], 176);
    cr_assert_eq(h.n, 225);
    hf_spool_close(&sp);
}

Test(spool, drop_never_touches_the_control_lane_and_needs_two_samples, .timeout = 10)
{
    hf_spool_t *sp = s_open(NULL);
    hf_record_t ev[10];
    for (int i = 0; i < 10; i++)
        s_event(&ev[i], (uint32_t)i);
    cr_assert_eq(hf_spool_append(sp, ev, 10), HF_OK);
    s_append_samples(sp, 0, 1);
    hf_record_t gap;
    memset(&gap, 0, sizeof gap);
    uint64_t dropped = 7;
    cr_assert_eq(hf_spool_drop(sp, HF_SPOOL_DROP_DECIMATE, &gap, &dropped), HF_ENOTFOUND);
    cr_assert_eq(dropped, 0);
    cr_assert_eq(hf_spool_depth(sp, HF_LANE_CONTROL), 10);
    cr_assert_eq(hf_spool_last_seq(sp, HF_LANE_CONTROL), 10);
    cr_assert_eq(hf_spool_drop(sp, (hf_spool_drop_t)9, &gap, &dropped), HF_EINVAL);
    hf_spool_close(&sp);
}

Test(spool, full_spool_makes_room_by_decimating, .timeout = 30)
{
    hf_spool_opts_t o = hf_spool_opts_default();
    o.map_bytes = HF_SPOOL_MIN_MAP_BYTES;
    o.max_bytes = HF_SPOOL_MIN_MAX_BYTES;
    hf_spool_t *sp = s_open(&o);
    uint32_t ch = 0;
    cr_assert_eq(s_fill_until_full(sp, &ch), HF_EFULL);
    uint64_t depth = hf_spool_depth(sp, HF_LANE_DATA);
    hf_record_t gap;
    memset(&gap, 0, sizeof gap);
    uint64_t dropped = 0;
    hf_record_t recs[200];
    for (int i = 0; i < 200; i++)
        s_sample(&recs[i], ch++);
    hf_err_t rc = HF_EFULL;
    uint64_t total = 0;
    for (int attempt = 0; attempt < 16 && rc == HF_EFULL; attempt++) {
        cr_assert_eq(hf_spool_drop(sp, HF_SPOOL_DROP_DECIMATE, &gap, &dropped), HF_OK);
        total += dropped;
        rc = hf_spool_append(sp, recs, 200);
    }
    cr_assert_eq(rc, HF_OK, "room after dropping %" PRIu64 " of %" PRIu64, total, depth);
    cr_assert_lt(total, depth / 2, "room appears before half the backlog is gone");
    cr_assert_leq(hf_spool_map_bytes(sp), o.max_bytes);
    hf_spool_close(&sp);
}
