/* test_pxpipe.c - one direction of hf-proxy (hf_pxpipe.c): bounded FIFO
 * bytes, delay per chunk, token-bucket throttle. Time is simulated. */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_pxpipe.h"

/* Drain whatever may leave at `now` into out; returns the bytes taken. */
static size_t
s_drain(hf_pxpipe_t *p, hf_ms_t now, uint8_t *out, size_t cap)
{
    size_t got = 0;
    for (;;) {
        const uint8_t *d = NULL;
        size_t n = hf_pxpipe_peek(p, now, &d);
        if (n == 0)
            break;
        if (n > cap - got)
            n = cap - got;
        memcpy(out + got, d, n);
        hf_pxpipe_consume(p, n, now);
        got += n;
        if (got == cap)
            break;
    }
    return got;
}

Test(pxpipe, refuses_a_zero_or_huge_capacity, .timeout = 10)
{
    hf_err_t err = HF_OK;
    cr_assert_null(hf_pxpipe_new(0, &err));
    cr_assert_eq(err, HF_EINVAL);
    cr_assert_null(hf_pxpipe_new((size_t)2 << 30, &err));
    cr_assert_eq(err, HF_EINVAL);
    hf_pxpipe_t *p = hf_pxpipe_new(16, &err);
    cr_assert_not_null(p);
    hf_pxpipe_destroy(&p);
    cr_assert_null(p);
    hf_pxpipe_destroy(&p); /* twice is fine */
}

