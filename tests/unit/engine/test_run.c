/* test_run.c - hf_run_t driven with simulated time over hwsim and a memchan. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_memchan.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (5000 * S)                      /* monotonic time of the start */
#define W0 (1700000000ull * S)             /* wall time of the start      */
#define RUN_ID 77ull

typedef struct {
    hf_hwsim_t *sim;
    hf_hal_t hal;
    hf_memchan_t *mc;
    hf_method_t *method;
    hf_run_t *run;
} fx_t;

static char s_err[HF_METHOD_ERR_MAX];

static void
fx_init_opts(fx_t *fx, const char *text, const hf_run_opts_t *opts)
{
    memset(fx, 0, sizeof *fx);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    fx->sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(fx->sim);
    fx->hal = hf_hwsim_hal(fx->sim);
    cr_assert_eq(fx->hal.ops->open(fx->hal.impl, T0, NULL), HF_HAL_OK);
    fx->mc = hf_memchan_new(200000, NULL);
    cr_assert_not_null(fx->mc);
    fx->method = hf_method_parse("m1", text, s_err, sizeof s_err, NULL);
    cr_assert_not_null(fx->method, "%s", s_err);
    hf_err_t rc = HF_EIO;
    fx->run = hf_run_new(fx->method, &fx->hal, hf_memchan_channel(fx->mc), RUN_ID, opts, s_err,
                         sizeof s_err, &rc);
    cr_assert_not_null(fx->run, "%s", s_err);
    cr_assert_eq(rc, HF_OK);
}

static void
fx_init(fx_t *fx, const char *text)
{
    fx_init_opts(fx, text, NULL);
}

static void
fx_fini(fx_t *fx)
{
    hf_run_destroy(&fx->run);
    cr_assert_null(fx->run);
    hf_method_destroy(&fx->method);
    hf_memchan_destroy(&fx->mc);
    hf_hwsim_destroy(&fx->sim);
}

/* Tick every step_ns from `from` until the run ends or `until` passes. */
static void
s_drive(fx_t *fx, uint64_t from, uint64_t until, uint64_t step_ns)
{
    for (uint64_t t = from; t <= until; t += step_ns) {
        hf_run_state_t st = hf_run_state(fx->run);
        if (st != HF_RUN_RUNNING && st != HF_RUN_PAUSED)
            break;
        (void)hf_run_tick(fx->run, t, NULL);
    }
}

/* Tick exactly when the run says the next thing is due, like the daemon. */
static uint64_t
s_drive_by_deadline(fx_t *fx, uint64_t from)
{
    uint64_t t = from, ticks = 0;
    while (hf_run_state(fx->run) == HF_RUN_RUNNING) {
        uint64_t next = 0;
        cr_assert_eq(hf_run_tick(fx->run, t, &next), HF_OK);
        if (next == HF_RUN_NEVER)
            break;
        cr_assert_gt(next, t, "deadline moves forward");
        t = next;
        cr_assert_lt(++ticks, 1000000);
    }
    return ticks;
}

static const hf_record_t *
s_rec(fx_t *fx, size_t i)
{
    const hf_record_t *r = hf_memchan_at(fx->mc, i);
    cr_assert_not_null(r, "record %zu of %zu", i, hf_memchan_count(fx->mc));
    return r;
}

/* The events in order, as types. */
static size_t
s_events(fx_t *fx, uint8_t *types, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < hf_memchan_count(fx->mc) && n < max; i++) {
        const hf_record_t *r = s_rec(fx, i);
        if (r->kind == HF_KIND_EVENT)
            types[n++] = r->u.event.type;
    }
    return n;
}

static const char *k_basic = "sample oven.temp,flow 100\n"
                             "set oven.setpoint 30\n"
                             "hold 2s\n";

