/* hf_supervisor.h - Erlang-style supervision of long-lived threads.
 *
 * A supervisor starts its children (tasks, each in its own thread, or other
 * supervisors) in the order they were added, watches them exit, and decides
 * per exit whether to restart them, leave them alone, or give up
 * ("escalate"). See docs/supervision.md for the model and examples.
 *
 * Three layers:
 *   - hf_restart_window_t: the pure "restart or escalate" logic (restart
 *     type + restart intensity). It never reads a clock: time comes in as
 *     monotonic ms. Deterministically testable.
 *   - hf_supervisor_t: the thread-management shell. It owns the threads,
 *     reads hf_clock_mono_ms() and feeds the window.
 *   - hf_task_ctx_t: what a running task sees: the stop flag, a failure
 *     reporter, and (HF_TESTING builds) the injected-fault hook.
 *
 * Failure means: the task's run function returns an error other than HF_OK,
 * or it called hf_task_fail() (then returning HF_OK still counts as that
 * failure). A crash (SIGSEGV, abort) cannot be caught in C: it takes the
 * whole process down and the service manager restarts it.
 *
 * Known-good-state contract: a task's run function is its whole restore
 * path. It must rebuild its state from durable storage (spool, store,
 * config) on every start, never from memory a failed incarnation left
 * behind. Anything the supervisor passes (arg) is shared by all
 * incarnations, so only durable, consistent-at-every-commit data may live
 * there.
 *
 * Thread-safety: building a tree (new, add, add_supervisor) is single-
 * threaded and happens before start. hf_supervisor_start, _stop, _destroy
 * belong to the owning thread. hf_supervisor_stats, _child_restarts and
 * _inject_fault may be called from any thread while the tree runs. The
 * hf_task_* functions are called only by the task's own thread, with the
 * ctx it was given.
 */
#ifndef HF_SUPERVISOR_H_INCLUDED
#define HF_SUPERVISOR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_time.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_SUPERVISOR_MAX_CHILDREN 32          /* children per supervisor            */
#define HF_SUPERVISOR_NAME_MAX 32              /* bytes, including the NUL           */
#define HF_SUPERVISOR_REASON_MAX 128           /* bytes, including the NUL           */
#define HF_SUPERVISOR_DEFAULT_RESTARTS 10      /* R: restarts allowed ...            */
#define HF_SUPERVISOR_DEFAULT_PERIOD_MS 60000  /* ... within P ms                    */
#define HF_SUPERVISOR_DEFAULT_SHUTDOWN_MS 5000 /* ms a task gets to stop             */
#define HF_SUPERVISOR_EXIT_CODE 70             /* EX_SOFTWARE: default escalation    */
#define HF_RESTART_WINDOW_MAX 256              /* upper bound on R                   */

/* ---- restart types and the pure window ------------------------------------ */

typedef enum {
    HF_TASK_PERMANENT = 0, /* always restarted, even after HF_OK             */
    HF_TASK_TRANSIENT = 1, /* restarted only after a failure                 */
    HF_TASK_TEMPORARY = 2, /* never restarted                                */
} hf_task_restart_t;

typedef enum {
    HF_RESTART_NONE = 0,     /* leave the child stopped (not counted)        */
    HF_RESTART_NOW = 1,      /* restart it (counted in the window)           */
    HF_RESTART_ESCALATE = 2, /* more than R restarts in P: give up           */
} hf_restart_verdict_t;

/* Restart intensity: at most max_restarts restarts in any period_ms.
 * Plain value type; the caller owns the storage. Not thread-safe. */
typedef struct {
    uint32_t max_restarts;                 /* R                              */
    hf_ms_t period_ms;                     /* P, ms                          */
    uint32_t head;                         /* index of the oldest stamp      */
    uint32_t count;                        /* stamps in the ring (<= R)      */
    hf_ms_t stamps[HF_RESTART_WINDOW_MAX]; /* monotonic ms of each restart   */
} hf_restart_window_t;

/* Set up an empty window. HF_EINVAL if max_restarts > HF_RESTART_WINDOW_MAX
 * or period_ms == 0. max_restarts == 0 means any restart escalates. */
