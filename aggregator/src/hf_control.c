/* hf_control.c - control requests: status, engines, runs, export.
 *
 * Design notes:
 * - Requests are one flat msgpack map of scalars (docs/cli.md, "control
 *   protocol"). They are parsed by the small bounded reader below, not by
 *   msgpack_unpack: msgpack-c sizes its allocations from declared counts,
 *   so a few hostile bytes could ask for gigabytes. The reader refuses any
 *   nested value, checks every declared length against the bytes left, and
 *   the whole request is capped at HF_CONTROL_MAX_REQUEST bytes.
 *   (proto/src/hf_mpread.h is private to proto/ and has no map reader.)
 * - Replies are written with msgpack-c's packer into the caller's buffer
 *   through a write callback that refuses to pass cap: no allocation per
 *   reply byte, and an overflow is detected rather than truncated. Arrays
 *   whose length is known only at the end are written as array32 with the
 *   count patched afterwards.
 * - Export pages stop early when the reply buffer is nearly full (the store
 *   keeps the position at the refused record), so a page never overflows.
 * - Availability comes only from the live table. An engine in the store
 *   but not in the live table is "unknown" (not seen since start); an engine
 *   live but not (yet) in the store is listed too.
 *
 * Invariants: hf_control_handle writes a complete, well-formed reply
 * whenever it returns HF_OK; it never reads req beyond len.
 */
#include "hf_control.h"

#include <msgpack.h>
#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"

#define S_MAX_ENGINES 10000       /* engines listed in one reply                */
#define S_EXPORT_MAX_DEFAULT 1000 /* records per export page unless asked       */
#define S_EXPORT_MAX 10000        /* records per export page, hard bound        */
#define S_RUNS_LIMIT_DEFAULT 1000 /* runs per engine for "runs"                 */
#define S_STATUS_RUNS_DEFAULT 5   /* runs per engine for "status"               */
#define S_REC_MARGIN 2048         /* bytes kept free before packing one record:
                                     a record map is < 1.3 KiB (1 KiB channel name) */
#define S_TAIL_MARGIN 256         /* bytes kept for the reply's closing fields   */
#define S_KEY_MAX 16              /* longest request key we look at (bytes)     */

/* An export page must always have room for at least one record after the
 * reply's head, or a client could loop on empty pages. */
_Static_assert(HF_CONTROL_REPLY_MIN >= S_REC_MARGIN + S_TAIL_MARGIN + 1024,
               "the smallest reply buffer holds one record");

/* ---- bounded request reader ------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} s_rd_t;

typedef enum { S_NIL, S_BOOL, S_UINT, S_NEG, S_FLOAT, S_STR, S_BIN } s_vtype_t;

typedef struct {
    s_vtype_t t;
    uint64_t u;        /* S_UINT, S_BOOL          */
    int64_t i;         /* S_NEG                   */
    double f;          /* S_FLOAT                 */
    const uint8_t *s;  /* S_STR, S_BIN: borrowed  */
    uint32_t n;        /* bytes of s              */
} s_val_t;

static uint64_t
s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Consume a header of 1 + n bytes and return the n-byte big-endian field. */
static int
s_rd_fixed(s_rd_t *r, size_t n, uint64_t *v)
{
    if ((size_t)(r->end - r->p) < 1 + n)
        return -1;
    *v = s_be(r->p + 1, n);
    r->p += 1 + n;
    return 0;
}

static int
s_rd_map(s_rd_t *r, uint32_t *n)
{
    if (r->p >= r->end)
        return -1;
    uint8_t m = *r->p;
    uint64_t count;
    if (m >= 0x80 && m <= 0x8f) {
        count = m & 0x0f;
        r->p++;
    } else if (m == 0xde) {
        if (s_rd_fixed(r, 2, &count))
            return -1;
    } else if (m == 0xdf) {
        if (s_rd_fixed(r, 4, &count))
            return -1;
    } else {
        return -1;
    }
    /* every key and value takes at least one byte */
    if (count * 2 > (uint64_t)(r->end - r->p))
        return -1;
    *n = (uint32_t)count;
    return 0;
}

/* One scalar value. Containers and ext types are refused (-1). */
static int
s_rd_val(s_rd_t *r, s_val_t *v)
{
    if (r->p >= r->end)
        return -1;
    uint8_t m = *r->p;
    uint64_t x = 0;
    size_t slen_bytes = 0;
    memset(v, 0, sizeof *v);
    if (m <= 0x7f) {
        v->t = S_UINT;
        v->u = m;
        r->p++;
        return 0;
    }
    if (m >= 0xe0) {
        v->t = S_NEG;
        v->i = (int8_t)m;
        r->p++;
        return 0;
    }
    if (m >= 0xa0 && m <= 0xbf) {
        x = m & 0x1f;
        r->p++;
        v->t = S_STR;
        goto body;
    }
    switch (m) {
    case 0xc0: v->t = S_NIL; r->p++; return 0;
    case 0xc2: v->t = S_BOOL; v->u = 0; r->p++; return 0;
    case 0xc3: v->t = S_BOOL; v->u = 1; r->p++; return 0;
    case 0xcc: v->t = S_UINT; return s_rd_fixed(r, 1, &v->u);
    case 0xcd: v->t = S_UINT; return s_rd_fixed(r, 2, &v->u);
    case 0xce: v->t = S_UINT; return s_rd_fixed(r, 4, &v->u);
    case 0xcf: v->t = S_UINT; return s_rd_fixed(r, 8, &v->u);
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (m - 0xd0);
        if (s_rd_fixed(r, n, &x))
            return -1;
        /* sign-extend from n bytes */
        int64_t sv = n == 8 ? (int64_t)x : (int64_t)(x << (64 - 8 * n)) >> (64 - 8 * n);
        if (sv >= 0) {
            v->t = S_UINT;
            v->u = (uint64_t)sv;
        } else {
            v->t = S_NEG;
            v->i = sv;
        }
        return 0;
    }
    case 0xca: {
        v->t = S_FLOAT;
        if (s_rd_fixed(r, 4, &x))
            return -1;
        uint32_t b = (uint32_t)x;
        float f;
        memcpy(&f, &b, sizeof f);
        v->f = f;
        return 0;
    }
    case 0xcb:
        v->t = S_FLOAT;
        if (s_rd_fixed(r, 8, &x))
            return -1;
        memcpy(&v->f, &x, sizeof v->f);
        return 0;
    case 0xd9: v->t = S_STR; slen_bytes = 1; break;
    case 0xda: v->t = S_STR; slen_bytes = 2; break;
    case 0xdb: v->t = S_STR; slen_bytes = 4; break;
    case 0xc4: v->t = S_BIN; slen_bytes = 1; break;
    case 0xc5: v->t = S_BIN; slen_bytes = 2; break;
    case 0xc6: v->t = S_BIN; slen_bytes = 4; break;
    default: return -1; /* arrays, maps, ext, never-used */
    }
    if (s_rd_fixed(r, slen_bytes, &x))
        return -1;
