/* main.c - `holdfast`, the command-line client of the aggregator.
 *
 * Purpose: talk to the aggregator's control endpoint (docs/cli.md) and show
 * the answers to a person (tables) or export records for a program (JSON
 * lines, CSV).
 *
 * Design notes:
 * - One REQ socket, one request frame, one reply frame per call (msgpack,
 *   "control protocol" in docs/cli.md). Every receive has a timeout: an
 *   aggregator that does not answer is reported, never waited on forever.
 *   The socket refuses replies above S_MAX_REPLY bytes.
 * - Export pages through the aggregator with the opaque position it hands
 *   back, until it says done; a page that does not move the position is an
 *   error rather than a loop. With --out the file is written under a
 *   temporary name and renamed only once the export completed, so a failed
 *   export never leaves a truncated file that looks whole.
 * - JSON lines are written from the reply's record maps key by key, so a
 *   field the aggregator adds later shows up without a client change.
 *   Strings are escaped per RFC 8259 (invalid UTF-8 becomes U+FFFD);
 *   non-finite numbers become null. Doubles use the shortest form that
 *   reads back to the same value.
 *
 * - Security (docs/security.md): every socket is a CURVE client with the
 *   operator's certificate (--cert / $HOLDFAST_CERT) and the aggregator's
 *   public key (--server-key / $HOLDFAST_SERVER_KEY), unless --insecure.
 *   A monitor on the socket turns a refused handshake into an immediate,
 *   explicit error instead of a timeout. `keygen` writes certificates.
 *
 * Exit status: 0 success, 1 failure (unreachable, error reply, I/O),
 * 2 usage error, 7 not allowed (key refused, or its role may not do that).
 */
#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hf_backup.h"
#include "hf_control.h"
#include "hf_log.h"
#include "hf_record.h"

#define S_DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
#define S_DEFAULT_TIMEOUT 5000      /* ms                                 */
#define S_COMMAND_TIMEOUT 15000     /* ms: longer than the aggregator's wait for an engine */
#define S_MAX_TIMEOUT 3600000       /* ms                                 */
#define S_MAX_REPLY (16 << 20)      /* bytes accepted in one reply        */
#define S_EXPORT_PAGE 5000          /* records asked for per export page  */
#define S_POS_MAX 64                /* bytes of an export position       */
#define S_EXIT_DENIED 7             /* key refused or role not allowed    */

static const char *s_usage =
    "usage: holdfast [--control ENDPOINT] [--timeout MS]\n"
    "                [--cert FILE --server-key FILE | --insecure] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  status                  engines (availability, epoch, records, current run)\n"
    "                          and their most recent runs\n"
    "  status --watch --feed ENDPOINT [--count N]\n"
    "                          follow the aggregator's status feed (its --status):\n"
    "                          availability changes, run events, backlogs\n"
    "  engines [--history [--engine NAME]]\n"
    "                          every engine the aggregator knows, in detail;\n"
    "                          --history: each outage, when and why\n"
    "  runs [--engine NAME] [--limit N]\n"
    "                          runs, newest first per engine; a running run whose\n"
    "                          engine is away shows 'running (engine unavailable)'\n"
    "  show RUN [--engine NAME]\n"
    "                          one run in detail, with its events, alarms, errors\n"
    "                          and commands in order\n"
    "  tail --engine NAME [--lane control|data] [--count N]\n"
    "                          follow an engine's records as they are stored (JSON\n"
    "                          lines) until Ctrl-C or N records\n"
    "  --json                  (status, engines, runs, show) the reply as JSON\n"
    "  export --engine NAME [--run ID] [--lane control|data] [--format jsonl|csv]\n"
    "         [--out FILE]     records of an engine in order (epoch, lane, seq);\n"
    "                          format defaults to jsonl, output to stdout\n"
    "\n"
    "commands to an engine (each runs at most once; refused at once when the\n"
    "engine is unavailable; docs/commands.md):\n"
    "  start ENGINE METHOD     start METHOD (a name the engine knows)\n"
    "  start ENGINE --file F   start the method in file F (sent with the command)\n"
    "  pause ENGINE            pause the running run\n"
    "  resume ENGINE           resume the paused run\n"
    "  abort ENGINE            abort the run (supersedes commands still waiting)\n"
    "  set ENGINE NAME VALUE   set an actuator (not while a run is running)\n"
    "  --json                  print the reply as JSON\n"
    "  exit status: 0 done, 3 refused (engine unavailable or unknown), 4 the engine\n"
    "  answered with an error, 5 outcome unknown (link lost or no answer),\n"
    "  6 superseded by an abort, 7 not allowed (a reader's key, or refused)\n"
    "\n"
    "options:\n"
    "  --control ENDPOINT      aggregator control endpoint (default: $HOLDFAST_CONTROL,\n"
    "                          else " S_DEFAULT_ENDPOINT ")\n"
    "  --timeout MS            how long to wait for each reply (default 5000)\n"
    "  --cert FILE             your certificate (default $HOLDFAST_CERT; written by\n"
    "                          holdfast keygen NAME --role operator|reader)\n"
    "  --server-key FILE       the aggregator's public certificate (default\n"
    "                          $HOLDFAST_SERVER_KEY)\n"
    "  --insecure              the plain mechanism (an aggregator run --insecure)\n"
    "  -h, --help              show this help\n"
    "exit status 7: the aggregator refused this key, or its role may not do that\n"
    "\n"
    "store (on the aggregator's host; docs/operations.md):\n"
    "  backup DEST --data DIR  a consistent, compacted copy of the store in DIR while the\n"
    "                          aggregator runs, checked (MANIFEST: size, checksum, counts)\n"
    "  restore SRC --data DIR  check a backup, then install it as DIR's store (never over\n"
    "                          an existing one)\n"
    "\n"
    "keys (docs/security.md):\n"
    "  keygen NAME [--dir DIR] [--engine ID | --role operator|reader | --server] [--force]\n"
    "                          write a certificate pair: DIR/NAME (public: give it to\n"
    "                          the aggregator's --engine-keys or --operator-keys) and\n"
    "                          DIR/NAME_secret (mode 0600, stays with its owner)\n";

static bool s_json = false; /* --json: listings print the reply as one JSON line */

/* Set once in main from the flags and environment; read by every socket. */
typedef struct {
    bool curve;
    char server_key[41];    /* z85 */
    char public_key[41];
    char secret_key[41];
} s_keys_t;
static s_keys_t s_keys;

/* Make sock a CURVE client with s_keys (nothing when insecure). */
static int
s_secure(void *sock)
{
    if (!s_keys.curve)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, s_keys.server_key, 41) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, s_keys.public_key, 41) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s_keys.secret_key, 41) != 0) {
        fprintf(stderr, "holdfast: cannot set CURVE keys: %s\n", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* A PAIR receiving sock's handshake failures (NULL if it can't be made). */
static void *
s_monitor(void *ctx, void *sock)
{
    static unsigned serial = 0;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://holdfast-cli-mon-%u", ++serial);
    if (zmq_socket_monitor(sock, ep,
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0)
        return NULL;
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    if (mon)
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
    if (mon && zmq_connect(mon, ep) != 0) {
        zmq_close(mon);
        mon = NULL;
    }
    return mon;
}

/* If mon reported a failed handshake, print why (about endpoint) and
 * return true. */
static bool
s_refused(void *mon, const char *endpoint)
{
    if (!mon)
        return false;
    uint8_t ev[16];
    int n = zmq_recv(mon, ev, sizeof ev, ZMQ_DONTWAIT);
    if (n < 6)
        return false;
    char rest[256];
    while (zmq_recv(mon, rest, sizeof rest, ZMQ_DONTWAIT) >= 0) {
        int more = 0;
        size_t sz = sizeof more;
        if (zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &sz) != 0 || !more)
            break;
    }
    uint16_t event;
    uint32_t value;
    memcpy(&event, ev, sizeof event);
    memcpy(&value, ev + 2, sizeof value);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        fprintf(stderr, "holdfast: the aggregator at %s refused this key (status %u): it is not "
                        "in its --operator-keys, or is not an operator/reader key\n",
                endpoint, value);
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH || !s_keys.curve)
        fprintf(stderr, "holdfast: security mismatch with %s: %s\n", endpoint,
                s_keys.curve ? "the aggregator runs --insecure"
                             : "the aggregator requires CURVE (give --cert and --server-key)");
    else
        fprintf(stderr, "holdfast: handshake with %s failed (error 0x%x): is --server-key the "
                        "aggregator's key?\n",
                endpoint, value);
    return true;
}

/* Load --cert / --server-key into s_keys; 0, or 2 after a message. */
static int
s_keys_load(const char *cert, const char *server, bool insecure)
{
    memset(&s_keys, 0, sizeof s_keys);
    if (insecure)
        return 0;
    if (!cert || !*cert || !server || !*server) {
        fprintf(stderr, "holdfast: give --cert FILE and --server-key FILE (or $HOLDFAST_CERT and "
                        "$HOLDFAST_SERVER_KEY), or --insecure\n");
        return 2;
    }
    static const uint8_t zero[32] = {0};
    zcert_t *mine = zcert_load(cert);
    zcert_t *srv = zcert_load(server);
    int rc = 0;
    if (!mine || memcmp(zcert_secret_key(mine), zero, sizeof zero) == 0) {
        fprintf(stderr, "holdfast: --cert %s is not a certificate with a secret key\n", cert);
        rc = 2;
    } else if (!srv) {
        fprintf(stderr, "holdfast: --server-key %s is not a certificate\n", server);
        rc = 2;
    } else {
        snprintf(s_keys.public_key, sizeof s_keys.public_key, "%s", zcert_public_txt(mine));
        snprintf(s_keys.secret_key, sizeof s_keys.secret_key, "%s", zcert_secret_txt(mine));
        snprintf(s_keys.server_key, sizeof s_keys.server_key, "%s", zcert_public_txt(srv));
        s_keys.curve = true;
    }
    zcert_destroy(&mine);
    zcert_destroy(&srv);
    return rc;
}

