/* test_run_hw.c - the run's hardware error policy, class by class, and the
 * wait-until step: hwsim faults, simulated time, records in a memchan. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_memchan.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (5000 * S)
#define W0 (1700000000ull * S)

typedef struct {
    hf_hwsim_t *sim;
    hf_hal_t hal;
    hf_memchan_t *mc;
    hf_method_t *method;
    hf_run_t *run;
    double safe[1];
} fx_t;

static char s_err[HF_METHOD_ERR_MAX];

/* The demo instrument with a safe value 20 for oven.setpoint, opened at T0,
 * and a run of text with opts (NULL: defaults plus the safe table). */
static void
fx_init(fx_t *fx, const char *text, hf_run_opts_t *opts)
{
    memset(fx, 0, sizeof *fx);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.actuators[0].has_safe = 1;
    o.actuators[0].safe = 20.0;
    fx->sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(fx->sim);
    fx->hal = hf_hwsim_hal(fx->sim);
    cr_assert_eq(fx->hal.ops->open(fx->hal.impl, T0, NULL), HF_HAL_OK);
    fx->mc = hf_memchan_new(400000, NULL);
    fx->method = hf_method_parse("m", text, s_err, sizeof s_err, NULL);
    cr_assert_not_null(fx->method, "%s", s_err);
    hf_run_opts_t ro = opts ? *opts : hf_run_opts_default();
    cr_assert_eq(hf_hwsim_actuator_safe(fx->sim, 0, &fx->safe[0]), HF_OK);
    ro.hal.safe_values = fx->safe;
    ro.hal.safe_count = 1;
    fx->run = hf_run_new(fx->method, &fx->hal, hf_memchan_channel(fx->mc), 9, &ro, s_err,
                         sizeof s_err, NULL);
    cr_assert_not_null(fx->run, "%s", s_err);
    cr_assert_eq(hf_run_start(fx->run, T0, W0), HF_OK);
}

static void
fx_fini(fx_t *fx)
{
    hf_run_destroy(&fx->run);
    hf_method_destroy(&fx->method);
    hf_memchan_destroy(&fx->mc);
    hf_hwsim_destroy(&fx->sim);
}

static int
s_active(const fx_t *fx)
{
    hf_run_state_t st = hf_run_state(fx->run);
    return st == HF_RUN_RUNNING || st == HF_RUN_PAUSED;
}

/* Tick exactly at the deadlines the run asks for, like the daemon, until it
 * ends or `until`; every deadline moves forward. */
static void
s_drive(fx_t *fx, uint64_t until)
{
    uint64_t t = T0, n = 0;
    while (s_active(fx) && t <= until) {
        uint64_t next = 0;
        hf_run_tick(fx->run, t, &next);
        if (next == HF_RUN_NEVER)
            break;
        cr_assert_geq(next, t);
        t = next > t ? next : t + 1;
        cr_assert_lt(++n, 2000000);
    }
}

static size_t
s_count(fx_t *fx, uint8_t kind, int sub)
{
    size_t n = 0;
    for (size_t i = 0; i < hf_memchan_count(fx->mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx->mc, i);
        if (r->kind != kind)
            continue;
        if (sub < 0 || (kind == HF_KIND_EVENT && r->u.event.type == sub) ||
            (kind == HF_KIND_HW_ERROR && r->u.hw_error.cls == sub) ||
            (kind == HF_KIND_ALARM && r->u.alarm.raised == sub))
            n++;
    }
    return n;
}

/* The failures a record stands for: its own (1, unless a summary) plus the
 * suppressed count in its text. */
static uint64_t
s_failures_of(const hf_record_t *r)
{
    const char *t = r->u.hw_error.text;
    if (strncmp(t, "(+", 2) == 0)
        return 1 + strtoull(t + 2, NULL, 10);
    if (t[0] == '(')
        return strtoull(t + 1, NULL, 10);
    return 1;
}

static const hf_record_t *
s_last_event(fx_t *fx)
{
    for (size_t i = hf_memchan_count(fx->mc); i-- > 0;) {
        const hf_record_t *r = hf_memchan_at(fx->mc, i);
        if (r->kind == HF_KIND_EVENT)
            return r;
    }
    cr_assert_fail("no event");
    return NULL;
}