body:
    if (x > (uint64_t)(r->end - r->p))
        return -1;
    v->s = r->p;
    v->n = (uint32_t)x;
    r->p += x;
    return 0;
}

/* ---- request ------------------------------------------------------------------ */

typedef enum {
    S_CMD_NONE,
    S_CMD_STATUS,
    S_CMD_ENGINES,
    S_CMD_RUNS,
    S_CMD_EXPORT,
    S_CMD_HISTORY,
    S_CMD_COMMAND,
    S_CMD_RUN,
    S_CMD_FAULT,
} s_cmd_t;

typedef struct {
    s_cmd_t cmd;
    const char *cmd_name;              /* static string for the reply   */
    bool has_engine;
    char engine[HF_ENGINE_ID_MAX + 1];
    uint64_t run;                      /* 0 = any                       */
    int lane;                          /* -1 = any                      */
    hf_store_pos_t pos;                /* zero = start                  */
    uint64_t max;                      /* 0 = default                   */
    uint64_t limit;                    /* 0 = default                   */
    hf_command_t command;              /* COMMAND: id 0, body borrowed  */
    bool has_verb;
    bool from_end;                     /* export: start after the newest record */
    char task[HF_ENGINE_ID_MAX + 16];  /* FAULT                         */
} s_req_t;

static int
s_str_is(const s_val_t *v, const char *s)
{
    size_t n = strlen(s);
    return v->t == S_STR && v->n == n && memcmp(v->s, s, n) == 0;
}