static int
s_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "holdfast: ");
    fprintf(stderr, fmt, arg ? arg : "");
    fprintf(stderr, "\n\n%s", s_usage);
    return 2;
}

/* ---- client ---------------------------------------------------------------- */

typedef struct {
    zsock_t *sock;
    void *mon;              /* handshake failures of sock, or NULL  */
    bool denied;            /* the aggregator refused our key        */
    const char *endpoint;
    int timeout;            /* ms                                  */
    zframe_t *frame;        /* the last reply (its bytes back up u) */
    msgpack_unpacked u;     /* the last reply, parsed              */
} s_client_t;

static int
s_client_open(s_client_t *c, const char *endpoint, int timeout)
{
    memset(c, 0, sizeof *c);
    c->endpoint = endpoint;
    c->timeout = timeout;
    msgpack_unpacked_init(&c->u);
    zsys_set_logstream(NULL); /* keep czmq's own log lines off the user's terminal */
    c->sock = zsock_new(ZMQ_REQ);
    if (!c->sock) {
        fprintf(stderr, "holdfast: cannot create a socket\n");
        return 1;
    }
    zsock_set_linger(c->sock, 0);
    zsock_set_rcvtimeo(c->sock, timeout);
    zsock_set_sndtimeo(c->sock, timeout);
    zsock_set_maxmsgsize(c->sock, S_MAX_REPLY);
    if (s_secure(zsock_resolve(c->sock)) != 0)
        return 1;
    c->mon = s_monitor(zsys_init(), zsock_resolve(c->sock));
    if (zsock_connect(c->sock, "%s", endpoint) != 0) {
        fprintf(stderr, "holdfast: invalid control endpoint '%s'\n", endpoint);
        return 1;
    }
    return 0;
}

static void
s_client_close(s_client_t *c)
{
    msgpack_unpacked_destroy(&c->u);
    zframe_destroy(&c->frame);
    if (c->mon)
        zmq_close(c->mon);
    c->mon = NULL;
    zsock_destroy(&c->sock);
}

static const msgpack_object *
s_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* Copy a string field (or "" when absent / not a string). */
static const char *
s_str(const msgpack_object *map, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = s_get(map, key);
    buf[0] = 0;
    if (o && o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(buf, o->via.str.ptr, n);
        buf[n] = 0;
    }
    return buf;
}

static uint64_t
s_u64(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = s_get(map, key);
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

static bool
s_bool(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = s_get(map, key);
    return o && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

static void s_json_value(FILE *out, const msgpack_object *v);

static int
s_print_json(const msgpack_object *rep)
{
    s_json_value(stdout, rep);
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Send one request and wait for its reply. Returns the reply map (valid
 * until the next call), an error reply included, or NULL after printing
 * why there is none. */
static const msgpack_object *
s_call_raw(s_client_t *c, const msgpack_sbuffer *req)
{
    zframe_t *f = zframe_new(req->data, req->size);
    if (!f || zframe_send(&f, c->sock, 0) != 0) {
        zframe_destroy(&f);
        fprintf(stderr, "holdfast: aggregator not reachable at %s (could not send in %d ms)\n",
                c->endpoint, c->timeout);
        return NULL;
    }
    zframe_destroy(&c->frame);
    /* Wait for the reply or a refused handshake, whichever comes first. */
    int64_t deadline = zclock_mono() + c->timeout;
    for (;;) {
        int64_t left = deadline - zclock_mono();
        if (left <= 0 || zsys_interrupted)
            break;
        zmq_pollitem_t it[2] = {{.socket = zsock_resolve(c->sock), .events = ZMQ_POLLIN},
                                {.socket = c->mon, .events = ZMQ_POLLIN}};
        int n = zmq_poll(it, c->mon ? 2 : 1, left);
        if (n < 0 && errno != EINTR)
            break;
        if ((it[0].revents & ZMQ_POLLIN) || n < 0)
            break;
        if (c->mon && (it[1].revents & ZMQ_POLLIN) && s_refused(c->mon, c->endpoint)) {
            c->denied = true;
            return NULL;
        }
    }
    c->frame = (zsock_events(c->sock) & ZMQ_POLLIN) ? zframe_recv(c->sock) : NULL;
    if (!c->frame) {
        if (zsys_interrupted)
            fprintf(stderr, "holdfast: interrupted\n");
        else
            fprintf(stderr, "holdfast: aggregator not reachable at %s (no reply in %d ms)\n",
                    c->endpoint, c->timeout);
        return NULL;
    }
    size_t off = 0;
    msgpack_unpacked_destroy(&c->u);
    msgpack_unpacked_init(&c->u);
    msgpack_unpack_return ur = msgpack_unpack_next(&c->u, (const char *)zframe_data(c->frame),
                                                   zframe_size(c->frame), &off);
    const msgpack_object *rep = &c->u.data;
    if (ur != MSGPACK_UNPACK_SUCCESS || rep->type != MSGPACK_OBJECT_MAP ||
        !s_get(rep, "ok")) {
        fprintf(stderr, "holdfast: malformed reply from %s\n", c->endpoint);
        return NULL;
    }
    return rep;
}

/* As s_call_raw, but an error reply is printed and returns NULL. */
static const msgpack_object *
s_call(s_client_t *c, const msgpack_sbuffer *req)
{
    const msgpack_object *rep = s_call_raw(c, req);
    if (rep && !s_bool(rep, "ok")) {
        char msg[512], err[64];
        s_str(rep, "msg", msg, sizeof msg);
        if (!strncmp(msg, "permission denied", 17))
            c->denied = true;
        s_str(rep, "err", err, sizeof err);
        fprintf(stderr, "holdfast: %s%s%s%s\n", msg[0] ? msg : "request failed",
                err[0] ? " (" : "", err, err[0] ? ")" : "");
        return NULL;
    }
    return rep;
}

static void
s_pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* ---- formatting helpers ------------------------------------------------------- */

/* ISO-8601 UTC with milliseconds; "-" for 0 (unknown). */
static const char *
s_iso(uint64_t ns, char *buf, size_t cap)
{
    if (ns == 0) {
        snprintf(buf, cap, "-");
        return buf;
    }
    time_t sec = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* a too-small buf truncates; callers pass 32 bytes, enough for any year */
    int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)((ns % 1000000000ull) / 1000000ull) % 1000u);
    if (n < 0 || (size_t)n >= cap)
        buf[cap - 1] = 0;
    return buf;
}

/* Shortest %g form that reads back as the same double. */
static void
s_fmt_double(double v, char *buf, size_t cap)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* A table printed with columns padded to their widest cell. */
#define S_TABLE_COLS 16
typedef struct {
    int ncols;
    size_t nrows;
    size_t cap;
    char **cells; /* nrows * ncols, owned */
} s_table_t;

static void
s_table_row(s_table_t *t, const char *const *vals)
{
    if (t->ncols < 1 || t->ncols > S_TABLE_COLS) {
        fprintf(stderr, "holdfast: internal error: a table of %d columns\n", t->ncols);
        exit(1);
    }
    if (t->nrows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * (size_t)t->ncols * sizeof *nc);
        if (!nc) {
            fprintf(stderr, "holdfast: out of memory\n");
            exit(1);
        }
        t->cells = nc;
        t->cap = ncap;
    }
    for (int i = 0; i < t->ncols; i++) {
        char *s = strdup(vals[i] ? vals[i] : "");
        if (!s) {
            fprintf(stderr, "holdfast: out of memory\n");
            exit(1);
        }
        /* engine-supplied text must not break the table's lines */
        for (char *p = s; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = ' ';
        }
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = s;
    }
    t->nrows++;
}