Test(run, completes_with_expected_samples_and_events_in_order, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_IDLE);
    cr_assert_eq(hf_run_id(fx.run), RUN_ID);
    cr_assert_eq(hf_run_start(fx.run, T0, W0), HF_OK);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_RUNNING);
    s_drive(&fx, T0, T0 + 10 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);

    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 2 * 100 * 2, "duration * rate * channels");
    cr_assert_eq(c.late, 0);
    cr_assert_eq(c.missed, 0);
    cr_assert_eq(c.step, 3);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_SAMPLE, 0), 400);

    uint8_t ev[16];
    size_t n = s_events(&fx, ev, 16);
    uint8_t want[] = {HF_EV_RUN_STARTED, HF_EV_CHANNELS, HF_EV_STEP, HF_EV_STEP, HF_EV_STEP,
                      HF_EV_COMPLETED};
    cr_assert_eq(n, sizeof want);
    cr_assert_arr_eq(ev, want, sizeof want);

    const hf_record_t *r = s_rec(&fx, 0);
    cr_assert_eq(r->u.event.type, HF_EV_RUN_STARTED);
    cr_assert_str_eq(r->u.event.text, "m1");
    cr_assert_eq(r->run, RUN_ID);
    cr_assert_eq(r->mono_ns, T0);
    cr_assert_eq(r->ts_ns, W0);
    cr_assert_eq(r->lane, HF_LANE_CONTROL);
    r = s_rec(&fx, 1);
    cr_assert_eq(r->u.event.type, HF_EV_CHANNELS);
    cr_assert_str_eq(r->u.event.text, "oven.temp,flow");
    r = s_rec(&fx, 2);
    cr_assert_eq(r->u.event.type, HF_EV_STEP);
    cr_assert_eq(r->u.event.step, 0);
    cr_assert_str_eq(r->u.event.text, "sample oven.temp,flow 100");

    /* every sample on the grid, channel indices in order, ts consistent */
    size_t k = 0;
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        r = s_rec(&fx, i);
        if (r->kind != HF_KIND_SAMPLE)
            continue;
        cr_assert_eq(r->run, RUN_ID);
        cr_assert_eq(r->lane, HF_LANE_DATA);
        cr_assert_eq(r->u.sample.channel, k % 2);
        cr_assert_eq(r->mono_ns, T0 + (k / 2) * 10 * MS, "sample %zu", k);
        cr_assert_eq(r->ts_ns, W0 + (r->mono_ns - T0));
        k++;
    }
    const hf_record_t *last = s_rec(&fx, hf_memchan_count(fx.mc) - 1);
    cr_assert_eq(last->u.event.type, HF_EV_COMPLETED);
    cr_assert_eq(last->mono_ns, T0 + 2 * S, "completes at the scheduled end");
    cr_assert_eq(hf_run_tick(fx.run, T0 + 20 * S, NULL), HF_ESTATE, "terminal is sticky");
    fx_fini(&fx);
}

Test(run, records_do_not_depend_on_tick_pattern, .timeout = 10)
{
    const char *text = "sample oven.temp,chamber.pressure,flow,ambient 100\n"
                       "set oven.setpoint 25\nramp oven.setpoint 60 500ms\nhold 300ms\n"
                       "ramp oven.setpoint 30 200ms\n";
    fx_t a, b, c;
    fx_init(&a, text);
    fx_init(&b, text);
    fx_init(&c, text);
    hf_run_start(a.run, T0, W0);
    hf_run_start(b.run, T0, W0);
    hf_run_start(c.run, T0, W0);
    s_drive(&a, T0, T0 + 5 * S, 1 * MS);
    s_drive(&b, T0, T0 + 5 * S, 37 * MS);
    uint64_t ticks = s_drive_by_deadline(&c, T0);
    cr_assert_eq(hf_run_state(a.run), HF_RUN_COMPLETED);
    cr_assert_eq(hf_run_state(b.run), HF_RUN_COMPLETED);
    cr_assert_eq(hf_run_state(c.run), HF_RUN_COMPLETED);
    cr_assert_lt(ticks, 200, "deadline-driven: one tick per due time (%llu)",
                 (unsigned long long)ticks);
    cr_assert_eq(hf_memchan_count(a.mc), hf_memchan_count(b.mc));
    cr_assert_eq(hf_memchan_count(a.mc), hf_memchan_count(c.mc));
    for (size_t i = 0; i < hf_memchan_count(a.mc); i++) {
        cr_assert(memcmp(s_rec(&a, i), s_rec(&b, i), sizeof(hf_record_t)) == 0, "rec %zu", i);
        cr_assert(memcmp(s_rec(&a, i), s_rec(&c, i), sizeof(hf_record_t)) == 0, "rec %zu", i);
    }
    hf_run_counters_t ca;
    hf_run_counters(a.run, &ca);
    cr_assert_eq(ca.samples, 4 * 100 * 1);
    fx_fini(&a);
    fx_fini(&b);
    fx_fini(&c);
}