/* Parse req into *q. On failure returns the error and writes a message. */
static hf_err_t
s_parse(const uint8_t *req, size_t len, s_req_t *q, char *msg, size_t msgcap)
{
    memset(q, 0, sizeof *q);
    q->lane = -1;
    if (!req || len == 0) {
        snprintf(msg, msgcap, "empty request");
        return HF_EPROTO;
    }
    if (len > HF_CONTROL_MAX_REQUEST) {
        snprintf(msg, msgcap, "request of %zu bytes exceeds the limit of %u", len,
                 HF_CONTROL_MAX_REQUEST);
        return HF_EPROTO;
    }
    s_rd_t r = {req, req + len};
    uint32_t n;
    if (s_rd_map(&r, &n)) {
        snprintf(msg, msgcap, "request is not a msgpack map");
        return HF_EPROTO;
    }
    uint64_t version = HF_CONTROL_VERSION;
    for (uint32_t i = 0; i < n; i++) {
        s_val_t k, v;
        if (s_rd_val(&r, &k) || k.t != S_STR) {
            snprintf(msg, msgcap, "request keys must be strings");
            return HF_EPROTO;
        }
        char key[S_KEY_MAX + 1];
        size_t kl = k.n < S_KEY_MAX ? k.n : S_KEY_MAX;
        memcpy(key, k.s, kl);
        key[kl] = 0;
        if (s_rd_val(&r, &v)) {
            snprintf(msg, msgcap, "bad value for '%s' (values must be scalars)", key);
            return HF_EPROTO;
        }
        if (k.n > S_KEY_MAX)
            continue; /* unknown key, ignored like any other */
        if (!strcmp(key, "v")) {
            if (v.t != S_UINT) {
                snprintf(msg, msgcap, "'v' must be an unsigned integer");
                return HF_EPROTO;
            }
            version = v.u;
        } else if (!strcmp(key, "cmd")) {
            if (s_str_is(&v, "status"))
                q->cmd = S_CMD_STATUS, q->cmd_name = "status";
            else if (s_str_is(&v, "engines"))
                q->cmd = S_CMD_ENGINES, q->cmd_name = "engines";
            else if (s_str_is(&v, "runs"))
                q->cmd = S_CMD_RUNS, q->cmd_name = "runs";
            else if (s_str_is(&v, "export"))
                q->cmd = S_CMD_EXPORT, q->cmd_name = "export";
            else if (s_str_is(&v, "history"))
                q->cmd = S_CMD_HISTORY, q->cmd_name = "history";
            else if (s_str_is(&v, "command"))
                q->cmd = S_CMD_COMMAND, q->cmd_name = "command";
            else if (s_str_is(&v, "run"))
                q->cmd = S_CMD_RUN, q->cmd_name = "run";
            else if (s_str_is(&v, "fault"))
                q->cmd = S_CMD_FAULT, q->cmd_name = "fault";
            else if (v.t == S_STR) {
                snprintf(msg, msgcap, "unknown command '%.*s'", (int)(v.n > 32 ? 32 : v.n),
                         (const char *)v.s);
                return HF_EINVAL;
            } else {
                snprintf(msg, msgcap, "'cmd' must be a string");
                return HF_EPROTO;
            }
        } else if (!strcmp(key, "engine")) {
            if (v.t == S_NIL)
                continue;
            if (v.t != S_STR || v.n == 0 || v.n > HF_ENGINE_ID_MAX) {
                snprintf(msg, msgcap, "'engine' must be an engine id string");
                return HF_EPROTO;
            }
            memcpy(q->engine, v.s, v.n);
            q->engine[v.n] = 0;
            if (strlen(q->engine) != v.n || !hf_engine_id_valid(q->engine)) {
                snprintf(msg, msgcap, "invalid engine id (allowed: 1-%d of [A-Za-z0-9._-])",
                         HF_ENGINE_ID_MAX);
                return HF_EINVAL;
            }
            q->has_engine = true;
        } else if (!strcmp(key, "run") || !strcmp(key, "max") || !strcmp(key, "limit")) {
            if (v.t == S_NIL)
                continue;
            if (v.t != S_UINT) {
                snprintf(msg, msgcap, "'%s' must be an unsigned integer", key);
                return HF_EPROTO;
            }
            if (key[0] == 'r')
                q->run = v.u;
            else if (key[0] == 'm')
                q->max = v.u;
            else
                q->limit = v.u;
        } else if (!strcmp(key, "lane")) {
            if (v.t == S_NIL || s_str_is(&v, "any"))
                q->lane = -1;
            else if (s_str_is(&v, "control") || (v.t == S_UINT && v.u == HF_LANE_CONTROL))
                q->lane = HF_LANE_CONTROL;
            else if (s_str_is(&v, "data") || (v.t == S_UINT && v.u == HF_LANE_DATA))
                q->lane = HF_LANE_DATA;
            else {
                snprintf(msg, msgcap, "'lane' must be \"control\", \"data\" or nil");
                return HF_EINVAL;
            }
        } else if (!strcmp(key, "pos")) {
            if (v.t == S_NIL)
                continue;
            if (v.t != S_BIN || hf_store_pos_unpack(v.s, v.n, &q->pos) != HF_OK) {
                snprintf(msg, msgcap, "'pos' must be the bin returned by a previous page");
                return HF_EPROTO;
            }
        } else if (!strcmp(key, "task")) {
            if (v.t != S_STR || v.n >= sizeof q->task || memchr(v.s, 0, v.n)) {
                snprintf(msg, msgcap, "'task' must be a task name");
                return HF_EINVAL;
            }
            memcpy(q->task, v.s, v.n);
            q->task[v.n] = 0;
        } else if (!strcmp(key, "from")) {
            if (s_str_is(&v, "end"))
                q->from_end = true;
            else if (!(v.t == S_NIL || s_str_is(&v, "start"))) {
                snprintf(msg, msgcap, "'from' must be \"start\" or \"end\"");
                return HF_EINVAL;
            }
        } else if (!strcmp(key, "verb")) {
            char verb[16];
            if (v.t != S_STR || v.n >= sizeof verb) {
                snprintf(msg, msgcap, "'verb' must be start, pause, resume, abort or set");
                return HF_EINVAL;
            }
            memcpy(verb, v.s, v.n);
            verb[v.n] = 0;
            if (hf_command_verb_parse(verb, &q->command.verb) != HF_OK) {
                snprintf(msg, msgcap, "unknown verb '%s': start, pause, resume, abort or set",
                         verb);
                return HF_EINVAL;
            }
            q->has_verb = true;
        } else if (!strcmp(key, "name")) {
            if (v.t == S_NIL)
                continue;
            if (v.t != S_STR || v.n > HF_COMMAND_NAME_MAX || memchr(v.s, 0, v.n)) {
                snprintf(msg, msgcap, "'name' must be a string of at most %d bytes",
                         HF_COMMAND_NAME_MAX);
                return HF_EINVAL;
            }
            memcpy(q->command.name, v.s, v.n);
            q->command.name[v.n] = 0;
        } else if (!strcmp(key, "value")) {
            if (v.t == S_FLOAT)
                q->command.value = v.f;
            else if (v.t == S_UINT)
                q->command.value = (double)v.u;
            else if (v.t == S_NEG)
                q->command.value = (double)v.i;
            else {
                snprintf(msg, msgcap, "'value' must be a number");
                return HF_EINVAL;
            }
        } else if (!strcmp(key, "body")) {
            if (v.t == S_NIL)
                continue;
            if (v.t != S_STR) {
                snprintf(msg, msgcap, "'body' must be a string (the method text)");
                return HF_EINVAL;
            }
            q->command.body = (const char *)v.s;
            q->command.body_len = v.n;
        }
        /* other keys: ignored, for forward compatibility */
    }
    if (r.p != r.end) {
        snprintf(msg, msgcap, "trailing bytes after the request map");
        return HF_EPROTO;
    }
    if (version != HF_CONTROL_VERSION) {
        snprintf(msg, msgcap, "unsupported control protocol version %llu (this is %d)",
                 (unsigned long long)version, HF_CONTROL_VERSION);
        return HF_EPROTO;
    }
    if (q->cmd == S_CMD_NONE) {
        snprintf(msg, msgcap, "missing 'cmd'");
        return HF_EPROTO;
    }
    if (q->cmd == S_CMD_EXPORT && !q->has_engine) {
        snprintf(msg, msgcap, "export needs 'engine'");
        return HF_EINVAL;
    }
    if (q->from_end && q->lane < 0) {
        snprintf(msg, msgcap, "'from':\"end\" needs a 'lane' (each lane has its own end)");
        return HF_EINVAL;
    }
    if (q->cmd == S_CMD_RUN && q->run == 0) {
        snprintf(msg, msgcap, "run needs 'run'");
        return HF_EINVAL;
    }
    if (q->cmd == S_CMD_COMMAND) {
        if (!q->has_engine || !q->has_verb) {
            snprintf(msg, msgcap, "command needs 'engine' and 'verb'");
            return HF_EINVAL;
        }
        uint8_t vb = q->command.verb;
        if ((vb == HF_CMD_START && !q->command.name[0] && !q->command.body) ||
            (vb == HF_CMD_SET && !q->command.name[0])) {
            snprintf(msg, msgcap, "%s needs 'name'", vb == HF_CMD_START ? "start" : "set");
            return HF_EINVAL;
        }
    }
    return HF_OK;
}

/* ---- reply writer --------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
} s_out_t;

static int
s_out_write(void *data, const char *buf, size_t len)
{
    s_out_t *o = data;
    if (o->overflow || len > o->cap - o->len) {
        o->overflow = true;
        return -1;
    }
    memcpy(o->buf + o->len, buf, len);
    o->len += len;
    return 0;
}

static size_t
s_out_room(const s_out_t *o)
{
    return o->overflow ? 0 : o->cap - o->len;
}

/* array32 with a placeholder count; returns the offset to patch. */
static size_t
s_arr_begin(s_out_t *o)
{
    static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
    size_t at = o->len;
    s_out_write(o, hdr, sizeof hdr);
    return at;
}

static void
s_arr_end(s_out_t *o, size_t at, uint32_t count)
{
    if (o->overflow)
        return;
    o->buf[at + 1] = (uint8_t)(count >> 24);
    o->buf[at + 2] = (uint8_t)(count >> 16);
    o->buf[at + 3] = (uint8_t)(count >> 8);
    o->buf[at + 4] = (uint8_t)count;
}

static void
s_pk_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void
s_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    s_pk_str(pk, k);
    s_pk_str(pk, v);
}

static void
s_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_pk_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void
s_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    s_pk_str(pk, k);
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

static void
s_kv_epoch(msgpack_packer *pk, const char *k, uint64_t epoch)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)epoch);
    s_kv_str(pk, k, epoch ? hex : "");
}

static void
s_reply_head(msgpack_packer *pk, uint32_t nfields, const char *cmd)
{
    msgpack_pack_map(pk, nfields + 3);
    s_kv_u64(pk, "v", HF_CONTROL_VERSION);
    s_kv_bool(pk, "ok", true);
    s_kv_str(pk, "cmd", cmd);
}

