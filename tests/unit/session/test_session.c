/* Unit tests of the aggregator's per-engine session (pure). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_session.h"

static hf_hello_t
s_hello(uint64_t epoch, uint16_t lo, uint16_t hi)
{
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    strcpy(h.engine, "oven-1");
    h.epoch = epoch;
    h.ver_min = lo;
    h.ver_max = hi;
    h.run = 42;
    h.run_state = HF_RUN_RUNNING;
    return h;
}

Test(session, starts_unknown_and_hello_makes_it_available, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    cr_assert_eq(s.avail, HF_AVAIL_UNKNOWN);
    hf_hello_t h = s_hello(7, 1, HF_PROTO_VERSION);
    uint64_t acked[2] = {3, 900};
    hf_welcome_t w;
    cr_assert_eq(hf_session_hello(&s, &h, acked, 1000, 5000, &w), HF_OK);
    cr_assert_eq(s.avail, HF_AVAIL_AVAILABLE);
    cr_assert(s.active);
    cr_assert_eq(w.epoch, 7);
    cr_assert_eq(w.acked[0], 3);
    cr_assert_eq(w.acked[1], 900);
    cr_assert_eq(w.version, HF_PROTO_VERSION);
    cr_assert_eq(s.since_ns, 5000);
}

Test(session, no_common_version_is_refused_and_changes_nothing, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    hf_hello_t h = s_hello(7, HF_PROTO_VERSION + 1, HF_PROTO_VERSION + 5);
    uint64_t acked[2] = {0, 0};
    hf_welcome_t w;
    cr_assert_eq(hf_session_hello(&s, &h, acked, 0, 0, &w), HF_EPROTO);
    cr_assert_eq(s.avail, HF_AVAIL_UNKNOWN);
    cr_assert_not(s.active);
}

Test(session, watchdog_marks_unavailable_once_and_hello_restores, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    hf_hello_t h = s_hello(7, 1, 1);
    uint64_t acked[2] = {0, 0};
    hf_welcome_t w;
    hf_session_hello(&s, &h, acked, 1000, 1, &w);
    hf_session_seen(&s, 2000);
    cr_assert_not(hf_session_tick(&s, 4999, 2, 3000));
    cr_assert(hf_session_tick(&s, 5000, 3, 3000));
    cr_assert_eq(s.avail, HF_AVAIL_UNAVAILABLE);
    cr_assert_not(s.active, "frames before the next HELLO are not accepted");
    cr_assert_eq(s.since_ns, 3);
    cr_assert(strstr(s.reason, "link lost") != NULL);
    cr_assert_not(hf_session_tick(&s, 9000, 4, 3000), "reported once");
    hf_session_hello(&s, &h, acked, 9500, 5, &w);
    cr_assert_eq(s.avail, HF_AVAIL_AVAILABLE);
    cr_assert_eq(s.since_ns, 5);
}

Test(session, committed_moves_the_cursor_forward_only, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    hf_hello_t h = s_hello(7, 1, 1);
    uint64_t acked[2] = {0, 10};
    hf_welcome_t w;
    hf_session_hello(&s, &h, acked, 0, 0, &w);
    hf_ack_t a;
    hf_session_committed(&s, HF_LANE_DATA, 50, &a);
    cr_assert_eq(a.seq, 50);
    cr_assert_eq(a.lane, HF_LANE_DATA);
    hf_session_committed(&s, HF_LANE_DATA, 20, &a);
    cr_assert_eq(a.seq, 50);
    hf_session_resync(&s, &w);
    cr_assert_eq(w.acked[1], 50);
    cr_assert_eq(w.epoch, 7);
}

Test(session, new_epoch_says_engine_restarted_with_a_new_log, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    hf_hello_t h = s_hello(7, 1, 1);
    uint64_t acked[2] = {5, 5};
    hf_welcome_t w;
    hf_session_hello(&s, &h, acked, 0, 0, &w);
    h.epoch = 8;
    uint64_t fresh[2] = {0, 0};
    hf_session_hello(&s, &h, fresh, 10, 10, &w);
    cr_assert_eq(w.epoch, 8);
    cr_assert_eq(w.acked[1], 0);
    cr_assert(strstr(s.reason, "new log") != NULL);
}

Test(session, bye_makes_it_unavailable_at_once_as_a_clean_shutdown, .timeout = 10)
{
    hf_session_t s;
    hf_session_init(&s, "oven-1");
    hf_hello_t h = s_hello(7, 1, 1);
    uint64_t acked[2] = {0, 0};
    hf_welcome_t w;
    hf_session_hello(&s, &h, acked, 0, 1, &w);
    hf_session_bye(&s, 50);
    cr_assert_eq(s.avail, HF_AVAIL_UNAVAILABLE);
    cr_assert_not(s.active);
    cr_assert_str_eq(s.reason, "clean shutdown");
    cr_assert_eq(s.since_ns, 50);
    cr_assert_not(hf_session_tick(&s, 100000, 60, 3000), "no second 'link lost' after a BYE");
    cr_assert_str_eq(s.reason, "clean shutdown");
}

Test(session, restored_session_waits_for_hello_then_the_watchdog_decides, .timeout = 10)
{
    hf_session_t s;
    hf_session_restore(&s, "e1", 0xabc, 42, HF_RUN_RUNNING, 0, NULL, 1000, 5000);
    cr_assert_eq(s.avail, HF_AVAIL_UNKNOWN);
    cr_assert_eq(s.run, 42);
    cr_assert_eq(s.run_state, HF_RUN_RUNNING);
    cr_assert_eq(s.epoch, 0xabc);
    cr_assert_not(s.active, "a restored session accepts no batch before HELLO");
    cr_assert(strstr(s.reason, "restarted"), "%s", s.reason);
    cr_assert_not(hf_session_tick(&s, 1000 + 2999, 7999, 3000));
    cr_assert(hf_session_tick(&s, 1000 + 3000, 8000, 3000));
    cr_assert_eq(s.avail, HF_AVAIL_UNAVAILABLE);
    cr_assert_eq(s.since_ns, 8000);
    cr_assert(strstr(s.reason, "not reconnected"), "%s", s.reason);
    cr_assert_not(hf_session_tick(&s, 99999, 9000, 3000), "reported once");
}

Test(session, restored_session_keeps_an_open_outage_and_hello_ends_it, .timeout = 10)
{
    hf_session_t s;
    hf_session_restore(&s, "e1", 0xabc, 0, HF_RUN_IDLE, 777, "link lost (no heartbeat)", 1000,
                       5000);
    cr_assert_eq(s.avail, HF_AVAIL_UNAVAILABLE);
    cr_assert_eq(s.since_ns, 777);
    cr_assert_str_eq(s.reason, "link lost (no heartbeat)");
    cr_assert_not(hf_session_tick(&s, 100000, 9000, 3000), "already unavailable");
    hf_hello_t h;
    memset(&h, 0, sizeof h);
    strcpy(h.engine, "e1");
    h.epoch = 0xabc;
    h.ver_min = h.ver_max = HF_PROTO_VERSION;
    uint64_t acked[HF_LANE_COUNT] = {0, 0};
    hf_welcome_t w;
    cr_assert_eq(hf_session_hello(&s, &h, acked, 100001, 9001, &w), HF_OK);
    cr_assert_eq(s.avail, HF_AVAIL_AVAILABLE);
    cr_assert_not(s.restored);
    cr_assert_eq(s.since_ns, 9001);
}
