/* Integration tests: dispatcher -> loopback TCP -> aggregator -> store.
 * The aggregator runs in a thread of the test process; it is stopped and
 * reopened on the same endpoint and store to simulate an outage, and the
 * dispatcher is closed and reopened on the same spool to simulate an engine
 * restart. The store is read back and checked record by record.
 * Waits are bounded (hf_dispatcher_drain with a timeout), never fixed sleeps. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_aggregator.h"
#include "hf_dispatcher.h"
#include "hf_log.h"
#include "hf_proto.h"
#include "hf_store.h"
#include "hf_time.h"

typedef struct {
    hf_aggregator_t *agg;
    pthread_t thread;
    volatile sig_atomic_t stop;
    char data[256];
    char endpoint[256];
} s_agg_t;

static void *
s_agg_main(void *arg)
{
    s_agg_t *a = arg;
    hf_aggregator_run(a->agg, &a->stop);
    return NULL;
}

static void
s_agg_start(s_agg_t *a, const char *endpoint)
{
    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    o.insecure = true; /* plain: these tests are about the protocol; test_security.c covers CURVE */
    o.bind = endpoint;
    o.control = "tcp://127.0.0.1:*";
    o.data_dir = a->data;
    o.watchdog_ms = 3000;
    hf_err_t err;
    a->agg = hf_aggregator_open(&o, &err);
    cr_assert_not_null(a->agg, "aggregator open: %s", hf_strerror(err));
    snprintf(a->endpoint, sizeof a->endpoint, "%s", hf_aggregator_endpoint(a->agg));
    a->stop = 0;
    cr_assert_eq(pthread_create(&a->thread, NULL, s_agg_main, a), 0);
}

static void
s_agg_stop(s_agg_t *a)
{
    a->stop = 1;
    pthread_join(a->thread, NULL);
    hf_aggregator_close(&a->agg);
}

static char *
s_tmpdir(void)
{
    char tmpl[] = "/tmp/hf-test-disp-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    return strdup(d);
}

static void
s_rmrf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    cr_assert_eq(system(cmd), 0);
}

static hf_dispatcher_t *
s_disp_open(const char *endpoint, const char *spool)
{
    if (getenv("HF_TEST_LOG")) {
        hf_log_set_sink(hf_log_stderr_sink, NULL);
        hf_log_set_level(HF_LOG_DEBUG);
    }
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = "itest";
    o.endpoint = endpoint;
    o.spool_dir = spool;
    o.heartbeat_ms = 200;
    o.peer_timeout_ms = 1000;
    o.reconnect_max_ms = 200;
    hf_err_t err;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    cr_assert_not_null(d, "dispatcher open: %s", hf_strerror(err));
    return d;
}

/* Send samples value=first..first+n-1 (run 1, channel i%4) and one event. */
static void
s_send(hf_dispatcher_t *d, uint64_t first, uint64_t n)
{
    hf_channel_t *ch = hf_dispatcher_channel(d);
    hf_record_t r;
    for (uint64_t i = first; i < first + n; i++) {
        hf_record_sample(&r, 1, 1000 + i, i, (uint32_t)(i % 4), (double)i);
        cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
    }
    hf_record_event(&r, 1, 1000 + first + n, first + n, HF_EV_STEP, (uint32_t)first, "step");
    cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
}

typedef struct {
    uint64_t n[HF_LANE_COUNT];
    uint64_t last_seq[HF_LANE_COUNT];
    uint64_t next_value;
    int bad;
} s_check_t;

static int
s_check_cb(const hf_store_export_rec_t *e, void *arg)
{
    s_check_t *c = arg;
    const hf_record_t *r = &e->rec;
    if (r->seq != c->last_seq[r->lane] + 1)
        c->bad++; /* gap or duplicate */
    c->last_seq[r->lane] = r->seq;
    c->n[r->lane]++;
    if (r->kind == HF_KIND_SAMPLE) {
        if (r->u.sample.value != (double)c->next_value)
            c->bad++;
        c->next_value++;
    }
    return 0;
}

static s_check_t
s_check_store(const char *data)
{
    hf_err_t err;
    hf_store_t *st = hf_store_open(data, NULL, &err);
    cr_assert_not_null(st);
    s_check_t c;
    memset(&c, 0, sizeof c);
    hf_store_export_opts_t eo = {.run = 0, .lane = -1, .max_records = 100000};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    for (int i = 0; i < 1000 && !done; i++)
        cr_assert_eq(hf_store_export(st, "itest", &eo, &pos, s_check_cb, &c, NULL, &done), HF_OK);
    cr_assert(done);
    hf_store_close(&st);
    return c;
}