static void
s_reply_error(s_out_t *o, hf_err_t err, const char *msg)
{
    o->len = 0;
    o->overflow = false;
    msgpack_packer pk;
    msgpack_packer_init(&pk, o, s_out_write);
    msgpack_pack_map(&pk, 5);
    s_kv_u64(&pk, "v", HF_CONTROL_VERSION);
    s_kv_bool(&pk, "ok", false);
    s_kv_str(&pk, "err", hf_errname(err));
    s_kv_u64(&pk, "code", (uint64_t)err);
    s_kv_str(&pk, "msg", msg);
}

/* ---- names ---------------------------------------------------------------------- */

const char *
hf_avail_name(uint8_t availability)
{
    switch (availability) {
    case HF_AVAIL_AVAILABLE: return "available";
    case HF_AVAIL_UNAVAILABLE: return "unavailable";
    default: return "unknown";
    }
}

static const char *
s_severity_name(uint8_t s)
{
    switch (s) {
    case HF_ALARM_INFO: return "info";
    case HF_ALARM_WARNING: return "warning";
    case HF_ALARM_CRITICAL: return "critical";
    default: return "?";
    }
}

/* Mirrors hf_hal_class_t (hal/hf_hal.h); hal/ is not a dependency of the
 * store, and the numbers are stable. */
static const char *
s_hw_class_name(uint8_t c)
{
    static const char *names[] = {"ok", "transient", "timeout", "disconnected", "fatal"};
    return c < sizeof names / sizeof names[0] ? names[c] : "?";
}

static const char *
s_gap_reason_name(uint8_t r)
{
    switch (r) {
    case 1: return "decimate";
    case 2: return "drop-oldest";
    default: return "?";
    }
}

/* ---- engines ---------------------------------------------------------------------- */

typedef struct {
    hf_store_engine_t e;
    bool has_run;      /* a run row exists                */
    uint64_t run;      /* highest run id of the engine    */
    uint8_t run_state; /* its record-derived state        */
} s_eng_t;

typedef struct {
    s_eng_t *v;
    size_t n;
    size_t cap;
    bool truncated;
    bool nomem;
} s_engs_t;

static int
s_collect_engine(const hf_store_engine_t *e, void *arg)
{
    s_engs_t *a = arg;
    if (a->n == S_MAX_ENGINES) {
        a->truncated = true;
        return 1;
    }
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 16;
        if (ncap > S_MAX_ENGINES)
            ncap = S_MAX_ENGINES;
        s_eng_t *nv = realloc(a->v, ncap * sizeof *nv);
        if (!nv) {
            a->nomem = true;
            return 1;
        }
        a->v = nv;
        a->cap = ncap;
    }
    memset(&a->v[a->n], 0, sizeof a->v[a->n]);
    a->v[a->n].e = *e;
    a->n++;
    return 0;
}

static int
s_first_run(const hf_store_run_t *r, void *arg)
{
    s_eng_t *e = arg;
    e->has_run = true;
    e->run = r->run;
    e->run_state = r->state;
    return 1;
}

static int
s_live_cmp(const void *a, const void *b)
{
    const hf_live_t *x = *(const hf_live_t *const *)a;
    const hf_live_t *y = *(const hf_live_t *const *)b;
    return strcmp(x->engine, y->engine);
}

static void
s_pack_engine(msgpack_packer *pk, const s_eng_t *st, const hf_live_t *lv)
{
    msgpack_pack_map(pk, 18);
    s_kv_u64(pk, "restarts", lv ? lv->restarts : 0);
    s_kv_str(pk, "engine", st ? st->e.engine : lv->engine);
    s_kv_str(pk, "availability", hf_avail_name(lv ? lv->availability : HF_AVAIL_UNKNOWN));
    s_kv_u64(pk, "since_ns", lv ? lv->since_ns : 0);
    char reason[sizeof lv->reason + 1];
    reason[0] = 0;
    if (lv) {
        memcpy(reason, lv->reason, sizeof lv->reason);
        reason[sizeof lv->reason] = 0;
    }
    s_kv_str(pk, "reason", reason);
    s_kv_epoch(pk, "epoch", lv && lv->epoch ? lv->epoch : st ? st->e.current_epoch : 0);
    s_kv_u64(pk, "connected_ms", lv ? lv->connected_ms : 0);
    s_kv_bool(pk, "live", lv != NULL);
    s_kv_bool(pk, "stored", st != NULL);
    s_pk_str(pk, "records");
    msgpack_pack_array(pk, HF_LANE_COUNT);
    for (int i = 0; i < HF_LANE_COUNT; i++)
        msgpack_pack_uint64(pk, st ? st->e.records[i] : 0);
    s_kv_u64(pk, "epochs", st ? st->e.epoch_count : 0);
    s_kv_u64(pk, "first_seen_ns", st ? st->e.first_seen_ns : 0);
    s_kv_u64(pk, "last_seen_ns", st ? st->e.last_seen_ns : 0);
    /* Current run: the record-derived view; HELLO's view when no record of
     * any run has arrived yet. */
    bool rec_run = st && st->has_run;
    uint64_t hello_run = st ? st->e.last_run : 0;
    uint8_t hello_state = st ? st->e.last_run_state : HF_RUN_IDLE;
    s_kv_u64(pk, "run", rec_run ? st->run : hello_run);
    s_kv_str(pk, "run_state", hf_run_state_name(rec_run ? st->run_state : hello_state));
    s_kv_u64(pk, "hello_run", hello_run);
    s_kv_str(pk, "hello_run_state", hf_run_state_name(hello_state));
    s_pk_str(pk, "backlog");
    if (lv && lv->has_backlog) {
        const hf_status_t *b = &lv->backlog;
        msgpack_pack_map(pk, 13);
        s_pk_str(pk, "pending");
        msgpack_pack_array(pk, HF_LANE_COUNT);
        for (int i = 0; i < HF_LANE_COUNT; i++)
            msgpack_pack_uint64(pk, b->pending[i]);
        s_pk_str(pk, "oldest_age_ms");
        msgpack_pack_array(pk, HF_LANE_COUNT);
        for (int i = 0; i < HF_LANE_COUNT; i++)
            msgpack_pack_uint64(pk, b->oldest_age_ms[i]);
        s_kv_u64(pk, "drain_per_s", b->drain_per_s);
        s_kv_u64(pk, "eta_ms", b->eta_ms);
        s_kv_u64(pk, "dropped", b->dropped);
        s_kv_u64(pk, "spool_bytes", b->spool_bytes);
        s_kv_u64(pk, "spool_limit", b->spool_limit);
        s_kv_u64(pk, "samples", b->samples);
        s_kv_u64(pk, "late", b->late);
        s_kv_u64(pk, "missed", b->missed);
        s_kv_u64(pk, "reported_ms_ago", lv->backlog_age_ms);
        s_kv_u64(pk, "pending_total", b->pending[0] + b->pending[1]);
        s_kv_bool(pk, "draining", b->pending[0] + b->pending[1] > 0);
    } else {
        msgpack_pack_nil(pk);
    }
}

