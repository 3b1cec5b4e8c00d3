/* hf_proto.c - the wire codec: records, frames and the BATCH writer.
 *
 * Purpose: encode records and frames as standard msgpack into caller
 * buffers, and decode them from untrusted bytes. docs/protocol.md is the
 * normative layout; this file must agree with it field for field.
 *
 * Design notes:
 * - Encoding uses msgpack-c's msgpack_packer, which always picks the
 *   smallest integer form, with a write callback into the caller's fixed
 *   buffer. The callback refuses (and latches "full") as soon as a write
 *   would pass cap, so encoding is bounded and never allocates. The packer
 *   is a local whose callback is a known static function, so the compiler
 *   inlines the whole chain.
 * - Decoding uses our own cursor (hf_mpread.h), not msgpack_unpack: no
 *   allocation, every count and length checked against the bytes left.
 * - Layouts are fixed-arity arrays: each record kind and each frame type has
 *   exactly one element count, so a count mismatch is a protocol error
 *   rather than something to guess around. The one exception is HELLO,
 *   which may carry extra trailing elements (skipped, depth-limited): HELLO
 *   is the only frame exchanged before a version is agreed, so later
 *   versions may only append to it.
 * - A sample's value is written as float32 when that is exact (same double
 *   after the round trip, NaN excluded so its payload survives), else as
 *   float64: 4 bytes saved on a ~40-byte record, decoders accept both.
 * - Encoders validate their input (HF_EINVAL) with the same rules the
 *   decoder enforces (HF_EPROTO), so anything we encode decodes, and
 *   anything we decode re-encodes.
 *
 * Invariants:
 * - Nothing is read at or past buf + len; nothing is written at or past
 *   buf + cap.
 * - A BATCH writer's buf[0..len) is always a complete BATCH frame once its
 *   count is patched: a failed add leaves len and count unchanged.
 * - Decoders return HF_OK or HF_EPROTO only; *out is unspecified on error.
 */
#include <assert.h>
#include <float.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "hf_mpread.h"
#include "hf_proto.h"

/* Deepest nesting accepted in the elements a later version may append to
 * HELLO; enough for a small map of lists. */
#define S_HELLO_EXT_DEPTH 4

/* Element counts of each layout; see docs/protocol.md. */
#define S_RECORD_HEAD 5 /* seq, kind, ts_ns, mono_ns, run */
static const uint8_t s_record_fields[] = {
    [HF_KIND_SAMPLE] = S_RECORD_HEAD + 2,   /* channel, value                       */
    [HF_KIND_EVENT] = S_RECORD_HEAD + 3,    /* type, step, text                     */
    [HF_KIND_ALARM] = S_RECORD_HEAD + 4,    /* raised, severity, code, text         */
    [HF_KIND_HW_ERROR] = S_RECORD_HEAD + 5, /* cls, device, channel, code, text     */
    [HF_KIND_GAP] = S_RECORD_HEAD + 5,      /* lane, first, last, count, reason     */
    [HF_KIND_COMMAND] = S_RECORD_HEAD + 4,  /* id, verb, result, text               */
};
#define S_KIND_MAX HF_KIND_COMMAND
_Static_assert(S_KIND_MAX == HF_KIND_MAX, "every kind has a layout");
#define S_RECORD_FIELDS_MIN (S_RECORD_HEAD + 2)
#define S_RECORD_FIELDS_MAX (S_RECORD_HEAD + 5)

#define S_HELLO_FIELDS 9
#define S_WELCOME_FIELDS 5
#define S_BATCH_FIELDS 4
#define S_ACK_FIELDS 4
#define S_PING_FIELDS 3
#define S_STATUS_FIELDS 15
#define S_COMMAND_FIELDS 7

/* BATCH header as the writer lays it out: fixarray(4), version, type, lane,
 * then an array32 marker and its 4-byte big-endian count. */