Test(dispatcher, aggregator_outage_loses_and_duplicates_nothing, .timeout = 120)
{
    char *root = s_tmpdir();
    char spool[300];
    s_agg_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.data, sizeof a.data, "%s/store", root);
    snprintf(spool, sizeof spool, "%s/spool", root);

    s_agg_start(&a, "tcp://127.0.0.1:*");
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", a.endpoint);
    hf_dispatcher_t *d = s_disp_open(endpoint, spool);
    s_send(d, 0, 20000);
    cr_assert_eq(hf_dispatcher_drain(d, 20000), HF_OK, "first part acked");

    s_agg_stop(&a); /* outage: the engine goes on */
    s_send(d, 20000, 30000);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.committed[HF_LANE_DATA], 50000);
    cr_assert_lt(st.acked[HF_LANE_DATA], 50000, "nothing can be acked while it is down");

    s_agg_start(&a, endpoint); /* back, same store */
    cr_assert_eq(hf_dispatcher_drain(d, 30000), HF_OK, "backlog flushed after the outage");
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.acked[HF_LANE_DATA], 50000);
    cr_assert_eq(st.acked[HF_LANE_CONTROL], 2);
    for (int i = 0; i < 100 && st.pending[HF_LANE_DATA] != 0; i++) {
        hf_sleep_until_ns(hf_clock_mono_ns() + 20000000ull); /* bounded poll: trims are lazy */
        hf_dispatcher_stats(d, &st);
    }
    cr_assert_eq(st.pending[HF_LANE_DATA], 0, "spool trimmed after acks");
    hf_dispatcher_close(&d);
    s_agg_stop(&a);

    s_check_t c = s_check_store(a.data);
    cr_assert_eq(c.bad, 0, "gaps, duplicates or wrong values: %d", c.bad);
    cr_assert_eq(c.n[HF_LANE_DATA], 50000);
    cr_assert_eq(c.n[HF_LANE_CONTROL], 2);
    s_rmrf(root);
    free(root);
}

Test(dispatcher, engine_restart_continues_the_sequence, .timeout = 120)
{
    char *root = s_tmpdir();
    char spool[300];
    s_agg_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.data, sizeof a.data, "%s/store", root);
    snprintf(spool, sizeof spool, "%s/spool", root);
    s_agg_start(&a, "tcp://127.0.0.1:*");

    hf_dispatcher_t *d = s_disp_open(a.endpoint, spool);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    uint64_t epoch = st.epoch;
    s_send(d, 0, 3000);
    hf_dispatcher_close(&d); /* maybe not all acked yet: stays in the spool */

    d = s_disp_open(a.endpoint, spool);
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.epoch, epoch, "same spool, same epoch");
    cr_assert_eq(st.committed[HF_LANE_DATA], 3000);
    s_send(d, 3000, 3000);
    cr_assert_eq(hf_dispatcher_drain(d, 20000), HF_OK);
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.committed[HF_LANE_DATA], 6000, "sequence continued, never reused");
    hf_dispatcher_close(&d);
    s_agg_stop(&a);

    s_check_t c = s_check_store(a.data);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(c.n[HF_LANE_DATA], 6000);
    cr_assert_eq(c.n[HF_LANE_CONTROL], 2);
    s_rmrf(root);
    free(root);
}

