/* test_supervisor.c - unit tests of hf_restart_window_t (pure) and
 * hf_supervisor_t (threads).
 *
 * The window tests run on a simulated clock. The supervisor tests use real
 * threads but never a fixed sleep: tasks and the log sink post events to a
 * monitor (mutex + condition variable + generation counter) and the tests
 * wait for a predicate with a bounded deadline (S_WAIT_MS). Tasks block in
 * hf_task_wait_stop, so nothing spins. The log level is DEBUG so every
 * supervisor decision wakes the waiters.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "hf_log.h"
#include "hf_supervisor.h"
#include "hf_time.h"

#define S_WAIT_MS 5000 /* bound on any wait for a thread to act */
#define S_MAX_EVENTS 128

/* ---- monitor ---------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t gen;                    /* bumped on every event           */
    char events[S_MAX_EVENTS][48];   /* "start:a", "exit:b" in order    */
    int n_events;
    int escalations;                 /* escalation hook calls           */
    hf_supervisor_escalation_t esc;  /* last one, strings copied below  */
    char esc_sup[HF_SUPERVISOR_NAME_MAX];
    char esc_task[HF_SUPERVISOR_NAME_MAX];
    char esc_reason[HF_SUPERVISOR_REASON_MAX];
    char sup_events[S_MAX_EVENTS][48]; /* from the supervisor's log lines:
                                          "start:a", "stop:c", "restart:b" */
    int n_sup_events;
} s_mon_t;

static s_mon_t s_mon = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void
s_bump_locked(void)
{
    s_mon.gen++;
    pthread_cond_broadcast(&s_mon.cond);
}

static void
s_event(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
s_event(const char *fmt, ...)
{
    pthread_mutex_lock(&s_mon.mu);
    if (s_mon.n_events < S_MAX_EVENTS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s_mon.events[s_mon.n_events], sizeof s_mon.events[0], fmt, ap);
        va_end(ap);
        s_mon.n_events++;
    }
    s_bump_locked();
    pthread_mutex_unlock(&s_mon.mu);
}

/* Task threads race each other, so the order in which the supervisor acts
 * is read from its own log lines ("... task=b started ..."), which it
 * writes under its lock. */
static void
s_sink(hf_log_level_t lvl, const char *component, const char *msg, void *arg)
{
    (void)lvl, (void)component, (void)arg;
    static const char *const verbs[] = {"started", "stopped", "restarting"};
    static const char *const tags[] = {"start", "stop", "restart"};
    const char *t = strstr(msg, "task=");
    pthread_mutex_lock(&s_mon.mu);
    if (t && s_mon.n_sup_events < S_MAX_EVENTS) {
        t += 5;
        size_t len = strcspn(t, " ");
        for (size_t i = 0; i < 3; i++) {
            size_t vlen = strlen(verbs[i]);
            if (strncmp(t + len, " ", 1) == 0 && strncmp(t + len + 1, verbs[i], vlen) == 0) {
                snprintf(s_mon.sup_events[s_mon.n_sup_events++], sizeof s_mon.sup_events[0],
                         "%s:%.*s", tags[i], (int)len, t);
                break;
            }
        }
    }
    s_bump_locked();
    pthread_mutex_unlock(&s_mon.mu);
}

static void
s_on_escalate(const hf_supervisor_escalation_t *info, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&s_mon.mu);
    s_mon.esc = *info;
    snprintf(s_mon.esc_sup, sizeof s_mon.esc_sup, "%s", info->supervisor);
    snprintf(s_mon.esc_task, sizeof s_mon.esc_task, "%s", info->task);
    snprintf(s_mon.esc_reason, sizeof s_mon.esc_reason, "%s", info->reason);
    s_mon.escalations++;
    s_bump_locked();
    pthread_mutex_unlock(&s_mon.mu);
}

typedef bool(s_pred_fn)(const void *arg);

/* True once pred holds; false after timeout_ms. pred runs without the
 * monitor lock (it may take supervisor locks, which the log sink nests
 * outside the monitor's). */
