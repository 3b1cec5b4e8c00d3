/* hf_supervisor.c - restart window (pure), task context, supervisor shell.
 *
 * Design notes
 * - Two objects live here on purpose: hf_restart_window_t is a small pure
 *   value type that exists only to keep the supervisor's decision testable
 *   without threads or a clock. The shell feeds it hf_clock_mono_ms().
 * - One thread per child incarnation (pthreads). The supervisor's loop runs
 *   on its own thread (top level, hf_supervisor_start) or on the thread of
 *   the parent's child slot (nested). The loop sleeps on the supervisor's
 *   condition variable; a child thread signals it when its run function
 *   returns, so exits are seen without polling.
 * - A thread cannot be killed safely, so "stop" is cooperative: the task sees
 *   a flag (hf_task_should_stop) or is woken from hf_task_wait_stop. A task
 *   that misses its shutdown_ms is abandoned: logged at ERROR, left running,
 *   and its slot is never reused while it runs. During a rest_for_one
 *   restart an abandoned sibling escalates (two incarnations must never
 *   run); during shutdown it makes stop return HF_ETIMEDOUT.
 * - The intensity window is fresh each time a supervisor's loop starts, as
 *   in Erlang: a restarted child supervisor is a new process.
 *
 * Locks (always taken in this order, never the other way):
 *   sup->mu  ->  child->mu  ->  nested sup->mu  ->  its child->mu ...
 *   A child thread takes only its own child->mu (wait_stop) and, after its
 *   run function returned and with nothing else held, its sup->mu.
 *   s_wake_child releases child->mu before it takes the nested sup's mu.
 *
 * Invariants
 * - A slot is RUNNING iff it has a thread that has not been reaped. A slot
 *   is started only when IDLE, PENDING, STOPPED or DONE (never ABANDONED
 *   with a live thread), so one slot never has two threads.
 * - children[] and every name are immutable once the supervisor started
 *   (or was added to a parent), so lookups by name need no lock.
 * - child->exited / exit_rc are written by the child thread under sup->mu
 *   as its last action; after that it touches nothing of the slot.
 * - A nested supervisor is owned by exactly one parent slot.
 */
#include "hf_supervisor.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hf_log.h"

#define S_COMPONENT "supervisor"
#define S_NESTED_SHUTDOWN_MARGIN_MS 1000 /* ms added to a child supervisor's sum */

