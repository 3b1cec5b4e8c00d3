/* Integration tests of CURVE between the dispatcher and the aggregator
 * (docs/security.md), in one process: the aggregator (in a thread) trusts a
 * directory of engine certificates made here with czmq's zcert; each test
 * opens a dispatcher with some keys and checks what the aggregator
 * acknowledged (an ACK follows the store's commit, so "acked" means
 * "stored"). Waits are bounded (hf_dispatcher_drain with a timeout). */
#include <criterion/criterion.h>
#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_aggregator.h"
#include "hf_dispatcher.h"
#include "hf_log.h"
#include "hf_proto.h"

typedef struct {
    char dir[256];          /* work directory                         */
    char engines[300];      /* the aggregator's --engine-keys          */
    char server[300];       /* its certificate (public; _secret next) */
    hf_aggregator_t *agg;
    pthread_t thread;
    volatile sig_atomic_t stop;
} s_env_t;

static void *
s_agg_main(void *arg)
{
    s_env_t *e = arg;
    hf_aggregator_run(e->agg, &e->stop);
    return NULL;
}

/* A certificate pair in dir/name(_secret); engine-id metadata if id. */
static void
s_cert(const char *dir, const char *name, const char *id)
{
    zcert_t *c = zcert_new();
    cr_assert_not_null(c);
    if (id)
        zcert_set_meta(c, "engine-id", "%s", id);
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cr_assert_eq(zcert_save(c, path), 0);
    zcert_destroy(&c);
}

static void
s_env_start(s_env_t *e)
{
    if (getenv("HF_TEST_LOG")) {
        hf_log_set_sink(hf_log_stderr_sink, NULL);
        hf_log_set_level(HF_LOG_DEBUG);
    }
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/hf-test-sec-XXXXXX");
    cr_assert_not_null(mkdtemp(e->dir));
    char ops[300], priv[300], data[300];
    snprintf(e->engines, sizeof e->engines, "%s/engines", e->dir);
    snprintf(ops, sizeof ops, "%s/operators", e->dir);
    snprintf(priv, sizeof priv, "%s/private", e->dir);
    snprintf(data, sizeof data, "%s/store", e->dir);
    cr_assert_eq(mkdir(e->engines, 0700), 0);
    cr_assert_eq(mkdir(ops, 0700), 0);
    cr_assert_eq(mkdir(priv, 0700), 0);
    s_cert(e->dir, "server", NULL);
    snprintf(e->server, sizeof e->server, "%s/server", e->dir);
    s_cert(priv, "eng-a", "eng-a"); /* trusted below */
    s_cert(priv, "eng-new", "eng-new"); /* trusted later by a test */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s/eng-a' '%s/eng-a'", priv, e->engines);
    cr_assert_eq(system(cmd), 0);

    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    o.bind = "tcp://127.0.0.1:*";
    o.control = "tcp://127.0.0.1:*";
    o.data_dir = data;
    o.cert = e->server;
    o.engine_keys = e->engines;
    o.operator_keys = ops;
    hf_err_t err;
    e->agg = hf_aggregator_open(&o, &err);
    cr_assert_not_null(e->agg, "aggregator open: %s", hf_strerror(err));
    cr_assert_eq(pthread_create(&e->thread, NULL, s_agg_main, e), 0);
}

