/* test_store.c - the aggregator's durable store (hf_store_t).
 *
 * Each test works in its own fresh directory under /tmp (Criterion runs every
 * test in its own process). Wall times are made-up constants: the store
 * never reads a clock.
 */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_proto.h"
#include "hf_store.h"

#define EPOCH_A 0x1111222233334444ull
#define EPOCH_B 0x5555666677778888ull
#define T0 1700000000000000000ull /* a wall time, ns */

static char s_dir[64];

static void
s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/hf-store-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void
s_teardown(void)
{
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", s_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", s_dir);
    unlink(p);
    rmdir(s_dir);
}

static hf_store_t *
s_open(void)
{
    hf_err_t err = HF_EIO;
    hf_store_t *st = hf_store_open(s_dir, NULL, &err);
    cr_assert_eq(err, HF_OK, "open: %s", hf_errname(err));
    cr_assert_not_null(st);
    return st;
}

/* seqs first..last of lane, samples of run (channel = seq % 3) or events */
static void
s_fill(hf_record_t *recs, uint8_t lane, uint64_t run, uint64_t first, uint64_t last)
{
    for (uint64_t s = first; s <= last; s++) {
        hf_record_t *r = &recs[s - first];
        if (lane == HF_LANE_DATA)
            hf_record_sample(r, run, T0 + s, s, (uint32_t)(s % 3), (double)s * 0.5);
        else
            hf_record_event(r, run, T0 + s, s, HF_EV_STEP, (uint32_t)s, "step");
        r->seq = s;
    }
}

static void
s_commit_range(hf_store_t *st, const char *eng, uint64_t epoch, uint8_t lane, uint64_t run,
               uint64_t first, uint64_t last)
{
    size_t n = (size_t)(last - first + 1);
    hf_record_t *recs = calloc(n, sizeof *recs);
    s_fill(recs, lane, run, first, last);
    uint64_t acked = 0;
    size_t dups = 99;
    hf_err_t rc = hf_store_commit(st, eng, epoch, lane, recs, n, T0, &acked, &dups);
    cr_assert_eq(rc, HF_OK, "commit %llu..%llu: %s", (unsigned long long)first,
                 (unsigned long long)last, hf_errname(rc));
    cr_assert_eq(acked, last);
    cr_assert_eq(dups, 0);
    free(recs);
}

/* ---- export collection ---------------------------------------------------- */

typedef struct {
    uint64_t epoch;
    uint8_t lane;
    uint64_t seq;
    uint64_t run;
    uint8_t kind;
    int has_channels;
} s_got_t;

typedef struct {
    s_got_t v[4096];
    size_t n;
} s_list_t;

static int
s_collect(const hf_store_export_rec_t *x, void *arg)
{
    s_list_t *l = arg;
    cr_assert_lt(l->n, sizeof l->v / sizeof l->v[0]);
    s_got_t *g = &l->v[l->n++];
    g->epoch = x->epoch;
    g->lane = x->rec.lane;
    g->seq = x->rec.seq;
    g->run = x->rec.run;
    g->kind = x->rec.kind;
    g->has_channels = x->channels != NULL;
    return 0;
}

/* Export everything matching (run, lane) in pages of max, via the wire form
 * of the position between pages. */
static void
s_export_all(hf_store_t *st, const char *eng, uint64_t run, int lane, size_t max, s_list_t *out)
{
    hf_store_export_opts_t o = {run, lane, max, 0};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    out->n = 0;
    for (int page = 0; page < 10000; page++) {
        bool done = false;
        size_t taken = 0;
        size_t before = out->n;
        hf_err_t rc = hf_store_export(st, eng, &o, &pos, s_collect, out, &taken, &done);
        cr_assert_eq(rc, HF_OK, "export: %s", hf_errname(rc));
        cr_assert_eq(taken, out->n - before);
        cr_assert_leq(taken, max);
        if (done)
            return;
        cr_assert_eq(taken, max, "a page that is not the last is full");
        uint8_t wire[HF_STORE_POS_BYTES];
        hf_store_pos_pack(&pos, wire);
        memset(&pos, 0xff, sizeof pos);
        cr_assert_eq(hf_store_pos_unpack(wire, sizeof wire, &pos), HF_OK);
    }
    cr_assert_fail("export did not finish");
}

static size_t
s_export_count(hf_store_t *st, const char *eng)
{
    static s_list_t l;
    s_export_all(st, eng, 0, -1, 1000, &l);
    return l.n;
}

TestSuite(store, .init = s_setup, .fini = s_teardown, .timeout = 20);

Test(store, commit_then_cursor_reports_acked_per_lane)
{
    hf_store_t *st = s_open();
    uint64_t acked[2] = {7, 7};
    cr_assert_eq(hf_store_cursor(st, "eng-1", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[0], 0);
    cr_assert_eq(acked[1], 0);
    cr_assert_eq(hf_store_note_hello(st, "eng-1", EPOCH_A, 0, HF_RUN_IDLE, T0), HF_OK);
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_CONTROL, 0, 1, 3);
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 1, 100);
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 101, 150);
    cr_assert_eq(hf_store_cursor(st, "eng-1", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_CONTROL], 3);
    cr_assert_eq(acked[HF_LANE_DATA], 150);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "eng-1", &e), HF_OK);
    cr_assert_eq(e.records[HF_LANE_CONTROL], 3);
    cr_assert_eq(e.records[HF_LANE_DATA], 150);
    cr_assert_eq(e.current_epoch, EPOCH_A);
    cr_assert_eq(e.epoch_count, 1);
    cr_assert_eq(e.first_seen_ns, T0);
    cr_assert_eq(s_export_count(st, "eng-1"), 153);
    hf_store_close(&st);
    cr_assert_null(st);
    hf_store_close(&st); /* idempotent */
}

Test(store, resend_of_committed_batch_is_skipped_and_counted)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 10);
    hf_record_t recs[10];
    s_fill(recs, HF_LANE_DATA, 1, 1, 10);
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 10, T0, &acked, &dups),
                 HF_OK);
    cr_assert_eq(dups, 10);
    cr_assert_eq(acked, 10);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "e", &e), HF_OK);
    cr_assert_eq(e.records[HF_LANE_DATA], 10);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 1, &r), HF_OK);
    cr_assert_eq(r.samples, 10, "duplicates are not counted twice in the run");
    cr_assert_eq(s_export_count(st, "e"), 10);
    hf_store_close(&st);
}

Test(store, batch_overlapping_cursor_commits_only_the_new_part)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 10);
    hf_record_t recs[11];
    s_fill(recs, HF_LANE_DATA, 1, 5, 15);
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 11, T0, &acked, &dups),
                 HF_OK);
    cr_assert_eq(dups, 6);
    cr_assert_eq(acked, 15);
    static s_list_t l;
    s_export_all(st, "e", 0, -1, 100, &l);
    cr_assert_eq(l.n, 15);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(l.v[i].seq, i + 1);
    hf_store_close(&st);
}

Test(store, gap_is_refused_and_nothing_is_committed)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 5);
    hf_record_t recs[3];
    s_fill(recs, HF_LANE_DATA, 1, 7, 9);
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 3, T0, &acked, &dups),
                 HF_EPROTO);
    cr_assert_eq(acked, 5, "the unchanged cursor is reported for the resync");

    /* a hole inside the batch, after a valid start */
    hf_record_t hole[3];
    s_fill(hole, HF_LANE_DATA, 1, 6, 8);
    hole[2].seq = 9;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, hole, 3, T0, &acked, &dups),
                 HF_EPROTO);
    /* disorder */
    hole[1].seq = 6;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, hole, 3, T0, &acked, &dups),
                 HF_EPROTO);
    /* a record of the other lane */
    hf_record_t wrong[2];
    s_fill(wrong, HF_LANE_CONTROL, 1, 6, 7);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, wrong, 2, T0, &acked, &dups),
                 HF_EPROTO);

    uint64_t cur[2];
    cr_assert_eq(hf_store_cursor(st, "e", EPOCH_A, cur), HF_OK);
    cr_assert_eq(cur[HF_LANE_DATA], 5);
    cr_assert_eq(s_export_count(st, "e"), 5);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 1, &r), HF_OK);
    cr_assert_eq(r.samples, 5);
    /* the store is still usable after a refused batch */
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 6, 8);
    hf_store_close(&st);
}

