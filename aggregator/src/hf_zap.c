/* hf_zap.c - the aggregator's ZAP handler (see hf_zap.h, docs/security.md).
 *
 * Design notes:
 * - Our own handler rather than czmq's zauth: zauth's CURVE policy says
 *   only "this key is allowed"; we also need the key's engine id (so one
 *   engine cannot speak for another) and the operator's role, and we want
 *   the refusal's reason and the peer's address in our log and counters.
 * - The REP socket lives in the aggregator's context and is polled by the
 *   aggregator's own loop (one object, one thread): no actor, no locks.
 *   libzmq's I/O thread waits for the reply; a handshake is held only as
 *   long as one pass of the loop.
 * - A directory is read again when its fingerprint (every file's name,
 *   mtime and size) changes. Computing it is a readdir and a stat per
 *   file; parsing certificates happens only on a change.
 * - Refusal log lines are rate-limited per reason (S_LOG_BURST per
 *   S_LOG_WINDOW_MS, then a summary); the counters are exact.
 *
 * Invariants:
 * - Every ZAP request gets exactly one reply (REP would wedge otherwise):
 *   a malformed request gets 500, never silence.
 * - A key is trusted only if it is in the current maps; maps are swapped
 *   whole after a complete read, never left half-loaded.
 */
#include "hf_zap.h"

#include <assert.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "hf_log.h"
#include "hf_record.h"

#define S_LOG "security"
#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_TICK_MS 1000        /* ms: directory change check period            */
#define S_RECHECK_MS 20       /* ms: earliest re-check before refusing a key  */
#define S_LOG_WINDOW_MS 10000 /* ms: refusal log rate-limit window            */
#define S_LOG_BURST 10        /* refusal lines per reason per window          */
#define S_FRAMES_MAX 8        /* frames of a ZAP request we look at           */

typedef struct {
    char key[41];                    /* z85 public key                   */
    char name[HF_ZAP_NAME_MAX + 1];  /* engine id or operator name       */
    hf_role_t role;
} s_key_t;

typedef struct {
    char path[1024];
    bool engines;            /* engine keys (else operator keys)          */
    zhash_t *keys;           /* z85 -> s_key_t (owned)                    */
    uint64_t fingerprint;    /* of the directory as last read             */
    uint32_t count;
} s_dir_t;

struct hf_zap_s {
    void *sock;              /* REP on inproc://zeromq.zap.01             */
    s_dir_t dirs[2];         /* 0: engines, 1: operators                  */
    hf_ms_t checked_at;      /* ms: directories last checked              */
    hf_zap_stats_t stats;
    hf_ms_t log_window_at[HF_REFUSE_COUNT];  /* ms: current window start   */
    uint32_t log_lines[HF_REFUSE_COUNT];     /* lines in the window        */
    uint64_t log_suppressed[HF_REFUSE_COUNT];/* refusals not logged        */
};

const char *
hf_role_name(hf_role_t role)
{
    switch (role) {
    case HF_ROLE_ENGINE: return "engine";
    case HF_ROLE_OPERATOR: return "operator";
    case HF_ROLE_READER: return "reader";
    case HF_ROLE_NONE: break;
    }
    return "none";
}

hf_err_t
hf_role_parse(const char *s, hf_role_t *out)
{
    if (s && !strcmp(s, "operator"))
        *out = HF_ROLE_OPERATOR;
    else if (s && !strcmp(s, "reader"))
        *out = HF_ROLE_READER;
    else
        return HF_EINVAL;
    return HF_OK;
}

const char *
hf_refuse_name(hf_refuse_t why)
{
    switch (why) {
    case HF_REFUSE_UNKNOWN_KEY: return "unknown key";
    case HF_REFUSE_WRONG_ROLE: return "wrong role";
    case HF_REFUSE_NOT_BOUND: return "id not bound to this key";
    case HF_REFUSE_HANDSHAKE: return "handshake failed";
    case HF_REFUSE_COUNT: break;
    }
    return "refused";
}

