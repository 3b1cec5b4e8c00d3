/* hostile.c - ctest hostile_peers: hostile input at a real aggregator's
 * engine port while a real engine streams a run through the same port.
 *
 *   hostile AGGREGATOR ENGINE HOLDFAST_CLI METHOD
 *
 * Starts holdfast-aggregator (temp --data, ephemeral ports, read from its
 * "listening engines=" line) and holdfast-engine (id real-eng) running
 * METHOD, then runs the cases below one after the other while the run
 * streams. After each case: the aggregator is alive, the real engine was not
 * disturbed (no "engine=real-eng unavailable/reconnected" line appeared),
 * and the case's own expectation holds. At the end the engine must exit 0
 * with committed == acked, and `holdfast export` must hold per lane exactly
 * seqs 1..committed of its epoch, each once.
 *
 * Cases (what each proves):
 *   garbage      random bytes on raw TCP: the aggregator drops the
 *                connection (its ZMTP layer), nothing else changes.
 *   greeting     a ZMTP 3.0 greeting with an unknown security mechanism:
 *                connection closed.
 *   no_routing_id  a DEALER without an engine id sends a valid HELLO:
 *                refused, logged ("invalid routing id"), no WELCOME.
 *   malformed    a DEALER (id hostile-mp) sends broken msgpack (truncated,
 *                an array32 claiming 4 G elements, a map, trailing bytes):
 *                each refused and logged ("malformed frame"), no reply.
 *   multipart    a two-part message: refused, logged.
 *   oversized    HF_PROTO_MAX_FRAME + 1 bytes: ZMQ_MAXMSGSIZE makes the
 *                aggregator drop that connection (the DEALER's monitor sees
 *                DISCONNECTED); exactly HF_PROTO_MAX_FRAME bytes of junk
 *                pass ZeroMQ and are refused by the decoder, logged.
 *   version      HELLO speaking only versions 7..9: refused, logged, no
 *                WELCOME; a PING written in version 9 after it: refused.
 *   nohello      a BATCH from a peer that never said HELLO: not committed,
 *                no ACK.
 *   dup_id       two connections claim id hostile-dup at once (each says
 *                HELLO): the aggregator serves one (WELCOME to the newer),
 *                the older connection is dropped (ROUTER_HANDOVER), logged.
 *   old_epoch    hostile-ep commits seqs 1..3 in epoch A, then 1..2 in a
 *                new epoch B, then comes back with the old epoch A: the
 *                aggregator resumes A from its cursor (WELCOME acked=3),
 *                skips the replayed 1..3, stores 4; nothing stored twice.
 *   silent       200 raw TCP connections that never speak, held 3 s: the
 *                real engine streams on and a new peer still gets WELCOME.
 * These protocol-level cases need peers that get past the handshake: this
 * run starts the aggregator, the engine and the CLI with --insecure (the
 * plain mechanism). The secure path has its own run:
 *
 *   hostile --secure AGGREGATOR HOLDFAST_CLI
 *
 * starts a CURVE aggregator (keys made with `holdfast keygen`) and checks
 * that raw peers are refused at the handshake (docs/security.md): a plain
 * DEALER saying HELLO (no WELCOME, "handshake failed" logged), a CURVE
 * DEALER with a key the aggregator does not know (no WELCOME, "unknown key"
 * logged with its address), garbage bytes (connection closed); the
 * aggregator stays up and counts each refusal.
 *
 * Log lines are asserted loosely (an extended regex per case). Cases where
 * the aggregator can't see the fault (ZeroMQ drops the connection below
 * it: garbage, greeting, oversized, silent) need no log line unless
 * HF_HOSTILE_STRICT=1; the test then prints "GAP" instead (see
 * docs/testing.md).
 *
 * Processes: only the two this program started, by PID (SIGTERM, bounded
 * wait, SIGKILL), also on failure (atexit). The work directory
 * /tmp/holdfast-hostile.XXXXXX is removed on success, kept on failure
 * (HF_E2E_KEEP=1 keeps it always). Bounded: every wait has a deadline.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "hf_proto.h"
#include "hf_record.h"
#include "hf_time.h"

#define S_REAL "real-eng"
#define S_SILENT 200

static char s_dir[256];
static char s_agg_log[300], s_eng_log[300];
static pid_t s_agg_pid = -1, s_eng_pid = -1;
static char s_ep[128], s_ctl_ep[128];
static int s_port;
static void *s_zctx;
static const char *s_cli;
static const char *const s_below = "ZeroMQ handles it below the aggregator and does not tell it";
static bool s_failed, s_strict;
static bool s_always_clean; /* remove the work dir even on failure */
static int s_gaps;
static hf_ms_t s_t0;
/* CURVE for the DEALERs s_dealer makes (the --secure run), else plain. */
static char s_curve_server[41], s_curve_pub[41], s_curve_sec[41];

static void
s_say(const char *fmt, ...)
{
    hf_ms_t ms = hf_clock_mono_ms() - s_t0;
    printf("[hostile %3u.%03us] ", (unsigned)(ms / 1000), (unsigned)(ms % 1000));
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            s_say("FAIL (%s:%d) %s", __FILE__, __LINE__, #cond);                           \
            s_say(__VA_ARGS__);                                                            \
            s_failed = true;                                                               \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* ---- processes ---------------------------------------------------------- */

static void
s_stop_pid(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = -1;
            return;
        }
        poll(NULL, 0, 50);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = -1;
}

static void
s_at_exit(void)
{
    s_stop_pid(&s_eng_pid);
    s_stop_pid(&s_agg_pid);
    if (s_dir[0]) {
        if ((!s_failed || s_always_clean) && !getenv("HF_E2E_KEEP")) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", s_dir);
        } else {
            printf("work directory kept: %s\n", s_dir);
        }
    }
}

