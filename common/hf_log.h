/* hf_log.h - logging with a host-installed sink.
 *
 * Libraries print nothing unless the host installs a sink. Daemons install
 * hf_log_stderr_sink. Messages are key=value with identifiers; nothing is
 * logged per sample. The sink pointer is one of the two allowed globals.
 */
#ifndef HF_LOG_H_INCLUDED
#define HF_LOG_H_INCLUDED

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    HF_LOG_ERROR = 0, /* needs an operator            */
    HF_LOG_WARN = 1,  /* degraded but handled         */
    HF_LOG_INFO = 2,  /* lifecycle                    */
    HF_LOG_DEBUG = 3, /* per batch                    */
} hf_log_level_t;

typedef void(hf_log_fn)(hf_log_level_t lvl, const char *component, const char *msg, void *arg);

/* Install the sink (NULL: silence). Call once, before any object is made. */
HF_EXPORT void hf_log_set_sink(hf_log_fn *fn, void *arg);
/* Messages above this level are not formatted at all. Default INFO. */
HF_EXPORT void hf_log_set_level(hf_log_level_t max);
/* A sink writing "TIME LEVEL component: msg" lines to stderr; arg ignored.
 * Thread-safe: one fprintf per line. */
HF_EXPORT void hf_log_stderr_sink(hf_log_level_t lvl, const char *component, const char *msg,
                                  void *arg);
HF_EXPORT const char *hf_log_level_name(hf_log_level_t lvl);

HF_EXPORT void hf_log(hf_log_level_t lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define hf_log_error(c, ...) hf_log(HF_LOG_ERROR, (c), __VA_ARGS__)
#define hf_log_warn(c, ...) hf_log(HF_LOG_WARN, (c), __VA_ARGS__)
#define hf_log_info(c, ...) hf_log(HF_LOG_INFO, (c), __VA_ARGS__)
#define hf_log_debug(c, ...) hf_log(HF_LOG_DEBUG, (c), __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