static bool
s_eventually(s_pred_fn *pred, const void *arg, hf_ms_t timeout_ms)
{
    hf_ms_t deadline = hf_clock_mono_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&s_mon.mu);
        uint64_t gen = s_mon.gen;
        pthread_mutex_unlock(&s_mon.mu);
        if (pred(arg))
            return true;
        hf_ms_t now = hf_clock_mono_ms();
        if (now >= deadline)
            return false;
        /* Wake on the next event; the 20 ms cap covers changes that
         * happen between pred() and the wait without an event of their own. */
        hf_ms_t until = deadline < now + 20 ? deadline : now + 20;
        uint64_t ns = hf_clock_wall_ns() + (until - now) * 1000000ull;
        struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                              .tv_nsec = (long)(ns % 1000000000ull)};
        pthread_mutex_lock(&s_mon.mu);
        while (s_mon.gen == gen && pthread_cond_timedwait(&s_mon.cond, &s_mon.mu, &ts) == 0) {
        }
        pthread_mutex_unlock(&s_mon.mu);
    }
}

static void
s_setup(void)
{
    hf_log_set_sink(s_sink, NULL);
    hf_log_set_level(HF_LOG_DEBUG);
}

static int
s_n_events(void)
{
    pthread_mutex_lock(&s_mon.mu);
    int n = s_mon.n_events;
    pthread_mutex_unlock(&s_mon.mu);
    return n;
}

static const char *
s_event_at(int i)
{
    return s_mon.events[i]; /* read after the writers are done or stable */
}

static int
s_n_sup_events(void)
{
    pthread_mutex_lock(&s_mon.mu);
    int n = s_mon.n_sup_events;
    pthread_mutex_unlock(&s_mon.mu);
    return n;
}

static const char *
s_sup_event_at(int i)
{
    return s_mon.sup_events[i];
}

static bool
s_sup_events_at_least(const void *arg)
{
    return s_n_sup_events() >= *(const int *)arg;
}

static void
s_wait_sup_events(int n)
{
    cr_assert(s_eventually(s_sup_events_at_least, &n, S_WAIT_MS), "only %d of %d sup events",
              s_n_sup_events(), n);
}

static bool
s_events_at_least(const void *arg)
{
    return s_n_events() >= *(const int *)arg;
}

static void
s_wait_events(int n)
{
    cr_assert(s_eventually(s_events_at_least, &n, S_WAIT_MS), "only %d of %d events",
              s_n_events(), n);
}

static bool
s_escalated(const void *arg)
{
    pthread_mutex_lock(&s_mon.mu);
    bool ok = s_mon.escalations >= *(const int *)arg;
    pthread_mutex_unlock(&s_mon.mu);
    return ok;
}

/* ---- durable state and tasks --------------------------------------------- */

/* What a task keeps "durably" across incarnations: the test owns it. */
typedef struct {
    atomic_int value;  /* progress, survives restarts          */
    atomic_int starts; /* incarnations started                 */
    int fail_at;       /* first incarnation fails at this value */
    int done_at;       /* return HF_OK when value reaches it    */
    int fail_starts;   /* fail immediately while starts <= this */
    atomic_bool release; /* lets the stubborn task return        */
} s_work_t;

static hf_err_t
s_counter_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    int start = atomic_fetch_add(&w->starts, 1) + 1;
    s_event("start:%s", hf_task_name(ctx));
    hf_err_t rc = HF_OK;
    /* Known-good state: resume from the durable value, not from zero. */
    while (!hf_task_should_stop(ctx)) {
        int v = atomic_fetch_add(&w->value, 1) + 1;
        if (start == 1 && v == w->fail_at) {
            rc = hf_task_fail(ctx, HF_EIO, "boom at %d", v);
            break;
        }
        if (w->done_at && v >= w->done_at)
            break;
        hf_task_wait_stop(ctx, 1);
    }
    s_event("exit:%s", hf_task_name(ctx));
    return rc;
}

static hf_err_t
s_idle_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    int start = atomic_fetch_add(&w->starts, 1) + 1;
    s_event("start:%s", hf_task_name(ctx));
    if (start <= w->fail_starts) {
        s_event("exit:%s", hf_task_name(ctx));
        return hf_task_fail(ctx, HF_EIO, "start %d fails", start);
    }
    while (!hf_task_wait_stop(ctx, HF_MS_NEVER)) {
    }
    s_event("exit:%s", hf_task_name(ctx));
    return HF_OK; /* an injected fault still counts: should_stop marked it */
}

static hf_err_t
s_ok_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    atomic_fetch_add(&w->starts, 1);
    s_event("start:%s", hf_task_name(ctx));
    return HF_OK;
}