static void
s_table_print(s_table_t *t, FILE *out)
{
    size_t w[S_TABLE_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
            if (n > w[i])
                w[i] = n;
        }
    }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * (size_t)t->ncols + (size_t)i];
            if (i == t->ncols - 1)
                fprintf(out, "%s\n", s);
            else
                fprintf(out, "%-*s  ", (int)w[i], s);
        }
    }
    for (size_t k = 0; k < t->nrows * (size_t)t->ncols; k++)
        free(t->cells[k]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

/* ---- status / engines / runs ----------------------------------------------------- */

static void
s_runs_table(const msgpack_object *runs, FILE *out)
{
    s_table_t t = {9, 0, 0, NULL};
    const char *hdr[] = {"ENGINE", "RUN", "STATE", "METHOD", "STARTED", "ENDED",
                         "SAMPLES", "CONTROL", "LAST EVENT"};
    s_table_row(&t, hdr);
    for (uint32_t i = 0; runs && runs->type == MSGPACK_OBJECT_ARRAY && i < runs->via.array.size;
         i++) {
        const msgpack_object *r = &runs->via.array.ptr[i];
        char eng[HF_ENGINE_ID_MAX + 1], run[24], state[24], method[HF_TEXT_MAX + 1];
        char started[40], ended[40], samples[24], control[24], last[40], cause[48];
        char statex[80];
        snprintf(run, sizeof run, "%llu", (unsigned long long)s_u64(r, "run"));
        s_str(r, "state", state, sizeof state);
        s_str(r, "cause", cause, sizeof cause);
        bool live_run = !strcmp(state, "running") || !strcmp(state, "paused");
        if (cause[0])
            snprintf(statex, sizeof statex, "%s (%s)", state, cause);
        else if (live_run && s_get(r, "engine_available") && !s_bool(r, "engine_available"))
            snprintf(statex, sizeof statex, "%s (engine unavailable)", state);
        else
            snprintf(statex, sizeof statex, "%s", state);
        snprintf(samples, sizeof samples, "%llu", (unsigned long long)s_u64(r, "samples"));
        snprintf(control, sizeof control, "%llu", (unsigned long long)s_u64(r, "control"));
        const char *row[] = {s_str(r, "engine", eng, sizeof eng), run, statex,
                             s_str(r, "method", method, sizeof method),
                             s_iso(s_u64(r, "started_ns"), started, sizeof started),
                             s_iso(s_u64(r, "ended_ns"), ended, sizeof ended), samples, control,
                             s_str(r, "last_event", last, sizeof last)};
        s_table_row(&t, row);
    }
    s_table_print(&t, out);
}

/* Backlog figures the connected engines report (STATUS frames). */
static void
s_backlog_table(const msgpack_object *engs, FILE *out)
{
    s_table_t t;
    memset(&t, 0, sizeof t);
    t.ncols = 8;
    const char *hdr[] = {"ENGINE", "PENDING (CONTROL/DATA)", "OLDEST", "DRAIN RATE", "ETA",
                         "DROPPED", "SPOOL", "SAMPLES (LATE/MISSED)"};
    s_table_row(&t, hdr);
    for (uint32_t i = 0; engs && engs->type == MSGPACK_OBJECT_ARRAY && i < engs->via.array.size;
         i++) {
        const msgpack_object *e = &engs->via.array.ptr[i];
        const msgpack_object *b = s_get(e, "backlog");
        if (!b || b->type != MSGPACK_OBJECT_MAP)
            continue;
        char eng[HF_ENGINE_ID_MAX + 1], pend[48], oldest[32], rate[32], eta[32], drop[24],
            spool[48];
        s_str(e, "engine", eng, sizeof eng);
        uint64_t p[2] = {0, 0}, age[2] = {0, 0};
        const msgpack_object *pa = s_get(b, "pending"), *aa = s_get(b, "oldest_age_ms");
        for (int l = 0; l < 2; l++) {
            if (pa && pa->type == MSGPACK_OBJECT_ARRAY && pa->via.array.size == 2)
                p[l] = pa->via.array.ptr[l].via.u64;
            if (aa && aa->type == MSGPACK_OBJECT_ARRAY && aa->via.array.size == 2)
                age[l] = aa->via.array.ptr[l].via.u64;
        }
        uint64_t oldest_ms = age[0] > age[1] ? age[0] : age[1];
        snprintf(pend, sizeof pend, "%llu/%llu", (unsigned long long)p[0],
                 (unsigned long long)p[1]);
        snprintf(oldest, sizeof oldest, "%.1fs", oldest_ms / 1000.0);
        snprintf(rate, sizeof rate, "%llu/s", (unsigned long long)s_u64(b, "drain_per_s"));
        uint64_t eta_ms = s_u64(b, "eta_ms");
        if (p[0] + p[1] == 0)
            snprintf(eta, sizeof eta, "-");
        else if (eta_ms == 0)
            snprintf(eta, sizeof eta, "unknown");
        else
            snprintf(eta, sizeof eta, "%.1fs", eta_ms / 1000.0);
        snprintf(drop, sizeof drop, "%llu", (unsigned long long)s_u64(b, "dropped"));
        snprintf(spool, sizeof spool, "%.1f/%.1f MiB", s_u64(b, "spool_bytes") / 1048576.0,
                 s_u64(b, "spool_limit") / 1048576.0);
        char timing[64];
        snprintf(timing, sizeof timing, "%llu (%llu/%llu)", (unsigned long long)s_u64(b, "samples"),
                 (unsigned long long)s_u64(b, "late"), (unsigned long long)s_u64(b, "missed"));
        const char *row[] = {eng, pend, oldest, rate, eta, drop, spool, timing};
        s_table_row(&t, row);
    }
    if (t.nrows > 1) {
        fprintf(out, "\nBACKLOG (reported by connected engines)\n");
        s_table_print(&t, out); /* prints and frees */
    } else {
        for (size_t k = 0; k < t.nrows * (size_t)t.ncols; k++)
            free(t.cells[k]);
        free(t.cells);
    }
}

static int
s_cmd_status(s_client_t *c, bool detailed)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, detailed ? "engines" : "status");
    const msgpack_object *rep = s_call(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep)
        return 1;
    if (s_json)
        return s_print_json(rep);
    const msgpack_object *engs = s_get(rep, "engines");
    s_table_t t;
    memset(&t, 0, sizeof t);
    if (detailed) {
        t.ncols = 13;
        const char *hdr[] = {"ENGINE", "AVAILABILITY", "SINCE", "REASON", "CONNECTED",
                             "EPOCH", "EPOCHS", "CONTROL", "DATA", "FIRST SEEN",
                             "LAST SEEN", "RUN", "RESTARTS"};
        s_table_row(&t, hdr);
    } else {
        t.ncols = 7;
        const char *hdr[] = {"ENGINE", "AVAILABILITY", "SINCE", "EPOCH",
                             "RECORDS (CONTROL/DATA)", "RUN", "STATE"};
        s_table_row(&t, hdr);
    }
    for (uint32_t i = 0; engs && engs->type == MSGPACK_OBJECT_ARRAY && i < engs->via.array.size;
         i++) {
        const msgpack_object *e = &engs->via.array.ptr[i];
        char eng[HF_ENGINE_ID_MAX + 1], avail[24], reason[64], since[40], epoch[24];
        char state[24], run[64], recs[48], ctl[24], data[24], conn[32], epochs[16];
        char first[40], last[40], availx[96];
        uint64_t rc = 0, rd = 0;
        const msgpack_object *ra = s_get(e, "records");
        if (ra && ra->type == MSGPACK_OBJECT_ARRAY && ra->via.array.size >= 2) {
            rc = ra->via.array.ptr[0].via.u64;
            rd = ra->via.array.ptr[1].via.u64;
        }
        s_str(e, "engine", eng, sizeof eng);
        s_str(e, "availability", avail, sizeof avail);
        s_str(e, "reason", reason, sizeof reason);
        s_iso(s_u64(e, "since_ns"), since, sizeof since);
        s_str(e, "epoch", epoch, sizeof epoch);
        if (!epoch[0])
            snprintf(epoch, sizeof epoch, "-");
        s_str(e, "run_state", state, sizeof state);
        uint64_t run_id = s_u64(e, "run");
        if (run_id)
            snprintf(run, sizeof run, "%llu", (unsigned long long)run_id);
        else
            snprintf(run, sizeof run, "-");
        snprintf(recs, sizeof recs, "%llu/%llu", (unsigned long long)rc,
                 (unsigned long long)rd);
        if (detailed) {
            snprintf(ctl, sizeof ctl, "%llu", (unsigned long long)rc);
            snprintf(data, sizeof data, "%llu", (unsigned long long)rd);
            uint64_t ms = s_u64(e, "connected_ms");
            if (ms)
                snprintf(conn, sizeof conn, "%llu.%03llus", (unsigned long long)(ms / 1000),
                         (unsigned long long)(ms % 1000));
            else
                snprintf(conn, sizeof conn, "-");
            snprintf(epochs, sizeof epochs, "%llu", (unsigned long long)s_u64(e, "epochs"));
            if (run_id)
                snprintf(run, sizeof run, "%llu (%s)", (unsigned long long)run_id, state);
            char restarts[16];
            snprintf(restarts, sizeof restarts, "%llu", (unsigned long long)s_u64(e, "restarts"));
            const char *row[] = {eng, avail, since, reason[0] ? reason : "-", conn, epoch,
                                 epochs, ctl, data,
                                 s_iso(s_u64(e, "first_seen_ns"), first, sizeof first),
                                 s_iso(s_u64(e, "last_seen_ns"), last, sizeof last), run,
                                 restarts};
            s_table_row(&t, row);
        } else {
            if (reason[0])
                snprintf(availx, sizeof availx, "%s (%s)", avail, reason);
            else
                snprintf(availx, sizeof availx, "%s", avail);
            const char *row[] = {eng, availx, since, epoch, recs, run, run_id ? state : "-"};
            s_table_row(&t, row);
        }
    }
    if (t.nrows == 1) {
        s_table_print(&t, stdout);
        printf("(no engines)\n");
    } else {
        s_table_print(&t, stdout);
    }
    if (!detailed)
        s_backlog_table(engs, stdout);
    if (!detailed) {
        printf("\nRUNS (most recent per engine)\n");
        s_runs_table(s_get(rep, "runs"), stdout);
    }
    if (s_bool(rep, "truncated"))
        printf("(list truncated by the aggregator)\n");
    const msgpack_object *sec = s_get(rep, "security");
    if (!detailed && sec) {
        char mech[16];
        s_str(sec, "mechanism", mech, sizeof mech);
        if (!strcmp(mech, "curve"))
            printf("\nSECURITY: curve, keys: %llu engine, %llu operator; accepted %llu; refused: "
                   "unknown key %llu, wrong role %llu, id not bound %llu, handshake %llu\n",
                   (unsigned long long)s_u64(sec, "engine_keys"),
                   (unsigned long long)s_u64(sec, "operator_keys"),
                   (unsigned long long)s_u64(sec, "accepted"),
                   (unsigned long long)s_u64(sec, "refused_unknown_key"),
                   (unsigned long long)s_u64(sec, "refused_wrong_role"),
                   (unsigned long long)s_u64(sec, "refused_not_bound"),
                   (unsigned long long)s_u64(sec, "refused_handshake"));
        else
            printf("\nSECURITY: INSECURE (plain mechanism: no authentication, no encryption)\n");
    }
    const msgpack_object *sto = s_get(rep, "storage");
    if (!detailed && sto) {
        uint64_t size = s_u64(sto, "disk_size_bytes"), fr = s_u64(sto, "disk_free_bytes");
        uint64_t live = s_u64(sto, "store_live_bytes"), max = s_u64(sto, "store_max_bytes");
        printf("STORAGE: store %.1f MiB of %.1f GiB bound; disk %.1f GiB free of %.1f GiB "
               "(%llu%%); retention deleted %llu records\n",
               (double)live / 1048576.0, (double)max / 1073741824.0, (double)fr / 1073741824.0,
               (double)size / 1073741824.0, (unsigned long long)(size ? fr * 100 / size : 0),
               (unsigned long long)s_u64(sto, "retained_records"));
        if (s_bool(sto, "disk_low"))
            printf("ALARM: the store's disk is low on space (code %d)\n", HF_ALARM_CODE_DISK_LOW);
        if (s_bool(sto, "store_high"))
            printf("ALARM: the store nears its bound (code %d)\n", HF_ALARM_CODE_STORE_LEVEL);
        if (s_bool(sto, "store_full"))
            printf("ALARM: the store is full: ingestion paused, nothing acknowledged is lost; "
                   "engines keep their backlog (code %d)\n", HF_ALARM_CODE_STORE_FULL);
    }
    return 0;
}

