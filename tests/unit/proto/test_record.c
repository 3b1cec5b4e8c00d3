/* test_record.c - records: helpers, encode/decode round trips, and the
 * record decoder's refusal of malformed input. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_record.h"
#include "proto_test_util.h"

/* ---- helpers ------------------------------------------------------------ */

static void
s_round_trip(const hf_record_t *in)
{
    uint8_t buf[HF_PROTO_MAX_RECORD];
    size_t len = 0, used = 0;
    cr_assert_eq(hf_record_encode(in, buf, sizeof buf, &len), HF_OK, "encode kind %u", in->kind);
    cr_assert(len > 0 && len <= HF_PROTO_MAX_RECORD);
    hf_record_t out;
    memset(&out, 0xA5, sizeof out);
    cr_assert_eq(hf_record_decode(buf, len, &out, &used), HF_OK, "decode kind %u", in->kind);
    cr_assert_eq(used, len);
    cr_assert(pt_equal(in, &out), "round trip differs for kind %s", hf_kind_name(in->kind));
}

static hf_err_t
s_decode_whole(const uint8_t *buf, size_t len)
{
    hf_record_t r;
    size_t used = 0;
    hf_err_t rc = hf_record_decode(buf, len, &r, &used);
    if (rc == HF_OK && used != len)
        return HF_EPROTO;
    return rc;
}

static const uint8_t s_kinds[] = {HF_KIND_SAMPLE, HF_KIND_EVENT, HF_KIND_ALARM, HF_KIND_HW_ERROR,
                                  HF_KIND_GAP, HF_KIND_COMMAND};
#define N_KINDS (sizeof s_kinds / sizeof s_kinds[0])

/* ---- small helpers of hf_record.h --------------------------------------- */

Test(record, lane_of_puts_only_samples_in_data_lane, .timeout = 10)
{
    cr_assert_eq(hf_record_lane_of(HF_KIND_SAMPLE), HF_LANE_DATA);
    cr_assert_eq(hf_record_lane_of(HF_KIND_EVENT), HF_LANE_CONTROL);
    cr_assert_eq(hf_record_lane_of(HF_KIND_ALARM), HF_LANE_CONTROL);
    cr_assert_eq(hf_record_lane_of(HF_KIND_HW_ERROR), HF_LANE_CONTROL);
    cr_assert_eq(hf_record_lane_of(HF_KIND_GAP), HF_LANE_CONTROL);
}

Test(record, names_cover_every_value_and_unknowns, .timeout = 10)
{
    cr_assert_str_eq(hf_kind_name(HF_KIND_SAMPLE), "sample");
    cr_assert_str_eq(hf_kind_name(HF_KIND_HW_ERROR), "hw_error");
    cr_assert_str_eq(hf_kind_name(HF_KIND_GAP), "gap");
    cr_assert_str_eq(hf_kind_name(0), "?");
    cr_assert_str_eq(hf_kind_name(HF_KIND_COMMAND), "command");
    cr_assert_str_eq(hf_kind_name(HF_KIND_MAX + 1), "?");
    const char *verbs[] = {"?", "start", "pause", "resume", "abort", "set"};
    for (unsigned i = 0; i <= HF_CMD_MAX; i++) {
        cr_assert_str_eq(hf_command_verb_name((uint8_t)i), verbs[i]);
        uint8_t v = 0;
        cr_assert_eq(hf_command_verb_parse(verbs[i], &v), i ? HF_OK : HF_EINVAL);
        if (i)
            cr_assert_eq(v, i);
    }
    cr_assert_str_eq(hf_command_verb_name(HF_CMD_MAX + 1), "?");
    const char *ev[] = {"?",         "run_started", "step",    "paused",      "resumed",
                        "completed", "failed",      "aborted", "interrupted", "channels"};
    for (unsigned i = 0; i <= HF_EV_MAX; i++)
        cr_assert_str_eq(hf_event_name((uint8_t)i), ev[i]);
    cr_assert_str_eq(hf_event_name(HF_EV_MAX + 1), "?");
    cr_assert_str_eq(hf_event_name(255), "?");
    const char *rs[] = {"idle",   "running", "paused",     "completed",
                        "failed", "aborted", "interrupted"};
    for (unsigned i = 0; i <= HF_RUN_STATE_MAX; i++)
        cr_assert_str_eq(hf_run_state_name((uint8_t)i), rs[i]);
    cr_assert_str_eq(hf_run_state_name(HF_RUN_STATE_MAX + 1), "?");
    cr_assert_str_eq(hf_lane_name(HF_LANE_CONTROL), "control");
    cr_assert_str_eq(hf_lane_name(HF_LANE_DATA), "data");
    cr_assert_str_eq(hf_lane_name(2), "?");
}

