/* test_hwsim.c - hf_hwsim_t: determinism, signal models, fault kinds, truth log. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_hwsim.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S) /* a monotonic clock is rarely 0 at open */

static hf_hwsim_t *
s_sim(uint64_t seed, hf_hal_t *hal)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.seed = seed;
    hf_err_t rc = HF_EIO;
    hf_hwsim_t *sim = hf_hwsim_new(&o, &rc);
    cr_assert_not_null(sim);
    cr_assert_eq(rc, HF_OK);
    *hal = hf_hwsim_hal(sim);
    cr_assert_eq(hal->ops->open(hal->impl, T0, NULL), HF_HAL_OK);
    return sim;
}

static double
s_read(hf_hal_t *hal, uint32_t ch, uint64_t t)
{
    double v = NAN;
    hf_hal_error_t e;
    hf_hal_class_t cls = hal->ops->read(hal->impl, ch, t, &v, &e);
    cr_assert_eq(cls, HF_HAL_OK, "read ch=%u t=%llu: %s", ch, (unsigned long long)t, e.reason);
    return v;
}

Test(hwsim, default_instrument_has_demo_channels_and_actuator, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    cr_assert_eq(hal.ops->channel_count(hal.impl), 4);
    cr_assert_eq(hal.ops->actuator_count(hal.impl), 1);
    cr_assert_str_eq(hal.ops->channel_name(hal.impl, 0), "oven.temp");
    cr_assert_str_eq(hal.ops->channel_name(hal.impl, 1), "chamber.pressure");
    cr_assert_str_eq(hal.ops->channel_name(hal.impl, 2), "flow");
    cr_assert_str_eq(hal.ops->channel_name(hal.impl, 3), "ambient");
    cr_assert_null(hal.ops->channel_name(hal.impl, 4));
    cr_assert_str_eq(hal.ops->actuator_name(hal.impl, 0), "oven.setpoint");
    cr_assert_null(hal.ops->actuator_name(hal.impl, 1));
    uint32_t idx = 0;
    cr_assert_eq(hf_hal_find_channel(&hal, "flow", &idx), HF_OK);
    cr_assert_eq(idx, 2);
    hf_hwsim_destroy(&sim);
    cr_assert_null(sim);
    hf_hwsim_destroy(&sim); /* twice is fine */
}

Test(hwsim, same_seed_and_times_give_identical_values, .timeout = 10)
{
    hf_hal_t a, b;
    hf_hwsim_t *sa = s_sim(42, &a);
    hf_hwsim_t *sb = s_sim(42, &b);
    cr_assert_eq(a.ops->write(a.impl, 0, T0 + 100 * MS, 50.0, NULL), HF_HAL_OK);
    cr_assert_eq(b.ops->write(b.impl, 0, T0 + 100 * MS, 50.0, NULL), HF_HAL_OK);
    /* b reads in a different order and twice: reads do not change the trajectory */
    for (int k = 0; k < 300; k++)
        (void)s_read(&b, (uint32_t)(k % 4), T0 + (uint64_t)(299 - k) * 10 * MS);
    for (int k = 0; k < 300; k++) {
        uint64_t t = T0 + (uint64_t)k * 10 * MS;
        for (uint32_t ch = 0; ch < 4; ch++) {
            double va = s_read(&a, ch, t), vb = s_read(&b, ch, t);
            cr_assert(memcmp(&va, &vb, sizeof va) == 0, "ch=%u k=%d %.17g != %.17g", ch, k, va,
                      vb);
        }
    }
    hf_hwsim_destroy(&sa);
    hf_hwsim_destroy(&sb);
}

Test(hwsim, different_seed_gives_different_noise, .timeout = 10)
{
    hf_hal_t a, b;
    hf_hwsim_t *sa = s_sim(1, &a);
    hf_hwsim_t *sb = s_sim(2, &b);
    int differ = 0;
    for (int k = 0; k < 100; k++) {
        uint64_t t = T0 + (uint64_t)k * 10 * MS;
        if (s_read(&a, 2, t) != s_read(&b, 2, t))
            differ++;
        /* the constant channel has no noise: seed-independent */
        cr_assert_eq(s_read(&a, 3, t), 22.0);
        cr_assert_eq(s_read(&b, 3, t), 22.0);
    }
    cr_assert_gt(differ, 95);
    hf_hwsim_destroy(&sa);
    hf_hwsim_destroy(&sb);
}

