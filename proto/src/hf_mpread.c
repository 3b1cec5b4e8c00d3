/* hf_mpread.c - the out-of-line parts of the bounded msgpack reader.
 *
 * Design notes: see hf_mpread.h. The readers here are off the sample path
 * (strings, booleans, signed ints, skipping unknown trailing elements), so
 * they are plain functions; the hot ones are inline in the header.
 *
 * Invariants: every length read off the input is compared with the bytes
 * left before the cursor moves; skip keeps an explicit, fixed-size stack of
 * pending element counts instead of recursing.
 */
#include "hf_mpread.h"

hf_err_t
hf_mpread_int(hf_mpread_t *r, int64_t *v)
{
    size_t left = hf_mpread_left(r);
    if (left < 1)
        return HF_EPROTO;
    uint8_t m = r->p[0];
    if (m >= 0xe0) { /* negative fixint */
        *v = (int8_t)m;
        r->p += 1;
        return HF_OK;
    }
    size_t size;
    switch (m) {
    case 0xd0:
        size = 1;
        break;
    case 0xd1:
        size = 2;
        break;
    case 0xd2:
        size = 4;
        break;
    case 0xd3:
        size = 8;
        break;
    default: {
        /* Unsigned forms (positive fixint, uint8..64). */
        uint64_t u;
        if (hf_mpread_uint(r, &u) != HF_OK)
            return HF_EPROTO;
        if (u > (uint64_t)INT64_MAX)
            return HF_EPROTO;
        *v = (int64_t)u;
        return HF_OK;
    }
    }
    if (left - 1 < size)
        return HF_EPROTO;
    const uint8_t *q = r->p + 1;
    switch (size) {
    case 1:
        *v = (int8_t)q[0];
        break;
    case 2:
        *v = (int16_t)hf_mpread_be16(q);
        break;
    case 4:
        *v = (int32_t)hf_mpread_be32(q);
        break;
    default:
        *v = (int64_t)hf_mpread_be64(q);
        break;
    }
    r->p += 1 + size;
    return HF_OK;
}

hf_err_t
hf_mpread_bool(hf_mpread_t *r, bool *v)
{
    if (hf_mpread_left(r) < 1)
        return HF_EPROTO;
    if (r->p[0] == 0xc2)
        *v = false;
    else if (r->p[0] == 0xc3)
        *v = true;
    else
        return HF_EPROTO;
    r->p += 1;
    return HF_OK;
}

hf_err_t
hf_mpread_nil(hf_mpread_t *r)
{
    if (hf_mpread_left(r) < 1 || r->p[0] != 0xc0)
        return HF_EPROTO;
    r->p += 1;
    return HF_OK;
}

/* Reads the header of a str (want_bin false) or bin (true): the payload
 * length, checked against the bytes left. */
static hf_err_t
s_read_raw(hf_mpread_t *r, bool want_bin, const uint8_t **b, uint32_t *n)
{
    size_t left = hf_mpread_left(r);
    if (left < 1)
        return HF_EPROTO;
    uint8_t m = r->p[0];
    uint32_t len;
    size_t hdr;
    if (!want_bin && m >= 0xa0 && m <= 0xbf) {
        len = m & 0x1f;
        hdr = 1;
    } else if (m == (want_bin ? 0xc4 : 0xd9) && left >= 2) {
        len = r->p[1];
        hdr = 2;
    } else if (m == (want_bin ? 0xc5 : 0xda) && left >= 3) {
        len = hf_mpread_be16(r->p + 1);
        hdr = 3;
    } else if (m == (want_bin ? 0xc6 : 0xdb) && left >= 5) {
        len = hf_mpread_be32(r->p + 1);
        hdr = 5;
    } else {
        return HF_EPROTO;
    }
    if (len > left - hdr)
        return HF_EPROTO;
    *b = r->p + hdr;
    *n = len;
    r->p += hdr + len;
    return HF_OK;
}

hf_err_t
hf_mpread_str_ref(hf_mpread_t *r, const char **s, uint32_t *n)
{
    const uint8_t *b;
    if (s_read_raw(r, false, &b, n) != HF_OK)
        return HF_EPROTO;
    *s = (const char *)b;
    return HF_OK;
}

hf_err_t
hf_mpread_str(hf_mpread_t *r, char *dst, size_t cap, size_t *n)
{
    const uint8_t *b;
    uint32_t len;
    if (cap < 1 || s_read_raw(r, false, &b, &len) != HF_OK)
        return HF_EPROTO;
    if (len >= cap || memchr(b, 0, len) != NULL)
        return HF_EPROTO;
    memcpy(dst, b, len);
    dst[len] = '\0';
    if (n)
        *n = len;
    return HF_OK;
}