#define S_BATCH_HDR 9
#define S_BATCH_COUNT_AT 5
_Static_assert(HF_PROTO_VERSION <= 0x7f, "BATCH header writes the version as a positive fixint");
_Static_assert(HF_LANE_COUNT <= 0x7f, "BATCH header writes the lane as a positive fixint");
_Static_assert(HF_PROTO_MAX_BATCH <= UINT32_MAX, "batch count travels in an array32");
_Static_assert(HF_PROTO_MAX_RECORD * (size_t)HF_PROTO_MAX_BATCH + S_BATCH_HDR
                   <= 2 * (size_t)HF_PROTO_MAX_FRAME,
               "limits are in proportion");

/* ---- bounded output ----------------------------------------------------- */

typedef struct {
    uint8_t *buf; /* borrowed                                             */
    size_t cap;   /* bytes                                                */
    size_t len;   /* bytes written                                        */
    bool full;    /* a write did not fit; latched                         */
} s_out_t;

static int
s_out_write(void *data, const char *src, size_t n)
{
    s_out_t *o = data;
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return -1;
    }
    memcpy(o->buf + o->len, src, n);
    o->len += n;
    return 0;
}

static void
s_out_init(s_out_t *o, msgpack_packer *pk, uint8_t *buf, size_t cap)
{
    o->buf = buf;
    o->cap = buf ? cap : 0;
    o->len = 0;
    o->full = false;
    msgpack_packer_init(pk, o, s_out_write);
}

static hf_err_t
s_out_finish(const s_out_t *o, size_t *len)
{
    if (o->full)
        return HF_EFULL;
    *len = o->len;
    return HF_OK;
}

/* ---- shared checks ------------------------------------------------------ */

/* Length of a record's text, or SIZE_MAX if it is not NUL-terminated within
 * HF_TEXT_MAX bytes. */
static size_t
s_text_len(const char *text)
{
    size_t n = strnlen(text, HF_TEXT_MAX + 1);
    return n > HF_TEXT_MAX ? SIZE_MAX : n;
}

/* A gap covers first..last inclusive and drops at most that many records. */
static bool
s_gap_valid(uint8_t lane, uint64_t first, uint64_t last, uint64_t count)
{
    if (lane >= HF_LANE_COUNT || first > last)
        return false;
    uint64_t span_minus_1 = last - first; /* span may be 2^64: compare count - 1 */
    return count == 0 || count - 1 <= span_minus_1;
}

static hf_err_t
s_record_check(const hf_record_t *r)
{
    if (r->kind < 1 || r->kind > S_KIND_MAX || r->lane != hf_record_lane_of(r->kind))
        return HF_EINVAL;
    switch (r->kind) {
    case HF_KIND_EVENT:
        if (r->u.event.type < 1 || r->u.event.type > HF_EV_MAX ||
            s_text_len(r->u.event.text) == SIZE_MAX)
            return HF_EINVAL;
        break;
    case HF_KIND_ALARM:
        if (r->u.alarm.raised > 1 || r->u.alarm.severity > HF_ALARM_CRITICAL ||
            s_text_len(r->u.alarm.text) == SIZE_MAX)
            return HF_EINVAL;
        break;
    case HF_KIND_HW_ERROR:
        if (s_text_len(r->u.hw_error.text) == SIZE_MAX)
            return HF_EINVAL;
        break;
    case HF_KIND_GAP:
        if (!s_gap_valid(r->u.gap.lane, r->u.gap.first, r->u.gap.last, r->u.gap.count))
            return HF_EINVAL;
        break;
    case HF_KIND_COMMAND:
        if (r->u.command.verb < 1 || r->u.command.verb > HF_CMD_MAX ||
            s_text_len(r->u.command.text) == SIZE_MAX)
            return HF_EINVAL;
        break;
    default:
        break;
    }
    return HF_OK;
}

/* ---- record encoding ---------------------------------------------------- */

static void
s_pack_text(msgpack_packer *pk, const char *text)
{
    size_t n = strlen(text); /* bounded: s_record_check ran first */
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, text, n);
}

static void
s_pack_value(msgpack_packer *pk, double v)
{
    /* The range test keeps the double->float conversion defined (C11
     * 6.3.1.5) and sends NaN and the infinities to float64. */
    if (v >= -FLT_MAX && v <= FLT_MAX) {
        float f = (float)v;
        if ((double)f == v) {
            msgpack_pack_float(pk, f);
            return;
        }
    }
    msgpack_pack_double(pk, v);
}