static pid_t
s_spawn(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Run the CLI to completion (bounded); its stdout into `out`. */
static int
s_cli_run(const char *out, const char *a1, const char *a2, const char *a3, const char *a4,
          const char *a5, const char *a6)
{
    char errp[300];
    snprintf(errp, sizeof errp, "%s/cli.err", s_dir);
    char *argv[] = {(char *)s_cli, "--control", s_ctl_ep, "--insecure", (char *)a1, (char *)a2,
                    (char *)a3, (char *)a4, (char *)a5, (char *)a6, NULL};
    pid_t pid = s_spawn(argv, out, errp);
    hf_ms_t deadline = hf_clock_mono_ms() + 20000;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (hf_clock_mono_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        poll(NULL, 0, 20);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the aggregator's log ------------------------------------------------- */

static char *
s_slurp(const char *path, size_t from, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    size_t n = end > (long)from ? (size_t)end - from : 0;
    char *buf = malloc(n + 1);
    fseek(f, (long)from, SEEK_SET);
    n = fread(buf, 1, n, f);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = n;
    return buf;
}

static size_t
s_log_size(void)
{
    struct stat st;
    return stat(s_agg_log, &st) == 0 ? (size_t)st.st_size : 0;
}

/* The first line of the log after offset `from` matching `re` (copied to
 * line), waiting up to ms. */
static bool
s_log_wait(size_t from, const char *re, int ms, char *line, size_t cap)
{
    regex_t rx;
    CHECK(regcomp(&rx, re, REG_EXTENDED | REG_NEWLINE) == 0, "bad regex %s", re);
    hf_ms_t deadline = hf_clock_mono_ms() + (hf_ms_t)ms;
    bool found = false;
    for (;;) {
        char *text = s_slurp(s_agg_log, from, NULL);
        regmatch_t m;
        if (text && regexec(&rx, text, 1, &m, 0) == 0) {
            const char *b = text + m.rm_so, *e = text + m.rm_eo;
            while (b > text && b[-1] != '\n')
                b--;
            while (*e && *e != '\n')
                e++;
            if (line)
                snprintf(line, cap, "%.*s", (int)(e - b), b);
            found = true;
        }
        free(text);
        if (found || hf_clock_mono_ms() >= deadline)
            break;
        poll(NULL, 0, 50);
    }
    regfree(&rx);
    return found;
}

/* A log expectation: gap_why NULL: the line is required. Otherwise a
 * missing line is a GAP, printed with gap_why, failing only in strict mode
 * (faults the aggregator cannot see, or logs only at debug level). */
static void
s_expect_log(const char *name, size_t from, const char *re, const char *gap_why)
{
    bool required = gap_why == NULL;
    char line[400];
    /* a required line comes at once; a GAP need not hold the run up long */
    if (s_log_wait(from, re, gap_why ? 1000 : 3000, line, sizeof line)) {
        s_say("  %s: logged: %.220s", name, line);
        return;
    }
    if (required || s_strict) {
        CHECK(0, "%s: no aggregator log line matching /%s/", name, re);
    }
    s_gaps++;
    s_say("  %s: GAP: no aggregator log line matching /%s/ (%s)", name, re, gap_why);
}

/* The real engine was not disturbed since `from`, and everyone is alive. */
static void
s_expect_undisturbed(const char *name, size_t from)
{
    CHECK(waitpid(s_agg_pid, NULL, WNOHANG) == 0, "%s: the aggregator died", name);
    char line[400];
    bool hit = s_log_wait(from, "engine=" S_REAL " (unavailable reason=\"link|reconnected)", 0,
                          line, sizeof line);
    CHECK(!hit, "%s: the real engine was disturbed: %s", name, line);
}

/* ---- peers ------------------------------------------------------------------ */

typedef struct {
    void *sock;
    void *mon;
} s_peer_t;

static s_peer_t
s_dealer(const char *id, bool reconnect)
{
    static int n;
    s_peer_t p;
    int zero = 0, neg = -1;
    int64_t maxmsg = -1;
    p.sock = zmq_socket(s_zctx, ZMQ_DEALER);
    CHECK(p.sock, "zmq_socket");
    zmq_setsockopt(p.sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p.sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (!reconnect)
        zmq_setsockopt(p.sock, ZMQ_RECONNECT_IVL, &neg, sizeof neg);
    if (id)
        zmq_setsockopt(p.sock, ZMQ_ROUTING_ID, id, strlen(id));
    if (s_curve_server[0]) {
        zmq_setsockopt(p.sock, ZMQ_CURVE_SERVERKEY, s_curve_server, 41);
        zmq_setsockopt(p.sock, ZMQ_CURVE_PUBLICKEY, s_curve_pub, 41);
        zmq_setsockopt(p.sock, ZMQ_CURVE_SECRETKEY, s_curve_sec, 41);
    }
    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://hostile-mon-%d", n++);
    CHECK(zmq_socket_monitor(p.sock, mon_ep,
                             ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0,
          "monitor");
    p.mon = zmq_socket(s_zctx, ZMQ_PAIR);
    zmq_setsockopt(p.mon, ZMQ_LINGER, &zero, sizeof zero);
    CHECK(zmq_connect(p.mon, mon_ep) == 0, "monitor connect");
    CHECK(zmq_connect(p.sock, s_ep) == 0, "connect %s", s_ep);
    return p;
}

static void
s_peer_close(s_peer_t *p)
{
    zmq_close(p->sock);
    zmq_close(p->mon);
    p->sock = p->mon = NULL;
}

/* Wait for a monitor event; true if `want` came within ms. */
static bool
s_peer_event(s_peer_t *p, uint16_t want, int ms)
{
    hf_ms_t deadline = hf_clock_mono_ms() + (hf_ms_t)ms;
    for (;;) {
        hf_ms_t now = hf_clock_mono_ms();
        if (now >= deadline)
            return false;
        zmq_pollitem_t it = {.socket = p->mon, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, (long)(deadline - now)) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, p->mon, 0) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&m) >= 2)
            memcpy(&ev, zmq_msg_data(&m), 2);
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            zmq_msg_recv(&m, p->mon, 0);
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == want)
            return true;
    }
}

static void
s_send(s_peer_t *p, const void *buf, size_t len)
{
    CHECK(zmq_send(p->sock, buf, len, 0) == (int)len, "zmq_send: %s", zmq_strerror(errno));
}

/* Next frame from the aggregator within ms, decoded; false if none. */
static bool
s_recv(s_peer_t *p, int ms, hf_frame_t *f)
{
    zmq_pollitem_t it = {.socket = p->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0)
        return false;
    uint8_t buf[4096];
    int n = zmq_recv(p->sock, buf, sizeof buf, 0);
    if (n < 0)
        return false;
    hf_record_t recs[4];
    CHECK(hf_frame_decode(buf, (size_t)n, f, recs, 4) == HF_OK, "aggregator sent a bad frame");
    return true;
}

static size_t
s_hello(uint8_t *buf, size_t cap, const char *id, uint64_t epoch, uint16_t vmin, uint16_t vmax)
{
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    snprintf(h.engine, sizeof h.engine, "%s", id);
    h.epoch = epoch;
    h.ver_min = vmin;
    h.ver_max = vmax;
    size_t len = 0;
    CHECK(hf_frame_encode_hello(&h, buf, cap, &len) == HF_OK, "encode hello");
    return len;
}

/* A data-lane BATCH of samples seqs first..last (run 0). */
static size_t
s_batch(uint8_t *buf, size_t cap, uint64_t first, uint64_t last)
{
    hf_batch_writer_t w;
    CHECK(hf_batch_begin(&w, HF_LANE_DATA, buf, cap) == HF_OK, "batch begin");
    for (uint64_t s = first; s <= last; s++) {
        hf_record_t r;
        hf_record_sample(&r, 0, 1000 + s, 2000 + s, 0, (double)s);
        r.seq = s;
        CHECK(hf_batch_add(&w, &r) == HF_OK, "batch add");
    }
    size_t len = 0;
    CHECK(hf_batch_finish(&w, &len) == HF_OK, "batch finish");
    return len;
}

/* HELLO as `id`/epoch; true and *w on WELCOME within 3 s. */
static bool
s_say_hello(s_peer_t *p, const char *id, uint64_t epoch, hf_welcome_t *w)
{
    uint8_t buf[256];
    size_t n = s_hello(buf, sizeof buf, id, epoch, HF_PROTO_VERSION_MIN, HF_PROTO_VERSION);
    s_send(p, buf, n);
    hf_frame_t f;
    hf_ms_t deadline = hf_clock_mono_ms() + 3000;
    while (hf_clock_mono_ms() < deadline) {
        if (!s_recv(p, 200, &f))
            continue;
        if (f.type == HF_FRAME_WELCOME) {
            *w = f.u.welcome;
            return true;
        }
    }
    return false;
}

/* Send a BATCH and wait for the ACK covering `last`. */
static bool
s_commit(s_peer_t *p, uint64_t first, uint64_t last)
{
    static uint8_t buf[65536];
    size_t n = s_batch(buf, sizeof buf, first, last);
    s_send(p, buf, n);
    hf_frame_t f;
    hf_ms_t deadline = hf_clock_mono_ms() + 3000;
    while (hf_clock_mono_ms() < deadline) {
        if (s_recv(p, 200, &f)) {
            if (f.type == HF_FRAME_ACK && f.u.ack.lane == HF_LANE_DATA && f.u.ack.seq >= last)
                return true;
            if (getenv("HF_HOSTILE_TRACE"))
                fprintf(stderr, "  (got %s lane=%u seq=%llu)\n", hf_frame_name(f.type),
                        f.u.ack.lane, (unsigned long long)f.u.ack.seq);
        }
    }
    return false;
}

/* ---- raw TCP -------------------------------------------------------------------- */

static int
s_tcp(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "tcp connect: %s",
          strerror(errno));
    return fd;
}

