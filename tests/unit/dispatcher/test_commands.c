/* Integration: operator commands through the whole path in one process.
 * A control client (REQ) -> aggregator (thread) -> COMMAND frame -> the
 * real dispatcher -> the engine's controller (thread, on hwsim) -> COMMAND
 * record through the spool -> aggregator commit -> reply to the client.
 * Loopback TCP, ports chosen by the kernel; every wait is bounded. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "hf_aggregator.h"
#include "hf_control.h"
#include "hf_dispatcher.h"
#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_store.h"
#include "hf_time.h"

static const char *k_method = "sample oven.temp,flow 100\n"
                              "set oven.setpoint 30\n"
                              "hold 30s\n";

typedef struct {
    hf_aggregator_t *agg;
    pthread_t thread;
    volatile sig_atomic_t stop;
    char data[64];
    char spool[64];
    char control[256];
} s_agg_t;

typedef struct {
    const char *endpoint;
    const char *spool;
    atomic_int stop;
    atomic_int mute;        /* take commands but never answer them */
    atomic_int ready;
    pthread_t thread;
} s_eng_t;

static void *
s_agg_main(void *arg)
{
    s_agg_t *a = arg;
    hf_aggregator_run(a->agg, &a->stop);
    return NULL;
}

static void
s_agg_start(s_agg_t *a)
{
    snprintf(a->data, sizeof a->data, "/tmp/hf-cmd-agg-XXXXXX");
    cr_assert_not_null(mkdtemp(a->data));
    snprintf(a->spool, sizeof a->spool, "/tmp/hf-cmd-spool-XXXXXX");
    cr_assert_not_null(mkdtemp(a->spool));
    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    o.insecure = true; /* plain: these tests are about the protocol; test_security.c covers CURVE */
    o.bind = "tcp://127.0.0.1:*";
    o.control = "tcp://127.0.0.1:*";
    o.data_dir = a->data;
    o.watchdog_ms = 1000;
    o.command_timeout_ms = 1500;
    hf_err_t err;
    a->agg = hf_aggregator_open(&o, &err);
    cr_assert_not_null(a->agg, "aggregator open: %s", hf_strerror(err));
    snprintf(a->control, sizeof a->control, "%s", hf_aggregator_control_endpoint(a->agg));
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

static void
s_cleanup(s_agg_t *a)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", a->data, a->spool);
    cr_assert_eq(system(cmd), 0);
}

/* The engine daemon's loop, in a thread: wait for a command until the
 * run's next deadline, tick. */
static void *
s_eng_main(void *arg)
{
    s_eng_t *e = arg;
    hf_hwsim_opts_t so = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&so, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hal.ops->open(hal.impl, hf_clock_mono_ns(), NULL);
    hf_dispatcher_opts_t d = hf_dispatcher_opts_default();
    d.engine_id = "eng-1";
    d.endpoint = e->endpoint;
    d.spool_dir = e->spool;
    d.durable = false;
    hf_dispatcher_t *disp = hf_dispatcher_open(&d, NULL);
    cr_assert_not_null(disp);
    hf_controller_t *ctl = hf_controller_new(&hal, hf_dispatcher_channel(disp), NULL, NULL);
    cr_assert_not_null(ctl);
    uint64_t held = 0;
    hf_command_t late;
    while (!atomic_load(&e->stop)) {
        hf_dispatcher_stats_t st;
        hf_dispatcher_stats(disp, &st);
        if (st.connected)
            atomic_store(&e->ready, 1);
        uint64_t now = hf_clock_mono_ns(), next = HF_RUN_NEVER;
        hf_controller_tick(ctl, now, &next);
        uint64_t cap = now + 20000000ull;
        hf_command_t cmd;
        if (hf_dispatcher_next_command(disp, next < cap ? next : cap, &cmd) != HF_OK)
            continue;
        if (atomic_load(&e->mute)) {
            if (!held) { /* keep the first one to answer after unmuting */
                late = cmd;
                late.body = NULL;
                late.body_len = 0;
                held = cmd.id;
            }
            continue;
        }
        if (held) {
            hf_controller_command(ctl, &late, hf_clock_mono_ns(), hf_clock_wall_ns());
            held = 0;
        }
        hf_controller_command(ctl, &cmd, hf_clock_mono_ns(), hf_clock_wall_ns());
    }
    hf_controller_abort(ctl, hf_clock_mono_ns());
    hf_channel_flush(hf_dispatcher_channel(disp));
    hf_dispatcher_drain(disp, 3000);
    hf_controller_destroy(&ctl);
    hf_dispatcher_close(&disp);
    hf_hwsim_destroy(&sim);
    return NULL;
}