/* Packs a record that passed s_record_check. Errors surface through the
 * output's full flag. */
static void
s_record_pack(msgpack_packer *pk, const hf_record_t *r)
{
    msgpack_pack_array(pk, s_record_fields[r->kind]);
    msgpack_pack_uint64(pk, r->seq);
    msgpack_pack_uint8(pk, r->kind);
    msgpack_pack_uint64(pk, r->ts_ns);
    msgpack_pack_uint64(pk, r->mono_ns);
    msgpack_pack_uint64(pk, r->run);
    switch (r->kind) {
    case HF_KIND_SAMPLE:
        msgpack_pack_uint32(pk, r->u.sample.channel);
        s_pack_value(pk, r->u.sample.value);
        break;
    case HF_KIND_EVENT:
        msgpack_pack_uint8(pk, r->u.event.type);
        msgpack_pack_uint32(pk, r->u.event.step);
        s_pack_text(pk, r->u.event.text);
        break;
    case HF_KIND_ALARM:
        if (r->u.alarm.raised)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        msgpack_pack_uint8(pk, r->u.alarm.severity);
        msgpack_pack_uint32(pk, r->u.alarm.code);
        s_pack_text(pk, r->u.alarm.text);
        break;
    case HF_KIND_HW_ERROR:
        msgpack_pack_uint8(pk, r->u.hw_error.cls);
        msgpack_pack_uint32(pk, r->u.hw_error.device);
        msgpack_pack_uint32(pk, r->u.hw_error.channel);
        msgpack_pack_int32(pk, r->u.hw_error.code);
        s_pack_text(pk, r->u.hw_error.text);
        break;
    case HF_KIND_GAP:
        msgpack_pack_uint8(pk, r->u.gap.lane);
        msgpack_pack_uint64(pk, r->u.gap.first);
        msgpack_pack_uint64(pk, r->u.gap.last);
        msgpack_pack_uint64(pk, r->u.gap.count);
        msgpack_pack_uint8(pk, r->u.gap.reason);
        break;
    case HF_KIND_COMMAND:
        msgpack_pack_uint64(pk, r->u.command.id);
        msgpack_pack_uint8(pk, r->u.command.verb);
        msgpack_pack_int32(pk, r->u.command.result);
        s_pack_text(pk, r->u.command.text);
        break;
    default:
        assert(!"kind checked by s_record_check");
        break;
    }
}

hf_err_t
hf_record_encode(const hf_record_t *r, uint8_t *buf, size_t cap, size_t *len)
{
    assert(r && len);
    hf_err_t rc = s_record_check(r);
    if (rc != HF_OK)
        return rc;
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_record_pack(&pk, r);
    return s_out_finish(&o, len);
}

/* ---- record decoding ---------------------------------------------------- */

/* The readers below return HF_OK (0) or HF_EPROTO, so a run of them is
 * chained with || and fails on the first malformed field. */

static hf_err_t
s_read_u32(hf_mpread_t *rd, uint32_t *v)
{
    uint64_t x;
    if (hf_mpread_uint(rd, &x) != HF_OK || x > UINT32_MAX)
        return HF_EPROTO;
    *v = (uint32_t)x;
    return HF_OK;
}

/* A small unsigned field with an upper bound (inclusive). */
static hf_err_t
s_read_u8(hf_mpread_t *rd, uint8_t *v, uint8_t max)
{
    uint64_t x;
    if (hf_mpread_uint(rd, &x) != HF_OK || x > max)
        return HF_EPROTO;
    *v = (uint8_t)x;
    return HF_OK;
}

static hf_err_t
s_read_u16(hf_mpread_t *rd, uint16_t *v)
{
    uint64_t x;
    if (hf_mpread_uint(rd, &x) != HF_OK || x > UINT16_MAX)
        return HF_EPROTO;
    *v = (uint16_t)x;
    return HF_OK;
}