Test(hwsim, noise_stays_within_its_band_and_varies, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(7, &hal);
    double lo = 1e9, hi = -1e9, sum = 0;
    for (int k = 0; k < 2000; k++) {
        double v = s_read(&hal, 2, T0 + (uint64_t)k * MS);
        cr_assert(v >= 1.95 && v <= 2.05, "flow %.6f outside 2.0 +- 0.05", v);
        lo = fmin(lo, v);
        hi = fmax(hi, v);
        sum += v;
    }
    cr_assert_gt(hi - lo, 0.08, "noise spans most of its band");
    cr_assert_float_eq(sum / 2000, 2.0, 0.005);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, lag_converges_toward_setpoint, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(3, &hal);
    cr_assert_float_eq(s_read(&hal, 0, T0), 22.0, 0.03, "starts at ambient");
    cr_assert_float_eq(s_read(&hal, 0, T0 + 5 * S), 22.0, 0.03, "no write: stays");
    uint64_t tw = T0 + 10 * S;
    cr_assert_eq(hal.ops->write(hal.impl, 0, tw, 60.0, NULL), HF_HAL_OK);
    cr_assert_float_eq(hf_hwsim_actuator_value(sim, 0), 60.0, 1e-12);
    /* one time constant: 63.2 % of the step; the noise is +-0.02 */
    double expect_tau = 60.0 + (22.0 - 60.0) * exp(-1.0);
    cr_assert_float_eq(s_read(&hal, 0, tw + 1500 * MS), expect_tau, 0.03);
    double prev = 0;
    for (int k = 1; k <= 20; k++) {
        double v = s_read(&hal, 0, tw + (uint64_t)k * S);
        if (k > 1)
            cr_assert_geq(v, prev - 0.05, "monotone up to noise");
        prev = v;
    }
    cr_assert_float_eq(prev, 60.0, 0.03, "settled after 20 s");
    /* down again */
    cr_assert_eq(hal.ops->write(hal.impl, 0, tw + 20 * S, 30.0, NULL), HF_HAL_OK);
    cr_assert_float_eq(s_read(&hal, 0, tw + 40 * S), 30.0, 0.03);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, sine_and_ramp_models_follow_their_formula, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.channel_count = 2;
    o.actuator_count = 0;
    o.channels[0] = (hf_hwsim_channel_t){
        .name = "s", .model = HF_HWSIM_SINE, .base = 10, .amplitude = 2, .period_s = 4};
    o.channels[1] =
        (hf_hwsim_channel_t){.name = "r", .model = HF_HWSIM_RAMP, .base = 1, .slope = 0.5};
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hal.ops->open(hal.impl, T0, NULL);
    cr_assert_float_eq(s_read(&hal, 0, T0), 10.0, 1e-9);
    cr_assert_float_eq(s_read(&hal, 0, T0 + 1 * S), 12.0, 1e-9);
    cr_assert_float_eq(s_read(&hal, 0, T0 + 3 * S), 8.0, 1e-9);
    cr_assert_float_eq(s_read(&hal, 1, T0 + 4 * S), 3.0, 1e-9);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, bad_options_are_refused, .timeout = 10)
{
    hf_err_t rc = HF_OK;
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.channels[0].actuator = 5; /* LAG on a missing actuator */
    cr_assert_null(hf_hwsim_new(&o, &rc));
    cr_assert_eq(rc, HF_EINVAL);
    o = hf_hwsim_opts_default();
    o.channels[1].name = "oven.temp"; /* duplicate */
    cr_assert_null(hf_hwsim_new(&o, &rc));
    cr_assert_eq(rc, HF_EINVAL);
    o = hf_hwsim_opts_default();
    o.channel_count = 0;
    cr_assert_null(hf_hwsim_new(&o, &rc));
    cr_assert_eq(rc, HF_EINVAL);
}

Test(hwsim, reads_before_open_are_disconnected, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(e.cls, HF_HAL_DISCONNECTED);
    cr_assert_eq(hal.ops->read(hal.impl, 9, T0, &v, &e), HF_HAL_FATAL, "out of range channel");
    hf_hwsim_destroy(&sim);
}

