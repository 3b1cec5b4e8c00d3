/* test_hwsim.c - hf_hwsim_t: determinism, signal models, faults. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

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
