/* hf_hal.h - the engine's only view of an instrument.
 *
 * Every instrument driver (hwsim, or a real device) implements hf_hal_ops_t.
 * Every call returns a classified result, never a bare errno: the engine
 * decides what to do from the class alone (docs/hardware-errors.md).
 * Time is passed in (monotonic ns) so that a simulated instrument is
 * deterministic and a real one can time-stamp its reads.
 *
 * Channels (sensors, read) and actuators (write) are addressed by index;
 * names are looked up once, when a method is bound to the instrument.
 *
 * Thread-safety: an hf_hal_t is used by one thread at a time.
 */
#ifndef HF_HAL_H_INCLUDED
#define HF_HAL_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HF_HAL_OK = 0,
    HF_HAL_TRANSIENT = 1,    /* a read/write failed once; retry may succeed */
    HF_HAL_TIMEOUT = 2,      /* the device did not answer in time          */
    HF_HAL_DISCONNECTED = 3, /* the link to the device is lost             */
    HF_HAL_FATAL = 4,        /* the device reports a fault it can't clear  */
} hf_hal_class_t;

#define HF_HAL_REASON_MAX 95

typedef struct {
    hf_hal_class_t cls;                 /* never HF_HAL_OK when filled       */
    uint32_t device;                    /* driver-defined device index       */
    uint32_t channel;                   /* channel or actuator index         */
    int32_t code;                       /* driver-specific code              */
    char reason[HF_HAL_REASON_MAX + 1]; /* NUL-terminated, human-readable    */
} hf_hal_error_t;

typedef struct {
    /* Open the device(s). */
    hf_hal_class_t (*open)(void *impl, uint64_t mono_ns, hf_hal_error_t *err);
    /* Number of readable channels / writable actuators. */
    uint32_t (*channel_count)(void *impl);
    uint32_t (*actuator_count)(void *impl);
    /* Name of channel/actuator idx (borrowed, lives as long as impl), NULL if out of range. */
    const char *(*channel_name)(void *impl, uint32_t idx);
    const char *(*actuator_name)(void *impl, uint32_t idx);
    /* Read channel idx at time mono_ns into *value. */
    hf_hal_class_t (*read)(void *impl, uint32_t channel, uint64_t mono_ns, double *value,
                           hf_hal_error_t *err);
    /* Drive actuator idx to value at time mono_ns. */
    hf_hal_class_t (*write)(void *impl, uint32_t actuator, uint64_t mono_ns, double value,
                            hf_hal_error_t *err);
    /* Close the device(s); the impl stays valid until its owner destroys it. */
    void (*close)(void *impl);
} hf_hal_ops_t;

typedef struct {
    const hf_hal_ops_t *ops; /* borrowed, static                       */
    void *impl;              /* owned by whoever made the hf_hal_t      */
} hf_hal_t;

HF_EXPORT const char *hf_hal_class_name(hf_hal_class_t cls); /* "ok", "transient", ... */

/* Look a channel / actuator up by name: HF_OK and *idx, or HF_ENOTFOUND. */
HF_EXPORT hf_err_t hf_hal_find_channel(const hf_hal_t *hal, const char *name, uint32_t *idx);
HF_EXPORT hf_err_t hf_hal_find_actuator(const hf_hal_t *hal, const char *name, uint32_t *idx);

#ifdef __cplusplus
}
#endif
#endif
