/* main.c - holdfast-engine: runs methods on a simulated instrument and
 * streams the records through a durable dispatcher to an aggregator.
 *
 * A thin shell: parse flags, install the log sink and signal handlers, wire
 * hwsim + the engine's controller + dispatcher, then loop "wait for a
 * command until the next thing is due, tick". With --method the method
 * starts at once and the engine exits when its run ends (unless --serve);
 * without it, the engine serves commands (start, pause, resume, abort, set:
 * docs/commands.md) until a signal. Then flush, wait (bounded) for the
 * aggregator to ack everything, print a one-line summary, close.
 *
 * --scenario FILE builds the instrument from a hwsim scenario (its devices,
 * seed and fault schedule), applies its engine policy (retries, backoff,
 * disconnect grace) and runs its inline method like --method (unless
 * --method is given too); the safe values it declares are the run's safe
 * table (docs/hardware-errors.md). --truth FILE writes hwsim's ground-truth
 * log of every hal call.
 *
 * Exit codes: 0 run ended (completed, aborted by signal or command, or
 * interrupted by the instrument: the summary says which) or served until a
 * signal, 1 runtime error, 2 usage error (bad flags, unreadable/invalid
 * method, method names unknown to the instrument), 3 the drain timed out
 * (the spool still holds unacked records).
 *
 * Signals: SIGINT/SIGTERM set a flag; the loop aborts the run at its next
 * wake-up (at most S_MAX_SLEEP_NS later) and shuts down within ~2 s. The
 * dispatcher's worker thread is created with both signals blocked, so they
 * are delivered to this thread, and czmq is told not to install its own
 * handlers (ZSYS_SIGHANDLER=false).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"
#include "hf_dispatcher.h"
#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_log.h"
#include "hf_supervisor.h"
#include "hf_time.h"

#define S_MAX_SLEEP_NS 50000000ull      /* wake at least every 50 ms to see signals */
#define S_ABORT_DRAIN_MS 1000u          /* drain budget after a signal (close < 2 s) */
#define S_PROGRESS_NS 10000000000ull    /* a progress line every 10 s during a run   */

typedef struct {
    const char *id;
    const char *connect;
    const char *spool;
    const char *method;
    const char *methods_dir;
    const char *summary;
    const char *scenario;
    const char *truth;
    int serve;
    uint64_t seed;
    uint32_t drain_timeout_ms;
    int relaxed;
    int verbose;
    uint64_t spool_max_bytes;   /* 0 = dispatcher default */
    int full_policy;            /* hf_full_policy_t */
    uint32_t max_restarts;      /* runner restart intensity: R ...       */
    uint32_t restart_period_s;  /* ... in P seconds                      */
    const char *faults;         /* HF_TESTING: "MS[,MS...]" after start  */
    const char *cert;           /* this engine's certificate (CURVE)     */
    const char *server_key;     /* the aggregator's public certificate   */
    int insecure;               /* plain mechanism instead of CURVE      */
    int print_config;           /* --print-config                        */
} s_args_t;

static volatile sig_atomic_t s_stop = 0;
/* Set once the dispatcher is open, before signals are unblocked: the
 * handler unblocks a producer waiting on a full spool or a dead link. */
static hf_dispatcher_t *volatile s_disp = NULL;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
    if (s_disp)
        hf_dispatcher_interrupt(s_disp); /* async-signal-safe */
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: holdfast-engine --id NAME --connect ENDPOINT --spool DIR\n"
            "                       (--cert FILE --server-key FILE | --insecure)\n"
            "                       [--method FILE] [--methods DIR] [--serve]\n"
            "                       [--seed N] [--drain-timeout MS] [--summary FILE]\n"
            "                       [--relaxed] [--spool-max-bytes N] [--full-policy P]\n"
            "                       [--scenario FILE] [--truth FILE]\n"
            "                       [--max-restarts N] [--restart-period-s S] [-v]\n"
            "  --id NAME            engine id, 1..64 chars of [A-Za-z0-9._-]\n"
            "  --connect ENDPOINT   aggregator endpoint, e.g. tcp://127.0.0.1:5555; several\n"
            "                       as EP1,EP2 (each gets every record; the spool keeps a\n"
            "                       record until every one acknowledged it)\n"
            "  --spool DIR          spool directory (created if missing)\n"
            "  --cert FILE          this engine's certificate (holdfast keygen NAME --engine\n"
            "                       ID writes NAME and NAME_secret): CURVE to the aggregator\n"
            "  --server-key FILE    the aggregator's public certificate\n"
            "  --insecure           the plain mechanism instead (no authentication, no\n"
            "                       encryption; logs a warning): docs/security.md\n"
            "  --method FILE        run this method at start (docs/methods.md); the engine\n"
            "                       exits when the run ends, unless --serve\n"
            "  --methods DIR        where 'holdfast start ENGINE NAME' finds NAME.method\n"
            "  --serve              keep serving commands until a signal (the default\n"
            "                       without --method)\n"
            "  --seed N             hwsim seed (default 1; a scenario has its own)\n"
            "  --scenario FILE      the instrument, faults and engine policy of a hwsim\n"
            "                       scenario (docs/hwsim.md); runs its method unless\n"
            "                       --method is given; exits when the run ends unless --serve\n"
            "  --truth FILE         write hwsim's ground-truth log of every hal call\n"
            "  --max-restarts N     the runner (method runner, hardware poller, command\n"
            "  --restart-period-s S handler) restarts after a failure at most N times in S\n"
            "                       seconds, then the engine exits 70 (default 10 in 60)\n"
            "  --drain-timeout MS   wait this long for acks at the end (default 30000)\n"
            "  --summary FILE       also write the summary line to FILE\n"
            "  --relaxed            no fsync per group commit (faster, less durable)\n"
            "  --spool-max-bytes N  bound on the spool's size (default 1 GiB)\n"
            "  --full-policy P      when the spool is full: decimate (default), drop-oldest,\n"
            "                       or block\n"
            "  --config FILE        read these options from FILE (ZPL, a section\n"
            "                       holdfast-engine; a flag given here wins)\n"
            "  --print-config       print the effective configuration and exit\n"
            "  -v                   debug logging\n");
}

