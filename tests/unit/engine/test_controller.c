/* test_controller.c - commands against the engine's controller, and the
 * run's pause / resume / interrupt, with simulated time over hwsim. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hf_engine.h"
#include "hf_hwsim.h"
#include "hf_memchan.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (5000 * S)
#define W0 (1700000000ull * S)

static const char *k_method = "sample oven.temp 100\n"
                              "set oven.setpoint 40\n"
                              "hold 2s\n";

typedef struct {
    hf_hwsim_t *sim;
    hf_hal_t hal;
    hf_memchan_t *mc;
    hf_controller_t *ctl;
    uint64_t next_id;
} fx_t;

static void
fx_init(fx_t *fx, const char *dir)
{
    memset(fx, 0, sizeof *fx);
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    fx->sim = hf_hwsim_new(&o, NULL);
    cr_assert_not_null(fx->sim);
    fx->hal = hf_hwsim_hal(fx->sim);
    cr_assert_eq(fx->hal.ops->open(fx->hal.impl, T0, NULL), HF_HAL_OK);
    fx->mc = hf_memchan_new(100000, NULL);
    hf_controller_opts_t co = hf_controller_opts_default();
    co.methods_dir = dir;
    hf_err_t rc = HF_EIO;
    fx->ctl = hf_controller_new(&fx->hal, hf_memchan_channel(fx->mc), &co, &rc);
    cr_assert_not_null(fx->ctl);
    cr_assert_eq(rc, HF_OK);
    fx->next_id = 100;
}

static void
fx_fini(fx_t *fx)
{
    hf_controller_destroy(&fx->ctl);
    cr_assert_null(fx->ctl);
    hf_memchan_destroy(&fx->mc);
    hf_hwsim_destroy(&fx->sim);
}

/* Send a command; check its COMMAND record is the last record and matches. */
static hf_err_t
fx_cmd(fx_t *fx, uint8_t verb, const char *name, const char *body, double value, uint64_t t,
       char *text_out)
{
    hf_command_t c;
    memset(&c, 0, sizeof c);
    c.id = ++fx->next_id;
    c.verb = verb;
    snprintf(c.name, sizeof c.name, "%s", name ? name : "");
    c.body = body;
    c.body_len = body ? (uint32_t)strlen(body) : 0;
    c.value = value;
    hf_err_t rc = hf_controller_command(fx->ctl, &c, t, W0 + (t - T0));
    size_t n = hf_memchan_count(fx->mc);
    cr_assert_gt(n, 0);
    const hf_record_t *r = hf_memchan_at(fx->mc, n - 1);
    cr_assert_eq(r->kind, HF_KIND_COMMAND);
    cr_assert_eq(r->lane, HF_LANE_CONTROL);
    cr_assert_eq(r->u.command.id, c.id);
    cr_assert_eq(r->u.command.verb, verb);
    cr_assert_eq(r->u.command.result, (int32_t)rc);
    if (text_out)
        strcpy(text_out, r->u.command.text);
    return rc;
}

static void
fx_drive(fx_t *fx, uint64_t from, uint64_t until)
{
    for (uint64_t t = from; t <= until; t += MS)
        (void)hf_controller_tick(fx->ctl, t, NULL);
}