static hf_err_t
s_fail_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    atomic_fetch_add(&w->starts, 1);
    s_event("start:%s", hf_task_name(ctx));
    return hf_task_fail(ctx, HF_EIO, "always");
}

/* Returns HF_OK on its first start and idles on the later ones. */
static hf_err_t
s_once_ok_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    int start = atomic_fetch_add(&w->starts, 1) + 1;
    s_event("start:%s", hf_task_name(ctx));
    if (start == 1)
        return HF_OK;
    while (!hf_task_wait_stop(ctx, HF_MS_NEVER)) {
    }
    return HF_OK;
}

static hf_err_t
s_checkpoint_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    atomic_fetch_add(&w->starts, 1);
    s_event("start:%s", hf_task_name(ctx));
    hf_err_t rc;
    while ((rc = hf_task_checkpoint(ctx)) == HF_OK) {
        atomic_fetch_add(&w->value, 1);
        hf_task_wait_stop(ctx, 5);
    }
    s_event("exit:%s", hf_task_name(ctx));
    return rc == HF_ECLOSED ? HF_OK : rc;
}

/* Ignores the stop request until the test releases it. */
static hf_err_t
s_stubborn_task(hf_task_ctx_t *ctx, void *arg)
{
    s_work_t *w = arg;
    atomic_fetch_add(&w->starts, 1);
    s_event("start:%s", hf_task_name(ctx));
    pthread_mutex_lock(&s_mon.mu);
    while (!atomic_load(&w->release))
        pthread_cond_wait(&s_mon.cond, &s_mon.mu);
    pthread_mutex_unlock(&s_mon.mu);
    s_event("exit:%s", hf_task_name(ctx));
    return HF_OK;
}

/* ---- supervisor helpers --------------------------------------------------- */

static hf_supervisor_t *
s_new(const char *name, hf_supervisor_strategy_t strategy, uint32_t max_restarts)
{
    hf_supervisor_opts_t o = hf_supervisor_opts_default();
    o.strategy = strategy;
    o.max_restarts = max_restarts;
    o.on_escalate = s_on_escalate;
    hf_err_t err = HF_EIO;
    hf_supervisor_t *sup = hf_supervisor_new(name, &o, &err);
    cr_assert_not_null(sup);
    cr_assert_eq(err, HF_OK);
    return sup;
}

static void
s_add(hf_supervisor_t *sup, const char *name, hf_task_fn *run, s_work_t *w,
      hf_task_restart_t restart)
{
    hf_child_spec_t spec = {.name = name, .run = run, .arg = w, .restart = restart,
                            .shutdown_ms = 2000};
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_OK, "add %s", name);
}

static const hf_child_stats_t *
s_child(const hf_supervisor_stats_t *st, const char *name)
{
    for (size_t i = 0; i < st->n_children; i++) {
        if (strcmp(st->children[i].name, name) == 0)
            return &st->children[i];
    }
    cr_assert_fail("no child %s", name);
    return NULL;
}

typedef struct {
    hf_supervisor_t *sup;
    const char *name;
    hf_child_state_t state; /* wanted state                      */
    uint32_t restarts;      /* and at least this many restarts   */
} s_child_cond_t;

static bool
s_child_reached(const void *arg)
{
    const s_child_cond_t *c = arg;
    hf_supervisor_stats_t st;
    hf_supervisor_stats(c->sup, &st);
    for (size_t i = 0; i < st.n_children; i++) {
        if (strcmp(st.children[i].name, c->name) == 0)
            return st.children[i].state == c->state && st.children[i].restarts >= c->restarts;
    }
    return false;
}

static void
s_wait_child(hf_supervisor_t *sup, const char *name, hf_child_state_t state, uint32_t restarts)
{
    s_child_cond_t c = {sup, name, state, restarts};
    cr_assert(s_eventually(s_child_reached, &c, S_WAIT_MS), "child %s never reached %s/%u",
              name, hf_child_state_name(state), restarts);
}

typedef struct {
    atomic_int *counter;
    int at_least;
} s_count_cond_t;

static bool
s_count_reached(const void *arg)
{
    const s_count_cond_t *c = arg;
    return atomic_load(c->counter) >= c->at_least;
}

static void
s_wait_count(atomic_int *counter, int at_least)
{
    s_count_cond_t c = {counter, at_least};
    cr_assert(s_eventually(s_count_reached, &c, S_WAIT_MS), "counter %d < %d",
              atomic_load(counter), at_least);
}

/* ---- pure window ------------------------------------------------------------ */