Test(run, late_ticks_take_every_due_sample_and_count_late_ones, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    hf_run_start(fx.run, T0, W0);
    uint64_t next = 0;
    cr_assert_eq(hf_run_tick(fx.run, T0, &next), HF_OK);
    cr_assert_eq(next, T0 + 10 * MS, "next grid point at 100 Hz");
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 2);
    /* one tick a second late: grid points 1..100 are all due */
    cr_assert_eq(hf_run_tick(fx.run, T0 + 1 * S, &next), HF_OK);
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 2 + 2 * 100, "nothing skipped");
    cr_assert_eq(c.late, 2 * 98, "points 1..98 are more than a period late, 99 and 100 not");
    cr_assert_eq(c.missed, 0);
    cr_assert_eq(next, T0 + 1 * S + 10 * MS);
    s_drive(&fx, T0 + 1 * S, T0 + 3 * S, 10 * MS);
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 400);
    cr_assert_eq(c.late, 196);
    fx_fini(&fx);
}

Test(run, tick_work_is_bounded_and_resumes_at_once, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.max_records_per_tick = 50;
    fx_t fx;
    fx_init_opts(&fx, k_basic, &o);
    hf_run_start(fx.run, T0, W0);
    uint64_t next = 0;
    cr_assert_eq(hf_run_tick(fx.run, T0 + 1 * S, &next), HF_OK);
    cr_assert_eq(next, T0 + 1 * S, "work left over: due now");
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_leq(c.samples, 50);
    for (int i = 0; i < 10 && next == T0 + 1 * S; i++)
        hf_run_tick(fx.run, T0 + 1 * S, &next);
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 2 * 101);
    cr_assert_eq(next, T0 + 1 * S + 10 * MS);
    fx_fini(&fx);
}

Test(run, abort_emits_aborted_and_stops, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    cr_assert_eq(hf_run_abort(fx.run, T0), HF_ESTATE, "not running yet");
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 500 * MS, 10 * MS);
    size_t before = hf_memchan_count(fx.mc);
    cr_assert_eq(hf_run_abort(fx.run, T0 + 505 * MS), HF_OK);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_ABORTED);
    cr_assert_eq(hf_memchan_count(fx.mc), before + 1);
    const hf_record_t *r = s_rec(&fx, before);
    cr_assert_eq(r->kind, HF_KIND_EVENT);
    cr_assert_eq(r->u.event.type, HF_EV_ABORTED);
    cr_assert_eq(r->mono_ns, T0 + 505 * MS);
    cr_assert_eq(r->ts_ns, W0 + 505 * MS);
    uint64_t next = 0;
    cr_assert_eq(hf_run_tick(fx.run, T0 + 600 * MS, &next), HF_ESTATE);
    cr_assert_eq(next, HF_RUN_NEVER);
    cr_assert_eq(hf_run_abort(fx.run, T0 + 600 * MS), HF_ESTATE);
    cr_assert_eq(hf_memchan_count(fx.mc), before + 1, "nothing after the abort");
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_COMPLETED), 0);
    fx_fini(&fx);
}