/* Writes the "engines" array (store ∪ live, by name). Returns the store
 * error if any; *truncated when the store held more than S_MAX_ENGINES. */
static hf_err_t
s_pack_engines(hf_store_t *store, const hf_live_t *live, size_t nlive, msgpack_packer *pk,
               s_out_t *o, bool *truncated, s_engs_t *engs)
{
    hf_err_t rc = hf_store_engines_each(store, s_collect_engine, engs);
    if (rc == HF_OK && engs->nomem)
        rc = HF_ENOMEM;
    if (rc != HF_OK)
        return rc;
    *truncated = engs->truncated;
    for (size_t i = 0; i < engs->n; i++) {
        rc = hf_store_runs_each(store, engs->v[i].e.engine, true, s_first_run, &engs->v[i]);
        if (rc != HF_OK)
            return rc;
    }
    const hf_live_t **lv = NULL;
    if (nlive > 0) {
        lv = malloc(nlive * sizeof *lv);
        if (!lv)
            return HF_ENOMEM;
        for (size_t i = 0; i < nlive; i++)
            lv[i] = &live[i];
        qsort(lv, nlive, sizeof *lv, s_live_cmp);
        /* a live table naming an engine twice: list it once */
        size_t u = 1;
        for (size_t i = 1; i < nlive; i++) {
            if (strcmp(lv[i]->engine, lv[u - 1]->engine) != 0)
                lv[u++] = lv[i];
        }
        nlive = u;
    }
    size_t at = s_arr_begin(o);
    uint32_t count = 0;
    size_t i = 0;
    size_t j = 0;
    while (i < engs->n || j < nlive) {
        int cmp = i == engs->n ? 1 : j == nlive ? -1 : strcmp(engs->v[i].e.engine, lv[j]->engine);
        if (cmp < 0)
            s_pack_engine(pk, &engs->v[i++], NULL);
        else if (cmp > 0)
            s_pack_engine(pk, NULL, lv[j++]);
        else
            s_pack_engine(pk, &engs->v[i++], lv[j++]);
        count++;
    }
    s_arr_end(o, at, count);
    free(lv);
    return HF_OK;
}

/* ---- runs ------------------------------------------------------------------------- */

typedef struct {
    msgpack_packer *pk;
    s_out_t *o;
    uint64_t limit;                    /* per engine                 */
    char engine[HF_ENGINE_ID_MAX + 1]; /* engine being counted       */
    uint64_t in_engine;                /* runs packed for it         */
    uint32_t count;                    /* runs packed                */
    bool truncated;                    /* stopped for lack of room   */
    const hf_live_t *live;             /* the shell's live table     */
    size_t nlive;
} s_runs_ctx_t;

/* Is the engine connected now (per the shell's live table)? */
static bool
s_engine_available(const hf_live_t *live, size_t nlive, const char *engine)
{
    for (size_t i = 0; i < nlive; i++)
        if (!strcmp(live[i].engine, engine))
            return live[i].availability == HF_AVAIL_AVAILABLE;
    return false;
}

/* engine_available: the run's engine is connected now. A run that is
 * running or paused by its records while its engine is away is shown with
 * "engine unavailable" beside it: it may have ended since, which the
 * backlog will tell. */
static void
s_pack_run(msgpack_packer *pk, const hf_store_run_t *r, bool engine_available)
{
    msgpack_pack_map(pk, 13);
    s_kv_bool(pk, "engine_available", engine_available);
    s_kv_str(pk, "engine", r->engine);
    s_kv_u64(pk, "run", r->run);
    s_kv_str(pk, "cause", r->cause);
    s_kv_str(pk, "state", hf_run_state_name(r->state));
    s_kv_str(pk, "method", r->method);
    s_kv_u64(pk, "started_ns", r->started_ts_ns);
    s_kv_u64(pk, "ended_ns", r->ended_ts_ns);
    s_kv_u64(pk, "samples", r->samples);
    s_kv_u64(pk, "control", r->control);
    s_kv_str(pk, "channels", r->channels);
    s_kv_str(pk, "last_event", r->last_event ? hf_event_name(r->last_event) : "");
    s_kv_u64(pk, "last_event_ns", r->last_event_ts_ns);
}

static int
s_run_cb(const hf_store_run_t *r, void *arg)
{
    s_runs_ctx_t *c = arg;
    if (strcmp(c->engine, r->engine) != 0) {
        snprintf(c->engine, sizeof c->engine, "%s", r->engine);
        c->in_engine = 0;
    }
    if (c->in_engine >= c->limit)
        return 0; /* skip older runs of this engine */
    if (s_out_room(c->o) < S_REC_MARGIN + S_TAIL_MARGIN) {
        c->truncated = true;
        return 1;
    }
    s_pack_run(c->pk, r, s_engine_available(c->live, c->nlive, r->engine));
    c->in_engine++;
    c->count++;
    return 0;
}

static hf_err_t
s_pack_runs(hf_store_t *store, const hf_live_t *live, size_t nlive, const char *engine,
            uint64_t limit, msgpack_packer *pk, s_out_t *o, bool *truncated)
{
    s_runs_ctx_t c;
    memset(&c, 0, sizeof c);
    c.live = live;
    c.nlive = nlive;
    c.pk = pk;
    c.o = o;
    c.limit = limit;
    size_t at = s_arr_begin(o);
    hf_err_t rc = hf_store_runs_each(store, engine, true, s_run_cb, &c);
    s_arr_end(o, at, c.count);
    *truncated = *truncated || c.truncated;
    return rc;
}

typedef struct {
    msgpack_packer *pk;
    s_out_t *o;
    uint64_t limit;
    uint32_t count;
    bool truncated;
} s_hist_ctx_t;

static int
s_hist_cb(const hf_store_outage_t *x, void *arg)
{
    s_hist_ctx_t *c = arg;
    if (c->count >= c->limit || c->o->len + 256 > c->o->cap) {
        c->truncated = true;
        return 1;
    }
    msgpack_pack_map(c->pk, 4);
    s_kv_str(c->pk, "engine", x->engine);
    s_kv_u64(c->pk, "start_ns", x->start_ns);
    s_kv_u64(c->pk, "end_ns", x->end_ns);
    s_kv_str(c->pk, "reason", x->reason);
    c->count++;
    return 0;
}