static int
s_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "holdfast-engine: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(try --help)\n");
    return 2;
}

static int
s_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return 0;
    *out = v;
    return 1;
}

static const struct option k_opts[] = {
    {"id", required_argument, NULL, 'i'},       {"connect", required_argument, NULL, 'c'},
    {"spool", required_argument, NULL, 's'},    {"method", required_argument, NULL, 'm'},
    {"seed", required_argument, NULL, 'S'},     {"drain-timeout", required_argument, NULL, 'd'},
    {"summary", required_argument, NULL, 'o'},  {"relaxed", no_argument, NULL, 'r'},
    {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
    {"spool-max-bytes", required_argument, NULL, 'B'},
    {"full-policy", required_argument, NULL, 'P'},
    {"methods", required_argument, NULL, 'M'},  {"serve", no_argument, NULL, 'e'},
    {"scenario", required_argument, NULL, 'X'}, {"truth", required_argument, NULL, 'T'},
    {"max-restarts", required_argument, NULL, 'R'},
    {"restart-period-s", required_argument, NULL, 'p'},
    {"cert", required_argument, NULL, 'C'},
    {"server-key", required_argument, NULL, 'K'},
    {"insecure", no_argument, NULL, 'I'},
#ifdef HF_TESTING
    {"fault-after", required_argument, NULL, 'F'},
#endif
    {"config", required_argument, NULL, 'G'},
    {"print-config", no_argument, NULL, 'g'},
    {NULL, 0, NULL, 0},
};
/* Options only the command line may give (not a configuration file). */
static const char *const k_cli_only[] = {"config", "print-config", "help", "fault-after", NULL};

/* 0 ok, 1 --help shown, 2 usage error (message printed). */
static int
s_parse_args(int argc, char **argv, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->max_restarts = 10;
    a->restart_period_s = 60;
    a->seed = 1;
    a->drain_timeout_ms = 30000;
    opterr = 0;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":vh", k_opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            a->id = optarg;
            break;
        case 'c':
            a->connect = optarg;
            break;
        case 's':
            a->spool = optarg;
            break;
        case 'm':
            a->method = optarg;
            break;
        case 'o':
            a->summary = optarg;
            break;
        case 'M':
            a->methods_dir = optarg;
            break;
        case 'e':
            a->serve = 1;
            break;
        case 'X':
            a->scenario = optarg;
            break;
        case 'R':
            if (!s_parse_u64(optarg, 256, &v) || v == 0)
                return s_usage_error("invalid --max-restarts '%s': expected 1..256", optarg);
            a->max_restarts = (uint32_t)v;
            break;
        case 'p':
            if (!s_parse_u64(optarg, 86400, &v) || v == 0)
                return s_usage_error("invalid --restart-period-s '%s': expected 1..86400",
                                     optarg);
            a->restart_period_s = (uint32_t)v;
            break;
        case 'F':
            a->faults = optarg;
            break;
        case 'G':
            break; /* --config: read before the flags */
        case 'g':
            a->print_config = 1;
            break;
        case 'C':
            a->cert = optarg;
            break;
        case 'K':
            a->server_key = optarg;
            break;
        case 'I':
            a->insecure = 1;
            break;
        case 'T':
            a->truth = optarg;
            break;
        case 'S':
            if (!s_parse_u64(optarg, UINT64_MAX, &a->seed))
                return s_usage_error("invalid --seed '%s': expected an unsigned integer", optarg);
            break;
        case 'd':
            if (!s_parse_u64(optarg, UINT32_MAX, &v))
                return s_usage_error("invalid --drain-timeout '%s': expected milliseconds",
                                     optarg);
            a->drain_timeout_ms = (uint32_t)v;
            break;
        case 'r':
            a->relaxed = 1;
            break;
        case 'B':
            if (!s_parse_u64(optarg, UINT64_MAX, &a->spool_max_bytes) ||
                a->spool_max_bytes < (1u << 20))
                return s_usage_error("invalid --spool-max-bytes '%s': expected bytes >= 1048576",
                                     optarg);
            break;
        case 'P': {
            hf_full_policy_t p;
            if (hf_full_policy_parse(optarg, &p) != HF_OK)
                return s_usage_error("invalid --full-policy '%s': expected decimate, drop-oldest "
                                     "or block", optarg);
            a->full_policy = (int)p;
            break;
        }
        case 'v':
            a->verbose = 1;
            break;
        case 'h':
            s_usage(stdout);
            return 1;
        case ':':
            return s_usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->id)
        return s_usage_error("missing %s", "--id NAME");
    if (!hf_engine_id_valid(a->id))
        return s_usage_error("invalid --id '%s': 1..64 characters of [A-Za-z0-9._-]", a->id);
    if (!a->connect || !*a->connect)
        return s_usage_error("missing %s", "--connect ENDPOINT");
    if (!a->spool || !*a->spool)
        return s_usage_error("missing %s", "--spool DIR");
    if (a->insecure && (a->cert || a->server_key))
        return s_usage_error("%s", "--insecure excludes --cert and --server-key");
    if (!a->insecure && (!a->cert || !*a->cert || !a->server_key || !*a->server_key))
        return s_usage_error("%s", "give --cert FILE and --server-key FILE (CURVE), or "
                                   "--insecure");
    if (a->method && !*a->method)
        return s_usage_error("empty %s", "--method FILE");
    if (a->methods_dir && !*a->methods_dir)
        return s_usage_error("empty %s", "--methods DIR");
    if (a->scenario && !*a->scenario)
        return s_usage_error("empty %s", "--scenario FILE");
    if (a->truth && !*a->truth)
        return s_usage_error("empty %s", "--truth FILE");
    if (!a->method && !a->scenario)
        a->serve = 1;
    return 0;
}