Test(controller, start_inline_pause_resume_shifts_the_schedule_and_completes, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, text), HF_OK);
    cr_assert(strstr(text, "started"), "%s", text);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_RUNNING);
    fx_drive(&fx, T0, T0 + 1000 * MS);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_PAUSE, "", NULL, 0, T0 + 1000 * MS, text), HF_OK);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_PAUSED);
    size_t samples_at_pause = hf_memchan_count_kind(fx.mc, HF_KIND_SAMPLE, 0);
    /* ten seconds paused: nothing sampled, nothing ends */
    uint64_t next = 0;
    cr_assert_eq(hf_controller_tick(fx.ctl, T0 + 11 * S, &next), HF_OK);
    cr_assert_eq(next, HF_RUN_NEVER);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_SAMPLE, 0), samples_at_pause);
    /* pausing twice is refused with a reason */
    cr_assert_eq(fx_cmd(&fx, HF_CMD_PAUSE, "", NULL, 0, T0 + 11 * S, text), HF_ESTATE);
    cr_assert(strstr(text, "paused"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_RESUME, "", NULL, 0, T0 + 11 * S, text), HF_OK);
    fx_drive(&fx, T0 + 11 * S, T0 + 14 * S);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_COMPLETED);
    hf_run_counters_t c;
    hf_run_counters(hf_controller_run(fx.ctl), &c);
    /* 2 s of method at 100 Hz: exactly 200 samples, none late or missed */
    cr_assert_eq(c.samples, 200, "samples %llu", (unsigned long long)c.samples);
    cr_assert_eq(c.late, 0);
    cr_assert_eq(c.missed, 0);
    cr_assert_eq(c.paused_ns, 10 * S);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_PAUSED), 1);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_RESUMED), 1);
    /* the completion is stamped 2 s of method + 10 s paused after the start */
    for (size_t i = 0; i < hf_memchan_count(fx.mc); i++) {
        const hf_record_t *r = hf_memchan_at(fx.mc, i);
        if (r->kind == HF_KIND_EVENT && r->u.event.type == HF_EV_COMPLETED)
            cr_assert_eq(r->mono_ns, T0 + 12 * S);
    }
    fx_fini(&fx);
}

Test(controller, abort_from_paused_and_commands_without_a_run_are_refused, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_ABORT, "", NULL, 0, T0, text), HF_ESTATE);
    cr_assert(strstr(text, "no run"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_RESUME, "", NULL, 0, T0, text), HF_ESTATE);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, text), HF_OK);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, text), HF_ESTATE);
    cr_assert(strstr(text, "abort it first"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_PAUSE, "", NULL, 0, T0 + 500 * MS, NULL), HF_OK);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_ABORT, "", NULL, 0, T0 + 600 * MS, text), HF_OK);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_ABORTED);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_ABORTED), 1);
    /* the ABORTED event precedes the command's answer */
    size_t n = hf_memchan_count(fx.mc);
    const hf_record_t *ev = hf_memchan_at(fx.mc, n - 2);
    cr_assert_eq(ev->kind, HF_KIND_EVENT);
    cr_assert_eq(ev->u.event.type, HF_EV_ABORTED);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_ABORT, "", NULL, 0, T0 + 700 * MS, NULL), HF_ESTATE);
    /* a new run may start once the last one ended; its id is larger */
    uint64_t first = hf_run_id(hf_controller_run(fx.ctl));
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0 + 800 * MS, NULL), HF_OK);
    cr_assert_gt(hf_run_id(hf_controller_run(fx.ctl)), first);
    fx_fini(&fx);
}

Test(controller, a_duplicate_command_id_is_not_carried_out_twice, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    hf_command_t c = {.id = 9, .verb = HF_CMD_START, .body = k_method};
    strcpy(c.name, "warm");
    c.body_len = (uint32_t)strlen(k_method);
    cr_assert_eq(hf_controller_command(fx.ctl, &c, T0, W0), HF_OK);
    hf_command_t a = {.id = 10, .verb = HF_CMD_ABORT};
    cr_assert_eq(hf_controller_command(fx.ctl, &a, T0 + MS, W0 + MS), HF_OK);
    /* the same START again must not start a second run */
    cr_assert_eq(hf_controller_command(fx.ctl, &c, T0 + 2 * MS, W0 + 2 * MS), HF_EPROTO);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_ABORTED);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_EVENT, HF_EV_RUN_STARTED), 1);
    cr_assert_eq(hf_memchan_count_kind(fx.mc, HF_KIND_COMMAND, 0), 3);
    cr_assert_eq(hf_controller_commands(fx.ctl), 3);
    fx_fini(&fx);
}