hf_err_t
hf_mpread_bin(hf_mpread_t *r, const uint8_t **b, uint32_t *n)
{
    return s_read_raw(r, true, b, n);
}

/* Size of the payload that follows marker m for the fixed-size scalar
 * types, or -1 for the variable-length and container types and 0xc1. */
static int
s_fixed_payload(uint8_t m)
{
    if (m <= 0x7f || m >= 0xe0)
        return 0; /* fixints */
    switch (m) {
    case 0xc0: /* nil */
    case 0xc2: /* false */
    case 0xc3: /* true */
        return 0;
    case 0xcc:
    case 0xd0:
        return 1;
    case 0xcd:
    case 0xd1:
        return 2;
    case 0xca:
    case 0xce:
    case 0xd2:
        return 4;
    case 0xcb:
    case 0xcf:
    case 0xd3:
        return 8;
    case 0xd4: /* fixext 1..16: type byte + data */
        return 1 + 1;
    case 0xd5:
        return 1 + 2;
    case 0xd6:
        return 1 + 4;
    case 0xd7:
        return 1 + 8;
    case 0xd8:
        return 1 + 16;
    default:
        return -1;
    }
}

hf_err_t
hf_mpread_skip(hf_mpread_t *r, unsigned max_depth)
{
    /* pending[d] = elements still to skip inside the container open at
     * depth d; pending[0] is the one value we were asked to skip. Map
     * counts are doubled, so they can exceed uint32. */
    uint64_t pending[HF_MPREAD_MAX_DEPTH + 1];
    unsigned depth = 0;
    if (max_depth > HF_MPREAD_MAX_DEPTH)
        max_depth = HF_MPREAD_MAX_DEPTH;
    pending[0] = 1;
    for (;;) {
        while (pending[depth] == 0) {
            if (depth == 0)
                return HF_OK;
            depth--;
        }
        pending[depth]--;

        size_t left = hf_mpread_left(r);
        if (left < 1)
            return HF_EPROTO;
        uint8_t m = r->p[0];
        int fixed = s_fixed_payload(m);
        if (fixed >= 0) {
            if (left - 1 < (size_t)fixed)
                return HF_EPROTO;
            r->p += 1 + (size_t)fixed;
            continue;
        }

        uint64_t items = 0; /* elements of a container that opens here */
        bool container = false;
        size_t hdr = 0;
        uint64_t payload = 0; /* bytes of str/bin/ext data */
        if (m >= 0xa0 && m <= 0xbf) {
            hdr = 1;
            payload = m & 0x1f;
        } else if (m >= 0x90 && m <= 0x9f) {
            hdr = 1;
            items = m & 0x0f;
            container = true;
        } else if (m >= 0x80 && m <= 0x8f) {
            hdr = 1;
            items = 2u * (m & 0x0f);
            container = true;
        } else {
            switch (m) {
            case 0xc4: /* bin8 */
            case 0xd9: /* str8 */
                hdr = 2;
                break;
            case 0xc5:
            case 0xda:
                hdr = 3;
                break;
            case 0xc6:
            case 0xdb:
                hdr = 5;
                break;
            case 0xc7: /* ext8/16/32: length, then type byte, then data */
                hdr = 3;
                break;
            case 0xc8:
                hdr = 4;
                break;
            case 0xc9:
                hdr = 6;
                break;
            case 0xdc: /* array16/32, map16/32 */
            case 0xde:
                hdr = 3;
                container = true;
                break;
            case 0xdd:
            case 0xdf:
                hdr = 5;
                container = true;
                break;
            default: /* 0xc1 is never used */
                return HF_EPROTO;
            }
            if (left < hdr)
                return HF_EPROTO;
            const uint8_t *q = r->p + 1;
            uint64_t len;
            switch (m) {
            case 0xc4:
            case 0xd9:
            case 0xc7:
                len = q[0];
                break;
            case 0xc5:
            case 0xda:
            case 0xc8:
            case 0xdc:
            case 0xde:
                len = hf_mpread_be16(q);
                break;
            default:
                len = hf_mpread_be32(q);
                break;
            }
            if (container)
                items = (m == 0xde || m == 0xdf) ? 2 * len : len;
            else
                payload = len;
        }

        if (left < hdr)
            return HF_EPROTO;
        left -= hdr;
        if (container) {
            /* Each element takes at least one byte. */
            if (items > left)
                return HF_EPROTO;
            if (depth + 1 > max_depth)
                return HF_EPROTO;
            r->p += hdr;
            depth++;
            pending[depth] = items;
        } else {
            if (payload > left)
                return HF_EPROTO;
            r->p += hdr + (size_t)payload;
        }
    }
}
