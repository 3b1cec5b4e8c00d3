/* hf_bench.c - the benchmark driver behind `make bench` (scripts/bench.sh).
 *
 * One program, one subcommand per figure. Each subcommand prints its
 * results as "key value" lines on stdout (diagnostics go to stderr), and
 * exits non-zero if the run itself went wrong (data lost, timeout) — a
 * figure below its floor is judged by the script, not here.
 *
 *   raw-lmdb DIR N             ceiling: LMDB append, 32-byte values, MDB_APPEND,
 *                              commit per 10,000, full sync
 *   raw-zmq N                  ceiling: 32-byte samples in 32 KiB frames,
 *                              DEALER -> ROUTER over loopback TCP
 *   offline DIR N              dispatcher with no aggregator: send N, flush
 *   e2e AGG DIR N              connected, both durable: send N until all acked
 *   latency AGG DIR SECONDS    4 channels at 1 kHz: send -> ack covering it
 *   backlog AGG DIR N          N samples + a run event buffered offline, then
 *                              the aggregator comes up: drain time, control
 *                              lane time after reconnect, engine peak RSS
 *   agg-engines AGG DIR N S    N simulated engines at 4 kHz each for S seconds
 *   availability AGG DIR C W   link cut -> "unavailable" on the status feed
 *   lmdb-engines DIR E P R M   diagnostic: raw LMDB, E engines' key ranges
 *                              interleaved, a txn per engine or per round
 *                              (these three live in hf_bench_agg.c)
 *   hwsim AGG DIR RATE S       the real engine on a 32-channel hwsim at RATE
 *                              samples/s for S seconds: sustained or not
 *                              (hf_bench_hwsim.c)
 *
 * Design notes:
 * - This process plays the engine: producer thread + the real dispatcher
 *   (its worker thread, its LMDB spool, durable). AGG is the real
 *   holdfast-aggregator binary, started as a child process (posix_spawn,
 *   so no LMDB environment crosses a fork) and stopped by its PID. The
 *   engine's RSS is therefore this process's alone.
 * - The aggregator's commit can't be observed from outside without editing
 *   it. We observe the ACK instead, through hf_dispatcher_stats().acked,
 *   which moves only after the dispatcher received the ACK and trimmed its
 *   spool. The aggregator sends ACK only after its durable commit, so every
 *   "until stored" time here is an upper bound on the true figure.
 * - "Reconnect" is the moment the dispatcher's socket finished the ZMTP
 *   handshake; the dispatcher logs it ("connected engine=... HELLO") and our
 *   log sink stamps the time.
 * - Every run ends by reopening the aggregator's store (after the child has
 *   exited) and checking that exactly the records sent are stored.
 *
 * Invariants: every child process started here is stopped and reaped
 * before the subcommand returns; every wait is bounded by a deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hf_bench.h"
#include "hf_channel.h"
#include "hf_dispatcher.h"
#include "hf_log.h"
#include "hf_record.h"
#include "hf_spool.h"
#include "hf_store.h"
#include "hf_time.h"

extern char **environ;

#define S_RUN 1                      /* run id of every benchmark record       */
#define S_CHANNELS 4                 /* channels the samples cycle through     */
#define S_POLL_NS 200000ull          /* ns: stats polling interval             */
#define S_CONNECT_TIMEOUT_MS 20000u  /* ms: bound on waiting for the link      */
#define S_DRAIN_TIMEOUT_MS 120000u   /* ms: bound on any drain                 */
#define S_SPOOL_MAX ((size_t)4 << 30) /* bytes: spool bound for the backlog run */

/* Stamped by the log sink when the dispatcher reports a finished handshake. */
static _Atomic uint64_t s_connected_ns;

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static void
s_log_sink(hf_log_level_t lvl, const char *component, const char *msg, void *arg)
{
    (void)arg;
    if (strcmp(component, "dispatcher") == 0 && strncmp(msg, "connected ", 10) == 0) {
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&s_connected_ns, &zero, hf_clock_mono_ns());
    }
    if (lvl <= HF_LOG_WARN && !(strcmp(component, "dispatcher") == 0 &&
                                strncmp(msg, "link down", 9) == 0))
        hf_log_stderr_sink(lvl, component, msg, NULL);
}

static double
s_secs(uint64_t from_ns, uint64_t to_ns)
{
    return (double)(to_ns - from_ns) / 1e9;
}

void
hf_bench_sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int
s_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v == 0)
        return -1;
    *out = v;
    return 0;
}

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to 0, read,
 * close). The dispatcher needs a fixed endpoint before the aggregator runs. */
