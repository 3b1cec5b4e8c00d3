/* Unit tests of the link protocol state machine (pure: simulated time,
 * frames built with the real codec). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_link.h"
#include "hf_proto.h"

#define EPOCH 0x1234567890abcdefull

static hf_link_t *
s_new(uint32_t window)
{
    hf_link_opts_t o = {.engine_id = "eng-1",
                        .epoch = EPOCH,
                        .window = window,
                        .batch_max = 100,
                        .heartbeat_ms = 1000,
                        .peer_timeout_ms = 3000};
    hf_err_t err;
    hf_link_t *l = hf_link_new(&o, &err);
    cr_assert_not_null(l);
    return l;
}

/* Consume queued actions up to and including the first of type t; count
 * how many of type t were seen (0 or 1). Never consumes a SEND_BATCH. */
static int
s_drain(hf_link_t *l, hf_link_act_type_t t, hf_link_action_t *last)
{
    hf_link_action_t a;
    while (hf_link_next_action(l, &a)) {
        cr_assert_neq(a.type, HF_LINK_ACT_SEND_BATCH, "batch before the expected action");
        if (a.type == t) {
            if (last)
                *last = a;
            return 1;
        }
    }
    return 0;
}

static void
s_welcome(hf_link_t *l, uint64_t ac, uint64_t ad, hf_ms_t now)
{
    hf_welcome_t w = {.version = HF_PROTO_VERSION, .epoch = EPOCH, .acked = {ac, ad}};
    uint8_t buf[128];
    size_t len;
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_link_on_frame(l, buf, len, now), HF_OK);
}

static void
s_ack(hf_link_t *l, uint8_t lane, uint64_t seq, hf_ms_t now, hf_err_t expect)
{
    hf_ack_t a = {.lane = lane, .seq = seq};
    uint8_t buf[64];
    size_t len;
    cr_assert_eq(hf_frame_encode_ack(&a, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_link_on_frame(l, buf, len, now), expect);
}

static void
s_connect(hf_link_t *l, uint64_t lc, uint64_t ld, hf_ms_t now)
{
    uint64_t last[2] = {lc, ld};
    cr_assert_eq(hf_link_connected(l, now, last, 7, HF_RUN_RUNNING), HF_OK);
    hf_link_action_t a;
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_SEND);
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(a.frame, a.len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_HELLO);
    cr_assert_str_eq(f.u.hello.engine, "eng-1");
    cr_assert_eq(f.u.hello.epoch, EPOCH);
    cr_assert_eq(f.u.hello.last_seq[0], lc);
    cr_assert_eq(f.u.hello.last_seq[1], ld);
    cr_assert_eq(f.u.hello.run, 7);
    cr_assert_eq(hf_link_state(l), HF_LINK_HELLO_SENT);
}

Test(link, handshake_then_streams_control_lane_first, .timeout = 10)
{
    hf_link_t *l = s_new(4);
    hf_link_committed(l, HF_LANE_CONTROL, 3);
    hf_link_committed(l, HF_LANE_DATA, 500);
    s_connect(l, 3, 500, 0);
    hf_link_action_t a;
    cr_assert_not(hf_link_next_action(l, &a), "no batch before WELCOME");
    s_welcome(l, 0, 0, 10);
    cr_assert_eq(hf_link_state(l), HF_LINK_STREAMING);
    cr_assert_eq(s_drain(l, HF_LINK_ACT_STREAMING, NULL), 1);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
    cr_assert_eq(a.lane, HF_LANE_CONTROL);
    cr_assert_eq(a.seq, 1);
    cr_assert_eq(a.max, 3);
    hf_link_batch_sent(l, HF_LANE_CONTROL, 3, 11);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.lane, HF_LANE_DATA);
    cr_assert_eq(a.seq, 1);
    cr_assert_eq(a.max, 64, "a new link starts at 64 records a batch (pacing)");
    hf_link_destroy(&l);
    cr_assert_null(l);
}

/* Send one batch of what the link asks on lane DATA, ack it after rtt ms;
 * returns its size. */
