/* test_frames.c - frames: round trips, the BATCH writer, version handling,
 * and the frame decoder's refusal of malformed input (truncation, wrong
 * types, oversized counts, nesting, trailing bytes, mutation loop). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"
#include "hf_record.h"
#include "proto_test_util.h"

#define S_RECS 64

static hf_hello_t
s_hello(void)
{
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    strcpy(h.engine, "rig-01.lab_A");
    h.epoch = 0x0123456789abcdefULL;
    h.ver_min = HF_PROTO_VERSION_MIN;
    h.ver_max = HF_PROTO_VERSION;
    h.last_seq[HF_LANE_CONTROL] = 17;
    h.last_seq[HF_LANE_DATA] = 123456789;
    h.run = 5;
    h.run_state = HF_RUN_RUNNING;
    return h;
}

static hf_welcome_t
s_welcome(void)
{
    hf_welcome_t w;
    memset(&w, 0, sizeof w);
    w.version = HF_PROTO_VERSION;
    w.epoch = UINT64_MAX;
    w.acked[HF_LANE_CONTROL] = 16;
    w.acked[HF_LANE_DATA] = 0;
    return w;
}

/* A control batch with one record of each control kind, seqs 10..13. */
static size_t
s_control_batch(uint8_t *buf, size_t cap)
{
    const uint8_t kinds[] = {HF_KIND_EVENT, HF_KIND_ALARM, HF_KIND_HW_ERROR, HF_KIND_GAP,
                             HF_KIND_COMMAND};
    hf_batch_writer_t w;
    size_t len = 0;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_CONTROL, buf, cap), HF_OK);
    for (int i = 0; i < 4; i++) {
        hf_record_t r = pt_make(kinds[i], 10 + (uint64_t)i);
        cr_assert_eq(hf_batch_add(&w, &r), HF_OK);
    }
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    return len;
}

static size_t
s_sample_batch(uint8_t *buf, size_t cap, uint64_t first, uint32_t n)
{
    hf_batch_writer_t w;
    size_t len = 0;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, cap), HF_OK);
    for (uint32_t i = 0; i < n; i++) {
        hf_record_t r;
        hf_record_sample(&r, 7, 1700000000000000000ULL + i, 5000000ULL + i, i % 8, i * 0.25 - 3);
        r.seq = first + i;
        cr_assert_eq(hf_batch_add(&w, &r), HF_OK, "add %u", i);
    }
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    return len;
}

static hf_err_t
s_decode(const uint8_t *buf, size_t len)
{
    hf_frame_t f;
    hf_record_t recs[S_RECS];
    return hf_frame_decode(buf, len, &f, recs, S_RECS);
}

/* Every valid frame kind we have, for the loops over malformed input. */
typedef struct {
    uint8_t buf[4096];
    size_t len;
} s_frame_buf_t;

static size_t
s_corpus(s_frame_buf_t *c)
{
    size_t n = 0;
    hf_hello_t h = s_hello();
    cr_assert_eq(hf_frame_encode_hello(&h, c[n].buf, sizeof c[n].buf, &c[n].len), HF_OK);
    n++;
    hf_welcome_t w = s_welcome();
    cr_assert_eq(hf_frame_encode_welcome(&w, c[n].buf, sizeof c[n].buf, &c[n].len), HF_OK);
    n++;
    hf_ack_t a = {.lane = HF_LANE_DATA, .seq = 1u << 20};
    cr_assert_eq(hf_frame_encode_ack(&a, c[n].buf, sizeof c[n].buf, &c[n].len), HF_OK);
    n++;
    hf_ping_t p = {.nonce = 0xfeedface};
    cr_assert_eq(hf_frame_encode_ping(&p, c[n].buf, sizeof c[n].buf, &c[n].len), HF_OK);
    n++;
    cr_assert_eq(hf_frame_encode_pong(&p, c[n].buf, sizeof c[n].buf, &c[n].len), HF_OK);
    n++;
    c[n].len = s_control_batch(c[n].buf, sizeof c[n].buf);
    n++;
    c[n].len = s_sample_batch(c[n].buf, sizeof c[n].buf, 1000, 5);
    n++;
    return n;
}
#define S_CORPUS_MAX 8

/* ---- round trips -------------------------------------------------------- */

Test(frames, frame_names, .timeout = 10)
{
    cr_assert_str_eq(hf_frame_name(HF_FRAME_HELLO), "HELLO");
    cr_assert_str_eq(hf_frame_name(HF_FRAME_WELCOME), "WELCOME");
    cr_assert_str_eq(hf_frame_name(HF_FRAME_BATCH), "BATCH");
    cr_assert_str_eq(hf_frame_name(HF_FRAME_ACK), "ACK");
    cr_assert_str_eq(hf_frame_name(HF_FRAME_PING), "PING");
    cr_assert_str_eq(hf_frame_name(HF_FRAME_PONG), "PONG");
    cr_assert_str_eq(hf_frame_name(0), "?");
    cr_assert_str_eq(hf_frame_name(7), "STATUS");
    cr_assert_str_eq(hf_frame_name(8), "BYE");
    cr_assert_str_eq(hf_frame_name(9), "COMMAND");
    cr_assert_str_eq(hf_frame_name(10), "?");
}

