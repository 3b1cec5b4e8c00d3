/* test_metrics.c - the Prometheus text (every line parses, names follow the
 * conventions, values are the snapshot's) and the /metrics server. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hf_metrics.h"

static hf_metrics_snapshot_t
s_snap(hf_metrics_engine_t *e)
{
    memset(e, 0, 2 * sizeof *e);
    strcpy(e[0].engine, "oven-1");
    e[0].available = 1;
    e[0].records[0] = 12;
    e[0].records[1] = 34567;
    e[0].bytes = 1234567;
    e[0].batches = 89;
    e[0].acks = 88;
    e[0].has_backlog = 1;
    e[0].backlog[1] = 5;
    e[0].restarts = 2;
    strcpy(e[1].engine, "pump.2");
    hf_metrics_snapshot_t s;
    memset(&s, 0, sizeof s);
    s.engines = e;
    s.nengines = 2;
    s.commands[HF_OK] = 7;
    s.commands[HF_EUNAVAIL] = 3;
    s.frames_refused = 4;
    s.store_used_bytes = 1 << 20;
    s.disk_free_bytes = 999;
    return s;
}

/* Every line: a comment, or NAME{LABELS} VALUE with a valid metric name,
 * quoted label values and a numeric value. Returns the lines checked. */
static int
s_check_exposition(const char *text)
{
    int lines = 0;
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "every line ends with a newline");
        char line[512];
        size_t n = (size_t)(nl - p);
        cr_assert_lt(n, sizeof line);
        memcpy(line, p, n);
        line[n] = 0;
        p = nl + 1;
        lines++;
        if (line[0] == '#') {
            cr_assert(!strncmp(line, "# HELP holdfast_", 16) || !strncmp(line, "# TYPE holdfast_", 16),
                      "%s", line);
            continue;
        }
        cr_assert(!strncmp(line, "holdfast_", 9), "%s", line);
        size_t i = 0;
        while (isalnum((unsigned char)line[i]) || line[i] == '_')
            i++;
        if (line[i] == '{') {
            const char *close = strchr(line + i, '}');
            cr_assert_not_null(close, "%s", line);
            i = (size_t)(close - line) + 1;
        }
        cr_assert_eq(line[i], ' ', "%s", line);
        char *end = NULL;
        strtod(line + i + 1, &end);
        cr_assert(end && *end == 0 && end != line + i + 1, "value of: %s", line);
    }
    return lines;
}

Test(metrics, the_text_parses_and_carries_the_snapshot, .timeout = 10)
{
    hf_metrics_engine_t e[2];
    hf_metrics_snapshot_t s = s_snap(e);
    size_t need = hf_metrics_render(&s, NULL, 0);
    char *buf = malloc(need + 1);
    cr_assert_eq(hf_metrics_render(&s, buf, need + 1), need);
    cr_assert_eq(strlen(buf), need);
    cr_assert_gt(s_check_exposition(buf), 30);
    cr_assert_not_null(strstr(buf, "holdfast_engine_records_total{engine=\"oven-1\",lane=\"data\"} 34567\n"));
    cr_assert_not_null(strstr(buf, "holdfast_engine_available{engine=\"pump.2\"} 0\n"));
    cr_assert_not_null(strstr(buf, "holdfast_engine_backlog_records{engine=\"oven-1\",lane=\"data\"} 5\n"));
    cr_assert_null(strstr(buf, "holdfast_engine_backlog_records{engine=\"pump.2\""),
                   "no backlog line when it is unknown");
    cr_assert_not_null(strstr(buf, "holdfast_commands_total{result=\"HF_EUNAVAIL\"} 3\n"));
    cr_assert_not_null(strstr(buf, "holdfast_restarts_total{task=\"session:oven-1\"} 2\n"));
    cr_assert_not_null(strstr(buf, "# TYPE holdfast_engine_records_total counter\n"));
    cr_assert_not_null(strstr(buf, "# TYPE holdfast_store_used_bytes gauge\n"));
    /* a short buffer: cut, terminated, and the needed size still reported */
    char small[64];
    cr_assert_eq(hf_metrics_render(&s, small, sizeof small), need);
    cr_assert_eq(strlen(small), sizeof small - 1);
    free(buf);
}

static int
s_get(uint16_t port, const char *path, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fd);
    return atoi(strchr(out, ' ') ? strchr(out, ' ') + 1 : "0");
}

Test(metrics, the_server_serves_the_last_published_text, .timeout = 20)
{
    hf_err_t rc = HF_EIO;
    hf_metrics_t *m = hf_metrics_open("127.0.0.1:0", &rc);
    cr_assert_not_null(m);
    cr_assert_eq(rc, HF_OK);
    uint16_t port = hf_metrics_port(m);
    cr_assert_gt(port, 0);
    static char resp[65536];
    cr_assert_eq(s_get(port, "/metrics", resp, sizeof resp), 200);
    const char *t1 = "holdfast_a_total 1\n";
    cr_assert_eq(hf_metrics_publish(m, t1, strlen(t1)), HF_OK);
    cr_assert_eq(s_get(port, "/metrics", resp, sizeof resp), 200);
    cr_assert_not_null(strstr(resp, "\r\n\r\nholdfast_a_total 1\n"), "%s", resp);
    cr_assert_not_null(strstr(resp, "text/plain; version=0.0.4"));
    const char *t2 = "holdfast_a_total 2\n";
    hf_metrics_publish(m, t2, strlen(t2));
    cr_assert_eq(s_get(port, "/metrics", resp, sizeof resp), 200);
    cr_assert_not_null(strstr(resp, "holdfast_a_total 2\n"));
    cr_assert_eq(s_get(port, "/other", resp, sizeof resp), 404);
    cr_assert_eq(hf_metrics_scrapes(m), 3);
    hf_metrics_close(&m);
    cr_assert_null(m);
    cr_assert_null(hf_metrics_open("nonsense", &rc));
    cr_assert_eq(rc, HF_EINVAL);
    cr_assert_null(hf_metrics_open("999.1.1.1:80", &rc));
    cr_assert_eq(rc, HF_EINVAL);
}