Test(store, bad_arguments_are_einval)
{
    hf_store_t *st = s_open();
    hf_record_t r[1];
    s_fill(r, HF_LANE_DATA, 0, 1, 1);
    uint64_t acked[2];
    cr_assert_eq(hf_store_commit(st, "bad id", EPOCH_A, HF_LANE_DATA, r, 1, T0, NULL, NULL),
                 HF_EINVAL);
    cr_assert_eq(hf_store_commit(st, "e", 0, HF_LANE_DATA, r, 1, T0, NULL, NULL), HF_EINVAL);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, 2, r, 1, T0, NULL, NULL), HF_EINVAL);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, NULL, 1, T0, NULL, NULL),
                 HF_EINVAL);
    cr_assert_eq(hf_store_cursor(st, "", EPOCH_A, acked), HF_EINVAL);
    cr_assert_eq(hf_store_note_hello(st, "e", 0, 0, 0, T0), HF_EINVAL);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "nobody", &e), HF_ENOTFOUND);
    hf_store_pos_t pos = {0, 0, 0};
    hf_store_export_opts_t o = {0, -1, 10, 0};
    cr_assert_eq(hf_store_export(st, "nobody", &o, &pos, s_collect, NULL, NULL, NULL),
                 HF_ENOTFOUND);
    hf_store_opts_t bad = hf_store_opts_default();
    bad.max_bytes = bad.map_bytes - 1;
    hf_err_t err = HF_OK;
    cr_assert_null(hf_store_open(s_dir, &bad, &err));
    cr_assert_eq(err, HF_EINVAL);
    hf_store_close(&st);
}

Test(store, reopen_keeps_everything)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_A, 4, HF_RUN_RUNNING, T0), HF_OK);
    hf_record_t ev;
    hf_record_event(&ev, 4, T0 + 10, 10, HF_EV_RUN_STARTED, 0, "ramp");
    ev.seq = 1;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_CONTROL, &ev, 1, T0, NULL, NULL),
                 HF_OK);
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 4, 1, 50);
    hf_store_close(&st);

    st = s_open();
    uint64_t acked[2];
    cr_assert_eq(hf_store_cursor(st, "e", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_CONTROL], 1);
    cr_assert_eq(acked[HF_LANE_DATA], 50);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "e", &e), HF_OK);
    cr_assert_eq(e.last_run, 4);
    cr_assert_eq(e.last_run_state, HF_RUN_RUNNING);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 4, &r), HF_OK);
    cr_assert_str_eq(r.method, "ramp");
    cr_assert_eq(r.samples, 50);
    cr_assert_eq(s_export_count(st, "e"), 51);
    /* and the cursor goes on from there */
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 4, 51, 60);
    hf_store_close(&st);
}

Test(store, new_epoch_starts_at_zero_and_both_epochs_export_in_order)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_B, 0, 0, T0), HF_OK); /* B is first */
    s_commit_range(st, "e", EPOCH_B, HF_LANE_DATA, 1, 1, 5);
    s_commit_range(st, "e", EPOCH_B, HF_LANE_CONTROL, 1, 1, 2);
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_A, 0, 0, T0 + 1), HF_OK);
    uint64_t acked[2] = {9, 9};
    cr_assert_eq(hf_store_cursor(st, "e", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[0], 0);
    cr_assert_eq(acked[1], 0);
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 2, 1, 3);
    s_commit_range(st, "e", EPOCH_A, HF_LANE_CONTROL, 2, 1, 1);

    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "e", &e), HF_OK);
    cr_assert_eq(e.current_epoch, EPOCH_A);
    cr_assert_eq(e.epoch_count, 2);

    /* export order is by epoch ordinal (first HELLO first), not epoch value */
    static s_list_t l;
    s_export_all(st, "e", 0, -1, 3, &l);
    cr_assert_eq(l.n, 11);
    uint64_t want_epoch[] = {EPOCH_B, EPOCH_B, EPOCH_B, EPOCH_B, EPOCH_B, EPOCH_B, EPOCH_B,
                             EPOCH_A, EPOCH_A, EPOCH_A, EPOCH_A};
    uint8_t want_lane[] = {0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1};
    uint64_t want_seq[] = {1, 2, 1, 2, 3, 4, 5, 1, 1, 2, 3};
    for (size_t i = 0; i < l.n; i++) {
        cr_assert_eq(l.v[i].epoch, want_epoch[i], "record %zu", i);
        cr_assert_eq(l.v[i].lane, want_lane[i], "record %zu", i);
        cr_assert_eq(l.v[i].seq, want_seq[i], "record %zu", i);
    }
    /* the old epoch's cursor is untouched */
    cr_assert_eq(hf_store_cursor(st, "e", EPOCH_B, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_DATA], 5);
    hf_store_close(&st);
}

static int
s_epoch_cb(const hf_store_epoch_t *e, void *arg)
{
    hf_store_epoch_t *v = arg;
    v[e->ordinal] = *e;
    return 0;
}

Test(store, epochs_get_ordinals_in_order_of_first_hello)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_B, 0, 0, T0), HF_OK);
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_A, 0, 0, T0 + 5), HF_OK);
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_B, 0, 0, T0 + 9), HF_OK); /* not new */
    hf_store_epoch_t v[3];
    memset(v, 0, sizeof v);
    cr_assert_eq(hf_store_epochs_each(st, "e", s_epoch_cb, v), HF_OK);
    cr_assert_eq(v[0].epoch, EPOCH_B);
    cr_assert_eq(v[1].epoch, EPOCH_A);
    cr_assert_eq(v[1].first_seen_ns, T0 + 5);
    cr_assert_eq(v[2].epoch, 0);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "e", &e), HF_OK);
    cr_assert_eq(e.epoch_count, 2);
    cr_assert_eq(e.current_epoch, EPOCH_B);
    cr_assert_eq(e.last_seen_ns, T0 + 9);
    hf_store_close(&st);
}

static void
s_event(hf_store_t *st, uint64_t *seq, uint64_t run, uint64_t ts, hf_event_type_t t,
        uint32_t step, const char *text)
{
    hf_record_t r;
    hf_record_event(&r, run, ts, ts, t, step, text);
    r.seq = ++*seq;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_CONTROL, &r, 1, T0, NULL, NULL),
                 HF_OK);
}