/* Bounded string copy that always terminates (truncating). */
static void
s_copy(char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ---- restart window (pure) ------------------------------------------------ */

hf_err_t
hf_restart_window_init(hf_restart_window_t *self, uint32_t max_restarts, hf_ms_t period_ms)
{
    assert(self);
    if (max_restarts > HF_RESTART_WINDOW_MAX || period_ms == 0)
        return HF_EINVAL;
    memset(self, 0, sizeof *self);
    self->max_restarts = max_restarts;
    self->period_ms = period_ms;
    return HF_OK;
}

static bool
s_stamp_expired(const hf_restart_window_t *self, hf_ms_t stamp, hf_ms_t now)
{
    hf_ms_t age = now > stamp ? now - stamp : 0;
    return age >= self->period_ms;
}

hf_restart_verdict_t
hf_restart_window_on_exit(hf_restart_window_t *self, hf_task_restart_t restart,
                          hf_err_t exit_err, hf_ms_t now)
{
    assert(self);
    bool wanted = restart == HF_TASK_PERMANENT
                  || (restart == HF_TASK_TRANSIENT && exit_err != HF_OK);
    if (!wanted)
        return HF_RESTART_NONE;
    while (self->count > 0 && s_stamp_expired(self, self->stamps[self->head], now)) {
        self->head = (self->head + 1) % HF_RESTART_WINDOW_MAX;
        self->count--;
    }
    if (self->count >= self->max_restarts)
        return HF_RESTART_ESCALATE;
    self->stamps[(self->head + self->count) % HF_RESTART_WINDOW_MAX] = now;
    self->count++;
    return HF_RESTART_NOW;
}

uint32_t
hf_restart_window_count(const hf_restart_window_t *self, hf_ms_t now)
{
    assert(self);
    uint32_t n = 0;
    for (uint32_t i = 0; i < self->count; i++) {
        if (!s_stamp_expired(self, self->stamps[(self->head + i) % HF_RESTART_WINDOW_MAX], now))
            n++;
    }
    return n;
}

const char *
hf_restart_verdict_name(hf_restart_verdict_t v)
{
    switch (v) {
    case HF_RESTART_NONE: return "none";
    case HF_RESTART_NOW: return "restart";
    case HF_RESTART_ESCALATE: return "escalate";
    }
    return "?";
}

const char *
hf_task_restart_name(hf_task_restart_t r)
{
    switch (r) {
    case HF_TASK_PERMANENT: return "permanent";
    case HF_TASK_TRANSIENT: return "transient";
    case HF_TASK_TEMPORARY: return "temporary";
    }
    return "?";
}

const char *
hf_child_state_name(hf_child_state_t s)
{
    switch (s) {
    case HF_CHILD_IDLE: return "idle";
    case HF_CHILD_RUNNING: return "running";
    case HF_CHILD_PENDING: return "pending";
    case HF_CHILD_STOPPED: return "stopped";
    case HF_CHILD_DONE: return "done";
    case HF_CHILD_ABANDONED: return "abandoned";
    }
    return "?";
}

const char *
hf_supervisor_strategy_name(hf_supervisor_strategy_t s)
{
    switch (s) {
    case HF_SUPERVISOR_ONE_FOR_ONE: return "one_for_one";
    case HF_SUPERVISOR_REST_FOR_ONE: return "rest_for_one";
    }
    return "?";
}

/* ---- types ---------------------------------------------------------------- */

typedef struct s_child s_child_t;

struct hf_task_ctx {
    s_child_t *child;                      /* the slot this ctx belongs to       */
    atomic_bool stop;                      /* set by the supervisor              */
    bool failed;                           /* task thread only                   */
    hf_err_t fail_err;                     /* valid when failed                  */
    char reason[HF_SUPERVISOR_REASON_MAX]; /* task thread only until it exits    */
    uint32_t restarts;                     /* copy of child->restarts at start   */
};

struct s_child {
    char name[HF_SUPERVISOR_NAME_MAX];          /* immutable after add             */
    hf_task_fn *run;                            /* task body                       */
    void *arg;                                  /* borrowed                        */
    hf_task_restart_t restart;                  /* restart type                    */
    hf_ms_t shutdown_ms;                        /* ms                              */
    hf_supervisor_t *nested;                    /* owned child supervisor or NULL  */
    hf_supervisor_t *sup;                       /* the supervisor owning this slot */
    pthread_mutex_t mu;                         /* guards cond waits on stop/fault */
    pthread_cond_t cond;                        /* wakes hf_task_wait_stop         */
    atomic_bool fault;                          /* injected, not yet consumed      */
    hf_task_ctx_t ctx;                          /* current incarnation             */
    pthread_t thread;                           /* valid while joinable            */
    bool joinable;                              /* thread not joined yet           */
    bool exited;                                /* run returned (under sup->mu)    */
    hf_err_t exit_rc;                           /* its result (under sup->mu)      */
    hf_child_state_t state;                     /* under sup->mu                   */
    hf_ms_t restart_at;                         /* monotonic ms, when PENDING      */
    uint32_t restarts;                          /* total restarts of this slot     */
    hf_err_t last_err;                          /* last failure                    */
    char last_reason[HF_SUPERVISOR_REASON_MAX]; /* its reason                      */
};

struct hf_supervisor {
    char name[HF_SUPERVISOR_NAME_MAX];        /* immutable                           */
    hf_supervisor_opts_t opts;                /* validated                           */
    pthread_mutex_t mu;                       /* guards everything below + slots     */
    pthread_cond_t cond;                      /* child exits, stop requests          */
    s_child_t children[HF_SUPERVISOR_MAX_CHILDREN]; /* [0, n) in start order         */
    size_t n;                                 /* children added                      */
    size_t n_inited;                          /* slots whose mu/cond exist           */
    hf_restart_window_t window;               /* intensity, reset per loop run       */
    hf_supervisor_state_t state;              /* see hf_supervisor_state_t           */
    bool stop_requested;                      /* top level: hf_supervisor_stop       */
    hf_task_ctx_t *parent_ctx;                /* nested: the slot ctx while running  */
    bool owned;                               /* added to a parent                   */
    bool thread_started;                      /* top-level thread exists             */
    bool thread_joined;                       /* ... and was joined                  */
    pthread_t thread;                         /* top-level supervisor thread         */
    hf_err_t stop_result;                     /* HF_OK or HF_ETIMEDOUT, last shutdown */
    uint64_t restarts_total;                  /* restart decisions                   */
    uint32_t escalations;                     /* times it gave up                    */
    hf_supervisor_escalation_t esc;           /* last escalation; strings below      */
    char esc_task[HF_SUPERVISOR_NAME_MAX];    /* esc.task points here                */
    char esc_reason[HF_SUPERVISOR_REASON_MAX]; /* esc.reason points here             */
};

/* ---- task context (called on the task's thread) --------------------------- */

bool
hf_task_should_stop(hf_task_ctx_t *ctx)
{
    assert(ctx && ctx->child);
    if (ctx->failed)
        return true;
#ifdef HF_TESTING
    if (atomic_exchange(&ctx->child->fault, false)) {
        hf_task_fail(ctx, HF_EIO, "injected fault");
        return true;
    }
#endif
    return atomic_load(&ctx->stop);
}

static void
s_abs_time(hf_ms_t deadline_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(deadline_ms / 1000u);
    ts->tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
}

static hf_ms_t
s_deadline(hf_ms_t now, hf_ms_t timeout_ms)
{
    if (timeout_ms == HF_MS_NEVER || now > HF_MS_NEVER - timeout_ms)
        return HF_MS_NEVER;
    return now + timeout_ms;
}

/* Wait on cond (monotonic clock) until deadline_ms; false on timeout. */
static bool
s_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu, hf_ms_t deadline_ms)
{
    if (deadline_ms == HF_MS_NEVER) {
        pthread_cond_wait(cond, mu);
        return true;
    }
    struct timespec ts;
    s_abs_time(deadline_ms, &ts);
    return pthread_cond_timedwait(cond, mu, &ts) != ETIMEDOUT;
}