static void
s_eng_start(s_eng_t *e, s_agg_t *a)
{
    memset(e, 0, sizeof *e);
    e->endpoint = hf_aggregator_endpoint(a->agg);
    e->spool = a->spool;
    cr_assert_eq(pthread_create(&e->thread, NULL, s_eng_main, e), 0);
    for (int i = 0; i < 500 && !atomic_load(&e->ready); i++)
        hf_sleep_until_ns(hf_clock_mono_ns() + 10000000ull);
    cr_assert(atomic_load(&e->ready), "engine never connected");
    /* the aggregator marks it available on HELLO; give the WELCOME a moment */
    hf_sleep_until_ns(hf_clock_mono_ns() + 100000000ull);
}

static void
s_eng_stop(s_eng_t *e)
{
    atomic_store(&e->stop, 1);
    pthread_join(e->thread, NULL);
}

/* ---- the client side ---------------------------------------------------- */

typedef struct {
    bool ok;
    char by[16];
    char err[32];
    char text[256];
    uint64_t id;
} s_reply_t;

static void
s_pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void *
s_req_send(void *ctx, const char *ep, const char *engine, const char *verb, const char *name,
           const char *body)
{
    void *req = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, tmo = 8000;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    cr_assert_eq(zmq_connect(req, ep), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + (name != NULL) + (body != NULL));
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "command");
    s_pk_str(&pk, "engine");
    s_pk_str(&pk, engine);
    s_pk_str(&pk, "verb");
    s_pk_str(&pk, verb);
    if (name) {
        s_pk_str(&pk, "name");
        s_pk_str(&pk, name);
    }
    if (body) {
        s_pk_str(&pk, "body");
        s_pk_str(&pk, body);
    }
    cr_assert_eq(zmq_send(req, sb.data, sb.size, 0), (int)sb.size);
    msgpack_sbuffer_destroy(&sb);
    return req;
}

static void
s_kv(const msgpack_object *m, const char *key, char *out, size_t cap, uint64_t *u)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(key) ||
            memcmp(kv->key.via.str.ptr, key, strlen(key)))
            continue;
        if (out && kv->val.type == MSGPACK_OBJECT_STR)
            snprintf(out, cap, "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
        if (u && kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            *u = kv->val.via.u64;
        if (u && kv->val.type == MSGPACK_OBJECT_BOOLEAN)
            *u = kv->val.via.boolean;
    }
}

static s_reply_t
s_req_recv(void *req)
{
    s_reply_t r;
    memset(&r, 0, sizeof r);
    char buf[4096];
    int n = zmq_recv(req, buf, sizeof buf, 0);
    cr_assert_gt(n, 0, "no reply to a command");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, buf, (size_t)n, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(u.data.type, MSGPACK_OBJECT_MAP);
    uint64_t ok = 0;
    s_kv(&u.data, "ok", NULL, 0, &ok);
    r.ok = ok != 0;
    s_kv(&u.data, "by", r.by, sizeof r.by, NULL);
    s_kv(&u.data, "err", r.err, sizeof r.err, NULL);
    s_kv(&u.data, r.ok ? "text" : "msg", r.text, sizeof r.text, NULL);
    s_kv(&u.data, "id", NULL, 0, &r.id);
    msgpack_unpacked_destroy(&u);
    zmq_close(req);
    return r;
}