Test(store, runs_are_derived_from_events_with_true_timestamps)
{
    hf_store_t *st = s_open();
    uint64_t cs = 0;
    s_event(st, &cs, 7, T0 + 100, HF_EV_RUN_STARTED, 0, "ramp-and-hold");
    s_event(st, &cs, 7, T0 + 101, HF_EV_CHANNELS, 0, "temp,pressure");
    s_event(st, &cs, 7, T0 + 102, HF_EV_CHANNELS, 2, "flow");
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 7, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_RUNNING);
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 7, 1, 40);
    s_event(st, &cs, 7, T0 + 200, HF_EV_PAUSED, 0, "");
    cr_assert_eq(hf_store_run_get(st, "e", 7, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_PAUSED);
    s_event(st, &cs, 7, T0 + 300, HF_EV_RESUMED, 0, "");
    cr_assert_eq(hf_store_run_get(st, "e", 7, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_RUNNING);
    s_event(st, &cs, 7, T0 + 350, HF_EV_STEP, 2, "hold");
    s_event(st, &cs, 7, T0 + 400, HF_EV_COMPLETED, 0, "");
    cr_assert_eq(hf_store_run_get(st, "e", 7, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_COMPLETED);
    cr_assert_eq(r.started_ts_ns, T0 + 100);
    cr_assert_eq(r.ended_ts_ns, T0 + 400);
    cr_assert_str_eq(r.method, "ramp-and-hold");
    cr_assert_str_eq(r.channels, "temp,pressure,flow");
    cr_assert_eq(r.samples, 40);
    cr_assert_eq(r.control, 7);
    cr_assert_eq(r.last_event, HF_EV_COMPLETED);
    cr_assert_str_eq(r.engine, "e");
    cr_assert_eq(r.run, 7);

    /* samples carry the run's channel list into the export */
    static s_list_t l;
    s_export_all(st, "e", 7, HF_LANE_DATA, 1000, &l);
    cr_assert_eq(l.n, 40);
    cr_assert(l.v[0].has_channels);

    /* the other terminal states */
    s_event(st, &cs, 8, T0 + 500, HF_EV_RUN_STARTED, 0, "m");
    s_event(st, &cs, 8, T0 + 600, HF_EV_INTERRUPTED, 0, "fatal");
    s_event(st, &cs, 9, T0 + 700, HF_EV_RUN_STARTED, 0, "m");
    s_event(st, &cs, 9, T0 + 800, HF_EV_ABORTED, 0, "");
    s_event(st, &cs, 10, T0 + 900, HF_EV_RUN_STARTED, 0, "m");
    s_event(st, &cs, 10, T0 + 950, HF_EV_FAILED, 0, "");
    cr_assert_eq(hf_store_run_get(st, "e", 8, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_INTERRUPTED);
    cr_assert_eq(r.ended_ts_ns, T0 + 600);
    cr_assert_eq(hf_store_run_get(st, "e", 9, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_ABORTED);
    cr_assert_eq(hf_store_run_get(st, "e", 10, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_FAILED);
    hf_store_close(&st);
}

Test(store, samples_of_an_unknown_run_create_a_running_row)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 42, 1, 12);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 42, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_RUNNING);
    cr_assert_eq(r.samples, 12);
    cr_assert_eq(r.started_ts_ns, 0);
    /* the start arriving later (control lane behind) fills in the rest */
    uint64_t cs = 0;
    s_event(st, &cs, 42, T0 + 1, HF_EV_RUN_STARTED, 0, "late");
    cr_assert_eq(hf_store_run_get(st, "e", 42, &r), HF_OK);
    cr_assert_eq(r.samples, 12);
    cr_assert_eq(r.started_ts_ns, T0 + 1);
    cr_assert_str_eq(r.method, "late");
    cr_assert_eq(hf_store_run_get(st, "e", 43, &r), HF_ENOTFOUND);
    /* samples outside any run make no row */
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 0, 13, 14);
    cr_assert_eq(hf_store_run_get(st, "e", 0, &r), HF_ENOTFOUND);
    hf_store_close(&st);
}

typedef struct {
    char engine[8][HF_ENGINE_ID_MAX + 1];
    uint64_t run[8];
    size_t n;
} s_runs_t;

static int
s_run_cb(const hf_store_run_t *r, void *arg)
{
    s_runs_t *v = arg;
    cr_assert_lt(v->n, 8);
    snprintf(v->engine[v->n], sizeof v->engine[0], "%s", r->engine);
    v->run[v->n++] = r->run;
    return 0;
}

static int
s_engine_cb(const hf_store_engine_t *e, void *arg)
{
    s_runs_t *v = arg;
    snprintf(v->engine[v->n++], sizeof v->engine[0], "%s", e->engine);
    return 0;
}

Test(store, engines_and_runs_iterate_in_order_and_reverse)
{
    hf_store_t *st = s_open();
    /* "ab" and "abc": the 0x00 separator keeps their keys apart */
    s_commit_range(st, "abc", EPOCH_A, HF_LANE_DATA, 5, 1, 2);
    s_commit_range(st, "ab", EPOCH_A, HF_LANE_DATA, 3, 1, 2);
    s_commit_range(st, "ab", EPOCH_A, HF_LANE_DATA, 9, 3, 4);
    s_commit_range(st, "ab", EPOCH_A, HF_LANE_DATA, 4, 5, 5);
    s_runs_t v;
    memset(&v, 0, sizeof v);
    cr_assert_eq(hf_store_engines_each(st, s_engine_cb, &v), HF_OK);
    cr_assert_eq(v.n, 2);
    cr_assert_str_eq(v.engine[0], "ab");
    cr_assert_str_eq(v.engine[1], "abc");

    memset(&v, 0, sizeof v);
    cr_assert_eq(hf_store_runs_each(st, "ab", false, s_run_cb, &v), HF_OK);
    cr_assert_eq(v.n, 3);
    cr_assert_eq(v.run[0], 3);
    cr_assert_eq(v.run[1], 4);
    cr_assert_eq(v.run[2], 9);

    memset(&v, 0, sizeof v);
    cr_assert_eq(hf_store_runs_each(st, "ab", true, s_run_cb, &v), HF_OK);
    cr_assert_eq(v.n, 3);
    cr_assert_eq(v.run[0], 9);
    cr_assert_eq(v.run[2], 3);

    memset(&v, 0, sizeof v);
    cr_assert_eq(hf_store_runs_each(st, NULL, true, s_run_cb, &v), HF_OK);
    cr_assert_eq(v.n, 4);
    cr_assert_str_eq(v.engine[3], "abc");
    cr_assert_eq(v.run[3], 5);

    memset(&v, 0, sizeof v);
    cr_assert_eq(hf_store_runs_each(st, "abc", true, s_run_cb, &v), HF_OK);
    cr_assert_eq(v.n, 1);
    cr_assert_eq(v.run[0], 5);

    /* export of "ab" does not see "abc" */
    cr_assert_eq(s_export_count(st, "ab"), 5);
    cr_assert_eq(s_export_count(st, "abc"), 2);
    hf_store_close(&st);
}

/* Interleaved runs in both lanes over two epochs; paging with a small max. */
Test(store, export_paging_returns_every_record_once_in_order_with_filters)
{
    hf_store_t *st = s_open();
    uint64_t seq[2] = {0, 0};
    for (int round = 0; round < 6; round++) {
        uint64_t epoch = round < 3 ? EPOCH_A : EPOCH_B;
        if (round == 3)
            seq[0] = seq[1] = 0;
        uint64_t run = (uint64_t)(round % 2) + 1;
        s_commit_range(st, "e", epoch, HF_LANE_DATA, run, seq[1] + 1, seq[1] + 17);
        seq[1] += 17;
        s_commit_range(st, "e", epoch, HF_LANE_CONTROL, run, seq[0] + 1, seq[0] + 3);
        seq[0] += 3;
    }
    /* per epoch: control 9 (3 per round), data 51 */
    static s_list_t all, one;
    s_export_all(st, "e", 0, -1, 1, &all);
    cr_assert_eq(all.n, 120);
    for (size_t page = 2; page <= 13; page += 11) {
        s_export_all(st, "e", 0, -1, page, &one);
        cr_assert_eq(one.n, all.n);
        cr_assert_eq(memcmp(one.v, all.v, all.n * sizeof all.v[0]), 0);
    }
    /* strictly increasing (ordinal, lane, seq) */
    for (size_t i = 1; i < all.n; i++) {
        const s_got_t *a = &all.v[i - 1];
        const s_got_t *b = &all.v[i];
        int a_ord = a->epoch == EPOCH_A ? 0 : 1;
        int b_ord = b->epoch == EPOCH_A ? 0 : 1;
        cr_assert(a_ord < b_ord || (a_ord == b_ord && (a->lane < b->lane ||
                                                       (a->lane == b->lane && a->seq < b->seq))),
                  "order at %zu", i);
    }
    /* by run: run 1 had rounds 0, 2, 4 */
    s_export_all(st, "e", 1, -1, 4, &one);
    cr_assert_eq(one.n, 60);
    for (size_t i = 0; i < one.n; i++)
        cr_assert_eq(one.v[i].run, 1);
    /* by lane */
    s_export_all(st, "e", 0, HF_LANE_CONTROL, 5, &one);
    cr_assert_eq(one.n, 18);
    for (size_t i = 0; i < one.n; i++)
        cr_assert_eq(one.v[i].lane, HF_LANE_CONTROL);
    s_export_all(st, "e", 0, HF_LANE_DATA, 7, &one);
    cr_assert_eq(one.n, 102);
    cr_assert_eq(one.v[51].epoch, EPOCH_B);
    cr_assert_eq(one.v[51].seq, 1);
    /* by run and lane */
    s_export_all(st, "e", 2, HF_LANE_CONTROL, 2, &one);
    cr_assert_eq(one.n, 9);
    for (size_t i = 0; i < one.n; i++) {
        cr_assert_eq(one.v[i].run, 2);
        cr_assert_eq(one.v[i].lane, HF_LANE_CONTROL);
    }
    hf_store_close(&st);
}

static int
s_refuse_third(const hf_store_export_rec_t *x, void *arg)
{
    (void)x;
    int *n = arg;
    return ++*n == 3;
}

Test(store, export_callback_refusal_resumes_at_the_refused_record)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 10);
    hf_store_export_opts_t o = {0, -1, 100, 0};
    hf_store_pos_t pos = {0, 0, 0};
    int n = 0;
    size_t taken = 0;
    bool done = true;
    cr_assert_eq(hf_store_export(st, "e", &o, &pos, s_refuse_third, &n, &taken, &done), HF_OK);
    cr_assert_eq(taken, 2);
    cr_assert_not(done);
    static s_list_t l;
    l.n = 0;
    cr_assert_eq(hf_store_export(st, "e", &o, &pos, s_collect, &l, &taken, &done), HF_OK);
    cr_assert(done);
    cr_assert_eq(l.n, 8);
    cr_assert_eq(l.v[0].seq, 3);
    /* max_scan bounds a filtered scan and the position moves on */
    hf_store_export_opts_t f = {999, -1, 100, 4};
    memset(&pos, 0, sizeof pos);
    cr_assert_eq(hf_store_export(st, "e", &f, &pos, s_collect, &l, &taken, &done), HF_OK);
    cr_assert_eq(taken, 0);
    cr_assert_not(done);
    cr_assert_eq(pos.seq, 5);
    hf_store_close(&st);
}