/* Read (and discard) until the peer closes; true if it did within ms. */
static bool
s_tcp_closed_within(int fd, int ms)
{
    hf_ms_t deadline = hf_clock_mono_ms() + (hf_ms_t)ms;
    uint8_t buf[4096];
    for (;;) {
        hf_ms_t now = hf_clock_mono_ms();
        if (now >= deadline)
            return false;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            return true;
    }
}

/* ---- cases ---------------------------------------------------------------------- */

static void
s_case_garbage(void)
{
    size_t from = s_log_size();
    int fd = s_tcp();
    uint8_t junk[4096];
    uint64_t x = 0x1234567887654321ull;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        junk[i] = (uint8_t)(x >> 56);
    }
    junk[0] = 0x47; /* not 0xFF: not a ZMTP 2/3 signature either */
    send(fd, junk, sizeof junk, MSG_NOSIGNAL);
    bool closed = s_tcp_closed_within(fd, 2000);
    close(fd);
    s_say("garbage: 4 KiB of random bytes on raw TCP: connection %s",
          closed ? "closed by the aggregator" : "still open after 2 s (ZeroMQ waits for more)");
    s_expect_log("garbage", from, "refused|invalid|garbage|protocol|handshake", s_below);
    s_expect_undisturbed("garbage", from);
}

static void
s_case_greeting(void)
{
    size_t from = s_log_size();
    int fd = s_tcp();
    uint8_t g[64];
    memset(g, 0, sizeof g);
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = 3; /* ZMTP 3.0 */
    g[11] = 0;
    memcpy(g + 12, "BOGUS-MECHANISM", 15);
    send(fd, g, sizeof g, MSG_NOSIGNAL);
    bool closed = s_tcp_closed_within(fd, 5000);
    close(fd);
    CHECK(closed, "greeting: a greeting with mechanism BOGUS-MECHANISM was not closed in 5 s");
    s_say("greeting: ZMTP 3.0 with an unknown mechanism: connection closed by the aggregator");
    s_expect_log("greeting", from, "refused|mechanism|handshake|protocol", s_below);
    s_expect_undisturbed("greeting", from);
}