Test(run, fatal_read_interrupts_with_hw_error, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    cr_assert_eq(hf_hwsim_inject(fx.sim, 2 /* flow */, HF_HAL_FATAL, T0 + 500 * MS, T0 + 10 * S),
                 HF_OK);
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 5 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_INTERRUPTED);
    size_t n = hf_memchan_count(fx.mc);
    const hf_record_t *hw = s_rec(&fx, n - 3), *al = s_rec(&fx, n - 2), *ev = s_rec(&fx, n - 1);
    cr_assert_eq(al->kind, HF_KIND_ALARM, "hw_error, alarm raised, interrupted");
    cr_assert_eq(al->u.alarm.raised, 1);
    cr_assert_eq(al->u.alarm.code, HF_ALARM_CODE_DEVICE_FATAL);
    cr_assert_eq(hw->kind, HF_KIND_HW_ERROR);
    cr_assert_eq(hw->lane, HF_LANE_CONTROL);
    cr_assert_eq(hw->u.hw_error.cls, HF_HAL_FATAL);
    cr_assert_eq(hw->u.hw_error.channel, 1, "run channel index of flow");
    cr_assert_eq(hw->mono_ns, T0 + 500 * MS);
    cr_assert(strstr(hw->u.hw_error.text, "flow"), "%s", hw->u.hw_error.text);
    cr_assert_eq(ev->kind, HF_KIND_EVENT);
    cr_assert_eq(ev->u.event.type, HF_EV_INTERRUPTED);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_COMPLETED), 0);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 2 * 50 + 1, "oven.temp at 500 ms was read before flow failed");
    cr_assert_eq(c.hw_errors, 1);
    fx_fini(&fx);
}

Test(run, disconnected_reads_pause_and_the_run_resumes_once_reads_work_again, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    /* reads fail disconnected in [1 s, 2 s) while opens succeed: the run
     * pauses, reopens, resumes, finds the link down again, ... then goes on */
    hf_hwsim_inject(fx.sim, HF_HWSIM_ALL_CHANNELS, HF_HAL_DISCONNECTED, T0 + 1 * S, T0 + 2 * S);
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 5 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    size_t paused = hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_PAUSED);
    cr_assert_geq(paused, 1);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_RESUMED), paused);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples + c.missed, 400, "every grid point sampled or missed");
    cr_assert_gt(c.paused_ns, 0);
    fx_fini(&fx);
}

Test(run, transient_read_is_retried_and_reported, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    /* three failures then success: the default 3 retries absorb them */
    hf_hwsim_fault_t f = {.channel = 0, .cls = HF_HAL_TRANSIENT, .from_ns = T0 + 100 * MS,
                          .until_ns = T0 + 200 * MS, .count = 3};
    cr_assert_eq(hf_hwsim_add_fault(fx.sim, &f), HF_OK);
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 5 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 400);
    cr_assert_eq(c.missed, 0);
    cr_assert_eq(c.hw_faults, 3, "every failed attempt counted");
    cr_assert_eq(c.retries, 3);
    cr_assert_eq(c.hw_errors, 2, "one record at once, one summary of the other two");
    cr_assert_eq(c.hw_suppressed, 2);
    cr_assert_eq(hf_hwsim_reads(fx.sim), 400 + 3);
    fx_fini(&fx);
}

Test(run, transient_read_that_keeps_failing_is_a_missed_sample, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    hf_hwsim_fault_t f = {.channel = 0, .cls = HF_HAL_TRANSIENT, .from_ns = T0 + 100 * MS,
                          .until_ns = T0 + 200 * MS, .count = 4};
    hf_hwsim_add_fault(fx.sim, &f);
    /* and a timeout window covering 5 grid points of flow */
    hf_hwsim_inject(fx.sim, 2, HF_HAL_TIMEOUT, T0 + 1 * S, T0 + 1050 * MS);
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 5 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED, "transient errors do not stop a run");
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.missed, 1 + 5);
    cr_assert_eq(c.samples, 400 - 6);
    cr_assert_eq(c.hw_faults, 4 + 5 * 4, "4 attempts per missed grid point");
    /* rate limited: per (channel, class) one record at once and one summary */
    cr_assert_eq(c.hw_errors, 4);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_HW_ERROR, 0), 4);
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = s_rec(&fx, i);
        if (r->kind != HF_KIND_HW_ERROR)
            continue;
        cr_assert(r->u.hw_error.cls == HF_HAL_TRANSIENT || r->u.hw_error.cls == HF_HAL_TIMEOUT);
    }
    fx_fini(&fx);
}

