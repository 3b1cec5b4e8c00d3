/* proto_test_util.h - helpers shared by the proto unit tests.
 *
 * - A msgpack-c sbuffer wrapper for building frames by hand (including
 *   non-canonical and malformed ones our encoder refuses to produce).
 * - A "wrong type in each field" driver: unpack a valid message with
 *   msgpack-c, replace every node of its tree in turn with values of the
 *   wrong type, re-pack, and count how many of those the decoder accepted.
 * - A deterministic PRNG (xorshift64*) for mutation loops.
 */
#ifndef PROTO_TEST_UTIL_H_INCLUDED
#define PROTO_TEST_UTIL_H_INCLUDED

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stdbool.h>

#include "hf_err.h"
#include "hf_record.h"

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pt_pack_t;

static inline void
pt_pack_init(pt_pack_t *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static inline void
pt_pack_destroy(pt_pack_t *p)
{
    msgpack_sbuffer_destroy(&p->sb);
}

static inline const uint8_t *
pt_data(const pt_pack_t *p)
{
    return (const uint8_t *)p->sb.data;
}

static inline void
pt_pack_str(pt_pack_t *p, const char *s)
{
    msgpack_pack_str_with_body(&p->pk, s, strlen(s));
}

typedef hf_err_t (*pt_decode_fn)(const uint8_t *buf, size_t len);

#define PT_MAX_NODES 512

static inline void
pt_collect(msgpack_object *o, msgpack_object **nodes, size_t *n)
{
    if (*n < PT_MAX_NODES)
        nodes[(*n)++] = o;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            pt_collect(&o->via.array.ptr[i], nodes, n);
    }
}

/* Replaces every node of the message in (buf, len) in turn with nil, with
 * a value of another scalar type (a str, or an int where the node is a str)
 * and with an empty map, and decodes each variant. Returns how many variants
 * decoded HF_OK (0 is the expected answer) and prints the first ones. *tried
 * gets the number of variants. */
static inline int
pt_wrong_type_each_field(const uint8_t *buf, size_t len, pt_decode_fn decode, int *tried)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int accepted = 0;
    *tried = 0;
    if (msgpack_unpack_next(&up, (const char *)buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        return -1;
    }
    msgpack_object *nodes[PT_MAX_NODES];
    size_t n = 0;
    pt_collect(&up.data, nodes, &n);
    for (size_t i = 0; i < n; i++) {
        msgpack_object saved = *nodes[i];
        msgpack_object bad[3];
        memset(bad, 0, sizeof bad);
        bad[0].type = MSGPACK_OBJECT_NIL;
        if (saved.type == MSGPACK_OBJECT_STR) {
            bad[1].type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            bad[1].via.u64 = 7;
        } else {
            bad[1].type = MSGPACK_OBJECT_STR;
            bad[1].via.str.ptr = "x";
            bad[1].via.str.size = 1;
        }
        bad[2].type = MSGPACK_OBJECT_MAP;
        for (int b = 0; b < 3; b++) {
            *nodes[i] = bad[b];
            pt_pack_t p;
            pt_pack_init(&p);
            msgpack_pack_object(&p.pk, up.data);
            hf_err_t rc = decode(pt_data(&p), p.sb.size);
            (*tried)++;
            if (rc == HF_OK) {
                if (accepted < 5)
                    fprintf(stderr, "accepted wrong type: node %zu variant %d\n", i, b);
                accepted++;
            }
            pt_pack_destroy(&p);
        }
        *nodes[i] = saved;
    }
    msgpack_unpacked_destroy(&up);
    return accepted;
}

/* A typical record of each kind; every byte not set is zero. */
static inline hf_record_t
pt_make(uint8_t kind, uint64_t seq)
{
    hf_record_t r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.kind = kind;
    r.lane = (uint8_t)hf_record_lane_of(kind);
    r.ts_ns = 1700000000123456789ULL;
    r.mono_ns = 987654321ULL;
    r.run = 42;
    switch (kind) {
    case HF_KIND_SAMPLE:
        r.u.sample.channel = 3;
        r.u.sample.value = 21.4375;
        break;
    case HF_KIND_EVENT:
        r.u.event.type = HF_EV_STEP;
        r.u.event.step = 7;
        strcpy(r.u.event.text, "hold 60 s");
        break;
    case HF_KIND_ALARM:
        r.u.alarm.raised = 1;
        r.u.alarm.severity = HF_ALARM_CRITICAL;
        r.u.alarm.code = 1001;
        strcpy(r.u.alarm.text, "over temperature");
        break;
    case HF_KIND_HW_ERROR:
        r.u.hw_error.cls = 2;
        r.u.hw_error.device = 1;
        r.u.hw_error.channel = 4;
        r.u.hw_error.code = -110;
        strcpy(r.u.hw_error.text, "read timed out");
        break;
    case HF_KIND_GAP:
        r.u.gap.lane = HF_LANE_DATA;
        r.u.gap.first = 100;
        r.u.gap.last = 199;
        r.u.gap.count = 50;
        r.u.gap.reason = 1;
        break;
    case HF_KIND_COMMAND:
        r.u.command.id = 0x1234567890ull;
        r.u.command.verb = HF_CMD_ABORT;
        r.u.command.result = -3;
        strcpy(r.u.command.text, "superseded");
        break;
    default:
        break;
    }
    return r;
}

/* Field by field (struct copies need not preserve padding); doubles and
 * text buffers compare bit for bit, text tails included. */
static inline bool
pt_equal(const hf_record_t *a, const hf_record_t *b)
{
    if (a->seq != b->seq || a->ts_ns != b->ts_ns || a->mono_ns != b->mono_ns ||
        a->run != b->run || a->kind != b->kind || a->lane != b->lane)
        return false;
    switch (a->kind) {
    case HF_KIND_SAMPLE:
        return a->u.sample.channel == b->u.sample.channel &&
               memcmp(&a->u.sample.value, &b->u.sample.value, sizeof(double)) == 0;
    case HF_KIND_EVENT:
        return a->u.event.type == b->u.event.type && a->u.event.step == b->u.event.step &&
               memcmp(a->u.event.text, b->u.event.text, sizeof a->u.event.text) == 0;
    case HF_KIND_ALARM:
        return a->u.alarm.raised == b->u.alarm.raised &&
               a->u.alarm.severity == b->u.alarm.severity && a->u.alarm.code == b->u.alarm.code &&
               memcmp(a->u.alarm.text, b->u.alarm.text, sizeof a->u.alarm.text) == 0;
    case HF_KIND_HW_ERROR:
        return a->u.hw_error.cls == b->u.hw_error.cls &&
               a->u.hw_error.device == b->u.hw_error.device &&
               a->u.hw_error.channel == b->u.hw_error.channel &&
               a->u.hw_error.code == b->u.hw_error.code &&
               memcmp(a->u.hw_error.text, b->u.hw_error.text, sizeof a->u.hw_error.text) == 0;
    case HF_KIND_GAP:
        return a->u.gap.lane == b->u.gap.lane && a->u.gap.first == b->u.gap.first &&
               a->u.gap.last == b->u.gap.last && a->u.gap.count == b->u.gap.count &&
               a->u.gap.reason == b->u.gap.reason;
    case HF_KIND_COMMAND:
        return a->u.command.id == b->u.command.id && a->u.command.verb == b->u.command.verb &&
               a->u.command.result == b->u.command.result &&
               memcmp(a->u.command.text, b->u.command.text, sizeof a->u.command.text) == 0;
    default:
        return false;
    }
}

/* xorshift64*: deterministic, seeded by the test. */
static inline uint64_t
pt_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

#endif