Test(record, engine_id_valid_accepts_only_1_to_64_safe_chars, .timeout = 10)
{
    char id[HF_ENGINE_ID_MAX + 2];
    cr_assert(hf_engine_id_valid("rig-01.lab_A"));
    cr_assert(hf_engine_id_valid("x"));
    cr_assert_not(hf_engine_id_valid(""));
    cr_assert_not(hf_engine_id_valid(NULL));
    cr_assert_not(hf_engine_id_valid("rig 01"));
    cr_assert_not(hf_engine_id_valid("rig/01"));
    cr_assert_not(hf_engine_id_valid("r\xc3\xa9g"));
    memset(id, 'a', HF_ENGINE_ID_MAX);
    id[HF_ENGINE_ID_MAX] = '\0';
    cr_assert(hf_engine_id_valid(id));
    id[HF_ENGINE_ID_MAX] = 'a';
    id[HF_ENGINE_ID_MAX + 1] = '\0';
    cr_assert_not(hf_engine_id_valid(id));
}

Test(record, sample_helper_sets_lane_and_zeroes_seq, .timeout = 10)
{
    hf_record_t r;
    memset(&r, 0xff, sizeof r);
    hf_record_sample(&r, 9, 1000, 2000, 5, -3.25);
    cr_assert_eq(r.seq, 0);
    cr_assert_eq(r.kind, HF_KIND_SAMPLE);
    cr_assert_eq(r.lane, HF_LANE_DATA);
    cr_assert_eq(r.run, 9);
    cr_assert_eq(r.ts_ns, 1000);
    cr_assert_eq(r.mono_ns, 2000);
    cr_assert_eq(r.u.sample.channel, 5);
    cr_assert_eq(r.u.sample.value, -3.25);
}

Test(record, event_helper_zeroes_union_and_copies_text, .timeout = 10)
{
    hf_record_t r;
    memset(&r, 0xff, sizeof r);
    hf_record_event(&r, 1, 2, 3, HF_EV_RUN_STARTED, 0, "method-a");
    cr_assert_eq(r.seq, 0);
    cr_assert_eq(r.lane, HF_LANE_CONTROL);
    cr_assert_eq(r.u.event.type, HF_EV_RUN_STARTED);
    cr_assert_str_eq(r.u.event.text, "method-a");
    for (size_t i = strlen("method-a"); i < sizeof r.u.event.text; i++)
        cr_assert_eq(r.u.event.text[i], 0, "text tail byte %zu not zeroed", i);
    hf_record_event(&r, 1, 2, 3, HF_EV_PAUSED, 0, NULL);
    cr_assert_str_eq(r.u.event.text, "");
}

Test(record, event_helper_truncates_long_text, .timeout = 10)
{
    char text[300];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    hf_record_t r;
    hf_record_event(&r, 1, 2, 3, HF_EV_STEP, 1, text);
    cr_assert_eq(strlen(r.u.event.text), HF_TEXT_MAX);
    /* Exactly HF_TEXT_MAX fits untouched. */
    text[HF_TEXT_MAX] = '\0';
    hf_record_event(&r, 1, 2, 3, HF_EV_STEP, 1, text);
    cr_assert_str_eq(r.u.event.text, text);
}