Test(frames, command_round_trips_with_and_without_a_body, .timeout = 10)
{
    static uint8_t buf[HF_COMMAND_BODY_MAX + 256];
    const char *method = "sample oven.temp 10\nhold 1s\n";
    hf_command_t c = {.id = 42, .verb = HF_CMD_START, .value = 0.0};
    strcpy(c.name, "warmup");
    c.body = method;
    c.body_len = (uint32_t)strlen(method);
    size_t len = 0;
    cr_assert_eq(hf_frame_encode_command(&c, buf, sizeof buf, &len), HF_OK);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_COMMAND);
    cr_assert_eq(f.u.command.id, 42);
    cr_assert_eq(f.u.command.verb, HF_CMD_START);
    cr_assert_str_eq(f.u.command.name, "warmup");
    cr_assert_eq(f.u.command.body_len, strlen(method));
    cr_assert_eq(memcmp(f.u.command.body, method, strlen(method)), 0);
    /* every truncation is refused */
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(hf_frame_decode(buf, cut, &f, NULL, 0), HF_EPROTO, "cut %zu", cut);

    hf_command_t s = {.id = 7, .verb = HF_CMD_SET, .value = -12.5};
    strcpy(s.name, "oven.setpoint");
    cr_assert_eq(hf_frame_encode_command(&s, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.u.command.verb, HF_CMD_SET);
    cr_assert_eq(f.u.command.value, -12.5);
    cr_assert_null(f.u.command.body);
    cr_assert_eq(f.u.command.body_len, 0);
}

Test(frames, command_encoder_refuses_bad_fields, .timeout = 10)
{
    uint8_t buf[512];
    size_t len;
    hf_command_t c = {.id = 0, .verb = HF_CMD_ABORT};
    cr_assert_eq(hf_frame_encode_command(&c, buf, sizeof buf, &len), HF_EINVAL);
    c.id = 1;
    c.verb = HF_CMD_MAX + 1;
    cr_assert_eq(hf_frame_encode_command(&c, buf, sizeof buf, &len), HF_EINVAL);
    c.verb = HF_CMD_START;
    c.body = "x";
    c.body_len = HF_COMMAND_BODY_MAX + 1;
    cr_assert_eq(hf_frame_encode_command(&c, buf, sizeof buf, &len), HF_EINVAL);
    c.body_len = 1;
    cr_assert_eq(hf_frame_encode_command(&c, buf, 4, &len), HF_EFULL);
}

Test(frames, hello_round_trips, .timeout = 10)
{
    uint8_t buf[256];
    size_t len;
    hf_hello_t h = s_hello();
    h.last_seq[HF_LANE_DATA] = UINT64_MAX;
    h.run = UINT64_MAX;
    h.run_state = 255;
    memset(h.engine, 'e', HF_ENGINE_ID_MAX);
    h.engine[HF_ENGINE_ID_MAX] = '\0';
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_OK);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_HELLO);
    cr_assert_eq(f.version, HF_PROTO_VERSION);
    cr_assert_str_eq(f.u.hello.engine, h.engine);
    cr_assert_eq(f.u.hello.epoch, h.epoch);
    cr_assert_eq(f.u.hello.ver_min, h.ver_min);
    cr_assert_eq(f.u.hello.ver_max, h.ver_max);
    cr_assert_eq(f.u.hello.last_seq[0], h.last_seq[0]);
    cr_assert_eq(f.u.hello.last_seq[1], h.last_seq[1]);
    cr_assert_eq(f.u.hello.run, h.run);
    cr_assert_eq(f.u.hello.run_state, h.run_state);
}

Test(frames, welcome_ack_ping_pong_round_trip, .timeout = 10)
{
    uint8_t buf[128];
    size_t len;
    hf_frame_t f;
    hf_welcome_t w = s_welcome();
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_WELCOME);
    cr_assert_eq(f.u.welcome.version, w.version);
    cr_assert_eq(f.u.welcome.epoch, w.epoch);
    cr_assert_eq(f.u.welcome.acked[0], 16);
    cr_assert_eq(f.u.welcome.acked[1], 0);

    const uint64_t seqs[] = {0, 1, UINT64_MAX};
    for (int lane = 0; lane < HF_LANE_COUNT; lane++) {
        for (int i = 0; i < 3; i++) {
            hf_ack_t a = {.lane = (uint8_t)lane, .seq = seqs[i]};
            cr_assert_eq(hf_frame_encode_ack(&a, buf, sizeof buf, &len), HF_OK);
            cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
            cr_assert_eq(f.type, HF_FRAME_ACK);
            cr_assert_eq(f.u.ack.lane, lane);
            cr_assert_eq(f.u.ack.seq, seqs[i]);
        }
    }
    for (int i = 0; i < 3; i++) {
        hf_ping_t p = {.nonce = seqs[i]};
        cr_assert_eq(hf_frame_encode_ping(&p, buf, sizeof buf, &len), HF_OK);
        cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
        cr_assert_eq(f.type, HF_FRAME_PING);
        cr_assert_eq(f.u.ping.nonce, seqs[i]);
        cr_assert_eq(hf_frame_encode_pong(&p, buf, sizeof buf, &len), HF_OK);
        cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
        cr_assert_eq(f.type, HF_FRAME_PONG);
        cr_assert_eq(f.u.ping.nonce, seqs[i]);
    }
}

Test(frames, ping_is_four_bytes_for_small_nonce, .timeout = 10)
{
    uint8_t buf[16];
    size_t len;
    hf_ping_t p = {.nonce = 3};
    cr_assert_eq(hf_frame_encode_ping(&p, buf, sizeof buf, &len), HF_OK);
    const uint8_t want[] = {0x93, HF_PROTO_VERSION, HF_FRAME_PING, 3};
    cr_assert_eq(len, sizeof want);
    cr_assert(memcmp(buf, want, len) == 0);
}

Test(frames, control_batch_round_trips_every_kind, .timeout = 10)
{
    uint8_t buf[4096];
    size_t len = s_control_batch(buf, sizeof buf);
    hf_frame_t f;
    hf_record_t recs[S_RECS];
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, S_RECS), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_BATCH);
    cr_assert_eq(f.u.batch.lane, HF_LANE_CONTROL);
    cr_assert_eq(f.u.batch.count, 4);
    const uint8_t kinds[] = {HF_KIND_EVENT, HF_KIND_ALARM, HF_KIND_HW_ERROR, HF_KIND_GAP,
                             HF_KIND_COMMAND};
    for (int i = 0; i < 4; i++) {
        hf_record_t want = pt_make(kinds[i], 10 + (uint64_t)i);
        cr_assert(pt_equal(&want, &recs[i]), "record %d", i);
    }
}