Test(hwsim, injected_fault_fails_reads_only_inside_its_window, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    cr_assert_eq(hf_hwsim_inject(sim, 1, HF_HAL_TRANSIENT, T0 + 1 * S, T0 + 2 * S), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(hal.ops->read(hal.impl, 1, T0 + 999 * MS, &v, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->read(hal.impl, 1, T0 + 1 * S, &v, &e), HF_HAL_TRANSIENT);
    cr_assert_eq(e.cls, HF_HAL_TRANSIENT);
    cr_assert_eq(e.channel, 1);
    cr_assert(strstr(e.reason, "chamber.pressure"), "reason names the channel: %s", e.reason);
    cr_assert_eq(hal.ops->read(hal.impl, 1, T0 + 1999 * MS, &v, &e), HF_HAL_TRANSIENT);
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0 + 1500 * MS, &v, &e), HF_HAL_OK, "other channel");
    cr_assert_eq(hal.ops->read(hal.impl, 1, T0 + 2 * S, &v, &e), HF_HAL_OK, "window end excl.");
    hf_hwsim_destroy(&sim);
}

Test(hwsim, counted_fault_clears_after_n_reads, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.channel = HF_HWSIM_ALL_CHANNELS, .cls = HF_HAL_TIMEOUT,
                          .from_ns = T0, .until_ns = T0 + S, .count = 2};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    double v;
    cr_assert_eq(hal.ops->read(hal.impl, 3, T0, &v, NULL), HF_HAL_TIMEOUT);
    cr_assert_eq(hal.ops->read(hal.impl, 2, T0, &v, NULL), HF_HAL_TIMEOUT);
    cr_assert_eq(hal.ops->read(hal.impl, 3, T0, &v, NULL), HF_HAL_OK);
    cr_assert_eq(hf_hwsim_reads(sim), 3);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, fault_table_is_bounded_and_checked, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    cr_assert_eq(hf_hwsim_inject(sim, 0, HF_HAL_OK, 0, 10), HF_EINVAL);
    cr_assert_eq(hf_hwsim_inject(sim, 0, HF_HAL_FATAL, 10, 10), HF_EINVAL);
    cr_assert_eq(hf_hwsim_inject(sim, 4, HF_HAL_FATAL, 0, 10), HF_EINVAL);
    for (int i = 0; i < HF_HWSIM_MAX_FAULTS; i++)
        cr_assert_eq(hf_hwsim_inject(sim, 0, HF_HAL_FATAL, 0, 10), HF_OK);
    cr_assert_eq(hf_hwsim_inject(sim, 0, HF_HAL_FATAL, 0, 10), HF_EFULL);
    hf_hwsim_destroy(&sim);
}

/* ---- fault kinds ---------------------------------------------------------- */

static hf_hal_class_t
s_try_read(hf_hal_t *hal, uint32_t ch, uint64_t t, double *v, hf_hal_error_t *e)
{
    memset(e, 0, sizeof *e);
    return hal->ops->read(hal->impl, ch, t, v, e);
}

Test(hwsim, burst_fails_the_next_k_reads_after_t_then_clears, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FAIL, .target = HF_HWSIM_ON_CHANNEL, .channel = 2,
                          .cls = HF_HAL_TIMEOUT, .from_ns = T0 + 1 * S,
                          .until_ns = HF_HWSIM_FOREVER, .count = 3};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 2, T0 + 500 * MS, &v, &e), HF_HAL_OK, "before t");
    /* long after t: the burst waits for the first read, however late */
    for (int k = 1; k <= 3; k++) {
        cr_assert_eq(s_try_read(&hal, 2, T0 + 60 * S, &v, &e), HF_HAL_TIMEOUT);
        cr_assert_eq(e.cls, HF_HAL_TIMEOUT);
        cr_assert_eq(e.channel, 2);
        cr_assert_eq(e.code, 100 + HF_HAL_TIMEOUT);
        char want[32];
        snprintf(want, sizeof want, "%d of 3", k);
        cr_assert(strstr(e.reason, "hwsim/flow") && strstr(e.reason, want), "%s", e.reason);
    }
    cr_assert_eq(s_try_read(&hal, 2, T0 + 60 * S, &v, &e), HF_HAL_OK, "burst spent");
    cr_assert_eq(s_try_read(&hal, 1, T0 + 60 * S, &v, &e), HF_HAL_OK, "other channel");
    hf_hwsim_destroy(&sim);
}