Test(pxpipe, bytes_leave_in_order_unchanged_across_the_ring_end, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(10, NULL);
    uint8_t out[64];
    uint8_t src[30];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 7 + 1);
    size_t in = 0, got = 0;
    for (int round = 0; round < 10 && got < sizeof src; round++) {
        in += hf_pxpipe_push(p, src + in, (sizeof src - in) < 7 ? sizeof src - in : 7, 0);
        got += s_drain(p, 0, out + got, 4); /* drain less than pushed: wraps */
    }
    got += s_drain(p, 0, out + got, sizeof out - got);
    cr_assert_eq(in, sizeof src);
    cr_assert_eq(got, sizeof src);
    cr_assert_arr_eq(out, src, sizeof src);
    cr_assert_eq(hf_pxpipe_pending(p), 0);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, push_stops_at_capacity_which_is_the_backpressure, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(8, NULL);
    uint8_t b[20] = {0};
    cr_assert_eq(hf_pxpipe_push(p, b, 5, 0), 5);
    cr_assert_eq(hf_pxpipe_space(p), 3);
    cr_assert_eq(hf_pxpipe_push(p, b, 20, 0), 3);
    cr_assert_eq(hf_pxpipe_space(p), 0);
    cr_assert_eq(hf_pxpipe_push(p, b, 1, 0), 0);
    const uint8_t *d;
    size_t n = hf_pxpipe_peek(p, 0, &d);
    hf_pxpipe_consume(p, n, 0);
    cr_assert_eq(hf_pxpipe_space(p), 8 - hf_pxpipe_pending(p));
    cr_assert_gt(hf_pxpipe_space(p), 0);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, running_out_of_chunk_marks_also_stops_push, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(1 << 20, NULL);
    uint8_t b = 1;
    for (uint32_t i = 0; i < HF_PXPIPE_MAX_CHUNKS; i++)
        cr_assert_eq(hf_pxpipe_push(p, &b, 1, 100 + i), 1);
    cr_assert_eq(hf_pxpipe_space(p), 0);
    cr_assert_eq(hf_pxpipe_push(p, &b, 1, 100000), 0);
    /* same ready time as the last chunk: would merge, but space says no:
     * the rule is simple (no mark free, no push) */
    const uint8_t *d;
    cr_assert_eq(hf_pxpipe_peek(p, 100, &d), 1);
    hf_pxpipe_consume(p, 1, 100);
    cr_assert_gt(hf_pxpipe_space(p), 0);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, a_delayed_chunk_waits_until_its_ready_time, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(64, NULL);
    const uint8_t *d;
    hf_pxpipe_push(p, (const uint8_t *)"abc", 3, 1000 + 250); /* pushed at 1000, delay 250 */
    cr_assert_eq(hf_pxpipe_deadline(p, 1000), 1250);
    cr_assert_eq(hf_pxpipe_peek(p, 1000, &d), 0);
    cr_assert_eq(hf_pxpipe_peek(p, 1249, &d), 0);
    cr_assert_eq(hf_pxpipe_peek(p, 1250, &d), 3);
    cr_assert_eq(memcmp(d, "abc", 3), 0);
    cr_assert_eq(hf_pxpipe_deadline(p, 1300), 1300); /* ready now */
    hf_pxpipe_consume(p, 3, 1300);
    cr_assert_eq(hf_pxpipe_deadline(p, 1300), HF_MS_NEVER);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, a_later_chunk_never_overtakes_an_earlier_one, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(64, NULL);
    const uint8_t *d;
    hf_pxpipe_push(p, (const uint8_t *)"AA", 2, 500); /* delay was 500 */
    hf_pxpipe_push(p, (const uint8_t *)"bb", 2, 20);  /* delay lowered to 0 */
    cr_assert_eq(hf_pxpipe_peek(p, 100, &d), 0);
    cr_assert_eq(hf_pxpipe_deadline(p, 100), 500);
    cr_assert_eq(hf_pxpipe_peek(p, 500, &d), 4);
    cr_assert_eq(memcmp(d, "AAbb", 4), 0);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, only_the_ready_chunks_leave, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(64, NULL);
    const uint8_t *d;
    hf_pxpipe_push(p, (const uint8_t *)"one", 3, 10);
    hf_pxpipe_push(p, (const uint8_t *)"two", 3, 20);
    cr_assert_eq(hf_pxpipe_peek(p, 15, &d), 3);
    hf_pxpipe_consume(p, 3, 15);
    cr_assert_eq(hf_pxpipe_deadline(p, 15), 20);
    cr_assert_eq(hf_pxpipe_peek(p, 15, &d), 0);
    cr_assert_eq(hf_pxpipe_peek(p, 20, &d), 3);
    cr_assert_eq(memcmp(d, "two", 3), 0);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, throttle_caps_bytes_per_second_within_one_burst, .timeout = 10)
{
    /* 10000 B/s: burst 500 B. Feed 1 MB of demand over a simulated 10 s,
     * draining every ms: no more than burst + rate * t may leave by t,
     * and the pipe must keep close to the rate (not starve). */
    hf_pxpipe_t *p = hf_pxpipe_new(1 << 20, NULL);
    static uint8_t junk[4096];
    cr_assert_eq(hf_pxpipe_set_rate(p, 10000, 0), HF_OK);
    uint64_t sent = 0;
    static uint8_t out[1 << 16];
    for (hf_ms_t t = 0; t <= 10000; t++) {
        while (hf_pxpipe_space(p) > sizeof junk)
            hf_pxpipe_push(p, junk, sizeof junk, t);
        sent += s_drain(p, t, out, sizeof out);
        cr_assert_leq(sent, 500 + 10000 * t / 1000, "t=%lu sent=%lu", (unsigned long)t,
                      (unsigned long)sent);
    }
    cr_assert_geq(sent, 10000 * 10 * 95 / 100, "sent %lu in 10 s", (unsigned long)sent);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, throttle_deadline_says_when_the_next_quantum_is_due, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(1 << 16, NULL);
    static uint8_t junk[8192];
    const uint8_t *d;
    hf_pxpipe_set_rate(p, 1000, 0); /* burst 50 B, 1 B per ms */
    hf_pxpipe_push(p, junk, sizeof junk, 0);
    cr_assert_eq(hf_pxpipe_peek(p, 0, &d), 50);
    hf_pxpipe_consume(p, 50, 0);
    cr_assert_eq(hf_pxpipe_peek(p, 0, &d), 0);
    hf_ms_t at = hf_pxpipe_deadline(p, 0);
    cr_assert_eq(at, 50, "deadline %lu", (unsigned long)at);
    cr_assert_eq(hf_pxpipe_peek(p, 49, &d), 0);
    cr_assert_eq(hf_pxpipe_peek(p, 50, &d), 50);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, a_slow_throttle_below_one_byte_per_ms_still_flows, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(64, NULL);
    const uint8_t *d;
    hf_pxpipe_set_rate(p, 10, 0); /* burst 1 B, one byte per 100 ms */
    hf_pxpipe_push(p, (const uint8_t *)"xyz", 3, 0);
    cr_assert_eq(hf_pxpipe_peek(p, 0, &d), 1);
    hf_pxpipe_consume(p, 1, 0);
    cr_assert_eq(hf_pxpipe_deadline(p, 0), 100);
    cr_assert_eq(hf_pxpipe_peek(p, 99, &d), 0);
    cr_assert_eq(hf_pxpipe_peek(p, 100, &d), 1);
    cr_assert_eq(*d, 'y');
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, rate_zero_is_unlimited_and_too_high_is_refused, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(1 << 16, NULL);
    static uint8_t junk[60000];
    const uint8_t *d;
    cr_assert_eq(hf_pxpipe_set_rate(p, HF_PXPIPE_MAX_RATE + 1, 0), HF_EINVAL);
    hf_pxpipe_set_rate(p, 100, 0);
    hf_pxpipe_set_rate(p, 0, 0);
    hf_pxpipe_push(p, junk, sizeof junk, 0);
    cr_assert_eq(hf_pxpipe_peek(p, 0, &d), sizeof junk);
    hf_pxpipe_destroy(&p);
}

Test(pxpipe, an_empty_pipe_has_no_deadline, .timeout = 10)
{
    hf_pxpipe_t *p = hf_pxpipe_new(16, NULL);
    const uint8_t *d = (const uint8_t *)"x";
    cr_assert_eq(hf_pxpipe_deadline(p, 5), HF_MS_NEVER);
    cr_assert_eq(hf_pxpipe_peek(p, 5, &d), 0);
    cr_assert_null(d);
    hf_pxpipe_destroy(&p);
}
