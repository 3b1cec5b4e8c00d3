/* hf_proxy.c - hf-proxy: a fault-injecting TCP proxy for the e2e tests.
 *
 *   hf-proxy --upstream HOST:PORT [--listen [HOST:]PORT] [--ctl-port PORT]
 *            [--max-conns N] [--buffer BYTES] [-v]
 *   hf-proxy --ctl PORT COMMAND [ARG]          (client: send one command)
 *
 * Every connection accepted on the listen port is forwarded, byte for byte,
 * to the upstream. Faults are switched at run time through a control port
 * on 127.0.0.1 taking one command per line (hf_pxcmd.h) and answering one
 * line: "ok ..." or "err REASON". With port 0 the kernel picks; the first
 * line on stdout is "listen PORT ctl PORT", so tests never need fixed ports.
 *
 * Design: one thread, one poll() loop. Each connection holds two bounded
 * pipes (hf_pxpipe_t), one per direction; a socket is read only while the
 * pipe it feeds has room (backpressure), and written when the pipe's
 * schedule (delay, throttle) releases bytes. The poll timeout is the
 * earliest pipe deadline, capped at 1 s, so the loop never spins: a socket
 * is polled for POLLOUT only when bytes are due, and in blackhole mode the
 * connections' sockets are left out of the poll set altogether (a hung-up
 * socket would otherwise report POLLHUP at once, forever).
 *
 * Modes: pass (forward), blackhole (nothing moves either way; connections
 * stay open, new ones are accepted and connected upstream but nothing moves:
 * like a partition that heals when `pass` comes back, since TCP would have
 * retransmitted), halfopen (client->upstream forwarded, upstream->client
 * read and dropped). refuse, delay and throttle are set on their own; `pass`
 * clears all of them. cut and reset act once, on the current connections.
 *
 * Invariants:
 * - at most max_conns connections; an accept beyond that closes at once.
 * - bytes leave a pipe in order, unchanged; the proxy never invents or
 *   reorders bytes, it only holds, drops (halfopen replies) or closes.
 * - EOF is forwarded (shutdown(SHUT_WR)) only after the pipe in that
 *   direction drained, so the peer sees every byte before the FIN.
 * - Exits 0 on SIGTERM/SIGINT, closing every socket.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hf_log.h"
#include "hf_pxcmd.h"
#include "hf_pxpipe.h"
#include "hf_time.h"

#define S_LOG "hf-proxy"
#define S_CTL_MAX 8                  /* control clients at once           */
#define S_IO_CHUNK 65536u            /* bytes per read()                  */
#define S_DRAIN_ON_CUT (1u << 20)    /* bytes discarded before a FIN close */
#define S_POLL_MAX_MS 1000           /* the loop wakes at least this often */
#define S_DEFAULT_CONNS 256u
#define S_DEFAULT_BUFFER (256u << 10) /* bytes per direction */

typedef enum { S_MODE_PASS, S_MODE_BLACKHOLE, S_MODE_HALFOPEN } s_mode_t;

typedef struct {
    bool used;
    int cfd;             /* accepted client socket, -1 once closed      */
    int ufd;             /* upstream socket                             */
    bool connecting;     /* upstream connect() in progress              */
    bool c_eof, u_eof;   /* read side saw EOF                           */
    bool c_hup, u_hup;   /* poll reported HUP: poll only to read it out */
    bool u_shut, c_shut; /* EOF forwarded to upstream / to client       */
    hf_pxpipe_t *c2u;    /* client -> upstream                          */
    hf_pxpipe_t *u2c;    /* upstream -> client                          */
    uint64_t id;
} s_conn_t;

typedef struct {
    int fd;                          /* -1: free slot */
    char line[HF_PXCMD_LINE_MAX + 2];
    size_t len;                      /* bytes in line */
    bool overflow;                   /* the current line is too long: refuse it */
} s_ctl_t;