Test(hwsim, write_burst_fails_writes_and_leaves_the_actuator_unchanged, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FAIL, .target = HF_HWSIM_ON_ACTUATOR, .channel = 0,
                          .cls = HF_HAL_TRANSIENT, .from_ns = T0 + 1 * S,
                          .until_ns = HF_HWSIM_FOREVER, .count = 2, .reason = "bus\nbusy"};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 1 * S, 30.0, &e), HF_HAL_TRANSIENT);
    cr_assert_str_eq(e.reason, "hwsim/oven.setpoint: bus busy", "reason is one line");
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 1 * S, 31.0, &e), HF_HAL_TRANSIENT);
    cr_assert_float_eq(hf_hwsim_actuator_value(sim, 0), 22.0, 1e-12, "failed writes not applied");
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 1 * S, 32.0, &e), HF_HAL_OK);
    cr_assert_float_eq(hf_hwsim_actuator_value(sim, 0), 32.0, 1e-12);
    cr_assert_eq(hf_hwsim_writes(sim), 3);
    /* reads are not affected by an actuator fault */
    double v;
    cr_assert_eq(s_try_read(&hal, 0, T0 + 1 * S, &v, &e), HF_HAL_OK);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, device_burst_counts_reads_and_writes_together, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FAIL, .target = HF_HWSIM_ON_DEVICE,
                          .cls = HF_HAL_TRANSIENT, .from_ns = T0, .until_ns = HF_HWSIM_FOREVER,
                          .count = 2};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 3, T0, &v, &e), HF_HAL_TRANSIENT);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0, 25.0, &e), HF_HAL_TRANSIENT);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0, 25.0, &e), HF_HAL_OK);
    cr_assert_eq(s_try_read(&hal, 3, T0, &v, &e), HF_HAL_OK);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, stuck_channel_returns_its_value_at_t_for_the_duration, .timeout = 10)
{
    hf_hal_t hal, ref_hal;
    hf_hwsim_t *sim = s_sim(5, &hal);
    hf_hwsim_t *ref = s_sim(5, &ref_hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_STUCK, .channel = 0, .from_ns = T0 + 2 * S,
                          .until_ns = T0 + 4 * S};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 1 * S, 60.0, NULL), HF_HAL_OK);
    cr_assert_eq(ref_hal.ops->write(ref_hal.impl, 0, T0 + 1 * S, 60.0, NULL), HF_HAL_OK);
    double at_t = s_read(&ref_hal, 0, T0 + 2 * S);
    /* a write during the stuck window must not change the frozen value */
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 3 * S, 30.0, NULL), HF_HAL_OK);
    cr_assert_eq(ref_hal.ops->write(ref_hal.impl, 0, T0 + 3 * S, 30.0, NULL), HF_HAL_OK);
    for (uint64_t t = T0 + 2 * S; t < T0 + 4 * S; t += 100 * MS) {
        double v = s_read(&hal, 0, t);
        cr_assert(memcmp(&v, &at_t, sizeof v) == 0, "frozen %.17g != %.17g", v, at_t);
    }
    /* before and after: the normal trajectory */
    double a = s_read(&hal, 0, T0 + 1500 * MS), b = s_read(&ref_hal, 0, T0 + 1500 * MS);
    cr_assert_eq(a, b);
    a = s_read(&hal, 0, T0 + 4 * S);
    b = s_read(&ref_hal, 0, T0 + 4 * S);
    cr_assert_eq(a, b);
    cr_assert_eq(hf_hwsim_reads(sim), 22, "stuck reads are reads: no error");
    hf_hwsim_destroy(&sim);
    hf_hwsim_destroy(&ref);
}