/* `engines --history`: every outage (unavailable -> available again). */
static int
s_cmd_history(s_client_t *c, const char *engine)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (engine != NULL));
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "history");
    if (engine) {
        s_pk_str(&pk, "engine");
        s_pk_str(&pk, engine);
    }
    const msgpack_object *rep = s_call(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep)
        return 1;
    if (s_json)
        return s_print_json(rep);
    const msgpack_object *outs = s_get(rep, "outages");
    s_table_t t;
    memset(&t, 0, sizeof t);
    t.ncols = 5;
    const char *hdr[] = {"ENGINE", "UNAVAILABLE FROM", "UNTIL", "FOR", "REASON"};
    s_table_row(&t, hdr);
    for (uint32_t i = 0; outs && outs->type == MSGPACK_OBJECT_ARRAY && i < outs->via.array.size;
         i++) {
        const msgpack_object *o = &outs->via.array.ptr[i];
        char eng[HF_ENGINE_ID_MAX + 1], from[40], until[40], dur[32], reason[64];
        uint64_t a = s_u64(o, "start_ns"), b = s_u64(o, "end_ns");
        s_str(o, "engine", eng, sizeof eng);
        s_str(o, "reason", reason, sizeof reason);
        s_iso(a, from, sizeof from);
        if (b) {
            s_iso(b, until, sizeof until);
            snprintf(dur, sizeof dur, "%.1fs", b > a ? (double)(b - a) / 1e9 : 0.0);
        } else {
            snprintf(until, sizeof until, "(still)");
            snprintf(dur, sizeof dur, "-");
        }
        const char *row[] = {eng, from, until, dur, reason};
        s_table_row(&t, row);
    }
    printf("\nAVAILABILITY HISTORY (newest first)\n");
    s_table_print(&t, stdout);
    if (t.nrows == 1)
        printf("(no outages)\n");
    if (s_bool(rep, "truncated"))
        printf("(list truncated by the aggregator)\n");
    return 0;
}

static volatile sig_atomic_t s_watch_stop = 0;

static void
s_watch_signal(int sig)
{
    (void)sig;
    s_watch_stop = 1;
}

/* `status --watch`: print the aggregator's status feed, one line per
 * message, until Ctrl-C (or `count` messages, 0 = no limit). */
static int
s_cmd_watch(const char *feed, uint64_t count, int timeout_ms)
{
    void *ctx = zmq_ctx_new();
    void *sub = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int zero = 0;
    int64_t maxmsg = 64 * 1024;
    if (!sub) {
        fprintf(stderr, "holdfast: cannot create a socket: %s\n", zmq_strerror(errno));
        if (ctx)
            zmq_ctx_term(ctx);
        return 1;
    }
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sub, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    void *mon = NULL;
    if (s_secure(sub) != 0 || (mon = s_monitor(ctx, sub), zmq_connect(sub, feed) != 0)) {
        if (mon)
            zmq_close(mon);
        fprintf(stderr, "holdfast: bad status feed endpoint %s: %s\n", feed, zmq_strerror(errno));
        zmq_close(sub);
        zmq_ctx_term(ctx);
        return 2;
    }
    signal(SIGINT, s_watch_signal);
    signal(SIGTERM, s_watch_signal);
    uint64_t seen = 0;
    int idle_ms = 0;
    int rc = 0;
    while (!s_watch_stop && (count == 0 || seen < count)) {
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (s_refused(mon, feed)) {
            rc = S_EXIT_DENIED;
            break;
        }
        if (zmq_poll(&it, 1, 200) <= 0) {
            idle_ms += 200;
            if (count && timeout_ms > 0 && idle_ms >= timeout_ms) {
                fprintf(stderr, "holdfast: no feed message from %s in %d ms\n", feed, timeout_ms);
                break;
            }
            continue;
        }
        idle_ms = 0;
        char buf[65536];
        int n = zmq_recv(sub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n <= 0 || n > (int)sizeof buf)
            continue;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (msgpack_unpack_next(&up, buf, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP) {
            const msgpack_object *o = &up.data;
            char type[24], eng[HF_ENGINE_ID_MAX + 1], a[64], b[64], when[40];
            s_str(o, "type", type, sizeof type);
            s_str(o, "engine", eng, sizeof eng);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            s_iso((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, when, sizeof when);
            if (!strcmp(type, "availability"))
                printf("%s engine=%s availability=%s reason=\"%s\"\n", when, eng,
                       s_str(o, "state", a, sizeof a), s_str(o, "reason", b, sizeof b));
            else if (!strcmp(type, "run"))
                printf("%s engine=%s run=%llu event=%s\n", when, eng,
                       (unsigned long long)s_u64(o, "run"), s_str(o, "event", a, sizeof a));
            else if (!strcmp(type, "backlog"))
                printf("%s engine=%s backlog pending=%llu/%llu drain_per_s=%llu eta_ms=%llu "
                       "dropped=%llu\n",
                       when, eng, (unsigned long long)s_u64(o, "pending_control"),
                       (unsigned long long)s_u64(o, "pending_data"),
                       (unsigned long long)s_u64(o, "drain_per_s"),
                       (unsigned long long)s_u64(o, "eta_ms"), (unsigned long long)s_u64(o, "dropped"));
            else if (!strcmp(type, "alarm"))
                printf("%s alarm %s code=%llu: %s\n", when, s_str(o, "raised", a, sizeof a),
                       (unsigned long long)s_u64(o, "code"), s_str(o, "text", b, sizeof b));
            else if (!strcmp(type, "restart"))
                printf("%s restart task=%s restarts=%llu err=%s reason=\"%s\"\n", when,
                       s_str(o, "task", a, sizeof a), (unsigned long long)s_u64(o, "restarts"),
                       s_str(o, "err", eng, sizeof eng), s_str(o, "reason", b, sizeof b));
            fflush(stdout);
            seen++;
        }
        msgpack_unpacked_destroy(&up);
    }
    if (mon)
        zmq_close(mon);
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return rc ? rc : count && seen < count ? 1 : 0;
}

static int
s_cmd_runs(s_client_t *c, const char *engine, uint64_t limit)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2 + (engine != NULL) + (limit != 0));
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "runs");
    if (engine) {
        s_pk_str(&pk, "engine");
        s_pk_str(&pk, engine);
    }
    if (limit) {
        s_pk_str(&pk, "limit");
        msgpack_pack_uint64(&pk, limit);
    }
    const msgpack_object *rep = s_call(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep)
        return 1;
    if (s_json)
        return s_print_json(rep);
    s_runs_table(s_get(rep, "runs"), stdout);
    if (s_bool(rep, "truncated"))
        printf("(list truncated by the aggregator)\n");
    return 0;
}

/* ---- export ----------------------------------------------------------------------- */

/* JSON string per RFC 8259; invalid UTF-8 bytes become U+FFFD. */
static void
s_json_str(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    size_t i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            fputc('\\', out);
            fputc(ch, out);
            i++;
        } else if (ch < 0x20) {
            switch (ch) {
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            default: fprintf(out, "\\u%04x", ch); break;
            }
            i++;
        } else if (ch < 0x80) {
            fputc(ch, out);
            i++;
        } else {
            /* length of a well-formed UTF-8 sequence starting here, or 0 */
            size_t len = 0;
            uint32_t cp = 0;
            if (ch >= 0xc2 && ch <= 0xdf) {
                len = 2;
                cp = ch & 0x1f;
            } else if (ch >= 0xe0 && ch <= 0xef) {
                len = 3;
                cp = ch & 0x0f;
            } else if (ch >= 0xf0 && ch <= 0xf4) {
                len = 4;
                cp = ch & 0x07;
            }
            if (len && i + len <= n) {
                for (size_t k = 1; k < len; k++) {
                    unsigned char cc = (unsigned char)s[i + k];
                    if ((cc & 0xc0) != 0x80) {
                        len = 0;
                        break;
                    }
                    cp = (cp << 6) | (cc & 0x3f);
                }
            } else {
                len = 0;
            }
            /* overlong, surrogate or out-of-range forms are invalid too */
            if (len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
                len = 0;
            if (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
                len = 0;
            if (len) {
                fwrite(s + i, 1, len, out);
                i += len;
            } else {
                fputs("\\ufffd", out);
                i++;
            }
        }
    }
    fputc('"', out);
}