bool
hf_task_wait_stop(hf_task_ctx_t *ctx, hf_ms_t timeout_ms)
{
    assert(ctx && ctx->child);
    if (hf_task_should_stop(ctx))
        return true;
    if (timeout_ms == 0)
        return false;
    s_child_t *c = ctx->child;
    hf_ms_t deadline = s_deadline(hf_clock_mono_ms(), timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (!atomic_load(&ctx->stop) && !atomic_load(&c->fault)) {
        if (!s_cond_wait_until(&c->cond, &c->mu, deadline))
            break;
    }
    pthread_mutex_unlock(&c->mu);
    return hf_task_should_stop(ctx);
}

hf_err_t
hf_task_checkpoint(hf_task_ctx_t *ctx)
{
    if (!hf_task_should_stop(ctx))
        return HF_OK;
    return ctx->failed ? ctx->fail_err : HF_ECLOSED;
}

hf_err_t
hf_task_fail(hf_task_ctx_t *ctx, hf_err_t err, const char *fmt, ...)
{
    assert(ctx && err != HF_OK);
    if (ctx->failed)
        return err;
    ctx->failed = true;
    ctx->fail_err = err;
    ctx->reason[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->reason, sizeof ctx->reason, fmt, ap);
        va_end(ap);
    }
    return err;
}

const char *
hf_task_name(const hf_task_ctx_t *ctx)
{
    assert(ctx && ctx->child);
    return ctx->child->name;
}

uint32_t
hf_task_restarts(const hf_task_ctx_t *ctx)
{
    assert(ctx);
    return ctx->restarts;
}

/* ---- supervisor: construction --------------------------------------------- */

static void s_escalate_default_log(const hf_supervisor_t *self);

void
hf_supervisor_escalate_exit(const hf_supervisor_escalation_t *info, void *arg)
{
    (void)arg;
    fflush(NULL);
    _exit(info ? info->exit_code : HF_SUPERVISOR_EXIT_CODE);
}

hf_supervisor_opts_t
hf_supervisor_opts_default(void)
{
    hf_supervisor_opts_t o = {
        .strategy = HF_SUPERVISOR_ONE_FOR_ONE,
        .max_restarts = HF_SUPERVISOR_DEFAULT_RESTARTS,
        .period_ms = HF_SUPERVISOR_DEFAULT_PERIOD_MS,
        .backoff_ms = 0,
        .on_escalate = hf_supervisor_escalate_exit,
        .on_escalate_arg = NULL,
        .exit_code = HF_SUPERVISOR_EXIT_CODE,
    };
    return o;
}

static bool
s_name_ok(const char *name)
{
    if (!name)
        return false;
    size_t len = strnlen(name, HF_SUPERVISOR_NAME_MAX);
    return len > 0 && len < HF_SUPERVISOR_NAME_MAX;
}

/* A condition variable on CLOCK_MONOTONIC, so waits ignore wall-clock steps. */
static int
s_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0)
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

hf_supervisor_t *
hf_supervisor_new(const char *name, const hf_supervisor_opts_t *opts, hf_err_t *err)
{
    hf_err_t rc = HF_OK;
    bool mu_ok = false;
    hf_supervisor_t *self = NULL;
    hf_supervisor_opts_t o = opts ? *opts : hf_supervisor_opts_default();
    if (!s_name_ok(name)) {
        hf_log_error(S_COMPONENT, "new: name must be 1..%d bytes", HF_SUPERVISOR_NAME_MAX - 1);
        rc = HF_EINVAL;
        goto fail;
    }
    if ((o.strategy != HF_SUPERVISOR_ONE_FOR_ONE && o.strategy != HF_SUPERVISOR_REST_FOR_ONE)
        || o.max_restarts > HF_RESTART_WINDOW_MAX || o.period_ms == 0
        || o.backoff_ms == HF_MS_NEVER) {
        hf_log_error(S_COMPONENT,
                     "supervisor=%s new: bad options strategy=%d max_restarts=%u (max %d) "
                     "period_ms=%llu (> 0) backoff_ms=%llu",
                     name, (int)o.strategy, o.max_restarts, HF_RESTART_WINDOW_MAX,
                     (unsigned long long)o.period_ms, (unsigned long long)o.backoff_ms);
        rc = HF_EINVAL;
        goto fail;
    }
    if (!o.on_escalate)
        o.on_escalate = hf_supervisor_escalate_exit;
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    s_copy(self->name, sizeof self->name, name);
    self->opts = o;
    self->state = HF_SUPERVISOR_NEW;
    if (pthread_mutex_init(&self->mu, NULL) != 0) {
        rc = HF_EIO;
        goto fail;
    }
    mu_ok = true;
    if (s_cond_init(&self->cond) != 0) {
        rc = HF_EIO;
        goto fail;
    }
    hf_restart_window_init(&self->window, o.max_restarts, o.period_ms);
    if (err)
        *err = HF_OK;
    return self;

fail:
    if (mu_ok)
        pthread_mutex_destroy(&self->mu);
    free(self);
    if (err)
        *err = rc;
    return NULL;
}

