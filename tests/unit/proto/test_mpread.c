/* test_mpread.c - the private bounded msgpack reader (proto/src/hf_mpread.h). */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "hf_mpread.h"

static hf_mpread_t
s_rd(const uint8_t *b, size_t n)
{
    hf_mpread_t r;
    hf_mpread_init(&r, b, n);
    return r;
}

Test(mpread, uint_accepts_every_width_and_non_negative_signed, .timeout = 10)
{
    const uint8_t in[] = {0x05, 0xcc, 0xff, 0xcd, 0x01, 0x00, 0xce, 0, 1, 0, 0,
                          0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                          0xd0, 0x7f, 0xd1, 0x7f, 0xff, 0xd2, 0, 0, 0, 9,
                          0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint64_t want[] = {5, 255, 256, 65536, UINT64_MAX, 127, 32767, 9, INT64_MAX};
    hf_mpread_t r = s_rd(in, sizeof in);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        uint64_t v;
        cr_assert_eq(hf_mpread_uint(&r, &v), HF_OK, "item %zu", i);
        cr_assert_eq(v, want[i], "item %zu", i);
    }
    cr_assert_eq(hf_mpread_left(&r), 0);
}

Test(mpread, uint_refuses_negative_and_other_types, .timeout = 10)
{
    const uint8_t bad[][9] = {{0xff}, {0xd0, 0x80}, {0xd1, 0x80, 0}, {0xd3, 0x80}, {0xc0},
                              {0xc3}, {0xa1, 'x'}, {0xca, 0, 0, 0, 0}, {0x90}, {0xc1}};
    const size_t len[] = {1, 2, 3, 9, 1, 1, 2, 5, 1, 1};
    for (size_t i = 0; i < sizeof len / sizeof len[0]; i++) {
        hf_mpread_t r = s_rd(bad[i], len[i]);
        uint64_t v;
        cr_assert_eq(hf_mpread_uint(&r, &v), HF_EPROTO, "case %zu", i);
    }
}

Test(mpread, int_reads_negative_forms_and_range_checks, .timeout = 10)
{
    const uint8_t in[] = {0xe0, 0xff, 0xd0, 0x80, 0xd1, 0x80, 0x00, 0xd2, 0x80, 0, 0, 0,
                          0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xcd, 0xff, 0xff};
    const int64_t want[] = {-32, -1, -128, -32768, INT32_MIN, INT64_MIN, 127, 65535};
    hf_mpread_t r = s_rd(in, sizeof in);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t v;
        cr_assert_eq(hf_mpread_int(&r, &v), HF_OK, "item %zu", i);
        cr_assert_eq(v, want[i], "item %zu", i);
    }
    const uint8_t big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    r = s_rd(big, sizeof big);
    int64_t v;
    cr_assert_eq(hf_mpread_int(&r, &v), HF_EPROTO);
}

Test(mpread, floats_bools_nil, .timeout = 10)
{
    const uint8_t in[] = {0xca, 0x3f, 0xc0, 0, 0, 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0,
                          0xc2, 0xc3, 0xc0};
    hf_mpread_t r = s_rd(in, sizeof in);
    double d;
    bool b;
    cr_assert_eq(hf_mpread_f64(&r, &d), HF_OK);
    cr_assert_eq(d, 1.5);
    cr_assert_eq(hf_mpread_f64(&r, &d), HF_OK);
    cr_assert(isinf(d) && d > 0);
    cr_assert_eq(hf_mpread_bool(&r, &b), HF_OK);
    cr_assert_not(b);
    cr_assert_eq(hf_mpread_bool(&r, &b), HF_OK);
    cr_assert(b);
    cr_assert_eq(hf_mpread_nil(&r), HF_OK);
    cr_assert_eq(hf_mpread_left(&r), 0);
    cr_assert_eq(hf_mpread_f64(&r, &d), HF_EPROTO);
    cr_assert_eq(hf_mpread_bool(&r, &b), HF_EPROTO);
    cr_assert_eq(hf_mpread_nil(&r), HF_EPROTO);
    const uint8_t trunc[] = {0xcb, 0, 0, 0, 0, 0, 0, 0};
    r = s_rd(trunc, sizeof trunc);
    cr_assert_eq(hf_mpread_f64(&r, &d), HF_EPROTO);
    const uint8_t integer[] = {0x01};
    r = s_rd(integer, 1);
    cr_assert_eq(hf_mpread_f64(&r, &d), HF_EPROTO);
}

