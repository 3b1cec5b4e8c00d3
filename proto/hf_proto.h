/* hf_proto.h - the wire codec: msgpack encoding and decoding of records and
 * frames. Pure functions over caller-supplied buffers: no I/O, no clock, no
 * allocation on the decode path.
 *
 * Every frame is a msgpack array whose first two elements are the protocol
 * version and the frame type. docs/protocol.md is the normative layout.
 *
 * Decoding checks every type, length, count and nesting depth against the
 * bytes left and the compile-time limits below; malformed input returns
 * HF_EPROTO (or HF_ECORRUPT for a record whose own checks fail), never
 * asserts, never reads past len. Trailing bytes after a frame are an error.
 */
#ifndef HF_PROTO_H_INCLUDED
#define HF_PROTO_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_PROTO_VERSION 1           /* the version this build speaks      */
#define HF_PROTO_VERSION_MIN 1       /* the oldest it still accepts        */
#define HF_PROTO_MAX_FRAME (8u << 20) /* bytes; larger frames are refused  */
#define HF_PROTO_MAX_BATCH 16384     /* records in one BATCH frame         */
#define HF_PROTO_MAX_RECORD 512      /* bytes of one encoded record        */
#define HF_COMMAND_NAME_MAX 63       /* bytes of a command's name argument  */
#define HF_COMMAND_BODY_MAX (256u << 10) /* bytes of a command's body (method text) */

typedef enum {
    HF_FRAME_HELLO = 1,   /* engine -> aggregator, first on every connection */
    HF_FRAME_WELCOME = 2, /* aggregator -> engine, reply to HELLO; resync    */
    HF_FRAME_BATCH = 3,   /* engine -> aggregator, records of one lane       */
    HF_FRAME_ACK = 4,     /* aggregator -> engine, cumulative per lane       */
    HF_FRAME_PING = 5,    /* either way                                      */
    HF_FRAME_PONG = 6,    /* reply to PING                                   */
    HF_FRAME_STATUS = 7,  /* engine -> aggregator, backlog figures, each heartbeat */
    HF_FRAME_BYE = 8,     /* engine -> aggregator, last frame of a clean shutdown */
    HF_FRAME_COMMAND = 9, /* aggregator -> engine, an operator's command; the
                             outcome returns as a COMMAND record (control lane) */
} hf_frame_type_t;

HF_EXPORT const char *hf_frame_name(uint8_t type); /* "HELLO", ... or "?" */

typedef struct {
    char engine[HF_ENGINE_ID_MAX + 1]; /* NUL-terminated, hf_engine_id_valid  */
    uint64_t epoch;                    /* spool's random log id, never 0    */
    uint16_t ver_min;                  /* protocol versions the engine speaks */
    uint16_t ver_max;
    uint64_t last_seq[HF_LANE_COUNT];  /* engine's last committed seq per lane */
    uint64_t run;                      /* current run id, 0 = none           */
    uint8_t run_state;                 /* engine's run state (engine-defined enum) */
} hf_hello_t;

typedef struct {
    uint16_t version;                 /* chosen protocol version            */
    uint64_t epoch;                   /* echo of the engine's epoch         */
    uint64_t acked[HF_LANE_COUNT];    /* aggregator has everything <= this  */
} hf_welcome_t;

typedef struct {
    uint8_t lane;   /* hf_lane_t                                       */
    uint32_t count; /* records decoded into the caller's array         */
} hf_batch_hdr_t;

typedef struct {
    uint8_t lane;
    uint64_t seq; /* everything <= seq in lane is committed             */
} hf_ack_t;

typedef struct {
    uint64_t nonce; /* echoed by PONG                                  */
} hf_ping_t;

/* The engine's backlog, as it sees it (docs/protocol.md, STATUS). */
typedef struct {
    uint64_t pending[HF_LANE_COUNT];       /* records in the spool, not acked     */
    uint64_t oldest_age_ms[HF_LANE_COUNT]; /* age of the oldest pending record, ms */
    uint64_t drain_per_s;                  /* records acked per second, recently  */
    uint64_t eta_ms;                       /* time left to drain at that rate; 0 = none pending or unknown */
    uint64_t dropped;                      /* samples dropped by the full-spool policy, total */
    uint64_t spool_bytes;                  /* bytes of the spool in use           */
    uint64_t spool_limit;                  /* bytes the spool may grow to         */
    uint64_t samples;                      /* the current run's samples taken     */
    uint64_t late;                         /* of those, late (after their period) */
    uint64_t missed;                       /* grid points with no value           */
} hf_status_t;

/* COMMAND. body points into the decoded buffer (borrowed: valid as long
 * as it); it is not NUL-terminated. */