static s_child_t *
s_find_local(hf_supervisor_t *self, const char *name)
{
    for (size_t i = 0; i < self->n; i++) {
        if (strncmp(self->children[i].name, name, HF_SUPERVISOR_NAME_MAX) == 0)
            return &self->children[i];
    }
    return NULL;
}

/* Depth-first: self's children first, then each nested supervisor's. */
static s_child_t *
s_find_deep(hf_supervisor_t *self, const char *name)
{
    s_child_t *c = s_find_local(self, name);
    for (size_t i = 0; !c && i < self->n; i++) {
        if (self->children[i].nested)
            c = s_find_deep(self->children[i].nested, name);
    }
    return c;
}

static hf_err_t
s_add_slot(hf_supervisor_t *self, const char *name, hf_task_fn *run, void *arg,
           hf_task_restart_t restart, hf_ms_t shutdown_ms, s_child_t **out)
{
    if (self->owned || self->state != HF_SUPERVISOR_NEW || self->thread_started) {
        hf_log_error(S_COMPONENT, "supervisor=%s add %s: children are added before start",
                     self->name, name ? name : "?");
        return HF_ESTATE;
    }
    if (!s_name_ok(name) || !run || restart < HF_TASK_PERMANENT || restart > HF_TASK_TEMPORARY) {
        hf_log_error(S_COMPONENT, "supervisor=%s add: bad child spec (name 1..%d bytes, run set, "
                     "restart type valid)", self->name, HF_SUPERVISOR_NAME_MAX - 1);
        return HF_EINVAL;
    }
    if (s_find_local(self, name)) {
        hf_log_error(S_COMPONENT, "supervisor=%s add: duplicate child name=%s", self->name, name);
        return HF_EINVAL;
    }
    if (self->n >= HF_SUPERVISOR_MAX_CHILDREN) {
        hf_log_error(S_COMPONENT, "supervisor=%s add %s: at most %d children", self->name, name,
                     HF_SUPERVISOR_MAX_CHILDREN);
        return HF_EFULL;
    }
    s_child_t *c = &self->children[self->n];
    memset(c, 0, sizeof *c);
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        return HF_EIO;
    if (s_cond_init(&c->cond) != 0) {
        pthread_mutex_destroy(&c->mu);
        return HF_EIO;
    }
    s_copy(c->name, sizeof c->name, name);
    c->run = run;
    c->arg = arg;
    c->restart = restart;
    c->shutdown_ms = shutdown_ms ? shutdown_ms : HF_SUPERVISOR_DEFAULT_SHUTDOWN_MS;
    c->sup = self;
    c->ctx.child = c;
    atomic_init(&c->ctx.stop, false);
    atomic_init(&c->fault, false);
    c->state = HF_CHILD_IDLE;
    self->n++;
    self->n_inited = self->n;
    if (out)
        *out = c;
    return HF_OK;
}

hf_err_t
hf_supervisor_add(hf_supervisor_t *self, const hf_child_spec_t *spec)
{
    assert(self && spec);
    return s_add_slot(self, spec->name, spec->run, spec->arg, spec->restart, spec->shutdown_ms,
                      NULL);
}

static hf_err_t s_nested_run(hf_task_ctx_t *ctx, void *arg);

hf_err_t
hf_supervisor_add_supervisor(hf_supervisor_t *self, hf_supervisor_t **child_p,
                             hf_task_restart_t restart, hf_ms_t shutdown_ms)
{
    assert(self && child_p && *child_p);
    hf_supervisor_t *child = *child_p;
    if (child == self || child->owned || child->thread_started
        || child->state != HF_SUPERVISOR_NEW) {
        hf_log_error(S_COMPONENT, "supervisor=%s add supervisor=%s: already started or owned",
                     self->name, child->name);
        return HF_ESTATE;
    }
    if (shutdown_ms == 0) {
        shutdown_ms = S_NESTED_SHUTDOWN_MARGIN_MS;
        for (size_t i = 0; i < child->n; i++)
            shutdown_ms += child->children[i].shutdown_ms;
    }
    s_child_t *c = NULL;
    hf_err_t rc = s_add_slot(self, child->name, s_nested_run, child, restart, shutdown_ms, &c);
    if (rc != HF_OK)
        return rc;
    c->nested = child;
    child->owned = true;
    *child_p = NULL;
    return HF_OK;
}