HF_EXPORT hf_err_t hf_restart_window_init(hf_restart_window_t *self, uint32_t max_restarts,
                                          hf_ms_t period_ms);

/* A child with restart type `restart` exited with `exit_err` at `now`
 * (monotonic ms). Returns what to do and, for HF_RESTART_NOW, records the
 * restart. A restart older than period_ms (now - stamp >= P) no longer
 * counts. Time going backwards is treated as no time passing. Pure. */
HF_EXPORT hf_restart_verdict_t hf_restart_window_on_exit(hf_restart_window_t *self,
                                                         hf_task_restart_t restart,
                                                         hf_err_t exit_err, hf_ms_t now);

/* Restarts recorded within (now - P, now]. Pure, does not modify. */
HF_EXPORT uint32_t hf_restart_window_count(const hf_restart_window_t *self, hf_ms_t now);

HF_EXPORT const char *hf_restart_verdict_name(hf_restart_verdict_t v); /* never NULL */
HF_EXPORT const char *hf_task_restart_name(hf_task_restart_t r);       /* never NULL */

/* ---- tasks ----------------------------------------------------------------- */

typedef struct hf_task_ctx hf_task_ctx_t;
typedef struct hf_supervisor hf_supervisor_t;

/* A task's body; runs in its own thread. Return HF_OK for a normal exit and
 * an error for a failure. It must return soon after hf_task_should_stop()
 * turns true (within the child's shutdown_ms). */
typedef hf_err_t(hf_task_fn)(hf_task_ctx_t *ctx, void *arg);

typedef struct {
    const char *name;          /* copied; 1..HF_SUPERVISOR_NAME_MAX-1 bytes, unique
                                  within its supervisor                        */
    hf_task_fn *run;           /* required                                     */
    void *arg;                 /* borrowed: must outlive the supervisor        */
    hf_task_restart_t restart; /* default (0) HF_TASK_PERMANENT                */
    hf_ms_t shutdown_ms;       /* ms; 0 means HF_SUPERVISOR_DEFAULT_SHUTDOWN_MS */
} hf_child_spec_t;

/* True once the task must return: its supervisor asked it to stop, it
 * called hf_task_fail(), or (HF_TESTING) a fault was injected - in which
 * case the task is marked failed with HF_EIO and reason "injected fault",
 * and returning HF_OK reports that failure. Cheap (atomic loads): call it
 * every loop iteration. */
HF_EXPORT bool hf_task_should_stop(hf_task_ctx_t *ctx);

/* Block up to timeout_ms (HF_MS_NEVER: no limit) or until the task should
 * stop. Returns hf_task_should_stop(ctx). Use it instead of sleep(). */
HF_EXPORT bool hf_task_wait_stop(hf_task_ctx_t *ctx, hf_ms_t timeout_ms);

/* One call per loop iteration for tasks that prefer error codes: HF_OK to
 * carry on, HF_ECLOSED when asked to stop (return HF_OK then), or the
 * failure's error (the injected HF_EIO in tests) - return it. */
HF_EXPORT hf_err_t hf_task_checkpoint(hf_task_ctx_t *ctx);

/* Mark this incarnation failed with err (not HF_OK) and a printf-style
 * reason (truncated to HF_SUPERVISOR_REASON_MAX). The first failure wins.
 * Returns err, so: `return hf_task_fail(ctx, HF_EIO, "read %s", path);` */