Test(record, event_helper_does_not_split_utf8_sequence, .timeout = 10)
{
    /* 119 ASCII bytes then a 3-byte character: the cut at 120 would fall
     * inside it, so the whole character goes. */
    char text[200];
    memset(text, 'a', 119);
    memcpy(text + 119, "\xe2\x82\xac" "bc", 6);
    hf_record_t r;
    hf_record_event(&r, 1, 2, 3, HF_EV_STEP, 1, text);
    cr_assert_eq(strlen(r.u.event.text), 119);
    /* A 2-byte character ending exactly at 120 is kept. */
    memset(text, 'a', 118);
    memcpy(text + 118, "\xc3\xa9" "xyz", 6);
    hf_record_event(&r, 1, 2, 3, HF_EV_STEP, 1, text);
    cr_assert_eq(strlen(r.u.event.text), 120);
    cr_assert(memcmp(r.u.event.text + 118, "\xc3\xa9", 2) == 0);
}

/* ---- round trips -------------------------------------------------------- */

Test(record, every_kind_round_trips, .timeout = 10)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        hf_record_t r = pt_make(s_kinds[k], 12345);
        s_round_trip(&r);
    }
}

Test(record, boundary_integers_round_trip, .timeout = 10)
{
    const uint64_t u64s[] = {0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
                             (uint64_t)UINT32_MAX + 1, UINT64_MAX - 1, UINT64_MAX};
    for (size_t k = 0; k < N_KINDS; k++) {
        for (size_t i = 0; i < sizeof u64s / sizeof u64s[0]; i++) {
            hf_record_t r = pt_make(s_kinds[k], u64s[i]);
            r.ts_ns = u64s[i];
            r.mono_ns = u64s[i];
            r.run = u64s[i];
            s_round_trip(&r);
        }
    }
    hf_record_t r = pt_make(HF_KIND_SAMPLE, UINT64_MAX);
    r.u.sample.channel = UINT32_MAX;
    s_round_trip(&r);
    r = pt_make(HF_KIND_HW_ERROR, 1);
    const int32_t codes[] = {INT32_MIN, -129, -128, -33, -32, -1, 0, 127, 128, INT32_MAX};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        r.u.hw_error.code = codes[i];
        r.u.hw_error.device = UINT32_MAX;
        r.u.hw_error.channel = UINT32_MAX;
        r.u.hw_error.cls = UINT8_MAX;
        s_round_trip(&r);
    }
    r = pt_make(HF_KIND_GAP, 1);
    r.u.gap.first = 0;
    r.u.gap.last = UINT64_MAX;
    r.u.gap.count = UINT64_MAX; /* span is 2^64; count fits within it */
    r.u.gap.reason = 255;
    s_round_trip(&r);
    r = pt_make(HF_KIND_ALARM, 1);
    r.u.alarm.raised = 0;
    r.u.alarm.code = UINT32_MAX;
    r.u.alarm.severity = HF_ALARM_INFO;
    s_round_trip(&r);
}

Test(record, special_float_values_round_trip_bit_exact, .timeout = 10)
{
    const double vals[] = {0.0,     -0.0,     1.5,      0.1,       -1e300,   DBL_MAX,
                           DBL_MIN, 4.9e-324, FLT_MAX,  -FLT_MAX,  FLT_MIN,  1e-45,
                           INFINITY, -INFINITY, NAN,    -NAN,      3.4028235677973366e38};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        hf_record_t r = pt_make(HF_KIND_SAMPLE, i + 1);
        r.u.sample.value = vals[i];
        s_round_trip(&r);
    }
    /* A NaN with a payload keeps it (it travels as float64). */
    uint64_t bits = 0x7ff8000000abcdefULL;
    hf_record_t r = pt_make(HF_KIND_SAMPLE, 1);
    memcpy(&r.u.sample.value, &bits, sizeof bits);
    s_round_trip(&r);
}

Test(record, max_length_text_round_trips_in_every_text_kind, .timeout = 10)
{
    const uint8_t kinds[] = {HF_KIND_EVENT, HF_KIND_ALARM, HF_KIND_HW_ERROR};
    for (size_t k = 0; k < 3; k++) {
        hf_record_t r = pt_make(kinds[k], 1);
        char *t = kinds[k] == HF_KIND_EVENT   ? r.u.event.text
                  : kinds[k] == HF_KIND_ALARM ? r.u.alarm.text
                                              : r.u.hw_error.text;
        memset(t, 'z', HF_TEXT_MAX);
        t[HF_TEXT_MAX] = '\0';
        s_round_trip(&r);
        t[0] = '\0';
        memset(t + 1, 0, HF_TEXT_MAX);
        s_round_trip(&r); /* empty text */
    }
}