/* ---- supervisor: the shell ------------------------------------------------- */

/* Set the stop flag and wake whatever the child may be blocked on: its own
 * wait_stop, or (nested) its supervisor loop. Caller may hold sup->mu. */
static void
s_wake_child(s_child_t *c, bool stop)
{
    pthread_mutex_lock(&c->mu);
    if (stop)
        atomic_store(&c->ctx.stop, true);
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (c->nested) {
        pthread_mutex_lock(&c->nested->mu);
        pthread_cond_broadcast(&c->nested->cond);
        pthread_mutex_unlock(&c->nested->mu);
    }
}

static void *
s_child_main(void *arg)
{
    s_child_t *c = arg;
    hf_task_ctx_t *ctx = &c->ctx;
    char tname[16];
    s_copy(tname, sizeof tname, c->name);
    pthread_setname_np(pthread_self(), tname);
    hf_err_t rc = c->run(ctx, c->arg);
    if (rc == HF_OK && ctx->failed)
        rc = ctx->fail_err;
    hf_supervisor_t *sup = c->sup;
    pthread_mutex_lock(&sup->mu);
    c->exit_rc = rc;
    c->exited = true;
    pthread_cond_broadcast(&sup->cond);
    pthread_mutex_unlock(&sup->mu);
    return NULL;
}

/* sup->mu held. */
static void
s_start_child(hf_supervisor_t *self, s_child_t *c)
{
    assert(c->state != HF_CHILD_RUNNING && c->state != HF_CHILD_ABANDONED && !c->joinable);
    atomic_store(&c->ctx.stop, false);
    c->ctx.failed = false;
    c->ctx.fail_err = HF_OK;
    c->ctx.reason[0] = '\0';
    c->ctx.restarts = c->restarts;
    c->exited = false;
    c->exit_rc = HF_OK;
    c->state = HF_CHILD_RUNNING;
    int prc = pthread_create(&c->thread, NULL, s_child_main, c);
    if (prc != 0) {
        /* Seen by the loop as an immediate failure, so the window applies. */
        hf_log_error(S_COMPONENT, "supervisor=%s task=%s pthread_create: %s", self->name,
                     c->name, strerror(prc));
        snprintf(c->ctx.reason, sizeof c->ctx.reason, "pthread_create: %s", strerror(prc));
        c->exit_rc = HF_ENOMEM;
        c->exited = true;
        return;
    }
    c->joinable = true;
    hf_log_debug(S_COMPONENT, "supervisor=%s task=%s started restarts=%u", self->name, c->name,
                 c->restarts);
}

/* sup->mu held, c->exited. The thread has released everything; join is short. */
static void
s_reap(s_child_t *c)
{
    if (c->joinable) {
        pthread_join(c->thread, NULL);
        c->joinable = false;
    }
    if (c->exit_rc != HF_OK) {
        c->last_err = c->exit_rc;
        s_copy(c->last_reason, sizeof c->last_reason, c->ctx.reason);
    }
}

/* sup->mu held, c RUNNING. Asks c to stop and waits up to its shutdown_ms.
 * On timeout c is ABANDONED (its thread keeps the slot) and HF_ETIMEDOUT
 * is returned. */
static hf_err_t
s_stop_child(hf_supervisor_t *self, s_child_t *c)
{
    assert(c->state == HF_CHILD_RUNNING);
    s_wake_child(c, true);
    hf_ms_t deadline = s_deadline(hf_clock_mono_ms(), c->shutdown_ms);
    while (!c->exited) {
        if (!s_cond_wait_until(&self->cond, &self->mu, deadline) && !c->exited) {
            c->state = HF_CHILD_ABANDONED;
            hf_log_error(S_COMPONENT,
                         "supervisor=%s task=%s did not stop within shutdown_ms=%llu: "
                         "abandoning its thread",
                         self->name, c->name, (unsigned long long)c->shutdown_ms);
            return HF_ETIMEDOUT;
        }
    }
    s_reap(c);
    c->state = HF_CHILD_STOPPED;
    hf_log_debug(S_COMPONENT, "supervisor=%s task=%s stopped err=%s", self->name, c->name,
                 hf_errname(c->exit_rc));
    return HF_OK;
}

/* sup->mu held. Stop every running child in reverse order; pending ones
 * just become STOPPED. HF_ETIMEDOUT if any had to be abandoned. */
static hf_err_t
s_stop_all(hf_supervisor_t *self)
{
    hf_err_t rc = HF_OK;
    for (size_t i = self->n; i-- > 0;) {
        s_child_t *c = &self->children[i];
        if (c->state == HF_CHILD_RUNNING) {
            if (s_stop_child(self, c) != HF_OK)
                rc = HF_ETIMEDOUT;
        } else if (c->state == HF_CHILD_PENDING) {
            c->state = HF_CHILD_STOPPED;
        }
    }
    return rc;
}