static hf_err_t
s_write_summary(const char *path, const char *line)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return HF_EINVAL;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        hf_log_error("engine", "summary=%s open failed: %s", tmp, strerror(errno));
        return HF_EIO;
    }
    int bad = fprintf(f, "%s\n", line) < 0;
    bad |= fclose(f) != 0;
    /* rename: a reader polling for the file sees all of it or nothing */
    if (bad || rename(tmp, path) != 0) {
        hf_log_error("engine", "summary=%s write failed: %s", path, strerror(errno));
        remove(tmp);
        return HF_EIO;
    }
    return HF_OK;
}

/* A scenario's method error, with the line in the scenario file. */
static void
s_scenario_method_error(const char *path, const hf_hwsim_scenario_t *sc, const char *err)
{
    unsigned line = 0;
    int off = 0;
    if (sscanf(err, "line %u: %n", &line, &off) == 1 && off > 0 && line > 0)
        fprintf(stderr, "holdfast-engine: scenario %s: line %u (method line %u): %s\n", path,
                hf_hwsim_scenario_method_line(sc) + line - 1, line, err + off);
    else
        fprintf(stderr, "holdfast-engine: scenario %s: method: %s\n", path, err);
}

/* The run's hardware policy: the scenario's (if any) over the defaults, and
 * the safe table from the instrument (NAN where an actuator has none). */
static void
s_apply_policy(hf_run_opts_t *ro, const hf_hwsim_scenario_t *sc, const hf_hwsim_t *sim,
               double *safe)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < HF_HWSIM_MAX_ACTUATORS; i++) {
        double v = NAN;
        if (hf_hwsim_actuator_safe(sim, i, &v) != HF_OK)
            v = NAN;
        safe[i] = v;
        if (!isnan(v))
            n = i + 1;
    }
    ro->hal.safe_values = safe;
    ro->hal.safe_count = n;
    if (!sc)
        return;
    const hf_hwsim_policy_t *p = hf_hwsim_scenario_policy(sc);
    if (p->set & HF_HWSIM_POLICY_RETRIES)
        ro->read_retries = ro->write_retries = p->retries;
    if (p->set & HF_HWSIM_POLICY_GRACE)
        ro->hal.disconnect_grace_ns = p->disconnect_grace_ns;
    if ((p->set & HF_HWSIM_POLICY_BACKOFF) && p->retry_backoff_ns)
        ro->hal.retry_backoff_ns = p->retry_backoff_ns;
}

/* The periodic progress line: sample timing is visible while a run lasts. */
static void
s_log_progress(const hf_controller_t *ctl)
{
    const hf_run_t *run = hf_controller_run(ctl);
    hf_run_state_t st = hf_controller_state(ctl);
    if (!run || (st != HF_RUN_RUNNING && st != HF_RUN_PAUSED))
        return;
    hf_run_counters_t c;
    hf_run_counters(run, &c);
    hf_log_info("engine", "run=%" PRIu64 " state=%s samples=%" PRIu64 " late=%" PRIu64
                " missed=%" PRIu64 " hw_errors=%" PRIu64 " hw_faults=%" PRIu64,
                hf_run_id(run), hf_run_state_name((uint8_t)st), c.samples, c.late, c.missed,
                c.hw_errors, c.hw_faults);
}