Test(controller, start_by_name_reads_the_methods_directory, .timeout = 10)
{
    char dir[] = "/tmp/hf-ctl-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/warm.method", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(k_method, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/bad.method", dir);
    f = fopen(path, "w");
    fputs("sample oven.temp 100\nhold forever\n", f);
    fclose(f);

    fx_t fx;
    fx_init(&fx, dir);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "nope", NULL, 0, T0, text), HF_ENOTFOUND);
    cr_assert(strstr(text, "no method 'nope'"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "../warm", NULL, 0, T0, text), HF_EINVAL);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "bad", NULL, 0, T0, text), HF_EINVAL);
    cr_assert(strstr(text, "line 2"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", NULL, 0, T0, text), HF_OK);
    cr_assert(strstr(text, "method warm"), "%s", text);
    fx_drive(&fx, T0, T0 + 3 * S);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_COMPLETED);
    fx_fini(&fx);
    snprintf(path, sizeof path, "%s/warm.method", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/bad.method", dir);
    remove(path);
    rmdir(dir);
}

Test(controller, inline_method_errors_name_the_line_and_unknown_channels, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "x", "hold 1s\nramp\n", 0, T0, text), HF_EINVAL);
    cr_assert(strstr(text, "line 2"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "x", "sample nosuch 10\nhold 1s\n", 0, T0, text),
                 HF_ENOTFOUND);
    cr_assert(strstr(text, "nosuch"), "%s", text);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "x", NULL, 0, T0, text), HF_ENOTFOUND);
    cr_assert(strstr(text, "no methods directory"), "%s", text);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_IDLE);
    fx_fini(&fx);
}

Test(controller, set_writes_an_actuator_when_no_run_drives_it, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_SET, "oven.setpoint", NULL, 55.5, T0, text), HF_OK);
    cr_assert_eq(hf_hwsim_actuator_value(fx.sim, 0), 55.5);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_SET, "nosuch", NULL, 1, T0, text), HF_ENOTFOUND);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, NULL), HF_OK);
    fx_drive(&fx, T0, T0 + 100 * MS);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_SET, "oven.setpoint", NULL, 10, T0 + 100 * MS, text),
                 HF_ESTATE);
    cr_assert(strstr(text, "pause it first"), "%s", text);
    cr_assert_eq(hf_hwsim_actuator_value(fx.sim, 0), 40.0);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_PAUSE, "", NULL, 0, T0 + 100 * MS, NULL), HF_OK);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_SET, "oven.setpoint", NULL, 10, T0 + 100 * MS, NULL), HF_OK);
    cr_assert_eq(hf_hwsim_actuator_value(fx.sim, 0), 10.0);
    fx_fini(&fx);
}

Test(controller, interrupt_ends_a_paused_run_with_the_reason, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, NULL), HF_OK);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_PAUSE, "", NULL, 0, T0 + 100 * MS, NULL), HF_OK);
    hf_run_t *run = (hf_run_t *)hf_controller_run(fx.ctl);
    cr_assert_eq(hf_run_interrupt(run, T0 + 5 * S, "device did not come back"), HF_OK);
    cr_assert_eq(hf_run_state(run), HF_RUN_INTERRUPTED);
    const hf_record_t *r = hf_memchan_at(fx.mc, hf_memchan_count(fx.mc) - 1);
    cr_assert_eq(r->u.event.type, HF_EV_INTERRUPTED);
    cr_assert_str_eq(r->u.event.text, "device did not come back");
    cr_assert_eq(hf_run_interrupt(run, T0 + 6 * S, NULL), HF_ESTATE);
    cr_assert_eq(hf_run_resume(run, T0 + 6 * S, NULL), HF_ESTATE);
    fx_fini(&fx);
}

Test(controller, resume_is_refused_while_the_device_is_lost, .timeout = 10)
{
    fx_t fx;
    fx_init(&fx, NULL);
    hf_hwsim_fault_t f = {.kind = HF_HWSIM_DISCONNECT, .target = HF_HWSIM_ON_DEVICE,
                          .from_ns = T0 + 500 * MS, .until_ns = T0 + 60 * S};
    cr_assert_eq(hf_hwsim_add_fault(fx.sim, &f), HF_OK);
    char text[HF_TEXT_MAX + 1];
    cr_assert_eq(fx_cmd(&fx, HF_CMD_START, "warm", k_method, 0, T0, text), HF_OK);
    fx_drive(&fx, T0, T0 + 1000 * MS);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_PAUSED);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_RESUME, "", NULL, 0, T0 + 1000 * MS, text), HF_ESTATE);
    cr_assert(strstr(text, "device is disconnected"), "%s", text);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_PAUSED);
    cr_assert_eq(fx_cmd(&fx, HF_CMD_ABORT, "", NULL, 0, T0 + 1000 * MS, text), HF_OK);
    cr_assert_eq(hf_controller_state(fx.ctl), HF_RUN_ABORTED);
    fx_fini(&fx);
}