/* sup->mu held. Records the escalation and logs the "gave up" line. */
static void
s_record_escalation(hf_supervisor_t *self, const s_child_t *c, hf_err_t err, const char *reason,
                    hf_ms_t now)
{
    s_copy(self->esc_task, sizeof self->esc_task, c->name);
    s_copy(self->esc_reason, sizeof self->esc_reason, reason ? reason : "");
    self->esc.supervisor = self->name;
    self->esc.task = self->esc_task;
    self->esc.err = err;
    self->esc.reason = self->esc_reason;
    self->esc.restarts = hf_restart_window_count(&self->window, now);
    self->esc.period_ms = self->opts.period_ms;
    self->esc.exit_code = self->opts.exit_code;
    self->escalations++;
    s_escalate_default_log(self);
}

static void
s_escalate_default_log(const hf_supervisor_t *self)
{
    const hf_supervisor_escalation_t *e = &self->esc;
    /* A nested supervisor's give-up is handled by its parent: WARN there. */
    hf_log(self->parent_ctx ? HF_LOG_WARN : HF_LOG_ERROR, S_COMPONENT,
           "supervisor=%s gave up: %u restarts in %llu s, last failure task=%s err=%s "
           "reason=\"%s\"%s",
           e->supervisor, e->restarts, (unsigned long long)(e->period_ms / 1000u), e->task,
           hf_errname(e->err), e->reason, self->parent_ctx ? " escalating=parent" : "");
}

/* sup->mu held, c exited. Returns true if the supervisor must escalate. */
static bool
s_handle_exit(hf_supervisor_t *self, size_t idx, hf_err_t *esc_err)
{
    s_child_t *c = &self->children[idx];
    s_reap(c);
    hf_err_t rc = c->exit_rc;
    hf_ms_t now = hf_clock_mono_ms();
    hf_restart_verdict_t v = hf_restart_window_on_exit(&self->window, c->restart, rc, now);
    switch (v) {
    case HF_RESTART_NONE:
        c->state = HF_CHILD_DONE;
        if (rc == HF_OK)
            hf_log_info(S_COMPONENT, "supervisor=%s task=%s exited normally restart=%s: "
                        "not restarted", self->name, c->name, hf_task_restart_name(c->restart));
        else
            hf_log_warn(S_COMPONENT, "supervisor=%s task=%s failed err=%s reason=\"%s\" "
                        "restart=%s: not restarted", self->name, c->name, hf_errname(rc),
                        c->ctx.reason, hf_task_restart_name(c->restart));
        return false;
    case HF_RESTART_ESCALATE:
        c->state = HF_CHILD_DONE;
        s_record_escalation(self, c, rc, c->ctx.reason, now);
        *esc_err = rc != HF_OK ? rc : HF_ESTATE;
        return true;
    case HF_RESTART_NOW:
        break;
    }
    self->restarts_total++;
    hf_log_warn(S_COMPONENT,
                "supervisor=%s task=%s restarting cause=%s reason=\"%s\" restarts=%u/%u "
                "window_s=%llu backoff_ms=%llu strategy=%s",
                self->name, c->name, hf_errname(rc), c->ctx.reason,
                hf_restart_window_count(&self->window, now), self->opts.max_restarts,
                (unsigned long long)(self->opts.period_ms / 1000u),
                (unsigned long long)self->opts.backoff_ms,
                hf_supervisor_strategy_name(self->opts.strategy));
    hf_ms_t at = s_deadline(now, self->opts.backoff_ms);
    if (self->opts.strategy == HF_SUPERVISOR_REST_FOR_ONE) {
        for (size_t j = self->n; j-- > idx + 1;) {
            s_child_t *s = &self->children[j];
            if (s->state == HF_CHILD_RUNNING) {
                if (s_stop_child(self, s) != HF_OK) {
                    /* Restarting i.. now would run two incarnations of s. */
                    s_record_escalation(self, s, HF_ETIMEDOUT, "did not stop for rest_for_one",
                                        now);
                    *esc_err = HF_ETIMEDOUT;
                    return true;
                }
                if (s->restart == HF_TASK_TEMPORARY) {
                    s->state = HF_CHILD_DONE;
                    continue;
                }
                s->state = HF_CHILD_PENDING;
                s->restart_at = at;
                s->restarts++;
                hf_log_warn(S_COMPONENT, "supervisor=%s task=%s restarting cause=sibling "
                            "task=%s strategy=rest_for_one", self->name, s->name, c->name);
            } else if (s->state == HF_CHILD_PENDING && s->restart_at < at) {
                s->restart_at = at; /* so i.. still start in order */
            }
        }
    }
    c->restarts++;
    c->state = HF_CHILD_PENDING;
    c->restart_at = at;
    return false;
}

