/* hf_control.h - the aggregator's control-request handler (private).
 *
 * The shell receives one request (one ZeroMQ frame) on the control
 * endpoint, calls hf_control_handle() with a snapshot of its live table,
 * and sends the reply bytes back as one frame. The encoding (msgpack maps)
 * is specified in docs/cli.md, section "control protocol".
 *
 * The handler is pure apart from store reads: no clock, no sockets, no
 * globals. Malformed input of any kind (garbage, wrong types, unknown
 * command, oversized request) produces a well-formed error reply.
 *
 * Thread-safety: call from the thread that owns the store.
 */
#ifndef HF_CONTROL_H_INCLUDED
#define HF_CONTROL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_proto.h"
#include "hf_record.h"
#include "hf_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_CONTROL_VERSION 1             /* "v" of requests and replies         */
#define HF_CONTROL_MAX_REQUEST (64u << 10) /* bytes; larger requests are refused */
#define HF_CONTROL_REPLY_MIN 4096        /* bytes; smallest cap accepted         */

typedef enum {
    HF_AVAIL_UNKNOWN = 0,     /* not seen since the aggregator started */
    HF_AVAIL_AVAILABLE = 1,   /* connected, heartbeating               */
    HF_AVAIL_UNAVAILABLE = 2, /* watchdog expired or disconnected      */
} hf_avail_t;

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1]; /* NUL-terminated                             */
    uint8_t availability;              /* hf_avail_t                                 */
    uint64_t since_ns;                 /* wall clock ns when this availability began */
    char reason[48];                   /* why (e.g. "watchdog", "disconnected")      */
    uint64_t epoch;                    /* engine's current epoch (0 = unknown)       */
    uint64_t connected_ms;             /* time connected in this session, ms         */
    uint8_t has_backlog;               /* the engine sent STATUS on this connection  */
    hf_status_t backlog;               /* its last STATUS                            */
    uint64_t backlog_age_ms;           /* how old that STATUS is, ms                 */
    uint32_t restarts;                 /* restarts of its session (supervision)      */
} hf_live_t;

/* Handle one control request (req[0..len), bytes as received) and write the
 * reply into out (cap bytes; the shell passes 8 MiB). live[0..nlive) is the
 * shell's live table, borrowed for the call (may be NULL when nlive is 0).
 * Returns HF_OK whenever a reply was written to out (*outlen bytes), which
 * includes error replies for bad requests or store trouble. Returns
 * HF_EINVAL (nothing written) only for bad arguments: NULL store/out/outlen
 * or cap < HF_CONTROL_REPLY_MIN. */
HF_EXPORT hf_err_t hf_control_handle(hf_store_t *store, const hf_live_t *live, size_t nlive,
                                     const uint8_t *req, size_t len, uint8_t *out, size_t cap,
                                     size_t *outlen);

/* The security figures "status" reports (docs/security.md). */
typedef struct {
    bool secure;                 /* CURVE (false: --insecure)                 */
    uint32_t engine_keys;        /* keys trusted now                          */
    uint32_t operator_keys;
    uint64_t accepted;           /* handshakes admitted                       */
    uint64_t refused_unknown_key;/* refusals by reason                         */
    uint64_t refused_wrong_role;
    uint64_t refused_not_bound;
    uint64_t refused_handshake;
} hf_control_security_t;

/* The storage figures "status" reports (docs/operations.md). */
typedef struct {
    uint64_t disk_free_bytes;     /* the store's filesystem                   */
    uint64_t disk_size_bytes;
    uint64_t store_live_bytes;    /* pages in use minus the free list         */
    uint64_t store_max_bytes;     /* the store's bound                        */
    uint64_t retained_records;    /* deleted by retention since start         */
    bool disk_low;                /* alarm raised: free space under threshold */
    bool store_high;              /* alarm raised: store near its bound       */
    bool store_full;              /* alarm raised: a commit failed for space;
                                     ingestion paused until one succeeds       */
} hf_control_storage_t;

/* As hf_control_handle; a "status" reply also carries sec and storage (when
 * not NULL) as its "security" and "storage" maps. */
HF_EXPORT hf_err_t hf_control_handle_ex(hf_store_t *store, const hf_live_t *live, size_t nlive,
                                        const hf_control_security_t *sec,
                                        const hf_control_storage_t *storage, const uint8_t *req,
                                        size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* A command request ({"cmd":"command", ...}, docs/cli.md), parsed. */
typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1];
    hf_command_t cmd;      /* id 0 (the shell assigns it); body borrowed from req */
} hf_control_command_t;

/* HF_OK and *out when req is a well-formed command request; HF_ENOTFOUND
 * when it is some other request (hand it to hf_control_handle); else the
 * error, with msg saying why (answer it with hf_control_command_reply). */
HF_EXPORT hf_err_t hf_control_parse_command(const uint8_t *req, size_t len,
                                            hf_control_command_t *out, char *msg,
                                            size_t msgcap);

/* The reply to a command: {"ok":true, "id", "verb", "engine", "by", "text"}
 * or {"ok":false, "err", "code", "msg", "id", "by", ...}; "by" is "engine"
 * when the engine answered, "aggregator" when the aggregator did (refused,
 * superseded, outcome unknown). HF_EFULL if cap is short. */
HF_EXPORT hf_err_t hf_control_command_reply(const char *engine, uint64_t id, uint8_t verb,
                                            hf_err_t result, bool by_engine, const char *text,
                                            uint8_t *out, size_t cap, size_t *outlen);

#ifdef HF_TESTING
/* The fault hook's request ({"cmd":"fault","task":T}, test builds only):
 * HF_OK and the task name in task[cap], or HF_ENOTFOUND. */
HF_EXPORT hf_err_t hf_control_parse_fault(const uint8_t *req, size_t len, char *task,
                                          size_t cap);
#endif

/* Name of an availability value: "unknown", "available", "unavailable". */
HF_EXPORT const char *hf_avail_name(uint8_t availability);

#ifdef __cplusplus
}
#endif
#endif