static void
s_write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint8_t *
s_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

Test(store, garbage_data_file_is_refused_untouched)
{
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    size_t n = 65536;
    uint8_t *junk = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    s_write_file(path, junk, n);
    hf_err_t err = HF_OK;
    cr_assert_null(hf_store_open(s_dir, NULL, &err));
    cr_assert_eq(err, HF_ECORRUPT, "got %s", hf_errname(err));
    size_t m = 0;
    uint8_t *after = s_read_file(path, &m);
    cr_assert_eq(m, n);
    cr_assert_eq(memcmp(after, junk, n), 0);
    free(after);

    /* a short text file too */
    s_write_file(path, (const uint8_t *)"not a database\n", 15);
    cr_assert_null(hf_store_open(s_dir, NULL, &err));
    cr_assert_eq(err, HF_ECORRUPT, "got %s", hf_errname(err));
    after = s_read_file(path, &m);
    cr_assert_eq(m, 15);
    cr_assert_eq(memcmp(after, "not a database\n", 15), 0);
    free(after);
    free(junk);
}

Test(store, foreign_lmdb_environment_is_refused_untouched)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {3, "key"}, v = {5, "value"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    size_t n0 = 0;
    uint8_t *before = s_read_file(path, &n0);
    hf_err_t err = HF_OK;
    cr_assert_null(hf_store_open(s_dir, NULL, &err));
    cr_assert_eq(err, HF_ECORRUPT);
    size_t n1 = 0;
    uint8_t *after = s_read_file(path, &n1);
    cr_assert_eq(n0, n1);
    cr_assert_eq(memcmp(before, after, n0), 0);
    free(before);
    free(after);
}

Test(store, open_creates_missing_directories)
{
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a/b", s_dir);
    hf_err_t err = HF_EIO;
    hf_store_t *st = hf_store_open(sub, NULL, &err);
    cr_assert_eq(err, HF_OK);
    cr_assert_not_null(st);
    hf_store_close(&st);
    char p[160];
    snprintf(p, sizeof p, "%s/data.mdb", sub);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", sub);
    unlink(p);
    rmdir(sub);
    snprintf(p, sizeof p, "%s/a", s_dir);
    rmdir(p);
}

Test(store, map_grows_on_demand_then_reports_full_at_max)
{
    hf_store_opts_t o = hf_store_opts_default();
    o.map_bytes = 1u << 20;
    o.max_bytes = 4u << 20;
    hf_err_t err;
    hf_store_t *st = hf_store_open(s_dir, &o, &err);
    cr_assert_not_null(st);
    size_t n = 4096;
    hf_record_t *recs = calloc(n, sizeof *recs);
    uint64_t next = 1;
    hf_err_t rc = HF_OK;
    int batches = 0;
    for (; batches < 200; batches++) {
        s_fill(recs, HF_LANE_DATA, 1, next, next + n - 1);
        uint64_t acked = 0;
        rc = hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, n, T0, &acked, NULL);
        if (rc != HF_OK)
            break;
        cr_assert_eq(acked, next + n - 1);
        next += n;
    }
    cr_assert_eq(rc, HF_EFULL, "got %s after %d batches", hf_errname(rc), batches);
    cr_assert_gt(batches, 1, "the map grew past its initial size");
    cr_assert_eq(hf_store_map_bytes(st), o.max_bytes);
    uint64_t acked[2];
    cr_assert_eq(hf_store_cursor(st, "e", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_DATA], next - 1, "a full store keeps what it committed");
    /* smaller batches still fit or fail cleanly; the store stays usable */
    hf_record_t one;
    s_fill(&one, HF_LANE_DATA, 1, next, next);
    rc = hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, &one, 1, T0, NULL, NULL);
    cr_assert(rc == HF_OK || rc == HF_EFULL);
    free(recs);
    hf_store_close(&st);
}

static void
s_commit_gap(hf_store_t *st, const char *eng, uint64_t epoch, uint64_t cseq, uint64_t first,
             uint64_t last, uint64_t count)
{
    hf_record_t g;
    memset(&g, 0, sizeof g);
    g.kind = HF_KIND_GAP;
    g.lane = HF_LANE_CONTROL;
    g.seq = cseq;
    g.ts_ns = T0;
    g.u.gap.lane = HF_LANE_DATA;
    g.u.gap.first = first;
    g.u.gap.last = last;
    g.u.gap.count = count;
    g.u.gap.reason = 1;
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, eng, epoch, HF_LANE_CONTROL, &g, 1, T0, &acked, &dups),
                 HF_OK);
}

Test(store, holes_announced_by_gap_records_are_accepted_others_refused)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 10);
    hf_record_t recs[4];
    s_fill(recs, HF_LANE_DATA, 1, 20, 23);
    uint64_t acked = 0;
    size_t dups = 0;
    /* 11..19 missing, nothing announced: refused */
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 4, T0, &acked, &dups),
                 HF_EPROTO);
    /* announced in two adjacent ranges (two decimation chunks): accepted */
    s_commit_gap(st, "e", EPOCH_A, 1, 11, 15, 5);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 4, T0, &acked, &dups),
                 HF_EPROTO, "16..19 still unannounced");
    s_commit_gap(st, "e", EPOCH_A, 2, 14, 19, 4);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, recs, 4, T0, &acked, &dups),
                 HF_OK);
    cr_assert_eq(acked, 23);
    /* decimated: every other seq inside an announced range */
    s_commit_gap(st, "e", EPOCH_A, 3, 24, 33, 5);
    hf_record_t thin[5];
    for (int i = 0; i < 5; i++) {
        s_fill(&thin[i], HF_LANE_DATA, 1, 24 + 2 * (uint64_t)i, 24 + 2 * (uint64_t)i);
    }
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, thin, 5, T0, &acked, &dups),
                 HF_OK);
    cr_assert_eq(acked, 32);
    /* a gap announced for another epoch does not count */
    s_commit_range(st, "e", EPOCH_B, HF_LANE_DATA, 1, 1, 3);
    hf_record_t far[1];
    s_fill(far, HF_LANE_DATA, 1, 13, 13);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_B, HF_LANE_DATA, far, 1, T0, &acked, &dups),
                 HF_EPROTO);
    hf_store_close(&st);
    st = s_open(); /* the announced ranges are durable */
    hf_record_t next[1];
    s_fill(next, HF_LANE_DATA, 1, 34, 34);
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, next, 1, T0, &acked, &dups),
                 HF_OK, "33 was inside the announced 24..33");
    hf_store_close(&st);
}