Test(frames, batch_encoding_is_standard_msgpack, .timeout = 10)
{
    uint8_t buf[4096];
    size_t len = s_control_batch(buf, sizeof buf), off = 0;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, (const char *)buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(up.data.via.array.size, 4);
    cr_assert_eq(up.data.via.array.ptr[3].type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(up.data.via.array.ptr[3].via.array.size, 4);
    msgpack_unpacked_destroy(&up);
}

/* ---- BATCH writer ------------------------------------------------------- */

Test(frames, batch_writer_mixes_add_and_add_encoded, .timeout = 10)
{
    uint8_t buf[1024], rec[HF_PROTO_MAX_RECORD];
    hf_batch_writer_t w;
    size_t len, n;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, sizeof buf), HF_OK);
    hf_record_t r;
    hf_record_sample(&r, 1, 2, 3, 4, 5.5);
    r.seq = 1;
    cr_assert_eq(hf_batch_add(&w, &r), HF_OK);
    r.seq = 2;
    cr_assert_eq(hf_record_encode(&r, rec, sizeof rec, &n), HF_OK);
    cr_assert_eq(hf_batch_add_encoded(&w, 2, rec, n), HF_OK);
    r.seq = 3;
    cr_assert_eq(hf_batch_add(&w, &r), HF_OK);
    cr_assert_eq(w.count, 3);
    cr_assert_eq(w.last_seq, 3);
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    cr_assert_eq(buf[4], 0xdd);
    cr_assert_eq(buf[8], 3, "finish patches the array32 count");
    hf_frame_t f;
    hf_record_t recs[S_RECS];
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, S_RECS), HF_OK);
    cr_assert_eq(f.u.batch.count, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(recs[i].seq, (uint64_t)i + 1);
}

Test(frames, empty_batch_is_valid, .timeout = 10)
{
    uint8_t buf[16];
    hf_batch_writer_t w;
    size_t len;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_CONTROL, buf, sizeof buf), HF_OK);
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    cr_assert_eq(len, 9);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_BATCH);
    cr_assert_eq(f.u.batch.count, 0);
}

Test(frames, batch_full_buffer_keeps_previous_records_valid, .timeout = 10)
{
    uint8_t buf[200];
    memset(buf, 0xee, sizeof buf);
    hf_batch_writer_t w;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, 150), HF_OK);
    hf_record_t r;
    uint32_t added = 0;
    hf_err_t rc = HF_OK;
    for (uint64_t seq = 1; seq < 100; seq++) {
        hf_record_sample(&r, 1, 1700000000000000000ULL, 1ULL << 40, 3, 0.1 * (double)seq);
        r.seq = seq;
        rc = hf_batch_add(&w, &r);
        if (rc != HF_OK)
            break;
        added++;
    }
    cr_assert_eq(rc, HF_EFULL);
    cr_assert(added > 0);
    size_t before = w.len;
    uint8_t rec[HF_PROTO_MAX_RECORD];
    size_t n;
    cr_assert_eq(hf_record_encode(&r, rec, sizeof rec, &n), HF_OK);
    cr_assert_eq(hf_batch_add_encoded(&w, r.seq, rec, n), HF_EFULL);
    cr_assert_eq(w.len, before);
    cr_assert_eq(w.count, added);
    for (size_t i = 150; i < sizeof buf; i++)
        cr_assert_eq(buf[i], 0xee, "wrote past cap at %zu", i);
    size_t len;
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    hf_frame_t f;
    hf_record_t recs[S_RECS];
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, S_RECS), HF_OK);
    cr_assert_eq(f.u.batch.count, added);
    cr_assert_eq(recs[added - 1].seq, added);
}

Test(frames, batch_writer_refuses_bad_input, .timeout = 10)
{
    uint8_t buf[512];
    hf_batch_writer_t w;
    cr_assert_eq(hf_batch_begin(&w, 2, buf, sizeof buf), HF_EINVAL);
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, NULL, sizeof buf), HF_EINVAL);
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, 8), HF_EFULL);
    hf_record_t r;
    hf_record_sample(&r, 1, 2, 3, 4, 5);
    size_t len;
    cr_assert_eq(hf_batch_add(&w, &r), HF_ESTATE, "writer whose begin failed");
    cr_assert_eq(hf_batch_finish(&w, &len), HF_ESTATE);

    cr_assert_eq(hf_batch_begin(&w, HF_LANE_CONTROL, buf, sizeof buf), HF_OK);
    r.seq = 1;
    cr_assert_eq(hf_batch_add(&w, &r), HF_EINVAL, "sample into control lane");
    hf_record_event(&r, 1, 2, 3, HF_EV_STEP, 1, "x");
    r.seq = 5;
    cr_assert_eq(hf_batch_add(&w, &r), HF_OK);
    cr_assert_eq(hf_batch_add(&w, &r), HF_EINVAL, "same seq again");
    r.seq = 4;
    cr_assert_eq(hf_batch_add(&w, &r), HF_EINVAL, "seq going back");
    r.u.event.type = 0;
    r.seq = 6;
    cr_assert_eq(hf_batch_add(&w, &r), HF_EINVAL, "invalid record");
    cr_assert_eq(hf_batch_add_encoded(&w, 6, buf, 0), HF_EINVAL);
    cr_assert_eq(hf_batch_add_encoded(&w, 6, buf, HF_PROTO_MAX_RECORD + 1), HF_EINVAL);
    cr_assert_eq(w.count, 1);
}

