/* test_control.c - control requests against a real store (hf_control_handle).
 *
 * Requests are built with msgpack-c's packer and replies read back with
 * msgpack_unpack_next, i.e. the way a client (the holdfast CLI) does it, so
 * these tests pin the encoding documented in docs/cli.md.
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_control.h"
#include "hf_proto.h"
#include "hf_store.h"

#define EPOCH_A 0x00000000deadbeefull
#define T0 1700000000000000000ull

static char s_dir[64];
static hf_store_t *s_st;
static uint8_t *s_out;
#define S_OUT_CAP (8u << 20)

static void
s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/hf-control-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    hf_err_t err;
    s_st = hf_store_open(s_dir, NULL, &err);
    cr_assert_not_null(s_st);
    s_out = malloc(S_OUT_CAP);
}

static void
s_teardown(void)
{
    hf_store_close(&s_st);
    free(s_out);
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", s_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", s_dir);
    unlink(p);
    rmdir(s_dir);
}

TestSuite(control, .init = s_setup, .fini = s_teardown, .timeout = 20);

/* ---- request building --------------------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} s_req_t;

static void
s_req_begin(s_req_t *r, uint32_t nfields)
{
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&r->pk, nfields);
}

static void
s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void
s_kstr(s_req_t *r, const char *k, const char *v)
{
    s_str(&r->pk, k);
    s_str(&r->pk, v);
}

static void
s_kuint(s_req_t *r, const char *k, uint64_t v)
{
    s_str(&r->pk, k);
    msgpack_pack_uint64(&r->pk, v);
}

/* ---- calling and reading replies ---------------------------------------- */

static msgpack_unpacked s_reply;

static const msgpack_object *
s_call(const uint8_t *req, size_t len, const hf_live_t *live, size_t nlive, size_t cap)
{
    size_t outlen = 0;
    cr_assert_eq(hf_control_handle(s_st, live, nlive, req, len, s_out, cap, &outlen), HF_OK);
    cr_assert_gt(outlen, 0);
    cr_assert_leq(outlen, cap);
    msgpack_unpacked_destroy(&s_reply);
    msgpack_unpacked_init(&s_reply);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&s_reply, (const char *)s_out, outlen, &off),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, outlen, "the reply is exactly one msgpack value");
    cr_assert_eq(s_reply.data.type, MSGPACK_OBJECT_MAP);
    return &s_reply.data;
}

static const msgpack_object *
s_req_call(s_req_t *r, const hf_live_t *live, size_t nlive)
{
    const msgpack_object *o =
        s_call((const uint8_t *)r->sb.data, r->sb.size, live, nlive, S_OUT_CAP);
    msgpack_sbuffer_destroy(&r->sb);
    return o;
}