static void
s_event_rec(hf_store_t *st, const char *eng, uint64_t seq, uint64_t run, hf_event_type_t t,
            uint64_t ts)
{
    hf_record_t r;
    hf_record_event(&r, run, ts, ts, t, 0, "m");
    r.seq = seq;
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, eng, EPOCH_A, HF_LANE_CONTROL, &r, 1, T0, &acked, &dups),
                 HF_OK);
}

Test(store, a_new_run_interrupts_the_run_left_open_by_a_restarted_engine)
{
    hf_store_t *st = s_open();
    s_event_rec(st, "e", 1, 100, HF_EV_RUN_STARTED, T0 + 1);
    s_event_rec(st, "e", 2, 100, HF_EV_STEP, T0 + 5);
    hf_record_t smp;
    hf_record_sample(&smp, 100, T0 + 7, 7, 0, 1.0);
    smp.seq = 1;
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, "e", EPOCH_A, HF_LANE_DATA, &smp, 1, T0, &acked, &dups),
                 HF_OK);
    /* the engine is killed; it comes back and starts run 200 */
    s_event_rec(st, "e", 3, 200, HF_EV_RUN_STARTED, T0 + 9);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 100, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_INTERRUPTED);
    cr_assert_str_eq(r.cause, "engine restarted");
    cr_assert_eq(r.ended_ts_ns, T0 + 7, "ended at its last record, not when we noticed");
    cr_assert_eq(hf_store_run_get(st, "e", 200, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_RUNNING);
    cr_assert_str_eq(r.cause, "");
    /* a run that completed is never touched */
    s_event_rec(st, "e", 4, 200, HF_EV_COMPLETED, T0 + 20);
    s_event_rec(st, "e", 5, 300, HF_EV_RUN_STARTED, T0 + 30);
    cr_assert_eq(hf_store_run_get(st, "e", 200, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_COMPLETED);
    hf_store_close(&st);
    st = s_open(); /* the cause is stored */
    cr_assert_eq(hf_store_run_get(st, "e", 100, &r), HF_OK);
    cr_assert_str_eq(r.cause, "engine restarted");
    hf_store_close(&st);
}

Test(store, an_engine_back_idle_closes_its_open_run_and_keeps_the_named_one)
{
    hf_store_t *st = s_open();
    s_event_rec(st, "e", 1, 100, HF_EV_RUN_STARTED, T0 + 1);
    size_t ended = 9;
    cr_assert_eq(hf_store_close_open_runs(st, "e", 100, "engine restarted", &ended), HF_OK);
    cr_assert_eq(ended, 0, "the engine says it is still in run 100 (aggregator restarted)");
    cr_assert_eq(hf_store_close_open_runs(st, "e", 0, "engine restarted", &ended), HF_OK);
    cr_assert_eq(ended, 1);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "e", 100, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_INTERRUPTED);
    cr_assert_eq(hf_store_close_open_runs(st, "e", 0, "engine restarted", &ended), HF_OK);
    cr_assert_eq(ended, 0, "idempotent");
    cr_assert_eq(hf_store_close_open_runs(st, "bad id!", 0, "x", &ended), HF_EINVAL);
    hf_store_close(&st);
}

/* An engine said HELLO idle with its control backlog ending at seq 2; the
 * backlog and the run it started since arrive in ONE commit (the store was
 * full, or the aggregator stopped, while they queued up). The
 * reconciliation happens exactly at seq 2: run 100 ends, run 200, started
 * after the HELLO, is left running (closing after the commit ended it too:
 * a chaos finding). */
Test(store, a_reconciliation_inside_a_commit_spares_runs_started_after_the_hello)
{
    hf_store_t *st = s_open();
    s_event_rec(st, "e", 1, 100, HF_EV_RUN_STARTED, T0 + 1);
    hf_record_t r[6];
    hf_record_event(&r[0], 100, T0 + 2, T0 + 2, HF_EV_STEP, 1, "m");
    hf_record_event(&r[1], 200, T0 + 3, T0 + 3, HF_EV_RUN_STARTED, 0, "m");
    hf_record_event(&r[2], 200, T0 + 4, T0 + 4, HF_EV_STEP, 1, "m");
    hf_record_event(&r[3], 200, T0 + 5, T0 + 5, HF_EV_STEP, 2, "m");
    hf_record_event(&r[4], 200, T0 + 6, T0 + 6, HF_EV_STEP, 3, "m");
    for (int i = 0; i < 5; i++)
        r[i].seq = 2 + (uint64_t)i;
    hf_store_batch_t b[2] = {
        {.engine = "e", .epoch = EPOCH_A, .lane = HF_LANE_CONTROL, .recs = &r[0], .n = 3,
         .close_after = 2, .close_keep = 0},
        /* the same session's next segment in the same group */
        {.engine = "e", .epoch = EPOCH_A, .lane = HF_LANE_CONTROL, .recs = &r[3], .n = 2,
         .close_after = 2, .close_keep = 0},
    };
    cr_assert_eq(hf_store_commit_many(st, b, 2, T0), HF_OK);
    cr_assert_eq(b[0].rc, HF_OK);
    cr_assert_eq(b[1].rc, HF_OK);
    cr_assert(b[0].closed, "the first segment crosses seq 2");
    cr_assert_not(b[1].closed, "the second starts past it: nothing to reconcile");
    hf_store_run_t run;
    cr_assert_eq(hf_store_run_get(st, "e", 100, &run), HF_OK);
    cr_assert_eq(run.state, HF_RUN_INTERRUPTED);
    cr_assert_str_eq(run.cause, "engine restarted");
    cr_assert_eq(run.ended_ts_ns, T0 + 2);
    cr_assert_eq(hf_store_run_get(st, "e", 200, &run), HF_OK);
    cr_assert_eq(run.state, HF_RUN_RUNNING, "run 200 began after the HELLO: %s",
                 hf_run_state_name(run.state));
    cr_assert_eq(run.control, 4);
    /* a batch that stays inside the backlog does not reconcile */
    hf_record_event(&r[5], 200, T0 + 7, T0 + 7, HF_EV_STEP, 4, "m");
    r[5].seq = 7;
    hf_store_batch_t c = {.engine = "e", .epoch = EPOCH_A, .lane = HF_LANE_CONTROL,
                          .recs = &r[5], .n = 1, .close_after = 9, .close_keep = 0};
    cr_assert_eq(hf_store_commit_many(st, &c, 1, T0), HF_OK);
    cr_assert_not(c.closed);
    cr_assert_eq(hf_store_run_get(st, "e", 200, &run), HF_OK);
    cr_assert_eq(run.state, HF_RUN_RUNNING);
    hf_store_close(&st);
}

typedef struct {
    hf_store_outage_t v[16];
    size_t n;
} s_outs_t;

static int
s_out_cb(const hf_store_outage_t *o, void *arg)
{
    s_outs_t *l = arg;
    if (l->n < 16)
        l->v[l->n++] = *o;
    return 0;
}