Test(frames, batch_of_max_records_round_trips_and_one_more_is_full, .timeout = 20)
{
    size_t cap = 2u << 20;
    uint8_t *buf = malloc(cap);
    hf_record_t *recs = malloc(sizeof *recs * HF_PROTO_MAX_BATCH);
    cr_assert(buf && recs);
    size_t len = s_sample_batch(buf, cap, 1, HF_PROTO_MAX_BATCH);
    cr_assert(len <= HF_PROTO_MAX_FRAME);

    hf_batch_writer_t w;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, cap), HF_OK);
    hf_record_t r;
    for (uint32_t i = 0; i < HF_PROTO_MAX_BATCH; i++) {
        hf_record_sample(&r, 7, 1700000000000000000ULL + i, 5000000ULL + i, i % 8,
                         i * 0.25 - 3);
        r.seq = 1 + (uint64_t)i;
        cr_assert_eq(hf_batch_add(&w, &r), HF_OK);
    }
    r.seq++;
    cr_assert_eq(hf_batch_add(&w, &r), HF_EFULL, "count limit");
    uint8_t rec[HF_PROTO_MAX_RECORD];
    size_t n;
    cr_assert_eq(hf_record_encode(&r, rec, sizeof rec, &n), HF_OK);
    cr_assert_eq(hf_batch_add_encoded(&w, r.seq, rec, n), HF_EFULL, "count limit");
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);

    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, HF_PROTO_MAX_BATCH), HF_OK);
    cr_assert_eq(f.u.batch.count, HF_PROTO_MAX_BATCH);
    for (uint32_t i = 0; i < HF_PROTO_MAX_BATCH; i++) {
        cr_assert_eq(recs[i].seq, 1 + (uint64_t)i);
        cr_assert_eq(recs[i].u.sample.value, i * 0.25 - 3);
        cr_assert_eq(recs[i].u.sample.channel, i % 8);
    }
    /* The same frame into a smaller record array is refused. */
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, HF_PROTO_MAX_BATCH - 1), HF_EPROTO);

    /* A hand-built batch of MAX_BATCH + 1 records is refused. */
    memcpy(buf + len, rec, n);
    len += n;
    buf[5] = 0;
    buf[6] = 0;
    buf[7] = (uint8_t)((HF_PROTO_MAX_BATCH + 1) >> 8);
    buf[8] = (uint8_t)(HF_PROTO_MAX_BATCH + 1);
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, HF_PROTO_MAX_BATCH), HF_EPROTO);
    free(recs);
    free(buf);
}

Test(frames, batch_writer_caps_frame_at_max_frame, .timeout = 20)
{
    size_t cap = HF_PROTO_MAX_FRAME + 4096;
    uint8_t *buf = malloc(cap);
    cr_assert(buf);
    hf_batch_writer_t w;
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_CONTROL, buf, cap), HF_OK);
    cr_assert_eq(w.cap, HF_PROTO_MAX_FRAME);
    free(buf);
}

/* ---- decoder refusals --------------------------------------------------- */

Test(frames, batch_decode_needs_room_for_records, .timeout = 10)
{
    uint8_t buf[4096];
    size_t len = s_control_batch(buf, sizeof buf);
    hf_frame_t f;
    hf_record_t recs[4];
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, 3), HF_EPROTO);
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_EPROTO);
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, 4), HF_OK);
}

Test(frames, batch_decode_refuses_non_increasing_seqs_and_foreign_lane, .timeout = 10)
{
    uint8_t buf[1024], rec[HF_PROTO_MAX_RECORD];
    size_t len, n;
    hf_batch_writer_t w;
    hf_frame_t f;
    hf_record_t recs[S_RECS];
    const uint64_t orders[][2] = {{5, 5}, {5, 4}, {UINT64_MAX, 0}};
    for (int o = 0; o < 3; o++) {
        cr_assert_eq(hf_batch_begin(&w, HF_LANE_DATA, buf, sizeof buf), HF_OK);
        for (int i = 0; i < 2; i++) {
            hf_record_t r;
            hf_record_sample(&r, 1, 2, 3, 4, 5);
            r.seq = orders[o][i];
            cr_assert_eq(hf_record_encode(&r, rec, sizeof rec, &n), HF_OK);
            /* add_encoded trusts its input, so it can build the bad batch */
            cr_assert_eq(hf_batch_add_encoded(&w, r.seq, rec, n), HF_OK);
        }
        cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
        cr_assert_eq(hf_frame_decode(buf, len, &f, recs, S_RECS), HF_EPROTO, "order %d", o);
    }
    cr_assert_eq(hf_batch_begin(&w, HF_LANE_CONTROL, buf, sizeof buf), HF_OK);
    hf_record_t r;
    hf_record_sample(&r, 1, 2, 3, 4, 5);
    r.seq = 1;
    cr_assert_eq(hf_record_encode(&r, rec, sizeof rec, &n), HF_OK);
    cr_assert_eq(hf_batch_add_encoded(&w, 1, rec, n), HF_OK);
    cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
    cr_assert_eq(hf_frame_decode(buf, len, &f, recs, S_RECS), HF_EPROTO, "sample in control");
}

Test(frames, every_truncation_of_every_frame_is_refused, .timeout = 30)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(s_decode(c[i].buf, c[i].len), HF_OK, "corpus %zu", i);
        for (size_t cut = 0; cut < c[i].len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
            memcpy(p, c[i].buf, cut);
            cr_assert_eq(s_decode(p, cut), HF_EPROTO, "corpus %zu cut at %zu", i, cut);
            free(p);
        }
    }
    free(c);
}

Test(frames, trailing_bytes_are_refused, .timeout = 10)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    for (size_t i = 0; i < n; i++) {
        const uint8_t tails[] = {0x00, 0xc0, 0x90};
        for (int t = 0; t < 3; t++) {
            c[i].buf[c[i].len] = tails[t];
            cr_assert_eq(s_decode(c[i].buf, c[i].len + 1), HF_EPROTO, "corpus %zu", i);
        }
    }
    free(c);
}