static void
s_env_stop(s_env_t *e)
{
    e->stop = 1;
    pthread_join(e->thread, NULL);
    hf_aggregator_close(&e->agg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    cr_assert_eq(system(cmd), 0);
}

/* A dispatcher for engine id with the keys of cert (NULL: plain); it sends
 * 100 samples and flushes. */
static hf_dispatcher_t *
s_disp(s_env_t *e, const char *id, const char *cert, const char *spool_name)
{
    char spool[400];
    snprintf(spool, sizeof spool, "%s/%s", e->dir, spool_name);
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = id;
    o.endpoint = hf_aggregator_endpoint(e->agg);
    o.spool_dir = spool;
    o.heartbeat_ms = 200;
    o.peer_timeout_ms = 1000;
    o.reconnect_max_ms = 200;
    hf_dispatcher_keys_t k;
    if (cert) {
        cr_assert_eq(hf_dispatcher_keys_load(cert, e->server, &k), HF_OK);
        o.curve_server_key = k.server_key;
        o.curve_public_key = k.public_key;
        o.curve_secret_key = k.secret_key;
    }
    hf_err_t err;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    cr_assert_not_null(d, "dispatcher open: %s", hf_strerror(err));
    hf_channel_t *ch = hf_dispatcher_channel(d);
    hf_record_t r;
    for (uint64_t i = 1; i <= 100; i++) {
        hf_record_sample(&r, 1, 1000 + i, i, 0, (double)i);
        cr_assert_eq(hf_channel_send(ch, &r), HF_OK);
    }
    cr_assert_eq(hf_channel_flush(ch), HF_OK);
    return d;
}

static uint64_t
s_acked(hf_dispatcher_t *d)
{
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    return st.acked[HF_LANE_DATA] + st.acked[HF_LANE_CONTROL];
}

Test(security, a_trusted_engine_key_streams_and_is_acked, .timeout = 30)
{
    s_env_t e;
    s_env_start(&e);
    char cert[400];
    snprintf(cert, sizeof cert, "%s/private/eng-a_secret", e.dir);
    hf_dispatcher_t *d = s_disp(&e, "eng-a", cert, "spool");
    cr_assert_eq(hf_dispatcher_drain(d, 15000), HF_OK, "not acked over CURVE");
    cr_assert_eq(s_acked(d), 100);
    hf_dispatcher_close(&d);
    s_env_stop(&e);
}

Test(security, an_unknown_key_is_refused_and_nothing_is_acked, .timeout = 30)
{
    s_env_t e;
    s_env_start(&e);
    char cert[400];
    snprintf(cert, sizeof cert, "%s/private/eng-new_secret", e.dir); /* not trusted */
    hf_dispatcher_t *d = s_disp(&e, "eng-new", cert, "spool");
    cr_assert_eq(hf_dispatcher_drain(d, 1500), HF_ETIMEDOUT);
    cr_assert_eq(s_acked(d), 0);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    cr_assert(!st.connected, "a refused engine shows as connected");
    hf_dispatcher_close(&d);
    s_env_stop(&e);
}

Test(security, a_key_bound_to_another_engine_id_is_refused, .timeout = 30)
{
    s_env_t e;
    s_env_start(&e);
    char cert[400];
    snprintf(cert, sizeof cert, "%s/private/eng-a_secret", e.dir); /* bound to eng-a */
    hf_dispatcher_t *d = s_disp(&e, "eng-b", cert, "spool");
    cr_assert_eq(hf_dispatcher_drain(d, 1500), HF_ETIMEDOUT);
    cr_assert_eq(s_acked(d), 0);
    hf_dispatcher_close(&d);
    s_env_stop(&e);
}

Test(security, a_plain_engine_cannot_connect_to_a_curve_aggregator, .timeout = 30)
{
    s_env_t e;
    s_env_start(&e);
    hf_dispatcher_t *d = s_disp(&e, "eng-a", NULL, "spool");
    cr_assert_eq(hf_dispatcher_drain(d, 1500), HF_ETIMEDOUT);
    cr_assert_eq(s_acked(d), 0);
    hf_dispatcher_close(&d);
    s_env_stop(&e);
}

Test(security, a_key_added_at_run_time_is_accepted_without_restart, .timeout = 30)
{
    s_env_t e;
    s_env_start(&e);
    char cert[400];
    snprintf(cert, sizeof cert, "%s/private/eng-new_secret", e.dir);
    hf_dispatcher_t *d = s_disp(&e, "eng-new", cert, "spool");
    cr_assert_eq(hf_dispatcher_drain(d, 800), HF_ETIMEDOUT, "accepted before its key was added");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s/private/eng-new' '%s/.new' && mv '%s/.new' '%s/eng-new'",
             e.dir, e.engines, e.engines, e.engines);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(hf_dispatcher_drain(d, 15000), HF_OK, "the added key was not accepted");
    cr_assert_eq(s_acked(d), 100);
    hf_dispatcher_close(&d);
    s_env_stop(&e);
}

Test(security, keys_must_be_all_three_z85_or_none, .timeout = 10)
{
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default();
    o.engine_id = "eng-a";
    o.endpoint = "tcp://127.0.0.1:9";
    o.spool_dir = "/tmp/hf-test-sec-never-made";
    o.curve_server_key = "not a key";
    hf_err_t err = HF_OK;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    cr_assert_null(d);
    cr_assert_eq(err, HF_EINVAL);
    hf_dispatcher_keys_t k;
    cr_assert_eq(hf_dispatcher_keys_load("/nonexistent/cert", "/nonexistent/server", &k),
                 HF_EINVAL);
}

Test(security, the_aggregator_needs_keys_or_insecure, .timeout = 10)
{
    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    o.bind = "tcp://127.0.0.1:*";
    o.control = "tcp://127.0.0.1:*";
    char dir[] = "/tmp/hf-test-sec-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    o.data_dir = dir;
    hf_err_t err = HF_OK;
    hf_aggregator_t *a = hf_aggregator_open(&o, &err);
    cr_assert_null(a, "an aggregator opened with neither keys nor --insecure");
    cr_assert_eq(err, HF_EINVAL);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}