static const char *k_method = "sample oven.temp,flow 100\n"
                              "set oven.setpoint 30\n"
                              "hold 2s\n";

/* ---- transient / timeout ---------------------------------------------------- */

Test(run_hw, transient_read_retried_after_backoff_keeps_its_grid_time, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_method, NULL);
    /* flow fails for 2 ms from 500 ms: attempts at +0 and +1 ms fail, the
     * retry at +3 ms (backoff 1 ms, doubling) succeeds. Retried at once, all
     * three attempts would fail. */
    hf_hwsim_inject(fx.sim, 2, HF_HAL_TRANSIENT, T0 + 500 * MS, T0 + 502 * MS);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.missed, 0);
    cr_assert_eq(c.samples, 400);
    cr_assert_eq(c.hw_faults, 2);
    cr_assert_eq(c.retries, 2);
    int seen = 0;
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx.mc, i);
        if (r->kind == HF_KIND_SAMPLE && r->u.sample.channel == 1 && r->mono_ns == T0 + 500 * MS)
            seen++;
    }
    cr_assert_eq(seen, 1, "the retried sample carries its grid time");
    /* first failure: a record at once, at the failing call's time */
    cr_assert_eq(s_count(&fx, HF_KIND_HW_ERROR, HF_HAL_TRANSIENT), 2);
    fx_fini(&fx);
}

Test(run_hw, retries_never_wait_past_the_next_grid_point, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.hal.retry_backoff_ns = 50 * MS; /* longer than the 10 ms period */
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_fault_t f = {.channel = 2, .cls = HF_HAL_TIMEOUT, .from_ns = T0 + 500 * MS,
                          .until_ns = HF_HWSIM_FOREVER, .count = 2};
    hf_hwsim_add_fault(fx.sim, &f);
    s_drive(&fx, T0 + 10 * S);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.missed, 0, "retried at once instead, the burst absorbed");
    cr_assert_eq(c.hw_faults, 2);
    cr_assert_eq(c.samples, 400);
    fx_fini(&fx);
}

Test(run_hw, grid_point_whose_retries_all_fail_is_missed_and_the_run_goes_on, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.read_retries = 2;
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_inject(fx.sim, 2, HF_HAL_TIMEOUT, T0 + 1 * S, T0 + 1 * S + 35 * MS);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.missed, 4, "grid points 1000, 1010, 1020, 1030 ms");
    cr_assert_eq(c.samples, 400 - 4);
    cr_assert_eq(c.hw_faults, 4 * 3);
    cr_assert_eq(s_count(&fx, HF_KIND_EVENT, HF_EV_PAUSED), 0);
    fx_fini(&fx);
}

Test(run_hw, rate_limit_keeps_records_few_and_counts_exact, .timeout = 20)
{
    /* flow at 1 kHz failing for 3.5 s: 14000 failed calls */
    fx_t fx;
    fx_init(&fx, "sample flow 1000\nhold 5s\n", NULL);
    hf_hwsim_inject(fx.sim, 2, HF_HAL_TRANSIENT, T0 + 1 * S, T0 + 4500 * MS);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.missed, 3500);
    cr_assert_eq(c.samples, 5000 - 3500);
    cr_assert_eq(c.hw_faults, 3500 * 4);
    size_t recs = s_count(&fx, HF_KIND_HW_ERROR, -1);
    cr_assert_eq(recs, c.hw_errors);
    cr_assert_leq(recs, 6, "about one a second, not %zu", recs);
    cr_assert_geq(recs, 4);
    uint64_t sum = 0, own = 0;
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx.mc, i);
        if (r->kind != HF_KIND_HW_ERROR)
            continue;
        sum += s_failures_of(r);
        own += r->u.hw_error.text[0] != '(' || r->u.hw_error.text[1] == '+';
    }
    cr_assert_eq(sum, c.hw_faults, "every failure is in exactly one record");
    cr_assert_eq(own + c.hw_suppressed, c.hw_faults);
    fx_fini(&fx);
}

