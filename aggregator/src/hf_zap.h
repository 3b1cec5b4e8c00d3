/* hf_zap.h - the aggregator's ZAP handler: who may connect, and as whom
 * (private to the aggregator; docs/security.md).
 *
 * libzmq asks a ZAP handler (RFC 27, a REP socket bound on
 * inproc://zeromq.zap.01 in the socket's context) about every CURVE
 * handshake on a socket that has a ZAP domain. This object is that
 * handler. It trusts two directories of public certificates (czmq zcert
 * files): engine keys, each bound to one engine id, and operator keys, each
 * with a role (operator: query and command; reader: query only). It
 * answers 200 with User-Id (the engine id or operator name) and metadata
 * ("Role", "Key": the client's public key, z85) or 400 with the reason, and
 * logs every refusal with the peer's address.
 *
 * Domains: HF_ZAP_DOMAIN_ENGINES admits engine keys only; CONTROL and FEED
 * admit operator and reader keys only. A key of the other kind is refused
 * as "wrong role"; a key in neither directory as "unknown key".
 *
 * The directories are read again when they change (checked at most every
 * second from hf_zap_tick, and at once before an unknown key is refused,
 * at most every 20 ms), so adding or removing a key takes effect without a
 * restart. A removed key also stops existing connections: the router asks
 * hf_zap_engine_trusted / hf_zap_operator_role for every message.
 *
 * Invariants: key maps are bounded (HF_ZAP_MAX_KEYS per directory; further
 * files are ignored with a warning); a directory that cannot be read keeps
 * the keys last loaded from it (logged), so a transient error never locks
 * every peer out, and an empty directory trusts nobody.
 *
 * Thread-safety: one thread (the aggregator's loop) owns the object.
 */
#ifndef HF_ZAP_H_INCLUDED
#define HF_ZAP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_time.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_ZAP_DOMAIN_ENGINES "holdfast-engines"
#define HF_ZAP_DOMAIN_CONTROL "holdfast-control"
#define HF_ZAP_DOMAIN_FEED "holdfast-feed"
#define HF_ZAP_MAX_KEYS 4096 /* public keys per directory                 */
#define HF_ZAP_NAME_MAX 64   /* bytes of an operator name / engine id     */

typedef enum {
    HF_ROLE_NONE = 0,
    HF_ROLE_ENGINE = 1,   /* send records, answer commands              */
    HF_ROLE_OPERATOR = 2, /* query and command                          */
    HF_ROLE_READER = 3,   /* query only                                 */
} hf_role_t;

/* "engine", "operator", "reader", "none". */
const char *hf_role_name(hf_role_t role);
/* "operator" / "reader" -> HF_OK; else HF_EINVAL. */
hf_err_t hf_role_parse(const char *s, hf_role_t *out);

typedef enum {
    HF_REFUSE_UNKNOWN_KEY = 0, /* the key is in neither directory          */
    HF_REFUSE_WRONG_ROLE = 1,  /* an engine key on control, a reader's command ... */
    HF_REFUSE_NOT_BOUND = 2,   /* the routing id is not the key's engine id */
    HF_REFUSE_HANDSHAKE = 3,   /* handshake failed (not CURVE, bad keys)    */
    HF_REFUSE_COUNT = 4
} hf_refuse_t;

/* "unknown key", "wrong role", "id not bound to this key", "handshake". */
const char *hf_refuse_name(hf_refuse_t why);

typedef struct {
    uint64_t accepted;                 /* handshakes admitted                  */
    uint64_t refused[HF_REFUSE_COUNT]; /* refusals by reason                   */
    uint32_t engine_keys;              /* keys loaded now                      */
    uint32_t operator_keys;
    uint64_t reloads;                  /* times a directory was read again     */
} hf_zap_stats_t;

typedef struct hf_zap_s hf_zap_t;

/* Bind the handler in zctx (before any socket with a ZAP domain binds) and
 * load both directories (each must exist and be readable; they may be
 * empty). NULL with *err: HF_EINVAL (missing directory), HF_EIO (bind). */
hf_zap_t *hf_zap_open(void *zctx, const char *engine_keys, const char *operator_keys,
                      hf_ms_t now, hf_err_t *err);
/* The REP socket, for the owner's zmq_poll; borrowed. */
void *hf_zap_socket(hf_zap_t *self);
/* Answer every pending ZAP request (non-blocking). */
void hf_zap_handle(hf_zap_t *self, hf_ms_t now);
/* Re-read a directory that changed; call about every second. */
void hf_zap_tick(hf_zap_t *self, hf_ms_t now);
/* Per message: is key (z85) still an engine key bound to engine? */
bool hf_zap_engine_trusted(hf_zap_t *self, const char *key, const char *engine);
/* Per message: the role key (z85) holds now, HF_ROLE_NONE if revoked. */
hf_role_t hf_zap_operator_role(hf_zap_t *self, const char *key);
/* A refusal decided by the router (not bound, wrong role): count and log
 * it (rate-limited) with the peer's address. */
void hf_zap_refused(hf_zap_t *self, hf_refuse_t why, const char *peer, const char *who,
                    const char *detail, hf_ms_t now);
void hf_zap_stats(const hf_zap_t *self, hf_zap_stats_t *out);
/* NULL-safe; sets *self_p to NULL. */
void hf_zap_close(hf_zap_t **self_p);

#ifdef __cplusplus
}
#endif
#endif