Test(frames, wrong_type_in_each_field_is_refused, .timeout = 30)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    for (size_t i = 0; i < n; i++) {
        int tried = 0;
        int accepted = pt_wrong_type_each_field(c[i].buf, c[i].len, s_decode, &tried);
        cr_assert_eq(accepted, 0, "corpus %zu accepted %d of %d", i, accepted, tried);
        cr_assert(tried >= 9, "corpus %zu tried %d", i, tried);
    }
    free(c);
}

static hf_err_t
s_decode_bytes(const uint8_t *b, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, b, n);
    hf_err_t rc = s_decode(p, n);
    free(p);
    return rc;
}

Test(frames, oversized_counts_and_lengths_are_refused, .timeout = 10)
{
    /* array32 claiming 4G elements in 5 bytes */
    const uint8_t a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(s_decode_bytes(a32, sizeof a32), HF_EPROTO);
    /* a BATCH whose records array claims 4G */
    const uint8_t b32[] = {0x94, HF_PROTO_VERSION, HF_FRAME_BATCH, 1, 0xdd, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(s_decode_bytes(b32, sizeof b32), HF_EPROTO);
    /* a BATCH claiming MAX_BATCH + 1 records, with enough bytes to look plausible */
    uint8_t *big = calloc(1, 20000);
    memcpy(big, b32, sizeof b32);
    big[5] = 0;
    big[6] = 0;
    big[7] = (uint8_t)((HF_PROTO_MAX_BATCH + 1) >> 8);
    big[8] = (uint8_t)(HF_PROTO_MAX_BATCH + 1);
    cr_assert_eq(s_decode_bytes(big, 20000), HF_EPROTO);
    free(big);
    /* array16 claiming more than is left */
    const uint8_t a16[] = {0xdc, 0x00, 0x05, 0x01, 0x05};
    cr_assert_eq(s_decode_bytes(a16, sizeof a16), HF_EPROTO);
    /* a HELLO whose engine str32 claims 4G */
    const uint8_t s32[] = {0x99, 1, 1, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    cr_assert_eq(s_decode_bytes(s32, sizeof s32), HF_EPROTO);
    /* an engine id longer than HF_ENGINE_ID_MAX */
    pt_pack_t p;
    pt_pack_init(&p);
    msgpack_pack_array(&p.pk, 9);
    msgpack_pack_uint8(&p.pk, 1);
    msgpack_pack_uint8(&p.pk, HF_FRAME_HELLO);
    char id[HF_ENGINE_ID_MAX + 2];
    memset(id, 'a', HF_ENGINE_ID_MAX + 1);
    id[HF_ENGINE_ID_MAX + 1] = '\0';
    pt_pack_str(&p, id);
    msgpack_pack_uint8(&p.pk, 1);
    msgpack_pack_uint8(&p.pk, 1);
    msgpack_pack_uint8(&p.pk, 1);
    msgpack_pack_array(&p.pk, 2);
    msgpack_pack_uint8(&p.pk, 0);
    msgpack_pack_uint8(&p.pk, 0);
    msgpack_pack_uint8(&p.pk, 0);
    msgpack_pack_uint8(&p.pk, 0);
    cr_assert_eq(s_decode(pt_data(&p), p.sb.size), HF_EPROTO);
    pt_pack_destroy(&p);
}

Test(frames, frame_larger_than_max_frame_is_refused, .timeout = 20)
{
    size_t n = HF_PROTO_MAX_FRAME + 1;
    uint8_t *buf = calloc(1, n);
    /* a PING followed by padding: refused on size before parsing */
    buf[0] = 0x93;
    buf[1] = 1;
    buf[2] = HF_FRAME_PING;
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, n, &f, NULL, 0), HF_EPROTO);
    free(buf);
    cr_assert_eq(hf_frame_decode(NULL, 0, &f, NULL, 0), HF_EPROTO);
}

/* Packs [v, HELLO, ...valid fields..., extra] where extra is nested depth
 * deep: [[[...[1]...]]]. */
static void
s_hello_with_extra(pt_pack_t *p, unsigned depth, uint64_t version)
{
    msgpack_pack_array(&p->pk, 10);
    msgpack_pack_uint64(&p->pk, version);
    msgpack_pack_uint8(&p->pk, HF_FRAME_HELLO);
    pt_pack_str(p, "rig");
    msgpack_pack_uint8(&p->pk, 9);
    msgpack_pack_uint8(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 3);
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
    for (unsigned i = 0; i < depth; i++)
        msgpack_pack_array(&p->pk, 1);
    msgpack_pack_uint8(&p->pk, 1);
}

Test(frames, hello_skips_appended_elements_but_not_deep_nesting, .timeout = 10)
{
    hf_frame_t f;
    for (unsigned depth = 0; depth <= 4; depth++) {
        pt_pack_t p;
        pt_pack_init(&p);
        s_hello_with_extra(&p, depth, 1);
        cr_assert_eq(hf_frame_decode(pt_data(&p), p.sb.size, &f, NULL, 0), HF_OK, "depth %u",
                     depth);
        cr_assert_eq(f.u.hello.ver_max, 3);
        pt_pack_destroy(&p);
    }
    const unsigned deep[] = {5, 16, 17, 1000};
    for (int i = 0; i < 4; i++) {
        pt_pack_t p;
        pt_pack_init(&p);
        s_hello_with_extra(&p, deep[i], 1);
        cr_assert_eq(hf_frame_decode(pt_data(&p), p.sb.size, &f, NULL, 0), HF_EPROTO, "depth %u",
                     deep[i]);
        pt_pack_destroy(&p);
    }
    /* A map, bin, ext, str and float appended are skipped too. */
    pt_pack_t p;
    pt_pack_init(&p);
    s_hello_with_extra(&p, 0, 1);
    p.sb.data[0] = (char)(0x90 | 15); /* 10 + 5 more elements */
    msgpack_pack_map(&p.pk, 1);
    pt_pack_str(&p, "k");
    msgpack_pack_array(&p.pk, 2);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_int64(&p.pk, -5);
    msgpack_pack_bin_with_body(&p.pk, "abc", 3);
    msgpack_pack_ext_with_body(&p.pk, "abcd", 4, 7);
    msgpack_pack_double(&p.pk, 1.5);
    msgpack_pack_ext_with_body(&p.pk, "abcdefghijk", 11, -3);
    cr_assert_eq(hf_frame_decode(pt_data(&p), p.sb.size, &f, NULL, 0), HF_OK);
    pt_pack_destroy(&p);
}