Test(record, worst_case_record_fits_max_record, .timeout = 10)
{
    hf_record_t r = pt_make(HF_KIND_HW_ERROR, UINT64_MAX);
    r.ts_ns = r.mono_ns = r.run = UINT64_MAX;
    r.u.hw_error.device = r.u.hw_error.channel = UINT32_MAX;
    r.u.hw_error.code = INT32_MIN;
    r.u.hw_error.cls = 255;
    memset(r.u.hw_error.text, 'z', HF_TEXT_MAX);
    uint8_t buf[HF_PROTO_MAX_RECORD];
    size_t len;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_OK);
    cr_assert(len < 200, "worst case is %zu bytes", len);
}

Test(record, exact_float32_values_travel_in_five_bytes, .timeout = 10)
{
    hf_record_t a = pt_make(HF_KIND_SAMPLE, 1), b = a;
    a.u.sample.value = 21.5;
    b.u.sample.value = 21.4;
    uint8_t ba[64], bb[64];
    size_t la, lb;
    cr_assert_eq(hf_record_encode(&a, ba, sizeof ba, &la), HF_OK);
    cr_assert_eq(hf_record_encode(&b, bb, sizeof bb, &lb), HF_OK);
    cr_assert_eq(lb - la, 4);
    cr_assert_eq(ba[la - 5], 0xca);
    cr_assert_eq(bb[lb - 9], 0xcb);
}

Test(record, small_sample_uses_smallest_integer_forms, .timeout = 10)
{
    hf_record_t r = pt_make(HF_KIND_SAMPLE, 5);
    r.ts_ns = 100;
    r.mono_ns = 200;
    r.run = 1;
    r.u.sample.channel = 2;
    r.u.sample.value = 1.0;
    uint8_t buf[64];
    size_t len;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_OK);
    /* fixarray, seq, kind, ts (fixint), mono (uint8), run, channel, float32 */
    const uint8_t want[] = {0x97, 0x05, 0x01, 100,  0xcc, 200,  0x01,
                            0x02, 0xca, 0x3f, 0x80, 0x00, 0x00};
    cr_assert_eq(len, sizeof want);
    cr_assert(memcmp(buf, want, len) == 0);
}

Test(record, encoding_is_standard_msgpack, .timeout = 10)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        hf_record_t r = pt_make(s_kinds[k], 77);
        uint8_t buf[HF_PROTO_MAX_RECORD];
        size_t len, off = 0;
        cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_OK);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        cr_assert_eq(msgpack_unpack_next(&up, (const char *)buf, len, &off),
                     MSGPACK_UNPACK_SUCCESS);
        cr_assert_eq(off, len);
        cr_assert_eq(up.data.type, MSGPACK_OBJECT_ARRAY);
        cr_assert_eq(up.data.via.array.ptr[0].via.u64, 77);
        cr_assert_eq(up.data.via.array.ptr[1].via.u64, s_kinds[k]);
        msgpack_unpacked_destroy(&up);
    }
}

/* ---- encoder refusals --------------------------------------------------- */

Test(record, encode_refuses_invalid_records, .timeout = 10)
{
    uint8_t buf[HF_PROTO_MAX_RECORD];
    size_t len;
    hf_record_t r = pt_make(HF_KIND_SAMPLE, 1);
    r.kind = 0;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r.kind = 6;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_SAMPLE, 1);
    r.lane = HF_LANE_CONTROL;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_EVENT, 1);
    r.lane = HF_LANE_DATA;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_EVENT, 1);
    r.u.event.type = 0;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r.u.event.type = HF_EV_MAX + 1;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_EVENT, 1);
    memset(r.u.event.text, 'x', sizeof r.u.event.text); /* not NUL-terminated */
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_ALARM, 1);
    r.u.alarm.raised = 2;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_ALARM, 1);
    r.u.alarm.severity = HF_ALARM_CRITICAL + 1;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_HW_ERROR, 1);
    memset(r.u.hw_error.text, 'x', sizeof r.u.hw_error.text);
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_GAP, 1);
    r.u.gap.lane = 2;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_GAP, 1);
    r.u.gap.first = 10;
    r.u.gap.last = 9;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
    r = pt_make(HF_KIND_GAP, 1);
    r.u.gap.count = r.u.gap.last - r.u.gap.first + 2;
    cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_EINVAL);
}

