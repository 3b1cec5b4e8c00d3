/* proxy_selftest.c - ctest proxy_selftest: the real hf-proxy program between
 * a client (this process) and an echo server (threads of this process).
 *
 *   proxy_selftest PATH/TO/hf-proxy
 *
 * Each case prints one line and the program exits 1 at the first failure.
 * What each case proves:
 *   pass       1 MiB of pseudo-random bytes go through and come back
 *              unchanged, both ways at once; stats count them.
 *   bad_cmd    a malformed control line gets "err ...", the proxy lives on.
 *   cut        the client sees EOF (a FIN, not a reset) and the server sees
 *              its connection end; a new connection works afterwards.
 *   reset      the client sees ECONNRESET.
 *   refuse     a new connection is closed at once; an existing one works on.
 *   blackhole  nothing moves for 1.5 s and nothing is closed (old and new
 *              connections); after `pass` the held bytes arrive, in order.
 *   halfopen   client bytes reach the server, its replies are dropped.
 *   delay      delay 300: an echo round trip takes >= 600 ms (both ways).
 *   throttle   throttle 100000: 200 kB echoed take >= 1.8 s, and < 8 s.
 *   sigterm    SIGTERM: the proxy exits 0 within 3 s.
 * Timing is measured with lower bounds that the mechanism guarantees and
 * generous upper bounds; no fixed sleeps decide a result (waits are polls
 * with deadlines). Ports are all kernel-chosen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hf_time.h"

static pid_t s_proxy_pid = -1;
static int s_port, s_ctl_port, s_echo_port;
static atomic_ullong s_echo_rx;     /* bytes the echo server received       */
static atomic_int s_echo_closed;    /* echo connections that ended          */

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, "\n");                                                         \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

static void
s_cleanup(void)
{
    if (s_proxy_pid > 0) {
        kill(s_proxy_pid, SIGKILL);
        waitpid(s_proxy_pid, NULL, 0);
        s_proxy_pid = -1;
    }
}

/* ---- echo server --------------------------------------------------------- */

static void *
s_echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        atomic_fetch_add(&s_echo_rx, (unsigned long long)n);
        for (ssize_t off = 0; off < n;) {
            ssize_t w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
            if (w <= 0)
                goto done;
            off += w;
        }
    }
done:
    close(fd);
    atomic_fetch_add(&s_echo_closed, 1);
    return NULL;
}

static void *
s_echo_main(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            continue;
        pthread_t t;
        if (pthread_create(&t, NULL, s_echo_conn, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
    return NULL;
}

static int
s_listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 64) == 0,
          "echo listen: %s", strerror(errno));
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- client helpers --------------------------------------------------------- */

static int
s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect %d: %s", port,
          strerror(errno));
    return fd;
}

/* One control command; returns the reply line (static buffer). */
static const char *
s_ctl(const char *cmd)
{
    static char reply[512];
    int fd = s_connect(s_ctl_port);
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    CHECK(send(fd, line, (size_t)n, MSG_NOSIGNAL) == n, "ctl send");
    size_t got = 0;
    hf_ms_t deadline = hf_clock_mono_ms() + 5000;
    while (got < sizeof reply - 1 && hf_clock_mono_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, reply + got, 1, 0);
        if (r <= 0 || reply[got] == '\n')
            break;
        got++;
    }
    reply[got] = 0;
    close(fd);
    return reply;
}

static void
s_ctl_ok(const char *cmd)
{
    const char *r = s_ctl(cmd);
    CHECK(strncmp(r, "ok", 2) == 0, "%s -> \"%s\"", cmd, r);
}

/* A key's value in the stats reply. */
static uint64_t
s_stat(const char *key)
{
    const char *r = s_ctl("stats");
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *at = strstr(r, pat);
    CHECK(at, "no %s in \"%s\"", key, r);
    return strtoull(at + strlen(pat), NULL, 10);
}

/* Read up to n bytes within ms; returns bytes read; *end: 0 open, 1 EOF,
 * 2 error (errno kept in *err). */