Test(restart_window, allows_r_restarts_then_escalates, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 3, 1000), HF_OK);
    for (hf_ms_t t = 0; t < 3; t++)
        cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_EIO, t), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_count(&w, 3), 3);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_EIO, 3),
                 HF_RESTART_ESCALATE);
}

Test(restart_window, failures_spaced_wider_than_period_never_escalate, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 1, 60000), HF_OK);
    hf_ms_t t = 5000;
    for (int i = 0; i < 1000; i++, t += 60000)
        cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_EIO, t), HF_RESTART_NOW,
                     "failure %d at t=%llu", i, (unsigned long long)t);
    /* One ms short of the period: the previous restart still counts. */
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_EIO, t - 60000 + 59999),
                 HF_RESTART_ESCALATE);
}

Test(restart_window, old_restarts_slide_out_of_the_window, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 2, 1000), HF_OK);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 0), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 600), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_count(&w, 999), 2);
    cr_assert_eq(hf_restart_window_count(&w, 1000), 1);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 1000), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 1500),
                 HF_RESTART_ESCALATE);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 1600), HF_RESTART_NOW);
}

Test(restart_window, verdict_follows_restart_type, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 10, 1000), HF_OK);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_OK, 0), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_EIO, 0), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_OK, 0), HF_RESTART_NONE);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_EIO, 0), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TEMPORARY, HF_OK, 0), HF_RESTART_NONE);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TEMPORARY, HF_EIO, 0), HF_RESTART_NONE);
    cr_assert_eq(hf_restart_window_count(&w, 0), 3, "NONE verdicts are not counted");
}

Test(restart_window, zero_intensity_escalates_on_first_restart, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 0, 1000), HF_OK);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_OK, 0), HF_RESTART_NONE);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_TRANSIENT, HF_EIO, 0),
                 HF_RESTART_ESCALATE);
}

Test(restart_window, clock_going_backwards_counts_as_no_time, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, 1, 1000), HF_OK);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_EIO, 5000), HF_RESTART_NOW);
    cr_assert_eq(hf_restart_window_on_exit(&w, HF_TASK_PERMANENT, HF_EIO, 10),
                 HF_RESTART_ESCALATE);
}

Test(restart_window, bad_limits_are_refused, .timeout = 10)
{
    hf_restart_window_t w;
    cr_assert_eq(hf_restart_window_init(&w, HF_RESTART_WINDOW_MAX + 1, 1000), HF_EINVAL);
    cr_assert_eq(hf_restart_window_init(&w, 1, 0), HF_EINVAL);
    cr_assert_eq(hf_restart_window_init(&w, HF_RESTART_WINDOW_MAX, 1), HF_OK);
}

/* ---- supervisor: restart types ---------------------------------------------- */

TestSuite(supervisor, .init = s_setup);

Test(supervisor, failing_task_restarts_and_resumes_from_durable_state, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {.fail_at = 5, .done_at = 10};
    s_add(sup, "counter", s_counter_task, &w, HF_TASK_TRANSIENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_child(sup, "counter", HF_CHILD_DONE, 1);

    cr_assert_eq(atomic_load(&w.value), 10, "work continued from 5, not from 0");
    cr_assert_eq(atomic_load(&w.starts), 2);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    const hf_child_stats_t *c = s_child(&st, "counter");
    cr_assert_eq(c->restarts, 1);
    cr_assert_eq(c->last_err, HF_EIO);
    cr_assert_str_eq(c->last_reason, "boom at 5");
    cr_assert_eq(st.restarts, 1);
    cr_assert_eq(st.restarts_in_window, 1);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_destroy(&sup);
    cr_assert_null(sup);
}

Test(supervisor, transient_task_returning_ok_is_not_restarted, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    s_add(sup, "oneshot", s_ok_task, &w, HF_TASK_TRANSIENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_child(sup, "oneshot", HF_CHILD_DONE, 0);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    cr_assert_eq(atomic_load(&w.starts), 1);
    uint32_t restarts = 99;
    cr_assert_eq(hf_supervisor_child_restarts(sup, "oneshot", &restarts), HF_OK);
    cr_assert_eq(restarts, 0);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, temporary_task_is_never_restarted, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    s_add(sup, "temp", s_fail_task, &w, HF_TASK_TEMPORARY);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_child(sup, "temp", HF_CHILD_DONE, 0);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "temp")->restarts, 0);
    cr_assert_eq(s_child(&st, "temp")->last_err, HF_EIO, "the failure is still reported");
    cr_assert_eq(atomic_load(&w.starts), 1);
    cr_assert_eq(st.state, HF_SUPERVISOR_STOPPED);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, permanent_task_is_restarted_after_a_normal_exit, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    s_add(sup, "perm", s_once_ok_task, &w, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_child(sup, "perm", HF_CHILD_RUNNING, 1);
    s_wait_count(&w.starts, 2);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "perm")->last_err, HF_OK);
    cr_assert_eq(s_child(&st, "perm")->state, HF_CHILD_STOPPED);
    hf_supervisor_destroy(&sup);
}