static hf_err_t
s_read_text(hf_mpread_t *rd, char text[HF_TEXT_MAX + 1])
{
    return hf_mpread_str(rd, text, HF_TEXT_MAX + 1, NULL);
}

static hf_err_t
s_record_read(hf_mpread_t *rd, hf_record_t *out)
{
    uint32_t n;
    uint64_t seq;
    uint8_t kind;
    if (hf_mpread_array(rd, &n) || n < S_RECORD_FIELDS_MIN || n > S_RECORD_FIELDS_MAX ||
        hf_mpread_uint(rd, &seq) || s_read_u8(rd, &kind, S_KIND_MAX) || kind == 0 ||
        n != s_record_fields[kind])
        return HF_EPROTO;
    memset(out, 0, sizeof *out);
    out->seq = seq;
    out->kind = kind;
    out->lane = (uint8_t)hf_record_lane_of(kind);
    if (hf_mpread_uint(rd, &out->ts_ns) || hf_mpread_uint(rd, &out->mono_ns) ||
        hf_mpread_uint(rd, &out->run))
        return HF_EPROTO;
    switch (kind) {
    case HF_KIND_SAMPLE:
        return s_read_u32(rd, &out->u.sample.channel) || hf_mpread_f64(rd, &out->u.sample.value)
                   ? HF_EPROTO
                   : HF_OK;
    case HF_KIND_EVENT:
        return s_read_u8(rd, &out->u.event.type, HF_EV_MAX) || out->u.event.type == 0 ||
                       s_read_u32(rd, &out->u.event.step) || s_read_text(rd, out->u.event.text)
                   ? HF_EPROTO
                   : HF_OK;
    case HF_KIND_ALARM: {
        bool raised;
        if (hf_mpread_bool(rd, &raised) ||
            s_read_u8(rd, &out->u.alarm.severity, HF_ALARM_CRITICAL) ||
            s_read_u32(rd, &out->u.alarm.code) || s_read_text(rd, out->u.alarm.text))
            return HF_EPROTO;
        out->u.alarm.raised = raised;
        return HF_OK;
    }
    case HF_KIND_HW_ERROR: {
        int64_t code;
        if (s_read_u8(rd, &out->u.hw_error.cls, UINT8_MAX) ||
            s_read_u32(rd, &out->u.hw_error.device) || s_read_u32(rd, &out->u.hw_error.channel) ||
            hf_mpread_int(rd, &code) || code < INT32_MIN || code > INT32_MAX ||
            s_read_text(rd, out->u.hw_error.text))
            return HF_EPROTO;
        out->u.hw_error.code = (int32_t)code;
        return HF_OK;
    }
    case HF_KIND_GAP:
        if (s_read_u8(rd, &out->u.gap.lane, HF_LANE_COUNT - 1) ||
            hf_mpread_uint(rd, &out->u.gap.first) || hf_mpread_uint(rd, &out->u.gap.last) ||
            hf_mpread_uint(rd, &out->u.gap.count) ||
            s_read_u8(rd, &out->u.gap.reason, UINT8_MAX))
            return HF_EPROTO;
        return s_gap_valid(out->u.gap.lane, out->u.gap.first, out->u.gap.last, out->u.gap.count)
                   ? HF_OK
                   : HF_EPROTO;
    case HF_KIND_COMMAND: {
        int64_t result;
        if (hf_mpread_uint(rd, &out->u.command.id) ||
            s_read_u8(rd, &out->u.command.verb, HF_CMD_MAX) || out->u.command.verb == 0 ||
            hf_mpread_int(rd, &result) || result < INT32_MIN || result > INT32_MAX ||
            s_read_text(rd, out->u.command.text))
            return HF_EPROTO;
        out->u.command.result = (int32_t)result;
        return HF_OK;
    }
    default:
        return HF_EPROTO;
    }
}

hf_err_t
hf_record_decode(const uint8_t *buf, size_t len, hf_record_t *out, size_t *used)
{
    assert(out && used);
    assert(buf || len == 0);
    hf_mpread_t rd;
    hf_mpread_init(&rd, buf, buf ? len : 0);
    if (s_record_read(&rd, out) != HF_OK)
        return HF_EPROTO;
    *used = len - hf_mpread_left(&rd);
    return HF_OK;
}