static void
s_case_no_routing_id(void)
{
    size_t from = s_log_size();
    s_peer_t p = s_dealer(NULL, false);
    uint8_t buf[256];
    size_t n = s_hello(buf, sizeof buf, "hostile-anon", 77, HF_PROTO_VERSION_MIN,
                       HF_PROTO_VERSION);
    s_send(&p, buf, n);
    s_expect_log("no_routing_id", from, "frame refused peer=\\(invalid routing id\\)", NULL);
    hf_frame_t f;
    CHECK(!s_recv(&p, 500, &f), "no_routing_id: the aggregator answered (frame type %u)", f.type);
    s_peer_close(&p);
    s_expect_undisturbed("no_routing_id", from);
}

static void
s_case_malformed(void)
{
    size_t from = s_log_size();
    s_peer_t p = s_dealer("hostile-mp", false);
    CHECK(s_peer_event(&p, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 3000), "malformed: no handshake");
    static const uint8_t truncated[] = {0x93, 0x01};
    static const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t a_map[] = {0x81, 0xa1, 'a', 0x01};
    static const uint8_t not_msgpack[] = "GET / HTTP/1.0\r\n\r\n";
    uint8_t trailing[300];
    size_t tn = s_hello(trailing, sizeof trailing - 1, "hostile-mp", 5, 1, 1);
    trailing[tn++] = 0xc0; /* one byte after a valid HELLO */
    s_send(&p, truncated, sizeof truncated);
    s_send(&p, huge_array, sizeof huge_array);
    s_send(&p, a_map, sizeof a_map);
    s_send(&p, not_msgpack, sizeof not_msgpack - 1);
    s_send(&p, trailing, tn);
    s_send(&p, "", 0);
    s_expect_log("malformed", from,
                 "frame refused peer=hostile-mp reason=\"malformed frame\" err=HF_E(PROTO|CORRUPT)",
                 NULL);
    /* all six refused (loosely: count lines) */
    hf_ms_t deadline = hf_clock_mono_ms() + 3000;
    int count = 0;
    while (hf_clock_mono_ms() < deadline) {
        char *text = s_slurp(s_agg_log, from, NULL);
        count = 0;
        for (char *q = text; (q = strstr(q, "frame refused peer=hostile-mp")); q++)
            count++;
        free(text);
        if (count >= 6)
            break;
        poll(NULL, 0, 50);
    }
    CHECK(count == 6, "malformed: %d refusal lines for 6 malformed frames", count);
    hf_frame_t f;
    CHECK(!s_recv(&p, 300, &f), "malformed: the aggregator answered (frame type %u)", f.type);
    s_peer_close(&p);
    s_say("malformed: 6 broken frames (truncated, array32 of 4 G, map, text, trailing byte, "
          "empty): 6 refusals, no reply");
    s_expect_undisturbed("malformed", from);
}

static void
s_case_multipart(void)
{
    size_t from = s_log_size();
    s_peer_t p = s_dealer("hostile-mpart", false);
    uint8_t buf[256];
    size_t n = s_hello(buf, sizeof buf, "hostile-mpart", 9, 1, 1);
    CHECK(zmq_send(p.sock, buf, n, ZMQ_SNDMORE) == (int)n, "send");
    s_send(&p, buf, n);
    s_expect_log("multipart", from,
                 "frame refused peer=hostile-mpart reason=\"message must be exactly one frame\"",
                 NULL);
    hf_frame_t f;
    CHECK(!s_recv(&p, 300, &f), "multipart: the aggregator answered (frame type %u)", f.type);
    s_peer_close(&p);
    s_expect_undisturbed("multipart", from);
}

static void
s_case_oversized(void)
{
    size_t from = s_log_size();
    size_t big = HF_PROTO_MAX_FRAME;
    uint8_t *junk = malloc(big + 1);
    memset(junk, 0x91, big + 1);
    /* exactly the limit: ZeroMQ passes it, the decoder refuses it */
    s_peer_t p = s_dealer("hostile-big", false);
    CHECK(s_peer_event(&p, ZMQ_EVENT_HANDSHAKE_SUCCEEDED, 3000), "oversized: no handshake");
    s_send(&p, junk, big);
    s_expect_log("oversized (at the limit)", from,
                 "frame refused peer=hostile-big reason=\"malformed frame\"", NULL);
    /* one byte more: the aggregator's ZMQ_MAXMSGSIZE drops the connection */
    s_send(&p, junk, big + 1);
    bool dropped = s_peer_event(&p, ZMQ_EVENT_DISCONNECTED, 5000);
    CHECK(dropped, "oversized: a %zu-byte frame did not get the connection dropped", big + 1);
    s_say("oversized: %zu bytes refused by the decoder; %zu bytes: connection dropped", big,
          big + 1);
    s_peer_close(&p);
    free(junk);
    s_expect_log("oversized (over the limit)", from,
                 "hostile-big.*(oversized|too large|MAXMSGSIZE|disconnect)", s_below);
    s_expect_undisturbed("oversized", from);
}

static void
s_case_version(void)
{
    size_t from = s_log_size();
    s_peer_t p = s_dealer("hostile-ver", false);
    uint8_t buf[256];
    size_t n = s_hello(buf, sizeof buf, "hostile-ver", 0xabcdef, 7, 9);
    s_send(&p, buf, n);
    s_expect_log("version", from,
                 "hostile-ver.*(no common protocol version|versions=7\\.\\.9)", NULL);
    hf_frame_t f;
    CHECK(!s_recv(&p, 500, &f), "version: got frame type %u after an unsupported HELLO", f.type);
    /* a non-HELLO frame in version 9: the decoder refuses it */
    uint8_t ping[] = {0x93, 0x09, 0x05, 0x01};
    size_t from2 = s_log_size();
    s_send(&p, ping, sizeof ping);
    s_expect_log("version (PING v9)", from2, "frame refused peer=hostile-ver", NULL);
    CHECK(!s_recv(&p, 300, &f), "version: PING v9 answered (type %u)", f.type);
    s_peer_close(&p);
    s_expect_undisturbed("version", from);
}