/* ---- supervisor: intensity and escalation ----------------------------------- */

Test(supervisor, more_than_r_failures_in_p_escalate_and_stop_all_children, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 3);
    s_work_t bystander = {0}, flaky = {0};
    s_add(sup, "bystander", s_idle_task, &bystander, HF_TASK_PERMANENT);
    s_add(sup, "flaky", s_fail_task, &flaky, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    int one = 1;
    cr_assert(s_eventually(s_escalated, &one, S_WAIT_MS), "no escalation");

    cr_assert_eq(atomic_load(&flaky.starts), 4, "R=3 restarts, the 4th failure escalates");
    cr_assert_str_eq(s_mon.esc_sup, "root");
    cr_assert_str_eq(s_mon.esc_task, "flaky");
    cr_assert_str_eq(s_mon.esc_reason, "always");
    cr_assert_eq(s_mon.esc.err, HF_EIO);
    cr_assert_eq(s_mon.esc.restarts, 3);
    cr_assert_eq(s_mon.esc.period_ms, HF_SUPERVISOR_DEFAULT_PERIOD_MS);
    cr_assert_eq(s_mon.esc.exit_code, HF_SUPERVISOR_EXIT_CODE);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(st.state, HF_SUPERVISOR_ESCALATED);
    cr_assert_eq(st.escalations, 1);
    cr_assert_eq(s_child(&st, "bystander")->state, HF_CHILD_STOPPED);
    cr_assert_eq(s_child(&st, "flaky")->restarts, 3);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    cr_assert_eq(s_mon.escalations, 1);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, default_escalation_exits_the_process_non_zero,
     .timeout = 10, .exit_code = HF_SUPERVISOR_EXIT_CODE)
{
    hf_supervisor_opts_t o = hf_supervisor_opts_default();
    o.max_restarts = 0;
    hf_supervisor_t *sup = hf_supervisor_new("root", &o, NULL);
    cr_assert_not_null(sup);
    s_work_t w = {0};
    s_add(sup, "doomed", s_fail_task, &w, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    int never = 1000;
    s_eventually(s_events_at_least, &never, S_WAIT_MS);
    cr_assert_fail("the process should have exited");
}

/* ---- supervisor: strategies ------------------------------------------------- */

static void
s_three_idle(hf_supervisor_t *sup, s_work_t w[3])
{
    s_add(sup, "a", s_idle_task, &w[0], HF_TASK_PERMANENT);
    s_add(sup, "b", s_idle_task, &w[1], HF_TASK_PERMANENT);
    s_add(sup, "c", s_idle_task, &w[2], HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_events(3);
    s_wait_sup_events(3);
    cr_assert_str_eq(s_sup_event_at(0), "start:a");
    cr_assert_str_eq(s_sup_event_at(1), "start:b");
    cr_assert_str_eq(s_sup_event_at(2), "start:c");
}

Test(supervisor, rest_for_one_restarts_the_later_siblings_in_order, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_REST_FOR_ONE, 10);
    s_work_t w[3] = {0};
    s_three_idle(sup, w);
    cr_assert_eq(hf_supervisor_inject_fault(sup, "b"), HF_OK);
    s_wait_events(7);
    s_wait_sup_events(8);
    s_wait_child(sup, "c", HF_CHILD_RUNNING, 1);

    cr_assert_str_eq(s_event_at(3), "exit:b");
    cr_assert_str_eq(s_event_at(4), "exit:c", "c is stopped before b restarts");
    cr_assert_str_eq(s_sup_event_at(3), "restart:b");
    cr_assert_str_eq(s_sup_event_at(4), "stop:c");
    cr_assert_str_eq(s_sup_event_at(5), "restart:c");
    cr_assert_str_eq(s_sup_event_at(6), "start:b", "then b and c start in order");
    cr_assert_str_eq(s_sup_event_at(7), "start:c");
    cr_assert_eq(s_n_sup_events(), 8);
    cr_assert_eq(atomic_load(&w[0].starts), 1, "a is before b: untouched");
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "b")->restarts, 1);
    cr_assert_eq(s_child(&st, "b")->last_err, HF_EIO);
    cr_assert_str_eq(s_child(&st, "b")->last_reason, "injected fault");
    cr_assert_eq(s_child(&st, "c")->restarts, 1);
    cr_assert_eq(s_child(&st, "a")->restarts, 0);
    cr_assert_eq(st.restarts, 1, "one restart decision");
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, one_for_one_leaves_the_siblings_alone, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w[3] = {0};
    s_three_idle(sup, w);
    cr_assert_eq(hf_supervisor_inject_fault(sup, "b"), HF_OK);
    s_wait_child(sup, "b", HF_CHILD_RUNNING, 1);
    s_wait_count(&w[1].starts, 2);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    cr_assert_str_eq(s_event_at(3), "exit:b");
    cr_assert_str_eq(s_event_at(4), "start:b");
    cr_assert_str_eq(s_sup_event_at(3), "restart:b");
    cr_assert_str_eq(s_sup_event_at(4), "start:b");
    cr_assert_eq(atomic_load(&w[0].starts), 1);
    cr_assert_eq(atomic_load(&w[2].starts), 1);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "c")->restarts, 0);
    hf_supervisor_destroy(&sup);
}