Test(frames, hello_from_other_versions_still_decodes, .timeout = 10)
{
    const uint64_t versions[] = {0, HF_PROTO_VERSION + 1, 65535};
    hf_frame_t f;
    for (int i = 0; i < 3; i++) {
        pt_pack_t p;
        pt_pack_init(&p);
        s_hello_with_extra(&p, 1, versions[i]);
        cr_assert_eq(hf_frame_decode(pt_data(&p), p.sb.size, &f, NULL, 0), HF_OK);
        cr_assert_eq(f.version, versions[i]);
        pt_pack_destroy(&p);
    }
    pt_pack_t p;
    pt_pack_init(&p);
    s_hello_with_extra(&p, 1, 65536);
    cr_assert_eq(hf_frame_decode(pt_data(&p), p.sb.size, &f, NULL, 0), HF_EPROTO);
    pt_pack_destroy(&p);
}

Test(frames, other_frames_with_unknown_version_are_refused, .timeout = 10)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    for (size_t i = 1; i < n; i++) { /* 0 is the HELLO */
        cr_assert_eq(c[i].buf[1], HF_PROTO_VERSION);
        c[i].buf[1] = 0;
        cr_assert_eq(s_decode(c[i].buf, c[i].len), HF_EPROTO, "corpus %zu v0", i);
        c[i].buf[1] = HF_PROTO_VERSION + 1;
        cr_assert_eq(s_decode(c[i].buf, c[i].len), HF_EPROTO, "corpus %zu v+1", i);
    }
    free(c);
}

Test(frames, unknown_frame_types_and_arity_are_refused, .timeout = 10)
{
    const uint64_t types[] = {0, 7, 255, 256, UINT64_MAX};
    for (int i = 0; i < 5; i++) {
        pt_pack_t p;
        pt_pack_init(&p);
        msgpack_pack_array(&p.pk, 3);
        msgpack_pack_uint8(&p.pk, HF_PROTO_VERSION);
        msgpack_pack_uint64(&p.pk, types[i]);
        msgpack_pack_uint8(&p.pk, 1);
        cr_assert_eq(s_decode(pt_data(&p), p.sb.size), HF_EPROTO, "type %lu",
                     (unsigned long)types[i]);
        pt_pack_destroy(&p);
    }
    /* PING with 4 elements, ACK with 3, a bare version */
    const uint8_t ping4[] = {0x94, 1, HF_FRAME_PING, 1, 2};
    const uint8_t ack3[] = {0x93, 1, HF_FRAME_ACK, 1};
    const uint8_t bare[] = {0x91, 1};
    const uint8_t empty[] = {0x90};
    const uint8_t lane2[] = {0x94, 1, HF_FRAME_ACK, 2, 1};
    cr_assert_eq(s_decode_bytes(ping4, sizeof ping4), HF_EPROTO);
    cr_assert_eq(s_decode_bytes(ack3, sizeof ack3), HF_EPROTO);
    cr_assert_eq(s_decode_bytes(bare, sizeof bare), HF_EPROTO);
    cr_assert_eq(s_decode_bytes(empty, sizeof empty), HF_EPROTO);
    cr_assert_eq(s_decode_bytes(lane2, sizeof lane2), HF_EPROTO);
}

/* Packs a HELLO field by field so tests can break one rule at a time. */
static void
s_pack_hello(pt_pack_t *p, const char *engine, uint64_t epoch, uint64_t vmin, uint64_t vmax)
{
    msgpack_pack_array(&p->pk, 9);
    msgpack_pack_uint8(&p->pk, HF_PROTO_VERSION);
    msgpack_pack_uint8(&p->pk, HF_FRAME_HELLO);
    pt_pack_str(p, engine);
    msgpack_pack_uint64(&p->pk, epoch);
    msgpack_pack_uint64(&p->pk, vmin);
    msgpack_pack_uint64(&p->pk, vmax);
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
    msgpack_pack_uint8(&p->pk, 0);
}

static hf_err_t
s_hello_rc(const char *engine, uint64_t epoch, uint64_t vmin, uint64_t vmax)
{
    pt_pack_t p;
    pt_pack_init(&p);
    s_pack_hello(&p, engine, epoch, vmin, vmax);
    hf_err_t rc = s_decode(pt_data(&p), p.sb.size);
    pt_pack_destroy(&p);
    return rc;
}

static hf_err_t
s_welcome_rc(uint64_t version, uint64_t epoch, unsigned lanes)
{
    pt_pack_t p;
    pt_pack_init(&p);
    msgpack_pack_array(&p.pk, 5);
    msgpack_pack_uint8(&p.pk, HF_PROTO_VERSION);
    msgpack_pack_uint8(&p.pk, HF_FRAME_WELCOME);
    msgpack_pack_uint64(&p.pk, version);
    msgpack_pack_uint64(&p.pk, epoch);
    msgpack_pack_array(&p.pk, lanes);
    for (unsigned i = 0; i < lanes; i++)
        msgpack_pack_uint8(&p.pk, 1);
    hf_err_t rc = s_decode(pt_data(&p), p.sb.size);
    pt_pack_destroy(&p);
    return rc;
}