static s_reply_t
s_command(void *ctx, s_agg_t *a, const char *engine, const char *verb, const char *name,
          const char *body)
{
    return s_req_recv(s_req_send(ctx, a->control, engine, verb, name, body));
}

typedef struct {
    uint64_t ids[64];
    int results[64];
    int n;
} s_cmdrecs_t;

static int
s_collect(const hf_store_export_rec_t *x, void *arg)
{
    s_cmdrecs_t *c = arg;
    if (x->rec.kind == HF_KIND_COMMAND && c->n < 64) {
        c->ids[c->n] = x->rec.u.command.id;
        c->results[c->n++] = x->rec.u.command.result;
    }
    return 0;
}

static s_cmdrecs_t
s_stored_commands(s_agg_t *a)
{
    s_cmdrecs_t c;
    memset(&c, 0, sizeof c);
    hf_store_t *st = hf_store_open(a->data, NULL, NULL);
    cr_assert_not_null(st);
    hf_store_export_opts_t eo;
    memset(&eo, 0, sizeof eo);
    eo.lane = HF_LANE_CONTROL;
    eo.max_records = 100000;
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    cr_assert_eq(hf_store_export(st, "eng-1", &eo, &pos, s_collect, &c, NULL, &done), HF_OK);
    hf_store_close(&st);
    return c;
}

Test(commands, start_pause_resume_abort_run_once_each_and_are_recorded, .timeout = 60)
{
    s_agg_t a;
    s_eng_t e;
    s_agg_start(&a);
    s_eng_start(&e, &a);
    void *ctx = zmq_ctx_new();
    s_reply_t r = s_command(ctx, &a, "eng-1", "start", "warm", k_method);
    cr_assert(r.ok, "start: %s %s", r.err, r.text);
    cr_assert_str_eq(r.by, "engine");
    cr_assert(strstr(r.text, "started"), "%s", r.text);
    uint64_t first = r.id;
    r = s_command(ctx, &a, "eng-1", "pause", NULL, NULL);
    cr_assert(r.ok, "pause: %s", r.text);
    r = s_command(ctx, &a, "eng-1", "pause", NULL, NULL);
    cr_assert_not(r.ok);
    cr_assert_str_eq(r.err, "HF_ESTATE");
    cr_assert_str_eq(r.by, "engine");
    r = s_command(ctx, &a, "eng-1", "resume", NULL, NULL);
    cr_assert(r.ok, "resume: %s", r.text);
    r = s_command(ctx, &a, "eng-1", "abort", NULL, NULL);
    cr_assert(r.ok, "abort: %s", r.text);
    cr_assert(strstr(r.text, "aborted"), "%s", r.text);
    uint64_t last = r.id;
    cr_assert_eq(last, first + 4, "ids are consecutive per store");
    r = s_command(ctx, &a, "nobody", "abort", NULL, NULL);
    cr_assert_not(r.ok);
    cr_assert_str_eq(r.err, "HF_ENOTFOUND");
    cr_assert_str_eq(r.by, "aggregator");
    r = s_command(ctx, &a, "eng-1", "dance", NULL, NULL);
    cr_assert_not(r.ok);
    cr_assert_str_eq(r.err, "HF_EINVAL");
    zmq_ctx_term(ctx);
    s_eng_stop(&e);
    s_agg_stop(&a);
    /* every command answered by the engine is in the store exactly once */
    s_cmdrecs_t c = s_stored_commands(&a);
    cr_assert_eq(c.n, 5, "COMMAND records stored: %d", c.n);
    for (int i = 0; i < c.n; i++)
        cr_assert_eq(c.ids[i], first + (uint64_t)i);
    cr_assert_eq(c.results[2], HF_ESTATE);
    s_cleanup(&a);
}