Test(store, outages_are_recorded_closed_on_return_and_listed_newest_first)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_outage_begin(st, "e", 100, "link lost (no heartbeat for 3000 ms)"),
                 HF_OK);
    cr_assert_eq(hf_store_outage_begin(st, "e", 150, "again"), HF_OK); /* already open: no-op */
    cr_assert_eq(hf_store_outage_end(st, "e", 200), HF_OK);
    cr_assert_eq(hf_store_outage_end(st, "e", 250), HF_OK); /* none open: no-op */
    cr_assert_eq(hf_store_outage_begin(st, "e", 300, "clean shutdown"), HF_OK);
    cr_assert_eq(hf_store_outage_begin(st, "f", 50, "link lost"), HF_OK);
    hf_store_close(&st);
    st = s_open(); /* durable */
    s_outs_t l = {.n = 0};
    cr_assert_eq(hf_store_outages_each(st, "e", s_out_cb, &l), HF_OK);
    cr_assert_eq(l.n, 2);
    cr_assert_eq(l.v[0].start_ns, 300);
    cr_assert_eq(l.v[0].end_ns, 0, "still going");
    cr_assert_str_eq(l.v[0].reason, "clean shutdown");
    cr_assert_eq(l.v[1].start_ns, 100);
    cr_assert_eq(l.v[1].end_ns, 200);
    cr_assert_str_eq(l.v[1].reason, "link lost (no heartbeat for 3000 ms)");
    l.n = 0;
    cr_assert_eq(hf_store_outages_each(st, NULL, s_out_cb, &l), HF_OK);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(hf_store_outages_each(st, "bad id!", s_out_cb, &l), HF_EINVAL);
    hf_store_close(&st);
}

typedef struct {
    uint64_t seq[64];
    bool off[64];
    size_t n;
} s_offl_t;

static int
s_offl_cb(const hf_store_export_rec_t *x, void *arg)
{
    s_offl_t *l = arg;
    if (l->n < 64) {
        l->seq[l->n] = x->rec.seq;
        l->off[l->n] = x->observed_offline;
        l->n++;
    }
    return 0;
}

Test(store, records_from_a_backlog_export_as_observed_offline)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_note_hello(st, "e", EPOCH_A, 0, 0, T0), HF_OK);
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 1, 3); /* live */
    /* the engine reconnects with 4..8 already in its spool */
    cr_assert_eq(hf_store_note_backlog(st, "e", EPOCH_A, HF_LANE_DATA, 3, 8), HF_OK);
    cr_assert_eq(hf_store_note_backlog(st, "e", EPOCH_A, HF_LANE_CONTROL, 0, 0), HF_OK, "no-op");
    s_commit_range(st, "e", EPOCH_A, HF_LANE_DATA, 1, 4, 10); /* 4..8 backlog, 9..10 live */
    cr_assert_eq(hf_store_note_backlog(st, "nope", EPOCH_A, HF_LANE_DATA, 0, 5), HF_ENOTFOUND,
                 "an epoch never seen");
    s_offl_t l = {.n = 0};
    hf_store_export_opts_t o = {0, -1, 100, 0};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    cr_assert_eq(hf_store_export(st, "e", &o, &pos, s_offl_cb, &l, NULL, &done), HF_OK);
    cr_assert(done);
    cr_assert_eq(l.n, 10);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(l.off[i], l.seq[i] >= 4 && l.seq[i] <= 8, "seq %llu offline=%d",
                     (unsigned long long)l.seq[i], (int)l.off[i]);
    hf_store_close(&st);
}

Test(store, commit_many_is_one_transaction_and_a_gap_holds_back_only_its_batch)
{
    hf_store_t *st = s_open();
    static hf_record_t a1[10], a2[10], b1[5], c1[5];
    s_fill(a1, HF_LANE_DATA, 0, 1, 10);
    s_fill(a2, HF_LANE_DATA, 0, 11, 20);
    s_fill(b1, HF_LANE_DATA, 0, 3, 7); /* engine b has nothing: seq 3 leaves a gap */
    s_fill(c1, HF_LANE_CONTROL, 0, 1, 5);
    hf_store_batch_t b[4] = {
        {.engine = "eng-a", .epoch = EPOCH_A, .lane = HF_LANE_DATA, .recs = a1, .n = 10},
        {.engine = "eng-b", .epoch = EPOCH_B, .lane = HF_LANE_DATA, .recs = b1, .n = 5},
        {.engine = "eng-a", .epoch = EPOCH_A, .lane = HF_LANE_DATA, .recs = a2, .n = 10},
        {.engine = "eng-c", .epoch = EPOCH_A, .lane = HF_LANE_CONTROL, .recs = c1, .n = 5},
    };
    cr_assert_eq(hf_store_commit_many(st, b, 4, T0), HF_OK);
    cr_assert_eq(b[0].rc, HF_OK);
    cr_assert_eq(b[0].acked, 10);
    cr_assert_eq(b[1].rc, HF_EPROTO);
    cr_assert_eq(b[1].acked, 0, "the unchanged cursor, for the resync");
    cr_assert_eq(b[2].rc, HF_OK, "a later batch of the same engine follows the first");
    cr_assert_eq(b[2].acked, 20);
    cr_assert_eq(b[3].rc, HF_OK);
    cr_assert_eq(b[3].acked, 5);
    cr_assert_eq(s_export_count(st, "eng-a"), 20);
    cr_assert_eq(s_export_count(st, "eng-c"), 5);
    hf_store_engine_t e;
    cr_assert_eq(hf_store_engine_get(st, "eng-b", &e), HF_ENOTFOUND, "nothing of b written");
    /* the same again: everything is a duplicate, nothing changes */
    cr_assert_eq(hf_store_commit_many(st, b, 4, T0), HF_OK);
    cr_assert_eq(b[0].dups, 10);
    cr_assert_eq(b[2].dups, 10);
    cr_assert_eq(s_export_count(st, "eng-a"), 20);
    /* bad arguments refuse the whole call */
    b[3].lane = 7;
    cr_assert_eq(hf_store_commit_many(st, b, 4, T0), HF_EINVAL);
    hf_store_close(&st);
}

/* A tail of one lane: the position left at the end must see that lane's
 * next record, even though the other lane's records come after it in key
 * order (and even when nothing newer exists yet). */
Test(store, a_lane_export_at_the_end_resumes_with_that_lanes_next_record)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_CONTROL, 0, 1, 3);
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 1, 50);
    for (int lane = 0; lane < HF_LANE_COUNT; lane++) {
        hf_store_export_opts_t o = {0, lane, 1000, 0};
        hf_store_pos_t pos;
        memset(&pos, 0, sizeof pos);
        static s_list_t l;
        l.n = 0;
        bool done = false;
        cr_assert_eq(hf_store_export(st, "eng-1", &o, &pos, s_collect, &l, NULL, &done), HF_OK);
        cr_assert(done);
        cr_assert_eq(l.n, lane == HF_LANE_CONTROL ? 3 : 50);
        /* nothing new: still nothing, and the position does not run away */
        l.n = 0;
        cr_assert_eq(hf_store_export(st, "eng-1", &o, &pos, s_collect, &l, NULL, &done), HF_OK);
        cr_assert_eq(l.n, 0);
        if (lane == HF_LANE_CONTROL)
            s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_CONTROL, 0, 4, 5);
        else
            s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 51, 52);
        l.n = 0;
        cr_assert_eq(hf_store_export(st, "eng-1", &o, &pos, s_collect, &l, NULL, &done), HF_OK);
        cr_assert_eq(l.n, 2, "lane %d: the new records after the end", lane);
        cr_assert_eq(l.v[0].seq, lane == HF_LANE_CONTROL ? 4 : 51);
        cr_assert_eq(l.v[0].lane, lane);
    }
    hf_store_close(&st);
}