/* ---- frame encoding ----------------------------------------------------- */

const char *
hf_frame_name(uint8_t type)
{
    switch (type) {
    case HF_FRAME_HELLO:
        return "HELLO";
    case HF_FRAME_WELCOME:
        return "WELCOME";
    case HF_FRAME_BATCH:
        return "BATCH";
    case HF_FRAME_ACK:
        return "ACK";
    case HF_FRAME_PING:
        return "PING";
    case HF_FRAME_PONG:
        return "PONG";
    case HF_FRAME_STATUS:
        return "STATUS";
    case HF_FRAME_BYE:
        return "BYE";
    case HF_FRAME_COMMAND:
        return "COMMAND";
    default:
        return "?";
    }
}

static void
s_pack_head(msgpack_packer *pk, size_t fields, uint8_t type)
{
    msgpack_pack_array(pk, fields);
    msgpack_pack_uint16(pk, HF_PROTO_VERSION);
    msgpack_pack_uint8(pk, type);
}

static void
s_pack_lanes(msgpack_packer *pk, const uint64_t v[HF_LANE_COUNT])
{
    msgpack_pack_array(pk, HF_LANE_COUNT);
    for (int i = 0; i < HF_LANE_COUNT; i++)
        msgpack_pack_uint64(pk, v[i]);
}

static bool
s_version_known(uint64_t v)
{
    return v >= HF_PROTO_VERSION_MIN && v <= HF_PROTO_VERSION;
}

hf_err_t
hf_frame_encode_hello(const hf_hello_t *h, uint8_t *buf, size_t cap, size_t *len)
{
    assert(h && len);
    size_t idn = strnlen(h->engine, sizeof h->engine);
    if (idn == sizeof h->engine || !hf_engine_id_valid(h->engine) || h->epoch == 0 ||
        h->ver_min == 0 || h->ver_min > h->ver_max)
        return HF_EINVAL;
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_HELLO_FIELDS, HF_FRAME_HELLO);
    msgpack_pack_str(&pk, idn);
    msgpack_pack_str_body(&pk, h->engine, idn);
    msgpack_pack_uint64(&pk, h->epoch);
    msgpack_pack_uint16(&pk, h->ver_min);
    msgpack_pack_uint16(&pk, h->ver_max);
    s_pack_lanes(&pk, h->last_seq);
    msgpack_pack_uint64(&pk, h->run);
    msgpack_pack_uint8(&pk, h->run_state);
    return s_out_finish(&o, len);
}

hf_err_t
hf_frame_encode_welcome(const hf_welcome_t *w, uint8_t *buf, size_t cap, size_t *len)
{
    assert(w && len);
    if (!s_version_known(w->version) || w->epoch == 0)
        return HF_EINVAL;
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_WELCOME_FIELDS, HF_FRAME_WELCOME);
    msgpack_pack_uint16(&pk, w->version);
    msgpack_pack_uint64(&pk, w->epoch);
    s_pack_lanes(&pk, w->acked);
    return s_out_finish(&o, len);
}

hf_err_t
hf_frame_encode_ack(const hf_ack_t *a, uint8_t *buf, size_t cap, size_t *len)
{
    assert(a && len);
    if (a->lane >= HF_LANE_COUNT)
        return HF_EINVAL;
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_ACK_FIELDS, HF_FRAME_ACK);
    msgpack_pack_uint8(&pk, a->lane);
    msgpack_pack_uint64(&pk, a->seq);
    return s_out_finish(&o, len);
}

static hf_err_t
s_encode_ping(uint8_t type, const hf_ping_t *p, uint8_t *buf, size_t cap, size_t *len)
{
    assert(p && len);
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_PING_FIELDS, type);
    msgpack_pack_uint64(&pk, p->nonce);
    return s_out_finish(&o, len);
}

hf_err_t
hf_frame_encode_ping(const hf_ping_t *p, uint8_t *buf, size_t cap, size_t *len)
{
    return s_encode_ping(HF_FRAME_PING, p, buf, cap, len);
}

