/* test_cmdq.c - the aggregator's per-engine command queue (pure), with a
 * simulated clock: refusal when away, one at a time in order, abort
 * supersedes, link loss, timeouts, and "every command answered once". */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "hf_cmdq.h"

static hf_cmdq_client_t
s_client(uint8_t tag)
{
    hf_cmdq_client_t c;
    memset(&c, 0, sizeof c);
    c.len = 5;
    memset(c.id, tag, c.len);
    return c;
}

static hf_command_t
s_cmd(uint64_t id, uint8_t verb)
{
    hf_command_t c;
    memset(&c, 0, sizeof c);
    c.id = id;
    c.verb = verb;
    return c;
}

Test(cmdq, an_unavailable_engine_is_refused_at_once_and_nothing_waits, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
    uint32_t n = 99;
    hf_command_t c = s_cmd(1, HF_CMD_ABORT);
    hf_cmdq_client_t cl = s_client(7);
    hf_cmdq_submit(&q, &c, &cl, false, 1000, a, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(a[0].result, HF_EUNAVAIL);
    cr_assert_eq(a[0].id, 1);
    cr_assert_not(a[0].by_engine);
    cr_assert_eq(memcmp(a[0].client.id, cl.id, cl.len), 0);
    cr_assert_null(hf_cmdq_next(&q, 1000));
    hf_cmdq_fini(&q);
}

Test(cmdq, one_command_in_flight_at_a_time_in_submission_order, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX], one;
    uint32_t n;
    hf_cmdq_client_t cl = s_client(1);
    const char *body = "hold 1s\n";
    hf_command_t start = s_cmd(1, HF_CMD_START);
    start.body = body;
    start.body_len = (uint32_t)strlen(body);
    hf_command_t pause = s_cmd(2, HF_CMD_PAUSE);
    hf_cmdq_submit(&q, &start, &cl, true, 0, a, &n);
    cr_assert_eq(n, 0);
    hf_cmdq_submit(&q, &pause, &cl, true, 0, a, &n);
    cr_assert_eq(n, 0);
    const hf_cmdq_item_t *it = hf_cmdq_next(&q, 5);
    cr_assert_not_null(it);
    cr_assert_eq(it->cmd.id, 1);
    /* the body was copied: the caller's buffer may go */
    cr_assert_neq(it->cmd.body, body);
    cr_assert_eq(memcmp(it->cmd.body, body, start.body_len), 0);
    cr_assert_null(hf_cmdq_next(&q, 6), "second command sent while the first is in flight");
    /* an answer to another id changes nothing */
    cr_assert_not(hf_cmdq_result(&q, 2, HF_OK, "x", &one));
    cr_assert(hf_cmdq_result(&q, 1, HF_OK, "started", &one));
    cr_assert(one.by_engine);
    cr_assert_eq(one.result, HF_OK);
    cr_assert_str_eq(one.text, "started");
    it = hf_cmdq_next(&q, 7);
    cr_assert_not_null(it);
    cr_assert_eq(it->cmd.id, 2);
    /* answered once: a second answer for the same id is a late one */
    cr_assert(hf_cmdq_result(&q, 2, HF_ESTATE, "not running", &one));
    cr_assert_not(hf_cmdq_result(&q, 2, HF_ESTATE, "not running", &one));
    hf_cmdq_fini(&q);
}