Test(store, retention_by_age_keeps_a_contiguous_newest_suffix_per_lane)
{
    hf_store_t *st = s_open();
    /* ts = T0 + seq (ns): records 1..100 in both lanes of two engines */
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_CONTROL, 0, 1, 100);
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 1, 100);
    s_commit_range(st, "eng-2", EPOCH_B, HF_LANE_DATA, 0, 1, 100);
    hf_store_retention_t r = {.max_age_ns = 40, .max_bytes = 0, .max_delete = 1000};
    hf_store_retain_result_t out;
    /* now = T0 + 100: everything with ts < T0 + 60 goes (seqs 1..59) */
    cr_assert_eq(hf_store_retain(st, &r, T0 + 100, &out), HF_OK);
    cr_assert_eq(out.deleted, 3 * 59, "deleted %zu", out.deleted);
    cr_assert_eq(out.by_age, out.deleted);
    cr_assert_not(out.more);
    static s_list_t l;
    s_export_all(st, "eng-1", 0, HF_LANE_DATA, 1000, &l);
    cr_assert_eq(l.n, 41);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_eq(l.v[i].seq, 60 + i, "contiguous suffix");
    s_export_all(st, "eng-1", 0, HF_LANE_CONTROL, 1000, &l);
    cr_assert_eq(l.n, 41);
    s_export_all(st, "eng-2", 0, -1, 1000, &l);
    cr_assert_eq(l.n, 41);
    /* cursors are untouched: a resend of old records is still a duplicate */
    uint64_t acked[2];
    cr_assert_eq(hf_store_cursor(st, "eng-1", EPOCH_A, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_DATA], 100);
    /* again: nothing left to delete */
    cr_assert_eq(hf_store_retain(st, &r, T0 + 100, &out), HF_OK);
    cr_assert_eq(out.deleted, 0);
    hf_store_close(&st);
}

typedef struct {
    size_t n;
    uint64_t first;
} s_count_t;

static int
s_count_cb(const hf_store_export_rec_t *x, void *arg)
{
    s_count_t *c = arg;
    if (c->n++ == 0)
        c->first = x->rec.seq;
    return 0;
}

/* Records of an engine (any number) and the seq of the first. */
static size_t
s_count_from(hf_store_t *st, const char *eng, uint64_t *first)
{
    hf_store_export_opts_t o = {0, -1, 1000000, 0};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    s_count_t c = {0, 0};
    bool done = false;
    for (int i = 0; i < 100 && !done; i++)
        cr_assert_eq(hf_store_export(st, eng, &o, &pos, s_count_cb, &c, NULL, &done), HF_OK);
    *first = c.first;
    return c.n;
}

Test(store, retention_work_per_call_is_bounded_and_size_rule_shares_the_deletes)
{
    hf_store_t *st = s_open();
    for (uint64_t first = 1; first <= 20000; first += 5000) {
        s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, first, first + 4999);
        s_commit_range(st, "eng-2", EPOCH_B, HF_LANE_DATA, 0, first, first + 4999);
    }
    hf_store_retention_t r = {.max_age_ns = 0, .max_bytes = 1, .max_delete = 5000};
    hf_store_retain_result_t out;
    cr_assert_eq(hf_store_retain(st, &r, T0, &out), HF_OK);
    cr_assert_gt(out.live_bytes, 1);
    cr_assert_eq(out.deleted, 5000);
    cr_assert(out.more, "the per-call bound stopped it");
    cr_assert_eq(out.by_size, 5000);
    uint64_t first1 = 0, first2 = 0;
    size_t left1 = s_count_from(st, "eng-1", &first1);
    size_t left2 = s_count_from(st, "eng-2", &first2);
    cr_assert_eq(left1, 20000 - 2500, "a fair share from each engine (%zu)", left1);
    cr_assert_eq(left2, 20000 - 2500);
    cr_assert_eq(first1, 2501, "the oldest went first");
    cr_assert_eq(first2, 2501);
    hf_store_close(&st);
}

/* Runs derived from records must not depend on how batches are grouped
 * into transactions: three engines, each with runs that start, end or are
 * cut off by the next one, committed interleaved through commit_many in
 * random groupings; every run row must match a one-engine-at-a-time store.
 * (Regression: closing a run rewrote its row with a key pointing into the
 * page being changed; once engines interleaved, rows landed out of order -
 * runs vanished or kept a wrong state. Found by the chaos suite.) */
#define S_REF_PIECE 7 /* records per commit in the one-engine reference */
typedef struct {
    char engine[8];
    uint64_t epoch;
    hf_record_t recs[400];
    size_t n;
    size_t at; /* next to commit */
    uint64_t seq;
} s_feed_t;

static void
s_feed_init(s_feed_t *f, const char *engine, uint64_t epoch, uint64_t run0, uint64_t *rng)
{
    memset(f, 0, sizeof *f);
    snprintf(f->engine, sizeof f->engine, "%s", engine);
    f->epoch = epoch;
    uint64_t run = run0;
    uint64_t t = 0;
    while (f->n < 380) {
        /* a run: started, channels, some steps, then an end or nothing */
        hf_record_t *r = &f->recs[f->n++];
        t++;
        hf_record_event(r, run, T0 + t, t, HF_EV_RUN_STARTED, 0, "m");
        r = &f->recs[f->n++];
        t++;
        hf_record_event(r, run, T0 + t, t, HF_EV_CHANNELS, 0, "a,b");
        *rng ^= *rng << 13, *rng ^= *rng >> 7, *rng ^= *rng << 17;
        int steps = (int)(*rng % 20);
        for (int i = 0; i < steps && f->n < 380; i++) {
            r = &f->recs[f->n++];
            t++;
            hf_record_event(r, run, T0 + t, t, HF_EV_STEP, (uint32_t)i, "s");
        }
        int end = (int)((*rng >> 8) % 3);
        t++;
        if (end == 1)
            hf_record_event(&f->recs[f->n++], run, T0 + t, t, HF_EV_COMPLETED, 0, "m");
        else if (end == 2)
            hf_record_event(&f->recs[f->n++], run, T0 + t, t, HF_EV_ABORTED, 0, "a");
        run += 1000;
    }
    for (size_t i = 0; i < f->n; i++)
        f->recs[i].seq = i + 1;
}

typedef struct {
    hf_store_run_t rows[64];
    int n;
} s_rows_t2;

static int
s_row_cb(const hf_store_run_t *r, void *arg)
{
    s_rows_t2 *x = arg;
    cr_assert_lt(x->n, 64);
    x->rows[x->n++] = *r;
    return 0;
}

/* about 3,000 fsyncs: its own hang guard, well above the suite's 20 s */
Test(store, runs_do_not_depend_on_how_batches_are_grouped, .timeout = 120)
{
    uint64_t rng = 0x1234567;
    for (int round = 0; round < 20; round++) {
        static s_feed_t feeds[3];
        const char *names[3] = {"e1", "e2", "e3"};
        for (int e = 0; e < 3; e++)
            s_feed_init(&feeds[e], names[e], EPOCH_A + (uint64_t)e, 100 + (uint64_t)e, &rng);
        /* reference: each engine alone, one commit per record run of 7 */
        hf_store_t *ref = s_open();
        for (int e = 0; e < 3; e++)
            for (size_t i = 0; i < feeds[e].n; i += S_REF_PIECE) {
                size_t k = feeds[e].n - i < S_REF_PIECE ? feeds[e].n - i : S_REF_PIECE;
                uint64_t a = 0;
                cr_assert_eq(hf_store_commit(ref, feeds[e].engine, feeds[e].epoch,
                                             HF_LANE_CONTROL, &feeds[e].recs[i], k, T0, &a, NULL),
                             HF_OK);
            }
        s_rows_t2 want[3];
        for (int e = 0; e < 3; e++) {
            want[e].n = 0;
            cr_assert_eq(hf_store_runs_each(ref, names[e], false, s_row_cb, &want[e]), HF_OK);
        }
        hf_store_close(&ref);
        s_teardown();
        s_setup();
        /* the same records, interleaved, random pieces, random groups */
        hf_store_t *st = s_open();
        bool left = true;
        while (left) {
            hf_store_batch_t b[12];
            size_t nb = 0;
            left = false;
            while (nb < 12) {
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                int e = (int)(rng % 3);
                s_feed_t *f = &feeds[e];
                if (f->at == f->n)
                    break;
                size_t k = 1 + (rng >> 16) % 9;
                if (k > f->n - f->at)
                    k = f->n - f->at;
                b[nb++] = (hf_store_batch_t){.engine = f->engine, .epoch = f->epoch,
                                             .lane = HF_LANE_CONTROL, .recs = &f->recs[f->at],
                                             .n = k};
                f->at += k;
            }
            if (nb)
                cr_assert_eq(hf_store_commit_many(st, b, nb, T0), HF_OK);
            for (size_t i = 0; i < nb; i++)
                cr_assert_eq(b[i].rc, HF_OK);
            for (int e = 0; e < 3; e++)
                left |= feeds[e].at < feeds[e].n;
        }
        for (int e = 0; e < 3; e++) {
            s_rows_t2 got;
            got.n = 0;
            cr_assert_eq(hf_store_runs_each(st, names[e], false, s_row_cb, &got), HF_OK);
            cr_assert_eq(got.n, want[e].n, "round %d engine %s runs %d vs %d", round, names[e],
                         got.n, want[e].n);
            for (int i = 0; i < got.n; i++) {
                cr_assert_eq(got.rows[i].run, want[e].rows[i].run);
                cr_assert_eq(got.rows[i].state, want[e].rows[i].state,
                             "round %d %s run %llu state %u vs %u", round, names[e],
                             (unsigned long long)got.rows[i].run, got.rows[i].state,
                             want[e].rows[i].state);
                cr_assert_eq(got.rows[i].control, want[e].rows[i].control);
                cr_assert_str_eq(got.rows[i].cause, want[e].rows[i].cause);
            }
        }
        hf_store_close(&st);
        s_teardown();
        s_setup();
    }
}