Test(run_hw, rate_limit_zero_interval_makes_a_record_per_failure, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.hal.report_interval_ns = 0;
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_fault_t f = {.channel = 2, .cls = HF_HAL_TRANSIENT, .from_ns = T0 + 500 * MS,
                          .until_ns = HF_HWSIM_FOREVER, .count = 3};
    hf_hwsim_add_fault(fx.sim, &f);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(s_count(&fx, HF_KIND_HW_ERROR, HF_HAL_TRANSIENT), 3);
    fx_fini(&fx);
}

/* ---- disconnected --------------------------------------------------------------- */

static hf_hwsim_fault_t
s_disconnect(uint64_t at, uint64_t len)
{
    return (hf_hwsim_fault_t){.kind = HF_HWSIM_DISCONNECT, .target = HF_HWSIM_ON_DEVICE,
                              .from_ns = at, .until_ns = at + len, .reason = "USB reset"};
}

Test(run_hw, disconnect_within_grace_pauses_reopens_and_resumes, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.hal.disconnect_grace_ns = 3 * S;
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_fault_t f = s_disconnect(T0 + 1 * S, 1 * S);
    cr_assert_eq(hf_hwsim_add_fault(fx.sim, &f), HF_OK);
    s_drive(&fx, T0 + 20 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    cr_assert_eq(s_count(&fx, HF_KIND_EVENT, HF_EV_PAUSED), 1);
    cr_assert_eq(s_count(&fx, HF_KIND_EVENT, HF_EV_RESUMED), 1);
    cr_assert_eq(s_count(&fx, HF_KIND_ALARM, 1), 1);
    cr_assert_eq(s_count(&fx, HF_KIND_ALARM, 0), 1, "cleared when the device is back");
    cr_assert_geq(s_count(&fx, HF_KIND_HW_ERROR, HF_HAL_DISCONNECTED), 1);
    /* order: hw_error, alarm raised, paused ... alarm cleared, resumed */
    int stage = 0;
    uint64_t paused_at = 0, resumed_at = 0;
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx.mc, i);
        if (stage == 0 && r->kind == HF_KIND_HW_ERROR)
            stage = 1;
        else if (stage == 1 && r->kind == HF_KIND_ALARM && r->u.alarm.raised) {
            cr_assert_eq(r->u.alarm.code, HF_ALARM_CODE_DEVICE_LOST);
            cr_assert_eq(r->u.alarm.severity, HF_ALARM_WARNING);
            stage = 2;
        } else if (stage == 2 && r->kind == HF_KIND_EVENT && r->u.event.type == HF_EV_PAUSED) {
            cr_assert_str_eq(r->u.event.text, "device disconnected");
            paused_at = r->mono_ns;
            stage = 3;
        } else if (stage == 3 && r->kind == HF_KIND_ALARM && !r->u.alarm.raised) {
            stage = 4;
        } else if (stage == 4 && r->kind == HF_KIND_EVENT && r->u.event.type == HF_EV_RESUMED) {
            resumed_at = r->mono_ns;
            stage = 5;
        }
    }
    cr_assert_eq(stage, 5, "records in the documented order");
    cr_assert_eq(paused_at, T0 + 1 * S);
    /* reopens at +100, +300, +700 ms fail (link down), +1500 ms succeeds */
    cr_assert_eq(resumed_at, T0 + 2500 * MS, "resumed at %" PRIu64, resumed_at - T0);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.reopens, 4);
    cr_assert_eq(c.paused_ns, 1500 * MS);
    cr_assert_eq(c.samples + c.missed, 400, "every grid point sampled or missed");
    cr_assert_leq(c.missed, 2);
    cr_assert_eq(s_last_event(&fx)->mono_ns, T0 + 2 * S + 1500 * MS);
    fx_fini(&fx);
}

Test(run_hw, disconnect_beyond_grace_interrupts_and_the_alarm_stays, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.hal.disconnect_grace_ns = 1 * S;
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_fault_t f = s_disconnect(T0 + 1 * S, 4 * S);
    hf_hwsim_add_fault(fx.sim, &f);
    s_drive(&fx, T0 + 20 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_INTERRUPTED);
    const hf_record_t *ev = s_last_event(&fx);
    cr_assert_eq(ev->u.event.type, HF_EV_INTERRUPTED);
    cr_assert_str_eq(ev->u.event.text, "device did not come back within 1s");
    cr_assert_eq(ev->mono_ns, T0 + 2 * S, "the last attempt is at the end of the grace");
    cr_assert_eq(s_count(&fx, HF_KIND_EVENT, HF_EV_PAUSED), 1);
    cr_assert_eq(s_count(&fx, HF_KIND_EVENT, HF_EV_RESUMED), 0);
    cr_assert_eq(s_count(&fx, HF_KIND_ALARM, 1), 1);
    cr_assert_eq(s_count(&fx, HF_KIND_ALARM, 0), 0, "the device is still lost");
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.reopens, 4, "+100, +300, +700 ms and the grace end");
    cr_assert_eq(c.paused_ns, 1 * S, "paused from the loss to the end of the grace");
    fx_fini(&fx);
}