static uint32_t
s_round(hf_link_t *l, uint64_t *next, hf_ms_t *now, hf_ms_t rtt)
{
    hf_link_action_t a;
    while (hf_link_next_action(l, &a))
        if (a.type == HF_LINK_ACT_SEND_BATCH)
            break;
    cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
    cr_assert_eq(a.seq, *next);
    uint32_t n = a.max;
    hf_link_batch_sent(l, a.lane, *next + n - 1, *now);
    *now += rtt;
    s_ack(l, HF_LANE_DATA, *next + n - 1, *now, HF_OK);
    *next += n;
    return n;
}

/* Pacing: quick ACKs grow the batch to batch_max, slow ones shrink it (a
 * batch must cross a slow link well within the peer timeout), and it
 * never goes below 8 records. */
Test(link, batches_grow_on_a_fast_link_and_shrink_on_a_slow_one, .timeout = 10)
{
    hf_link_opts_t o = {.engine_id = "eng-1", .epoch = EPOCH, .window = 1,
                        .batch_max = HF_PROTO_MAX_BATCH, .heartbeat_ms = 1000,
                        .peer_timeout_ms = 3000};
    hf_err_t err;
    hf_link_t *l = hf_link_new(&o, &err);
    cr_assert_not_null(l);
    hf_link_committed(l, HF_LANE_DATA, 10000000);
    s_connect(l, 0, 10000000, 0);
    s_welcome(l, 0, 0, 1);
    uint64_t next = 1;
    hf_ms_t now = 2;
    uint32_t n = 0;
    for (int i = 0; i < 12; i++)
        n = s_round(l, &next, &now, 5); /* a fast link: 5 ms */
    cr_assert_eq(n, HF_PROTO_MAX_BATCH, "grown to batch_max: %u", n);
    uint32_t prev = n;
    n = s_round(l, &next, &now, 1500); /* slow: > peer_timeout / 3 */
    cr_assert_eq(n, prev, "the batch that was slow was sent before the news");
    n = s_round(l, &next, &now, 1500);
    cr_assert_eq(n, prev / 2, "halved after a slow round trip: %u", n);
    for (int i = 0; i < 20; i++)
        n = s_round(l, &next, &now, 2000);
    cr_assert_eq(n, 8, "never below 8 records");
    n = s_round(l, &next, &now, 600); /* between: held */
    cr_assert_eq(n, 8);
    n = s_round(l, &next, &now, 600);
    cr_assert_eq(n, 8, "a middling round trip neither grows nor shrinks");
    cr_assert_eq(hf_link_state(l), HF_LINK_STREAMING, "slow but never late: no reconnect");
    hf_link_destroy(&l);
}

/* A batch that waited behind others is not late while ACKs keep coming:
 * the timeout counts from the lane's last ACK progress. */
Test(link, a_batch_is_late_only_without_ack_progress, .timeout = 10)
{
    hf_link_t *l = s_new(4);
    hf_link_committed(l, HF_LANE_DATA, 1000);
    s_connect(l, 0, 1000, 0);
    s_welcome(l, 0, 0, 0);
    hf_link_action_t a;
    uint64_t next = 1;
    for (int i = 0; i < 4; i++) { /* four batches in flight, all sent at t=0 */
        while (hf_link_next_action(l, &a) && a.type != HF_LINK_ACT_SEND_BATCH)
            ;
        cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
        hf_link_batch_sent(l, a.lane, next + a.max - 1, 0);
        next += a.max;
    }
    /* the link carries one batch per 2 s: each ACK comes 2 s after the last */
    uint64_t acked = 64;
    for (hf_ms_t t = 2000; t <= 6000; t += 2000, acked += 64) {
        s_ack(l, HF_LANE_DATA, acked, t, HF_OK);
        hf_link_on_timer(l, t + 1999);
        cr_assert_eq(hf_link_state(l), HF_LINK_STREAMING, "reconnected at %llu ms",
                     (unsigned long long)t + 1999);
    }
    /* now nothing for the peer timeout: late */
    hf_link_on_timer(l, 6000 + 3000);
    cr_assert_eq(hf_link_state(l), HF_LINK_DOWN);
    hf_link_destroy(&l);
}

