/* test_hal.c - hf_hal helpers: class names and name lookup, over a fake
 * driver defined here (no hwsim dependency). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_hal.h"

static const char *k_channels[] = {"a.temp", "b.flow", NULL /* a driver bug */, "c.level"};
static const char *k_actuators[] = {"heater", "valve"};

static uint32_t
s_ccount(void *impl)
{
    (void)impl;
    return 4;
}

static uint32_t
s_acount(void *impl)
{
    (void)impl;
    return 2;
}

static const char *
s_cname(void *impl, uint32_t i)
{
    (void)impl;
    return i < 4 ? k_channels[i] : NULL;
}

static const char *
s_aname(void *impl, uint32_t i)
{
    (void)impl;
    return i < 2 ? k_actuators[i] : NULL;
}

static const hf_hal_ops_t s_ops = {.channel_count = s_ccount,
                                   .actuator_count = s_acount,
                                   .channel_name = s_cname,
                                   .actuator_name = s_aname};

Test(hal, class_names_are_stable, .timeout = 10)
{
    cr_assert_str_eq(hf_hal_class_name(HF_HAL_OK), "ok");
    cr_assert_str_eq(hf_hal_class_name(HF_HAL_TRANSIENT), "transient");
    cr_assert_str_eq(hf_hal_class_name(HF_HAL_TIMEOUT), "timeout");
    cr_assert_str_eq(hf_hal_class_name(HF_HAL_DISCONNECTED), "disconnected");
    cr_assert_str_eq(hf_hal_class_name(HF_HAL_FATAL), "fatal");
    cr_assert_str_eq(hf_hal_class_name((hf_hal_class_t)99), "?");
}

Test(hal, find_channel_returns_its_index, .timeout = 10)
{
    hf_hal_t hal = {.ops = &s_ops, .impl = NULL};
    uint32_t idx = 99;
    cr_assert_eq(hf_hal_find_channel(&hal, "a.temp", &idx), HF_OK);
    cr_assert_eq(idx, 0);
    cr_assert_eq(hf_hal_find_channel(&hal, "c.level", &idx), HF_OK);
    cr_assert_eq(idx, 3, "a NULL name from the driver is skipped, not fatal");
}

Test(hal, find_channel_unknown_is_notfound_and_leaves_idx, .timeout = 10)
{
    hf_hal_t hal = {.ops = &s_ops, .impl = NULL};
    uint32_t idx = 77;
    cr_assert_eq(hf_hal_find_channel(&hal, "nope", &idx), HF_ENOTFOUND);
    cr_assert_eq(idx, 77);
    cr_assert_eq(hf_hal_find_channel(&hal, "heater", &idx), HF_ENOTFOUND,
                 "actuators are not channels");
    cr_assert_eq(hf_hal_find_channel(&hal, NULL, &idx), HF_EINVAL);
}

Test(hal, find_actuator_by_name, .timeout = 10)
{
    hf_hal_t hal = {.ops = &s_ops, .impl = NULL};
    uint32_t idx = 99;
    cr_assert_eq(hf_hal_find_actuator(&hal, "valve", &idx), HF_OK);
    cr_assert_eq(idx, 1);
    cr_assert_eq(hf_hal_find_actuator(&hal, "a.temp", &idx), HF_ENOTFOUND);
}