static void
s_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: let the sleep return early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the runner: a supervised task (docs/supervision.md) --------------------
 * The method runner, the hardware poller and the command handler are one
 * loop on one thread: the runner. It runs under hf_supervisor; a failure
 * (the fault hook in tests, an instrument that cannot be reopened) ends
 * this incarnation, and the next starts from known-good state: the run the
 * spool says was left running is ended "interrupted" (its records up to the
 * failure are all in the spool), the device is reopened, and a fresh
 * controller serves commands. Nothing of the failed incarnation's memory is
 * reused. */

typedef struct {
    const s_args_t *args;
    hf_hal_t hal;
    hf_dispatcher_t *disp;
    hf_controller_opts_t copts;
    const hf_hwsim_scenario_t *sc;
    hf_method_t *method;        /* started by the first incarnation, then NULL */
    bool hal_open;
    uint32_t incarnation;
    /* the last run, for the summary: written by the task, read by main
     * once the supervisor stopped */
    uint64_t run_id;
    hf_run_state_t state;
    hf_run_counters_t cnt;
    bool start_failed;          /* --method could not start: exit 1          */
} s_runner_t;

static void
s_runner_note(s_runner_t *r, const hf_controller_t *ctl)
{
    const hf_run_t *run = hf_controller_run(ctl);
    if (!run)
        return;
    r->run_id = hf_run_id(run);
    r->state = hf_run_state(run);
    hf_run_counters(run, &r->cnt);
}

/* Known-good state for a new incarnation: the spool's view of the run. */
static hf_err_t
s_runner_recover(s_runner_t *r, hf_task_ctx_t *ctx)
{
    hf_channel_t *ch = hf_dispatcher_channel(r->disp);
    hf_err_t rc = hf_channel_flush(ch); /* what the last incarnation sent is committed */
    if (rc != HF_OK)
        return hf_task_fail(ctx, rc, "flush before recovery");
    uint64_t run = 0;
    uint8_t st = HF_RUN_IDLE;
    hf_dispatcher_run(r->disp, &run, &st);
    if (run && (st == HF_RUN_RUNNING || st == HF_RUN_PAUSED)) {
        hf_record_t rec;
        uint64_t mono = hf_clock_mono_ns(), wall = hf_clock_wall_ns();
        hf_record_event(&rec, run, wall, mono, HF_EV_INTERRUPTED, 0, "engine task restarted");
        rc = hf_channel_send(ch, &rec);
        if (rc != HF_OK)
            return hf_task_fail(ctx, rc, "end run %llu", (unsigned long long)run);
        hf_log_warn("engine", "run=%" PRIu64 " interrupted: the runner restarted", run);
        if (run == r->run_id)
            r->state = HF_RUN_INTERRUPTED;
    }
    /* the hardware poller starts from the device, not from what it thought */
    if (r->hal_open) {
        r->hal.ops->close(r->hal.impl);
        r->hal_open = false;
    }
    hf_hal_error_t herr;
    memset(&herr, 0, sizeof herr);
    if (r->hal.ops->open(r->hal.impl, hf_clock_mono_ns(), &herr) != HF_HAL_OK)
        return hf_task_fail(ctx, HF_EUNAVAIL, "instrument reopen: %s", herr.reason);
    r->hal_open = true;
    return HF_OK;
}

/* The last run id this engine started, kept in the spool directory so that
 * ids never go back across restarts, whatever the wall clock did (a run id
 * is the wall clock at its start). A missing or unreadable file is 0. */
static uint64_t
s_last_run_read(const char *spool)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/last-run", spool);
    FILE *f = fopen(path, "r");
    unsigned long long id = 0;
    if (f) {
        if (fscanf(f, "%llu", &id) != 1)
            id = 0;
        fclose(f);
    }
    return id;
}

static void
s_last_run_write(const char *spool, uint64_t id)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/last-run", spool);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    int bad = fprintf(f, "%" PRIu64 "\n", id) < 0;
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        hf_log_warn("engine", "could not keep the last run id in %s", path);
    }
}