Test(link, window_bounds_batches_in_flight_and_ack_trims, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    hf_link_committed(l, HF_LANE_DATA, 1000);
    s_connect(l, 0, 1000, 0);
    s_welcome(l, 0, 0, 1);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    hf_link_action_t a;
    uint64_t next = 1;
    for (int i = 0; i < 2; i++) {
        cr_assert(hf_link_next_action(l, &a));
        cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
        cr_assert_eq(a.seq, next);
        hf_link_batch_sent(l, a.lane, next + 99, 2);
        next += 100;
    }
    cr_assert_not(hf_link_next_action(l, &a), "window of 2 is full");
    s_ack(l, HF_LANE_DATA, 100, 3, HF_OK);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_TRIM);
    cr_assert_eq(a.lane, HF_LANE_DATA);
    cr_assert_eq(a.seq, 100);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
    cr_assert_eq(a.seq, 201);
    hf_link_batch_sent(l, a.lane, 300, 4);
    cr_assert_eq(hf_link_acked(l, HF_LANE_DATA), 100);
    hf_link_destroy(&l);
}

Test(link, ack_beyond_what_was_sent_fails_the_link, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    hf_link_committed(l, HF_LANE_DATA, 10);
    s_connect(l, 0, 10, 0);
    s_welcome(l, 0, 0, 1);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    s_ack(l, HF_LANE_DATA, 5, 2, HF_EPROTO);
    cr_assert_eq(hf_link_state(l), HF_LINK_FAILED);
    hf_link_reset(l);
    cr_assert_eq(hf_link_state(l), HF_LINK_DOWN);
    hf_link_destroy(&l);
}

Test(link, reconnect_resends_everything_after_welcome_cursor, .timeout = 10)
{
    hf_link_t *l = s_new(8);
    hf_link_committed(l, HF_LANE_DATA, 300);
    s_connect(l, 0, 300, 0);
    s_welcome(l, 0, 0, 1);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    hf_link_action_t a;
    for (int i = 0; i < 3; i++) {
        cr_assert(hf_link_next_action(l, &a));
        hf_link_batch_sent(l, a.lane, a.seq + a.max - 1, 2);
    }
    /* The connection drops: batches 2 and 3 may or may not have arrived. */
    hf_link_disconnected(l, 5);
    cr_assert_eq(hf_link_state(l), HF_LINK_DOWN);
    cr_assert_not(hf_link_next_action(l, &a));
    s_connect(l, 0, 300, 6);
    /* The aggregator committed the first two batches before the cut. */
    s_welcome(l, 0, 200, 7);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_TRIM);
    cr_assert_eq(a.seq, 200);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_SEND_BATCH);
    cr_assert_eq(a.seq, 201, "resume right after the aggregator's cursor");
    hf_link_destroy(&l);
}

Test(link, silence_past_peer_timeout_asks_for_reconnect, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    s_connect(l, 0, 0, 0);
    s_welcome(l, 0, 0, 100);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    hf_link_on_timer(l, 1100); /* heartbeat due: STATUS and PING */
    hf_link_action_t a;
    hf_frame_t f;
    int pings = 0, statuses = 0;
    while (hf_link_next_action(l, &a)) {
        cr_assert_eq(a.type, HF_LINK_ACT_SEND);
        cr_assert_eq(hf_frame_decode(a.frame, a.len, &f, NULL, 0), HF_OK);
        pings += f.type == HF_FRAME_PING;
        statuses += f.type == HF_FRAME_STATUS;
    }
    cr_assert_eq(statuses, 1, "backlog figures every heartbeat");
    cr_assert_eq(hf_link_deadline(l) <= 3100, true);
    hf_link_on_timer(l, 3100);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_RECONNECT);
    cr_assert_eq(hf_link_state(l), HF_LINK_DOWN);
    hf_link_destroy(&l);
}