HF_EXPORT hf_err_t hf_task_fail(hf_task_ctx_t *ctx, hf_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Borrowed, valid while the task runs. */
HF_EXPORT const char *hf_task_name(const hf_task_ctx_t *ctx);
/* How many times the supervisor has restarted this child (0 on first start). */
HF_EXPORT uint32_t hf_task_restarts(const hf_task_ctx_t *ctx);

/* ---- supervisors ----------------------------------------------------------- */

typedef enum {
    HF_SUPERVISOR_ONE_FOR_ONE = 0,  /* restart only the child that exited       */
    HF_SUPERVISOR_REST_FOR_ONE = 1, /* also stop (reverse order) and restart (in
                                       order) every child added after it         */
} hf_supervisor_strategy_t;

/* What the escalation callback is told. Strings are borrowed for the
 * duration of the call. */
typedef struct {
    const char *supervisor; /* name of the supervisor that gave up            */
    const char *task;       /* child whose exit exceeded the limit            */
    hf_err_t err;           /* that child's exit error                        */
    const char *reason;     /* that child's reason ("" if none)               */
    uint32_t restarts;      /* restarts counted in the window                 */
    hf_ms_t period_ms;      /* P, ms                                          */
    int exit_code;          /* opts.exit_code, for the default callback        */
} hf_supervisor_escalation_t;

/* Called on the supervisor's thread after all children were stopped. It
 * must not call hf_supervisor_stop/destroy on this supervisor. */
typedef void(hf_supervisor_escalate_fn)(const hf_supervisor_escalation_t *info, void *arg);

typedef struct {
    hf_supervisor_strategy_t strategy;      /* default ONE_FOR_ONE               */
    uint32_t max_restarts;                  /* R, default 10, <= HF_RESTART_WINDOW_MAX */
    hf_ms_t period_ms;                      /* P, ms, default 60000, > 0         */
    hf_ms_t backoff_ms;                     /* ms between an exit and its restart,
                                               default 0                         */
    hf_supervisor_escalate_fn *on_escalate; /* top level only; default
                                               hf_supervisor_escalate_exit       */
    void *on_escalate_arg;                  /* passed to on_escalate             */
    int exit_code;                          /* default HF_SUPERVISOR_EXIT_CODE   */
} hf_supervisor_opts_t;

/* The default escalation: flushes stdio and _exit(info->exit_code), so the
 * service manager restarts the process. _exit, not exit: atexit handlers
 * (czmq's zsys shutdown) would run while other threads still use sockets.
 * The "gave up" line was already logged at ERROR before this is called. */
HF_EXPORT void hf_supervisor_escalate_exit(const hf_supervisor_escalation_t *info, void *arg);

HF_EXPORT hf_supervisor_opts_t hf_supervisor_opts_default(void);

/* A supervisor named `name` (copied, 1..HF_SUPERVISOR_NAME_MAX-1 bytes).
 * NULL opts: defaults. Errors: HF_EINVAL (bad name or options, logged),
 * HF_ENOMEM, HF_EIO (pthread init failed). Caller owns the result;
 * release with hf_supervisor_destroy(). */
HF_EXPORT hf_supervisor_t *hf_supervisor_new(const char *name, const hf_supervisor_opts_t *opts,
                                             hf_err_t *err);

/* Stops it if running (hf_supervisor_stop), then frees it and its child
 * supervisors. NULL-safe; sets *self_p to NULL. If a child thread had to be
 * abandoned and is still running after one more shutdown_ms of grace, the
 * memory it uses is deliberately leaked (logged at ERROR). */
HF_EXPORT void hf_supervisor_destroy(hf_supervisor_t **self_p);

/* Append a task child. Children start in the order added. Errors:
 * HF_EINVAL (bad spec or duplicate name), HF_EFULL (HF_SUPERVISOR_MAX_
 * CHILDREN reached), HF_ESTATE (already started, or owned by a parent). */
HF_EXPORT hf_err_t hf_supervisor_add(hf_supervisor_t *self, const hf_child_spec_t *spec);

/* Append a child supervisor (its name is the child's name). Build trees
 * bottom-up: add the child's own children first. On HF_OK self owns *child_p
 * and *child_p is set to NULL; on error it is untouched. shutdown_ms 0 means
 * the sum of the child's children's shutdown_ms + 1000. A child supervisor
 * that escalates exits with its failing task's error: a failure of this
 * child in self. Errors as hf_supervisor_add, plus HF_ESTATE if *child_p is
 * started or already owned. */
HF_EXPORT hf_err_t hf_supervisor_add_supervisor(hf_supervisor_t *self, hf_supervisor_t **child_p,
                                                hf_task_restart_t restart, hf_ms_t shutdown_ms);

/* Start a top-level supervisor: a thread that starts the children and
 * supervises them until hf_supervisor_stop or escalation. Once only.
 * Errors: HF_ESTATE (already started or owned by a parent), HF_EIO. */
HF_EXPORT hf_err_t hf_supervisor_start(hf_supervisor_t *self);

/* Ask every child to stop, in reverse order, waiting for each up to its
 * shutdown_ms, then join the supervisor thread. Returns HF_OK, HF_ETIMEDOUT
 * if a child did not stop in time (logged; its thread is abandoned, not
 * killed), or HF_ESTATE if never started. Idempotent after the first call. */
HF_EXPORT hf_err_t hf_supervisor_stop(hf_supervisor_t *self);

typedef enum {
    HF_CHILD_IDLE = 0,      /* never started                                   */
    HF_CHILD_RUNNING = 1,   /* its thread runs (or just exited, not reaped yet) */
    HF_CHILD_PENDING = 2,   /* waiting for its restart (backoff)               */
    HF_CHILD_STOPPED = 3,   /* stopped by its supervisor                        */
    HF_CHILD_DONE = 4,      /* exited and will not be restarted                 */
    HF_CHILD_ABANDONED = 5, /* did not stop within shutdown_ms                  */
} hf_child_state_t;

typedef enum {
    HF_SUPERVISOR_NEW = 0,       /* not started yet                              */
    HF_SUPERVISOR_RUNNING = 1,   /* supervising                                  */
    HF_SUPERVISOR_STOPPED = 2,   /* stopped on request                           */
    HF_SUPERVISOR_ESCALATED = 3, /* gave up; children stopped                    */
} hf_supervisor_state_t;

typedef struct {
    char name[HF_SUPERVISOR_NAME_MAX];          /* child name                         */
    bool is_supervisor;                         /* a nested supervisor                */
    hf_task_restart_t restart;                  /* restart type                       */
    hf_child_state_t state;                     /* see hf_child_state_t               */
    uint32_t restarts;                          /* restarts by this supervisor, total */
    hf_err_t last_err;                          /* last failure's error (HF_OK: none) */
    char last_reason[HF_SUPERVISOR_REASON_MAX]; /* last failure's reason              */
} hf_child_stats_t;

typedef struct {
    char name[HF_SUPERVISOR_NAME_MAX];                  /* supervisor name          */
    hf_supervisor_state_t state;                        /* see above                */
    uint64_t restarts;                                  /* restart decisions, total */
    uint32_t restarts_in_window;                        /* counted now, <= R        */
    uint32_t escalations;                               /* times it gave up         */
    size_t n_children;                                  /* entries in children[]    */
    hf_child_stats_t children[HF_SUPERVISOR_MAX_CHILDREN]; /* in start order        */
} hf_supervisor_stats_t;

/* Snapshot of this supervisor (not its sub-supervisors' children). Any
 * thread. Always HF_OK. */
HF_EXPORT hf_err_t hf_supervisor_stats(hf_supervisor_t *self, hf_supervisor_stats_t *out);

/* Restarts of the child `name` in self or, depth-first, in any nested
 * supervisor. Any thread. HF_ENOTFOUND if no such child. */
HF_EXPORT hf_err_t hf_supervisor_child_restarts(hf_supervisor_t *self, const char *name,
                                                uint32_t *restarts);

HF_EXPORT const char *hf_supervisor_name(const hf_supervisor_t *self); /* borrowed */
HF_EXPORT const char *hf_child_state_name(hf_child_state_t s);         /* never NULL */
HF_EXPORT const char *hf_supervisor_strategy_name(hf_supervisor_strategy_t s);

#ifdef HF_TESTING
/* Make the child `name` (searched in self, then depth-first in nested
 * supervisors) fail at its next hf_task_should_stop / _wait_stop /
 * _checkpoint with HF_EIO, reason "injected fault". A child supervisor
 * fails as a whole: it stops its children and exits with HF_EIO. If the
 * child is not running, the fault waits for its next incarnation. Any
 * thread. HF_ENOTFOUND if no such child. */
HF_EXPORT hf_err_t hf_supervisor_inject_fault(hf_supervisor_t *self, const char *name);
#endif

#ifdef __cplusplus
}
#endif
#endif