/* ---- directories ------------------------------------------------------------ */

static bool
s_skip_name(const char *n)
{
    size_t len = strlen(n);
    return n[0] == '.' || (len >= 7 && !strcmp(n + len - 7, "_secret"));
}

static int
s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the directory's candidate files (at most
 * HF_ZAP_MAX_KEYS) and their fingerprint. HF_EIO if it cannot be read. */
static hf_err_t
s_scan(const s_dir_t *d, char ***names_out, uint32_t *n_out, uint64_t *fp_out)
{
    DIR *dir = opendir(d->path);
    if (!dir)
        return HF_EIO;
    char **names = calloc(HF_ZAP_MAX_KEYS, sizeof *names);
    if (!names) {
        closedir(dir);
        return HF_ENOMEM;
    }
    uint32_t n = 0;
    bool over = false;
    uint64_t fp = 1469598103934665603ull; /* FNV-1a */
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (s_skip_name(de->d_name))
            continue;
        char path[1400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", d->path, de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == HF_ZAP_MAX_KEYS) {
            over = true;
            continue;
        }
        names[n] = strdup(de->d_name);
        if (!names[n])
            break;
        n++;
    }
    closedir(dir);
    if (over)
        hf_log_warn(S_LOG, "dir=%s holds more than %d keys: the rest are ignored", d->path,
                    HF_ZAP_MAX_KEYS);
    qsort(names, n, sizeof *names, s_cmp_str);
    for (uint32_t i = 0; i < n; i++) {
        char path[1400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", d->path, names[i]);
        uint64_t parts[3] = {0, 0, 0};
        if (stat(path, &st) == 0) {
            parts[0] = (uint64_t)st.st_mtim.tv_sec;
            parts[1] = (uint64_t)st.st_mtim.tv_nsec;
            parts[2] = (uint64_t)st.st_size;
        }
        for (const char *p = names[i]; *p; p++)
            fp = (fp ^ (uint8_t)*p) * 1099511628211ull;
        for (int k = 0; k < 3; k++)
            for (int b = 0; b < 8; b++)
                fp = (fp ^ ((parts[k] >> (8 * b)) & 0xff)) * 1099511628211ull;
    }
    fp ^= n;
    *names_out = names;
    *n_out = n;
    *fp_out = fp;
    return HF_OK;
}

static void
s_free_names(char **names, uint32_t n)
{
    for (uint32_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

/* One public certificate -> a key entry, or false (logged) when the file
 * is not a usable certificate for this directory. */
static bool
s_load_cert(const s_dir_t *d, const char *fname, s_key_t *out)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", d->path, fname);
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        hf_log_warn(S_LOG, "dir=%s file=%s: not a certificate, ignored", d->path, fname);
        return false;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->key, sizeof out->key, "%s", zcert_public_txt(cert));
    bool ok = strlen(out->key) == 40;
    if (d->engines) {
        /* The engine id is the certificate's "engine-id", else the file name. */
        const char *id = zcert_meta(cert, "engine-id");
        if (!id)
            id = fname;
        ok = ok && strlen(id) <= HF_ZAP_NAME_MAX && hf_engine_id_valid(id);
        if (ok)
            snprintf(out->name, sizeof out->name, "%s", id);
        else
            hf_log_warn(S_LOG, "dir=%s file=%s: no valid engine id, ignored", d->path, fname);
        out->role = HF_ROLE_ENGINE;
    } else {
        const char *name = zcert_meta(cert, "name");
        const char *role = zcert_meta(cert, "role");
        if (!name)
            name = fname;
        snprintf(out->name, sizeof out->name, "%s", name);
        if (hf_role_parse(role, &out->role) != HF_OK) {
            /* least privilege: a key without a known role may only read */
            hf_log_warn(S_LOG, "dir=%s file=%s: role \"%s\" unknown, taken as reader", d->path,
                        fname, role ? role : "");
            out->role = HF_ROLE_READER;
        }
    }
    zcert_destroy(&cert);
    return ok;
}