static const msgpack_object *
s_get(const msgpack_object *map, const char *key)
{
    cr_assert_eq(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            !memcmp(k->via.str.ptr, key, k->via.str.size))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int
s_str_eq(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static uint64_t
s_uint(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = s_get(map, key);
    cr_assert_not_null(o, "missing %s", key);
    cr_assert_eq(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER, "%s not uint", key);
    return o->via.u64;
}

static int
s_ok(const msgpack_object *rep)
{
    const msgpack_object *ok = s_get(rep, "ok");
    cr_assert_not_null(ok);
    cr_assert_eq(ok->type, MSGPACK_OBJECT_BOOLEAN);
    return ok->via.boolean;
}

static void
s_assert_error(const msgpack_object *rep, const char *errname)
{
    cr_assert_not(s_ok(rep));
    cr_assert_eq(s_uint(rep, "v"), HF_CONTROL_VERSION);
    const msgpack_object *err = s_get(rep, "err");
    const msgpack_object *msg = s_get(rep, "msg");
    cr_assert(msg && msg->type == MSGPACK_OBJECT_STR && msg->via.str.size > 0);
    if (errname)
        cr_assert(s_str_eq(err, errname), "err is %.*s, wanted %s",
                  err ? (int)err->via.str.size : 0, err ? err->via.str.ptr : "", errname);
    else
        cr_assert(err && err->type == MSGPACK_OBJECT_STR);
}

/* ---- fixtures ---------------------------------------------------------- */

static void
s_commit(const char *eng, uint8_t lane, hf_record_t *recs, size_t n, uint64_t first)
{
    for (size_t i = 0; i < n; i++)
        recs[i].seq = first + i;
    cr_assert_eq(hf_store_commit(s_st, eng, EPOCH_A, lane, recs, n, T0, NULL, NULL), HF_OK);
}

/* engine "alpha": run 3 started, channels, 25 samples, an alarm, a hw error,
 * a gap, completed. engine "gamma": one sample of run 1. */
static void
s_populate(void)
{
    cr_assert_eq(hf_store_note_hello(s_st, "alpha", EPOCH_A, 3, HF_RUN_RUNNING, T0), HF_OK);
    hf_record_t c[6];
    hf_record_event(&c[0], 3, T0 + 1, 1, HF_EV_RUN_STARTED, 0, "ramp \"fast\"");
    hf_record_event(&c[1], 3, T0 + 2, 2, HF_EV_CHANNELS, 0, "temp,pressure");
    memset(&c[2], 0, sizeof c[2]);
    c[2].kind = HF_KIND_ALARM;
    c[2].lane = HF_LANE_CONTROL;
    c[2].run = 3;
    c[2].ts_ns = T0 + 3;
    c[2].u.alarm.raised = 1;
    c[2].u.alarm.severity = HF_ALARM_CRITICAL;
    c[2].u.alarm.code = 17;
    snprintf(c[2].u.alarm.text, sizeof c[2].u.alarm.text, "over temp");
    memset(&c[3], 0, sizeof c[3]);
    c[3].kind = HF_KIND_HW_ERROR;
    c[3].lane = HF_LANE_CONTROL;
    c[3].run = 3;
    c[3].ts_ns = T0 + 4;
    c[3].u.hw_error.cls = 3;
    c[3].u.hw_error.device = 2;
    c[3].u.hw_error.channel = 1;
    c[3].u.hw_error.code = -5;
    snprintf(c[3].u.hw_error.text, sizeof c[3].u.hw_error.text, "link lost");
    memset(&c[4], 0, sizeof c[4]);
    c[4].kind = HF_KIND_GAP;
    c[4].lane = HF_LANE_CONTROL;
    c[4].run = 3;
    c[4].ts_ns = T0 + 5;
    c[4].u.gap.lane = HF_LANE_DATA;
    c[4].u.gap.first = 100;
    c[4].u.gap.last = 109;
    c[4].u.gap.count = 5;
    c[4].u.gap.reason = 1;
    hf_record_event(&c[5], 3, T0 + 9, 9, HF_EV_COMPLETED, 0, "");
    s_commit("alpha", HF_LANE_CONTROL, c, 6, 1);
    hf_record_t d[25];
    for (int i = 0; i < 25; i++)
        hf_record_sample(&d[i], 3, T0 + 10 + (uint64_t)i, (uint64_t)i, (uint32_t)(i % 3),
                         i == 24 ? (0.0 / 0.0) : i * 1.5);
    s_commit("alpha", HF_LANE_DATA, d, 25, 1);
    hf_record_t g;
    hf_record_sample(&g, 1, T0, 0, 0, 2.0);
    s_commit("gamma", HF_LANE_DATA, &g, 1, 1);
}

static hf_live_t
s_live(const char *eng, uint8_t avail, const char *reason)
{
    hf_live_t l;
    memset(&l, 0, sizeof l);
    snprintf(l.engine, sizeof l.engine, "%s", eng);
    l.availability = avail;
    l.since_ns = T0 + 77;
    snprintf(l.reason, sizeof l.reason, "%s", reason);
    l.epoch = EPOCH_A;
    l.connected_ms = 1234;
    return l;
}

/* ---- tests -------------------------------------------------------------- */

Test(control, status_merges_store_and_live_engines)
{
    s_populate();
    /* live: alpha available, beta (not stored) unavailable; gamma only stored */
    hf_live_t live[2] = {s_live("beta", HF_AVAIL_UNAVAILABLE, "watchdog"),
                         s_live("alpha", HF_AVAIL_AVAILABLE, "hello")};
    s_req_t r;
    s_req_begin(&r, 2);
    s_kuint(&r, "v", 1);
    s_kstr(&r, "cmd", "status");
    const msgpack_object *rep = s_req_call(&r, live, 2);
    cr_assert(s_ok(rep));
    cr_assert(s_str_eq(s_get(rep, "cmd"), "status"));
    const msgpack_object *engs = s_get(rep, "engines");
    cr_assert_not_null(engs);
    cr_assert_eq(engs->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(engs->via.array.size, 3);
    const msgpack_object *a = &engs->via.array.ptr[0];
    const msgpack_object *b = &engs->via.array.ptr[1];
    const msgpack_object *g = &engs->via.array.ptr[2];
    cr_assert(s_str_eq(s_get(a, "engine"), "alpha"));
    cr_assert(s_str_eq(s_get(a, "availability"), "available"));
    cr_assert(s_str_eq(s_get(a, "reason"), "hello"));
    cr_assert_eq(s_uint(a, "since_ns"), T0 + 77);
    cr_assert(s_str_eq(s_get(a, "epoch"), "00000000deadbeef"));
    cr_assert_eq(s_uint(a, "run"), 3);
    cr_assert(s_str_eq(s_get(a, "run_state"), "completed"), "record-derived state wins");
    cr_assert(s_str_eq(s_get(a, "hello_run_state"), "running"));
    const msgpack_object *recs = s_get(a, "records");
    cr_assert_eq(recs->via.array.size, 2);
    cr_assert_eq(recs->via.array.ptr[0].via.u64, 6);
    cr_assert_eq(recs->via.array.ptr[1].via.u64, 25);
    cr_assert(s_str_eq(s_get(b, "engine"), "beta"));
    cr_assert(s_str_eq(s_get(b, "availability"), "unavailable"));
    cr_assert(s_str_eq(s_get(b, "reason"), "watchdog"));
    cr_assert_eq(s_get(b, "stored")->via.boolean, false);
    cr_assert(s_str_eq(s_get(g, "engine"), "gamma"));
    cr_assert(s_str_eq(s_get(g, "availability"), "unknown"));
    cr_assert_eq(s_get(g, "live")->via.boolean, false);
    cr_assert_eq(s_uint(g, "run"), 1);
    cr_assert(s_str_eq(s_get(g, "run_state"), "running"));

    const msgpack_object *runs = s_get(rep, "runs");
    cr_assert_eq(runs->type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(runs->via.array.size, 2);
    const msgpack_object *r0 = &runs->via.array.ptr[0];
    cr_assert(s_str_eq(s_get(r0, "engine"), "alpha"));
    cr_assert(s_str_eq(s_get(r0, "state"), "completed"));
    cr_assert(s_str_eq(s_get(r0, "method"), "ramp \"fast\""));
    cr_assert_eq(s_uint(r0, "started_ns"), T0 + 1);
    cr_assert_eq(s_uint(r0, "ended_ns"), T0 + 9);
    cr_assert_eq(s_uint(r0, "samples"), 25);
    cr_assert_eq(s_get(rep, "truncated")->via.boolean, false);
}

Test(control, engines_request_works_with_an_empty_store_and_no_live_table)
{
    s_req_t r;
    s_req_begin(&r, 1);
    s_kstr(&r, "cmd", "engines"); /* "v" may be left out */
    const msgpack_object *rep = s_req_call(&r, NULL, 0);
    cr_assert(s_ok(rep));
    cr_assert_eq(s_get(rep, "engines")->via.array.size, 0);
}

Test(control, runs_request_filters_by_engine)
{
    s_populate();
    s_req_t r;
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "runs");
    s_kstr(&r, "engine", "gamma");
    const msgpack_object *rep = s_req_call(&r, NULL, 0);
    cr_assert(s_ok(rep));
    const msgpack_object *runs = s_get(rep, "runs");
    cr_assert_eq(runs->via.array.size, 1);
    cr_assert(s_str_eq(s_get(&runs->via.array.ptr[0], "engine"), "gamma"));

    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "runs");
    s_kstr(&r, "engine", "nobody");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_ENOTFOUND");

    s_req_begin(&r, 1);
    s_kstr(&r, "cmd", "runs");
    rep = s_req_call(&r, NULL, 0);
    cr_assert_eq(s_get(rep, "runs")->via.array.size, 2);
}

/* Page through an export like the CLI does; returns the records seen. */
static size_t
s_export_pages(const char *eng, const char *lane, uint64_t run, uint64_t max, size_t cap,
               size_t *pages)
{
    uint8_t pos[HF_STORE_POS_BYTES];
    int have_pos = 0;
    size_t total = 0;
    *pages = 0;
    for (int i = 0; i < 1000; i++) {
        s_req_t r;
        s_req_begin(&r, 5 + (lane != NULL) + (have_pos != 0));
        s_kstr(&r, "cmd", "export");
        s_kuint(&r, "v", 1);
        s_kstr(&r, "engine", eng);
        s_kuint(&r, "run", run);
        s_kuint(&r, "max", max);
        if (lane)
            s_kstr(&r, "lane", lane);
        if (have_pos) {
            s_str(&r.pk, "pos");
            msgpack_pack_bin(&r.pk, sizeof pos);
            msgpack_pack_bin_body(&r.pk, pos, sizeof pos);
        }
        const msgpack_object *rep =
            s_call((const uint8_t *)r.sb.data, r.sb.size, NULL, 0, cap);
        msgpack_sbuffer_destroy(&r.sb);
        cr_assert(s_ok(rep));
        (*pages)++;
        const msgpack_object *recs = s_get(rep, "records");
        cr_assert_eq(recs->type, MSGPACK_OBJECT_ARRAY);
        cr_assert_leq(recs->via.array.size, max);
        for (uint32_t j = 0; j < recs->via.array.size; j++) {
            const msgpack_object *x = &recs->via.array.ptr[j];
            /* seq runs 1.. per lane with no repeats: check order */
            cr_assert(s_str_eq(s_get(x, "epoch"), "00000000deadbeef"));
            cr_assert(s_get(x, "lane") && s_get(x, "kind") && s_get(x, "seq"));
            total++;
        }
        const msgpack_object *p = s_get(rep, "pos");
        cr_assert_eq(p->type, MSGPACK_OBJECT_BIN);
        cr_assert_eq(p->via.bin.size, sizeof pos);
        memcpy(pos, p->via.bin.ptr, sizeof pos);
        have_pos = 1;
        const msgpack_object *done = s_get(rep, "done");
        cr_assert_eq(done->type, MSGPACK_OBJECT_BOOLEAN);
        if (done->via.boolean)
            return total;
    }
    cr_assert_fail("export never finished");
    return 0;
}

Test(control, export_pages_round_trip_every_record)
{
    s_populate();
    size_t pages = 0;
    cr_assert_eq(s_export_pages("alpha", NULL, 0, 4, S_OUT_CAP, &pages), 31);
    cr_assert_eq(pages, 8);
    cr_assert_eq(s_export_pages("alpha", "control", 0, 1000, S_OUT_CAP, &pages), 6);
    cr_assert_eq(s_export_pages("alpha", "data", 3, 7, S_OUT_CAP, &pages), 25);
    cr_assert_eq(s_export_pages("alpha", NULL, 99, 7, S_OUT_CAP, &pages), 0);
    /* a tiny reply buffer forces short pages but loses nothing */
    cr_assert_eq(s_export_pages("alpha", NULL, 0, 1000, HF_CONTROL_REPLY_MIN, &pages),
                 31);
    cr_assert_gt(pages, 1);
}

Test(control, export_records_carry_their_kind_fields)
{
    s_populate();
    s_req_t r;
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "alpha");
    const msgpack_object *rep = s_req_call(&r, NULL, 0);
    cr_assert(s_ok(rep));
    cr_assert(s_get(rep, "done")->via.boolean);
    const msgpack_object *recs = s_get(rep, "records");
    cr_assert_eq(recs->via.array.size, 31);
    const msgpack_object *ev = &recs->via.array.ptr[0];
    cr_assert(s_str_eq(s_get(ev, "kind"), "event"));
    cr_assert(s_str_eq(s_get(ev, "lane"), "control"));
    cr_assert(s_str_eq(s_get(ev, "event"), "run_started"));
    cr_assert(s_str_eq(s_get(ev, "text"), "ramp \"fast\""));
    cr_assert_eq(s_uint(ev, "seq"), 1);
    cr_assert_eq(s_uint(ev, "ts_ns"), T0 + 1);
    cr_assert_eq(s_uint(ev, "run"), 3);
    const msgpack_object *al = &recs->via.array.ptr[2];
    cr_assert(s_str_eq(s_get(al, "kind"), "alarm"));
    cr_assert_eq(s_get(al, "raised")->via.boolean, true);
    cr_assert(s_str_eq(s_get(al, "severity"), "critical"));
    cr_assert_eq(s_uint(al, "code"), 17);
    const msgpack_object *hw = &recs->via.array.ptr[3];
    cr_assert(s_str_eq(s_get(hw, "kind"), "hw_error"));
    cr_assert(s_str_eq(s_get(hw, "class"), "disconnected"));
    cr_assert_eq(s_get(hw, "code")->via.i64, -5);
    cr_assert_eq(s_uint(hw, "device"), 2);
    const msgpack_object *gap = &recs->via.array.ptr[4];
    cr_assert(s_str_eq(s_get(gap, "kind"), "gap"));
    cr_assert(s_str_eq(s_get(gap, "gap_lane"), "data"));
    cr_assert_eq(s_uint(gap, "first"), 100);
    cr_assert_eq(s_uint(gap, "last"), 109);
    cr_assert_eq(s_uint(gap, "count"), 5);
    cr_assert(s_str_eq(s_get(gap, "reason"), "decimate"));
    const msgpack_object *s1 = &recs->via.array.ptr[7]; /* data seq 2: channel 1 */
    cr_assert(s_str_eq(s_get(s1, "kind"), "sample"));
    cr_assert(s_str_eq(s_get(s1, "lane"), "data"));
    cr_assert_eq(s_uint(s1, "channel"), 1);
    cr_assert(s_str_eq(s_get(s1, "channel_name"), "pressure"));
    cr_assert_float_eq(s_get(s1, "value")->via.f64, 1.5, 1e-12);
    const msgpack_object *s2 = &recs->via.array.ptr[8]; /* channel 2: no name known */
    cr_assert_eq(s_uint(s2, "channel"), 2);
    cr_assert_null(s_get(s2, "channel_name"));
    const msgpack_object *nan = &recs->via.array.ptr[30];
    cr_assert(s_get(nan, "value")->via.f64 != s_get(nan, "value")->via.f64, "NaN survives");
}

Test(control, export_of_unknown_engine_is_an_error_and_live_only_is_empty)
{
    s_req_t r;
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "nobody");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_ENOTFOUND");

    hf_live_t live = s_live("fresh", HF_AVAIL_AVAILABLE, "hello");
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "fresh");
    const msgpack_object *rep = s_req_call(&r, &live, 1);
    cr_assert(s_ok(rep));
    cr_assert_eq(s_get(rep, "records")->via.array.size, 0);
    cr_assert(s_get(rep, "done")->via.boolean);

    s_req_begin(&r, 1);
    s_kstr(&r, "cmd", "export"); /* no engine */
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EINVAL");
}