Test(record, encode_returns_full_for_every_short_cap, .timeout = 10)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        hf_record_t r = pt_make(s_kinds[k], UINT64_MAX);
        uint8_t buf[HF_PROTO_MAX_RECORD];
        size_t need;
        cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &need), HF_OK);
        for (size_t cap = 0; cap < need; cap++) {
            uint8_t small[HF_PROTO_MAX_RECORD + 8];
            memset(small, 0xee, sizeof small);
            size_t len = 0;
            cr_assert_eq(hf_record_encode(&r, small, cap, &len), HF_EFULL, "cap %zu", cap);
            for (size_t i = cap; i < sizeof small; i++)
                cr_assert_eq(small[i], 0xee, "wrote past cap %zu at %zu", cap, i);
        }
        size_t len;
        cr_assert_eq(hf_record_encode(&r, NULL, 0, &len), HF_EFULL);
    }
}

/* ---- decoder refusals --------------------------------------------------- */

Test(record, decode_reports_bytes_used_and_ignores_rest, .timeout = 10)
{
    hf_record_t r = pt_make(HF_KIND_EVENT, 3), out;
    uint8_t buf[HF_PROTO_MAX_RECORD + 4];
    size_t len, used;
    cr_assert_eq(hf_record_encode(&r, buf, HF_PROTO_MAX_RECORD, &len), HF_OK);
    memcpy(buf + len, "\xc1\xc1\xc1", 3);
    cr_assert_eq(hf_record_decode(buf, len + 3, &out, &used), HF_OK);
    cr_assert_eq(used, len);
}

Test(record, decode_refuses_every_truncation, .timeout = 10)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        hf_record_t r = pt_make(s_kinds[k], UINT64_MAX), out;
        uint8_t buf[HF_PROTO_MAX_RECORD];
        size_t len, used;
        cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_OK);
        for (size_t cut = 0; cut < len; cut++) {
            /* Copy into an exact-size heap block so ASan sees any overread. */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, buf, cut);
            cr_assert_eq(hf_record_decode(p, cut, &out, &used), HF_EPROTO, "kind %u cut %zu",
                         s_kinds[k], cut);
            free(p);
        }
    }
}

Test(record, decode_refuses_wrong_type_in_each_field, .timeout = 10)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        hf_record_t r = pt_make(s_kinds[k], 9);
        uint8_t buf[HF_PROTO_MAX_RECORD];
        size_t len;
        cr_assert_eq(hf_record_encode(&r, buf, sizeof buf, &len), HF_OK);
        int tried = 0;
        int accepted = pt_wrong_type_each_field(buf, len, s_decode_whole, &tried);
        cr_assert_eq(accepted, 0, "kind %s accepted %d of %d", hf_kind_name(s_kinds[k]), accepted,
                     tried);
        cr_assert(tried >= 3 * (5 + 2));
    }
}

/* Packs the common head [seq, kind, ts, mono, run] into an array of n. */
static void
s_head(pt_pack_t *p, size_t n, uint64_t kind)
{
    msgpack_pack_array(&p->pk, n);
    msgpack_pack_uint64(&p->pk, 1);
    msgpack_pack_uint64(&p->pk, kind);
    msgpack_pack_uint64(&p->pk, 2);
    msgpack_pack_uint64(&p->pk, 3);
    msgpack_pack_uint64(&p->pk, 4);
}

