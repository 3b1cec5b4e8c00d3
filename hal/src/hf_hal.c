/* hf_hal.c - helpers shared by every hf_hal_t user: class names and name
 * lookup.
 *
 * Design notes: lookups are linear scans. They run once per name when a
 * method is bound to an instrument, never per sample, and instruments have
 * tens of channels, so an index would not pay for itself.
 *
 * Invariants: never reads past the counts the driver reports; a driver that
 * returns NULL for an in-range name is treated as "no such name" rather
 * than trusted.
 */
#include "hf_hal.h"

#include <assert.h>
#include <string.h>

const char *
hf_hal_class_name(hf_hal_class_t cls)
{
    switch (cls) {
    case HF_HAL_OK:
        return "ok";
    case HF_HAL_TRANSIENT:
        return "transient";
    case HF_HAL_TIMEOUT:
        return "timeout";
    case HF_HAL_DISCONNECTED:
        return "disconnected";
    case HF_HAL_FATAL:
        return "fatal";
    }
    return "?";
}

typedef const char *(s_name_fn)(void *impl, uint32_t idx);

static hf_err_t
s_find(void *impl, uint32_t count, s_name_fn *name_of, const char *name, uint32_t *idx)
{
    for (uint32_t i = 0; i < count; i++) {
        const char *n = name_of(impl, i);
        if (n && strcmp(n, name) == 0) {
            if (idx)
                *idx = i;
            return HF_OK;
        }
    }
    return HF_ENOTFOUND;
}

hf_err_t
hf_hal_find_channel(const hf_hal_t *hal, const char *name, uint32_t *idx)
{
    assert(hal && hal->ops);
    if (!name)
        return HF_EINVAL;
    return s_find(hal->impl, hal->ops->channel_count(hal->impl), hal->ops->channel_name, name,
                  idx);
}

hf_err_t
hf_hal_find_actuator(const hf_hal_t *hal, const char *name, uint32_t *idx)
{
    assert(hal && hal->ops);
    if (!name)
        return HF_EINVAL;
    return s_find(hal->impl, hal->ops->actuator_count(hal->impl), hal->ops->actuator_name, name,
                  idx);
}