Test(control, malformed_requests_get_error_replies)
{
    s_populate();
    /* garbage and truncated bytes */
    const uint8_t garbage[] = {0xc1, 0x00, 0xff, 0x13};
    s_assert_error(s_call(garbage, sizeof garbage, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    const uint8_t trunc[] = {0x82, 0xa3, 'c', 'm'};
    s_assert_error(s_call(trunc, sizeof trunc, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    s_assert_error(s_call(huge_map, sizeof huge_map, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    const uint8_t huge_str[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
    s_assert_error(s_call(huge_str, sizeof huge_str, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    s_assert_error(s_call(garbage, 0, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    s_assert_error(s_call(NULL, 0, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    /* not a map */
    const uint8_t arr[] = {0x92, 0x01, 0x02};
    s_assert_error(s_call(arr, sizeof arr, NULL, 0, S_OUT_CAP), "HF_EPROTO");

    s_req_t r;
    /* wrong types */
    s_req_begin(&r, 1);
    s_kuint(&r, "cmd", 5);
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    s_req_begin(&r, 3);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "alpha");
    s_kstr(&r, "run", "three");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    s_req_begin(&r, 3);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "alpha");
    s_kstr(&r, "pos", "not-a-bin");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    s_req_begin(&r, 3);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "alpha");
    s_str(&r.pk, "pos");
    msgpack_pack_bin(&r.pk, 3);
    msgpack_pack_bin_body(&r.pk, "abc", 3);
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    s_req_begin(&r, 3);
    s_kstr(&r, "cmd", "export");
    s_kstr(&r, "engine", "alpha");
    s_kstr(&r, "lane", "sideways");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EINVAL");
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "runs");
    s_kstr(&r, "engine", "bad engine/id");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EINVAL");
    /* a nested value */
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "status");
    s_str(&r.pk, "x");
    msgpack_pack_array(&r.pk, 1);
    msgpack_pack_nil(&r.pk);
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    /* unknown command, missing command, wrong version */
    s_req_begin(&r, 1);
    s_kstr(&r, "cmd", "launch-missiles");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EINVAL");
    s_req_begin(&r, 1);
    s_kuint(&r, "v", 1);
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    s_req_begin(&r, 2);
    s_kuint(&r, "v", 2);
    s_kstr(&r, "cmd", "status");
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    /* trailing bytes */
    s_req_begin(&r, 1);
    s_kstr(&r, "cmd", "status");
    msgpack_pack_nil(&r.pk);
    s_assert_error(s_req_call(&r, NULL, 0), "HF_EPROTO");
    /* oversized */
    size_t big = HF_CONTROL_MAX_REQUEST + 1;
    uint8_t *b = calloc(1, big);
    b[0] = 0x81;
    s_assert_error(s_call(b, big, NULL, 0, S_OUT_CAP), "HF_EPROTO");
    free(b);
    /* unknown keys are ignored */
    s_req_begin(&r, 2);
    s_kstr(&r, "cmd", "engines");
    s_kstr(&r, "colour", "blue");
    cr_assert(s_ok(s_req_call(&r, NULL, 0)));
}

Test(control, bad_arguments_write_nothing)
{
    size_t outlen = 0;
    const uint8_t req[] = {0x80};
    cr_assert_eq(hf_control_handle(NULL, NULL, 0, req, 1, s_out, S_OUT_CAP, &outlen), HF_EINVAL);
    cr_assert_eq(hf_control_handle(s_st, NULL, 0, req, 1, s_out, 100, &outlen), HF_EINVAL);
    cr_assert_eq(hf_control_handle(s_st, NULL, 3, req, 1, s_out, S_OUT_CAP, &outlen), HF_EINVAL);
}

Test(control, random_mutations_of_requests_never_crash)
{
    s_populate();
    s_req_t r;
    s_req_begin(&r, 6);
    s_kstr(&r, "cmd", "export");
    s_kuint(&r, "v", 1);
    s_kstr(&r, "engine", "alpha");
    s_kuint(&r, "run", 3);
    s_kstr(&r, "lane", "data");
    s_kuint(&r, "max", 5);
    uint8_t base[256];
    size_t n = r.sb.size;
    cr_assert_lt(n, sizeof base);
    memcpy(base, r.sb.data, n);
    msgpack_sbuffer_destroy(&r.sb);
    uint32_t x = 42;
    uint8_t m[256];
    for (int it = 0; it < 3000; it++) {
        memcpy(m, base, n);
        size_t len = n;
        int flips = 1 + it % 4;
        for (int f = 0; f < flips; f++) {
            x = x * 1664525u + 1013904223u;
            m[(x >> 8) % n] = (uint8_t)(x >> 24);
        }
        if (it % 5 == 0) {
            x = x * 1664525u + 1013904223u;
            len = (x >> 8) % (n + 1);
        }
        size_t outlen = 0;
        cr_assert_eq(hf_control_handle(s_st, NULL, 0, m, len, s_out, HF_CONTROL_REPLY_MIN * 4,
                                       &outlen),
                     HF_OK);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        cr_assert_eq(msgpack_unpack_next(&u, (const char *)s_out, outlen, &off),
                     MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq(off, outlen);
        msgpack_unpacked_destroy(&u);
    }
}