Test(store, a_run_note_sets_state_and_cause_and_creates_a_missing_row)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_CONTROL, 5, 1, 3); /* run 5: steps only */
    cr_assert_eq(hf_store_run_note(st, "eng-1", 5, HF_RUN_PAUSED, "HELLO said paused"), HF_OK);
    hf_store_run_t r;
    cr_assert_eq(hf_store_run_get(st, "eng-1", 5, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_PAUSED);
    cr_assert_str_eq(r.cause, "HELLO said paused");
    cr_assert_eq(r.control, 3, "the rest of the row is kept");
    cr_assert_eq(hf_store_run_note(st, "eng-1", 9, HF_RUN_RUNNING, "no record"), HF_OK);
    cr_assert_eq(hf_store_run_get(st, "eng-1", 9, &r), HF_OK);
    cr_assert_eq(r.state, HF_RUN_RUNNING);
    cr_assert_eq(hf_store_run_note(st, "eng-1", 0, HF_RUN_RUNNING, ""), HF_EINVAL);
    hf_store_close(&st);
}

/* Regression (found by ASan in the hostile suite): a batch that starts with
 * records already stored read the record before the batch's first. The
 * batch here is an exact-size heap block, so ASan sees any such read. */
Test(store, a_batch_starting_with_duplicates_reads_only_its_own_records)
{
    hf_store_t *st = s_open();
    s_commit_range(st, "eng-1", EPOCH_A, HF_LANE_DATA, 0, 1, 3);
    hf_record_t *recs = malloc(4 * sizeof *recs);
    cr_assert_not_null(recs);
    s_fill(recs, HF_LANE_DATA, 0, 1, 4);
    uint64_t acked = 0;
    size_t dups = 0;
    cr_assert_eq(hf_store_commit(st, "eng-1", EPOCH_A, HF_LANE_DATA, recs, 4, T0, &acked, &dups),
                 HF_OK);
    cr_assert_eq(acked, 4);
    cr_assert_eq(dups, 3);
    hf_store_batch_t b = {.engine = "eng-1", .epoch = EPOCH_A, .lane = HF_LANE_DATA, .recs = recs,
                          .n = 4};
    cr_assert_eq(hf_store_commit_many(st, &b, 1, T0), HF_OK);
    cr_assert_eq(b.dups, 4);
    free(recs);
    hf_store_close(&st);
}

static int
s_open_outages(const hf_store_outage_t *o, void *arg)
{
    int *n = arg;
    if (o->end_ns == 0)
        (*n)++;
    cr_assert_geq(o->end_ns == 0 ? o->start_ns : o->end_ns, o->start_ns, "ends before it began");
    return 0;
}

/* Regression (found by the clock-jump chaos test): outages are keyed by the
 * aggregator's wall clock; after it stepped back, later outages sorted
 * before the newest and were never closed. */
Test(store, outages_stay_right_when_the_clock_steps_back)
{
    hf_store_t *st = s_open();
    cr_assert_eq(hf_store_outage_begin(st, "eng-1", T0 + 3600, "link lost"), HF_OK);
    cr_assert_eq(hf_store_outage_end(st, "eng-1", T0 + 10), HF_OK); /* clock went back */
    cr_assert_eq(hf_store_outage_begin(st, "eng-1", T0 + 20, "link lost"), HF_OK);
    cr_assert_eq(hf_store_outage_end(st, "eng-1", T0 + 30), HF_OK);
    cr_assert_eq(hf_store_outage_begin(st, "eng-1", T0 + 40, "clean shutdown"), HF_OK);
    int open = 0;
    cr_assert_eq(hf_store_outages_each(st, "eng-1", s_open_outages, &open), HF_OK);
    cr_assert_eq(open, 1, "exactly the last outage is open (got %d)", open);
    cr_assert_eq(hf_store_outage_end(st, "eng-1", T0 + 50), HF_OK);
    open = 0;
    cr_assert_eq(hf_store_outages_each(st, "eng-1", s_open_outages, &open), HF_OK);
    cr_assert_eq(open, 0);
    hf_store_close(&st);
}

/* Turn the store in s_dir back into format 1: every engine's records moved
 * into one shared "records" table, the engines' tables dropped, version 1. */
static void
s_downgrade_to_format_1(const char **engines, size_t n)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi shared, meta, dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 64), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 64u << 20), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "records", MDB_CREATE, &shared), 0);
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "r:%s", engines[i]);
        cr_assert_eq(mdb_dbi_open(txn, name, 0, &dbi), 0, "%s", name);
        MDB_cursor *cur;
        MDB_val k, v;
        cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
            cr_assert_eq(mdb_put(txn, shared, &k, &v, 0), 0);
        mdb_cursor_close(cur);
        cr_assert_eq(mdb_drop(txn, dbi, 1), 0);
    }
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t ver[4] = {0, 0, 0, 1};
    MDB_val k = {7, "version"}, v = {4, ver};
    cr_assert_eq(mdb_put(txn, meta, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* Format 1 (one records table for all engines) is upgraded in place when
 * the store is opened read-write: every record where it was, and new ones
 * go on from the cursors; read-only (a backup being checked) it is read as
 * it is. */
Test(store, a_format_1_store_is_upgraded_at_open_with_every_record)
{
    const char *engines[] = {"e1", "e2", "e3"};
    hf_store_t *st = s_open();
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(hf_store_note_hello(st, engines[i], EPOCH_A, 4, HF_RUN_RUNNING, T0), HF_OK);
    for (uint64_t f = 1; f <= 300; f += 100) /* interleaved, as engines arrive */
        for (size_t i = 0; i < 3; i++)
            s_commit_range(st, engines[i], EPOCH_A, HF_LANE_DATA, 4, f, f + 99);
    hf_store_close(&st);
    s_downgrade_to_format_1(engines, 3);

    hf_store_opts_t ro = hf_store_opts_default();
    ro.readonly = true;
    hf_err_t err = HF_EIO;
    st = hf_store_open(s_dir, &ro, &err); /* read-only: read as format 1, not upgraded */
    cr_assert_eq(err, HF_OK, "read-only open of format 1: %s", hf_errname(err));
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(s_export_count(st, engines[i]), 300, "engine %s", engines[i]);
    hf_store_close(&st);

    st = s_open(); /* upgrades */
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(s_export_count(st, engines[i]), 300, "engine %s", engines[i]);
        s_commit_range(st, engines[i], EPOCH_A, HF_LANE_DATA, 4, 301, 310);
        cr_assert_eq(s_export_count(st, engines[i]), 310);
    }
    hf_store_close(&st);
    st = s_open(); /* format 2 now: opens as is */
    cr_assert_eq(s_export_count(st, "e2"), 310);
    hf_store_close(&st);
}