Test(run_hw, resume_is_refused_while_the_device_is_lost_and_abort_works, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_method, NULL);
    hf_hwsim_fault_t f = s_disconnect(T0 + 1 * S, 10 * S);
    hf_hwsim_add_fault(fx.sim, &f);
    s_drive(&fx, T0 + 1500 * MS);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_PAUSED);
    cr_assert_eq(hf_run_device_lost(fx.run), 1);
    cr_assert_eq(hf_run_resume(fx.run, T0 + 1500 * MS, "by hand"), HF_ESTATE);
    cr_assert_eq(hf_run_pause(fx.run, T0 + 1500 * MS, "by hand"), HF_ESTATE);
    uint64_t next = 0;
    cr_assert_eq(hf_run_tick(fx.run, T0 + 1500 * MS, &next), HF_OK);
    cr_assert_gt(next, T0 + 1500 * MS, "the next reopen is a deadline");
    cr_assert_leq(next, T0 + 6 * S, "within the grace");
    cr_assert_eq(hf_run_abort(fx.run, T0 + 1600 * MS), HF_OK);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_ABORTED);
    cr_assert_eq(hf_run_device_lost(fx.run), 0);
    fx_fini(&fx);
}

Test(run_hw, operator_pause_is_not_resumed_by_the_device, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, k_method, NULL);
    s_drive(&fx, T0 + 500 * MS);
    cr_assert_eq(hf_run_pause(fx.run, T0 + 500 * MS, "by hand"), HF_OK);
    uint64_t next = 0;
    cr_assert_eq(hf_run_tick(fx.run, T0 + 9 * S, &next), HF_OK);
    cr_assert_eq(next, HF_RUN_NEVER);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_PAUSED);
    cr_assert_eq(hf_run_device_lost(fx.run), 0);
    cr_assert_eq(hf_run_resume(fx.run, T0 + 9 * S, NULL), HF_OK);
    fx_fini(&fx);
}

/* ---- fatal --------------------------------------------------------------------- */

Test(run_hw, fatal_interrupts_drives_safe_values_and_raises_a_critical_alarm, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, "sample oven.temp,flow 50\nset oven.setpoint 30\nramp oven.setpoint 60 2s\n"
                 "hold 1s\n", NULL);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FATAL, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 1500 * MS, .reason = "interlock tripped"};
    cr_assert_eq(hf_hwsim_add_fault(fx.sim, &f), HF_OK);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_INTERRUPTED);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 20.0, 1e-12, "the safe value");
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.safe_writes, 1);
    cr_assert_eq(s_count(&fx, HF_KIND_HW_ERROR, HF_HAL_FATAL), 1);
    size_t n = hf_memchan_count(fx.mc);
    const hf_record_t *hw = hf_memchan_at(fx.mc, n - 3), *al = hf_memchan_at(fx.mc, n - 2);
    const hf_record_t *ev = hf_memchan_at(fx.mc, n - 1);
    cr_assert_eq(hw->kind, HF_KIND_HW_ERROR);
    cr_assert_eq(hw->mono_ns, T0 + 1500 * MS, "the ramp write at 1.5 s");
    cr_assert(strstr(hw->u.hw_error.text, "write oven.setpoint: fatal"), "%s", hw->u.hw_error.text);
    cr_assert_eq(al->kind, HF_KIND_ALARM);
    cr_assert_eq(al->u.alarm.raised, 1);
    cr_assert_eq(al->u.alarm.severity, HF_ALARM_CRITICAL);
    cr_assert_eq(al->u.alarm.code, HF_ALARM_CODE_DEVICE_FATAL);
    cr_assert(strstr(al->u.alarm.text, "interlock tripped"), "%s", al->u.alarm.text);
    cr_assert_eq(ev->u.event.type, HF_EV_INTERRUPTED);
    cr_assert(strstr(ev->u.event.text, "safe state 1/1"), "%s", ev->u.event.text);
    cr_assert_eq(hf_run_tick(fx.run, T0 + 11 * S, NULL), HF_ESTATE, "terminal");
    fx_fini(&fx);
}