/* ---- supervisor: nesting ----------------------------------------------------- */

Test(supervisor, nested_escalation_is_a_failure_of_that_child, .timeout = 10)
{
    hf_supervisor_t *root = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 5);
    hf_supervisor_t *inner = s_new("inner", HF_SUPERVISOR_ONE_FOR_ONE, 1);
    s_work_t worker = {.fail_starts = 2}, sib = {0}, top = {0};
    s_add(inner, "worker", s_idle_task, &worker, HF_TASK_PERMANENT);
    s_add(inner, "sib", s_idle_task, &sib, HF_TASK_PERMANENT);
    s_add(root, "top", s_idle_task, &top, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_add_supervisor(root, &inner, HF_TASK_PERMANENT, 0), HF_OK);
    cr_assert_null(inner, "root owns it now");
    cr_assert_eq(hf_supervisor_start(root), HF_OK);

    /* worker fails twice: inner (R=1) gives up, root restarts inner, whose
     * fresh window lets the third worker start run. */
    s_wait_count(&worker.starts, 3);
    s_wait_child(root, "inner", HF_CHILD_RUNNING, 1);
    s_wait_count(&sib.starts, 2);
    s_wait_count(&top.starts, 1);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(root, &st);
    const hf_child_stats_t *c = s_child(&st, "inner");
    cr_assert(c->is_supervisor);
    cr_assert_eq(c->restarts, 1);
    cr_assert_eq(c->last_err, HF_EIO);
    cr_assert(strstr(c->last_reason, "task=worker"), "reason: %s", c->last_reason);
    cr_assert_eq(st.escalations, 0, "root handled it");
    cr_assert_eq(s_mon.escalations, 0, "root never called its hook");
    cr_assert_eq(atomic_load(&top.starts), 1, "one_for_one: top untouched");
    uint32_t restarts = 0;
    cr_assert_eq(hf_supervisor_child_restarts(root, "worker", &restarts), HF_OK);
    cr_assert_eq(restarts, 1, "restarted once by inner before it gave up");

    cr_assert_eq(hf_supervisor_stop(root), HF_OK);
    hf_supervisor_destroy(&root);
}

