/* hf_mpread.h - a bounded, allocation-free msgpack reader (private to proto/).
 *
 * Purpose: decode the handful of msgpack types our wire format uses, straight
 * off an untrusted (buf, len), as fast as a hand-written parser can.
 *
 * Design notes:
 * - Why not msgpack_unpack: msgpack-c's object unpacker allocates a zone per
 *   message and sizes arrays/maps from the declared count, so a 5-byte input
 *   claiming 4G elements asks for gigabytes before it finds the data missing.
 *   It also builds a whole object tree per record, which we would then walk
 *   again. This reader is a cursor: each call consumes one value and checks
 *   its declared length or count against the bytes that are left.
 * - Every function returns HF_OK or HF_EPROTO. On HF_EPROTO the cursor may
 *   have advanced past the bad value's marker; the caller abandons the
 *   cursor (decoding is all-or-nothing).
 * - Integers are accepted in any msgpack width (positive fixint, uint8..64,
 *   int8..64, negative fixint); the range check against the destination is
 *   the caller's. Floats are accepted as float32 or float64.
 * - The hot readers (array header, uint, float) are static inline so the
 *   sample path compiles into straight-line code.
 *
 * Invariants:
 * - p <= end at all times; nothing is ever read at or beyond end.
 * - An array header's count is <= the bytes left after it (every element
 *   takes at least one byte), so loops driven by a count are bounded by the
 *   input size.
 * - hf_mpread_skip never recurses and refuses nesting deeper than its limit.
 */
#ifndef HF_MPREAD_H_INCLUDED
#define HF_MPREAD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The deepest container nesting hf_mpread_skip accepts, whatever the caller
 * asks for. Our frames nest three deep; this leaves room for extensions. */
#define HF_MPREAD_MAX_DEPTH 16

typedef struct {
    const uint8_t *p;   /* next unread byte                              */
    const uint8_t *end; /* one past the last byte of the input           */
} hf_mpread_t;

static inline void
hf_mpread_init(hf_mpread_t *r, const uint8_t *buf, size_t len)
{
    r->p = buf;
    r->end = buf + len;
}

/* Bytes not consumed yet. */
static inline size_t
hf_mpread_left(const hf_mpread_t *r)
{
    return (size_t)(r->end - r->p);
}

static inline uint16_t
hf_mpread_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t
hf_mpread_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
hf_mpread_be64(const uint8_t *p)
{
    return (uint64_t)hf_mpread_be32(p) << 32 | hf_mpread_be32(p + 4);
}

/* Reads an array header; *n is the element count, already checked to be
 * <= the bytes left. */
static inline hf_err_t
hf_mpread_array(hf_mpread_t *r, uint32_t *n)
{
    size_t left = hf_mpread_left(r);
    if (left < 1)
        return HF_EPROTO;
    uint8_t m = r->p[0];
    uint32_t count;
    size_t hdr;
    if (m >= 0x90 && m <= 0x9f) {
        count = m & 0x0f;
        hdr = 1;
    } else if (m == 0xdc && left >= 3) {
        count = hf_mpread_be16(r->p + 1);
        hdr = 3;
    } else if (m == 0xdd && left >= 5) {
        count = hf_mpread_be32(r->p + 1);
        hdr = 5;
    } else {
        return HF_EPROTO;
    }
    if (count > left - hdr)
        return HF_EPROTO;
    r->p += hdr;
    *n = count;
    return HF_OK;
}

/* Reads a non-negative integer of any msgpack width. A negative value is
 * HF_EPROTO. */
static inline hf_err_t
hf_mpread_uint(hf_mpread_t *r, uint64_t *v)
{
    size_t left = hf_mpread_left(r);
    if (left < 1)
        return HF_EPROTO;
    uint8_t m = r->p[0];
    if (m <= 0x7f) {
        *v = m;
        r->p += 1;
        return HF_OK;
    }
    uint64_t x;
    size_t size;
    bool is_signed = false;
    switch (m) {
    case 0xcc: size = 1; break;
    case 0xcd: size = 2; break;
    case 0xce: size = 4; break;
    case 0xcf: size = 8; break;
    case 0xd0: size = 1; is_signed = true; break;
    case 0xd1: size = 2; is_signed = true; break;
    case 0xd2: size = 4; is_signed = true; break;
    case 0xd3: size = 8; is_signed = true; break;
    default: return HF_EPROTO;
    }
    if (left - 1 < size)
        return HF_EPROTO;
    const uint8_t *q = r->p + 1;
    switch (size) {
    case 1: x = q[0]; break;
    case 2: x = hf_mpread_be16(q); break;
    case 4: x = hf_mpread_be32(q); break;
    default: x = hf_mpread_be64(q); break;
    }
    /* A signed form is fine as long as the value is not negative: the
     * sign bit of the payload is the top bit of its width. */
    if (is_signed && (x >> (size * 8 - 1)) != 0)
        return HF_EPROTO;
    r->p += 1 + size;
    *v = x;
    return HF_OK;
}

/* Reads a float32 or float64 as a double (float32 widens exactly). */
static inline hf_err_t
hf_mpread_f64(hf_mpread_t *r, double *v)
{
    size_t left = hf_mpread_left(r);
    if (left >= 9 && r->p[0] == 0xcb) {
        uint64_t bits = hf_mpread_be64(r->p + 1);
        memcpy(v, &bits, sizeof *v);
        r->p += 9;
        return HF_OK;
    }
    if (left >= 5 && r->p[0] == 0xca) {
        uint32_t bits = hf_mpread_be32(r->p + 1);
        float f;
        memcpy(&f, &bits, sizeof f);
        *v = (double)f;
        r->p += 5;
        return HF_OK;
    }
    return HF_EPROTO;
}

/* Reads a signed integer of any msgpack width; a uint64 above INT64_MAX is
 * HF_EPROTO. */
hf_err_t hf_mpread_int(hf_mpread_t *r, int64_t *v);

hf_err_t hf_mpread_bool(hf_mpread_t *r, bool *v);
hf_err_t hf_mpread_nil(hf_mpread_t *r);

/* Reads a str (fixstr, str8/16/32) as a borrowed view into the input: valid
 * as long as the input buffer is. Not NUL-terminated. */
hf_err_t hf_mpread_str_ref(hf_mpread_t *r, const char **s, uint32_t *n);

/* Reads a str into dst (cap bytes, cap >= 1) and NUL-terminates it. A str of
 * cap bytes or more, or one holding a NUL byte, is HF_EPROTO: a C string
 * cannot carry it faithfully. *n (optional) gets the length. */
hf_err_t hf_mpread_str(hf_mpread_t *r, char *dst, size_t cap, size_t *n);

/* Reads a bin (bin8/16/32) as a borrowed view into the input. */
hf_err_t hf_mpread_bin(hf_mpread_t *r, const uint8_t **b, uint32_t *n);

/* Skips one complete value of any type, containers included. A container
 * nested deeper than max_depth (capped at HF_MPREAD_MAX_DEPTH) is
 * HF_EPROTO; a scalar has depth 0, [1] depth 1, [[1]] depth 2. */
hf_err_t hf_mpread_skip(hf_mpread_t *r, unsigned max_depth);

#ifdef __cplusplus
}
#endif
#endif