Test(run, ramp_drives_the_actuator_linearly, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, "sample oven.temp 10\nset oven.setpoint 20\nramp oven.setpoint 30 1s\n"
                 "hold 1s\n");
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 250 * MS, 1 * MS);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 22.5, 1e-9);
    s_drive(&fx, T0 + 251 * MS, T0 + 500 * MS, 1 * MS);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 25.0, 1e-9);
    s_drive(&fx, T0 + 501 * MS, T0 + 1200 * MS, 1 * MS);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 30.0, 1e-12, "exactly the target");
    s_drive(&fx, T0 + 1201 * MS, T0 + 3 * S, 1 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    cr_assert_eq(s_rec(&fx, hf_memchan_count(fx.mc) - 1)->mono_ns, T0 + 2 * S);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 20);
    fx_fini(&fx);
}

Test(run, write_to_a_closed_device_pauses_reopens_and_writes_again, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    fx.hal.ops->close(fx.hal.impl); /* the device goes away: calls fail disconnected */
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 5 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_PAUSED), 1);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_RESUMED), 1);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 30.0, 1e-12, "the set was made");
    fx_fini(&fx);
}

Test(run, write_that_keeps_failing_interrupts, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    hf_hwsim_fault_t f = {.channel = 0, .cls = HF_HAL_TIMEOUT, .from_ns = T0,
                          .until_ns = HF_HWSIM_FOREVER, .target = HF_HWSIM_ON_ACTUATOR};
    cr_assert_eq(hf_hwsim_add_fault(fx.sim, &f), HF_OK);
    hf_run_start(fx.run, T0, W0);
    s_drive(&fx, T0, T0 + 1 * S, 10 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_INTERRUPTED);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_INTERRUPTED), 1);
    const hf_record_t *ev = s_rec(&fx, hf_memchan_count(fx.mc) - 1);
    cr_assert(strstr(ev->u.event.text, "keeps failing"), "%s", ev->u.event.text);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.hw_faults, 4, "1 attempt + 3 retries");
    fx_fini(&fx);
}

Test(run, long_channel_lists_are_split_over_channels_events, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.channel_count = 6;
    o.actuator_count = 0;
    static char names[6][64];
    for (int i = 0; i < 6; i++) {
        snprintf(names[i], sizeof names[i], "channel.with.a.rather.long.name.number.%d", i);
        o.channels[i] = (hf_hwsim_channel_t){.name = names[i], .model = HF_HWSIM_CONSTANT};
    }
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hal.ops->open(hal.impl, T0, NULL);
    /* all six on one line would pass HF_METHOD_LINE_MAX: two sample steps */
    char text2[1024];
    snprintf(text2, sizeof text2, "sample %s,%s,%s 1\nsample %s,%s,%s 1\nhold 1s\n", names[0],
             names[1], names[2], names[3], names[4], names[5]);
    hf_method_t *m = hf_method_parse("m", text2, s_err, sizeof s_err, NULL);
    cr_assert_not_null(m, "%s", s_err);
    hf_memchan_t *mc = hf_memchan_new(100, NULL);
    hf_run_t *run = hf_run_new(m, &hal, hf_memchan_channel(mc), 1, NULL, s_err, sizeof s_err, NULL);
    cr_assert_not_null(run, "%s", s_err);
    hf_run_start(run, T0, W0);
    char joined[1024] = "";
    uint32_t expect_first = 0;
    size_t events = 0;
    for (size_t i = 0; i < hf_memchan_count(mc); i++) {
        const hf_record_t *r = hf_memchan_at(mc, i);
        if (r->u.event.type != HF_EV_CHANNELS)
            continue;
        events++;
        cr_assert_eq(r->u.event.step, expect_first, "step = index of the first name");
        cr_assert_leq(strlen(r->u.event.text), HF_TEXT_MAX);
        if (joined[0])
            strcat(joined, ",");
        strcat(joined, r->u.event.text);
        expect_first += 1;
        for (const char *p = r->u.event.text; *p; p++)
            expect_first += *p == ',';
    }
    cr_assert_gt(events, 1);
    char want[1024] = "";
    for (int i = 0; i < 6; i++) {
        if (i)
            strcat(want, ",");
        strcat(want, names[i]);
    }
    cr_assert_str_eq(joined, want);
    hf_run_destroy(&run);
    hf_memchan_destroy(&mc);
    hf_method_destroy(&m);
    hf_hwsim_destroy(&sim);
}