int
hf_bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Peak and current figures of this process from /proc/self/status (KiB). */
static uint64_t
s_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t flen = strlen(field);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoull(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* Reset VmHWM to the current RSS (Linux >= 4.0, "5" to clear_refs). */
static bool
s_reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

typedef hf_bench_agg_t s_agg_t;

/* Start the aggregator bound to 127.0.0.1:port with its store in dir/store;
 * extra: more arguments (NULL-terminated), or NULL. */
int
hf_bench_agg_start(hf_bench_agg_t *a, const char *bin, const char *dir, int port,
                   const char *const *extra)
{
    char bind[64], log[600];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hf-bench: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    snprintf(bind, sizeof bind, "tcp://127.0.0.1:%d", port);
    snprintf(a->store, sizeof a->store, "%s/store", dir);
    snprintf(log, sizeof log, "%s/aggregator.log", dir);
    /* --insecure: the figures are for the plain mechanism (docs/benchmarks.md;
     * docs/security.md says what CURVE costs). */
    char *argv[24] = {(char *)bin,   "--bind", bind, "--control", "tcp://127.0.0.1:*",
                      "--data", a->store, "--insecure", NULL};
    for (size_t i = 0, at = 8; extra && extra[i] && at + 1 < sizeof argv / sizeof *argv; i++)
        argv[at++] = (char *)extra[i]; /* argv[] stays NULL-terminated: zero-filled */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    int rc = posix_spawn(&a->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "hf-bench: cannot start %s: %s\n", bin, strerror(rc));
        a->pid = 0;
        return -1;
    }
    /* For scripts/bench.sh: if we die, it stops this PID (and only it). */
    snprintf(a->pidfile, sizeof a->pidfile, "%s/aggregator.pid", dir);
    FILE *f = fopen(a->pidfile, "w");
    if (f) {
        fprintf(f, "%d\n", (int)a->pid);
        fclose(f);
    }
    return 0;
}

static int
s_agg_start(s_agg_t *a, const char *bin, const char *dir, int port)
{
    return hf_bench_agg_start(a, bin, dir, port, NULL);
}

/* SIGTERM, then wait up to 10 s, then SIGKILL. Only our own child. */
void
hf_bench_agg_stop(hf_bench_agg_t *a)
{
    if (a->pid <= 0)
        return;
    kill(a->pid, SIGTERM);
    uint64_t dl = hf_clock_mono_ns() + 10000000000ull;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(a->pid, &st, WNOHANG);
        if (r == a->pid || (r < 0 && errno != EINTR))
            break;
        if (hf_clock_mono_ns() > dl) {
            fprintf(stderr, "hf-bench: aggregator pid=%d ignored SIGTERM: SIGKILL\n", (int)a->pid);
            kill(a->pid, SIGKILL);
            waitpid(a->pid, &st, 0);
            break;
        }
        hf_bench_sleep_ns(10000000ull);
    }
    a->pid = 0;
    unlink(a->pidfile);
}

/* Reopen the aggregator's store (the child has exited) and check counts. */
int
hf_bench_verify_store(const char *store_dir, const char *engine, uint64_t want_data,
                      uint64_t want_control)
{
    hf_err_t err = HF_OK;
    hf_store_t *st = hf_store_open(store_dir, NULL, &err);
    if (!st) {
        fprintf(stderr, "hf-bench: cannot open store %s: %s\n", store_dir, hf_errname(err));
        return -1;
    }
    hf_store_engine_t e;
    err = hf_store_engine_get(st, engine, &e);
    int rc = 0;
    if (err != HF_OK) {
        fprintf(stderr, "hf-bench: engine %s not in store: %s\n", engine, hf_errname(err));
        rc = -1;
    } else if (e.records[HF_LANE_DATA] != want_data ||
               e.records[HF_LANE_CONTROL] != want_control) {
        fprintf(stderr,
                "hf-bench: store holds data=%" PRIu64 " control=%" PRIu64 ", expected %" PRIu64
                "/%" PRIu64 "\n",
                e.records[HF_LANE_DATA], e.records[HF_LANE_CONTROL], want_data, want_control);
        rc = -1;
    }
    hf_store_close(&st);
    if (rc == 0)
        fprintf(stderr, "hf-bench: store verified: data=%" PRIu64 " control=%" PRIu64 "\n",
                want_data, want_control);
    return rc;
}