static void
s_case_nohello(void)
{
    size_t from = s_log_size();
    s_peer_t p = s_dealer("hostile-nohello", false);
    static uint8_t buf[4096];
    size_t n = s_batch(buf, sizeof buf, 1, 5);
    s_send(&p, buf, n);
    hf_frame_t f;
    CHECK(!s_recv(&p, 1000, &f), "nohello: a BATCH before HELLO was answered (type %u)", f.type);
    s_say("nohello: BATCH before HELLO: no ACK");
    s_expect_log("nohello", from, "hostile-nohello.*(before HELLO|ignored|refused)",
                 "the aggregator logs it at debug level only; docs/protocol.md 7 says it logs");
    s_peer_close(&p);
    s_expect_undisturbed("nohello", from);
}

static void
s_case_dup_id(void)
{
    size_t from = s_log_size();
    hf_welcome_t w;
    s_peer_t a = s_dealer("hostile-dup", false);
    CHECK(s_say_hello(&a, "hostile-dup", 1111, &w), "dup_id: first connection got no WELCOME");
    s_peer_t b = s_dealer("hostile-dup", false);
    CHECK(s_say_hello(&b, "hostile-dup", 1111, &w), "dup_id: second connection got no WELCOME");
    /* ROUTER_HANDOVER: the newer connection takes the id; the older one is
     * orphaned (libzmq ends its pipe; the TCP connection may stay open) or
     * dropped. Either way it must not be served any more. */
    uint8_t ping[64];
    size_t pn = 0;
    hf_ping_t pg = {.nonce = 99};
    CHECK(hf_frame_encode_ping(&pg, ping, sizeof ping, &pn) == HF_OK, "encode ping");
    s_send(&a, ping, pn);
    hf_frame_t f;
    bool a_served = s_recv(&a, 1000, &f);
    CHECK(!a_served, "dup_id: the older connection is still served (got frame type %u)", f.type);
    bool a_dropped = s_peer_event(&a, ZMQ_EVENT_DISCONNECTED, 0);
    /* the newer one is the session: it can commit */
    CHECK(s_commit(&b, 1, 3), "dup_id: the newer connection could not commit");
    s_say("dup_id: two connections as hostile-dup: the older one %s, the newer one is served",
          a_dropped ? "was disconnected" : "is orphaned (open, no longer answered)");
    s_expect_log("dup_id", from,
                 "engine=hostile-dup (reconnected|.*another connection|.*took over)",
                 NULL);
    s_peer_close(&a);
    s_peer_close(&b);
    s_expect_undisturbed("dup_id", from);
}

static void
s_case_old_epoch(void)
{
    size_t from = s_log_size();
    const uint64_t ea = 0xa0a0a0a0ull, eb = 0xb0b0b0b0ull;
    hf_welcome_t w;
    s_peer_t p = s_dealer("hostile-ep", false);
    CHECK(s_say_hello(&p, "hostile-ep", ea, &w), "old_epoch: no WELCOME for epoch A");
    CHECK(w.acked[HF_LANE_DATA] == 0, "old_epoch: fresh epoch A acked %" PRIu64,
          w.acked[HF_LANE_DATA]);
    CHECK(s_commit(&p, 1, 3), "old_epoch: epoch A seqs 1..3 not acked");
    s_peer_close(&p);
    p = s_dealer("hostile-ep", false);
    CHECK(s_say_hello(&p, "hostile-ep", eb, &w), "old_epoch: no WELCOME for epoch B");
    CHECK(w.acked[HF_LANE_DATA] == 0, "old_epoch: new epoch B acked %" PRIu64,
          w.acked[HF_LANE_DATA]);
    CHECK(s_commit(&p, 1, 2), "old_epoch: epoch B seqs 1..2 not acked");
    s_peer_close(&p);
    size_t from_replay = s_log_size();
    p = s_dealer("hostile-ep", false);
    bool welcomed = s_say_hello(&p, "hostile-ep", ea, &w);
    if (welcomed) {
        CHECK(w.epoch == ea && w.acked[HF_LANE_DATA] == 3,
              "old_epoch: WELCOME for the replayed epoch says acked=%" PRIu64 " (want 3)",
              w.acked[HF_LANE_DATA]);
        /* replay 1..3 and add 4: 1..3 must be skipped, 4 stored once */
        CHECK(s_commit(&p, 1, 4), "old_epoch: replayed epoch A batch 1..4 not acked");
        s_say("old_epoch: back to epoch A: resumed at acked=3, replayed 1..3 skipped, 4 stored");
        s_expect_log("old_epoch", from_replay,
                     "engine=hostile-ep .*(epoch=0*a0a0a0a0|older epoch|old epoch)", NULL);
    } else {
        s_say("old_epoch: back to epoch A: refused (no WELCOME)");
        s_expect_log("old_epoch", from_replay, "hostile-ep.*(epoch|refused)", NULL);
    }
    s_peer_close(&p);
    s_expect_undisturbed("old_epoch", from);
}

static void
s_case_silent(void)
{
    size_t from = s_log_size();
    int fds[S_SILENT];
    for (int i = 0; i < S_SILENT; i++)
        fds[i] = s_tcp();
    s_say("silent: %d raw TCP connections open, saying nothing", S_SILENT);
    /* while they hang: a new engine-like peer is still served */
    hf_welcome_t w;
    s_peer_t p = s_dealer("hostile-late", false);
    CHECK(s_say_hello(&p, "hostile-late", 4242, &w),
          "silent: with %d silent peers a new peer got no WELCOME", S_SILENT);
    s_peer_close(&p);
    /* hold them a while: the real engine must keep streaming (watchdog) */
    hf_ms_t until = hf_clock_mono_ms() + 3000;
    int closed = 0;
    while (hf_clock_mono_ms() < until)
        poll(NULL, 0, 100);
    for (int i = 0; i < S_SILENT; i++) {
        uint8_t buf[256]; /* the aggregator's ZMTP greeting, or EOF if it gave up */
        ssize_t r;
        while ((r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT)) > 0)
            ;
        if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            closed++;
        close(fds[i]);
    }
    s_say("silent: held 3 s (%d closed by the aggregator meanwhile); a new peer was welcomed",
          closed);
    s_expect_log("silent", from, "(silent|handshake|idle).*(peer|connection)", s_below);
    s_expect_undisturbed("silent", from);
}