hf_err_t
hf_frame_encode_pong(const hf_ping_t *p, uint8_t *buf, size_t cap, size_t *len)
{
    return s_encode_ping(HF_FRAME_PONG, p, buf, cap, len);
}

hf_err_t
hf_frame_encode_command(const hf_command_t *c, uint8_t *buf, size_t cap, size_t *len)
{
    assert(c && len);
    size_t namen = strnlen(c->name, sizeof c->name);
    if (c->id == 0 || c->verb < 1 || c->verb > HF_CMD_MAX || namen == sizeof c->name ||
        c->body_len > HF_COMMAND_BODY_MAX || (c->body_len && !c->body))
        return HF_EINVAL;
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_COMMAND_FIELDS, HF_FRAME_COMMAND);
    msgpack_pack_uint64(&pk, c->id);
    msgpack_pack_uint8(&pk, c->verb);
    msgpack_pack_str(&pk, namen);
    msgpack_pack_str_body(&pk, c->name, namen);
    msgpack_pack_double(&pk, c->value);
    if (c->body) {
        msgpack_pack_str(&pk, c->body_len);
        msgpack_pack_str_body(&pk, c->body, c->body_len);
    } else {
        msgpack_pack_nil(&pk);
    }
    return s_out_finish(&o, len);
}

static hf_err_t
s_decode_command(hf_mpread_t *rd, uint32_t n, hf_command_t *c)
{
    if (n != S_COMMAND_FIELDS || hf_mpread_uint(rd, &c->id) || c->id == 0 ||
        s_read_u8(rd, &c->verb, HF_CMD_MAX) || c->verb == 0 ||
        hf_mpread_str(rd, c->name, sizeof c->name, NULL) || hf_mpread_f64(rd, &c->value))
        return HF_EPROTO;
    if (hf_mpread_nil(rd) == HF_OK)
        return HF_OK; /* no body */
    if (hf_mpread_str_ref(rd, &c->body, &c->body_len) || c->body_len > HF_COMMAND_BODY_MAX)
        return HF_EPROTO;
    return HF_OK;
}

hf_err_t
hf_frame_encode_bye(uint8_t *buf, size_t cap, size_t *len)
{
    assert(len);
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, 2, HF_FRAME_BYE);
    return s_out_finish(&o, len);
}

hf_err_t
hf_frame_encode_status(const hf_status_t *st, uint8_t *buf, size_t cap, size_t *len)
{
    assert(st && len);
    s_out_t o;
    msgpack_packer pk;
    s_out_init(&o, &pk, buf, cap);
    s_pack_head(&pk, S_STATUS_FIELDS, HF_FRAME_STATUS);
    const uint64_t v[] = {st->pending[0],       st->pending[1], st->oldest_age_ms[0],
                          st->oldest_age_ms[1], st->drain_per_s, st->eta_ms,
                          st->dropped,          st->spool_bytes, st->spool_limit,
                          st->samples,          st->late,        st->missed,
                          0};
    _Static_assert(sizeof v / sizeof v[0] == S_STATUS_FIELDS - 2, "STATUS field count");
    for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++)
        msgpack_pack_uint64(&pk, v[i]);
    msgpack_pack_nil(&pk); /* reserved for a later version */
    return s_out_finish(&o, len);
}

/* ---- BATCH writer ------------------------------------------------------- */

static bool
s_batch_begun(const hf_batch_writer_t *w)
{
    return w->buf && w->len >= S_BATCH_HDR && w->count_at == S_BATCH_COUNT_AT;
}

hf_err_t
hf_batch_begin(hf_batch_writer_t *w, uint8_t lane, uint8_t *buf, size_t cap)
{
    assert(w);
    memset(w, 0, sizeof *w);
    if (!buf || lane >= HF_LANE_COUNT)
        return HF_EINVAL;
    if (cap < S_BATCH_HDR)
        return HF_EFULL;
    if (cap > HF_PROTO_MAX_FRAME) /* the decoder refuses anything larger */
        cap = HF_PROTO_MAX_FRAME;
    buf[0] = 0x90 | S_BATCH_FIELDS;
    buf[1] = HF_PROTO_VERSION;
    buf[2] = HF_FRAME_BATCH;
    buf[3] = lane;
    buf[4] = 0xdd; /* array32: the count is patched in by hf_batch_finish */
    memset(buf + S_BATCH_COUNT_AT, 0, 4);
    w->buf = buf;
    w->cap = cap;
    w->len = S_BATCH_HDR;
    w->count_at = S_BATCH_COUNT_AT;
    w->lane = lane;
    return HF_OK;
}