static void
s_json_value(FILE *out, const msgpack_object *v)
{
    char num[40];
    switch (v->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", out); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(v->via.boolean ? "true" : "false", out); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(out, "%llu", (unsigned long long)v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%lld", (long long)v->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(v->via.f64)) {
            fputs("null", out);
        } else {
            s_fmt_double(v->via.f64, num, sizeof num);
            fputs(num, out);
        }
        break;
    case MSGPACK_OBJECT_STR: s_json_str(out, v->via.str.ptr, v->via.str.size); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < v->via.array.size; i++) {
            if (i)
                fputc(',', out);
            s_json_value(out, &v->via.array.ptr[i]);
        }
        fputc(']', out);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            if (i)
                fputc(',', out);
            const msgpack_object *k = &v->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR)
                s_json_str(out, k->via.str.ptr, k->via.str.size);
            else
                fputs("\"?\"", out);
            fputc(':', out);
            s_json_value(out, &v->via.map.ptr[i].val);
        }
        fputc('}', out);
        break;
    default: fputs("null", out); break; /* bin, ext: not used in records */
    }
}

static void
s_json_record(FILE *out, const char *engine, const msgpack_object *rec)
{
    fputs("{\"engine\":", out);
    s_json_str(out, engine, strlen(engine));
    for (uint32_t i = 0; rec->type == MSGPACK_OBJECT_MAP && i < rec->via.map.size; i++) {
        const msgpack_object *k = &rec->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            continue;
        fputc(',', out);
        s_json_str(out, k->via.str.ptr, k->via.str.size);
        fputc(':', out);
        s_json_value(out, &rec->via.map.ptr[i].val);
    }
    fputs("}\n", out);
}

/* One CSV field per RFC 4180: quoted when it holds a comma, quote or line
 * break, with quotes doubled. */
static void
s_csv_field(FILE *out, const char *s, bool last)
{
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
    fputc(last ? '\n' : ',', out);
}

static const char *
s_num_field(const msgpack_object *rec, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = s_get(rec, key);
    buf[0] = 0;
    if (!o)
        return buf;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(buf, cap, "%llu", (unsigned long long)o->via.u64);
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        snprintf(buf, cap, "%lld", (long long)o->via.i64);
    else if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) {
        double v = o->via.f64;
        if (isnan(v))
            snprintf(buf, cap, "nan");
        else if (isinf(v))
            snprintf(buf, cap, v > 0 ? "inf" : "-inf");
        else
            s_fmt_double(v, buf, cap);
    }
    return buf;
}

static const char *s_csv_header = "engine,epoch,lane,seq,ts_ns,mono_ns,kind,run,channel,value,"
                                  "event,text,observed_offline\n";

static void
s_csv_record(FILE *out, const char *engine, const msgpack_object *rec)
{
    char epoch[24], lane[16], seq[24], ts[24], mono[24], kind[16], run[24];
    char channel[24], value[40], event[32], text[512], t1[HF_TEXT_MAX + 8], t2[32];
    s_str(rec, "epoch", epoch, sizeof epoch);
    s_str(rec, "lane", lane, sizeof lane);
    s_num_field(rec, "seq", seq, sizeof seq);
    s_num_field(rec, "ts_ns", ts, sizeof ts);
    s_num_field(rec, "mono_ns", mono, sizeof mono);
    s_str(rec, "kind", kind, sizeof kind);
    s_num_field(rec, "run", run, sizeof run);
    channel[0] = value[0] = event[0] = text[0] = 0;
    if (!strcmp(kind, "sample")) {
        s_num_field(rec, "channel", channel, sizeof channel);
        s_num_field(rec, "value", value, sizeof value);
    } else if (!strcmp(kind, "event")) {
        s_str(rec, "event", event, sizeof event);
        s_str(rec, "text", text, sizeof text);
    } else if (!strcmp(kind, "alarm")) {
        char code[24];
        snprintf(text, sizeof text, "%s %s code=%s: %s",
                 s_bool(rec, "raised") ? "raised" : "cleared",
                 s_str(rec, "severity", t2, sizeof t2),
                 s_num_field(rec, "code", code, sizeof code), s_str(rec, "text", t1, sizeof t1));
    } else if (!strcmp(kind, "hw_error")) {
        char dev[24], code[24];
        s_num_field(rec, "channel", channel, sizeof channel);
        snprintf(text, sizeof text, "%s device=%s code=%s: %s",
                 s_str(rec, "class", t2, sizeof t2), s_num_field(rec, "device", dev, sizeof dev),
                 s_num_field(rec, "code", code, sizeof code), s_str(rec, "text", t1, sizeof t1));
    } else if (!strcmp(kind, "gap")) {
        char first[24], lastv[24], count[24], glane[16];
        snprintf(text, sizeof text, "%s %s..%s count=%s reason=%s",
                 s_str(rec, "gap_lane", glane, sizeof glane),
                 s_num_field(rec, "first", first, sizeof first),
                 s_num_field(rec, "last", lastv, sizeof lastv),
                 s_num_field(rec, "count", count, sizeof count),
                 s_str(rec, "reason", t2, sizeof t2));
    } else if (!strcmp(kind, "command")) {
        char id[24], verb[16];
        snprintf(text, sizeof text, "command=%s %s %s: %s",
                 s_num_field(rec, "command", id, sizeof id), s_str(rec, "verb", verb, sizeof verb),
                 s_str(rec, "result", t2, sizeof t2), s_str(rec, "text", t1, sizeof t1));
    }
    const char *offline = s_bool(rec, "observed_offline") ? "1" : "0";
    const char *fields[] = {engine, epoch, lane, seq, ts, mono, kind, run, channel, value,
                            event, text, offline};
    size_t nf = sizeof fields / sizeof fields[0];
    for (size_t i = 0; i < nf; i++)
        s_csv_field(out, fields[i], i == nf - 1);
}

typedef struct {
    const char *engine;
    uint64_t run;       /* 0 = all runs */
    const char *lane;   /* NULL = both  */
    bool csv;
    const char *out;    /* NULL = stdout */
} s_export_args_t;

static int
s_cmd_export(s_client_t *c, const s_export_args_t *a)
{
    FILE *out = stdout;
    char *tmp = NULL;
    if (a->out) {
        size_t n = strlen(a->out) + 32;
        tmp = malloc(n);
        if (!tmp)
            return 1;
        snprintf(tmp, n, "%s.partial-%ld", a->out, (long)getpid());
        out = fopen(tmp, "w");
        if (!out) {
            fprintf(stderr, "holdfast: cannot write %s: %s\n", tmp, strerror(errno));
            free(tmp);
            return 1;
        }
    }
    int rc = 0;
    uint8_t pos[S_POS_MAX];
    size_t pos_len = 0;
    uint64_t total = 0;
    bool first = true;
    for (;;) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4 + (a->run != 0) + (a->lane != NULL) + (pos_len != 0));
        s_pk_str(&pk, "v");
        msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
        s_pk_str(&pk, "cmd");
        s_pk_str(&pk, "export");
        s_pk_str(&pk, "engine");
        s_pk_str(&pk, a->engine);
        s_pk_str(&pk, "max");
        msgpack_pack_uint32(&pk, S_EXPORT_PAGE);
        if (a->run) {
            s_pk_str(&pk, "run");
            msgpack_pack_uint64(&pk, a->run);
        }
        if (a->lane) {
            s_pk_str(&pk, "lane");
            s_pk_str(&pk, a->lane);
        }
        if (pos_len) {
            s_pk_str(&pk, "pos");
            msgpack_pack_bin(&pk, pos_len);
            msgpack_pack_bin_body(&pk, pos, pos_len);
        }
        const msgpack_object *rep = s_call(c, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (!rep) {
            rc = 1;
            break;
        }
        const msgpack_object *recs = s_get(rep, "records");
        const msgpack_object *np = s_get(rep, "pos");
        if (!recs || recs->type != MSGPACK_OBJECT_ARRAY || !np ||
            np->type != MSGPACK_OBJECT_BIN || np->via.bin.size > S_POS_MAX) {
            fprintf(stderr, "holdfast: malformed export reply\n");
            rc = 1;
            break;
        }
        if (first && a->csv)
            fputs(s_csv_header, out); /* only once the aggregator answered */
        first = false;
        for (uint32_t i = 0; i < recs->via.array.size; i++) {
            if (a->csv)
                s_csv_record(out, a->engine, &recs->via.array.ptr[i]);
            else
                s_json_record(out, a->engine, &recs->via.array.ptr[i]);
        }
        total += recs->via.array.size;
        if (s_bool(rep, "done"))
            break;
        if (recs->via.array.size == 0 && np->via.bin.size == pos_len &&
            memcmp(np->via.bin.ptr, pos, pos_len) == 0) {
            fprintf(stderr, "holdfast: export made no progress; giving up\n");
            rc = 1;
            break;
        }
        memcpy(pos, np->via.bin.ptr, np->via.bin.size);
        pos_len = np->via.bin.size;
        if (ferror(out))
            break;
    }
    if (fflush(out) != 0 || ferror(out)) {
        fprintf(stderr, "holdfast: write failed: %s\n", strerror(errno));
        rc = 1;
    }
    if (a->out) {
        if (fclose(out) != 0 && rc == 0) {
            fprintf(stderr, "holdfast: write failed: %s\n", strerror(errno));
            rc = 1;
        }
        if (rc == 0 && rename(tmp, a->out) != 0) {
            fprintf(stderr, "holdfast: cannot rename %s to %s: %s\n", tmp, a->out,
                    strerror(errno));
            rc = 1;
        }
        if (rc != 0)
            remove(tmp);
        else
            fprintf(stderr, "holdfast: exported %llu records to %s\n",
                    (unsigned long long)total, a->out);
        free(tmp);
    }
    return rc;
}

/* ---- show, tail ------------------------------------------------------------------------ */

/* One export page of (engine, lane, run) from pos (pos_len 0 = from the
 * start; from_end: from the newest record). Calls fn per record. Returns
 * the reply (for "pos" and "done") or NULL after printing why. */