typedef struct {
    int lfd, ctl_lfd;
    struct sockaddr_storage up;    /* upstream address */
    socklen_t up_len;
    uint32_t max_conns;
    size_t buffer;                 /* bytes per pipe */
    s_conn_t *conns;               /* max_conns */
    s_ctl_t ctl[S_CTL_MAX];
    s_mode_t mode;
    bool refuse;
    uint64_t delay_ms;             /* ms */
    uint64_t jitter_ms;            /* ms: each chunk's delay is delay +/- this */
    uint64_t rng;                  /* xorshift state for the jitter */
    uint64_t rate;                 /* bytes/s, 0 = unlimited */
    uint64_t next_id;
    uint64_t accepted, refused, closed;
    uint64_t up_bytes, down_bytes; /* bytes written to upstream / to clients */
    uint64_t dropped_bytes;        /* upstream bytes dropped in halfopen */
    uint32_t nconns;
} s_proxy_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: hf-proxy --upstream HOST:PORT [--listen [HOST:]PORT] [--ctl-port PORT]\n"
            "                [--max-conns N] [--buffer BYTES] [-v]\n"
            "       hf-proxy --ctl PORT COMMAND [ARG]\n"
            "Prints \"listen PORT ctl PORT\" first (port 0 = the kernel picks).\n"
            "Commands: pass cut reset blackhole refuse halfopen stats\n"
            "          delay MS [JITTER_MS]  throttle BYTES_PER_S\n");
}

/* This chunk's delay: delay_ms +/- a uniform jitter_ms (the pipe keeps
 * chunks in order whatever their ready times: a TCP stream cannot reorder). */
static uint64_t
s_chunk_delay(s_proxy_t *p)
{
    if (p->jitter_ms == 0)
        return p->delay_ms;
    p->rng ^= p->rng << 13, p->rng ^= p->rng >> 7, p->rng ^= p->rng << 17;
    uint64_t span = 2 * p->jitter_ms + 1;
    return p->delay_ms - p->jitter_ms + p->rng % span;
}

static int
s_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* "HOST:PORT" or "PORT" (host default_host) -> address. */
static int
s_resolve(const char *spec, const char *default_host, struct sockaddr_storage *ss,
          socklen_t *len)
{
    char host[256];
    const char *port = spec;
    const char *colon = strrchr(spec, ':');
    if (colon) {
        size_t hl = (size_t)(colon - spec);
        if (hl == 0 || hl >= sizeof host)
            return -1;
        memcpy(host, spec, hl);
        host[hl] = 0;
        port = colon + 1;
    } else {
        snprintf(host, sizeof host, "%s", default_host);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int
s_listen(const struct sockaddr_storage *ss, socklen_t len, int *port)
{
    int one = 1;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 128) != 0 ||
        s_nonblock(fd) != 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &gl);
    *port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                            : ((struct sockaddr_in *)&got)->sin_port);
    return fd;
}

/* ---- connections ------------------------------------------------------- */

/* Close with FIN: shutdown, read out what the peer had sent (closing with
 * unread data makes the kernel send RST instead), close. */