static hf_err_t
s_runner_task(hf_task_ctx_t *ctx, void *arg)
{
    s_runner_t *r = arg;
    const s_args_t *args = r->args;
    char errbuf[HF_METHOD_ERR_MAX];
    hf_err_t rc;
    if (r->incarnation++ > 0 && (rc = s_runner_recover(r, ctx)) != HF_OK)
        return rc;
    hf_controller_t *ctl = hf_controller_new(&r->hal, hf_dispatcher_channel(r->disp), &r->copts,
                                             &rc);
    if (!ctl)
        return hf_task_fail(ctx, rc, "controller");
    uint64_t kept_run = s_last_run_read(args->spool);
    if (kept_run < r->run_id)
        kept_run = r->run_id; /* an earlier incarnation's run */
    hf_controller_seed_run_id(ctl, kept_run);
    if (r->method) {
        hf_method_t *method = r->method;
        r->method = NULL; /* the controller owns it now */
        uint32_t nch = hf_method_channel_count(method);
        uint64_t dur_ms = hf_method_duration_ns(method) / 1000000u;
        char mname[HF_METHOD_NAME_MAX + 1];
        snprintf(mname, sizeof mname, "%s", hf_method_name(method));
        rc = hf_controller_start(ctl, method, hf_clock_mono_ns(), hf_clock_wall_ns(), errbuf,
                                 sizeof errbuf);
        if (hf_controller_state(ctl) != HF_RUN_RUNNING) {
            hf_log_error("engine", "run err=%s %s", hf_errname(rc), errbuf);
            r->start_failed = true;
            hf_controller_destroy(&ctl);
            return HF_OK; /* not a failure to restart from: the method can't run */
        }
        hf_log_info("engine", "engine=%s run=%" PRIu64 " method=%s channels=%u duration_ms=%" PRIu64
                    " started",
                    args->id, hf_run_id(hf_controller_run(ctl)), mname, nch, dur_ms);
    }
    if (args->serve)
        hf_log_info("engine", "engine=%s serving commands%s%s", args->id,
                    args->methods_dir ? " methods=" : "", args->methods_dir ? args->methods_dir : "");
    uint64_t send_errs_logged = 0;
    uint64_t progress_at = hf_clock_mono_ns() + S_PROGRESS_NS;
    uint64_t timing_at = 0;
    hf_run_state_t last_state = hf_controller_state(ctl);
    for (;;) {
        uint64_t now = hf_clock_mono_ns();
        if (now >= progress_at) {
            s_log_progress(ctl);
            progress_at = now + S_PROGRESS_NS;
        }
        if (s_stop) {
            if (hf_controller_abort(ctl, now) == HF_OK)
                hf_log_info("engine", "run=%" PRIu64 " signal: aborted",
                            hf_run_id(hf_controller_run(ctl)));
            break;
        }
        if (hf_task_should_stop(ctx))
            break; /* asked to stop, or (tests) made to fail */
        uint64_t next = HF_RUN_NEVER;
        rc = hf_controller_tick(ctl, now, &next);
        if (rc != HF_OK && send_errs_logged++ < 10)
            hf_log_error("engine", "send err=%s", hf_errname(rc));
        hf_run_state_t st = hf_controller_state(ctl);
        if (st != last_state) {
            const hf_run_t *run = hf_controller_run(ctl);
            hf_log_info("engine", "run=%" PRIu64 " state=%s%s", run ? hf_run_id(run) : 0,
                        hf_run_state_name((uint8_t)st),
                        run && hf_run_device_lost(run) ? " (device lost: reopening)" : "");
            last_state = st;
        }
        s_runner_note(r, ctl);
        if (r->run_id > kept_run) { /* a new run started: keep its id */
            kept_run = r->run_id;
            s_last_run_write(args->spool, kept_run);
        }
        if (now >= timing_at) { /* sample timing, visible in holdfast status */
            hf_dispatcher_set_timing(r->disp, r->cnt.samples, r->cnt.late, r->cnt.missed);
            timing_at = now + 500000000ull;
        }
        if (!args->serve && st != HF_RUN_RUNNING && st != HF_RUN_PAUSED)
            break;
        uint64_t cap = now + S_MAX_SLEEP_NS;
        if (next <= now)
            continue;
        hf_command_t cmd;
        rc = hf_dispatcher_next_command(r->disp, next < cap ? next : cap, &cmd);
        if (rc == HF_OK) {
            hf_err_t res = hf_controller_command(ctl, &cmd, hf_clock_mono_ns(), hf_clock_wall_ns());
            hf_log_info("engine", "command id=%" PRIu64 " verb=%s result=%s", cmd.id,
                        hf_command_verb_name(cmd.verb), hf_errname(res));
        }
    }
    s_runner_note(r, ctl);
    hf_controller_destroy(&ctl);
    return HF_OK;
}

static volatile sig_atomic_t s_gave_up = 0;

/* The supervisor gave up on the runner (logged by it): shut down cleanly
 * (the spool keeps everything) and exit 70 for the service manager. */
static void
s_on_escalate(const hf_supervisor_escalation_t *info, void *arg)
{
    (void)info;
    (void)arg;
    s_gave_up = 1;
}