Test(run_hw, fatal_without_safe_state_leaves_actuators_alone, .timeout = 10)
{
    hf_run_opts_t o = hf_run_opts_default();
    o.hal.safe_state = 0;
    fx_t fx;
    fx_init(&fx, k_method, &o);
    hf_hwsim_inject(fx.sim, 0, HF_HAL_FATAL, T0 + 500 * MS, HF_HWSIM_FOREVER);
    s_drive(&fx, T0 + 10 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_INTERRUPTED);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 30.0, 1e-12);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.safe_writes, 0);
    cr_assert_eq(c.missed, 2, "oven.temp and flow at 500 ms");
    fx_fini(&fx);
}

/* ---- wait-until ------------------------------------------------------------------ */

Test(run_hw, wait_until_proceeds_when_the_condition_holds, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, "sample oven.temp 10\nset oven.setpoint 60\n"
                 "wait-until oven.temp >= 40 30s\nset oven.setpoint 20\nhold 1s\n", NULL);
    s_drive(&fx, T0 + 60 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_COMPLETED);
    /* lag from 22 toward 60, tau 1.5 s: >= 40 after about 0.96 s */
    uint64_t set_at = 0;
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx.mc, i);
        if (r->kind == HF_KIND_EVENT && r->u.event.type == HF_EV_STEP && r->u.event.step == 3)
            set_at = r->mono_ns;
    }
    cr_assert_geq(set_at, T0 + 900 * MS);
    cr_assert_leq(set_at, T0 + 1100 * MS);
    cr_assert_eq((set_at - T0) % (10 * MS), 0, "on the 10 ms poll grid");
    cr_assert_eq(s_last_event(&fx)->mono_ns, set_at + 1 * S);
    cr_assert_float_eq(hf_hwsim_actuator_value(fx.sim, 0), 20.0, 1e-12);
    fx_fini(&fx);
}

Test(run_hw, wait_until_that_times_out_fails_the_run, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, "sample oven.temp 10\nset oven.setpoint 30\n"
                 "wait-until oven.temp > 100 2s\nhold 1s\n", NULL);
    s_drive(&fx, T0 + 60 * S);
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_FAILED);
    const hf_record_t *ev = s_last_event(&fx);
    cr_assert_eq(ev->u.event.type, HF_EV_FAILED);
    cr_assert_eq(ev->mono_ns, T0 + 2 * S);
    cr_assert(strstr(ev->u.event.text, "wait-until oven.temp > 100 2s: not met within 2s"), "%s",
              ev->u.event.text);
    cr_assert(strstr(ev->u.event.text, "last 27."), "%s", ev->u.event.text);
    hf_run_counters_t c;
    hf_run_counters(fx.run, &c);
    cr_assert_eq(c.samples, 20, "sampling went on while waiting");
    cr_assert_eq(hf_run_tick(fx.run, T0 + 61 * S, NULL), HF_ESTATE);
    fx_fini(&fx);
}

Test(run_hw, wait_until_time_is_shifted_by_a_pause, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, "set oven.setpoint 30\nwait-until flow > 100 1s\n", NULL);
    s_drive(&fx, T0 + 500 * MS);
    cr_assert_eq(hf_run_pause(fx.run, T0 + 500 * MS, NULL), HF_OK);
    cr_assert_eq(hf_run_resume(fx.run, T0 + 5 * S, NULL), HF_OK);
    uint64_t t = T0 + 5 * S;
    while (s_active(&fx)) {
        uint64_t next = 0;
        hf_run_tick(fx.run, t, &next);
        t = next;
    }
    cr_assert_eq(hf_run_state(fx.run), HF_RUN_FAILED);
    cr_assert_eq(s_last_event(&fx)->mono_ns, T0 + 5500 * MS, "1 s of method time");
    fx_fini(&fx);
}