static void
s_close_fin(int fd)
{
    if (fd < 0)
        return;
    shutdown(fd, SHUT_WR);
    uint8_t scratch[4096];
    for (size_t got = 0; got < S_DRAIN_ON_CUT;) {
        ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
}

static void
s_close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void
s_conn_close(s_proxy_t *p, s_conn_t *c, bool rst, const char *why)
{
    if (!c->used)
        return;
    hf_log_info(S_LOG, "conn=%" PRIu64 " closed (%s) how=%s c2u_left=%zu u2c_left=%zu", c->id,
                why, rst ? "rst" : "fin", c->c2u ? hf_pxpipe_pending(c->c2u) : 0,
                c->u2c ? hf_pxpipe_pending(c->u2c) : 0);
    if (rst) {
        s_close_rst(c->cfd);
        s_close_rst(c->ufd);
    } else {
        s_close_fin(c->cfd);
        s_close_fin(c->ufd);
    }
    hf_pxpipe_destroy(&c->c2u);
    hf_pxpipe_destroy(&c->u2c);
    memset(c, 0, sizeof *c);
    c->cfd = c->ufd = -1;
    p->nconns--;
    p->closed++;
}

static void
s_accept(s_proxy_t *p, hf_ms_t now)
{
    for (int k = 0; k < 64; k++) { /* bounded: let the loop serve others too */
        int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                hf_log_warn(S_LOG, "accept: %s", strerror(errno));
            return;
        }
        if (p->refuse || p->nconns == p->max_conns) {
            p->refused++;
            hf_log_info(S_LOG, "connection refused (%s)", p->refuse ? "refuse mode" : "max-conns");
            s_close_rst(fd);
            continue;
        }
        s_conn_t *c = NULL;
        for (uint32_t i = 0; i < p->max_conns && !c; i++)
            if (!p->conns[i].used)
                c = &p->conns[i];
        memset(c, 0, sizeof *c);
        c->cfd = fd;
        c->ufd = socket(p->up.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        c->c2u = hf_pxpipe_new(p->buffer, NULL);
        c->u2c = hf_pxpipe_new(p->buffer, NULL);
        c->used = true;
        c->id = ++p->next_id;
        p->nconns++;
        p->accepted++;
        if (c->ufd < 0 || !c->c2u || !c->u2c) {
            s_conn_close(p, c, true, "out of resources");
            continue;
        }
        int one = 1;
        setsockopt(c->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        hf_pxpipe_set_rate(c->c2u, p->rate, now);
        hf_pxpipe_set_rate(c->u2c, p->rate, now);
        if (connect(c->ufd, (struct sockaddr *)&p->up, p->up_len) != 0) {
            if (errno != EINPROGRESS) {
                hf_log_warn(S_LOG, "conn=%" PRIu64 " upstream connect: %s", c->id, strerror(errno));
                s_conn_close(p, c, true, "upstream refused");
                continue;
            }
            c->connecting = true;
        }
        hf_log_info(S_LOG, "conn=%" PRIu64 " accepted (mode=%s)", c->id,
                    p->mode == S_MODE_PASS ? "pass"
                    : p->mode == S_MODE_BLACKHOLE ? "blackhole" : "halfopen");
    }
}

/* Read what `fd` has into `pipe` (or drop it if pipe is NULL). false: the
 * connection failed (error). */
static bool
s_read_into(s_proxy_t *p, int fd, hf_pxpipe_t *pipe, bool *eof, hf_ms_t now)
{
    uint8_t buf[S_IO_CHUNK];
    for (int k = 0; k < 16; k++) {
        size_t want = pipe ? hf_pxpipe_space(pipe) : sizeof buf;
        if (want == 0)
            return true;
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t n = recv(fd, buf, want, MSG_DONTWAIT);
        if (n == 0) {
            *eof = true;
            return true;
        }
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        if (pipe)
            hf_pxpipe_push(pipe, buf, (size_t)n, now + s_chunk_delay(p));
        else
            p->dropped_bytes += (uint64_t)n;
        if ((size_t)n < want)
            return true;
    }
    return true;
}

/* Write what `pipe` releases now to `fd`. false: the connection failed. */
static bool
s_write_from(hf_pxpipe_t *pipe, int fd, uint64_t *counter, hf_ms_t now)
{
    for (int k = 0; k < 64; k++) {
        const uint8_t *data = NULL;
        size_t n = hf_pxpipe_peek(pipe, now, &data);
        if (n == 0)
            return true;
        ssize_t w = send(fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        hf_pxpipe_consume(pipe, (size_t)w, now);
        *counter += (uint64_t)w;
        if ((size_t)w < n)
            return true;
    }
    return true;
}

/* Move bytes both ways, forward EOFs, close a finished connection. */
static void
s_conn_pump(s_proxy_t *p, s_conn_t *c, short crev, short urev, hf_ms_t now)
{
    if (crev & POLLERR) {
        /* a reset or similar: nothing more can be read or written */
        s_conn_close(p, c, true, "client socket error");
        return;
    }
    if (c->connecting) {
        if (!(urev & (POLLOUT | POLLERR | POLLHUP)))
            goto client;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr) {
            hf_log_warn(S_LOG, "conn=%" PRIu64 " upstream connect: %s", c->id, strerror(soerr));
            s_conn_close(p, c, true, "upstream refused");
            return;
        }
        c->connecting = false;
        urev = 0;
    }
    if (urev & POLLERR) {
        s_conn_close(p, c, true, "upstream socket error");
        return;
    }
    if (urev & POLLHUP)
        c->u_hup = true;
    if ((urev & (POLLIN | POLLHUP | POLLERR)) && !c->u_eof) {
        hf_pxpipe_t *into = p->mode == S_MODE_HALFOPEN ? NULL : c->u2c;
        if (!s_read_into(p, c->ufd, into, &c->u_eof, now)) {
            s_conn_close(p, c, true, "upstream error");
            return;
        }
    }
client:
    if (crev & POLLHUP)
        c->c_hup = true;
    if ((crev & (POLLIN | POLLHUP | POLLERR)) && !c->c_eof) {
        if (!s_read_into(p, c->cfd, c->c2u, &c->c_eof, now)) {
            s_conn_close(p, c, true, "client error");
            return;
        }
    }
    if (!c->connecting && !s_write_from(c->c2u, c->ufd, &p->up_bytes, now)) {
        s_conn_close(p, c, true, "upstream write error");
        return;
    }
    if (p->mode != S_MODE_HALFOPEN && !s_write_from(c->u2c, c->cfd, &p->down_bytes, now)) {
        s_conn_close(p, c, true, "client write error");
        return;
    }
    if (c->c_eof && !c->u_shut && !c->connecting && hf_pxpipe_pending(c->c2u) == 0) {
        shutdown(c->ufd, SHUT_WR);
        c->u_shut = true;
    }
    if (c->u_eof && !c->c_shut && p->mode != S_MODE_HALFOPEN && hf_pxpipe_pending(c->u2c) == 0) {
        shutdown(c->cfd, SHUT_WR);
        c->c_shut = true;
    }
    if (c->u_shut && c->c_shut)
        s_conn_close(p, c, false, "both sides closed");
}

/* ---- control ------------------------------------------------------------ */

static void
s_ctl_reply(s_ctl_t *k, const char *text)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s\n", text);
    /* Replies are short and the client waits for them: a blocking-ish send
     * of one line; a client that doesn't read is dropped. */
    if (send(k->fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) != n) {
        close(k->fd);
        k->fd = -1;
    }
}

static void
s_ctl_exec(s_proxy_t *p, s_ctl_t *k, const char *line, size_t len, hf_ms_t now)
{
    hf_pxcmd_t cmd;
    const char *why = NULL;
    char out[400];
    if (hf_pxcmd_parse(line, len, &cmd, &why) != HF_OK) {
        snprintf(out, sizeof out, "err %s", why);
        hf_log_warn(S_LOG, "control: refused \"%.*s\": %s", (int)(len > 60 ? 60 : len), line, why);
        s_ctl_reply(k, out);
        return;
    }
    uint32_t acted = 0;
    snprintf(out, sizeof out, "ok");
    switch (cmd.kind) {
    case HF_PXCMD_PASS:
        p->mode = S_MODE_PASS;
        p->refuse = false;
        p->delay_ms = 0;
        p->jitter_ms = 0;
        p->rate = 0;
        break;
    case HF_PXCMD_CUT:
    case HF_PXCMD_RESET:
        for (uint32_t i = 0; i < p->max_conns; i++) {
            if (p->conns[i].used) {
                s_conn_close(p, &p->conns[i], cmd.kind == HF_PXCMD_RESET, "control");
                acted++;
            }
        }
        snprintf(out, sizeof out, "ok closed=%" PRIu32, acted);
        break;
    case HF_PXCMD_BLACKHOLE: p->mode = S_MODE_BLACKHOLE; break;
    case HF_PXCMD_HALFOPEN: p->mode = S_MODE_HALFOPEN; break;
    case HF_PXCMD_REFUSE: p->refuse = true; break;
    case HF_PXCMD_DELAY: p->delay_ms = cmd.arg, p->jitter_ms = cmd.arg2; break;
    case HF_PXCMD_THROTTLE: p->rate = cmd.arg; break;
    case HF_PXCMD_STATS:
        snprintf(out, sizeof out,
                 "ok conns=%" PRIu32 " accepted=%" PRIu64 " refused=%" PRIu64 " closed=%" PRIu64
                 " up_bytes=%" PRIu64 " down_bytes=%" PRIu64 " dropped_bytes=%" PRIu64
                 " mode=%s refuse=%d delay_ms=%" PRIu64 " jitter_ms=%" PRIu64
                 " throttle=%" PRIu64,
                 p->nconns, p->accepted, p->refused, p->closed, p->up_bytes, p->down_bytes,
                 p->dropped_bytes,
                 p->mode == S_MODE_PASS ? "pass"
                 : p->mode == S_MODE_BLACKHOLE ? "blackhole" : "halfopen",
                 p->refuse, p->delay_ms, p->jitter_ms, p->rate);
        break;
    }
    if (cmd.kind == HF_PXCMD_PASS || cmd.kind == HF_PXCMD_THROTTLE) {
        for (uint32_t i = 0; i < p->max_conns; i++) {
            if (p->conns[i].used) {
                hf_pxpipe_set_rate(p->conns[i].c2u, p->rate, now);
                hf_pxpipe_set_rate(p->conns[i].u2c, p->rate, now);
            }
        }
    }
    if (cmd.kind != HF_PXCMD_STATS)
        hf_log_info(S_LOG, "control: %s arg=%" PRIu64 " -> %s", hf_pxcmd_name(cmd.kind), cmd.arg,
                    out);
    s_ctl_reply(k, out);
}

static void
s_ctl_read(s_proxy_t *p, s_ctl_t *k, hf_ms_t now)
{
    char buf[512];
    ssize_t n = recv(k->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close(k->fd);
        k->fd = -1;
        return;
    }
    for (ssize_t i = 0; i < n && k->fd >= 0; i++) {
        if (buf[i] == '\n') {
            if (k->overflow)
                s_ctl_reply(k, "err line too long");
            else
                s_ctl_exec(p, k, k->line, k->len, now);
            k->len = 0;
            k->overflow = false;
        } else if (k->len < HF_PXCMD_LINE_MAX) {
            k->line[k->len++] = buf[i];
        } else {
            k->overflow = true;
        }
    }
}

static void
s_ctl_accept(s_proxy_t *p)
{
    int fd = accept4(p->ctl_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (int i = 0; i < S_CTL_MAX; i++) {
        if (p->ctl[i].fd < 0) {
            memset(&p->ctl[i], 0, sizeof p->ctl[i]);
            p->ctl[i].fd = fd;
            return;
        }
    }
    const char busy[] = "err too many control clients\n";
    (void)!send(fd, busy, sizeof busy - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
}

/* ---- loop --------------------------------------------------------------- */

static int
s_run(s_proxy_t *p)
{
    size_t nfds_max = 2 + S_CTL_MAX + 2 * (size_t)p->max_conns;
    struct pollfd *fds = calloc(nfds_max, sizeof *fds);
    if (!fds)
        return 1;
    while (!s_stop) {
        hf_ms_t now = hf_clock_mono_ms();
        hf_ms_t wake = now + S_POLL_MAX_MS;
        size_t nf = 0;
        fds[nf++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        fds[nf++] = (struct pollfd){.fd = p->ctl_lfd, .events = POLLIN};
        for (int i = 0; i < S_CTL_MAX; i++)
            fds[nf++] = (struct pollfd){.fd = p->ctl[i].fd, .events = POLLIN};
        size_t conn_base = nf;
        for (uint32_t i = 0; i < p->max_conns; i++) {
            s_conn_t *c = &p->conns[i];
            struct pollfd *cf = &fds[nf++], *uf = &fds[nf++];
            *cf = (struct pollfd){.fd = -1};
            *uf = (struct pollfd){.fd = -1};
            if (!c->used || p->mode == S_MODE_BLACKHOLE)
                continue;
            const uint8_t *d;
            short ce = 0, ue = 0;
            if (!c->c_eof && hf_pxpipe_space(c->c2u) > 0)
                ce |= POLLIN;
            if (!c->u_eof && (p->mode == S_MODE_HALFOPEN || hf_pxpipe_space(c->u2c) > 0))
                ue |= POLLIN;
            if (c->connecting) {
                ue = POLLOUT;
            } else if (hf_pxpipe_peek(c->c2u, now, &d) > 0) {
                ue |= POLLOUT;
            } else {
                hf_ms_t at = hf_pxpipe_deadline(c->c2u, now);
                wake = at < wake ? at : wake;
            }
            if (p->mode != S_MODE_HALFOPEN) {
                if (hf_pxpipe_peek(c->u2c, now, &d) > 0) {
                    ce |= POLLOUT;
                } else {
                    hf_ms_t at = hf_pxpipe_deadline(c->u2c, now);
                    wake = at < wake ? at : wake;
                }
            }
            /* A hung-up socket reports POLLHUP whatever we ask: poll it only
             * while there is something to read out of it. */
            if (!(c->c_hup && !(ce & POLLIN)))
                *cf = (struct pollfd){.fd = c->cfd, .events = ce};
            if (!(c->u_hup && !(ue & (POLLIN | POLLOUT))))
                *uf = (struct pollfd){.fd = c->ufd, .events = ue};
        }
        int timeout = wake <= now ? 0 : (int)(wake - now);
        int rc = poll(fds, nf, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            hf_log_error(S_LOG, "poll: %s", strerror(errno));
            free(fds);
            return 1;
        }
        now = hf_clock_mono_ms();
        if (fds[0].revents & POLLIN)
            s_accept(p, now);
        if (fds[1].revents & POLLIN)
            s_ctl_accept(p);
        for (int i = 0; i < S_CTL_MAX; i++)
            if (p->ctl[i].fd >= 0 && fds[2 + i].fd == p->ctl[i].fd && fds[2 + i].revents)
                s_ctl_read(p, &p->ctl[i], now);
        if (p->mode == S_MODE_BLACKHOLE)
            continue;
        for (uint32_t i = 0; i < p->max_conns; i++) {
            s_conn_t *c = &p->conns[i];
            if (!c->used)
                continue;
            /* a connection accepted in this round has no poll entry yet */
            short crev = fds[conn_base + 2 * i].fd == c->cfd ? fds[conn_base + 2 * i].revents : 0;
            short urev =
                fds[conn_base + 2 * i + 1].fd == c->ufd ? fds[conn_base + 2 * i + 1].revents : 0;
            s_conn_pump(p, c, crev, urev, now);
        }
    }
    free(fds);
    return 0;
}

/* ---- client mode ---------------------------------------------------------- */

static int
s_ctl_client(const char *port, int argc, char **argv)
{
    char line[HF_PXCMD_LINE_MAX + 2];
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        int n = snprintf(line + len, sizeof line - len, "%s%s", i ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof line - len) {
            fprintf(stderr, "hf-proxy: command too long\n");
            return 2;
        }
        len += (size_t)n;
    }
    line[len++] = '\n';
    struct sockaddr_storage ss;
    socklen_t sl;
    if (s_resolve(port, "127.0.0.1", &ss, &sl) != 0) {
        fprintf(stderr, "hf-proxy: bad control port %s\n", port);
        return 2;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 5};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (struct sockaddr *)&ss, sl) != 0 ||
        send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "hf-proxy: control port %s: %s\n", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 1;
    }
    char reply[512];
    size_t got = 0;
    while (got < sizeof reply - 1) {
        ssize_t n = recv(fd, reply + got, 1, 0);
        if (n <= 0 || reply[got] == '\n')
            break;
        got++;
    }
    reply[got] = 0;
    close(fd);
    printf("%s\n", reply);
    return strncmp(reply, "ok", 2) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    const char *listen_spec = "0", *upstream = NULL, *ctl_spec = "0";
    s_proxy_t p;
    memset(&p, 0, sizeof p);
    p.rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)getpid() << 20) ^ (uint64_t)time(NULL);
    p.max_conns = S_DEFAULT_CONNS;
    p.buffer = S_DEFAULT_BUFFER;
    p.lfd = p.ctl_lfd = -1;
    int verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--ctl") == 0 && v)
            return s_ctl_client(v, argc - i - 2, argv + i + 2);
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        }
        if (strcmp(a, "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (!v) {
            s_usage(stderr);
            return 2;
        }
        if (strcmp(a, "--listen") == 0)
            listen_spec = v;
        else if (strcmp(a, "--upstream") == 0)
            upstream = v;
        else if (strcmp(a, "--ctl-port") == 0)
            ctl_spec = v;
        else if (strcmp(a, "--max-conns") == 0)
            p.max_conns = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--buffer") == 0)
            p.buffer = (size_t)strtoull(v, NULL, 10);
        else {
            s_usage(stderr);
            return 2;
        }
        i++;
    }
    hf_log_set_sink(hf_log_stderr_sink, NULL);
    hf_log_set_level(verbose ? HF_LOG_DEBUG : HF_LOG_INFO);
    if (!upstream || p.max_conns == 0 || p.max_conns > 4096 || p.buffer == 0 ||
        p.buffer > (64u << 20)) {
        s_usage(stderr);
        return 2;
    }
    if (s_resolve(upstream, "127.0.0.1", &p.up, &p.up_len) != 0) {
        fprintf(stderr, "hf-proxy: cannot resolve upstream %s\n", upstream);
        return 2;
    }
    struct sockaddr_storage ls, cs;
    socklen_t ll, cl;
    int lport = 0, cport = 0;
    if (s_resolve(listen_spec, "127.0.0.1", &ls, &ll) != 0 ||
        s_resolve(ctl_spec, "127.0.0.1", &cs, &cl) != 0) {
        fprintf(stderr, "hf-proxy: bad --listen or --ctl-port\n");
        return 2;
    }
    p.lfd = s_listen(&ls, ll, &lport);
    p.ctl_lfd = s_listen(&cs, cl, &cport);
    p.conns = calloc(p.max_conns, sizeof *p.conns);
    if (p.lfd < 0 || p.ctl_lfd < 0 || !p.conns) {
        fprintf(stderr, "hf-proxy: listen: %s\n", strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < p.max_conns; i++)
        p.conns[i].cfd = p.conns[i].ufd = -1;
    for (int i = 0; i < S_CTL_MAX; i++)
        p.ctl[i].fd = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("listen %d ctl %d\n", lport, cport);
    fflush(stdout);
    hf_log_info(S_LOG, "listening port=%d ctl=%d upstream=%s max_conns=%" PRIu32 " buffer=%zu",
                lport, cport, upstream, p.max_conns, p.buffer);
    int rc = s_run(&p);
    for (uint32_t i = 0; i < p.max_conns; i++)
        s_conn_close(&p, &p.conns[i], false, "shutdown");
    for (int i = 0; i < S_CTL_MAX; i++)
        if (p.ctl[i].fd >= 0)
            close(p.ctl[i].fd);
    close(p.lfd);
    close(p.ctl_lfd);
    free(p.conns);
    hf_log_info(S_LOG, "stopped: accepted=%" PRIu64 " refused=%" PRIu64 " up_bytes=%" PRIu64
                " down_bytes=%" PRIu64, p.accepted, p.refused, p.up_bytes, p.down_bytes);
    return rc;
}