/* The effective configuration, as a configuration file would give it. */
static void
s_print_config(const s_args_t *a)
{
    printf("holdfast-engine\n    id = \"%s\"\n    connect = \"%s\"\n    spool = \"%s\"\n", a->id,
           a->connect, a->spool);
    if (a->insecure)
        printf("    insecure = true\n");
    else
        printf("    cert = \"%s\"\n    server-key = \"%s\"\n", a->cert, a->server_key);
    if (a->method)
        printf("    method = \"%s\"\n", a->method);
    if (a->methods_dir)
        printf("    methods = \"%s\"\n", a->methods_dir);
    if (a->scenario)
        printf("    scenario = \"%s\"\n", a->scenario);
    printf("    serve = %s\n", a->serve ? "true" : "false");
    printf("    seed = %" PRIu64 "\n    drain-timeout = %u\n", a->seed, a->drain_timeout_ms);
    printf("    relaxed = %s\n", a->relaxed ? "true" : "false");
    if (a->spool_max_bytes)
        printf("    spool-max-bytes = %" PRIu64 "\n", a->spool_max_bytes);
    printf("    full-policy = %s\n", hf_full_policy_name((hf_full_policy_t)a->full_policy));
    printf("    max-restarts = %u\n    restart-period-s = %u\n", a->max_restarts,
           a->restart_period_s);
    if (a->summary)
        printf("    summary = \"%s\"\n", a->summary);
}