Test(run, refused_sends_are_counted_and_reported, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_basic);
    hf_memchan_fail_from(fx.mc, 10, HF_ECLOSED);
    hf_run_start(fx.run, T0, W0);
    cr_assert_eq(hf_run_tick(fx.run, T0 + 100 * MS, NULL), HF_ECLOSED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_gt(c.send_errors, 0);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_RUNNING, "the run goes on");
    fx_fini(&fx);
}

Test(run, new_refuses_unknown_names_and_bad_ids, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_memchan_t *mc = hf_memchan_new(10, NULL);
    hf_method_t *m = hf_method_parse("m", "sample flow,nope 10\nhold 1s\n", s_err, sizeof s_err,
                                     NULL);
    hf_err_t rc = HF_OK;
    hf_run_t *run = hf_run_new(m, &hal, hf_memchan_channel(mc), 1, NULL, s_err, sizeof s_err, &rc);
    cr_assert_null(run);
    cr_assert_eq(rc, HF_ENOTFOUND);
    cr_assert_str_eq(s_err, "line 1: unknown channel 'nope'");
    hf_method_destroy(&m);
    m = hf_method_parse("m", "hold 1s\n", NULL, 0, NULL);
    run = hf_run_new(m, &hal, hf_memchan_channel(mc), 0, NULL, s_err, sizeof s_err, &rc);
    cr_assert_null(run);
    cr_assert_eq(rc, HF_EINVAL);
    run = hf_run_new(m, &hal, hf_memchan_channel(mc), 5, NULL, NULL, 0, &rc);
    cr_assert_not_null(run);
    cr_assert_eq(hf_run_tick(run, T0, NULL), HF_ESTATE, "tick before start");
    cr_assert_eq(hf_run_start(run, T0, W0), HF_OK);
    cr_assert_eq(hf_run_start(run, T0, W0), HF_ESTATE, "start twice");
    cr_assert_eq(hf_run_tick(run, T0 + 1 * S, NULL), HF_OK);
    cr_assert_eq(hf_run_state(run), HF_RUN_COMPLETED, "a method without channels completes");
    hf_run_destroy(&run);
    hf_method_destroy(&m);
    hf_memchan_destroy(&mc);
    hf_hwsim_destroy(&sim);
}

Test(run, oven_demo_method_runs_18s_with_7200_samples, .timeout = 10)
{
    hf_err_t rc = HF_EIO;
    hf_method_t *m = hf_method_load(HF_METHODS_DIR "/oven-demo.method", s_err, sizeof s_err, &rc);
    cr_assert_not_null(m, "%s", s_err);
    cr_assert_str_eq(hf_method_name(m), "oven-demo");
    cr_assert_eq(hf_method_duration_ns(m), 18 * S);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hal.ops->open(hal.impl, T0, NULL);
    hf_memchan_t *mc = hf_memchan_new(10000, NULL);
    fx_t fx = {.sim = sim, .hal = hal, .mc = mc, .method = m};
    fx.run = hf_run_new(m, &hal, hf_memchan_channel(mc), RUN_ID, NULL, s_err, sizeof s_err, &rc);
    cr_assert_not_null(fx.run, "%s", s_err);
    hf_run_start(fx.run, T0, W0);
    s_drive_by_deadline(&fx, T0);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 7200);
    cr_assert_eq(hf_memchan_count_kind(mc, HF_KIND_EVENT, HF_EV_STEP), 5);
    cr_assert_eq(s_rec(&fx, hf_memchan_count(mc) - 1)->mono_ns, T0 + 18 * S);
    /* the oven follows the setpoint: near 60 C at the end of the hold */
    double at_hold_end = 0;
    for (size_t i = 0; i < hf_memchan_count(mc); i++) {
        const hf_record_t *r = s_rec(&fx, i);
        if (r->kind == HF_KIND_SAMPLE && r->u.sample.channel == 0 && r->mono_ns == T0 + 15 * S)
            at_hold_end = r->u.sample.value;
    }
    cr_assert_float_eq(at_hold_end, 60.0, 0.1);
    cr_assert_float_eq(hf_hwsim_actuator_value(sim, 0), 30.0, 1e-12);
    fx_fini(&fx);
}
