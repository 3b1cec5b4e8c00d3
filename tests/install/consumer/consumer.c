/* consumer.c - an instrument's firmware in miniature, built out of tree
 * against the INSTALLED libholdfast (tests/install/run.sh builds it four
 * ways: pkg-config and find_package, shared and static).
 *
 * It touches every component the library carries, so that a static link
 * pulls in objects from each of them and their third-party dependencies
 * (zmq, czmq, msgpack, lmdb, threads, libm) must resolve:
 *   common      hf_strerror / hf_errname, the log sink, the restart window
 *   proto       a record encoded and decoded again (msgpack)
 *   hal, hwsim  the demo instrument opened and read through the hal
 *   engine      a method parsed and bound to that instrument
 *   dispatcher  a dispatcher opened on a spool in argv[1] (lmdb, zmq) and
 *               closed again; its endpoint is never listened on
 *
 * Both include forms an installed tree supports are used: <holdfast/...>
 * and the flat "hf_...h" the in-tree code uses.
 *
 * Prints "ok" and exits 0, or names the first check that failed and
 * exits 1. Usage: consumer SPOOL_DIR
 */
#include <stdio.h>
#include <string.h>

#include <holdfast/hf_engine.h>
#include <holdfast/hf_err.h>
#include <holdfast/hf_hwsim.h>
#include <holdfast/hf_log.h>
#include <holdfast/hf_proto.h>
#include <holdfast/hf_supervisor.h>

#include "hf_dispatcher.h"
#include "hf_time.h"

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "consumer: check failed at line %d: %s\n", __LINE__, #cond); \
            goto fail;                                                             \
        }                                                                          \
    } while (0)

static const char k_method[] = "# installed-library smoke test\n"
                               "sample oven.temp,flow 10\n"
                               "set oven.setpoint 25\n"
                               "ramp oven.setpoint 30 1s\n"
                               "hold 500ms\n";

int
main(int argc, char **argv)
{
    int ok = 0;
    hf_err_t err = HF_OK;
    hf_hwsim_t *sim = NULL;
    hf_method_t *method = NULL;
    hf_dispatcher_t *disp = NULL;
    int hal_open = 0;
    hf_hal_t hal = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: consumer SPOOL_DIR\n");
        return 2;
    }
    hf_log_set_sink(NULL, NULL); /* silence: a library prints nothing by default */

    /* common */
    CHECK(strcmp(hf_errname(HF_EFULL), "HF_EFULL") == 0);
    CHECK(hf_strerror(HF_EPROTO) && *hf_strerror(HF_EPROTO));
    CHECK(hf_clock_mono_ns() > 0);
    hf_restart_window_t win;
    CHECK(hf_restart_window_init(&win, 1, 1000) == HF_OK);
    CHECK(hf_restart_window_on_exit(&win, HF_TASK_PERMANENT, HF_EIO, 10) == HF_RESTART_NOW);
    CHECK(hf_restart_window_on_exit(&win, HF_TASK_PERMANENT, HF_EIO, 20) == HF_RESTART_ESCALATE);

    /* proto */
    hf_record_t rec, back;
    uint8_t buf[HF_PROTO_MAX_RECORD];
    size_t len = 0, used = 0;
    hf_record_sample(&rec, 7, 1000, 2000, 3, 42.5);
    rec.seq = 11;
    CHECK(hf_record_encode(&rec, buf, sizeof buf, &len) == HF_OK);
    CHECK(hf_record_decode(buf, len, &back, &used) == HF_OK);
    CHECK(used == len && back.seq == 11 && back.u.sample.value == 42.5);

    /* hal + hwsim */
    hf_hwsim_opts_t sopts = hf_hwsim_opts_default();
    sim = hf_hwsim_new(&sopts, &err);
    CHECK(sim && err == HF_OK);
    hal = hf_hwsim_hal(sim);
    hf_hal_error_t herr;
    memset(&herr, 0, sizeof herr);
    CHECK(hal.ops->open(hal.impl, 0, &herr) == HF_HAL_OK);
    hal_open = 1;
    uint32_t temp = 0;
    CHECK(hf_hal_find_channel(&hal, "oven.temp", &temp) == HF_OK);
    double v = 0;
    CHECK(hal.ops->read(hal.impl, temp, 1000000, &v, &herr) == HF_HAL_OK);
    CHECK(v > 0.0);

    /* engine */
    char errbuf[HF_METHOD_ERR_MAX];
    method = hf_method_parse("smoke", k_method, errbuf, sizeof errbuf, &err);
    CHECK(method && err == HF_OK);
    CHECK(hf_method_step_count(method) == 4);
    CHECK(hf_method_channel_count(method) == 2);
    hf_method_binding_t binding;
    CHECK(hf_method_bind(method, &hal, &binding, errbuf, sizeof errbuf) == HF_OK);

    /* dispatcher */
    hf_dispatcher_opts_t dopts = hf_dispatcher_opts_default();
    CHECK(dopts.durable && dopts.spool_max_bytes > 0);
    hf_full_policy_t pol;
    CHECK(hf_full_policy_parse("drop-oldest", &pol) == HF_OK && pol == HF_FULL_DROP_OLDEST);
    dopts.engine_id = "install-test";
    dopts.endpoint = "tcp://127.0.0.1:1"; /* never answered: the spool keeps all */
    dopts.spool_dir = argv[1];
    dopts.spool_max_bytes = 4u << 20;
    dopts.durable = false;
    disp = hf_dispatcher_open(&dopts, &err);
    CHECK(disp && err == HF_OK);
    hf_channel_t *ch = hf_dispatcher_channel(disp);
    CHECK(ch != NULL);
    hf_record_event(&rec, 1, hf_clock_wall_ns(), hf_clock_mono_ns(), HF_EV_STEP, 0, "smoke");
    CHECK(hf_channel_send(ch, &rec) == HF_OK);
    CHECK(hf_channel_flush(ch) == HF_OK);
    hf_dispatcher_stats_t st;
    hf_dispatcher_stats(disp, &st);
    CHECK(st.committed[HF_LANE_CONTROL] == 1);

    ok = 1;
    printf("ok\n");
fail:
    hf_dispatcher_close(&disp);
    hf_method_destroy(&method);
    if (hal_open)
        hal.ops->close(hal.impl);
    hf_hwsim_destroy(&sim);
    return ok ? 0 : 1;
}