Test(commands, an_engine_gone_is_refused_at_once_and_nothing_is_kept, .timeout = 60)
{
    s_agg_t a;
    s_eng_t e;
    s_agg_start(&a);
    s_eng_start(&e, &a);
    s_eng_stop(&e); /* clean shutdown: BYE */
    void *ctx = zmq_ctx_new();
    uint64_t t0 = hf_clock_mono_ms();
    s_reply_t r = s_command(ctx, &a, "eng-1", "abort", NULL, NULL);
    cr_assert_lt(hf_clock_mono_ms() - t0, 1000, "refusal must be immediate");
    cr_assert_not(r.ok);
    cr_assert_str_eq(r.err, "HF_EUNAVAIL");
    cr_assert(strstr(r.text, "unavailable"), "%s", r.text);
    /* the engine comes back: the refused abort never reaches it */
    s_eng_start(&e, &a);
    r = s_command(ctx, &a, "eng-1", "start", "warm", k_method);
    cr_assert(r.ok, "%s", r.text);
    zmq_ctx_term(ctx);
    s_eng_stop(&e);
    s_agg_stop(&a);
    s_cmdrecs_t c = s_stored_commands(&a);
    cr_assert_eq(c.n, 1, "only the start reached the engine");
    s_cleanup(&a);
}

Test(commands, no_answer_is_unknown_abort_supersedes_and_a_late_answer_is_kept, .timeout = 60)
{
    s_agg_t a;
    s_eng_t e;
    s_agg_start(&a);
    s_eng_start(&e, &a);
    void *ctx = zmq_ctx_new();
    s_reply_t r = s_command(ctx, &a, "eng-1", "start", "warm", k_method);
    cr_assert(r.ok, "%s", r.text);
    atomic_store(&e.mute, 1);
    /* a pause the engine takes but does not answer; a resume and a set wait */
    void *q1 = s_req_send(ctx, a.control, "eng-1", "pause", NULL, NULL);
    hf_sleep_until_ns(hf_clock_mono_ns() + 100000000ull);
    void *q2 = s_req_send(ctx, a.control, "eng-1", "resume", NULL, NULL);
    void *q3 = s_req_send(ctx, a.control, "eng-1", "set", "oven.setpoint", NULL);
    hf_sleep_until_ns(hf_clock_mono_ns() + 100000000ull);
    void *q4 = s_req_send(ctx, a.control, "eng-1", "abort", NULL, NULL);
    s_reply_t r2 = s_req_recv(q2), r3 = s_req_recv(q3);
    cr_assert_str_eq(r2.err, "HF_ESUPERSEDED");
    cr_assert_str_eq(r3.err, "HF_ESUPERSEDED");
    s_reply_t r1 = s_req_recv(q1); /* after the aggregator's 1.5 s */
    cr_assert_str_eq(r1.err, "HF_EUNKNOWN", "%s", r1.text);
    /* the abort went out when the timeout freed the slot; still unanswered */
    s_reply_t r4 = s_req_recv(q4);
    cr_assert_str_eq(r4.err, "HF_EUNKNOWN", "%s", r4.text);
    atomic_store(&e.mute, 0);
    /* the engine, answering again, first answers the pause late, then this */
    r = s_command(ctx, &a, "eng-1", "abort", NULL, NULL);
    cr_assert(r.ok, "%s %s", r.err, r.text);
    zmq_ctx_term(ctx);
    s_eng_stop(&e);
    s_agg_stop(&a);
    /* the late answer to the pause is stored: an operator can find out */
    s_cmdrecs_t c = s_stored_commands(&a);
    bool pause_stored = false;
    for (int i = 0; i < c.n; i++)
        pause_stored |= c.ids[i] == r1.id;
    cr_assert(pause_stored, "late answer to command %llu not stored",
              (unsigned long long)r1.id);
    s_cleanup(&a);
}