typedef struct {
    uint64_t id;                          /* > 0, unique per aggregator store  */
    uint8_t verb;                         /* hf_command_verb_t                 */
    char name[HF_COMMAND_NAME_MAX + 1];   /* method (START) or actuator (SET)  */
    double value;                         /* SET: the value                    */
    const char *body;                     /* START: method text, or NULL       */
    uint32_t body_len;                    /* bytes, <= HF_COMMAND_BODY_MAX     */
} hf_command_t;

typedef struct {
    uint8_t type;     /* hf_frame_type_t                                */
    uint16_t version; /* version field of the frame                     */
    union {
        hf_hello_t hello;
        hf_welcome_t welcome;
        hf_batch_hdr_t batch;
        hf_ack_t ack;
        hf_ping_t ping; /* PING and PONG                               */
        hf_status_t status;
        hf_ping_t bye;  /* BYE: nonce unused (0)                        */
        hf_command_t command;
    } u;
} hf_frame_t;

/* ---- records ---------------------------------------------------------- */

/* Encode one record (including its seq) as a msgpack array into buf.
 * HF_EINVAL for an unknown kind or a lane that does not match the kind;
 * HF_EFULL if cap is too small (nothing useful is left in buf). */
HF_EXPORT hf_err_t hf_record_encode(const hf_record_t *r, uint8_t *buf, size_t cap, size_t *len);

/* Decode one record from the start of buf; *used gets the bytes consumed
 * (the rest of buf is not an error here). HF_EPROTO on malformed input. */
HF_EXPORT hf_err_t hf_record_decode(const uint8_t *buf, size_t len, hf_record_t *out,
                                    size_t *used);

/* ---- frames ----------------------------------------------------------- */

HF_EXPORT hf_err_t hf_frame_encode_hello(const hf_hello_t *h, uint8_t *buf, size_t cap,
                                         size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_welcome(const hf_welcome_t *w, uint8_t *buf, size_t cap,
                                           size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_ack(const hf_ack_t *a, uint8_t *buf, size_t cap, size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_ping(const hf_ping_t *p, uint8_t *buf, size_t cap,
                                        size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_pong(const hf_ping_t *p, uint8_t *buf, size_t cap,
                                        size_t *len);

/* HF_EINVAL: id 0, unknown verb, name not NUL-terminated within
 * HF_COMMAND_NAME_MAX, body over HF_COMMAND_BODY_MAX. */
HF_EXPORT hf_err_t hf_frame_encode_command(const hf_command_t *c, uint8_t *buf, size_t cap,
                                           size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_bye(uint8_t *buf, size_t cap, size_t *len);
HF_EXPORT hf_err_t hf_frame_encode_status(const hf_status_t *st, uint8_t *buf, size_t cap,
                                          size_t *len);

/* A BATCH is built incrementally so that records already encoded (for
 * example read from the spool) are copied in verbatim:
 *   hf_batch_writer_t w;
 *   hf_batch_begin(&w, lane, buf, cap);
 *   hf_batch_add_encoded(&w, bytes, n)  or  hf_batch_add(&w, &rec)  ...
 *   hf_batch_finish(&w, &len);
 * Records must be of the batch's lane with strictly increasing seq; the
 * writer checks seq order only in hf_batch_add (encoded bytes are trusted:
 * they came from our own encoder). add returns HF_EFULL when the record
 * does not fit or the batch holds HF_PROTO_MAX_BATCH records; the batch so
 * far stays valid. */
typedef struct {
    uint8_t *buf;       /* borrowed output buffer                        */
    size_t cap;         /* bytes                                         */
    size_t len;         /* bytes written so far                          */
    size_t count_at;    /* offset of the patched array32 count           */
    uint32_t count;     /* records added                                 */
    uint8_t lane;
    uint64_t last_seq;  /* seq of the last record added                  */
} hf_batch_writer_t;

HF_EXPORT hf_err_t hf_batch_begin(hf_batch_writer_t *w, uint8_t lane, uint8_t *buf, size_t cap);
HF_EXPORT hf_err_t hf_batch_add(hf_batch_writer_t *w, const hf_record_t *r);
HF_EXPORT hf_err_t hf_batch_add_encoded(hf_batch_writer_t *w, uint64_t seq, const uint8_t *rec,
                                        size_t n);
HF_EXPORT hf_err_t hf_batch_finish(hf_batch_writer_t *w, size_t *len);

/* Decode any frame. For a BATCH the records are decoded into recs[0..cap)
 * and out->u.batch.count is set; a batch with more than cap records,
 * records of another lane, or seqs not strictly increasing is HF_EPROTO.
 * recs may be NULL when cap is 0 (a BATCH then fails with HF_EPROTO unless
 * empty). A frame whose version is outside [HF_PROTO_VERSION_MIN,
 * HF_PROTO_VERSION] decodes only if it is a HELLO (so that version
 * negotiation can answer it); others return HF_EPROTO. */
HF_EXPORT hf_err_t hf_frame_decode(const uint8_t *buf, size_t len, hf_frame_t *out,
                                   hf_record_t *recs, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