/* Read the directory again if it changed (or force). A directory that
 * cannot be read keeps its keys (logged once per change of state). */
static void
s_reload(hf_zap_t *self, s_dir_t *d, bool force)
{
    char **names = NULL;
    uint32_t n = 0;
    uint64_t fp = 0;
    hf_err_t rc = s_scan(d, &names, &n, &fp);
    if (rc != HF_OK) {
        if (d->fingerprint != 0)
            hf_log_error(S_LOG, "dir=%s cannot be read: %s; keeping the %u keys loaded before",
                         d->path, strerror(errno), d->count);
        d->fingerprint = 0;
        return;
    }
    if (!force && fp == d->fingerprint) {
        s_free_names(names, n);
        return;
    }
    zhash_t *keys = zhash_new();
    uint32_t count = 0;
    for (uint32_t i = 0; keys && i < n; i++) {
        s_key_t k;
        if (!s_load_cert(d, names[i], &k))
            continue;
        if (zhash_lookup(keys, k.key)) {
            hf_log_warn(S_LOG, "dir=%s file=%s: key already listed in another file, ignored",
                        d->path, names[i]);
            continue;
        }
        s_key_t *copy = malloc(sizeof *copy);
        if (copy)
            *copy = k;
        if (!copy || zhash_insert(keys, k.key, copy) != 0) {
            free(copy);
            continue;
        }
        zhash_freefn(keys, k.key, free);
        count++;
    }
    s_free_names(names, n);
    if (!keys) {
        hf_log_error(S_LOG, "dir=%s: out of memory, keeping the keys loaded before", d->path);
        return;
    }
    zhash_destroy(&d->keys);
    d->keys = keys;
    d->fingerprint = fp;
    d->count = count;
    self->stats.reloads++;
    if (d->engines)
        self->stats.engine_keys = count;
    else
        self->stats.operator_keys = count;
    hf_log_info(S_LOG, "loaded %s keys=%u dir=%s", d->engines ? "engine" : "operator", count,
                d->path);
}

static void
s_check_dirs(hf_zap_t *self, hf_ms_t now)
{
    self->checked_at = now;
    s_reload(self, &self->dirs[0], false);
    s_reload(self, &self->dirs[1], false);
}

/* ---- life ------------------------------------------------------------------- */

hf_zap_t *
hf_zap_open(void *zctx, const char *engine_keys, const char *operator_keys, hf_ms_t now,
            hf_err_t *err)
{
    assert(zctx);
    hf_err_t rc = HF_EINVAL;
    hf_zap_t *self = NULL;
    struct stat st;
    const char *dirs[2] = {engine_keys, operator_keys};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i] || !*dirs[i] || strlen(dirs[i]) >= sizeof self->dirs[0].path ||
            stat(dirs[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            hf_log_error(S_LOG, "%s key directory \"%s\" is not a directory",
                         i == 0 ? "engine" : "operator", dirs[i] ? dirs[i] : "");
            goto fail;
        }
    }
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    for (int i = 0; i < 2; i++) {
        snprintf(self->dirs[i].path, sizeof self->dirs[i].path, "%s", dirs[i]);
        self->dirs[i].engines = i == 0;
        s_reload(self, &self->dirs[i], true);
        if (!self->dirs[i].keys) {
            hf_log_error(S_LOG, "cannot read key directory %s", dirs[i]);
            goto fail;
        }
    }
    self->checked_at = now;
    rc = HF_EIO;
    self->sock = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    if (!self->sock)
        goto fail;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(self->sock, S_ZAP_ENDPOINT) != 0) {
        hf_log_error(S_LOG, "bind %s: %s", S_ZAP_ENDPOINT, zmq_strerror(errno));
        goto fail;
    }
    if (err)
        *err = HF_OK;
    return self;