/* sup->mu held. Nested: the parent's stop (or an injected fault) ends it. */
static bool
s_stop_wanted(hf_supervisor_t *self)
{
    if (self->stop_requested)
        return true;
    return self->parent_ctx && hf_task_should_stop(self->parent_ctx);
}

/* The supervision loop. Runs on the top-level thread or, nested, on the
 * parent's child thread (parent_ctx). Returns HF_OK or HF_ETIMEDOUT after a
 * requested stop, or the escalating error. */
static hf_err_t
s_loop(hf_supervisor_t *self, hf_task_ctx_t *parent_ctx)
{
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < self->n; i++) {
        s_child_t *c = &self->children[i];
        if (c->state == HF_CHILD_ABANDONED && c->exited) {
            s_reap(c);
            c->state = HF_CHILD_STOPPED;
        }
        if (c->state == HF_CHILD_ABANDONED) {
            hf_log_error(S_COMPONENT, "supervisor=%s cannot start: task=%s from a previous run "
                         "is still running", self->name, c->name);
            pthread_mutex_unlock(&self->mu);
            return HF_ESTATE;
        }
    }
    self->parent_ctx = parent_ctx;
    self->state = HF_SUPERVISOR_RUNNING;
    hf_restart_window_init(&self->window, self->opts.max_restarts, self->opts.period_ms);
    hf_log_info(S_COMPONENT, "supervisor=%s starting children=%zu strategy=%s intensity=%u/%llus",
                self->name, self->n, hf_supervisor_strategy_name(self->opts.strategy),
                self->opts.max_restarts, (unsigned long long)(self->opts.period_ms / 1000u));
    for (size_t i = 0; i < self->n; i++)
        s_start_child(self, &self->children[i]);

    bool escalate = false;
    hf_err_t esc_err = HF_OK;
    while (!escalate && !s_stop_wanted(self)) {
        size_t i = 0;
        while (i < self->n && !(self->children[i].state == HF_CHILD_RUNNING
                                && self->children[i].exited))
            i++;
        if (i < self->n) {
            escalate = s_handle_exit(self, i, &esc_err);
            continue;
        }
        hf_ms_t now = hf_clock_mono_ms();
        hf_ms_t due = HF_MS_NEVER;
        bool started = false;
        bool blocked = false; /* rest_for_one: an earlier sibling is still waiting */
        for (size_t k = 0; k < self->n; k++) {
            s_child_t *c = &self->children[k];
            if (c->state != HF_CHILD_PENDING)
                continue;
            if (!blocked && c->restart_at <= now) {
                s_start_child(self, c);
                started = true;
                continue;
            }
            if (c->restart_at > now && c->restart_at < due)
                due = c->restart_at;
            blocked = self->opts.strategy == HF_SUPERVISOR_REST_FOR_ONE;
        }
        if (!started)
            s_cond_wait_until(&self->cond, &self->mu, due);
    }
    self->stop_result = s_stop_all(self);
    hf_err_t rc = self->stop_result;
    if (escalate) {
        self->state = HF_SUPERVISOR_ESCALATED;
        rc = esc_err;
    } else {
        self->state = HF_SUPERVISOR_STOPPED;
        hf_log_info(S_COMPONENT, "supervisor=%s stopped err=%s", self->name, hf_errname(rc));
    }
    self->parent_ctx = NULL;
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static hf_err_t
s_nested_run(hf_task_ctx_t *ctx, void *arg)
{
    hf_supervisor_t *self = arg;
    hf_err_t rc = s_loop(self, ctx);
    if (rc != HF_OK && !ctx->failed) {
        pthread_mutex_lock(&self->mu);
        bool escalated = self->state == HF_SUPERVISOR_ESCALATED;
        char task[HF_SUPERVISOR_NAME_MAX];
        s_copy(task, sizeof task, self->esc_task);
        pthread_mutex_unlock(&self->mu);
        if (escalated)
            hf_task_fail(ctx, rc, "supervisor gave up, last failure task=%s", task);
    }
    return rc;
}

static void *
s_top_main(void *arg)
{
    hf_supervisor_t *self = arg;
    pthread_setname_np(pthread_self(), "hf-supervisor");
    s_loop(self, NULL);
    pthread_mutex_lock(&self->mu);
    bool escalated = self->state == HF_SUPERVISOR_ESCALATED;
    hf_supervisor_escalation_t info = self->esc;
    pthread_mutex_unlock(&self->mu);
    /* esc strings live in self, which outlives this thread. */
    if (escalated)
        self->opts.on_escalate(&info, self->opts.on_escalate_arg);
    return NULL;
}

hf_err_t
hf_supervisor_start(hf_supervisor_t *self)
{
    assert(self);
    if (self->owned || self->thread_started) {
        hf_log_error(S_COMPONENT, "supervisor=%s start: already started or owned by a parent",
                     self->name);
        return HF_ESTATE;
    }
    int prc = pthread_create(&self->thread, NULL, s_top_main, self);
    if (prc != 0) {
        hf_log_error(S_COMPONENT, "supervisor=%s start: pthread_create: %s", self->name,
                     strerror(prc));
        return HF_EIO;
    }
    self->thread_started = true;
    return HF_OK;
}