Test(frames, hello_and_welcome_field_rules, .timeout = 10)
{
    cr_assert_eq(s_hello_rc("rig", 1, 1, 1), HF_OK);
    cr_assert_eq(s_hello_rc("rig", 1, 1, 9), HF_OK);
    cr_assert_eq(s_hello_rc("rig", 0, 1, 1), HF_EPROTO, "epoch 0");
    cr_assert_eq(s_hello_rc("", 1, 1, 1), HF_EPROTO, "empty engine");
    cr_assert_eq(s_hello_rc("r g", 1, 1, 1), HF_EPROTO, "engine with a space");
    cr_assert_eq(s_hello_rc("rig", 1, 0, 1), HF_EPROTO, "ver_min 0");
    cr_assert_eq(s_hello_rc("rig", 1, 2, 1), HF_EPROTO, "ver_min > ver_max");
    cr_assert_eq(s_hello_rc("rig", 1, 1, 65536), HF_EPROTO, "ver_max > 16 bits");

    cr_assert_eq(s_welcome_rc(HF_PROTO_VERSION, 1, 2), HF_OK);
    cr_assert_eq(s_welcome_rc(HF_PROTO_VERSION, 0, 2), HF_EPROTO, "epoch 0");
    cr_assert_eq(s_welcome_rc(0, 1, 2), HF_EPROTO, "version 0");
    cr_assert_eq(s_welcome_rc(HF_PROTO_VERSION + 1, 1, 2), HF_EPROTO, "unknown version");
    cr_assert_eq(s_welcome_rc(HF_PROTO_VERSION, 1, 1), HF_EPROTO, "one lane");
    cr_assert_eq(s_welcome_rc(HF_PROTO_VERSION, 1, 3), HF_EPROTO, "three lanes");
}

Test(frames, encoders_refuse_invalid_frames, .timeout = 10)
{
    uint8_t buf[256];
    size_t len;
    hf_hello_t h = s_hello();
    h.epoch = 0;
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_EINVAL);
    h = s_hello();
    strcpy(h.engine, "bad id");
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_EINVAL);
    h = s_hello();
    memset(h.engine, 'a', sizeof h.engine); /* not NUL-terminated */
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_EINVAL);
    h = s_hello();
    h.ver_min = 2;
    h.ver_max = 1;
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_EINVAL);
    h = s_hello();
    h.ver_min = 0;
    cr_assert_eq(hf_frame_encode_hello(&h, buf, sizeof buf, &len), HF_EINVAL);
    hf_welcome_t w = s_welcome();
    w.epoch = 0;
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_EINVAL);
    w = s_welcome();
    w.version = HF_PROTO_VERSION + 1;
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_EINVAL);
    hf_ack_t a = {.lane = 2, .seq = 1};
    cr_assert_eq(hf_frame_encode_ack(&a, buf, sizeof buf, &len), HF_EINVAL);
}

Test(frames, encoders_return_full_for_every_short_cap, .timeout = 10)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    (void)n;
    hf_hello_t h = s_hello();
    hf_welcome_t w = s_welcome();
    hf_ack_t a = {.lane = 1, .seq = UINT64_MAX};
    hf_ping_t p = {.nonce = UINT64_MAX};
    uint8_t buf[256];
    size_t len;
    for (size_t cap = 0; cap < c[0].len; cap++)
        cr_assert_eq(hf_frame_encode_hello(&h, buf, cap, &len), HF_EFULL);
    for (size_t cap = 0; cap < c[1].len; cap++)
        cr_assert_eq(hf_frame_encode_welcome(&w, buf, cap, &len), HF_EFULL);
    cr_assert_eq(hf_frame_encode_ack(&a, buf, sizeof buf, &len), HF_OK);
    for (size_t cap = 0; cap < len; cap++)
        cr_assert_eq(hf_frame_encode_ack(&a, buf, cap, &len), HF_EFULL);
    cr_assert_eq(hf_frame_encode_ping(&p, buf, sizeof buf, &len), HF_OK);
    for (size_t cap = 0; cap < len; cap++) {
        cr_assert_eq(hf_frame_encode_ping(&p, buf, cap, &len), HF_EFULL);
        cr_assert_eq(hf_frame_encode_pong(&p, buf, cap, &len), HF_EFULL);
    }
    free(c);
}

/* ---- mutation loop ------------------------------------------------------ */

/* Checks what a successful decode promises, and that the result re-encodes
 * (anything the decoder accepts, the encoders accept). */