static const msgpack_object *
s_export_page(s_client_t *c, const char *engine, const char *lane, uint64_t run, bool from_end,
              const uint8_t *pos, size_t pos_len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + (lane != NULL) + (run != 0) + (pos_len != 0) + from_end);
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "export");
    s_pk_str(&pk, "engine");
    s_pk_str(&pk, engine);
    s_pk_str(&pk, "max");
    msgpack_pack_uint32(&pk, S_EXPORT_PAGE);
    if (lane) {
        s_pk_str(&pk, "lane");
        s_pk_str(&pk, lane);
    }
    if (run) {
        s_pk_str(&pk, "run");
        msgpack_pack_uint64(&pk, run);
    }
    if (pos_len) {
        s_pk_str(&pk, "pos");
        msgpack_pack_bin(&pk, pos_len);
        msgpack_pack_bin_body(&pk, pos, pos_len);
    }
    if (from_end) {
        s_pk_str(&pk, "from");
        s_pk_str(&pk, "end");
    }
    const msgpack_object *rep = s_call(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep)
        return NULL;
    const msgpack_object *recs = s_get(rep, "records");
    const msgpack_object *np = s_get(rep, "pos");
    if (!recs || recs->type != MSGPACK_OBJECT_ARRAY || !np || np->type != MSGPACK_OBJECT_BIN ||
        np->via.bin.size > S_POS_MAX) {
        fprintf(stderr, "holdfast: malformed export reply\n");
        return NULL;
    }
    return rep;
}

/* A control record as one line for a person. */
static void
s_event_line(FILE *out, const msgpack_object *r)
{
    char ts[40], kind[16], a[HF_TEXT_MAX + 8], b[32], t[HF_TEXT_MAX + 8];
    s_iso(s_u64(r, "ts_ns"), ts, sizeof ts);
    s_str(r, "kind", kind, sizeof kind);
    s_str(r, "text", t, sizeof t);
    if (!strcmp(kind, "event"))
        fprintf(out, "  %s  %-12s %s\n", ts, s_str(r, "event", a, sizeof a), t);
    else if (!strcmp(kind, "alarm"))
        fprintf(out, "  %s  alarm %-6s %s code=%llu: %s\n", ts,
                s_bool(r, "raised") ? "raised" : "clear", s_str(r, "severity", b, sizeof b),
                (unsigned long long)s_u64(r, "code"), t);
    else if (!strcmp(kind, "hw_error"))
        fprintf(out, "  %s  hw_error %s: %s\n", ts, s_str(r, "class", b, sizeof b), t);
    else if (!strcmp(kind, "command"))
        fprintf(out, "  %s  command %llu %s -> %s: %s\n", ts,
                (unsigned long long)s_u64(r, "command"), s_str(r, "verb", a, sizeof a),
                s_str(r, "result", b, sizeof b), t);
    else if (!strcmp(kind, "gap"))
        fprintf(out, "  %s  gap %s %llu..%llu (%llu dropped, %s)\n", ts,
                s_str(r, "gap_lane", a, sizeof a), (unsigned long long)s_u64(r, "first"),
                (unsigned long long)s_u64(r, "last"), (unsigned long long)s_u64(r, "count"),
                s_str(r, "reason", b, sizeof b));
    else
        fprintf(out, "  %s  %s\n", ts, kind);
}

static int
s_cmd_show(s_client_t *c, uint64_t run, const char *engine)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (engine != NULL));
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "run");
    s_pk_str(&pk, "run");
    msgpack_pack_uint64(&pk, run);
    if (engine) {
        s_pk_str(&pk, "engine");
        s_pk_str(&pk, engine);
    }
    const msgpack_object *rep = s_call(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep)
        return 1;
    if (s_json)
        return s_print_json(rep);
    const msgpack_object *runs = s_get(rep, "runs");
    uint32_t n = runs && runs->type == MSGPACK_OBJECT_ARRAY ? runs->via.array.size : 0;
    /* copy what the export calls below would overwrite */
    char engines[8][HF_ENGINE_ID_MAX + 1];
    uint32_t ne = 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *r = &runs->via.array.ptr[i];
        char eng[HF_ENGINE_ID_MAX + 1], st[24], cause[48], method[HF_TEXT_MAX + 1];
        char t1[40], t2[40], ch[512], last[32];
        s_str(r, "engine", eng, sizeof eng);
        s_str(r, "state", st, sizeof st);
        s_str(r, "cause", cause, sizeof cause);
        bool live_run = !strcmp(st, "running") || !strcmp(st, "paused");
        printf("run %llu on %s\n", (unsigned long long)run, eng);
        printf("  state      %s%s%s%s\n", st, cause[0] ? " (" : "", cause, cause[0] ? ")" : "");
        if (live_run && !s_bool(r, "engine_available"))
            printf("             engine unavailable: it may have ended since; its backlog will "
                   "tell\n");
        printf("  method     %s\n", s_str(r, "method", method, sizeof method));
        printf("  started    %s\n", s_iso(s_u64(r, "started_ns"), t1, sizeof t1));
        printf("  ended      %s\n", s_iso(s_u64(r, "ended_ns"), t2, sizeof t2));
        printf("  samples    %llu\n", (unsigned long long)s_u64(r, "samples"));
        printf("  control    %llu records\n", (unsigned long long)s_u64(r, "control"));
        printf("  channels   %s\n", s_str(r, "channels", ch, sizeof ch));
        printf("  last event %s\n", s_str(r, "last_event", last, sizeof last));
        if (ne < 8)
            snprintf(engines[ne++], sizeof engines[0], "%s", eng);
    }
    /* the run's control records: what happened, in order */
    for (uint32_t e = 0; e < ne; e++) {
        printf("events of run %llu on %s:\n", (unsigned long long)run, engines[e]);
        uint8_t pos[S_POS_MAX];
        size_t pos_len = 0;
        for (int page = 0; page < 100000; page++) {
            const msgpack_object *r2 =
                s_export_page(c, engines[e], "control", run, false, pos, pos_len);
            if (!r2)
                return 1;
            const msgpack_object *recs = s_get(r2, "records");
            for (uint32_t i = 0; i < recs->via.array.size; i++)
                s_event_line(stdout, &recs->via.array.ptr[i]);
            const msgpack_object *np = s_get(r2, "pos");
            if (s_bool(r2, "done") ||
                (np->via.bin.size == pos_len && !memcmp(np->via.bin.ptr, pos, pos_len)))
                break;
            memcpy(pos, np->via.bin.ptr, np->via.bin.size);
            pos_len = np->via.bin.size;
        }
    }
    return 0;
}

/* Follow an engine's records as they are stored: one cursor per lane,
 * each starting after the newest record, polled every 200 ms. */
static int
s_cmd_tail(s_client_t *c, const char *engine, const char *lane, uint64_t count)
{
    const char *lanes[2] = {"control", "data"};
    uint8_t pos[2][S_POS_MAX];
    size_t pos_len[2] = {0, 0};
    bool started[2] = {false, false};
    uint64_t seen = 0;
    signal(SIGINT, s_watch_signal);
    signal(SIGTERM, s_watch_signal);
    while (!s_watch_stop && (count == 0 || seen < count)) {
        bool idle = true;
        for (int l = 0; l < 2 && !s_watch_stop; l++) {
            if (lane && strcmp(lane, lanes[l]))
                continue;
            const msgpack_object *rep = s_export_page(c, engine, lanes[l], 0, !started[l],
                                                      pos[l], pos_len[l]);
            if (!rep)
                return 1;
            started[l] = true;
            const msgpack_object *recs = s_get(rep, "records");
            for (uint32_t i = 0; i < recs->via.array.size && (count == 0 || seen < count); i++) {
                s_json_record(stdout, engine, &recs->via.array.ptr[i]);
                seen++;
            }
            if (recs->via.array.size)
                idle = false;
            const msgpack_object *np = s_get(rep, "pos");
            memcpy(pos[l], np->via.bin.ptr, np->via.bin.size);
            pos_len[l] = np->via.bin.size;
        }
        fflush(stdout);
        if (idle)
            usleep(200000);
    }
    return 0;
}

/* ---- commands ------------------------------------------------------------------------ */

/* Exit codes of the command verbs (docs/cli.md). */
enum {
    S_EXIT_REFUSED = 3,    /* engine unavailable or unknown: not sent     */
    S_EXIT_ENGINE = 4,     /* the engine answered with an error           */
    S_EXIT_UNKNOWN = 5,    /* outcome unknown (link lost, no answer)      */
    S_EXIT_SUPERSEDED = 6, /* cancelled by a later abort before it was sent */
};

typedef struct {
    const char *engine;
    uint8_t verb;
    const char *name;       /* START: method name; SET: actuator          */
    const char *file;       /* START --file: method text read from here    */
    double value;           /* SET                                         */
} s_command_args_t;

static char *
s_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "holdfast: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > max) {
        fprintf(stderr, "holdfast: %s: %s\n", path,
                bad ? "cannot read it" : "larger than a command may carry (64 KiB)");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int