/* ---- final check ----------------------------------------------------------------- */

static uint64_t
s_kv(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *at = strstr(line, pat);
    return at ? strtoull(at + strlen(pat), NULL, 0) : UINT64_MAX;
}

static void
s_check_export(const char *summary)
{
    uint64_t want[2] = {s_kv(summary, "committed_control"), s_kv(summary, "committed_data")};
    CHECK(want[0] != UINT64_MAX && want[1] != UINT64_MAX, "summary unreadable: %s", summary);
    CHECK(want[0] == s_kv(summary, "acked_control") && want[1] == s_kv(summary, "acked_data"),
          "committed != acked: %s", summary);
    const char *ep = strstr(summary, "epoch=");
    CHECK(ep, "no epoch in summary");
    char epoch[32];
    sscanf(ep + 6, "%31[0-9a-f]", epoch);
    char out[300], epoch_key[64];
    snprintf(out, sizeof out, "%s/export.jsonl", s_dir);
    snprintf(epoch_key, sizeof epoch_key, "\"epoch\":\"%s\"", epoch);
    CHECK(s_cli_run(out, "export", "--engine", S_REAL, "--format", "jsonl", NULL) == 0,
          "holdfast export failed");
    size_t len = 0;
    char *text = s_slurp(out, 0, &len);
    CHECK(text, "no export");
    uint8_t *seen[2] = {calloc(want[0] + 2, 1), calloc(want[1] + 2, 1)};
    uint64_t dups = 0, beyond = 0, other_epoch = 0, lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        if (!strstr(line, epoch_key)) {
            other_epoch++;
            continue;
        }
        int lane = strstr(line, "\"lane\":\"control\"") ? 0
                   : strstr(line, "\"lane\":\"data\"") ? 1
                                                       : -1;
        const char *sq = strstr(line, "\"seq\":");
        CHECK(lane >= 0 && sq, "export line without lane/seq: %.200s", line);
        uint64_t seq = strtoull(sq + 6, NULL, 10);
        if (seq == 0 || seq > want[lane]) {
            beyond++;
            continue;
        }
        if (seen[lane][seq])
            dups++;
        seen[lane][seq] = 1;
    }
    uint64_t missing = 0;
    for (int l = 0; l < 2; l++)
        for (uint64_t s = 1; s <= want[l]; s++)
            missing += !seen[l][s];
    s_say("export: %" PRIu64 " lines; control 1..%" PRIu64 ", data 1..%" PRIu64
          ": missing=%" PRIu64 " duplicates=%" PRIu64 " beyond=%" PRIu64 " other_epoch=%" PRIu64,
          lines, want[0], want[1], missing, dups, beyond, other_epoch);
    CHECK(missing == 0 && dups == 0 && beyond == 0 && other_epoch == 0,
          "the real engine's records were lost or duplicated");
    free(seen[0]);
    free(seen[1]);
    free(text);
}

static void
s_check_hostile_ep(void)
{
    /* epoch A: 1..4 once, epoch B: 1..2 once (the replay was skipped) */
    char out[300];
    snprintf(out, sizeof out, "%s/export-ep.jsonl", s_dir);
    CHECK(s_cli_run(out, "export", "--engine", "hostile-ep", "--format", "jsonl", NULL) == 0,
          "export hostile-ep failed");
    char *text = s_slurp(out, 0, NULL);
    int a = 0, b = 0, other = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "a0a0a0a0\""))
            a++;
        else if (strstr(line, "b0b0b0b0\""))
            b++;
        else
            other++;
    }
    free(text);
    s_say("old_epoch store: epoch A %d records (want 4), epoch B %d (want 2)", a, b);
    CHECK(a == 4 && b == 2 && other == 0, "old_epoch: stored A=%d B=%d other=%d", a, b, other);
}

/* Regression (ctest hostile_bug_refused_hello_takes_slot, fixed): a HELLO
 * the aggregator refuses (no common protocol version) used to take an
 * engine session slot for good (hf_router.c s_on_hello created the session
 * and noted the HELLO in the store before the version check). With --max-engines 2, two refused HELLOs lock every new
 * engine out ("too many engines"). Expected: a refused peer holds nothing. */
static int
s_bug_refused_hello_slots(const char *agg)
{
    char data[300], out[300];
    snprintf(data, sizeof data, "%s/store", s_dir);
    snprintf(out, sizeof out, "%s/aggregator.out", s_dir);
    char *agg_argv[] = {(char *)agg, "--bind", "tcp://127.0.0.1:*", "--control",
                        "tcp://127.0.0.1:*", "--data", data, "--max-engines", "2",
                        "--insecure", NULL};
    s_agg_pid = s_spawn(agg_argv, out, s_agg_log);
    char line[400];
    CHECK(s_log_wait(0, "listening engines=", 20000, line, sizeof line), "no listen");
    CHECK(sscanf(strstr(line, "engines="), "engines=%127s control=%127s", s_ep, s_ctl_ep) == 2,
          "cannot parse %s", line);
    s_zctx = zmq_ctx_new();
    const char *ids[] = {"hostile-v1", "hostile-v2"};
    for (int i = 0; i < 2; i++) {
        size_t from = s_log_size();
        s_peer_t p = s_dealer(ids[i], false);
        uint8_t buf[256];
        size_t n = s_hello(buf, sizeof buf, ids[i], 100 + (uint64_t)i, 7, 9);
        s_send(&p, buf, n);
        s_expect_log("refused HELLO", from, "no common protocol version|versions=7\\.\\.9", NULL);
        s_peer_close(&p);
    }
    size_t from = s_log_size();
    s_peer_t p = s_dealer("legit-eng", false);
    hf_welcome_t w;
    bool ok = s_say_hello(&p, "legit-eng", 4711, &w);
    s_peer_close(&p);
    zmq_ctx_term(s_zctx);
    if (!ok && s_log_wait(from, "too many engines", 0, line, sizeof line))
        s_say("the aggregator says: %s", line);
    CHECK(ok, "KNOWN BUG: two refused HELLOs (unsupported versions) used up --max-engines 2; "
              "a valid engine is refused");
    s_say("OK: refused HELLOs hold no engine slot");
    return 0;
}