hf_err_t
hf_supervisor_stop(hf_supervisor_t *self)
{
    assert(self);
    if (!self->thread_started)
        return HF_ESTATE;
    if (!self->thread_joined) {
        pthread_mutex_lock(&self->mu);
        self->stop_requested = true;
        pthread_cond_broadcast(&self->cond);
        pthread_mutex_unlock(&self->mu);
        pthread_join(self->thread, NULL);
        self->thread_joined = true;
    }
    return self->stop_result;
}

/* ---- supervisor: queries ----------------------------------------------------- */

hf_err_t
hf_supervisor_stats(hf_supervisor_t *self, hf_supervisor_stats_t *out)
{
    assert(self && out);
    memset(out, 0, sizeof *out);
    hf_ms_t now = hf_clock_mono_ms();
    pthread_mutex_lock(&self->mu);
    s_copy(out->name, sizeof out->name, self->name);
    out->state = self->state;
    out->restarts = self->restarts_total;
    out->restarts_in_window = hf_restart_window_count(&self->window, now);
    out->escalations = self->escalations;
    out->n_children = self->n;
    for (size_t i = 0; i < self->n; i++) {
        const s_child_t *c = &self->children[i];
        hf_child_stats_t *o = &out->children[i];
        s_copy(o->name, sizeof o->name, c->name);
        o->is_supervisor = c->nested != NULL;
        o->restart = c->restart;
        o->state = c->state;
        o->restarts = c->restarts;
        o->last_err = c->last_err;
        s_copy(o->last_reason, sizeof o->last_reason, c->last_reason);
    }
    pthread_mutex_unlock(&self->mu);
    return HF_OK;
}

hf_err_t
hf_supervisor_child_restarts(hf_supervisor_t *self, const char *name, uint32_t *restarts)
{
    assert(self && name && restarts);
    s_child_t *c = s_find_deep(self, name);
    if (!c)
        return HF_ENOTFOUND;
    pthread_mutex_lock(&c->sup->mu);
    *restarts = c->restarts;
    pthread_mutex_unlock(&c->sup->mu);
    return HF_OK;
}

const char *
hf_supervisor_name(const hf_supervisor_t *self)
{
    assert(self);
    return self->name;
}

#ifdef HF_TESTING
hf_err_t
hf_supervisor_inject_fault(hf_supervisor_t *self, const char *name)
{
    assert(self && name);
    s_child_t *c = s_find_deep(self, name);
    if (!c)
        return HF_ENOTFOUND;
    atomic_store(&c->fault, true);
    s_wake_child(c, false);
    hf_log_info(S_COMPONENT, "supervisor=%s task=%s fault injected", c->sup->name, c->name);
    return HF_OK;
}
#endif

/* ---- supervisor: destruction ------------------------------------------------ */

/* Joins abandoned threads that finished (after one more shutdown_ms of
 * grace). False if one still runs: then nothing of self may be freed. */
static bool
s_reclaim_abandoned(hf_supervisor_t *self)
{
    bool ok = true;
    pthread_mutex_lock(&self->mu);
    for (size_t i = 0; i < self->n; i++) {
        s_child_t *c = &self->children[i];
        if (c->state != HF_CHILD_ABANDONED)
            continue;
        hf_ms_t deadline = s_deadline(hf_clock_mono_ms(), c->shutdown_ms);
        while (!c->exited && s_cond_wait_until(&self->cond, &self->mu, deadline)) {
        }
        if (c->exited) {
            s_reap(c);
            c->state = HF_CHILD_STOPPED;
        } else {
            hf_log_error(S_COMPONENT, "supervisor=%s task=%s still running at destroy: "
                         "leaking the supervisor", self->name, c->name);
            ok = false;
        }
    }
    pthread_mutex_unlock(&self->mu);
    return ok;
}

static void
s_free(hf_supervisor_t *self)
{
    if (!s_reclaim_abandoned(self)) {
        /* The abandoned thread still uses self: detach it and leak self. */
        for (size_t i = 0; i < self->n; i++) {
            s_child_t *c = &self->children[i];
            if (c->state == HF_CHILD_ABANDONED && c->joinable) {
                pthread_detach(c->thread);
                c->joinable = false;
            }
        }
        return;
    }
    for (size_t i = 0; i < self->n_inited; i++) {
        s_child_t *c = &self->children[i];
        if (c->nested)
            s_free(c->nested);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->mu);
    }
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
}

void
hf_supervisor_destroy(hf_supervisor_t **self_p)
{
    assert(self_p);
    hf_supervisor_t *self = *self_p;
    if (!self)
        return;
    assert(!self->owned);
    if (self->thread_started)
        hf_supervisor_stop(self);
    s_free(self);
    *self_p = NULL;
}