static void
s_check_decoded(const hf_frame_t *f, const hf_record_t *recs)
{
    uint8_t out[S_RECS * HF_PROTO_MAX_RECORD + 64];
    size_t len;
    switch (f->type) {
    case HF_FRAME_HELLO:
        cr_assert(hf_engine_id_valid(f->u.hello.engine));
        cr_assert_eq(hf_frame_encode_hello(&f->u.hello, out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_WELCOME:
        cr_assert_eq(hf_frame_encode_welcome(&f->u.welcome, out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_ACK:
        cr_assert_eq(hf_frame_encode_ack(&f->u.ack, out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_PING:
    case HF_FRAME_PONG:
        cr_assert_eq(hf_frame_encode_ping(&f->u.ping, out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_STATUS:
        cr_assert_eq(hf_frame_encode_status(&f->u.status, out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_BYE:
        cr_assert_eq(hf_frame_encode_bye(out, sizeof out, &len), HF_OK);
        break;
    case HF_FRAME_BATCH: {
        cr_assert(f->u.batch.count <= S_RECS);
        hf_batch_writer_t w;
        cr_assert_eq(hf_batch_begin(&w, f->u.batch.lane, out, sizeof out), HF_OK);
        for (uint32_t i = 0; i < f->u.batch.count; i++)
            cr_assert_eq(hf_batch_add(&w, &recs[i]), HF_OK, "re-add record %u", i);
        cr_assert_eq(hf_batch_finish(&w, &len), HF_OK);
        hf_frame_t g;
        hf_record_t again[S_RECS];
        cr_assert_eq(hf_frame_decode(out, len, &g, again, S_RECS), HF_OK);
        for (uint32_t i = 0; i < f->u.batch.count; i++)
            cr_assert(pt_equal(&recs[i], &again[i]), "record %u changed on re-encode", i);
        break;
    }
    default:
        cr_assert_fail("decoded unknown type %u", f->type);
    }
}

Test(frames, mutated_frames_never_crash_and_return_ok_or_eproto, .timeout = 120)
{
    s_frame_buf_t *c = malloc(sizeof *c * S_CORPUS_MAX);
    size_t n = s_corpus(c);
    uint64_t seed = 0x5eed0f40ad5ULL;
    const char *env = getenv("HF_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    fprintf(stderr, "mutation seed 0x%llx\n", (unsigned long long)seed);
    uint64_t s = seed;
    static const uint8_t interesting[] = {0x00, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                          0xc1, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xcf, 0xd0,
                                          0xd3, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
    uint8_t work[4096 + 64];
    hf_record_t recs[S_RECS];
    unsigned ok = 0, bad = 0;
    for (int iter = 0; iter < 100000; iter++) {
        const s_frame_buf_t *base = &c[pt_rand(&s) % n];
        size_t len = base->len;
        memcpy(work, base->buf, len);
        int muts = 1 + (int)(pt_rand(&s) % 4);
        for (int m = 0; m < muts && len > 0; m++) {
            size_t at = pt_rand(&s) % len;
            switch (pt_rand(&s) % 6) {
            case 0:
                work[at] ^= (uint8_t)(1u << (pt_rand(&s) % 8));
                break;
            case 1:
                work[at] = interesting[pt_rand(&s) % sizeof interesting];
                break;
            case 2:
                work[at] = (uint8_t)pt_rand(&s);
                break;
            case 3: /* truncate */
                len = at;
                break;
            case 4: /* insert a byte */
                if (len < sizeof work - 1) {
                    memmove(work + at + 1, work + at, len - at);
                    work[at] = interesting[pt_rand(&s) % sizeof interesting];
                    len++;
                }
                break;
            default: /* delete a byte */
                memmove(work + at, work + at + 1, len - at - 1);
                len--;
                break;
            }
        }
        uint8_t *p = malloc(len ? len : 1); /* exact size: ASan sees overreads */
        memcpy(p, work, len);
        hf_frame_t f;
        hf_err_t rc = hf_frame_decode(p, len, &f, recs, S_RECS);
        cr_assert(rc == HF_OK || rc == HF_EPROTO, "iter %d rc %d", iter, rc);
        if (rc == HF_OK) {
            ok++;
            s_check_decoded(&f, recs);
        } else {
            bad++;
        }
        free(p);
    }
    fprintf(stderr, "mutations: %u decoded, %u refused\n", ok, bad);
    cr_assert(bad > 50000, "most mutations must be refused");
    cr_assert(ok > 0, "some mutations (e.g. a changed value) still decode");
    free(c);
}

Test(frames, random_bytes_never_crash, .timeout = 60)
{
    uint64_t s = 0xb17e5ULL;
    uint8_t work[512];
    hf_record_t recs[S_RECS];
    for (int iter = 0; iter < 100000; iter++) {
        size_t len = pt_rand(&s) % sizeof work;
        for (size_t i = 0; i < len; i++)
            work[i] = (uint8_t)pt_rand(&s);
        /* Half of them start like a real frame so the parser gets further. */
        if (len >= 3 && (iter & 1)) {
            work[0] = (uint8_t)(0x90 | (pt_rand(&s) % 10));
            work[1] = HF_PROTO_VERSION;
            work[2] = (uint8_t)(1 + pt_rand(&s) % 6);
        }
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, work, len);
        hf_frame_t f;
        hf_err_t rc = hf_frame_decode(p, len, &f, recs, S_RECS);
        cr_assert(rc == HF_OK || rc == HF_EPROTO, "iter %d rc %d", iter, rc);
        if (rc == HF_OK)
            s_check_decoded(&f, recs);
        hf_record_t r;
        size_t used = 0;
        rc = hf_record_decode(p, len, &r, &used);
        cr_assert(rc == HF_OK || rc == HF_EPROTO);
        if (rc == HF_OK)
            cr_assert(used <= len);
        free(p);
    }
}

Test(frames, status_round_trips_and_refuses_malformed, .timeout = 10)
{
    hf_status_t st = {.pending = {3, 4000000},
                      .oldest_age_ms = {12, 3600000},
                      .drain_per_s = 1500000,
                      .eta_ms = 2666,
                      .dropped = 77,
                      .spool_bytes = 1u << 30,
                      .spool_limit = UINT64_MAX,
                      .samples = 123456789,
                      .late = 12,
                      .missed = 3};
    uint8_t buf[256];
    size_t len = 0;
    cr_assert_eq(hf_frame_encode_status(&st, buf, sizeof buf, &len), HF_OK);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_STATUS);
    cr_assert(memcmp(&f.u.status, &st, sizeof st) == 0);
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(hf_frame_decode(buf, cut, &f, NULL, 0), HF_EPROTO, "cut at %zu", cut);
    uint8_t small[8];
    cr_assert_eq(hf_frame_encode_status(&st, small, sizeof small, &len), HF_EFULL);
}

Test(frames, bye_round_trips_and_refuses_extra_elements, .timeout = 10)
{
    uint8_t buf[16];
    size_t len = 0;
    cr_assert_eq(hf_frame_encode_bye(buf, sizeof buf, &len), HF_OK);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(buf, len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_BYE);
    const uint8_t extra[] = {0x93, 0x01, 0x08, 0x00}; /* [1, 8, 0] */
    cr_assert_eq(hf_frame_decode(extra, sizeof extra, &f, NULL, 0), HF_EPROTO);
    cr_assert_eq(hf_frame_encode_bye(buf, 1, &len), HF_EFULL);
}