Test(hwsim, drift_adds_a_growing_offset_then_stops, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_DRIFT, .channel = 3, .from_ns = T0 + 1 * S,
                          .until_ns = T0 + 5 * S, .rate = 0.5};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 500 * MS), 22.0, 1e-12);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 1 * S), 22.0, 1e-12);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 3 * S), 23.0, 1e-9);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 4500 * MS), 23.75, 1e-9);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 5 * S), 22.0, 1e-12, "drift window over");
    /* forever, on every channel: ramp keeps going */
    hf_hwsim_fault_t g = {.kind = HF_HWSIM_DRIFT, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 10 * S, .until_ns = HF_HWSIM_FOREVER, .rate = -1.0};
    cr_assert_eq(hf_hwsim_add_fault(sim, &g), HF_OK);
    cr_assert_float_eq(s_read(&hal, 3, T0 + 110 * S), 22.0 - 100.0, 1e-9);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, disconnect_fails_everything_then_needs_a_reopen, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_DISCONNECT, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 1 * S, .until_ns = T0 + 3 * S};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 0, T0 + 999 * MS, &v, &e), HF_HAL_OK);
    cr_assert_eq(s_try_read(&hal, 0, T0 + 1 * S, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(e.code, 200);
    cr_assert(strstr(e.reason, "link down"), "%s", e.reason);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 30.0, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(e.channel, 0);
    memset(&e, 0, sizeof e);
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 2 * S, &e), HF_HAL_DISCONNECTED, "open in outage");
    cr_assert_eq(e.channel, HF_HWSIM_WHOLE_DEVICE);
    /* outage over, but no reopen yet */
    cr_assert_eq(s_try_read(&hal, 0, T0 + 3 * S, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(e.code, 201);
    cr_assert(strstr(e.reason, "not reopened"), "%s", e.reason);
    hal.ops->close(hal.impl);
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 3 * S, &e), HF_HAL_OK);
    cr_assert_eq(s_try_read(&hal, 0, T0 + 3 * S, &v, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 3 * S, 30.0, &e), HF_HAL_OK);
    /* the model clock kept its origin: ambient still 22, pressure as before */
    hf_hal_t rh;
    hf_hwsim_t *ref = s_sim(1, &rh);
    cr_assert_eq(s_read(&hal, 1, T0 + 7 * S), s_read(&rh, 1, T0 + 7 * S));
    hf_hwsim_destroy(&ref);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, disconnect_nobody_saw_still_needs_a_reopen, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_DISCONNECT, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 1 * S, .until_ns = T0 + 2 * S};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 0, T0 + 5 * S, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(e.code, 201);
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 5 * S, &e), HF_HAL_OK, "open without close");
    cr_assert_eq(s_try_read(&hal, 0, T0 + 5 * S, &v, &e), HF_HAL_OK);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, fatal_device_fails_everything_for_good_but_accepts_safe_writes, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.actuators[0].has_safe = 1;
    o.actuators[0].safe = 20.0;
    o.device = 7;
    o.device_name = "rig";
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    cr_assert_eq(hal.ops->open(hal.impl, T0, NULL), HF_HAL_OK);
    double safe = 0;
    cr_assert_eq(hf_hwsim_actuator_safe(sim, 0, &safe), HF_OK);
    cr_assert_eq(safe, 20.0);
    cr_assert_eq(hf_hwsim_actuator_safe(sim, 1, &safe), HF_ENOTFOUND);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FATAL, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 1 * S, .reason = "interlock tripped"};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 1, T0 + 1 * S, &v, &e), HF_HAL_FATAL);
    cr_assert_eq(e.device, 7);
    cr_assert_eq(e.channel, 1);
    cr_assert_eq(e.code, 300);
    cr_assert_str_eq(e.reason, "rig/chamber.pressure: interlock tripped");
    /* sticky: even a call stamped earlier fails now */
    cr_assert_eq(s_try_read(&hal, 1, T0 + 500 * MS, &v, &e), HF_HAL_FATAL);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 30.0, &e), HF_HAL_FATAL);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 20.0, &e), HF_HAL_OK, "safe write");
    cr_assert_eq(hf_hwsim_actuator_value(sim, 0), 20.0);
    hal.ops->close(hal.impl);
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 100 * S, &e), HF_HAL_FATAL, "open fails too");
    hf_hwsim_destroy(&sim);
}