s_cmd_command(s_client_t *c, const s_command_args_t *a, bool json)
{
    size_t body_len = 0;
    char *body = NULL;
    if (a->file) {
        body = s_read_file(a->file, HF_CONTROL_MAX_REQUEST - 1024, &body_len);
        if (!body)
            return 1;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + (a->name != NULL) + (a->verb == HF_CMD_SET) + (body != NULL));
    s_pk_str(&pk, "v");
    msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
    s_pk_str(&pk, "cmd");
    s_pk_str(&pk, "command");
    s_pk_str(&pk, "engine");
    s_pk_str(&pk, a->engine);
    s_pk_str(&pk, "verb");
    s_pk_str(&pk, hf_command_verb_name(a->verb));
    if (a->name) {
        s_pk_str(&pk, "name");
        s_pk_str(&pk, a->name);
    }
    if (a->verb == HF_CMD_SET) {
        s_pk_str(&pk, "value");
        msgpack_pack_double(&pk, a->value);
    }
    if (body) {
        s_pk_str(&pk, "body");
        msgpack_pack_str(&pk, body_len);
        msgpack_pack_str_body(&pk, body, body_len);
    }
    free(body);
    const msgpack_object *rep = s_call_raw(c, &sb);
    msgpack_sbuffer_destroy(&sb);
    if (!rep && c->denied)
        return S_EXIT_DENIED; /* the handshake was refused: nothing was sent */
    if (!rep)
        return S_EXIT_UNKNOWN; /* sent, perhaps carried out: we can't tell */
    char text[512], err[64];
    bool ok = s_bool(rep, "ok");
    s_str(rep, ok ? "text" : "msg", text, sizeof text);
    s_str(rep, "err", err, sizeof err);
    uint64_t id = s_u64(rep, "id");
    uint64_t code = s_u64(rep, "code");
    if (json) {
        s_json_value(stdout, rep);
        fputc('\n', stdout);
    } else if (ok) {
        printf("%s %s: ok (command %llu): %s\n", hf_command_verb_name(a->verb), a->engine,
               (unsigned long long)id, text);
    } else {
        fprintf(stderr, "holdfast: %s %s refused: %s (%s)\n", hf_command_verb_name(a->verb),
                a->engine, text, err);
    }
    if (ok)
        return 0;
    if (!strncmp(text, "permission denied", 17))
        return S_EXIT_DENIED;
    char by[16];
    if (!strcmp(s_str(rep, "by", by, sizeof by), "engine"))
        return S_EXIT_ENGINE;
    switch (code) {
    case HF_EUNAVAIL:
    case HF_ENOTFOUND:
    case HF_EFULL: return S_EXIT_REFUSED;
    case HF_EUNKNOWN: return S_EXIT_UNKNOWN;
    case HF_ESUPERSEDED: return S_EXIT_SUPERSEDED;
    default: return 1; /* a bad request, the store: the aggregator's side */
    }
}

/* ---- backup, restore ------------------------------------------------------------- */

static int s_opt(int argc, char **argv, int *i, const char *name, const char **val);

static void
s_backup_progress(uint64_t done, uint64_t total, void *arg)
{
    uint64_t *last = arg;
    if (!isatty(STDERR_FILENO) || done - *last < (8u << 20))
        return; /* a terminal only, every 8 MiB */
    *last = done;
    if (total)
        fprintf(stderr, "\rbackup: %llu / ~%llu MiB (%llu%%)   ", (unsigned long long)(done >> 20),
                (unsigned long long)(total >> 20),
                (unsigned long long)(done * 100 / total > 100 ? 100 : done * 100 / total));
    else
        fprintf(stderr, "\rbackup: %llu MiB   ", (unsigned long long)(done >> 20));
}

/* `holdfast backup DEST --data DIR` / `holdfast restore SRC --data DIR`: on
 * the aggregator's host (they read and write the store's files; LMDB lets
 * the backup read a store the aggregator is writing). */