static size_t
s_read_for(int fd, uint8_t *buf, size_t n, int ms, int *end, int *err)
{
    size_t got = 0;
    *end = 0;
    *err = 0;
    hf_ms_t deadline = hf_clock_mono_ms() + (hf_ms_t)ms;
    while (got < n) {
        hf_ms_t now = hf_clock_mono_ms();
        if (now >= deadline)
            break;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(deadline - now)) <= 0)
            continue;
        ssize_t r = recv(fd, buf + got, n - got, MSG_DONTWAIT);
        if (r == 0) {
            *end = 1;
            break;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            *end = 2;
            *err = errno;
            break;
        }
        got += (size_t)r;
    }
    return got;
}

/* Send all of buf while reading the echo into back; within ms. Returns
 * bytes echoed back. */
static size_t
s_echo_through(int fd, const uint8_t *buf, uint8_t *back, size_t n, int ms)
{
    size_t sent = 0, got = 0;
    hf_ms_t deadline = hf_clock_mono_ms() + (hf_ms_t)ms;
    while (got < n && hf_clock_mono_ms() < deadline) {
        struct pollfd pf = {.fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0)};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        if ((pf.revents & POLLOUT) && sent < n) {
            ssize_t w = send(fd, buf + sent, n - sent > 16384 ? 16384 : n - sent,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(fd, back + got, n - got, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
                break;
            if (r > 0)
                got += (size_t)r;
        }
    }
    return got;
}

static void
s_roundtrip(int fd, const char *what)
{
    uint8_t back[16];
    CHECK(s_echo_through(fd, (const uint8_t *)"hello-proxy", back, 11, 3000) == 11 &&
              memcmp(back, "hello-proxy", 11) == 0,
          "%s: no echo through the proxy", what);
}

/* ---- cases ------------------------------------------------------------------ */

static void
s_case_pass(void)
{
    size_t n = 1u << 20;
    uint8_t *src = malloc(n), *back = malloc(n);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        src[i] = (uint8_t)x;
    }
    uint64_t up0 = s_stat("up_bytes"), down0 = s_stat("down_bytes");
    int fd = s_connect(s_port);
    size_t got = s_echo_through(fd, src, back, n, 20000);
    CHECK(got == n, "echoed %zu of %zu bytes", got, n);
    CHECK(memcmp(src, back, n) == 0, "bytes changed on the way");
    CHECK(s_stat("up_bytes") - up0 >= n && s_stat("down_bytes") - down0 >= n,
          "stats did not count the bytes");
    close(fd);
    free(src);
    free(back);
    printf("ok pass: 1 MiB echoed unchanged through the proxy\n");
}

static void
s_case_bad_cmd(void)
{
    const char *r = s_ctl("explode now");
    CHECK(strncmp(r, "err ", 4) == 0, "bad command answered \"%s\"", r);
    r = s_ctl("delay x");
    CHECK(strncmp(r, "err ", 4) == 0, "bad delay answered \"%s\"", r);
    printf("ok bad_cmd: \"%s\"\n", r);
}

static void
s_case_cut(void)
{
    int fd = s_connect(s_port);
    s_roundtrip(fd, "cut (before)");
    int closed0 = atomic_load(&s_echo_closed);
    const char *r = s_ctl("cut");
    CHECK(strncmp(r, "ok closed=1", 11) == 0, "cut answered \"%s\"", r);
    uint8_t b[16];
    int end, err;
    s_read_for(fd, b, sizeof b, 2000, &end, &err);
    CHECK(end == 1, "client: want EOF after cut, got end=%d err=%s", end, strerror(err));
    hf_ms_t deadline = hf_clock_mono_ms() + 2000;
    while (atomic_load(&s_echo_closed) == closed0 && hf_clock_mono_ms() < deadline)
        poll(NULL, 0, 10);
    CHECK(atomic_load(&s_echo_closed) > closed0, "server side not closed by cut");
    close(fd);
    fd = s_connect(s_port);
    s_roundtrip(fd, "cut (after)");
    close(fd);
    printf("ok cut: client got EOF, server connection ended, new connections work\n");
}

static void
s_case_reset(void)
{
    int fd = s_connect(s_port);
    s_roundtrip(fd, "reset (before)");
    s_ctl_ok("reset");
    uint8_t b[16];
    int end, err;
    s_read_for(fd, b, sizeof b, 2000, &end, &err);
    CHECK(end == 2 && err == ECONNRESET, "want ECONNRESET, got end=%d err=%s", end,
          strerror(err));
    close(fd);
    printf("ok reset: client got ECONNRESET\n");
}