Test(record, decode_accepts_any_integer_width_and_float32, .timeout = 10)
{
    pt_pack_t p;
    pt_pack_init(&p);
    msgpack_pack_array(&p.pk, 7);
    msgpack_pack_fix_uint64(&p.pk, 1);
    msgpack_pack_fix_int8(&p.pk, HF_KIND_SAMPLE);
    msgpack_pack_fix_uint32(&p.pk, 2);
    msgpack_pack_fix_int64(&p.pk, 3);
    msgpack_pack_fix_uint16(&p.pk, 4);
    msgpack_pack_fix_int32(&p.pk, 5);
    msgpack_pack_float(&p.pk, 0.5f);
    hf_record_t out;
    size_t used;
    cr_assert_eq(hf_record_decode(pt_data(&p), p.sb.size, &out, &used), HF_OK);
    cr_assert_eq(used, p.sb.size);
    cr_assert_eq(out.seq, 1);
    cr_assert_eq(out.ts_ns, 2);
    cr_assert_eq(out.mono_ns, 3);
    cr_assert_eq(out.run, 4);
    cr_assert_eq(out.u.sample.channel, 5);
    cr_assert_eq(out.u.sample.value, 0.5);
    pt_pack_destroy(&p);

    /* hw code as int64 and as uint16 forms; text as str32 */
    pt_pack_init(&p);
    s_head(&p, 10, HF_KIND_HW_ERROR);
    msgpack_pack_uint8(&p.pk, 1);
    msgpack_pack_uint8(&p.pk, 2);
    msgpack_pack_uint8(&p.pk, 3);
    msgpack_pack_fix_int64(&p.pk, -5);
    const uint8_t str32[] = {0xdb, 0, 0, 0, 2, 'h', 'i'};
    msgpack_sbuffer_write(&p.sb, (const char *)str32, sizeof str32);
    cr_assert_eq(hf_record_decode(pt_data(&p), p.sb.size, &out, &used), HF_OK);
    cr_assert_eq(out.u.hw_error.code, -5);
    cr_assert_str_eq(out.u.hw_error.text, "hi");
    pt_pack_destroy(&p);
}

/* Builds a record with one field replaced and expects HF_EPROTO. */
typedef void (*s_fill_fn)(pt_pack_t *p);

static void
s_expect_bad(s_fill_fn fill, const char *what)
{
    pt_pack_t p;
    pt_pack_init(&p);
    fill(&p);
    hf_record_t out;
    size_t used;
    cr_assert_eq(hf_record_decode(pt_data(&p), p.sb.size, &out, &used), HF_EPROTO, "%s", what);
    pt_pack_destroy(&p);
}