/* Availability history: outages, newest first per engine. */
static hf_err_t
s_pack_history(hf_store_t *store, const char *engine, uint64_t limit, msgpack_packer *pk,
               s_out_t *o, bool *truncated)
{
    s_hist_ctx_t c = {pk, o, limit, 0, false};
    size_t at = s_arr_begin(o);
    hf_err_t rc = hf_store_outages_each(store, engine, s_hist_cb, &c);
    s_arr_end(o, at, c.count);
    *truncated = *truncated || c.truncated;
    return rc;
}

/* ---- export ------------------------------------------------------------------------ */

typedef struct {
    msgpack_packer *pk;
    s_out_t *o;
    uint32_t count;
} s_export_ctx_t;

static void
s_pack_record(msgpack_packer *pk, const hf_store_export_rec_t *x)
{
    const hf_record_t *r = &x->rec;
    char name[HF_STORE_CHANNELS_MAX + 1];
    name[0] = 0;
    uint32_t extra = 0;
    switch (r->kind) {
    case HF_KIND_SAMPLE:
        extra = 2;
        if (x->channels) {
            /* the channel-th comma-separated name, if the list is that long */
            const char *p = x->channels;
            for (uint32_t i = 0; i < r->u.sample.channel && p; i++) {
                p = strchr(p, ',');
                if (p)
                    p++;
            }
            if (p) {
                size_t n = strcspn(p, ",");
                memcpy(name, p, n);
                name[n] = 0;
            }
            if (name[0])
                extra = 3;
        }
        break;
    case HF_KIND_EVENT: extra = 3; break;
    case HF_KIND_ALARM: extra = 4; break;
    case HF_KIND_HW_ERROR: extra = 5; break;
    case HF_KIND_GAP: extra = 5; break;
    case HF_KIND_COMMAND: extra = 4; break;
    default: break;
    }
    msgpack_pack_map(pk, 8 + extra);
    s_kv_epoch(pk, "epoch", x->epoch);
    s_kv_bool(pk, "observed_offline", x->observed_offline);
    s_kv_str(pk, "lane", hf_lane_name(r->lane));
    s_kv_u64(pk, "seq", r->seq);
    s_kv_u64(pk, "ts_ns", r->ts_ns);
    s_kv_u64(pk, "mono_ns", r->mono_ns);
    s_kv_str(pk, "kind", hf_kind_name(r->kind));
    s_kv_u64(pk, "run", r->run);
    switch (r->kind) {
    case HF_KIND_SAMPLE:
        s_kv_u64(pk, "channel", r->u.sample.channel);
        if (extra == 3)
            s_kv_str(pk, "channel_name", name);
        s_pk_str(pk, "value");
        msgpack_pack_double(pk, r->u.sample.value);
        break;
    case HF_KIND_EVENT:
        s_kv_str(pk, "event", hf_event_name(r->u.event.type));
        s_kv_u64(pk, "step", r->u.event.step);
        s_kv_str(pk, "text", r->u.event.text);
        break;
    case HF_KIND_ALARM:
        s_kv_bool(pk, "raised", r->u.alarm.raised != 0);
        s_kv_str(pk, "severity", s_severity_name(r->u.alarm.severity));
        s_kv_u64(pk, "code", r->u.alarm.code);
        s_kv_str(pk, "text", r->u.alarm.text);
        break;
    case HF_KIND_HW_ERROR:
        s_kv_str(pk, "class", s_hw_class_name(r->u.hw_error.cls));
        s_kv_u64(pk, "device", r->u.hw_error.device);
        s_kv_u64(pk, "channel", r->u.hw_error.channel);
        s_pk_str(pk, "code");
        msgpack_pack_int64(pk, r->u.hw_error.code);
        s_kv_str(pk, "text", r->u.hw_error.text);
        break;
    case HF_KIND_GAP:
        s_kv_str(pk, "gap_lane", hf_lane_name(r->u.gap.lane));
        s_kv_u64(pk, "first", r->u.gap.first);
        s_kv_u64(pk, "last", r->u.gap.last);
        s_kv_u64(pk, "count", r->u.gap.count);
        s_kv_str(pk, "reason", s_gap_reason_name(r->u.gap.reason));
        break;
    case HF_KIND_COMMAND:
        s_kv_u64(pk, "command", r->u.command.id);
        s_kv_str(pk, "verb", hf_command_verb_name(r->u.command.verb));
        s_kv_str(pk, "result", hf_errname((hf_err_t)r->u.command.result));
        s_kv_str(pk, "text", r->u.command.text);
        break;
    default: break;
    }
}

static int
s_export_cb(const hf_store_export_rec_t *x, void *arg)
{
    s_export_ctx_t *c = arg;
    if (s_out_room(c->o) < S_REC_MARGIN + S_TAIL_MARGIN)
        return 1; /* full page: the store keeps the position at this record */
    s_pack_record(c->pk, x);
    c->count++;
    return 0;
}

static bool
s_is_live(const hf_live_t *live, size_t nlive, const char *engine)
{
    for (size_t i = 0; i < nlive; i++) {
        if (!strcmp(live[i].engine, engine))
            return true;
    }
    return false;
}

typedef struct {
    uint64_t epoch;
    hf_store_pos_t *pos;
    uint8_t lane;
} s_end_ctx_t;

static int
s_end_cb(const hf_store_epoch_t *e, void *arg)
{
    s_end_ctx_t *c = arg;
    if (e->epoch != c->epoch)
        return 0;
    c->pos->ordinal = e->ordinal;
    c->pos->lane = c->lane;
    c->pos->seq = e->acked[c->lane] + 1;
    return 1;
}

/* The position just after the newest record of (engine, lane): where a
 * tail starts. Records of a later epoch (the engine restarted) come after
 * it in export order, so a tail follows the engine across restarts. */
static hf_err_t
s_end_pos(hf_store_t *store, const char *engine, uint8_t lane, hf_store_pos_t *pos)
{
    hf_store_engine_t e;
    hf_err_t rc = hf_store_engine_get(store, engine, &e);
    if (rc != HF_OK)
        return rc;
    memset(pos, 0, sizeof *pos);
    s_end_ctx_t c = {e.current_epoch, pos, lane};
    return hf_store_epochs_each(store, engine, s_end_cb, &c);
}

/* One run by id: of one engine, or of whichever engines have it (ids are
 * per engine; two engines may share one). */
