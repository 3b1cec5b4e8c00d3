/* hf_hwreport.h - private: rate limit of a run's hw_error records.
 *
 * A failing channel read at 1 kHz must not put 1000 hw_error records a
 * second into the spool, yet no failure may go unreported. So failures are
 * keyed by (operation, index, class): the first failure of a key makes a
 * record at once; further failures of the key within interval_ns of that
 * record are suppressed and counted; the count is folded into the key's
 * next record: either the next failure after the interval (a record for it,
 * "+N suppressed"), or, if none comes, a summary record due at
 * last record + interval (hf_hwreport_take_due). At the end of a run every
 * pending count is taken (t = UINT64_MAX). So:
 *     failures = records for a failure + sum of every record's count.
 *
 * Pure and bounded: a fixed table of HF_HWREPORT_SLOTS keys, no clock, no
 * allocation. When the table is full of keys still inside their interval,
 * a new key is not limited (a record per failure): counts stay exact.
 *
 * Private to the engine library (engine/src); one run owns one. */
#ifndef HF_HWREPORT_H_INCLUDED
#define HF_HWREPORT_H_INCLUDED

#include <stdint.h>

#include "hf_hal.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_HWREPORT_SLOTS 160 /* keys tracked at once: 32 channels x 4 classes + writes, open */

typedef enum {
    HF_HWOP_READ = 1,  /* a sample read; index = run channel index       */
    HF_HWOP_WRITE = 2, /* an actuator write; index = hal actuator index  */
    HF_HWOP_OPEN = 3,  /* a reopen attempt; index = UINT32_MAX           */
    HF_HWOP_POLL = 4,  /* a wait-until read; index = hal channel index   */
} hf_hwop_t;

typedef struct {
    uint8_t used;
    uint8_t op;                   /* hf_hwop_t                               */
    uint8_t cls;                  /* hf_hal_class_t                          */
    uint32_t index;               /* per op                                  */
    uint64_t last_ns;             /* ns: time of the key's last record       */
    uint64_t suppressed;          /* failures since, not in any record yet   */
    hf_hal_error_t last;          /* the newest suppressed failure           */
} hf_hwreport_slot_t;

typedef struct {
    uint64_t interval_ns;         /* ns: 0 = no limit                        */
    hf_hwreport_slot_t slots[HF_HWREPORT_SLOTS];
} hf_hwreport_t;

/* A failure that was summarised without a record of its own. */
typedef struct {
    uint8_t op;                   /* hf_hwop_t                               */
    uint32_t index;
    uint64_t count;               /* failures summarised, >= 1               */
    uint64_t at_ns;               /* ns: when the summary is due             */
    hf_hal_error_t last;          /* the newest of them                      */
} hf_hwreport_due_t;

void hf_hwreport_init(hf_hwreport_t *self, uint64_t interval_ns);

/* A failure of (op, index, e->cls) at t_ns. Returns 1: make a record now,
 * and fold *folded earlier suppressed failures into it; 0: suppressed
 * (counted, reported later). */
int hf_hwreport_fail(hf_hwreport_t *self, uint8_t op, uint32_t index, uint64_t t_ns,
                     const hf_hal_error_t *e, uint64_t *folded);

/* Earliest time a summary is due, UINT64_MAX if nothing is suppressed. */
uint64_t hf_hwreport_next(const hf_hwreport_t *self);

/* Take the earliest summary due at or before t_ns (UINT64_MAX: any): 1 and
 * *out, or 0. The key's interval restarts at the summary's time. */
int hf_hwreport_take_due(hf_hwreport_t *self, uint64_t t_ns, hf_hwreport_due_t *out);

#ifdef __cplusplus
}
#endif
#endif