hf_dispatcher_t *
hf_bench_disp_open(const char *dir, const char *engine, int port, size_t spool_max)
{
    char ep[64], spool[600];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf(spool, sizeof spool, "%s/spool", dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hf-bench: mkdir %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    hf_dispatcher_opts_t o = hf_dispatcher_opts_default(); /* durable, default window */
    o.engine_id = engine;
    o.endpoint = ep;
    o.spool_dir = spool;
    if (spool_max)
        o.spool_max_bytes = spool_max;
    hf_err_t err = HF_OK;
    hf_dispatcher_t *d = hf_dispatcher_open(&o, &err);
    if (!d)
        fprintf(stderr, "hf-bench: dispatcher open: %s\n", hf_errname(err));
    return d;
}

bool
hf_bench_wait_connected(hf_dispatcher_t *d, uint32_t timeout_ms)
{
    uint64_t dl = hf_clock_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (hf_clock_mono_ns() < dl) {
        hf_dispatcher_stats_t st;
        hf_dispatcher_stats(d, &st);
        if (st.connected)
            return true;
        hf_bench_sleep_ns(S_POLL_NS);
    }
    return false;
}

/* Send n samples as fast as the channel takes them. The timestamps are
 * real clock reads, as an engine would stamp them. */
static hf_err_t
s_send_samples(hf_channel_t *ch, uint64_t n)
{
    uint64_t wall0 = hf_clock_wall_ns(), mono0 = hf_clock_mono_ns();
    hf_record_t r;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t mono = hf_clock_mono_ns();
        hf_record_sample(&r, S_RUN, wall0 + (mono - mono0), mono, (uint32_t)(i % S_CHANNELS),
                         (double)i * 0.5);
        hf_err_t rc = hf_channel_send(ch, &r);
        if (rc != HF_OK) {
            fprintf(stderr, "hf-bench: send #%" PRIu64 ": %s\n", i, hf_errname(rc));
            return rc;
        }
    }
    return HF_OK;
}

static hf_err_t
s_send_event(hf_channel_t *ch, hf_event_type_t type, const char *text)
{
    hf_record_t r;
    hf_record_event(&r, S_RUN, hf_clock_wall_ns(), hf_clock_mono_ns(), type, 0, text);
    return hf_channel_send(ch, &r);
}

/* ------------------------------------------------------------------ */
/* raw-lmdb                                                             */