Test(supervisor, fault_hook_reaches_grandchildren_and_child_supervisors, .timeout = 10)
{
    hf_supervisor_t *root = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    hf_supervisor_t *inner = s_new("inner", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t leaf = {0};
    s_add(inner, "leaf", s_idle_task, &leaf, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_add_supervisor(root, &inner, HF_TASK_PERMANENT, 0), HF_OK);
    cr_assert_eq(hf_supervisor_start(root), HF_OK);
    s_wait_count(&leaf.starts, 1);

    cr_assert_eq(hf_supervisor_inject_fault(root, "leaf"), HF_OK);
    s_wait_count(&leaf.starts, 2);
    uint32_t restarts = 0;
    cr_assert_eq(hf_supervisor_child_restarts(root, "leaf", &restarts), HF_OK);
    cr_assert_eq(restarts, 1);

    cr_assert_eq(hf_supervisor_inject_fault(root, "inner"), HF_OK);
    s_wait_child(root, "inner", HF_CHILD_RUNNING, 1);
    s_wait_count(&leaf.starts, 3);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(root, &st);
    cr_assert_eq(s_child(&st, "inner")->last_err, HF_EIO);
    cr_assert_str_eq(s_child(&st, "inner")->last_reason, "injected fault");

    cr_assert_eq(hf_supervisor_inject_fault(root, "nobody"), HF_ENOTFOUND);
    cr_assert_eq(hf_supervisor_child_restarts(root, "nobody", &restarts), HF_ENOTFOUND);
    cr_assert_eq(hf_supervisor_stop(root), HF_OK);
    hf_supervisor_destroy(&root);
}

/* ---- supervisor: fault hook, backoff, shutdown -------------------------------- */

Test(supervisor, checkpoint_reports_an_injected_fault_then_stop, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    s_add(sup, "loop", s_checkpoint_task, &w, HF_TASK_TRANSIENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_count(&w.value, 2);
    cr_assert_eq(hf_supervisor_inject_fault(sup, "loop"), HF_OK);
    s_wait_count(&w.starts, 2);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "loop")->restarts, 1);
    cr_assert_eq(s_child(&st, "loop")->last_err, HF_EIO);
    cr_assert_eq(s_child(&st, "loop")->state, HF_CHILD_STOPPED,
                 "HF_ECLOSED at stop is a clean exit");
    hf_supervisor_destroy(&sup);
}

Test(supervisor, restart_waits_for_the_backoff, .timeout = 10)
{
    hf_supervisor_opts_t o = hf_supervisor_opts_default();
    o.backoff_ms = 100;
    o.on_escalate = s_on_escalate;
    hf_supervisor_t *sup = hf_supervisor_new("root", &o, NULL);
    cr_assert_not_null(sup);
    s_work_t w = {.fail_at = 1};
    s_add(sup, "slow", s_counter_task, &w, HF_TASK_PERMANENT);
    hf_ms_t t0 = hf_clock_mono_ms();
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_count(&w.starts, 2);
    /* A lower bound only: it cannot flake on a slow machine. */
    cr_assert_geq(hf_clock_mono_ms() - t0, 100);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, stop_during_backoff_does_not_wait_for_it, .timeout = 10)
{
    hf_supervisor_opts_t o = hf_supervisor_opts_default();
    o.backoff_ms = 600000;
    o.on_escalate = s_on_escalate;
    hf_supervisor_t *sup = hf_supervisor_new("root", &o, NULL);
    cr_assert_not_null(sup);
    s_work_t w = {0};
    s_add(sup, "flaky", s_fail_task, &w, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_child(sup, "flaky", HF_CHILD_PENDING, 1);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "flaky")->state, HF_CHILD_STOPPED);
    cr_assert_eq(atomic_load(&w.starts), 1);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, shutdown_stops_children_in_reverse_order, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_REST_FOR_ONE, 10);
    s_work_t w[4] = {0};
    s_add(sup, "a", s_idle_task, &w[0], HF_TASK_PERMANENT);
    s_add(sup, "b", s_counter_task, &w[1], HF_TASK_PERMANENT);
    s_add(sup, "c", s_idle_task, &w[2], HF_TASK_TRANSIENT);
    s_add(sup, "d", s_checkpoint_task, &w[3], HF_TASK_TEMPORARY);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_events(4);
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK);
    cr_assert_eq(s_n_events(), 8);
    cr_assert_str_eq(s_event_at(4), "exit:d");
    cr_assert_str_eq(s_event_at(5), "exit:c");
    cr_assert_str_eq(s_event_at(6), "exit:b");
    cr_assert_str_eq(s_event_at(7), "exit:a");
    cr_assert_eq(s_n_sup_events(), 8);
    cr_assert_str_eq(s_sup_event_at(4), "stop:d");
    cr_assert_str_eq(s_sup_event_at(7), "stop:a");
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(st.state, HF_SUPERVISOR_STOPPED);
    for (size_t i = 0; i < st.n_children; i++) {
        cr_assert_eq(st.children[i].state, HF_CHILD_STOPPED, "%s", st.children[i].name);
        cr_assert_eq(st.children[i].restarts, 0, "%s", st.children[i].name);
    }
    cr_assert_eq(hf_supervisor_stop(sup), HF_OK, "idempotent");
    hf_supervisor_destroy(&sup);
    hf_supervisor_destroy(&sup);
}

