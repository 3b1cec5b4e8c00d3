/* hf_pxcmd.h - hf-proxy's control commands: one text line in, one command
 * out. Pure: no I/O.
 *
 * Grammar (one command per line, words separated by spaces or tabs, a
 * trailing CR/LF ignored, keywords lower case):
 *   pass | cut | reset | blackhole | refuse | halfopen | stats
 *   delay MS [JITTER]   0..600000 (0 = no delay); each chunk waits MS +/- a
 *                       uniform JITTER (0..MS) ms, order kept (a stream)
 *   throttle BYTES_S    0..HF_PXPIPE_MAX_RATE (0 = unlimited)
 * Anything else (unknown word, missing/extra/non-decimal/out-of-range
 * argument, a line over HF_PXCMD_LINE_MAX bytes) is refused with a reason.
 */
#ifndef HF_PXCMD_H_INCLUDED
#define HF_PXCMD_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HF_PXCMD_LINE_MAX 256        /* bytes of one command line         */
#define HF_PXCMD_DELAY_MAX 600000ull /* ms                                */

typedef enum {
    HF_PXCMD_PASS = 1,  /* normal forwarding; clears every other setting   */
    HF_PXCMD_CUT,       /* close current connections with FIN              */
    HF_PXCMD_RESET,     /* close current connections with RST              */
    HF_PXCMD_BLACKHOLE, /* stall every connection, old and new, both ways  */
    HF_PXCMD_REFUSE,    /* close new connections at once                   */
    HF_PXCMD_DELAY,     /* arg: ms added to every chunk, each direction    */
    HF_PXCMD_THROTTLE,  /* arg: bytes/s per direction and connection       */
    HF_PXCMD_HALFOPEN,  /* forward client->upstream only, drop replies     */
    HF_PXCMD_STATS,     /* report counters                                 */
} hf_pxcmd_kind_t;

typedef struct {
    hf_pxcmd_kind_t kind;
    uint64_t arg;  /* DELAY: ms; THROTTLE: bytes/s; else 0 */
    uint64_t arg2; /* DELAY: jitter ms (<= arg); else 0 */
} hf_pxcmd_t;

/* Parse line[0..len). HF_OK and *out filled, or HF_EINVAL with *why (a
 * static string, never NULL) naming the problem; *out is then untouched. */
hf_err_t hf_pxcmd_parse(const char *line, size_t len, hf_pxcmd_t *out, const char **why);

/* "pass", "delay", ... ("?" for an unknown kind). */
const char *hf_pxcmd_name(hf_pxcmd_kind_t kind);

#ifdef __cplusplus
}
#endif
#endif