Test(cmdq, abort_supersedes_waiting_commands_but_not_the_one_in_flight, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
    uint32_t n;
    hf_cmdq_client_t cl = s_client(2);
    for (uint64_t id = 1; id <= 3; id++) {
        hf_command_t c = s_cmd(id, HF_CMD_SET);
        hf_cmdq_submit(&q, &c, &cl, true, 0, a, &n);
    }
    cr_assert_eq(hf_cmdq_next(&q, 1)->cmd.id, 1);
    hf_command_t ab = s_cmd(4, HF_CMD_ABORT);
    hf_cmdq_submit(&q, &ab, &cl, true, 2, a, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(a[0].id, 2);
    cr_assert_eq(a[1].id, 3);
    cr_assert_eq(a[0].result, HF_ESUPERSEDED);
    cr_assert(strstr(a[0].text, "abort"), "%s", a[0].text);
    hf_cmdq_answer_t one;
    cr_assert(hf_cmdq_result(&q, 1, HF_OK, "", &one));
    const hf_cmdq_item_t *it = hf_cmdq_next(&q, 3);
    cr_assert_eq(it->cmd.id, 4);
    cr_assert_eq(it->cmd.verb, HF_CMD_ABORT);
    hf_cmdq_fini(&q);
}

Test(cmdq, link_loss_answers_in_flight_unknown_and_waiting_unavailable, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
    uint32_t n;
    hf_cmdq_client_t cl = s_client(3);
    hf_command_t c1 = s_cmd(1, HF_CMD_START), c2 = s_cmd(2, HF_CMD_PAUSE);
    strcpy(c1.name, "warm");
    hf_cmdq_submit(&q, &c1, &cl, true, 0, a, &n);
    hf_cmdq_submit(&q, &c2, &cl, true, 0, a, &n);
    cr_assert_not_null(hf_cmdq_next(&q, 0));
    hf_cmdq_lost(&q, "link to the engine lost", a, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(a[0].id, 1);
    cr_assert_eq(a[0].result, HF_EUNKNOWN);
    cr_assert_eq(a[1].id, 2);
    cr_assert_eq(a[1].result, HF_EUNAVAIL);
    /* nothing left to send, ever: commands are never kept for later */
    cr_assert_null(hf_cmdq_next(&q, 10));
    hf_cmdq_answer_t one;
    cr_assert_not(hf_cmdq_result(&q, 1, HF_OK, "", &one), "late answer must not answer twice");
    hf_cmdq_lost(&q, "again", a, &n);
    cr_assert_eq(n, 0);
    hf_cmdq_fini(&q);
}

Test(cmdq, no_answer_within_the_timeout_is_unknown_then_the_next_goes, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
    uint32_t n;
    hf_cmdq_client_t cl = s_client(4);
    hf_command_t c1 = s_cmd(1, HF_CMD_PAUSE), c2 = s_cmd(2, HF_CMD_RESUME);
    hf_cmdq_submit(&q, &c1, &cl, true, 0, a, &n);
    hf_cmdq_submit(&q, &c2, &cl, true, 0, a, &n);
    cr_assert_not_null(hf_cmdq_next(&q, 100));
    hf_cmdq_tick(&q, 100 + 9999, 10000, a, &n);
    cr_assert_eq(n, 0);
    hf_cmdq_tick(&q, 100 + 10000, 10000, a, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(a[0].id, 1);
    cr_assert_eq(a[0].result, HF_EUNKNOWN);
    cr_assert_eq(hf_cmdq_next(&q, 10100)->cmd.id, 2);
    hf_cmdq_fini(&q);
}

Test(cmdq, the_queue_is_bounded_and_says_so, .timeout = 10)
{
    hf_cmdq_t q;
    hf_cmdq_init(&q);
    hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
    uint32_t n;
    hf_cmdq_client_t cl = s_client(5);
    for (uint64_t id = 1; id <= HF_CMDQ_MAX; id++) {
        hf_command_t c = s_cmd(id, HF_CMD_SET);
        hf_cmdq_submit(&q, &c, &cl, true, 0, a, &n);
        cr_assert_eq(n, 0);
    }
    hf_command_t c = s_cmd(100, HF_CMD_SET);
    hf_cmdq_submit(&q, &c, &cl, true, 0, a, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(a[0].result, HF_EFULL);
    cr_assert_eq(a[0].id, 100);
    hf_cmdq_fini(&q);
}

/* Random operations against a model: every submitted id is answered
 * exactly once, and at most one command is ever in flight. */
Test(cmdq, every_command_is_answered_exactly_once_under_random_schedules, .timeout = 20)
{
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 200; round++) {
        hf_cmdq_t q;
        hf_cmdq_init(&q);
        static uint8_t answered[4096];
        memset(answered, 0, sizeof answered);
        uint64_t next_id = 1, inflight = 0;
        hf_ms_t now = 0;
        hf_cmdq_client_t cl = s_client(6);
        hf_cmdq_answer_t a[HF_CMDQ_ANSWERS_MAX];
        uint32_t n = 0;
        for (int step = 0; step < 200 && next_id < 4000; step++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            now += x % 3000;
            switch (x % 6) {
            case 0:
            case 1: {
                hf_command_t c = s_cmd(next_id++, (uint8_t)(1 + (x >> 8) % HF_CMD_MAX));
                hf_cmdq_submit(&q, &c, &cl, (x >> 20) % 8 != 0, now, a, &n);
                break;
            }
            case 2: {
                const hf_cmdq_item_t *it = hf_cmdq_next(&q, now);
                if (it) {
                    cr_assert_eq(inflight, 0);
                    inflight = it->cmd.id;
                }
                n = 0;
                break;
            }
            case 3: {
                n = 0;
                if (inflight && hf_cmdq_result(&q, inflight, HF_OK, "", &a[0]))
                    n = 1;
                break;
            }
            case 4: hf_cmdq_lost(&q, "lost", a, &n); break;
            default: hf_cmdq_tick(&q, now, 10000, a, &n); break;
            }
            for (uint32_t i = 0; i < n; i++) {
                cr_assert_lt(a[i].id, sizeof answered);
                cr_assert_eq(answered[a[i].id], 0, "id %llu answered twice",
                             (unsigned long long)a[i].id);
                answered[a[i].id] = 1;
                if (a[i].id == inflight)
                    inflight = 0;
            }
        }
        hf_cmdq_lost(&q, "end", a, &n);
        for (uint32_t i = 0; i < n; i++) {
            cr_assert_eq(answered[a[i].id], 0);
            answered[a[i].id] = 1;
        }
        for (uint64_t id = 1; id < next_id; id++)
            cr_assert_eq(answered[id], 1, "round %d: id %llu never answered", round,
                         (unsigned long long)id);
        hf_cmdq_fini(&q);
    }
}