fail:
    hf_zap_close(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_zap_close(hf_zap_t **self_p)
{
    assert(self_p);
    hf_zap_t *self = *self_p;
    if (!self)
        return;
    if (self->sock)
        zmq_close(self->sock);
    for (int i = 0; i < 2; i++)
        zhash_destroy(&self->dirs[i].keys);
    free(self);
    *self_p = NULL;
}

void *
hf_zap_socket(hf_zap_t *self)
{
    assert(self);
    return self->sock;
}

void
hf_zap_tick(hf_zap_t *self, hf_ms_t now)
{
    assert(self);
    if (now - self->checked_at >= S_TICK_MS)
        s_check_dirs(self, now);
}

void
hf_zap_stats(const hf_zap_t *self, hf_zap_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
}

/* ---- decisions -------------------------------------------------------------- */

static const s_key_t *
s_find(hf_zap_t *self, int dir, const char *key)
{
    return self->dirs[dir].keys ? zhash_lookup(self->dirs[dir].keys, key) : NULL;
}

bool
hf_zap_engine_trusted(hf_zap_t *self, const char *key, const char *engine)
{
    assert(self);
    const s_key_t *k = key ? s_find(self, 0, key) : NULL;
    return k && engine && !strcmp(k->name, engine);
}

hf_role_t
hf_zap_operator_role(hf_zap_t *self, const char *key)
{
    assert(self);
    const s_key_t *k = key ? s_find(self, 1, key) : NULL;
    return k ? k->role : HF_ROLE_NONE;
}

void
hf_zap_refused(hf_zap_t *self, hf_refuse_t why, const char *peer, const char *who,
               const char *detail, hf_ms_t now)
{
    assert(self && why < HF_REFUSE_COUNT);
    self->stats.refused[why]++;
    if (now - self->log_window_at[why] >= S_LOG_WINDOW_MS || self->log_window_at[why] == 0) {
        if (self->log_suppressed[why])
            hf_log_warn(S_LOG, "refused reason=\"%s\": %" PRIu64 " more not logged",
                        hf_refuse_name(why), self->log_suppressed[why]);
        self->log_window_at[why] = now ? now : 1;
        self->log_lines[why] = 0;
        self->log_suppressed[why] = 0;
    }
    if (self->log_lines[why] >= S_LOG_BURST) {
        self->log_suppressed[why]++;
        return;
    }
    self->log_lines[why]++;
    hf_log_warn(S_LOG, "refused peer=%s reason=\"%s\" %s%s%s", peer && *peer ? peer : "?",
                hf_refuse_name(why), who ? who : "", detail && *detail ? " " : "",
                detail ? detail : "");
}

/* ---- ZAP (RFC 27) ----------------------------------------------------------- */

static void
s_meta_put(uint8_t *buf, size_t cap, size_t *len, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if (nl > 255 || *len + 1 + nl + 4 + vl > cap)
        return;
    uint8_t *p = buf + *len;
    *p++ = (uint8_t)nl;
    memcpy(p, name, nl);
    p += nl;
    *p++ = (uint8_t)(vl >> 24);
    *p++ = (uint8_t)(vl >> 16);
    *p++ = (uint8_t)(vl >> 8);
    *p++ = (uint8_t)vl;
    memcpy(p, value, vl);
    *len += 1 + nl + 4 + vl;
}

static void
s_reply(hf_zap_t *self, const zmq_msg_t *req_id, const char *code, const char *text,
        const char *user, const uint8_t *meta, size_t meta_len)
{
    zmq_send(self->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(self->sock, req_id ? zmq_msg_data((zmq_msg_t *)req_id) : "",
             req_id ? zmq_msg_size((zmq_msg_t *)req_id) : 0, ZMQ_SNDMORE);
    zmq_send(self->sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(self->sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(self->sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(self->sock, meta, meta_len, 0);
}

static void
s_copy_str(const zmq_msg_t *m, char *buf, size_t cap)
{
    size_t n = zmq_msg_size((zmq_msg_t *)m);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, zmq_msg_data((zmq_msg_t *)m), n);
    buf[n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
            buf[i] = '?'; /* it goes into a log line */
}

/* Decide one request; frames: version, request id, domain, address,
 * identity, mechanism, credentials... */
static void
s_decide(hf_zap_t *self, zmq_msg_t *f, int n, hf_ms_t now)
{
    char domain[64] = "", peer[128] = "", mech[16] = "", key[41] = "";
    if (n < 6 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) != 0) {
        s_reply(self, n > 1 ? &f[1] : NULL, "500", "malformed ZAP request", "", NULL, 0);
        return;
    }
    s_copy_str(&f[2], domain, sizeof domain);
    s_copy_str(&f[3], peer, sizeof peer);
    s_copy_str(&f[5], mech, sizeof mech);
    if (strcmp(mech, "CURVE") != 0 || n != 7 || zmq_msg_size(&f[6]) != 32) {
        hf_zap_refused(self, HF_REFUSE_HANDSHAKE, peer, "mechanism=", mech, now);
        s_reply(self, &f[1], "400", "CURVE required", "", NULL, 0);
        return;
    }
    zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
    bool engines = !strcmp(domain, HF_ZAP_DOMAIN_ENGINES);
    bool operators = !strcmp(domain, HF_ZAP_DOMAIN_CONTROL) || !strcmp(domain, HF_ZAP_DOMAIN_FEED);
    const s_key_t *k = s_find(self, engines ? 0 : 1, key);
    const s_key_t *other = s_find(self, engines ? 1 : 0, key);
    if (!k && !other && now - self->checked_at >= S_RECHECK_MS) {
        s_check_dirs(self, now); /* a key added a moment ago is let in now */
        k = s_find(self, engines ? 0 : 1, key);
        other = s_find(self, engines ? 1 : 0, key);
    }
    char who[128];
    snprintf(who, sizeof who, "domain=%s key=%s", domain, key);
    if ((!engines && !operators) || (!k && other)) {
        hf_zap_refused(self, HF_REFUSE_WRONG_ROLE, peer, who,
                       other ? (other->role == HF_ROLE_ENGINE ? "(an engine key)"
                                                              : "(an operator key)")
                             : "(unknown domain)",
                       now);
        s_reply(self, &f[1], "400", "wrong role", "", NULL, 0);
        return;
    }
    if (!k) {
        hf_zap_refused(self, HF_REFUSE_UNKNOWN_KEY, peer, who, NULL, now);
        s_reply(self, &f[1], "400", "unknown key", "", NULL, 0);
        return;
    }
    uint8_t meta[256];
    size_t ml = 0;
    s_meta_put(meta, sizeof meta, &ml, "Role", hf_role_name(k->role));
    s_meta_put(meta, sizeof meta, &ml, "Key", k->key);
    self->stats.accepted++;
    hf_log_info(S_LOG, "accepted peer=%s %s=%s role=%s domain=%s", peer,
                engines ? "engine" : "operator", k->name, hf_role_name(k->role), domain);
    s_reply(self, &f[1], "200", "OK", k->name, meta, ml);
}

void
hf_zap_handle(hf_zap_t *self, hf_ms_t now)
{
    assert(self);
    for (;;) {
        zmq_msg_t f[S_FRAMES_MAX];
        int n = 0;
        bool more = true, overflow = false;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, self->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&m);
                if (n == 0)
                    return; /* nothing pending */
                break;
            }
            more = zmq_msg_more(&m);
            if (n < S_FRAMES_MAX) {
                zmq_msg_init(&f[n]);
                zmq_msg_move(&f[n], &m);
                n++;
            } else {
                overflow = true;
            }
            zmq_msg_close(&m);
        }
        if (overflow)
            s_reply(self, n > 1 ? &f[1] : NULL, "500", "malformed ZAP request", "", NULL, 0);
        else
            s_decide(self, f, n, now);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}