Test(dispatcher, bad_options_are_refused_with_einval, .timeout = 10)
{
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    hf_err_t err = HF_OK;
    cr_assert_null(hf_dispatcher_open(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
    o.engine_id = "has space";
    o.endpoint = "tcp://127.0.0.1:1";
    o.spool_dir = "/tmp/none";
    cr_assert_null(hf_dispatcher_open(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
    o.engine_id = "ok";
    o.window = 0;
    cr_assert_null(hf_dispatcher_open(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
}

/* ---- full spool ------------------------------------------------------------ */

typedef struct {
    uint64_t data_n, data_last, control_n, events, gaps, gap_count, alarms_raised,
        alarms_cleared, bad_value, disorder, level_raised, level_cleared;
    uint64_t gap_first[4096], gap_last[4096];
    uint64_t data_seqs_n;
    uint64_t *data_seqs;
} s_full_t;

static int
s_full_cb(const hf_store_export_rec_t *e, void *arg)
{
    s_full_t *f = arg;
    const hf_record_t *r = &e->rec;
    if (r->lane == HF_LANE_DATA) {
        if (r->seq <= f->data_last)
            f->disorder++;
        f->data_last = r->seq;
        if (r->u.sample.value != (double)(r->seq - 1))
            f->bad_value++; /* sample i was sent with value i and got seq i+1 */
        f->data_seqs[f->data_seqs_n++] = r->seq;
        f->data_n++;
        return 0;
    }
    f->control_n++;
    if (r->seq != f->control_n)
        f->disorder++; /* control lane: never dropped, contiguous */
    if (r->kind == HF_KIND_EVENT)
        f->events++;
    if (r->kind == HF_KIND_ALARM) {
        if (r->u.alarm.code == HF_ALARM_CODE_SPOOL_FULL)
            r->u.alarm.raised ? f->alarms_raised++ : f->alarms_cleared++;
        else if (r->u.alarm.code == HF_ALARM_CODE_SPOOL_LEVEL)
            r->u.alarm.raised ? f->level_raised++ : f->level_cleared++;
    }
    if (r->kind == HF_KIND_GAP && f->gaps < 4096) {
        f->gap_first[f->gaps] = r->u.gap.first;
        f->gap_last[f->gaps] = r->u.gap.last;
        f->gaps++;
        f->gap_count += r->u.gap.count;
    }
    return 0;
}

static void
s_full_scenario(hf_full_policy_t policy, uint64_t samples)
{
    char *root = s_tmpdir();
    char spool[300];
    s_agg_t a;
    memset(&a, 0, sizeof a);
    snprintf(a.data, sizeof a.data, "%s/store", root);
    snprintf(spool, sizeof spool, "%s/spool", root);
    s_agg_start(&a, "tcp://127.0.0.1:*"); /* only to learn a free endpoint */
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", a.endpoint);
    s_agg_stop(&a);

    if (getenv("HF_TEST_LOG")) {
        hf_log_set_sink(hf_log_stderr_sink, NULL);
        hf_log_set_level(getenv("HF_TEST_DEBUG") ? HF_LOG_DEBUG : HF_LOG_INFO);
    }
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = "itest";
    o.endpoint = endpoint;
    o.spool_dir = spool;
    o.spool_max_bytes = 4u << 20;
    o.full_policy = policy;
    o.heartbeat_ms = 200;
    o.peer_timeout_ms = 1000;
    o.reconnect_max_ms = 200;
    hf_err_t err;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    cr_assert_not_null(d);
    hf_channel_t *ch = hf_dispatcher_channel(d);
    hf_record_t r;
    uint64_t events = 0;
    for (uint64_t i = 0; i < samples; i++) {
        hf_record_sample(&r, 1, 1000 + i, i, (uint32_t)(i % 4), (double)i);
        cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
        if (i % 20000 == 0) {
            hf_record_event(&r, 1, 1000 + i, i, HF_EV_STEP, (uint32_t)i, "step");
            cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
            events++;
        }
    }
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    cr_assert_gt(st.dropped, 0, "a 4 MiB spool cannot hold %" PRIu64 " samples", samples);
    cr_assert_gt(st.gaps, 0);
    cr_assert_eq(st.committed[HF_LANE_DATA], samples, "dropped samples still had seqs");

    /* the storage watch saw the spool fill during the outage */
    for (int i = 0; i < 100 && !st.spool_level_alarm; i++) {
        hf_sleep_until_ns(hf_clock_mono_ns() + 20000000ull);
        hf_dispatcher_stats(d, &st);
    }
    cr_assert(st.spool_level_alarm, "no spool-level alarm with the spool at its bound");
    s_agg_start(&a, endpoint);
    cr_assert_eq(hf_dispatcher_drain(d, 60000), HF_OK, "backlog delivered");
    /* drained and trimmed: the level alarm clears, and its record is delivered too */
    for (int i = 0; i < 250 && st.spool_level_alarm; i++) {
        hf_sleep_until_ns(hf_clock_mono_ns() + 20000000ull);
        hf_dispatcher_stats(d, &st);
    }
    cr_assert_not(st.spool_level_alarm, "the spool-level alarm did not clear after the drain");
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
    cr_assert_eq(hf_dispatcher_drain(d, 60000), HF_OK);
    hf_dispatcher_stats(d, &st);
    uint64_t dropped = st.dropped;
    hf_dispatcher_close(&d);
    s_agg_stop(&a);

    hf_store_t *store = hf_store_open(a.data, NULL, &err);
    cr_assert_not_null(store);
    static s_full_t f;
    memset(&f, 0, sizeof f);
    f.data_seqs = calloc(samples, sizeof *f.data_seqs);
    hf_store_export_opts_t eo = {.run = 0, .lane = -1, .max_records = 1000000};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    for (int i = 0; i < 1000 && !done; i++)
        cr_assert_eq(hf_store_export(store, "itest", &eo, &pos, s_full_cb, &f, NULL, &done),
                     HF_OK);
    hf_store_close(&store);
    cr_assert_eq(f.disorder, 0);
    cr_assert_eq(f.bad_value, 0);
    cr_assert_eq(f.events, events, "events are never dropped");
    cr_assert_eq(f.gap_count, dropped, "every drop is announced: %" PRIu64 " vs %" PRIu64,
                 f.gap_count, dropped);
    cr_assert_eq(f.data_n + dropped, samples, "stored + announced drops = all samples");
    cr_assert_eq(f.alarms_raised, 1, "the drop raised one alarm (got %" PRIu64 ")",
                 f.alarms_raised);
    cr_assert_eq(f.alarms_cleared, 1, "and it cleared once the backlog drained (got %" PRIu64 ")",
                 f.alarms_cleared);
    cr_assert_eq(f.level_raised, 1, "spool level: raised once (got %" PRIu64 ")", f.level_raised);
    cr_assert_eq(f.level_cleared, 1, "spool level: cleared once (got %" PRIu64 ")",
                 f.level_cleared);
    /* Every missing data seq lies inside an announced gap range. */
    uint64_t expect = 1;
    for (uint64_t i = 0; i <= f.data_seqs_n; i++) {
        uint64_t next = i < f.data_seqs_n ? f.data_seqs[i] : samples + 1;
        for (uint64_t m = expect; m < next; m++) {
            bool in = false;
            for (uint64_t g = 0; g < f.gaps && !in; g++)
                in = m >= f.gap_first[g] && m <= f.gap_last[g];
            cr_assert(in, "seq %" PRIu64 " missing without an announced gap", m);
        }
        expect = next + 1;
    }
    free(f.data_seqs);
    s_rmrf(root);
    free(root);
}

Test(dispatcher, full_spool_decimates_announces_and_keeps_every_event, .timeout = 180)
{
    s_full_scenario(HF_FULL_DECIMATE, 400000);
}

Test(dispatcher, full_spool_drops_oldest_announces_and_keeps_every_event, .timeout = 180)
{
    s_full_scenario(HF_FULL_DROP_OLDEST, 400000);
}

/* ---- several destinations --------------------------------------------------- */

Test(dispatcher, two_destinations_each_get_everything_and_the_spool_waits_for_both,
     .timeout = 120)
{
    char *root = s_tmpdir();
    char spool[300];
    s_agg_t a1, a2;
    memset(&a1, 0, sizeof a1);
    memset(&a2, 0, sizeof a2);
    snprintf(a1.data, sizeof a1.data, "%s/store1", root);
    snprintf(a2.data, sizeof a2.data, "%s/store2", root);
    snprintf(spool, sizeof spool, "%s/spool", root);
    s_agg_start(&a1, "tcp://127.0.0.1:*");
    s_agg_start(&a2, "tcp://127.0.0.1:*");
    char eps[600], ep2[256];
    snprintf(ep2, sizeof ep2, "%s", a2.endpoint);
    snprintf(eps, sizeof eps, "%s,%s", a1.endpoint, a2.endpoint);

    hf_dispatcher_t *d = s_disp_open(eps, spool);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.destinations, 2);
    s_send(d, 0, 10000);
    cr_assert_eq(hf_dispatcher_drain(d, 20000), HF_OK, "both acked");

    s_agg_stop(&a2); /* one destination goes away; the other keeps up */
    s_send(d, 10000, 10000);
    cr_assert_eq(hf_dispatcher_drain(d, 1500), HF_ETIMEDOUT,
                 "acked means acked by every destination");
    hf_dispatcher_stats(d, &st);
    cr_assert_eq(st.acked[HF_LANE_DATA], 10000);
    cr_assert_eq(st.pending[HF_LANE_DATA], 10000, "kept for the missing destination");

    s_agg_start(&a2, ep2);
    cr_assert_eq(hf_dispatcher_drain(d, 30000), HF_OK, "the returning destination catches up");
    hf_dispatcher_close(&d);
    s_agg_stop(&a1);
    s_agg_stop(&a2);

    s_check_t c1 = s_check_store(a1.data);
    s_check_t c2 = s_check_store(a2.data);
    cr_assert_eq(c1.bad, 0);
    cr_assert_eq(c2.bad, 0);
    cr_assert_eq(c1.n[HF_LANE_DATA], 20000);
    cr_assert_eq(c2.n[HF_LANE_DATA], 20000);
    cr_assert_eq(c1.n[HF_LANE_CONTROL], 2);
    cr_assert_eq(c2.n[HF_LANE_CONTROL], 2);
    s_rmrf(root);
    free(root);
}

Test(dispatcher, bad_endpoint_lists_are_refused, .timeout = 10)
{
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = "ok";
    o.spool_dir = "/tmp/hf-never-created";
    hf_err_t err = HF_OK;
    o.endpoint = "tcp://127.0.0.1:1,,tcp://127.0.0.1:2";
    cr_assert_null(hf_dispatcher_open(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
    o.endpoint = "a,b,c,d,e,f,g,h,i"; /* nine */
    cr_assert_null(hf_dispatcher_open(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
}

/* ---- status feed -------------------------------------------------------------- */

#include <msgpack.h>
#include <zmq.h>

/* Wait (bounded) for a feed message whose map has key == want. */
static bool
s_feed_expect(void *sub, const char *key, const char *want, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        char buf[4096];
        int n = zmq_recv(sub, buf, sizeof buf, 0);
        if (n <= 0)
            continue;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        bool hit = false;
        if (msgpack_unpack_next(&up, buf, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < up.data.via.map.size; i++) {
                msgpack_object_kv *kv = &up.data.via.map.ptr[i];
                if (kv->key.type == MSGPACK_OBJECT_STR && kv->val.type == MSGPACK_OBJECT_STR &&
                    kv->key.via.str.size == strlen(key) &&
                    !memcmp(kv->key.via.str.ptr, key, strlen(key)) &&
                    kv->val.via.str.size == strlen(want) &&
                    !memcmp(kv->val.via.str.ptr, want, strlen(want)))
                    hit = true;
            }
        }
        msgpack_unpacked_destroy(&up);
        if (hit)
            return true;
    }
    return false;
}

Test(dispatcher, status_feed_publishes_availability_runs_and_a_clean_shutdown, .timeout = 60)
{
    char *root = s_tmpdir();
    char data[300], spool[300];
    snprintf(data, sizeof data, "%s/store", root);
    snprintf(spool, sizeof spool, "%s/spool", root);
    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    o.insecure = true; /* plain: these tests are about the protocol; test_security.c covers CURVE */
    o.bind = "tcp://127.0.0.1:*";
    o.control = "tcp://127.0.0.1:*";
    o.status = "tcp://127.0.0.1:*";
    o.data_dir = data;
    hf_err_t err;
    s_agg_t a;
    memset(&a, 0, sizeof a);
    a.agg = hf_aggregator_open(&o, &err);
    cr_assert_not_null(a.agg);
    cr_assert_not_null(hf_aggregator_status_endpoint(a.agg));
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    cr_assert_eq(zmq_connect(sub, hf_aggregator_status_endpoint(a.agg)), 0);
    cr_assert_eq(pthread_create(&a.thread, NULL, s_agg_main, &a), 0);

    hf_dispatcher_t *d = s_disp_open(hf_aggregator_endpoint(a.agg), spool);
    /* PUB/SUB joins late: a periodic message first proves the feed is up
     * (the "available" at HELLO may go out before the subscription). */
    cr_assert(s_feed_expect(sub, "type", "backlog", 10000), "backlog published");
    hf_channel_t *ch = hf_dispatcher_channel(d);
    hf_record_t r;
    hf_record_event(&r, 5, 1, 1, HF_EV_RUN_STARTED, 0, "m");
    cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
    cr_assert(s_feed_expect(sub, "event", "run_started", 10000), "run event published");
    hf_dispatcher_close(&d);
    cr_assert(s_feed_expect(sub, "reason", "clean shutdown", 10000), "BYE seen as clean");
    a.stop = 1;
    pthread_join(a.thread, NULL);
    hf_aggregator_close(&a.agg);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    s_rmrf(root);
    free(root);
}