Test(supervisor, a_task_ignoring_stop_is_abandoned_after_its_timeout, .timeout = 10)
{
    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t first = {0}, mule = {0};
    s_add(sup, "first", s_idle_task, &first, HF_TASK_PERMANENT);
    hf_child_spec_t spec = {.name = "mule", .run = s_stubborn_task, .arg = &mule,
                            .shutdown_ms = 50};
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_OK);
    cr_assert_eq(hf_supervisor_start(sup), HF_OK);
    s_wait_events(2);
    cr_assert_eq(hf_supervisor_stop(sup), HF_ETIMEDOUT);
    hf_supervisor_stats_t st;
    hf_supervisor_stats(sup, &st);
    cr_assert_eq(s_child(&st, "mule")->state, HF_CHILD_ABANDONED);
    cr_assert_eq(s_child(&st, "first")->state, HF_CHILD_STOPPED, "the others still stop");

    pthread_mutex_lock(&s_mon.mu);
    atomic_store(&mule.release, true);
    pthread_cond_broadcast(&s_mon.cond);
    pthread_mutex_unlock(&s_mon.mu);
    hf_supervisor_destroy(&sup); /* joins the released thread: no leak */
    cr_assert_null(sup);
}

/* ---- supervisor: construction --------------------------------------------------- */

Test(supervisor, bad_options_and_specs_are_refused, .timeout = 10)
{
    hf_err_t err = HF_OK;
    hf_supervisor_opts_t o = hf_supervisor_opts_default();
    o.period_ms = 0;
    cr_assert_null(hf_supervisor_new("x", &o, &err));
    cr_assert_eq(err, HF_EINVAL);
    o = hf_supervisor_opts_default();
    o.max_restarts = HF_RESTART_WINDOW_MAX + 1;
    cr_assert_null(hf_supervisor_new("x", &o, &err));
    cr_assert_eq(err, HF_EINVAL);
    cr_assert_null(hf_supervisor_new("", NULL, &err));
    cr_assert_eq(err, HF_EINVAL);
    cr_assert_null(hf_supervisor_new("a-name-that-is-much-too-long-to-fit", NULL, &err));
    cr_assert_eq(err, HF_EINVAL);

    hf_supervisor_t *sup = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    hf_child_spec_t spec = {.name = "t", .run = NULL, .arg = &w};
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_EINVAL);
    spec.run = s_idle_task;
    spec.restart = (hf_task_restart_t)7;
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_EINVAL);
    spec.restart = HF_TASK_PERMANENT;
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_OK);
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_EINVAL, "duplicate name");
    for (int i = 1; i < HF_SUPERVISOR_MAX_CHILDREN; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        spec.name = name;
        cr_assert_eq(hf_supervisor_add(sup, &spec), HF_OK);
    }
    spec.name = "one-too-many";
    cr_assert_eq(hf_supervisor_add(sup, &spec), HF_EFULL);
    cr_assert_eq(hf_supervisor_stop(sup), HF_ESTATE, "never started");
    hf_supervisor_destroy(&sup);
}

Test(supervisor, tree_is_fixed_once_started, .timeout = 10)
{
    hf_supervisor_t *root = s_new("root", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    hf_supervisor_t *inner = s_new("inner", HF_SUPERVISOR_ONE_FOR_ONE, 10);
    s_work_t w = {0};
    s_add(root, "a", s_idle_task, &w, HF_TASK_PERMANENT);
    cr_assert_eq(hf_supervisor_start(root), HF_OK);
    cr_assert_eq(hf_supervisor_start(root), HF_ESTATE);
    hf_child_spec_t spec = {.name = "late", .run = s_idle_task, .arg = &w};
    cr_assert_eq(hf_supervisor_add(root, &spec), HF_ESTATE);
    cr_assert_eq(hf_supervisor_add_supervisor(root, &inner, HF_TASK_PERMANENT, 0), HF_ESTATE);
    cr_assert_not_null(inner, "still the caller's on error");
    cr_assert_eq(hf_supervisor_stop(root), HF_OK);
    hf_supervisor_destroy(&root);
    hf_supervisor_destroy(&inner);
}