hf_err_t
hf_batch_add(hf_batch_writer_t *w, const hf_record_t *r)
{
    assert(w && r);
    if (!s_batch_begun(w))
        return HF_ESTATE;
    if (r->lane != w->lane || (w->count > 0 && r->seq <= w->last_seq))
        return HF_EINVAL;
    if (w->count >= HF_PROTO_MAX_BATCH)
        return HF_EFULL;
    size_t n;
    hf_err_t rc = hf_record_encode(r, w->buf + w->len, w->cap - w->len, &n);
    if (rc != HF_OK)
        return rc;
    w->len += n;
    w->count++;
    w->last_seq = r->seq;
    return HF_OK;
}

hf_err_t
hf_batch_add_encoded(hf_batch_writer_t *w, uint64_t seq, const uint8_t *rec, size_t n)
{
    assert(w);
    if (!s_batch_begun(w))
        return HF_ESTATE;
    if (!rec || n == 0 || n > HF_PROTO_MAX_RECORD)
        return HF_EINVAL;
    if (w->count >= HF_PROTO_MAX_BATCH || n > w->cap - w->len)
        return HF_EFULL;
    memcpy(w->buf + w->len, rec, n);
    w->len += n;
    w->count++;
    w->last_seq = seq;
    return HF_OK;
}

hf_err_t
hf_batch_finish(hf_batch_writer_t *w, size_t *len)
{
    assert(w && len);
    if (!s_batch_begun(w))
        return HF_ESTATE;
    uint8_t *c = w->buf + w->count_at;
    c[0] = (uint8_t)(w->count >> 24);
    c[1] = (uint8_t)(w->count >> 16);
    c[2] = (uint8_t)(w->count >> 8);
    c[3] = (uint8_t)w->count;
    *len = w->len;
    return HF_OK;
}

/* ---- frame decoding ----------------------------------------------------- */

static hf_err_t
s_read_lanes(hf_mpread_t *rd, uint64_t v[HF_LANE_COUNT])
{
    uint32_t n;
    if (hf_mpread_array(rd, &n) || n != HF_LANE_COUNT)
        return HF_EPROTO;
    for (int i = 0; i < HF_LANE_COUNT; i++) {
        if (hf_mpread_uint(rd, &v[i]))
            return HF_EPROTO;
    }
    return HF_OK;
}

static hf_err_t
s_decode_hello(hf_mpread_t *rd, uint32_t n, hf_hello_t *h)
{
    if (n < S_HELLO_FIELDS ||
        hf_mpread_str(rd, h->engine, sizeof h->engine, NULL) || !hf_engine_id_valid(h->engine) ||
        hf_mpread_uint(rd, &h->epoch) || h->epoch == 0 || s_read_u16(rd, &h->ver_min) ||
        s_read_u16(rd, &h->ver_max) || h->ver_min == 0 || h->ver_min > h->ver_max ||
        s_read_lanes(rd, h->last_seq) || hf_mpread_uint(rd, &h->run) ||
        s_read_u8(rd, &h->run_state, UINT8_MAX))
        return HF_EPROTO;
    /* Elements a later version appended: n is bounded by the input size. */
    for (uint32_t i = S_HELLO_FIELDS; i < n; i++) {
        if (hf_mpread_skip(rd, S_HELLO_EXT_DEPTH))
            return HF_EPROTO;
    }
    return HF_OK;
}

static hf_err_t
s_decode_welcome(hf_mpread_t *rd, uint32_t n, hf_welcome_t *w)
{
    if (n != S_WELCOME_FIELDS || s_read_u16(rd, &w->version) ||
        !s_version_known(w->version) || hf_mpread_uint(rd, &w->epoch) || w->epoch == 0 ||
        s_read_lanes(rd, w->acked))
        return HF_EPROTO;
    return HF_OK;
}