static void
s_bad_negative_seq(pt_pack_t *p)
{
    msgpack_pack_array(&p->pk, 7);
    msgpack_pack_int64(&p->pk, -1);
    msgpack_pack_uint8(&p->pk, HF_KIND_SAMPLE);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_double(&p->pk, 1);
}
static void
s_bad_kind_zero(pt_pack_t *p)
{
    s_head(p, 7, 0);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_double(&p->pk, 1);
}
static void
s_bad_kind_unknown(pt_pack_t *p)
{
    s_head(p, 7, 6);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_double(&p->pk, 1);
}
static void
s_bad_kind_huge(pt_pack_t *p)
{
    s_head(p, 7, 257);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_double(&p->pk, 1);
}
static void
s_bad_count_for_kind(pt_pack_t *p)
{
    s_head(p, 8, HF_KIND_SAMPLE);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_double(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
}
static void
s_bad_channel_too_big(pt_pack_t *p)
{
    s_head(p, 7, HF_KIND_SAMPLE);
    msgpack_pack_uint64(&p->pk, (uint64_t)UINT32_MAX + 1);
    msgpack_pack_double(&p->pk, 1);
}
static void
s_bad_value_int(pt_pack_t *p)
{
    s_head(p, 7, HF_KIND_SAMPLE);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
}
static void
s_bad_event_type(pt_pack_t *p)
{
    s_head(p, 8, HF_KIND_EVENT);
    msgpack_pack_uint8(&p->pk, HF_EV_MAX + 1);
    msgpack_pack_uint8(&p->pk, 1);
    pt_pack_str(p, "x");
}
static void
s_bad_text_too_long(pt_pack_t *p)
{
    char t[HF_TEXT_MAX + 2];
    memset(t, 'a', HF_TEXT_MAX + 1);
    t[HF_TEXT_MAX + 1] = '\0';
    s_head(p, 8, HF_KIND_EVENT);
    msgpack_pack_uint8(&p->pk, HF_EV_STEP);
    msgpack_pack_uint8(&p->pk, 1);
    pt_pack_str(p, t);
}
static void
s_bad_text_nul(pt_pack_t *p)
{
    s_head(p, 8, HF_KIND_EVENT);
    msgpack_pack_uint8(&p->pk, HF_EV_STEP);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_str_with_body(&p->pk, "a\0b", 3);
}
static void
s_bad_text_bin(pt_pack_t *p)
{
    s_head(p, 8, HF_KIND_EVENT);
    msgpack_pack_uint8(&p->pk, HF_EV_STEP);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_bin_with_body(&p->pk, "ab", 2);
}
static void
s_bad_alarm_raised_int(pt_pack_t *p)
{
    s_head(p, 9, HF_KIND_ALARM);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    pt_pack_str(p, "x");
}
static void
s_bad_alarm_severity(pt_pack_t *p)
{
    s_head(p, 9, HF_KIND_ALARM);
    msgpack_pack_true(&p->pk);
    msgpack_pack_uint8(&p->pk, HF_ALARM_CRITICAL + 1);
    msgpack_pack_uint8(&p->pk, 1);
    pt_pack_str(p, "x");
}
static void
s_bad_hw_code_range(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_HW_ERROR);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_int64(&p->pk, (int64_t)INT32_MIN - 1);
    pt_pack_str(p, "x");
}
static void
s_bad_hw_code_uint64(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_HW_ERROR);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint64(&p->pk, UINT64_MAX);
    pt_pack_str(p, "x");
}
static void
s_bad_hw_cls(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_HW_ERROR);
    msgpack_pack_uint16(&p->pk, 256);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_int8(&p->pk, -1);
    pt_pack_str(p, "x");
}
static void
s_bad_gap_lane(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_GAP);
    msgpack_pack_uint8(&p->pk, 2);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 2);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
}
static void
s_bad_gap_range(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_GAP);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 5);
    msgpack_pack_uint8(&p->pk, 4);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
}
static void
s_bad_gap_count(pt_pack_t *p)
{
    s_head(p, 10, HF_KIND_GAP);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 5);
    msgpack_pack_uint8(&p->pk, 6);
    msgpack_pack_uint8(&p->pk, 3);
    msgpack_pack_uint8(&p->pk, 1);
}
static void
s_bad_not_array(pt_pack_t *p)
{
    msgpack_pack_map(&p->pk, 0);
}
static void
s_bad_array_claims_4g(pt_pack_t *p)
{
    const uint8_t b[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    msgpack_sbuffer_write(&p->sb, (const char *)b, sizeof b);
}

Test(record, decode_refuses_out_of_range_and_mistyped_fields, .timeout = 10)
{
    s_expect_bad(s_bad_negative_seq, "negative seq");
    s_expect_bad(s_bad_kind_zero, "kind 0");
    s_expect_bad(s_bad_kind_unknown, "kind 6");
    s_expect_bad(s_bad_kind_huge, "kind 257");
    s_expect_bad(s_bad_count_for_kind, "8 fields for a sample");
    s_expect_bad(s_bad_channel_too_big, "channel > uint32");
    s_expect_bad(s_bad_value_int, "value as int");
    s_expect_bad(s_bad_event_type, "unknown event type");
    s_expect_bad(s_bad_text_too_long, "text > HF_TEXT_MAX");
    s_expect_bad(s_bad_text_nul, "text with NUL");
    s_expect_bad(s_bad_text_bin, "text as bin");
    s_expect_bad(s_bad_alarm_raised_int, "raised as int");
    s_expect_bad(s_bad_alarm_severity, "severity 3");
    s_expect_bad(s_bad_hw_code_range, "hw code < INT32_MIN");
    s_expect_bad(s_bad_hw_code_uint64, "hw code uint64");
    s_expect_bad(s_bad_hw_cls, "hw cls 256");
    s_expect_bad(s_bad_gap_lane, "gap lane 2");
    s_expect_bad(s_bad_gap_range, "gap first > last");
    s_expect_bad(s_bad_gap_count, "gap count > span");
    s_expect_bad(s_bad_not_array, "map");
    s_expect_bad(s_bad_array_claims_4g, "array32 of 4G in 5 bytes");
    hf_record_t out;
    size_t used;
    cr_assert_eq(hf_record_decode(NULL, 0, &out, &used), HF_EPROTO);
}