typedef struct {
    msgpack_packer *pk;
    s_out_t *o;
    const hf_live_t *live;
    size_t nlive;
    hf_store_t *store;
    uint64_t run;
    uint32_t count;
    hf_err_t rc;
} s_find_ctx_t;

static int
s_find_run(const hf_store_engine_t *e, void *arg)
{
    s_find_ctx_t *c = arg;
    hf_store_run_t r;
    hf_err_t rc = hf_store_run_get(c->store, e->engine, c->run, &r);
    if (rc == HF_ENOTFOUND)
        return 0;
    if (rc != HF_OK) {
        c->rc = rc;
        return 1;
    }
    if (s_out_room(c->o) < S_REC_MARGIN + S_TAIL_MARGIN)
        return 1;
    s_pack_run(c->pk, &r, s_engine_available(c->live, c->nlive, r.engine));
    c->count++;
    return 0;
}

static hf_err_t
s_do_run(hf_store_t *store, const hf_live_t *live, size_t nlive, const s_req_t *q,
         msgpack_packer *pk, s_out_t *o, char *msg, size_t msgcap)
{
    s_reply_head(pk, 1, "run");
    s_pk_str(pk, "runs");
    size_t at = s_arr_begin(o);
    s_find_ctx_t c = {pk, o, live, nlive, store, q->run, 0, HF_OK};
    hf_err_t rc;
    if (q->has_engine) {
        hf_store_engine_t e;
        memset(&e, 0, sizeof e);
        snprintf(e.engine, sizeof e.engine, "%s", q->engine);
        s_find_run(&e, &c);
        rc = c.rc;
    } else {
        rc = hf_store_engines_each(store, s_find_run, &c);
        if (rc == HF_OK)
            rc = c.rc;
    }
    if (rc == HF_OK && c.count == 0) {
        snprintf(msg, msgcap, "no run %llu%s%s", (unsigned long long)q->run,
                 q->has_engine ? " on engine " : "", q->has_engine ? q->engine : "");
        rc = HF_ENOTFOUND;
    }
    s_arr_end(o, at, c.count);
    return rc;
}

static hf_err_t
s_do_export(hf_store_t *store, const hf_live_t *live, size_t nlive, const s_req_t *q,
            msgpack_packer *pk, s_out_t *o, char *msg, size_t msgcap)
{
    hf_store_export_opts_t eo;
    memset(&eo, 0, sizeof eo);
    eo.run = q->run;
    eo.lane = q->lane;
    eo.max_records = q->max == 0 ? S_EXPORT_MAX_DEFAULT
                     : q->max > S_EXPORT_MAX ? S_EXPORT_MAX
                                             : (size_t)q->max;
    hf_store_pos_t pos = q->pos;
    if (q->from_end) {
        hf_err_t erc = s_end_pos(store, q->engine, (uint8_t)q->lane, &pos);
        if (erc == HF_ENOTFOUND && s_is_live(live, nlive, q->engine))
            erc = HF_OK; /* nothing stored yet: the start is the end */
        if (erc != HF_OK) {
            snprintf(msg, msgcap, erc == HF_ENOTFOUND ? "no such engine: %s" : "export failed",
                     q->engine);
            return erc;
        }
    }
    s_export_ctx_t c = {pk, o, 0};
    s_reply_head(pk, 4, "export");
    s_kv_str(pk, "engine", q->engine);
    s_pk_str(pk, "records");
    size_t at = s_arr_begin(o);
    bool done = false;
    size_t taken = 0;
    hf_err_t rc = hf_store_export(store, q->engine, &eo, &pos, s_export_cb, &c, &taken, &done);
    if (rc == HF_ENOTFOUND) {
        if (!s_is_live(live, nlive, q->engine)) {
            snprintf(msg, msgcap, "no such engine: %s", q->engine);
            return rc;
        }
        done = true; /* live but nothing stored yet: an empty, finished export */
        rc = HF_OK;
    }
    if (rc != HF_OK) {
        snprintf(msg, msgcap, "export failed: %s", hf_strerror(rc));
        return rc;
    }
    if (c.count == 0 && !done && taken == 0 && s_out_room(o) < S_REC_MARGIN + S_TAIL_MARGIN) {
        snprintf(msg, msgcap, "reply buffer too small for one record");
        return HF_EFULL;
    }
    s_arr_end(o, at, c.count);
    uint8_t pb[HF_STORE_POS_BYTES];
    hf_store_pos_pack(&pos, pb);
    s_pk_str(pk, "pos");
    msgpack_pack_bin(pk, sizeof pb);
    msgpack_pack_bin_body(pk, pb, sizeof pb);
    s_kv_bool(pk, "done", done);
    return HF_OK;
}

/* ---- entry ---------------------------------------------------------------------------- */

hf_err_t
hf_control_handle(hf_store_t *store, const hf_live_t *live, size_t nlive, const uint8_t *req,
                  size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    return hf_control_handle_ex(store, live, nlive, NULL, NULL, req, len, out, cap, outlen);
}

static void
s_pack_security(msgpack_packer *pk, const hf_control_security_t *sec)
{
    s_pk_str(pk, "security");
    msgpack_pack_map(pk, 8);
    s_kv_str(pk, "mechanism", sec->secure ? "curve" : "plain");
    s_kv_u64(pk, "engine_keys", sec->engine_keys);
    s_kv_u64(pk, "operator_keys", sec->operator_keys);
    s_kv_u64(pk, "accepted", sec->accepted);
    s_kv_u64(pk, "refused_unknown_key", sec->refused_unknown_key);
    s_kv_u64(pk, "refused_wrong_role", sec->refused_wrong_role);
    s_kv_u64(pk, "refused_not_bound", sec->refused_not_bound);
    s_kv_u64(pk, "refused_handshake", sec->refused_handshake);
}

static void
s_pack_storage(msgpack_packer *pk, const hf_control_storage_t *st)
{
    s_pk_str(pk, "storage");
    msgpack_pack_map(pk, 8);
    s_kv_u64(pk, "disk_free_bytes", st->disk_free_bytes);
    s_kv_u64(pk, "disk_size_bytes", st->disk_size_bytes);
    s_kv_u64(pk, "store_live_bytes", st->store_live_bytes);
    s_kv_u64(pk, "store_max_bytes", st->store_max_bytes);
    s_kv_u64(pk, "retained_records", st->retained_records);
    s_kv_bool(pk, "disk_low", st->disk_low);
    s_kv_bool(pk, "store_high", st->store_high);
    s_kv_bool(pk, "store_full", st->store_full);
}

