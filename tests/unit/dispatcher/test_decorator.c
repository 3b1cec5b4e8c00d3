/* The dispatcher is a transparent decorator: the same engine run, on the
 * same simulated instrument with the same seed and the same simulated
 * times, produces the same records whether its channel is a direct
 * in-memory channel or the dispatcher (spool -> TCP -> aggregator -> store).
 * The records are compared field by field, in order, per lane. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_aggregator.h"
#include "hf_dispatcher.h"
#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_memchan.h"
#include "hf_store.h"

#define S_METHOD                                                                                  \
    "sample oven.temp,chamber.pressure,flow,ambient 200\n"                                        \
    "set oven.setpoint 25\n"                                                                      \
    "ramp oven.setpoint 40 1s\n"                                                                  \
    "hold 1s\n"

/* Drive one run on a fresh instrument to completion over ch, with
 * simulated time (1 ms ticks), so both runs see identical inputs. */
static void
s_run(hf_channel_t *ch)
{
    hf_err_t err;
    char eb[256];
    hf_method_t *m = hf_method_parse("deco", S_METHOD, eb, sizeof eb, &err);
    cr_assert_not_null(m, "%s", eb);
    hf_hwsim_opts_t ho = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&ho, &err);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_hal_error_t he;
    uint64_t t = 1000000000ull;
    cr_assert_eq(hal.ops->open(hal.impl, t, &he), HF_HAL_OK);
    hf_run_t *run = hf_run_new(m, &hal, ch, 77, NULL, eb, sizeof eb, &err);
    cr_assert_not_null(run, "%s", eb);
    cr_assert_eq(hf_run_start(run, t, 1700000000000000000ull), HF_OK);
    for (int i = 0; i < 10000 && hf_run_state(run) == HF_RUN_RUNNING; i++) {
        t += 1000000ull;
        cr_assert_eq(hf_run_tick(run, t, NULL), HF_OK);
    }
    cr_assert_eq(hf_run_state(run), HF_RUN_COMPLETED);
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
    hf_run_destroy(&run);
    hal.ops->close(hal.impl);
    hf_hwsim_destroy(&sim);
    hf_method_destroy(&m);
}

typedef struct {
    hf_memchan_t *direct;
    size_t idx[HF_LANE_COUNT]; /* next direct record to compare, per lane */
    size_t compared;
} s_cmp_t;

/* Find the idx-th record of a lane in the direct channel (records are
 * interleaved there; each lane is compared in its own order). */
static const hf_record_t *
s_nth_of_lane(const hf_memchan_t *mc, uint8_t lane, size_t nth)
{
    size_t k = 0;
    for (size_t i = 0; i < hf_memchan_count(mc); i++) {
        const hf_record_t *r = hf_memchan_at(mc, i);
        if (hf_record_lane_of(r->kind) == lane && k++ == nth)
            return r;
    }
    return NULL;
}

static int
s_cmp_cb(const hf_store_export_rec_t *e, void *arg)
{
    s_cmp_t *c = arg;
    const hf_record_t *got = &e->rec;
    const hf_record_t *want = s_nth_of_lane(c->direct, got->lane, c->idx[got->lane]++);
    cr_assert_not_null(want, "more records through the dispatcher than directly");
    cr_assert_eq(got->kind, want->kind);
    cr_assert_eq(got->run, want->run);
    cr_assert_eq(got->ts_ns, want->ts_ns);
    cr_assert_eq(got->mono_ns, want->mono_ns);
    if (got->kind == HF_KIND_SAMPLE) {
        cr_assert_eq(got->u.sample.channel, want->u.sample.channel);
        cr_assert_eq(got->u.sample.value, want->u.sample.value);
    } else if (got->kind == HF_KIND_EVENT) {
        cr_assert_eq(got->u.event.type, want->u.event.type);
        cr_assert_str_eq(got->u.event.text, want->u.event.text);
    }
    c->compared++;
    return 0;
}

typedef struct {
    hf_aggregator_t *agg;
    volatile sig_atomic_t stop;
} s_agg_t;

static void *
s_agg_main(void *arg)
{
    s_agg_t *a = arg;
    hf_aggregator_run(a->agg, &a->stop);
    return NULL;
}

Test(decorator, same_engine_code_same_records_direct_or_through_the_dispatcher, .timeout = 60)
{
    hf_err_t err;
    hf_memchan_t *mc = hf_memchan_new(100000, &err);
    cr_assert_not_null(mc);
    s_run(hf_memchan_channel(mc));
    cr_assert_gt(hf_memchan_count(mc), 1000);

    char root[] = "/tmp/hf-test-deco-XXXXXX";
    cr_assert_not_null(mkdtemp(root));
    char data[128], spool[128];
    snprintf(data, sizeof data, "%s/store", root);
    snprintf(spool, sizeof spool, "%s/spool", root);
    hf_aggregator_opts_t ao = hf_aggregator_opts_default();
    ao.insecure = true; /* plain: see test_security.c for CURVE */
    ao.bind = "tcp://127.0.0.1:*";
    ao.control = "tcp://127.0.0.1:*";
    ao.data_dir = data;
    s_agg_t a = {.stop = 0};
    a.agg = hf_aggregator_open(&ao, &err);
    cr_assert_not_null(a.agg);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_agg_main, &a), 0);

    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = "deco";
    o.endpoint = hf_aggregator_endpoint(a.agg);
    o.spool_dir = spool;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    cr_assert_not_null(d);
    s_run(hf_dispatcher_channel(d));
    cr_assert_eq(hf_dispatcher_drain(d, 20000), HF_OK);
    hf_dispatcher_close(&d);
    a.stop = 1;
    pthread_join(th, NULL);
    hf_aggregator_close(&a.agg);

    hf_store_t *st = hf_store_open(data, NULL, &err);
    cr_assert_not_null(st);
    s_cmp_t c = {.direct = mc};
    hf_store_export_opts_t eo = {.run = 0, .lane = -1, .max_records = 1000000};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    for (int i = 0; i < 100 && !done; i++)
        cr_assert_eq(hf_store_export(st, "deco", &eo, &pos, s_cmp_cb, &c, NULL, &done), HF_OK);
    hf_store_close(&st);
    cr_assert_eq(c.compared, hf_memchan_count(mc), "every direct record arrived, no more");
    hf_memchan_destroy(&mc);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}