int
main(int argc, char **argv)
{
    s_args_t args;
    /* a configuration file: its options go first, so a flag wins */
    hf_config_args_t file = {0};
    char **argv2 = argv;
    int argc2 = argc;
    const char *cfg = hf_config_path(argc, argv);
    if (cfg) {
        char cerr[512];
        if (hf_config_load(cfg, "holdfast-engine", k_opts, k_cli_only, &file, cerr,
                           sizeof cerr) != HF_OK) {
            fprintf(stderr, "holdfast-engine: configuration %s\n", cerr);
            return 2;
        }
        argv2 = hf_config_merge(argc, argv, &file, &argc2);
        if (!argv2)
            return 1;
    }
    int prc = s_parse_args(argc2, argv2, &args);
    if (prc == 0 && args.print_config) {
        s_print_config(&args);
        prc = 1;
    }
    /* the strings args points at live in argv2 and file: kept to the end */
    if (prc != 0) {
        if (argv2 != argv)
            free(argv2);
        hf_config_args_free(&file);
        return prc == 1 ? 0 : 2;
    }

    hf_log_set_sink(hf_log_stderr_sink, NULL);
    hf_log_set_level(args.verbose ? HF_LOG_DEBUG : HF_LOG_INFO);

    int exit_code = 0;
    hf_err_t rc = HF_OK;
    char errbuf[HF_METHOD_ERR_MAX];
    hf_method_t *method = NULL;
    hf_hwsim_t *sim = NULL;
    hf_dispatcher_t *disp = NULL;
    hf_supervisor_t *sup = NULL;
    s_runner_t runner;
    memset(&runner, 0, sizeof runner);
    hf_hal_t hal = {0};
    hf_hwsim_scenario_t *sc = NULL;
    double safe[HF_HWSIM_MAX_ACTUATORS];
    const char *method_src = args.method;

    if (args.scenario) {
        char serr[HF_HWSIM_SCENARIO_ERR_MAX];
        sc = hf_hwsim_scenario_load(args.scenario, serr, sizeof serr, &rc);
        if (!sc) {
            fprintf(stderr, "holdfast-engine: scenario %s: %s\n", args.scenario, serr);
            exit_code = 2;
            goto done;
        }
    }
    if (args.method) {
        method = hf_method_load(args.method, errbuf, sizeof errbuf, &rc);
        if (!method) {
            fprintf(stderr, "holdfast-engine: method %s: %s\n", args.method, errbuf);
            exit_code = 2;
            goto done;
        }
    } else if (sc) {
        method_src = args.scenario;
        method = hf_method_parse(hf_hwsim_scenario_name(sc), hf_hwsim_scenario_method(sc), errbuf,
                                 sizeof errbuf, &rc);
        if (!method) {
            s_scenario_method_error(args.scenario, sc, errbuf);
            exit_code = 2;
            goto done;
        }
    }

    if (sc) {
        sim = hf_hwsim_new_from_scenario(sc, args.truth, &rc);
    } else {
        hf_hwsim_opts_t sopts = hf_hwsim_opts_default();
        sopts.seed = args.seed;
        sopts.truth_path = args.truth;
        sim = hf_hwsim_new(&sopts, &rc);
    }
    if (!sim) {
        hf_log_error("engine", "hwsim err=%s%s%s", hf_errname(rc), args.truth ? " truth=" : "",
                     args.truth ? args.truth : "");
        exit_code = rc == HF_EINVAL ? 2 : 1;
        goto done;
    }
    hal = hf_hwsim_hal(sim);

    /* Check the names before touching the spool: a method this instrument
     * cannot run is a usage error, not something to record. */
    hf_method_binding_t binding;
    if (method && hf_method_bind(method, &hal, &binding, errbuf, sizeof errbuf) != HF_OK) {
        if (method_src == args.scenario && !args.method)
            s_scenario_method_error(args.scenario, sc, errbuf);
        else
            fprintf(stderr, "holdfast-engine: method %s: %s\n", method_src, errbuf);
        exit_code = 2;
        goto done;
    }

    hf_dispatcher_opts_t dopts = hf_dispatcher_opts_default();
    dopts.engine_id = args.id;
    dopts.endpoint = args.connect;
    dopts.spool_dir = args.spool;
    if (args.relaxed)
        dopts.durable = false;
    if (args.spool_max_bytes)
        dopts.spool_max_bytes = (size_t)args.spool_max_bytes;
    dopts.full_policy = (hf_full_policy_t)args.full_policy;
    hf_dispatcher_keys_t keys;
    memset(&keys, 0, sizeof keys);
    if (args.insecure) {
        hf_log_warn("engine", "INSECURE: plain mechanism to the aggregator: no authentication, "
                              "no encryption");
    } else {
        if (hf_dispatcher_keys_load(args.cert, args.server_key, &keys) != HF_OK) {
            exit_code = 2;
            goto done;
        }
        dopts.curve_server_key = keys.server_key;
        dopts.curve_public_key = keys.public_key;
        dopts.curve_secret_key = keys.secret_key;
    }

    /* The worker thread inherits this mask: signals come to this thread. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    setenv("ZSYS_SIGHANDLER", "false", 1);
    disp = hf_dispatcher_open(&dopts, &rc);
    memset(&keys, 0, sizeof keys); /* the dispatcher keeps its own copy */
    s_disp = disp;
    s_install_signals();
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!disp) {
        hf_log_error("engine", "dispatcher open spool=%s err=%s", args.spool, hf_errname(rc));
        exit_code = 1;
        goto done;
    }
    hf_channel_t *ch = hf_dispatcher_channel(disp);

    runner.args = &args;
    runner.hal = hal;
    runner.disp = disp;
    runner.sc = sc;
    runner.copts = hf_controller_opts_default();
    runner.copts.methods_dir = args.methods_dir;
    s_apply_policy(&runner.copts.run, sc, sim, safe);

    /* Opened just before the run starts: a scenario's fault times count
     * from the first open (docs/hwsim.md). */
    hf_hal_error_t herr;
    memset(&herr, 0, sizeof herr);
    if (hal.ops->open(hal.impl, hf_clock_mono_ns(), &herr) != HF_HAL_OK) {
        hf_log_error("engine", "instrument open failed: %s", herr.reason);
        exit_code = 1;
        goto close;
    }
    runner.hal_open = true;
    if (sc)
        hf_log_info("engine", "engine=%s scenario=%s faults=%u retries=%u grace_ms=%" PRIu64
                    " backoff_us=%" PRIu64,
                    args.id, hf_hwsim_scenario_name(sc), hf_hwsim_scenario_fault_count(sc),
                    runner.copts.run.read_retries, runner.copts.run.hal.disconnect_grace_ns / 1000000u,
                    runner.copts.run.hal.retry_backoff_ns / 1000u);
    runner.method = method;
    method = NULL; /* the runner owns it now */

    hf_supervisor_opts_t sup_opts = hf_supervisor_opts_default();
    sup_opts.max_restarts = args.max_restarts;
    sup_opts.period_ms = (hf_ms_t)args.restart_period_s * 1000u;
    sup_opts.on_escalate = s_on_escalate;
    sup = hf_supervisor_new("engine", &sup_opts, &rc);
    hf_child_spec_t spec = {.name = "runner",
                            .run = s_runner_task,
                            .arg = &runner,
                            .restart = args.serve ? HF_TASK_PERMANENT : HF_TASK_TRANSIENT,
                            .shutdown_ms = 2000};
    if (!sup || (rc = hf_supervisor_add(sup, &spec)) != HF_OK ||
        (rc = hf_supervisor_start(sup)) != HF_OK) {
        hf_log_error("engine", "supervisor err=%s", hf_errname(rc));
        exit_code = 1;
        goto close;
    }
    /* Main waits: for a signal, for the runner to finish (--method), or for
     * the supervisor to give up. The fault hook (tests) fires from here. */
    uint64_t t0 = hf_clock_mono_ns();
    const char *next_fault = args.faults;
    for (;;) {
        hf_supervisor_stats_t sst;
        hf_supervisor_stats(sup, &sst);
        if (s_stop || s_gave_up || sst.state == HF_SUPERVISOR_STOPPED ||
            sst.state == HF_SUPERVISOR_ESCALATED || sst.children[0].state == HF_CHILD_DONE)
            break;
#ifdef HF_TESTING
        if (next_fault && *next_fault) {
            uint64_t at_ms = strtoull(next_fault, NULL, 10);
            if (hf_clock_mono_ns() - t0 >= at_ms * 1000000ull) {
                hf_log_warn("engine", "fault hook: task=runner at %" PRIu64 " ms", at_ms);
                hf_supervisor_inject_fault(sup, "runner");
                const char *comma = strchr(next_fault, ',');
                next_fault = comma ? comma + 1 : NULL;
            }
        }
#else
        (void)t0;
        (void)next_fault;
#endif
        hf_sleep_until_ns(hf_clock_mono_ns() + 20000000ull);
    }
    /* a signal: the runner aborts its run and returns within ~50 ms */
    hf_supervisor_stop(sup);
    hf_supervisor_stats_t fin;
    hf_supervisor_stats(sup, &fin);
    if (s_gave_up)
        hf_log_error("engine", "gave up on the runner after %u restarts in %u s: exiting 70",
                     fin.restarts_in_window, args.restart_period_s);
    else if (fin.restarts)
        hf_log_warn("engine", "runner restarted %" PRIu64 " time(s)", fin.restarts);
    if (runner.start_failed) {
        exit_code = 1;
        goto close;
    }
    uint64_t run_id = runner.run_id;
    hf_run_state_t state = runner.state;
    hf_run_counters_t cnt = runner.cnt;
    if (state == HF_RUN_INTERRUPTED)
        hf_log_warn("engine", "run=%" PRIu64 " interrupted hw_errors=%" PRIu64,
                    run_id, cnt.hw_errors);
    if (state == HF_RUN_FAILED)
        hf_log_warn("engine", "run=%" PRIu64 " failed (see its failed event)", run_id);
    if (cnt.send_errors)
        hf_log_error("engine", "run=%" PRIu64 " send_errors=%" PRIu64, run_id, cnt.send_errors);

    rc = hf_channel_flush(ch);
    if (rc == HF_ECLOSED && s_stop) {
        hf_log_warn("engine", "flush interrupted by a signal: what was committed stays in the "
                              "spool");
    } else if (rc != HF_OK) {
        hf_log_error("engine", "flush err=%s", hf_errname(rc));
        exit_code = 1;
    }
    uint32_t drain_ms = args.drain_timeout_ms;
    if ((state == HF_RUN_ABORTED || s_stop) && drain_ms > S_ABORT_DRAIN_MS)
        drain_ms = S_ABORT_DRAIN_MS;
    rc = hf_dispatcher_drain(disp, drain_ms);
    if (rc == HF_ECLOSED && s_stop) {
        hf_log_warn("engine", "drain interrupted by a signal: unacked records stay in the spool");
    } else if (rc == HF_ETIMEDOUT) {
        hf_log_warn("engine", "drain timed out after %u ms: unacked records stay in the spool",
                    drain_ms);
        /* after a signal the operator asked us to stop: a partial drain is expected */
        if (state != HF_RUN_ABORTED && !s_stop && exit_code == 0)
            exit_code = 3;
    } else if (rc != HF_OK) {
        hf_log_error("engine", "drain err=%s", hf_errname(rc));
        if (exit_code == 0)
            exit_code = 1;
    }

    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(disp, &st);
    char line[768];
    /* existing keys first, in their order (scripts parse them); new ones last */
    snprintf(line, sizeof line,
             "engine=%s epoch=%016" PRIx64 " run=%" PRIu64 " state=%s committed_control=%" PRIu64
             " committed_data=%" PRIu64 " acked_control=%" PRIu64 " acked_data=%" PRIu64
             " samples=%" PRIu64 " late=%" PRIu64 " missed=%" PRIu64 " dropped=%" PRIu64
             " gaps=%" PRIu64 " hw_errors=%" PRIu64 " hw_faults=%" PRIu64 " retries=%" PRIu64
             " reopens=%" PRIu64 " safe_writes=%" PRIu64 " paused_ms=%" PRIu64,
             args.id, st.epoch, run_id, hf_run_state_name((uint8_t)state),
             st.committed[HF_LANE_CONTROL], st.committed[HF_LANE_DATA], st.acked[HF_LANE_CONTROL],
             st.acked[HF_LANE_DATA], cnt.samples, cnt.late, cnt.missed, st.dropped, st.gaps,
             cnt.hw_errors, cnt.hw_faults, cnt.retries, cnt.reopens, cnt.safe_writes,
             cnt.paused_ns / 1000000u);
    printf("%s\n", line);
    fflush(stdout);
    if (args.summary && s_write_summary(args.summary, line) != HF_OK && exit_code == 0)
        exit_code = 1;

close:
    hf_supervisor_destroy(&sup); /* the runner has stopped: nothing uses disp */
    s_disp = NULL;
    hf_dispatcher_close(&disp);
done:
    hf_method_destroy(&runner.method);
    if (runner.hal_open)
        hal.ops->close(hal.impl);
    if (s_gave_up)
        exit_code = 70;
    if (sim && args.truth && hf_hwsim_truth_close(sim) != HF_OK) {
        hf_log_error("engine", "truth=%s incomplete (write failed)", args.truth);
        if (exit_code == 0)
            exit_code = 1;
    }
    hf_hwsim_destroy(&sim);
    hf_hwsim_scenario_destroy(&sc);
    hf_method_destroy(&method);
    if (argv2 != argv)
        free(argv2);
    hf_config_args_free(&file);
    return exit_code;
}