hf_err_t
hf_control_handle_ex(hf_store_t *store, const hf_live_t *live, size_t nlive,
                     const hf_control_security_t *sec, const hf_control_storage_t *storage,
                     const uint8_t *req, size_t len,
                     uint8_t *out, size_t cap, size_t *outlen)
{
    if (!store || !out || !outlen || cap < HF_CONTROL_REPLY_MIN || (nlive > 0 && !live))
        return HF_EINVAL;
    s_out_t o = {out, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o, s_out_write);
    char msg[160];
    msg[0] = 0;
    s_req_t q;
    hf_err_t rc = s_parse(req, len, &q, msg, sizeof msg);
    bool truncated = false;
    s_engs_t engs;
    memset(&engs, 0, sizeof engs);
    if (rc == HF_OK) {
        switch (q.cmd) {
        case S_CMD_STATUS:
            s_reply_head(&pk, 3 + (sec != NULL) + (storage != NULL), "status");
            if (sec)
                s_pack_security(&pk, sec);
            if (storage)
                s_pack_storage(&pk, storage);
            s_pk_str(&pk, "engines");
            rc = s_pack_engines(store, live, nlive, &pk, &o, &truncated, &engs);
            if (rc == HF_OK) {
                s_pk_str(&pk, "runs");
                rc = s_pack_runs(store, live, nlive, NULL,
                                 q.limit ? q.limit : S_STATUS_RUNS_DEFAULT, &pk, &o, &truncated);
            }
            s_kv_bool(&pk, "truncated", truncated);
            break;
        case S_CMD_HISTORY:
            s_reply_head(&pk, 2, "history");
            s_pk_str(&pk, "outages");
            rc = s_pack_history(store, q.has_engine ? q.engine : NULL, q.limit ? q.limit : 1000,
                                &pk, &o, &truncated);
            s_kv_bool(&pk, "truncated", truncated);
            break;
        case S_CMD_ENGINES:
            s_reply_head(&pk, 2, "engines");
            s_pk_str(&pk, "engines");
            rc = s_pack_engines(store, live, nlive, &pk, &o, &truncated, &engs);
            s_kv_bool(&pk, "truncated", truncated);
            break;
        case S_CMD_RUNS:
            if (q.has_engine) {
                hf_store_engine_t e;
                rc = hf_store_engine_get(store, q.engine, &e);
                if (rc == HF_ENOTFOUND && s_is_live(live, nlive, q.engine))
                    rc = HF_OK; /* live, nothing stored: no runs */
                if (rc == HF_ENOTFOUND) {
                    snprintf(msg, sizeof msg, "no such engine: %s", q.engine);
                    break;
                }
                if (rc != HF_OK)
                    break;
            }
            s_reply_head(&pk, 2, "runs");
            s_pk_str(&pk, "runs");
            rc = s_pack_runs(store, live, nlive, q.has_engine ? q.engine : NULL,
                             q.limit ? q.limit : S_RUNS_LIMIT_DEFAULT, &pk, &o, &truncated);
            s_kv_bool(&pk, "truncated", truncated);
            break;
        case S_CMD_EXPORT:
            rc = s_do_export(store, live, nlive, &q, &pk, &o, msg, sizeof msg);
            break;
        case S_CMD_RUN:
            rc = s_do_run(store, live, nlive, &q, &pk, &o, msg, sizeof msg);
            break;
        case S_CMD_FAULT:
            rc = HF_ENOTFOUND;
            snprintf(msg, sizeof msg, "the fault hook exists only in test builds");
            break;
        case S_CMD_COMMAND:
            /* the shell routes commands (hf_control_parse_command) */
            rc = HF_ESTATE;
            snprintf(msg, sizeof msg, "commands are not handled here");
            break;
        case S_CMD_NONE: rc = HF_EPROTO; break;
        }
    }
    free(engs.v);
    if (rc == HF_OK && o.overflow) {
        rc = HF_EFULL;
        snprintf(msg, sizeof msg, "reply larger than %zu bytes", cap);
    }
    if (rc != HF_OK) {
        if (!msg[0])
            snprintf(msg, sizeof msg, "%s", hf_strerror(rc));
        s_reply_error(&o, rc, msg);
    }
    *outlen = o.len;
    return HF_OK;
}

/* ---- commands ------------------------------------------------------------------- */

hf_err_t
hf_control_parse_command(const uint8_t *req, size_t len, hf_control_command_t *out, char *msg,
                         size_t msgcap)
{
    assert(out && msg && msgcap);
    memset(out, 0, sizeof *out);
    msg[0] = 0;
    s_req_t q;
    hf_err_t rc = s_parse(req, len, &q, msg, msgcap);
    if (rc != HF_OK)
        return q.cmd == S_CMD_COMMAND ? rc : HF_ENOTFOUND;
    if (q.cmd != S_CMD_COMMAND)
        return HF_ENOTFOUND;
    snprintf(out->engine, sizeof out->engine, "%s", q.engine);
    out->cmd = q.command;
    return HF_OK;
}

hf_err_t
hf_control_command_reply(const char *engine, uint64_t id, uint8_t verb, hf_err_t result,
                         bool by_engine, const char *text, uint8_t *out, size_t cap,
                         size_t *outlen)
{
    if (!out || !outlen || cap < HF_CONTROL_REPLY_MIN)
        return HF_EINVAL;
    s_out_t o = {out, cap, 0, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o, s_out_write);
    bool ok = result == HF_OK;
    msgpack_pack_map(&pk, ok ? 8 : 10);
    s_kv_u64(&pk, "v", HF_CONTROL_VERSION);
    s_kv_bool(&pk, "ok", ok);
    s_kv_str(&pk, "cmd", "command");
    s_kv_str(&pk, "engine", engine ? engine : "");
    s_kv_u64(&pk, "id", id);
    s_kv_str(&pk, "verb", hf_command_verb_name(verb));
    s_kv_str(&pk, "by", by_engine ? "engine" : "aggregator");
    if (!ok) {
        s_kv_str(&pk, "err", hf_errname(result));
        s_kv_u64(&pk, "code", (uint64_t)result);
    }
    s_kv_str(&pk, ok ? "text" : "msg", text ? text : "");
    *outlen = o.len;
    return o.overflow ? HF_EFULL : HF_OK;
}

#ifdef HF_TESTING
hf_err_t
hf_control_parse_fault(const uint8_t *req, size_t len, char *task, size_t cap)
{
    s_req_t q;
    char msg[160];
    if (!task || cap == 0 || s_parse(req, len, &q, msg, sizeof msg) != HF_OK ||
        q.cmd != S_CMD_FAULT || !q.task[0])
        return HF_ENOTFOUND;
    snprintf(task, cap, "%s", q.task);
    return HF_OK;
}
#endif