static int
s_cmd_raw_lmdb(const char *dir, uint64_t n)
{
    const uint64_t per_commit = 10000;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int mrc = mkdir(dir, 0700);
    if (mrc != 0 && errno != EEXIST) {
        fprintf(stderr, "hf-bench: mkdir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    mrc = mdb_env_create(&env);
    if (mrc == MDB_SUCCESS) /* ~50 bytes per entry on a leaf page; room to spare */
        mrc = mdb_env_set_mapsize(env, (size_t)(n * 128 + (64u << 20)));
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open(env, dir, 0 /* full sync */, 0600);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_txn_begin(env, NULL, 0, &txn);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_dbi_open(txn, NULL, 0, &dbi);
    if (mrc == MDB_SUCCESS) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }
    uint8_t val[32];
    memset(val, 0xA5, sizeof val);
    uint64_t t0 = hf_clock_mono_ns();
    for (uint64_t i = 1; i <= n && mrc == MDB_SUCCESS; i++) {
        if (!txn)
            mrc = mdb_txn_begin(env, NULL, 0, &txn);
        if (mrc != MDB_SUCCESS)
            break;
        uint8_t kb[8];
        for (int b = 0; b < 8; b++)
            kb[b] = (uint8_t)(i >> (56 - 8 * b));
        memcpy(val, &i, sizeof i);
        MDB_val k = {sizeof kb, kb}, v = {sizeof val, val};
        mrc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        if (mrc == MDB_SUCCESS && (i % per_commit == 0 || i == n)) {
            mrc = mdb_txn_commit(txn);
            txn = NULL;
        }
    }
    uint64_t t1 = hf_clock_mono_ns();
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    if (mrc != MDB_SUCCESS) {
        fprintf(stderr, "hf-bench: raw lmdb: %s\n", mdb_strerror(mrc));
        return 1;
    }
    printf("raw_lmdb_append_per_s %.0f\n", (double)n / s_secs(t0, t1));
    printf("raw_lmdb_records %" PRIu64 "\n", n);
    return 0;
}

/* ------------------------------------------------------------------ */
/* raw-zmq                                                              */

#define S_ZMQ_FRAME 32768u
#define S_ZMQ_PER_FRAME (S_ZMQ_FRAME / 32u)

typedef struct {
    void *sock;
    uint64_t frames;
    int rc;
} s_zsend_t;

static void *
s_zmq_sender(void *arg)
{
    s_zsend_t *s = arg;
    uint8_t *buf = malloc(S_ZMQ_FRAME);
    if (!buf) {
        s->rc = -1;
        return NULL;
    }
    for (uint32_t i = 0; i < S_ZMQ_FRAME; i++)
        buf[i] = (uint8_t)i;
    for (uint64_t f = 0; f < s->frames; f++) {
        memcpy(buf, &f, sizeof f);
        if (zmq_send(s->sock, buf, S_ZMQ_FRAME, 0) < 0) {
            s->rc = -1;
            break;
        }
    }
    free(buf);
    return NULL;
}

static int
s_cmd_raw_zmq(uint64_t samples)
{
    uint64_t frames = (samples + S_ZMQ_PER_FRAME - 1) / S_ZMQ_PER_FRAME;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, rc = 1;
    char ep[256];
    size_t eplen = sizeof ep;
    uint8_t *buf = malloc(S_ZMQ_FRAME + 64);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    if (!buf || zmq_bind(router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0 ||
        zmq_connect(dealer, ep) != 0) {
        fprintf(stderr, "hf-bench: raw zmq setup: %s\n", zmq_strerror(errno));
        goto done;
    }
    /* One frame first, so the connection exists before the clock starts. */
    if (zmq_send(dealer, "hi", 2, 0) < 0 || zmq_recv(router, buf, 64, 0) < 0 ||
        zmq_recv(router, buf, 64, 0) < 0)
        goto done;
    s_zsend_t s = {.sock = dealer, .frames = frames, .rc = 0};
    pthread_t th;
    uint64_t t0 = hf_clock_mono_ns();
    if (pthread_create(&th, NULL, s_zmq_sender, &s) != 0)
        goto done;
    uint64_t got = 0, bytes = 0;
    while (got < frames) {
        int n = zmq_recv(router, buf, 64, 0); /* routing id */
        if (n < 0)
            break;
        n = zmq_recv(router, buf, S_ZMQ_FRAME + 64, 0);
        if (n < 0)
            break;
        bytes += (uint64_t)n;
        got++;
    }
    uint64_t t1 = hf_clock_mono_ns();
    pthread_join(th, NULL);
    if (got != frames || s.rc != 0 || bytes != frames * S_ZMQ_FRAME) {
        fprintf(stderr, "hf-bench: raw zmq: received %" PRIu64 "/%" PRIu64 " frames\n", got,
                frames);
        goto done;
    }
    printf("raw_zmq_samples_per_s %.0f\n", (double)(frames * S_ZMQ_PER_FRAME) / s_secs(t0, t1));
    printf("raw_zmq_samples %" PRIu64 "\n", frames * S_ZMQ_PER_FRAME);
    rc = 0;
done:
    free(buf);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
    return rc;
}

/* ------------------------------------------------------------------ */
/* offline                                                              */

static int
s_cmd_offline(const char *dir, uint64_t n)
{
    int port = hf_bench_free_port(); /* nobody listens there: the link stays down */
    hf_dispatcher_t *d = hf_bench_disp_open(dir, "bench-offline", port, 0);
    if (!d)
        return 1;
    hf_channel_t *ch = hf_dispatcher_channel(d);
    uint64_t t0 = hf_clock_mono_ns();
    hf_err_t rc = s_send_samples(ch, n);
    if (rc == HF_OK)
        rc = hf_channel_flush(ch);
    uint64_t t1 = hf_clock_mono_ns();
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    hf_dispatcher_close(&d);
    if (rc != HF_OK || st.committed[HF_LANE_DATA] != n) {
        fprintf(stderr, "hf-bench: offline: rc=%s committed=%" PRIu64 "\n", hf_errname(rc),
                st.committed[HF_LANE_DATA]);
        return 1;
    }
    printf("offline_append_per_s %.0f\n", (double)n / s_secs(t0, t1));
    printf("offline_records %" PRIu64 "\n", n);
    return 0;
}

/* ------------------------------------------------------------------ */
/* e2e                                                                  */

static int
s_cmd_e2e(const char *agg_bin, const char *dir, uint64_t n)
{
    const char *engine = "bench-e2e";
    int port = hf_bench_free_port();
    s_agg_t agg = {0};
    hf_dispatcher_t *d = NULL;
    int ret = 1;
    if (s_agg_start(&agg, agg_bin, dir, port) != 0)
        goto done;
    d = hf_bench_disp_open(dir, engine, port, 0);
    if (!d)
        goto done;
    if (!hf_bench_wait_connected(d, S_CONNECT_TIMEOUT_MS)) {
        fprintf(stderr, "hf-bench: e2e: link did not come up\n");
        goto done;
    }
    hf_channel_t *ch = hf_dispatcher_channel(d);
    uint64_t t0 = hf_clock_mono_ns();
    hf_err_t rc = s_send_samples(ch, n);
    if (rc == HF_OK)
        rc = hf_channel_flush(ch);
    uint64_t t_sent = hf_clock_mono_ns();
    if (rc == HF_OK)
        rc = hf_dispatcher_drain(d, S_DRAIN_TIMEOUT_MS);
    uint64_t t1 = hf_clock_mono_ns();
    if (rc != HF_OK) {
        fprintf(stderr, "hf-bench: e2e: %s\n", hf_errname(rc));
        goto done;
    }
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    if (st.acked[HF_LANE_DATA] != n || hf_bench_verify_store(agg.store, engine, n, 0) != 0)
        goto done;
    printf("e2e_per_s %.0f\n", (double)n / s_secs(t0, t1));
    printf("e2e_records %" PRIu64 "\n", n);
    printf("e2e_send_s %.3f\n", s_secs(t0, t_sent));
    printf("e2e_total_s %.3f\n", s_secs(t0, t1));
    ret = 0;
done:
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    return ret;
}

/* ------------------------------------------------------------------ */
/* latency                                                              */

typedef struct {
    hf_dispatcher_t *d;
    uint64_t base;       /* data seq before the first record            */
    uint64_t n;          /* records the producer will send              */
    uint64_t *ack_ns;    /* n: when the ACK covering record i was seen  */
    uint64_t *commit_ns; /* n: when the spool commit of record i was seen */
    _Atomic bool stop;
} s_lat_t;

static void *
s_ack_poller(void *arg)
{
    s_lat_t *L = arg;
    uint64_t seen = L->base, cseen = L->base;
    while (!atomic_load(&L->stop) && seen < L->base + L->n) {
        hf_dispatcher_stats_t st;
        hf_dispatcher_stats(L->d, &st);
        uint64_t now = hf_clock_mono_ns();
        uint64_t committed = st.committed[HF_LANE_DATA];
        if (committed > L->base + L->n)
            committed = L->base + L->n;
        for (uint64_t s = cseen + 1; s <= committed; s++)
            L->commit_ns[s - L->base - 1] = now;
        if (committed > cseen)
            cseen = committed;
        uint64_t acked = st.acked[HF_LANE_DATA];
        if (acked > L->base + L->n)
            acked = L->base + L->n;
        for (uint64_t s = seen + 1; s <= acked; s++)
            L->ack_ns[s - L->base - 1] = now;
        if (acked > seen)
            seen = acked;
        hf_bench_sleep_ns(250000ull); /* coarse on purpose: a busy poller steals a CPU */
    }
    return NULL;
}

static int
s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int
s_cmd_latency(const char *agg_bin, const char *dir, uint64_t seconds)
{
    const char *engine = "bench-latency";
    const uint64_t rate_hz = 1000;
    uint64_t ticks = seconds * rate_hz;
    uint64_t n = ticks * S_CHANNELS;
    int port = hf_bench_free_port();
    s_agg_t agg = {0};
    hf_dispatcher_t *d = NULL;
    s_lat_t L = {0};
    uint64_t *send_ns = calloc(n, sizeof *send_ns);
    L.ack_ns = calloc(n, sizeof *L.ack_ns);
    L.commit_ns = calloc(n, sizeof *L.commit_ns);
    bool poller = false;
    pthread_t th;
    int ret = 1;
    if (!send_ns || !L.ack_ns || !L.commit_ns)
        goto done;
    if (s_agg_start(&agg, agg_bin, dir, port) != 0)
        goto done;
    d = hf_bench_disp_open(dir, engine, port, 0);
    if (!d || !hf_bench_wait_connected(d, S_CONNECT_TIMEOUT_MS)) {
        fprintf(stderr, "hf-bench: latency: link did not come up\n");
        goto done;
    }
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    L.d = d;
    L.base = st.committed[HF_LANE_DATA];
    L.n = n;
    if (pthread_create(&th, NULL, s_ack_poller, &L) != 0)
        goto done;
    poller = true;
    hf_channel_t *ch = hf_dispatcher_channel(d);
    uint64_t wall0 = hf_clock_wall_ns(), start = hf_clock_mono_ns() + 10000000ull;
    uint64_t late = 0; /* ticks the producer started more than 1 ms late */
    for (uint64_t t = 0; t < ticks; t++) {
        uint64_t due = start + t * (1000000000ull / rate_hz);
        hf_sleep_until_ns(due);
        uint64_t now = hf_clock_mono_ns();
        if (now > due + 1000000ull)
            late++;
        for (uint32_t c = 0; c < S_CHANNELS; c++) {
            uint64_t i = t * S_CHANNELS + c;
            hf_record_t r;
            uint64_t mono = hf_clock_mono_ns();
            hf_record_sample(&r, S_RUN, wall0 + (mono - start), mono, c, (double)t);
            send_ns[i] = mono;
            hf_err_t rc = hf_channel_send(ch, &r);
            if (rc != HF_OK) {
                fprintf(stderr, "hf-bench: latency: send: %s\n", hf_errname(rc));
                goto done;
            }
        }
    }
    if (hf_channel_flush(ch) != HF_OK || hf_dispatcher_drain(d, S_DRAIN_TIMEOUT_MS) != HF_OK) {
        fprintf(stderr, "hf-bench: latency: drain timed out\n");
        goto done;
    }
    /* Let the poller see the last ACK (bounded). */
    uint64_t dl = hf_clock_mono_ns() + 2000000000ull;
    while (L.ack_ns[n - 1] == 0 && hf_clock_mono_ns() < dl)
        hf_bench_sleep_ns(S_POLL_NS);
    atomic_store(&L.stop, true);
    pthread_join(th, NULL);
    poller = false;
    /* Engine side alone: send -> spool commit (0 if the poller missed it:
     * then the ack time bounds it). */
    for (uint64_t i = 0; i < n; i++) {
        uint64_t c = L.commit_ns[i] ? L.commit_ns[i] : L.ack_ns[i];
        L.commit_ns[i] = c > send_ns[i] ? c - send_ns[i] : 0;
    }
    qsort(L.commit_ns, n, sizeof *L.commit_ns, s_cmp_u64);
    uint64_t *lat = send_ns; /* reuse: latency per record */
    for (uint64_t i = 0; i < n; i++) {
        if (L.ack_ns[i] == 0 || L.ack_ns[i] < send_ns[i]) {
            fprintf(stderr, "hf-bench: latency: record %" PRIu64 " has no ack time\n", i);
            goto done;
        }
        lat[i] = L.ack_ns[i] - send_ns[i];
    }
    qsort(lat, n, sizeof *lat, s_cmp_u64);
    double p50 = (double)lat[n / 2] / 1e6, p99 = (double)lat[(n * 99) / 100] / 1e6;
    double p999 = (double)lat[(n * 999) / 1000] / 1e6, mx = (double)lat[n - 1] / 1e6;
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    if (hf_bench_verify_store(agg.store, engine, n, 0) != 0)
        goto done;
    printf("latency_p50_ms %.3f\n", p50);
    printf("latency_p99_ms %.3f\n", p99);
    printf("latency_p999_ms %.3f\n", p999);
    printf("latency_max_ms %.3f\n", mx);
    printf("latency_commit_p50_ms %.3f\n", (double)L.commit_ns[n / 2] / 1e6);
    printf("latency_commit_p99_ms %.3f\n", (double)L.commit_ns[(n * 99) / 100] / 1e6);
    printf("latency_records %" PRIu64 "\n", n);
    printf("latency_late_ticks %" PRIu64 "\n", late);
    ret = 0;
done:
    if (poller) {
        atomic_store(&L.stop, true);
        pthread_join(th, NULL);
    }
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    free(send_ns);
    free(L.ack_ns);
    free(L.commit_ns);
    return ret;
}

/* ------------------------------------------------------------------ */
/* backlog: drain_10m_s, control_lane_after_reconnect_ms, engine RSS    */

static int
s_cmd_backlog(const char *agg_bin, const char *dir, uint64_t n)
{
    const char *engine = "bench-backlog";
    int port = hf_bench_free_port();
    s_agg_t agg = {0};
    int ret = 1;
    hf_dispatcher_t *d = hf_bench_disp_open(dir, engine, port, S_SPOOL_MAX);
    if (!d)
        return 1;
    hf_channel_t *ch = hf_dispatcher_channel(d);

    /* Offline: run_started, n samples, then the run's outcome last. */
    uint64_t t0 = hf_clock_mono_ns();
    hf_err_t rc = s_send_event(ch, HF_EV_RUN_STARTED, "bench");
    if (rc == HF_OK)
        rc = s_send_samples(ch, n);
    if (rc == HF_OK)
        rc = s_send_event(ch, HF_EV_COMPLETED, "");
    if (rc == HF_OK)
        rc = hf_channel_flush(ch);
    uint64_t t_buffered = hf_clock_mono_ns();
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(d, &st);
    if (rc != HF_OK || st.committed[HF_LANE_DATA] != n || st.connected) {
        fprintf(stderr, "hf-bench: backlog: buffering failed rc=%s committed=%" PRIu64 "\n",
                hf_errname(rc), st.committed[HF_LANE_DATA]);
        goto done;
    }
    uint64_t want_ctl = st.committed[HF_LANE_CONTROL], want_data = st.committed[HF_LANE_DATA];
    uint64_t hwm_buffering = s_status_kib("VmHWM");
    bool hwm_reset = s_reset_hwm();
    uint64_t anon_peak = 0, file_peak = 0, polls = 0;

    /* The aggregator comes up; from here on everything is the drain. */
    atomic_store(&s_connected_ns, 0);
    uint64_t t_up = hf_clock_mono_ns();
    if (s_agg_start(&agg, agg_bin, dir, port) != 0)
        goto done;
    uint64_t t_ctl = 0, t_all = 0, dl = t_up + (uint64_t)S_DRAIN_TIMEOUT_MS * 1000000ull;
    while (!t_all && hf_clock_mono_ns() < dl) {
        hf_dispatcher_stats(d, &st);
        uint64_t now = hf_clock_mono_ns();
        if (!t_ctl && st.acked[HF_LANE_CONTROL] >= want_ctl)
            t_ctl = now;
        if (t_ctl && st.acked[HF_LANE_DATA] >= want_data)
            t_all = now;
        if (++polls % 50 == 0) { /* /proc is costly: every ~10 ms only */
            uint64_t anon = s_status_kib("RssAnon"), file = s_status_kib("RssFile");
            if (anon > anon_peak)
                anon_peak = anon;
            if (file > file_peak)
                file_peak = file;
        }
        hf_bench_sleep_ns(S_POLL_NS);
    }
    uint64_t hwm_drain = s_status_kib("VmHWM");
    uint64_t t_conn = atomic_load(&s_connected_ns);
    if (!t_all || !t_conn) {
        fprintf(stderr, "hf-bench: backlog: not drained in %u ms (acked %" PRIu64 "/%" PRIu64
                        ", control %" PRIu64 "/%" PRIu64 ")\n",
                S_DRAIN_TIMEOUT_MS, st.acked[HF_LANE_DATA], want_data,
                st.acked[HF_LANE_CONTROL], want_ctl);
        goto done;
    }
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    if (hf_bench_verify_store(agg.store, engine, want_data, want_ctl) != 0)
        goto done;
    printf("backlog_records %" PRIu64 "\n", n);
    printf("backlog_buffer_s %.3f\n", s_secs(t0, t_buffered));
    printf("drain_10m_s %.3f\n", s_secs(t_up, t_all));
    printf("drain_after_reconnect_s %.3f\n", s_secs(t_conn, t_all));
    printf("reconnect_after_start_ms %.1f\n", s_secs(t_up, t_conn) * 1e3);
    printf("control_lane_after_reconnect_ms %.1f\n", s_secs(t_conn, t_ctl) * 1e3);
    printf("control_lane_after_start_ms %.1f\n", s_secs(t_up, t_ctl) * 1e3);
    printf("engine_peak_rss_mib %.1f\n", (double)hwm_drain / 1024.0);
    printf("engine_peak_rss_buffering_mib %.1f\n", (double)hwm_buffering / 1024.0);
    printf("engine_peak_rss_anon_mib %.1f\n", (double)anon_peak / 1024.0);
    printf("engine_peak_rss_file_mib %.1f\n", (double)file_peak / 1024.0);
    printf("engine_hwm_reset %d\n", (int)hwm_reset);
    ret = 0;
done:
    hf_dispatcher_close(&d);
    hf_bench_agg_stop(&agg);
    return ret;
}

/* ------------------------------------------------------------------ */
/* parts: where the time goes (diagnostic, no floor)                    */

static hf_err_t
s_count_cb(void *arg, uint64_t seq, const uint8_t *rec, size_t len)
{
    (void)seq;
    (void)rec;
    *(uint64_t *)arg += len;
    return HF_OK;
}

/* The drain's two durable halves, each alone, batch by batch as the link
 * moves them: the aggregator store committing batches of `batch` samples,
 * and the spool reading + trimming a backlog batch by batch. */
static int
s_cmd_parts(const char *dir, uint64_t n, uint64_t batch)
{
    char path[600];
    hf_err_t err = HF_OK;
    int ret = 1;
    hf_record_t *recs = calloc(batch, sizeof *recs);
    hf_spool_t *sp = NULL;
    hf_store_t *st = NULL;
    if (!recs || (mkdir(dir, 0700) != 0 && errno != EEXIST))
        goto done;
    snprintf(path, sizeof path, "%s/store", dir);
    st = hf_store_open(path, NULL, &err);
    if (!st)
        goto done;
    uint64_t t0 = hf_clock_mono_ns(), seq = 0;
    while (seq < n) {
        uint64_t k = n - seq < batch ? n - seq : batch;
        for (uint64_t i = 0; i < k; i++) {
            hf_record_sample(&recs[i], S_RUN, 1, 1, (uint32_t)(i % S_CHANNELS), 1.0);
            recs[i].seq = seq + i + 1;
        }
        err = hf_store_commit(st, "bench-parts", 7, HF_LANE_DATA, recs, k, 1, NULL, NULL);
        if (err != HF_OK)
            goto done;
        seq += k;
    }
    uint64_t t1 = hf_clock_mono_ns();
    printf("parts_store_commit_per_s %.0f\n", (double)n / s_secs(t0, t1));

    snprintf(path, sizeof path, "%s/spool", dir);
    hf_spool_opts_t so = hf_spool_opts_default();
    so.max_bytes = S_SPOOL_MAX;
    sp = hf_spool_open(path, &so, &err);
    if (!sp)
        goto done;
    for (seq = 0; seq < n; seq += 8192) {
        uint64_t k = n - seq < 8192 ? n - seq : 8192;
        hf_record_t *big = calloc(k, sizeof *big);
        if (!big)
            goto done;
        for (uint64_t i = 0; i < k; i++)
            hf_record_sample(&big[i], S_RUN, 1, 1, (uint32_t)(i % S_CHANNELS), 1.0);
        err = hf_spool_append(sp, big, k);
        free(big);
        if (err != HF_OK)
            goto done;
    }
    uint64_t t_read = 0, t_trim = 0, bytes = 0;
    for (seq = 1; seq <= n; seq += batch) {
        size_t got = 0;
        uint64_t a = hf_clock_mono_ns();
        err = hf_spool_read(sp, HF_LANE_DATA, seq, batch, (size_t)4 << 20, s_count_cb, &bytes,
                            &got);
        uint64_t b = hf_clock_mono_ns();
        if (err == HF_OK)
            err = hf_spool_trim(sp, HF_LANE_DATA, seq + got - 1);
        uint64_t c = hf_clock_mono_ns();
        if (err != HF_OK || got == 0)
            goto done;
        t_read += b - a;
        t_trim += c - b;
    }
    printf("parts_spool_read_per_s %.0f\n", (double)n / ((double)t_read / 1e9));
    printf("parts_spool_trim_per_s %.0f\n", (double)n / ((double)t_trim / 1e9));
    ret = 0;
done:
    if (ret != 0)
        fprintf(stderr, "hf-bench: parts: %s\n", hf_errname(err));
    hf_spool_close(&sp);
    hf_store_close(&st);
    free(recs);
    return ret;
}

/* ------------------------------------------------------------------ */

static void
s_usage(void)
{
    fprintf(stderr, "usage: hf-bench raw-lmdb DIR N | raw-zmq N | offline DIR N\n"
                    "       hf-bench e2e AGG DIR N | latency AGG DIR SECONDS | backlog AGG DIR N\n"
                    "       hf-bench parts DIR N BATCH   (diagnostic: store and spool alone)\n"
                    "       hf-bench agg-engines AGG DIR ENGINES SECONDS\n"
                    "       hf-bench availability AGG DIR CUTS WATCHDOG_MS\n"
                    "       hf-bench lmdb-engines DIR ENGINES PER ROUNDS engine|round|blob|dbi\n"
                    "       hf-bench hwsim AGG DIR RATE SECONDS   (RATE: samples/s, 32 channels)\n"
                    "  AGG: path of holdfast-aggregator; DIR: an empty scratch directory\n");
}

int
main(int argc, char **argv)
{
    hf_log_set_sink(s_log_sink, NULL);
    hf_log_set_level(HF_LOG_INFO); /* INFO carries the "connected" stamp */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t n = 0;
    if (argc == 4 && strcmp(argv[1], "raw-lmdb") == 0 && s_parse_u64(argv[3], &n) == 0)
        return s_cmd_raw_lmdb(argv[2], n);
    if (argc == 3 && strcmp(argv[1], "raw-zmq") == 0 && s_parse_u64(argv[2], &n) == 0)
        return s_cmd_raw_zmq(n);
    if (argc == 4 && strcmp(argv[1], "offline") == 0 && s_parse_u64(argv[3], &n) == 0)
        return s_cmd_offline(argv[2], n);
    if (argc == 5 && strcmp(argv[1], "e2e") == 0 && s_parse_u64(argv[4], &n) == 0)
        return s_cmd_e2e(argv[2], argv[3], n);
    if (argc == 5 && strcmp(argv[1], "latency") == 0 && s_parse_u64(argv[4], &n) == 0)
        return s_cmd_latency(argv[2], argv[3], n);
    if (argc == 5 && strcmp(argv[1], "backlog") == 0 && s_parse_u64(argv[4], &n) == 0)
        return s_cmd_backlog(argv[2], argv[3], n);
    uint64_t m = 0;
    if (argc == 6 && strcmp(argv[1], "agg-engines") == 0 && s_parse_u64(argv[4], &n) == 0 &&
        s_parse_u64(argv[5], &m) == 0)
        return hf_bench_cmd_agg_engines(argv[2], argv[3], n, m);
    if (argc == 6 && strcmp(argv[1], "availability") == 0 && s_parse_u64(argv[4], &n) == 0 &&
        s_parse_u64(argv[5], &m) == 0)
        return hf_bench_cmd_availability(argv[2], argv[3], n, m);
    uint64_t r = 0;
    if (argc == 7 && strcmp(argv[1], "lmdb-engines") == 0 && s_parse_u64(argv[3], &n) == 0 &&
        s_parse_u64(argv[4], &m) == 0 && s_parse_u64(argv[5], &r) == 0)
        return hf_bench_cmd_lmdb_engines(argv[2], n, m, r, argv[6]);
    if (argc == 6 && strcmp(argv[1], "hwsim") == 0 && s_parse_u64(argv[4], &n) == 0 &&
        s_parse_u64(argv[5], &m) == 0)
        return hf_bench_cmd_hwsim(argv[2], argv[3], n, m);
    uint64_t b = 0;
    if (argc == 5 && strcmp(argv[1], "parts") == 0 && s_parse_u64(argv[3], &n) == 0 &&
        s_parse_u64(argv[4], &b) == 0)
        return s_cmd_parts(argv[2], n, b);
    s_usage();
    return 2;
}