Test(hwsim, fatal_on_one_channel_spares_the_others, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FATAL, .channel = 2, .from_ns = T0 + 1 * S};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 2, T0 + 2 * S, &v, &e), HF_HAL_FATAL);
    cr_assert(strstr(e.reason, "flow"), "%s", e.reason);
    cr_assert_eq(s_try_read(&hal, 1, T0 + 2 * S, &v, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 30.0, &e), HF_HAL_OK);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, since_open_faults_are_timed_from_the_first_open, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_FAIL, .channel = 3, .cls = HF_HAL_TRANSIENT,
                          .from_ns = 1 * S, .until_ns = 2 * S, .since_open = 1};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    cr_assert_eq(hal.ops->open(hal.impl, T0, NULL), HF_HAL_OK);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(s_try_read(&hal, 3, T0 + 500 * MS, &v, &e), HF_HAL_OK);
    cr_assert_eq(s_try_read(&hal, 3, T0 + 1500 * MS, &v, &e), HF_HAL_TRANSIENT);
    cr_assert_eq(s_try_read(&hal, 3, T0 + 2 * S, &v, &e), HF_HAL_OK);
    /* added after open: armed at once against the same origin */
    f.from_ns = 3 * S;
    f.until_ns = 4 * S;
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_OK);
    cr_assert_eq(s_try_read(&hal, 3, T0 + 3500 * MS, &v, &e), HF_HAL_TRANSIENT);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, invalid_fault_kinds_are_refused, .timeout = 10)
{
    hf_hal_t hal;
    hf_hwsim_t *sim = s_sim(1, &hal);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_DISCONNECT, .target = HF_HWSIM_ON_CHANNEL,
                          .from_ns = 0, .until_ns = 10};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_EINVAL, "disconnect is device-wide");
    f = (hf_hwsim_fault_t){.kind = HF_HWSIM_STUCK, .target = HF_HWSIM_ON_ACTUATOR,
                           .from_ns = 0, .until_ns = 10};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_EINVAL, "stuck is for channels");
    f = (hf_hwsim_fault_t){.kind = HF_HWSIM_DRIFT, .from_ns = 0, .until_ns = 10, .rate = NAN};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_EINVAL);
    f = (hf_hwsim_fault_t){.kind = HF_HWSIM_FAIL, .target = HF_HWSIM_ON_ACTUATOR, .channel = 1,
                           .cls = HF_HAL_FATAL, .from_ns = 0, .until_ns = 10};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_EINVAL, "no actuator 1");
    f = (hf_hwsim_fault_t){.kind = (hf_hwsim_fault_kind_t)9, .from_ns = 0, .until_ns = 10};
    cr_assert_eq(hf_hwsim_add_fault(sim, &f), HF_EINVAL);
    hf_hwsim_destroy(&sim);
}

Test(hwsim, same_seed_and_faults_give_identical_values_and_errors, .timeout = 10)
{
    hf_hal_t h[2];
    hf_hwsim_t *s[2];
    for (int i = 0; i < 2; i++) {
        s[i] = s_sim(99, &h[i]);
        hf_hwsim_fault_t f1 = {.kind = HF_HWSIM_STUCK, .channel = 1, .from_ns = T0 + 1 * S,
                               .until_ns = T0 + 2 * S};
        hf_hwsim_fault_t f2 = {.kind = HF_HWSIM_DRIFT, .channel = 2, .from_ns = T0,
                               .until_ns = HF_HWSIM_FOREVER, .rate = 0.1};
        hf_hwsim_fault_t f3 = {.kind = HF_HWSIM_FAIL, .target = HF_HWSIM_ON_DEVICE,
                               .cls = HF_HAL_TRANSIENT, .from_ns = T0 + 2 * S,
                               .until_ns = HF_HWSIM_FOREVER, .count = 5};
        cr_assert_eq(hf_hwsim_add_fault(s[i], &f1), HF_OK);
        cr_assert_eq(hf_hwsim_add_fault(s[i], &f2), HF_OK);
        cr_assert_eq(hf_hwsim_add_fault(s[i], &f3), HF_OK);
    }
    for (int k = 0; k < 400; k++) {
        uint64_t t = T0 + (uint64_t)k * 10 * MS;
        if (k % 50 == 0)
            for (int i = 0; i < 2; i++)
                h[i].ops->write(h[i].impl, 0, t, 20.0 + k / 10.0, NULL);
        for (uint32_t ch = 0; ch < 4; ch++) {
            double v[2] = {0, 0};
            hf_hal_error_t e[2];
            hf_hal_class_t c[2];
            for (int i = 0; i < 2; i++)
                c[i] = s_try_read(&h[i], ch, t, &v[i], &e[i]);
            cr_assert_eq(c[0], c[1]);
            cr_assert(memcmp(&v[0], &v[1], sizeof v[0]) == 0);
            if (c[0] != HF_HAL_OK)
                cr_assert_str_eq(e[0].reason, e[1].reason);
        }
    }
    hf_hwsim_destroy(&s[0]);
    hf_hwsim_destroy(&s[1]);
}

/* ---- truth log ------------------------------------------------------------ */