Test(mpread, str_copies_bounded_and_refuses_nul_and_overlong, .timeout = 10)
{
    const uint8_t in[] = {0xa3, 'a', 'b', 'c', 0xd9, 2, 'h', 'i', 0xda, 0, 1, 'x',
                          0xdb, 0, 0, 0, 0};
    hf_mpread_t r = s_rd(in, sizeof in);
    char dst[4];
    size_t n;
    cr_assert_eq(hf_mpread_str(&r, dst, sizeof dst, &n), HF_OK);
    cr_assert_str_eq(dst, "abc");
    cr_assert_eq(n, 3);
    cr_assert_eq(hf_mpread_str(&r, dst, sizeof dst, &n), HF_OK);
    cr_assert_str_eq(dst, "hi");
    const char *s;
    uint32_t len;
    cr_assert_eq(hf_mpread_str_ref(&r, &s, &len), HF_OK);
    cr_assert_eq(len, 1);
    cr_assert_eq(s[0], 'x');
    cr_assert_eq(hf_mpread_str(&r, dst, sizeof dst, &n), HF_OK);
    cr_assert_str_eq(dst, "");

    const uint8_t four[] = {0xa4, 'a', 'b', 'c', 'd'};
    r = s_rd(four, sizeof four);
    cr_assert_eq(hf_mpread_str(&r, dst, sizeof dst, &n), HF_EPROTO, "no room for NUL");
    const uint8_t nul[] = {0xa3, 'a', 0, 'c'};
    r = s_rd(nul, sizeof nul);
    cr_assert_eq(hf_mpread_str(&r, dst, sizeof dst, &n), HF_EPROTO);
    const uint8_t claim[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    r = s_rd(claim, sizeof claim);
    cr_assert_eq(hf_mpread_str_ref(&r, &s, &len), HF_EPROTO);
    const uint8_t bin[] = {0xc4, 2, 1, 2};
    r = s_rd(bin, sizeof bin);
    cr_assert_eq(hf_mpread_str_ref(&r, &s, &len), HF_EPROTO, "bin is not str");
    r = s_rd(bin, sizeof bin);
    const uint8_t *bp;
    cr_assert_eq(hf_mpread_bin(&r, &bp, &len), HF_OK);
    cr_assert_eq(len, 2);
    cr_assert_eq(bp[1], 2);
}

Test(mpread, array_count_is_checked_against_bytes_left, .timeout = 10)
{
    uint32_t n;
    const uint8_t ok[] = {0x92, 1, 2};
    hf_mpread_t r = s_rd(ok, sizeof ok);
    cr_assert_eq(hf_mpread_array(&r, &n), HF_OK);
    cr_assert_eq(n, 2);
    const uint8_t a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    r = s_rd(a32, sizeof a32);
    cr_assert_eq(hf_mpread_array(&r, &n), HF_EPROTO);
    const uint8_t a16[] = {0xdc, 0, 3, 1, 2};
    r = s_rd(a16, sizeof a16);
    cr_assert_eq(hf_mpread_array(&r, &n), HF_EPROTO);
    const uint8_t hdr_cut[] = {0xdd, 0, 0};
    r = s_rd(hdr_cut, sizeof hdr_cut);
    cr_assert_eq(hf_mpread_array(&r, &n), HF_EPROTO);
    const uint8_t map[] = {0x81, 1, 2};
    r = s_rd(map, sizeof map);
    cr_assert_eq(hf_mpread_array(&r, &n), HF_EPROTO);
}

Test(mpread, skip_walks_every_type, .timeout = 10)
{
    /* [nil, true, -1, 1.0f, 1.0, "ab", bin"x", {1: [2]}, fixext4, ext8(3), uint64] */
    const uint8_t in[] = {0x9b, 0xc0, 0xc3, 0xff, 0xca, 0x3f, 0x80, 0, 0,
                          0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xa2, 'a', 'b',
                          0xc4, 1, 'x', 0x81, 0x01, 0x91, 0x02, 0xd6, 5, 1, 2, 3, 4,
                          0xc7, 3, 9, 1, 2, 3, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0x2a};
    hf_mpread_t r = s_rd(in, sizeof in);
    cr_assert_eq(hf_mpread_skip(&r, 4), HF_OK);
    cr_assert_eq(hf_mpread_left(&r), 1);
    cr_assert_eq(r.p[0], 0x2a);
    /* Every truncation fails. */
    for (size_t cut = 0; cut < sizeof in - 1; cut++) {
        r = s_rd(in, cut);
        cr_assert_eq(hf_mpread_skip(&r, 4), HF_EPROTO, "cut %zu", cut);
    }
}

Test(mpread, skip_enforces_depth_limit, .timeout = 10)
{
    uint8_t in[64];
    for (unsigned depth = 0; depth < 40; depth++) {
        memset(in, 0x91, depth);
        in[depth] = 0x01;
        hf_mpread_t r = s_rd(in, depth + 1);
        hf_err_t want = depth <= 3 ? HF_OK : HF_EPROTO;
        cr_assert_eq(hf_mpread_skip(&r, 3), want, "depth %u", depth);
        r = s_rd(in, depth + 1);
        want = depth <= HF_MPREAD_MAX_DEPTH ? HF_OK : HF_EPROTO;
        cr_assert_eq(hf_mpread_skip(&r, 1000), want, "depth %u capped", depth);
    }
    const uint8_t scalar[] = {0x07};
    hf_mpread_t r = s_rd(scalar, 1);
    cr_assert_eq(hf_mpread_skip(&r, 0), HF_OK);
    const uint8_t empty_arr[] = {0x90};
    r = s_rd(empty_arr, 1);
    cr_assert_eq(hf_mpread_skip(&r, 0), HF_EPROTO, "a container at depth limit 0");
}

Test(mpread, skip_refuses_huge_counts_and_reserved_marker, .timeout = 10)
{
    const uint8_t m32[] = {0xdf, 0x80, 0, 0, 0, 1, 2};
    hf_mpread_t r = s_rd(m32, sizeof m32);
    cr_assert_eq(hf_mpread_skip(&r, 4), HF_EPROTO);
    const uint8_t e32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 1};
    r = s_rd(e32, sizeof e32);
    cr_assert_eq(hf_mpread_skip(&r, 4), HF_EPROTO);
    const uint8_t c1[] = {0xc1};
    r = s_rd(c1, 1);
    cr_assert_eq(hf_mpread_skip(&r, 4), HF_EPROTO);
    r = s_rd(c1, 0);
    cr_assert_eq(hf_mpread_skip(&r, 4), HF_EPROTO);
}