static void
s_case_refuse(void)
{
    int old = s_connect(s_port);
    s_roundtrip(old, "refuse (existing, before)");
    s_ctl_ok("refuse");
    int fd = s_connect(s_port); /* the kernel completes it; the proxy closes it */
    uint8_t b[16];
    int end, err;
    send(fd, "x", 1, MSG_NOSIGNAL);
    s_read_for(fd, b, sizeof b, 2000, &end, &err);
    CHECK(end != 0, "a new connection stayed open in refuse mode");
    close(fd);
    s_roundtrip(old, "refuse (existing, after)");
    CHECK(s_stat("refused") >= 1, "refused not counted");
    s_ctl_ok("pass");
    close(old);
    printf("ok refuse: new connection closed at once (end=%d), existing one works\n", end);
}

static void
s_case_blackhole(void)
{
    int a = s_connect(s_port);
    s_roundtrip(a, "blackhole (before)");
    s_ctl_ok("blackhole");
    CHECK(send(a, "held-a", 6, MSG_NOSIGNAL) == 6, "send");
    int b = s_connect(s_port); /* accepted during the blackhole */
    CHECK(send(b, "held-b", 6, MSG_NOSIGNAL) == 6, "send");
    uint8_t buf[16];
    int end, err;
    hf_ms_t t0 = hf_clock_mono_ms();
    size_t got = s_read_for(a, buf, sizeof buf, 1500, &end, &err);
    CHECK(got == 0 && end == 0, "blackhole: connection a got %zu bytes / end=%d", got, end);
    got = s_read_for(b, buf, sizeof buf, 10, &end, &err);
    CHECK(got == 0 && end == 0, "blackhole: connection b got %zu bytes / end=%d", got, end);
    CHECK(hf_clock_mono_ms() - t0 >= 1500, "read returned early");
    CHECK(s_stat("conns") == 2, "both connections must stay open");
    s_ctl_ok("pass");
    got = s_read_for(a, buf, 6, 3000, &end, &err);
    CHECK(got == 6 && memcmp(buf, "held-a", 6) == 0, "after pass: a got %zu bytes", got);
    got = s_read_for(b, buf, 6, 3000, &end, &err);
    CHECK(got == 6 && memcmp(buf, "held-b", 6) == 0, "after pass: b got %zu bytes", got);
    close(a);
    close(b);
    printf("ok blackhole: 1.5 s of silence, nothing closed; held bytes delivered after pass\n");
}

static void
s_case_halfopen(void)
{
    int fd = s_connect(s_port);
    s_roundtrip(fd, "halfopen (before)");
    s_ctl_ok("halfopen");
    unsigned long long rx0 = atomic_load(&s_echo_rx);
    uint64_t drop0 = s_stat("dropped_bytes");
    char msg[1000];
    memset(msg, 'h', sizeof msg);
    CHECK(send(fd, msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg, "send");
    hf_ms_t deadline = hf_clock_mono_ms() + 2000;
    while (atomic_load(&s_echo_rx) < rx0 + sizeof msg && hf_clock_mono_ms() < deadline)
        poll(NULL, 0, 10);
    CHECK(atomic_load(&s_echo_rx) >= rx0 + sizeof msg, "server did not receive in halfopen");
    uint8_t buf[16];
    int end, err;
    size_t got = s_read_for(fd, buf, sizeof buf, 700, &end, &err);
    CHECK(got == 0 && end == 0, "halfopen: a reply got through (%zu bytes, end=%d)", got, end);
    CHECK(s_stat("dropped_bytes") >= drop0 + sizeof msg, "dropped replies not counted");
    s_ctl_ok("pass");
    close(fd);
    printf("ok halfopen: requests reach the server, replies dropped and counted\n");
}

static void
s_case_delay(void)
{
    int fd = s_connect(s_port);
    s_roundtrip(fd, "delay (before)");
    s_ctl_ok("delay 300");
    hf_ms_t t0 = hf_clock_mono_ms();
    s_roundtrip(fd, "delay");
    hf_ms_t dt = hf_clock_mono_ms() - t0;
    CHECK(dt >= 600 && dt < 3000, "round trip took %" PRIu64 " ms with delay 300", dt);
    s_ctl_ok("pass");
    t0 = hf_clock_mono_ms();
    s_roundtrip(fd, "delay (after pass)");
    hf_ms_t fast = hf_clock_mono_ms() - t0;
    CHECK(fast < 300, "after pass the round trip still took %" PRIu64 " ms", fast);
    close(fd);
    printf("ok delay: round trip %" PRIu64 " ms with delay 300, %" PRIu64 " ms after pass\n", dt,
           fast);
}

static void
s_case_throttle(void)
{
    size_t n = 200000;
    uint8_t *src = malloc(n), *back = malloc(n);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)(i * 31 + 7);
    int fd = s_connect(s_port);
    s_roundtrip(fd, "throttle (before)");
    s_ctl_ok("throttle 100000");
    hf_ms_t t0 = hf_clock_mono_ms();
    size_t got = s_echo_through(fd, src, back, n, 10000);
    hf_ms_t dt = hf_clock_mono_ms() - t0;
    CHECK(got == n && memcmp(src, back, n) == 0, "throttled echo: %zu of %zu bytes", got, n);
    /* each direction may send one burst (5 kB) early: >= (200000-5000)/1e5 s */
    CHECK(dt >= 1800 && dt < 8000, "200 kB at 100 kB/s took %" PRIu64 " ms", dt);
    s_ctl_ok("pass");
    close(fd);
    free(src);
    free(back);
    printf("ok throttle: 200 kB echoed in %" PRIu64 " ms at 100000 B/s (%.0f B/s)\n", dt,
           n * 1000.0 / (double)dt);
}