static int
s_cmd_backup(bool make, int argc, char **argv, int i)
{
    const char *dir = NULL, *data = NULL;
    for (; i < argc; i++) {
        const char *val = NULL;
        int m;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if ((m = s_opt(argc, argv, &i, "--data", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--data needs the store's directory%s", NULL);
            data = val;
        } else if (argv[i][0] == '-') {
            return s_usage_error("unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return s_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if (!dir || !data)
        return s_usage_error(make ? "backup needs DEST and --data DIR (the aggregator's store)%s"
                                  : "restore needs SRC and --data DIR (where to install it)%s",
                             NULL);
    hf_log_set_level(HF_LOG_WARN); /* the library's info lines are for daemons */
    hf_backup_info_t info;
    hf_err_t rc;
    if (make) {
        uint64_t last = 0;
        rc = hf_backup_make(data, dir, s_backup_progress, &last, &info);
        if (last)
            fputc('\n', stderr);
    } else {
        rc = hf_backup_restore(dir, data, &info);
    }
    if (rc != HF_OK) {
        const char *why = rc == HF_ECORRUPT    ? "damaged, unfinished or not a Holdfast store"
                          : rc == HF_ENOTFOUND ? "no store there"
                          : rc == HF_EINVAL    ? "the destination already holds a store or backup"
                                               : hf_strerror(rc);
        fprintf(stderr, "holdfast: %s %s: %s (%s)\n", make ? "backup" : "restore", dir, why,
                hf_errname(rc));
        return 1;
    }
    printf("%s %s: %llu engines, %llu control and %llu data records, %llu bytes, checksum "
           "%016llx\n",
           make ? "backed up to" : "restored from", dir, (unsigned long long)info.engines,
           (unsigned long long)info.records[0], (unsigned long long)info.records[1],
           (unsigned long long)info.bytes, (unsigned long long)info.checksum);
    return 0;
}

/* ---- keygen ------------------------------------------------------------------------ */

static int s_opt(int argc, char **argv, int *i, const char *name, const char **val);

/* `holdfast keygen NAME [--dir DIR] [--engine ID | --role R | --server] [--force]`:
 * a czmq certificate pair, DIR/NAME (public) and DIR/NAME_secret (0600),
 * with metadata saying what the key is for (docs/security.md). */
static int
s_cmd_keygen(int argc, char **argv, int i)
{
    const char *name = NULL, *dir = ".", *engine = NULL, *role = NULL;
    bool server = false, force = false;
    for (; i < argc; i++) {
        const char *val = NULL;
        int m;
        if ((m = s_opt(argc, argv, &i, "--dir", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--dir needs a directory%s", NULL);
            dir = val;
        } else if ((m = s_opt(argc, argv, &i, "--engine", &val)) != 0) {
            if (m < 0 || !hf_engine_id_valid(val))
                return s_usage_error("--engine needs an engine id ([A-Za-z0-9._-], 1-64 "
                                     "bytes)%s", NULL);
            engine = val;
        } else if ((m = s_opt(argc, argv, &i, "--role", &val)) != 0) {
            if (m < 0 || (strcmp(val, "operator") && strcmp(val, "reader")))
                return s_usage_error("--role must be 'operator' or 'reader'%s", NULL);
            role = val;
        } else if (!strcmp(argv[i], "--server")) {
            server = true;
        } else if (!strcmp(argv[i], "--force")) {
            force = true;
        } else if (argv[i][0] == '-' || name) {
            return s_usage_error("unexpected argument '%s'", argv[i]);
        } else {
            name = argv[i];
        }
    }
    if (!name || !*name || strchr(name, '/') || name[0] == '.' || strlen(name) > 128)
        return s_usage_error("keygen needs a NAME (a file name: no '/', not starting with '.', "
                             "128 bytes at most)%s", NULL);
    if ((engine != NULL) + (role != NULL) + server > 1)
        return s_usage_error("keygen: give one of --engine, --role and --server%s", NULL);
    if (!engine && !role && !server)
        role = "operator";
    char pub[4096], sec[4200];
    snprintf(pub, sizeof pub, "%s/%s", dir, name);
    snprintf(sec, sizeof sec, "%s_secret", pub);
    struct stat st;
    if (!force && (stat(pub, &st) == 0 || stat(sec, &st) == 0)) {
        fprintf(stderr, "holdfast: %s or its _secret exists (--force to replace it)\n", pub);
        return 1;
    }
    zsys_set_logstream(NULL);
    zcert_t *cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "holdfast: cannot make a key pair\n");
        return 1;
    }
    char when[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s_iso((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, when, sizeof when);
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "created", "%s", when);
    if (engine)
        zcert_set_meta(cert, "engine-id", "%s", engine);
    else if (role)
        zcert_set_meta(cert, "role", "%s", role);
    else
        zcert_set_meta(cert, "role", "server");
    /* The secret file is written with a private umask; check anyway. */
    mode_t old = umask(077);
    int rc = zcert_save(cert, pub);
    umask(old);
    if (rc == 0 && chmod(sec, 0600) != 0)
        rc = -1;
    if (rc == 0)
        chmod(pub, 0644);
    if (rc == 0 && (stat(sec, &st) != 0 || (st.st_mode & 077) != 0)) {
        fprintf(stderr, "holdfast: %s is readable by others: removed\n", sec);
        unlink(sec);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "holdfast: cannot write %s: %s\n", pub, strerror(errno));
        zcert_destroy(&cert);
        return 1;
    }
    printf("%s key %s\n  public: %s (give this file to the %s)\n  secret: %s (mode 0600; keep "
           "it with its owner)\n",
           engine ? "engine" : server ? "aggregator" : role, zcert_public_txt(cert), pub,
           engine ? "aggregator's --engine-keys directory"
           : server ? "engines and operators: --server-key"
                    : "aggregator's --operator-keys directory",
           sec);
    zcert_destroy(&cert);
    return 0;
}

/* ---- argument parsing --------------------------------------------------------------- */

/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i. Returns
 * 1 on a match with *val set, 0 if argv[*i] is another word, -1 when the
 * value is missing. */
static int
s_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

static bool
s_parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || !end || *end)
        return false;
    *v = x;
    return true;
}

int
main(int argc, char **argv)
{
    const char *endpoint = getenv("HOLDFAST_CONTROL");
    if (!endpoint || !*endpoint)
        endpoint = S_DEFAULT_ENDPOINT;
    uint64_t timeout = S_DEFAULT_TIMEOUT;
    bool timeout_set = false;
    const char *cert = getenv("HOLDFAST_CERT");
    const char *server_key = getenv("HOLDFAST_SERVER_KEY");
    bool insecure = false, cert_flag = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *val = NULL;
        int m;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if ((m = s_opt(argc, argv, &i, "--control", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--control needs an endpoint%s", NULL);
            endpoint = val;
        } else if ((m = s_opt(argc, argv, &i, "--timeout", &val)) != 0) {
            if (m < 0 || !s_parse_u64(val, &timeout) || timeout == 0 || timeout > S_MAX_TIMEOUT)
                return s_usage_error("--timeout needs a number of milliseconds (1..3600000)%s",
                                     NULL);
            timeout_set = true;
        } else if ((m = s_opt(argc, argv, &i, "--cert", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--cert needs a certificate file%s", NULL);
            cert = val;
            cert_flag = true;
        } else if ((m = s_opt(argc, argv, &i, "--server-key", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--server-key needs the aggregator's public certificate%s",
                                     NULL);
            server_key = val;
            cert_flag = true;
        } else if (!strcmp(argv[i], "--insecure")) {
            insecure = true;
        } else if (argv[i][0] == '-') {
            return s_usage_error("unknown option '%s'", argv[i]);
        } else {
            break;
        }
    }
    if (i >= argc)
        return s_usage_error("no command given%s", NULL);
    const char *cmd = argv[i++];

    if (!strcmp(cmd, "keygen"))
        return s_cmd_keygen(argc, argv, i);
    if (!strcmp(cmd, "backup") || !strcmp(cmd, "restore"))
        return s_cmd_backup(!strcmp(cmd, "backup"), argc, argv, i);
    if (insecure && cert_flag)
        return s_usage_error("--insecure excludes --cert and --server-key%s", NULL);
    int krc = s_keys_load(cert, server_key, insecure);
    if (krc != 0)
        return krc;

    if (!strcmp(cmd, "fault")) {
        /* test builds of the aggregator only (docs/supervision.md): make a
         * supervised task fail, e.g. "session:ENGINE", "control", "feed" */
        if (i + 1 != argc)
            return s_usage_error("fault needs one TASK%s", NULL);
        s_client_t c;
        int rc = s_client_open(&c, endpoint, (int)timeout);
        if (rc == 0) {
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 3);
            s_pk_str(&pk, "v");
            msgpack_pack_uint8(&pk, HF_CONTROL_VERSION);
            s_pk_str(&pk, "cmd");
            s_pk_str(&pk, "fault");
            s_pk_str(&pk, "task");
            s_pk_str(&pk, argv[i]);
            rc = s_call(&c, &sb) ? 0 : 1;
            msgpack_sbuffer_destroy(&sb);
        }
        if (c.denied)
            rc = S_EXIT_DENIED;
        s_client_close(&c);
        return rc;
    }

    uint8_t verb = 0;
    if (hf_command_verb_parse(cmd, &verb) == HF_OK) {
        s_command_args_t a = {.verb = verb};
        bool json = false;
        int pos = 0;
        for (; i < argc; i++) {
            const char *val = NULL;
            int m;
            if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                fputs(s_usage, stdout);
                return 0;
            }
            if (!strcmp(argv[i], "--json")) {
                json = true;
            } else if (verb == HF_CMD_START && (m = s_opt(argc, argv, &i, "--file", &val)) != 0) {
                if (m < 0 || !*val)
                    return s_usage_error("--file needs a method file%s", NULL);
                a.file = val;
            } else if (argv[i][0] == '-' && !(verb == HF_CMD_SET && pos == 2)) {
                return s_usage_error("unknown option '%s'", argv[i]);
            } else if (pos == 0) {
                if (!hf_engine_id_valid(argv[i]))
                    return s_usage_error("'%s' is not an engine id ([A-Za-z0-9._-], 1-64 bytes)",
                                         argv[i]);
                a.engine = argv[i];
                pos++;
            } else if (pos == 1 && (verb == HF_CMD_START || verb == HF_CMD_SET)) {
                if (strlen(argv[i]) > HF_COMMAND_NAME_MAX)
                    return s_usage_error("name '%s' is too long (64 bytes at most)", argv[i]);
                a.name = argv[i];
                pos++;
            } else if (pos == 2 && verb == HF_CMD_SET) {
                char *end = NULL;
                errno = 0;
                a.value = strtod(argv[i], &end);
                if (errno || !end || *end || end == argv[i])
                    return s_usage_error("'%s' is not a number", argv[i]);
                pos++;
            } else {
                return s_usage_error("unexpected argument '%s'", argv[i]);
            }
        }
        if (!a.engine)
            return s_usage_error("%s needs an ENGINE", cmd);
        if (verb == HF_CMD_START && !a.name && !a.file)
            return s_usage_error("start needs a METHOD name or --file FILE%s", NULL);
        if (verb == HF_CMD_SET && pos != 3)
            return s_usage_error("set needs ENGINE NAME VALUE%s", NULL);
        if (!timeout_set)
            timeout = S_COMMAND_TIMEOUT;
        s_client_t c;
        int rc = s_client_open(&c, endpoint, (int)timeout);
        if (rc == 0)
            rc = s_cmd_command(&c, &a, json);
        s_client_close(&c);
        return rc;
    }

    const char *engine = NULL;
    uint64_t run = 0, limit = 0;
    const char *lane = NULL;
    const char *format = "jsonl";
    const char *out = NULL;
    bool is_export = !strcmp(cmd, "export");
    bool is_runs = !strcmp(cmd, "runs");
    bool is_engines = !strcmp(cmd, "engines");
    bool is_status = !strcmp(cmd, "status");
    bool is_show = !strcmp(cmd, "show");
    bool is_tail = !strcmp(cmd, "tail");
    uint64_t show_run = 0;
    bool history = false, watch = false;
    const char *feed = getenv("HOLDFAST_STATUS");
    uint64_t count = 0;
    if (strcmp(cmd, "status") && strcmp(cmd, "engines") && !is_runs && !is_export && !is_show &&
        !is_tail)
        return s_usage_error("unknown command '%s'", cmd);
    for (; i < argc; i++) {
        const char *val = NULL;
        int m;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(s_usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json") && (is_status || is_engines || is_runs || is_show)) {
            s_json = true;
        } else if (is_show && !show_run && argv[i][0] != '-') {
            if (!s_parse_u64(argv[i], &show_run) || show_run == 0)
                return s_usage_error("'%s' is not a run id", argv[i]);
        } else if (is_engines && !strcmp(argv[i], "--history")) {
            history = true;
        } else if (is_status && !strcmp(argv[i], "--watch")) {
            watch = true;
        } else if (is_status && (m = s_opt(argc, argv, &i, "--feed", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--feed needs the aggregator's status endpoint%s", NULL);
            feed = val;
        } else if ((is_status || is_tail) && (m = s_opt(argc, argv, &i, "--count", &val)) != 0) {
            if (m < 0 || !s_parse_u64(val, &count) || count == 0)
                return s_usage_error("--count needs a positive number%s", NULL);
        } else if ((is_export || is_runs || is_engines || is_show || is_tail) &&
                   (m = s_opt(argc, argv, &i, "--engine", &val)) != 0) {
            if (m < 0 || !hf_engine_id_valid(val))
                return s_usage_error("--engine needs an engine id ([A-Za-z0-9._-], 1-64 "
                                     "bytes)%s", NULL);
            engine = val;
        } else if (is_runs && (m = s_opt(argc, argv, &i, "--limit", &val)) != 0) {
            if (m < 0 || !s_parse_u64(val, &limit) || limit == 0)
                return s_usage_error("--limit needs a positive number%s", NULL);
        } else if (is_export && (m = s_opt(argc, argv, &i, "--run", &val)) != 0) {
            if (m < 0 || !s_parse_u64(val, &run) || run == 0)
                return s_usage_error("--run needs a run id (a positive number)%s", NULL);
        } else if ((is_export || is_tail) && (m = s_opt(argc, argv, &i, "--lane", &val)) != 0) {
            if (m < 0 || (strcmp(val, "control") && strcmp(val, "data")))
                return s_usage_error("--lane must be 'control' or 'data'%s", NULL);
            lane = val;
        } else if (is_export && (m = s_opt(argc, argv, &i, "--format", &val)) != 0) {
            if (m < 0 || (strcmp(val, "csv") && strcmp(val, "jsonl")))
                return s_usage_error("--format must be 'csv' or 'jsonl'%s", NULL);
            format = val;
        } else if (is_export && (m = s_opt(argc, argv, &i, "--out", &val)) != 0) {
            if (m < 0 || !*val)
                return s_usage_error("--out needs a file name%s", NULL);
            out = val;
        } else {
            return s_usage_error("unexpected argument '%s'", argv[i]);
        }
    }
    if ((is_export || is_tail) && !engine)
        return s_usage_error("%s needs --engine NAME", cmd);
    if (is_show && !show_run)
        return s_usage_error("show needs a RUN id%s", NULL);

    if (watch) {
        if (!feed)
            return s_usage_error("status --watch needs --feed ENDPOINT (the aggregator's "
                                 "--status) or HOLDFAST_STATUS%s", NULL);
        return s_cmd_watch(feed, count, (int)timeout);
    }
    s_client_t c;
    int rc = s_client_open(&c, endpoint, (int)timeout);
    if (rc == 0) {
        if (!strcmp(cmd, "status"))
            rc = s_cmd_status(&c, false);
        else if (is_engines) {
            rc = s_cmd_status(&c, true);
            if (rc == 0 && history)
                rc = s_cmd_history(&c, engine);
        }
        else if (is_runs)
            rc = s_cmd_runs(&c, engine, limit);
        else if (is_show)
            rc = s_cmd_show(&c, show_run, engine);
        else if (is_tail)
            rc = s_cmd_tail(&c, engine, lane, count);
        else {
            s_export_args_t a = {engine, run, lane, !strcmp(format, "csv"), out};
            rc = s_cmd_export(&c, &a);
        }
    }
    if (rc != 0 && c.denied)
        rc = S_EXIT_DENIED;
    s_client_close(&c);
    return rc;
}