static hf_err_t
s_decode_batch(hf_mpread_t *rd, uint32_t n, hf_batch_hdr_t *b, hf_record_t *recs, size_t cap)
{
    uint32_t count;
    if (n != S_BATCH_FIELDS || s_read_u8(rd, &b->lane, HF_LANE_COUNT - 1) ||
        hf_mpread_array(rd, &count) || count > HF_PROTO_MAX_BATCH || count > cap)
        return HF_EPROTO;
    for (uint32_t i = 0; i < count; i++) {
        hf_record_t *r = &recs[i];
        if (s_record_read(rd, r) || r->lane != b->lane || (i > 0 && r->seq <= recs[i - 1].seq))
            return HF_EPROTO;
    }
    b->count = count;
    return HF_OK;
}

hf_err_t
hf_frame_decode(const uint8_t *buf, size_t len, hf_frame_t *out, hf_record_t *recs, size_t cap)
{
    assert(out);
    assert(buf || len == 0);
    assert(recs || cap == 0);
    if (!buf || len > HF_PROTO_MAX_FRAME)
        return HF_EPROTO;
    memset(out, 0, sizeof *out);
    hf_mpread_t rd;
    hf_mpread_init(&rd, buf, len);
    uint32_t n;
    uint64_t type;
    if (hf_mpread_array(&rd, &n) || n < 2 || s_read_u16(&rd, &out->version) ||
        hf_mpread_uint(&rd, &type) || type > UINT8_MAX)
        return HF_EPROTO;
    out->type = (uint8_t)type;
    if (type != HF_FRAME_HELLO && !s_version_known(out->version))
        return HF_EPROTO;
    hf_err_t rc;
    switch (type) {
    case HF_FRAME_HELLO:
        rc = s_decode_hello(&rd, n, &out->u.hello);
        break;
    case HF_FRAME_WELCOME:
        rc = s_decode_welcome(&rd, n, &out->u.welcome);
        break;
    case HF_FRAME_BATCH:
        rc = s_decode_batch(&rd, n, &out->u.batch, recs, cap);
        break;
    case HF_FRAME_ACK:
        rc = n == S_ACK_FIELDS && !s_read_u8(&rd, &out->u.ack.lane, HF_LANE_COUNT - 1) &&
                     !hf_mpread_uint(&rd, &out->u.ack.seq)
                 ? HF_OK
                 : HF_EPROTO;
        break;
    case HF_FRAME_PING:
    case HF_FRAME_PONG:
        rc = n == S_PING_FIELDS && !hf_mpread_uint(&rd, &out->u.ping.nonce) ? HF_OK : HF_EPROTO;
        break;
    case HF_FRAME_BYE:
        rc = n == 2 ? HF_OK : HF_EPROTO;
        break;
    case HF_FRAME_COMMAND:
        rc = s_decode_command(&rd, n, &out->u.command);
        break;
    case HF_FRAME_STATUS: {
        hf_status_t *st = &out->u.status;
        uint64_t *v[] = {&st->pending[0],       &st->pending[1], &st->oldest_age_ms[0],
                         &st->oldest_age_ms[1], &st->drain_per_s, &st->eta_ms,
                         &st->dropped,          &st->spool_bytes, &st->spool_limit,
                         &st->samples,          &st->late,        &st->missed};
        rc = n == S_STATUS_FIELDS ? HF_OK : HF_EPROTO;
        for (size_t i = 0; rc == HF_OK && i < sizeof v / sizeof v[0]; i++)
            rc = hf_mpread_uint(&rd, v[i]) ? HF_EPROTO : HF_OK;
        if (rc == HF_OK && hf_mpread_nil(&rd))
            rc = HF_EPROTO;
        break;
    }
    default:
        rc = HF_EPROTO;
        break;
    }
    if (rc == HF_OK && hf_mpread_left(&rd) != 0)
        rc = HF_EPROTO; /* trailing bytes */
    return rc;
}