Test(link, unacked_batch_past_timeout_asks_for_reconnect_even_with_pongs, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    hf_link_committed(l, HF_LANE_DATA, 10);
    s_connect(l, 0, 10, 0);
    s_welcome(l, 0, 0, 0);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    hf_link_action_t a;
    cr_assert(hf_link_next_action(l, &a));
    hf_link_batch_sent(l, a.lane, 10, 0);
    hf_ping_t p = {.nonce = 1};
    uint8_t buf[32];
    size_t len;
    cr_assert_eq(hf_frame_encode_pong(&p, buf, sizeof buf, &len), HF_OK);
    for (hf_ms_t t = 500; t < 3000; t += 500) {
        cr_assert_eq(hf_link_on_frame(l, buf, len, t), HF_OK);
        hf_link_on_timer(l, t);
        while (hf_link_next_action(l, &a))
            cr_assert_neq(a.type, HF_LINK_ACT_RECONNECT);
    }
    hf_link_on_timer(l, 3000);
    cr_assert(hf_link_next_action(l, &a));
    cr_assert_eq(a.type, HF_LINK_ACT_RECONNECT);
    hf_link_destroy(&l);
}

Test(link, ping_is_answered_with_pong_of_same_nonce, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    s_connect(l, 0, 0, 0);
    s_welcome(l, 0, 0, 0);
    s_drain(l, HF_LINK_ACT_STREAMING, NULL);
    hf_ping_t p = {.nonce = 99};
    uint8_t buf[32];
    size_t len;
    cr_assert_eq(hf_frame_encode_ping(&p, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_link_on_frame(l, buf, len, 5), HF_OK);
    hf_link_action_t a;
    cr_assert(hf_link_next_action(l, &a));
    hf_frame_t f;
    cr_assert_eq(hf_frame_decode(a.frame, a.len, &f, NULL, 0), HF_OK);
    cr_assert_eq(f.type, HF_FRAME_PONG);
    cr_assert_eq(f.u.ping.nonce, 99);
    hf_link_destroy(&l);
}

Test(link, welcome_for_another_epoch_or_beyond_the_spool_is_refused, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    hf_link_committed(l, HF_LANE_DATA, 10);
    s_connect(l, 0, 10, 0);
    hf_welcome_t w = {.version = HF_PROTO_VERSION, .epoch = EPOCH + 1, .acked = {0, 0}};
    uint8_t buf[128];
    size_t len;
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_link_on_frame(l, buf, len, 1), HF_EPROTO);
    cr_assert_neq(hf_link_state(l), HF_LINK_STREAMING);
    cr_assert_eq(s_drain(l, HF_LINK_ACT_RECONNECT, NULL), 1);
    hf_link_disconnected(l, 2);
    s_connect(l, 0, 10, 2);
    w.epoch = EPOCH;
    w.acked[1] = 11; /* more than this spool ever committed */
    cr_assert_eq(hf_frame_encode_welcome(&w, buf, sizeof buf, &len), HF_OK);
    cr_assert_eq(hf_link_on_frame(l, buf, len, 3), HF_EPROTO);
    cr_assert_eq(hf_link_state(l), HF_LINK_FAILED);
    hf_link_destroy(&l);
}

Test(link, garbage_frame_is_an_error_not_a_crash, .timeout = 10)
{
    hf_link_t *l = s_new(2);
    s_connect(l, 0, 0, 0);
    s_welcome(l, 0, 0, 0);
    const uint8_t junk[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    cr_assert_neq(hf_link_on_frame(l, junk, sizeof junk, 1), HF_OK);
    cr_assert_neq(hf_link_state(l), HF_LINK_STREAMING);
    hf_link_destroy(&l);
}

Test(link, bad_options_are_refused, .timeout = 10)
{
    hf_link_opts_t o = {.engine_id = "bad id!", .epoch = 1, .window = 1, .batch_max = 1,
                        .heartbeat_ms = 1, .peer_timeout_ms = 2};
    hf_err_t err = HF_OK;
    cr_assert_null(hf_link_new(&o, &err));
    cr_assert_eq(err, HF_EINVAL);
    o.engine_id = "ok";
    o.epoch = 0;
    cr_assert_null(hf_link_new(&o, &err));
    o.epoch = 1;
    o.window = 0;
    cr_assert_null(hf_link_new(&o, &err));
}
