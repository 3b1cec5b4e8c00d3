/* hf_bench.h - what the files of the hf-bench program share (private to
 * bench/; nothing here is installed or used by another component).
 *
 * hf_bench.c holds the engine-side figures (real dispatcher) and main();
 * hf_bench_agg.c holds the aggregator-side figures (many simulated engines,
 * availability detection); hf_bench_hwsim.c the highest sample rate the
 * real engine sustains on hwsim. All start the real holdfast-aggregator as
 * a child process through hf_bench_agg_start and stop it by its PID.
 */
#ifndef HF_BENCH_H_INCLUDED
#define HF_BENCH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hf_dispatcher.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    pid_t pid;         /* 0 when not running                 */
    char store[512];   /* the aggregator's data directory    */
    char pidfile[600]; /* where its PID is written           */
} hf_bench_agg_t;

/* Start bin (holdfast-aggregator) bound to tcp://127.0.0.1:port, its store
 * in dir/store, its log in dir/aggregator.log, its PID in
 * dir/aggregator.pid (scripts/bench.sh stops that PID if we die). extra:
 * more arguments, NULL-terminated (at most 16), or NULL. 0 or -1. */
int hf_bench_agg_start(hf_bench_agg_t *a, const char *bin, const char *dir, int port,
                       const char *const *extra);
/* SIGTERM, wait up to 10 s, then SIGKILL; reaps the child. No-op if not running. */
void hf_bench_agg_stop(hf_bench_agg_t *a);
/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int hf_bench_free_port(void);
void hf_bench_sleep_ns(uint64_t ns);
/* utime + stime of pid (ns), 0 if unreadable. */
uint64_t hf_bench_proc_cpu_ns(pid_t pid);

/* A durable dispatcher with default options, engine id engine, spool in
 * dir/spool, linked to tcp://127.0.0.1:port; spool_max 0 = default bound.
 * NULL on error (logged). Close with hf_dispatcher_close. */
hf_dispatcher_t *hf_bench_disp_open(const char *dir, const char *engine, int port,
                                    size_t spool_max);
/* true once the link streams, false after timeout_ms. */
bool hf_bench_wait_connected(hf_dispatcher_t *d, uint32_t timeout_ms);
/* Reopen the aggregator's store (its process has exited) and check that it
 * holds exactly want_data / want_control records of engine. 0 or -1. */
int hf_bench_verify_store(const char *store_dir, const char *engine, uint64_t want_data,
                          uint64_t want_control);

/* hf-bench agg-engines AGG DIR N SECONDS: N simulated engines, 4 channels
 * at 1 kHz each, against one aggregator. Exit status 0 when the run itself
 * went right (whether or not the aggregator kept up: that is the figure). */
int hf_bench_cmd_agg_engines(const char *agg_bin, const char *dir, uint64_t n, uint64_t seconds);
/* hf-bench availability AGG DIR CUTS WATCHDOG_MS: time from a link cut to
 * the feed's "unavailable" message, CUTS silent cuts and CUTS closed ones. */
int hf_bench_cmd_availability(const char *agg_bin, const char *dir, uint64_t cuts,
                              uint64_t watchdog_ms);

/* hf-bench lmdb-engines DIR ENGINES PER ROUNDS engine|round: raw LMDB
 * with the store's key shape, ENGINES key ranges written in rounds of PER
 * records each, one durable transaction per engine per round ("engine") or
 * per round ("round"), or per round with one value per engine and round
 * ("blob"). A diagnostic for agg-engines: no floor. */
int hf_bench_cmd_lmdb_engines(const char *dir, uint64_t engines, uint64_t per, uint64_t rounds,
                              const char *mode);

/* hf-bench hwsim AGG DIR RATE SECONDS: the real engine (controller + run)
 * on a 32-channel hwsim, RATE samples/s in all (RATE / 32 Hz per channel,
 * at most HF_METHOD_RATE_MAX), through the real dispatcher to the real
 * aggregator, for SECONDS. Prints hwsim_ok 1 when that rate was sustained.
 * Exit status 0 when the run itself went right (nothing lost), whether or
 * not the rate was sustained; 2 for a rate the engine cannot express. */
int hf_bench_cmd_hwsim(const char *agg_bin, const char *dir, uint64_t rate_hz, uint64_t seconds);

#ifdef __cplusplus
}
#endif
#endif