/* The public key (z85) in a czmq certificate file, or false. */
static bool
s_cert_public(const char *path, char out[41])
{
    char *text = s_slurp(path, 0, NULL);
    const char *k = text ? strstr(text, "public-key = \"") : NULL;
    bool ok = k && strlen(k) >= 14 + 40 && k[14 + 40] == '"';
    if (ok)
        snprintf(out, 41, "%.40s", k + 14);
    free(text);
    return ok;
}

/* The --secure run (see the top of the file). */
static int
s_secure_run(const char *agg, const char *cli)
{
    char keys[300], eng_keys[320], op_keys[320], cert[320], pub[320], data[300], out[300];
    snprintf(keys, sizeof keys, "%s/keys", s_dir);
    snprintf(eng_keys, sizeof eng_keys, "%s/engines", keys);
    snprintf(op_keys, sizeof op_keys, "%s/operators", keys);
    snprintf(cert, sizeof cert, "%s/server_secret", keys);
    snprintf(pub, sizeof pub, "%s/server", keys);
    snprintf(data, sizeof data, "%s/store", s_dir);
    snprintf(out, sizeof out, "%s/keygen.out", s_dir);
    CHECK(mkdir(keys, 0700) == 0 && mkdir(eng_keys, 0700) == 0 && mkdir(op_keys, 0700) == 0,
          "mkdir %s: %s", keys, strerror(errno));
    char *kg_argv[] = {(char *)cli, "keygen", "server", "--dir", keys, "--server", NULL};
    pid_t kg = s_spawn(kg_argv, out, s_agg_log);
    int st = 0;
    CHECK(waitpid(kg, &st, 0) == kg && WIFEXITED(st) && WEXITSTATUS(st) == 0, "keygen failed");
    CHECK(s_cert_public(pub, s_curve_server), "no public key in %s", pub);

    snprintf(out, sizeof out, "%s/aggregator.out", s_dir);
    char *agg_argv[] = {(char *)agg, "--bind", "tcp://127.0.0.1:*", "--control",
                        "tcp://127.0.0.1:*", "--data", data, "--cert", cert,
                        "--engine-keys", eng_keys, "--operator-keys", op_keys, NULL};
    s_agg_pid = s_spawn(agg_argv, out, s_agg_log);
    char line[400];
    CHECK(s_log_wait(0, "listening engines=", 20000, line, sizeof line),
          "the aggregator did not listen within 20 s");
    CHECK(sscanf(strstr(line, "engines="), "engines=%127s control=%127s", s_ep, s_ctl_ep) == 2,
          "cannot parse %s", line);
    CHECK(sscanf(strrchr(s_ep, ':'), ":%d", &s_port) == 1, "port of %s", s_ep);
    s_say("CURVE aggregator pid=%d engines=%s", (int)s_agg_pid, s_ep);
    s_zctx = zmq_ctx_new();

    /* a plain DEALER: the handshake fails (mechanism mismatch) */
    char server_key[41];
    memcpy(server_key, s_curve_server, sizeof server_key);
    s_curve_server[0] = 0;
    size_t from = s_log_size();
    s_peer_t p = s_dealer("hostile-plain", false);
    hf_welcome_t w;
    CHECK(!s_say_hello(&p, "hostile-plain", 1, &w), "a plain peer got WELCOME");
    s_peer_close(&p);
    s_expect_log("secure_plain", from, "refused peer=.* reason=\"handshake failed\"", NULL);
    s_say("case secure_plain: a plain peer is refused at the handshake");

    /* a CURVE DEALER with a key in no directory */
    memcpy(s_curve_server, server_key, sizeof server_key);
    CHECK(zmq_curve_keypair(s_curve_pub, s_curve_sec) == 0, "zmq_curve_keypair");
    from = s_log_size();
    p = s_dealer("hostile-key", false);
    CHECK(!s_say_hello(&p, "hostile-key", 1, &w), "a peer with an unknown key got WELCOME");
    s_peer_close(&p);
    s_expect_log("secure_unknown_key", from,
                 "refused peer=127\\.0\\.0\\.1 reason=\"unknown key\" domain=holdfast-engines key=",
                 NULL);
    s_say("case secure_unknown_key: refused, logged with the peer's address");
    s_curve_server[0] = 0;

    s_case_garbage();
    zmq_ctx_term(s_zctx);
    CHECK(waitpid(s_agg_pid, &st, WNOHANG) == 0, "the aggregator died");
    char *text = s_slurp(s_agg_log, 0, NULL);
    CHECK(text && !strstr(text, "engine=hostile-"), "a refused peer reached a session");
    free(text);
    s_stop_pid(&s_agg_pid);
    s_say("OK: raw peers are refused at the CURVE handshake; the aggregator stayed up");
    return s_failed ? 1 : 0;
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--secure") == 0) {
        s_t0 = hf_clock_mono_ms();
        signal(SIGPIPE, SIG_IGN);
        snprintf(s_dir, sizeof s_dir, "/tmp/holdfast-hostile.XXXXXX");
        CHECK(mkdtemp(s_dir), "mkdtemp: %s", strerror(errno));
        atexit(s_at_exit);
        snprintf(s_agg_log, sizeof s_agg_log, "%s/aggregator.log", s_dir);
        s_say("work directory: %s (secure run)", s_dir);
        return s_secure_run(argv[2], argv[3]);
    }
    if (argc == 3 && strcmp(argv[1], "--bug-refused-hello-slots") == 0) {
        s_t0 = hf_clock_mono_ms();
        snprintf(s_dir, sizeof s_dir, "/tmp/holdfast-hostile.XXXXXX");
        CHECK(mkdtemp(s_dir), "mkdtemp: %s", strerror(errno));
        atexit(s_at_exit);
        snprintf(s_agg_log, sizeof s_agg_log, "%s/aggregator.log", s_dir);
        s_always_clean = true; /* a known bug must not litter /tmp on every run */
        return s_bug_refused_hello_slots(argv[2]);
    }
    if (argc != 5) {
        fprintf(stderr, "usage: hostile AGGREGATOR ENGINE HOLDFAST_CLI METHOD\n");
        return 2;
    }
    s_t0 = hf_clock_mono_ms();
    s_strict = getenv("HF_HOSTILE_STRICT") && strcmp(getenv("HF_HOSTILE_STRICT"), "0") != 0;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1024 && rl.rlim_max >= 1024) {
        rl.rlim_cur = 1024;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    s_cli = argv[3];
    snprintf(s_dir, sizeof s_dir, "/tmp/holdfast-hostile.XXXXXX");
    CHECK(mkdtemp(s_dir), "mkdtemp: %s", strerror(errno));
    atexit(s_at_exit);
    s_say("work directory: %s%s", s_dir, s_strict ? " (strict: log GAPs fail)" : "");
    snprintf(s_agg_log, sizeof s_agg_log, "%s/aggregator.log", s_dir);
    snprintf(s_eng_log, sizeof s_eng_log, "%s/engine.log", s_dir);

    char data[300], spool[300], summary_path[300], out[300];
    snprintf(data, sizeof data, "%s/store", s_dir);
    snprintf(spool, sizeof spool, "%s/spool", s_dir);
    snprintf(summary_path, sizeof summary_path, "%s/summary", s_dir);
    snprintf(out, sizeof out, "%s/aggregator.out", s_dir);
    char *agg_argv[] = {argv[1], "--bind", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
                        "--data", data, "--insecure", getenv("HF_HOSTILE_VERBOSE") ? "-v" : NULL, NULL};
    s_agg_pid = s_spawn(agg_argv, out, s_agg_log);
    char line[400];
    CHECK(s_log_wait(0, "listening engines=", 20000, line, sizeof line),
          "the aggregator did not listen within 20 s");
    CHECK(sscanf(strstr(line, "engines="), "engines=%127s control=%127s", s_ep, s_ctl_ep) == 2,
          "cannot parse %s", line);
    CHECK(sscanf(strrchr(s_ep, ':'), ":%d", &s_port) == 1, "port of %s", s_ep);
    s_say("aggregator pid=%d engines=%s control=%s", (int)s_agg_pid, s_ep, s_ctl_ep);

    snprintf(out, sizeof out, "%s/engine.out", s_dir);
    char *eng_argv[] = {argv[2], "--id", S_REAL, "--connect", s_ep, "--spool", spool,
                        "--method", argv[4], "--summary", summary_path, "--insecure", NULL};
    s_eng_pid = s_spawn(eng_argv, out, s_eng_log);
    CHECK(s_log_wait(0, "engine=" S_REAL " available", 20000, NULL, 0),
          "the real engine did not say HELLO within 20 s");
    s_say("engine pid=%d streaming", (int)s_eng_pid);

    s_zctx = zmq_ctx_new();
    int max_sockets = 4096;
    zmq_ctx_set(s_zctx, ZMQ_MAX_SOCKETS, max_sockets);

    s_case_garbage();
    s_case_greeting();
    s_case_no_routing_id();
    s_case_malformed();
    s_case_multipart();
    s_case_oversized();
    s_case_version();
    s_case_nohello();
    s_case_dup_id();
    s_case_old_epoch();
    s_case_silent();
    zmq_ctx_term(s_zctx);

    int st = 0;
    pid_t w = waitpid(s_eng_pid, &st, WNOHANG);
    bool eng_running = w == 0;
    s_say("cases done; the real engine %s", eng_running ? "is still streaming (good: the cases "
                                                          "ran during its run)"
                                                        : "had already finished its run");
    /* the engine finishes its run and drains */
    hf_ms_t deadline = hf_clock_mono_ms() + 60000;
    while (w == 0 && (w = waitpid(s_eng_pid, &st, WNOHANG)) == 0 && hf_clock_mono_ms() < deadline)
        poll(NULL, 0, 50);
    CHECK(w == s_eng_pid, "the engine did not exit within 60 s");
    s_eng_pid = -1;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "engine exit status 0x%x", st);
    char *summary = s_slurp(summary_path, 0, NULL);
    CHECK(summary && *summary, "no engine summary");
    s_say("engine: %.300s", summary);
    CHECK(strstr(summary, "state=completed"), "the run did not complete");
    CHECK(s_kv(summary, "dropped") == 0, "the engine dropped samples");
    s_check_export(summary);
    free(summary);
    s_check_hostile_ep();

    snprintf(out, sizeof out, "%s/engines.txt", s_dir);
    s_cli_run(out, "engines", NULL, NULL, NULL, NULL, NULL);
    char *engines = s_slurp(out, 0, NULL);
    if (engines && strstr(engines, "hostile-ver"))
        s_say("NOTE: `holdfast engines` lists hostile-ver, whose only HELLO was refused "
              "(unsupported versions): the refused HELLO was recorded in the store");
    free(engines);

    s_stop_pid(&s_agg_pid);
    CHECK(s_log_wait(0, "stopping: engines=", 0, line, sizeof line), "no clean stop line");
    s_say("aggregator: %s", strstr(line, "stopping:"));
    s_say("OK: every hostile peer refused or dropped alone; the real engine's run stored "
          "complete, no loss, no duplicate (%d log GAPs)",
          s_gaps);
    return 0;
}