static char *
s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(hwsim, truth_log_records_every_value_and_error, .timeout = 10)
{
    char path[] = "/tmp/hf_truth_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.truth_path = path;
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    cr_assert_eq(hf_hwsim_truth_open(sim, path), HF_ESTATE, "already open");
    cr_assert_eq(hal.ops->open(hal.impl, T0, NULL), HF_HAL_OK);
    hf_hwsim_inject(sim, 2, HF_HAL_TIMEOUT, T0 + 1 * S, T0 + 2 * S);
    double v3 = s_read(&hal, 3, T0);
    (void)v3;
    double v;
    hf_hal_error_t e;
    cr_assert_eq(s_try_read(&hal, 2, T0 + 1 * S, &v, &e), HF_HAL_TIMEOUT);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 1 * S, 25.5, NULL), HF_HAL_OK);
    double v0 = s_read(&hal, 0, T0 + 2 * S);
    hal.ops->close(hal.impl);
    cr_assert_eq(hf_hwsim_truth_close(sim), HF_OK);
    cr_assert_eq(hf_hwsim_truth_close(sim), HF_OK, "twice is fine");
    const char *log = s_slurp(path);
    char want[512];
    snprintf(want, sizeof want,
             "# hwsim truth v1 device=hwsim seed=1\n"
             "%llu open - ok\n"
             "%llu read ambient ok 22\n"
             "%llu read flow timeout hwsim/flow: injected timeout fault\n"
             "%llu write oven.setpoint ok 25.5\n"
             "%llu read oven.temp ok %.17g\n"
             "- close - ok\n",
             (unsigned long long)T0, (unsigned long long)T0, (unsigned long long)(T0 + S),
             (unsigned long long)(T0 + S), (unsigned long long)(T0 + 2 * S), v0);
    cr_assert_str_eq(log, want);
    /* a value read back from the log is the exact double */
    const char *line = strstr(log, "read oven.temp ok ");
    cr_assert_not_null(line);
    cr_assert_eq(strtod(line + strlen("read oven.temp ok "), NULL), v0);
    hf_hwsim_destroy(&sim);
    unlink(path);
}

Test(hwsim, truth_log_is_capped_and_says_so, .timeout = 10)
{
    char path[] = "/tmp/hf_truth_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.truth_max_bytes = 4096;
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    cr_assert_eq(hf_hwsim_truth_open(sim, path), HF_OK);
    hal.ops->open(hal.impl, T0, NULL);
    for (int k = 0; k < 20000; k++) /* ~ 600 KB of lines, more than the buffer */
        (void)s_read(&hal, 0, T0 + (uint64_t)k * MS);
    cr_assert_gt(hf_hwsim_truth_dropped(sim), 19000);
    hf_hwsim_destroy(&sim); /* flushes */
    const char *log = s_slurp(path);
    size_t n = strlen(log);
    cr_assert_leq(n, 4096 + 64);
    cr_assert(strstr(log, "# truncated: cap of 4096 bytes reached\n"), "marker present");
    cr_assert_eq(log[n - 1], '\n');
    unlink(path);
}

Test(hwsim, truth_log_buffer_flushes_when_full, .timeout = 10)
{
    char path[] = "/tmp/hf_truth_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    cr_assert_eq(hf_hwsim_truth_open(sim, path), HF_OK);
    hal.ops->open(hal.impl, T0, NULL);
    int k = 0;
    struct stat st = {0};
    for (; k < 100000; k++) {
        (void)s_read(&hal, 2, T0 + (uint64_t)k * MS);
        cr_assert_eq(stat(path, &st), 0);
        if (st.st_size > 0)
            break;
    }
    cr_assert_gt(st.st_size, HF_HWSIM_TRUTH_BUF / 2, "written in one buffer-sized chunk");
    cr_assert_leq(st.st_size, HF_HWSIM_TRUTH_BUF);
    cr_assert_eq(hf_hwsim_truth_flush(sim), HF_OK);
    cr_assert_eq(hf_hwsim_truth_dropped(sim), 0);
    hf_hwsim_destroy(&sim);
    const char *log = s_slurp(path);
    int lines = 0;
    for (const char *p = log; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 1 + 1 + k + 1, "header, open, every read");
    unlink(path);
}

Test(hwsim, truth_log_open_failure_is_reported, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    o.truth_path = "/nonexistent-dir/truth.log";
    hf_err_t rc = HF_OK;
    cr_assert_null(hf_hwsim_new(&o, &rc));
    cr_assert_eq(rc, HF_EIO);
}