static void
s_case_sigterm(void)
{
    int fd = s_connect(s_port); /* an open connection must not stop the exit */
    s_roundtrip(fd, "sigterm (before)");
    kill(s_proxy_pid, SIGTERM);
    hf_ms_t deadline = hf_clock_mono_ms() + 3000;
    int status = 0;
    pid_t w = 0;
    while ((w = waitpid(s_proxy_pid, &status, WNOHANG)) == 0 && hf_clock_mono_ms() < deadline)
        poll(NULL, 0, 20);
    CHECK(w == s_proxy_pid, "proxy still running 3 s after SIGTERM");
    s_proxy_pid = -1;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "proxy exit status 0x%x", status);
    close(fd);
    printf("ok sigterm: proxy exited 0\n");
}

int
main(int argc, char **argv)
{
    CHECK(argc == 2, "usage: proxy_selftest PATH/TO/hf-proxy");
    signal(SIGPIPE, SIG_IGN);
    atexit(s_cleanup);
    int lfd = s_listen_any(&s_echo_port);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, s_echo_main, (void *)(intptr_t)lfd) == 0, "thread");
    pthread_detach(t);

    int out[2];
    CHECK(pipe(out) == 0, "pipe");
    char up[32];
    snprintf(up, sizeof up, "127.0.0.1:%d", s_echo_port);
    s_proxy_pid = fork();
    CHECK(s_proxy_pid >= 0, "fork");
    if (s_proxy_pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        close(lfd);
        execl(argv[1], argv[1], "--upstream", up, "--listen", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[128];
    size_t len = 0;
    hf_ms_t deadline = hf_clock_mono_ms() + 5000;
    while (len < sizeof line - 1 && hf_clock_mono_ms() < deadline) {
        struct pollfd pf = {.fd = out[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        if (read(out[0], line + len, 1) != 1 || line[len] == '\n')
            break;
        len++;
    }
    line[len] = 0;
    CHECK(sscanf(line, "listen %d ctl %d", &s_port, &s_ctl_port) == 2,
          "proxy's first line: \"%s\"", line);
    printf("proxy pid=%d listen=%d ctl=%d upstream=%s\n", (int)s_proxy_pid, s_port, s_ctl_port,
           up);
    fflush(stdout);

    s_case_pass();
    s_case_bad_cmd();
    s_case_cut();
    s_case_reset();
    s_case_refuse();
    s_case_blackhole();
    s_case_halfopen();
    s_case_delay();
    s_case_throttle();
    s_case_sigterm();
    close(out[0]);
    printf("proxy_selftest: all cases passed\n");
    return 0;
}
