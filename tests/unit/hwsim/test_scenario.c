/* test_scenario.c - hf_hwsim_scenario_t: the shipped scenarios parse, bad
 * files are refused with line and reason, a scenario builds its simulator. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_hwsim.h"
#include "hf_record.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S)

static const char *k_instr = "actuator heater initial 20 safe 15\n"
                             "channel temp lag follows heater tau 1s base 20\n"
                             "channel flow noise base 2 noise 0.1\n";
static const char *k_method = "method\nsample temp 10\nhold 1s\nend\n";

static hf_hwsim_scenario_t *
s_parse(const char *body, char *errbuf, size_t errlen, hf_err_t *rc)
{
    static char text[8192];
    snprintf(text, sizeof text, "%s%s%s", k_instr, k_method, body);
    return hf_hwsim_scenario_parse("t", text, errbuf, errlen, rc);
}

static void
s_refused(const char *text, const char *want)
{
    char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    hf_err_t rc = HF_OK;
    hf_hwsim_scenario_t *sc = hf_hwsim_scenario_parse("bad", text, err, sizeof err, &rc);
    cr_assert_null(sc, "accepted: %s", text);
    cr_assert_eq(rc, HF_EINVAL);
    cr_assert(strstr(err, want), "got '%s', want '%s'", err, want);
}

Test(scenario, every_shipped_scenario_parses_and_builds_its_simulator, .timeout = 10)
{
    DIR *d = opendir(HF_HWSIM_SCENARIO_DIR);
    cr_assert_not_null(d, "%s", HF_HWSIM_SCENARIO_DIR);
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 10 || strcmp(de->d_name + n - 9, ".scenario") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", HF_HWSIM_SCENARIO_DIR, de->d_name);
        char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
        hf_err_t rc = HF_EIO;
        hf_hwsim_scenario_t *sc = hf_hwsim_scenario_load(path, err, sizeof err, &rc);
        cr_assert_not_null(sc, "%s: %s", de->d_name, err);
        cr_assert_eq(rc, HF_OK);
        cr_assert_eq(strncmp(hf_hwsim_scenario_name(sc), de->d_name, n - 9), 0);
        cr_assert_eq(strlen(hf_hwsim_scenario_name(sc)), n - 9);
        cr_assert_gt(strlen(hf_hwsim_scenario_method(sc)), 0);
        cr_assert_gt(hf_hwsim_scenario_expect_count(sc), 0, "%s has no expectations", path);
        int has_state = 0;
        for (uint32_t i = 0; i < hf_hwsim_scenario_expect_count(sc); i++)
            has_state |= hf_hwsim_scenario_expect(sc, i)->kind == HF_HWSIM_EXPECT_RUN_STATE;
        cr_assert(has_state, "%s: every scenario states the final run state", path);
        hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, NULL, &rc);
        cr_assert_not_null(sim, "%s: %s", path, hf_errname(rc));
        hf_hwsim_destroy(&sim);
        hf_hwsim_scenario_destroy(&sc);
        cr_assert_null(sc);
        count++;
    }
    closedir(d);
    cr_assert_geq(count, 8, "the eight shipped scenarios");
}

static hf_hwsim_scenario_t *
s_load(const char *name)
{
    char path[1024], err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    snprintf(path, sizeof path, "%s/%s.scenario", HF_HWSIM_SCENARIO_DIR, name);
    hf_hwsim_scenario_t *sc = hf_hwsim_scenario_load(path, err, sizeof err, NULL);
    cr_assert_not_null(sc, "%s: %s", path, err);
    return sc;
}

Test(scenario, transient_burst_file_reads_as_written, .timeout = 10)
{
    hf_hwsim_scenario_t *sc = s_load("transient-burst");
    const hf_hwsim_opts_t *o = hf_hwsim_scenario_opts(sc);
    cr_assert_eq(o->seed, 2);
    cr_assert_eq(o->noise_step_ns, 1 * MS);
    cr_assert_str_eq(o->device_name, "oven-rig");
    cr_assert_eq(o->channel_count, 4);
    cr_assert_str_eq(o->channels[0].name, "oven.temp");
    cr_assert_eq(o->channels[0].model, HF_HWSIM_LAG);
    cr_assert_float_eq(o->channels[0].tau_s, 1.5, 1e-12);
    cr_assert_eq(o->channels[1].model, HF_HWSIM_SINE);
    cr_assert_float_eq(o->channels[1].period_s, 20.0, 1e-12);
    cr_assert_eq(o->actuator_count, 1);
    cr_assert(o->actuators[0].has_safe);
    cr_assert_eq(o->actuators[0].safe, 20.0);
    const hf_hwsim_policy_t *p = hf_hwsim_scenario_policy(sc);
    cr_assert_eq(p->set, HF_HWSIM_POLICY_RETRIES | HF_HWSIM_POLICY_BACKOFF);
    cr_assert_eq(p->retries, 3);
    cr_assert_eq(p->retry_backoff_ns, 1 * MS);
    cr_assert_eq(p->disconnect_grace_ns, 5 * S, "default grace");
    cr_assert_eq(hf_hwsim_scenario_fault_count(sc), 2);
    const hf_hwsim_fault_t *f = hf_hwsim_scenario_fault(sc, 0);
    cr_assert_eq(f->kind, HF_HWSIM_FAIL);
    cr_assert_eq(f->target, HF_HWSIM_ON_CHANNEL);
    cr_assert_eq(f->channel, 2);
    cr_assert_eq(f->cls, HF_HAL_TRANSIENT);
    cr_assert_eq(f->count, 3);
    cr_assert_eq(f->from_ns, 1 * S);
    cr_assert_eq(f->until_ns, HF_HWSIM_FOREVER);
    cr_assert(f->since_open);
    cr_assert_str_eq(f->reason, "checksum error on sensor bus");
    f = hf_hwsim_scenario_fault(sc, 1);
    cr_assert_eq(f->target, HF_HWSIM_ON_ACTUATOR);
    cr_assert_eq(f->from_ns, 500 * MS);
    cr_assert_null(f->reason);
    cr_assert_null(hf_hwsim_scenario_fault(sc, 2));
    cr_assert_str_eq(hf_hwsim_scenario_method(sc),
                     "sample oven.temp,chamber.pressure,flow,ambient 50\n"
                     "set oven.setpoint 30\nramp oven.setpoint 40 1s\nhold 2s\n");
    const hf_hwsim_expect_t *e = hf_hwsim_scenario_expect(sc, 0);
    cr_assert_eq(e->kind, HF_HWSIM_EXPECT_RUN_STATE);
    cr_assert_eq(e->run_state, HF_RUN_COMPLETED);
    e = hf_hwsim_scenario_expect(sc, 1);
    cr_assert_eq(e->kind, HF_HWSIM_EXPECT_EVENT);
    cr_assert_eq(e->event, HF_EV_COMPLETED);
    cr_assert_eq(e->cmp, HF_HWSIM_CMP_EQ);
    cr_assert_eq(e->count, 1);
    e = hf_hwsim_scenario_expect(sc, 2);
    cr_assert_eq(e->event, HF_EV_PAUSED);
    cr_assert_eq(e->count, 0, "no event paused == 0");
    e = hf_hwsim_scenario_expect(sc, 4);
    cr_assert_eq(e->kind, HF_HWSIM_EXPECT_HW_ERROR);
    cr_assert_eq(e->cls, HF_HAL_TRANSIENT);
    cr_assert_eq(e->cmp, HF_HWSIM_CMP_GE);
    cr_assert_str_eq(e->text, "hw_error transient >= 1");
    cr_assert_gt(e->line, 10);
    hf_hwsim_scenario_destroy(&sc);
}

Test(scenario, fatal_file_names_safe_values_and_alarm, .timeout = 10)
{
    hf_hwsim_scenario_t *sc = s_load("fatal");
    const hf_hwsim_fault_t *f = hf_hwsim_scenario_fault(sc, 0);
    cr_assert_eq(f->kind, HF_HWSIM_FATAL);
    cr_assert_eq(f->target, HF_HWSIM_ON_DEVICE);
    cr_assert_eq(f->from_ns, 1500 * MS);
    int alarm = 0, act = 0;
    for (uint32_t i = 0; i < hf_hwsim_scenario_expect_count(sc); i++) {
        const hf_hwsim_expect_t *e = hf_hwsim_scenario_expect(sc, i);
        if (e->kind == HF_HWSIM_EXPECT_ALARM) {
            alarm = 1;
            cr_assert_eq(e->raised, 1);
            cr_assert_eq(e->alarm_code, HF_HWSIM_ANY);
            cr_assert_eq(e->severity, HF_HWSIM_ANY);
        }
        if (e->kind == HF_HWSIM_EXPECT_ACTUATOR) {
            act = 1;
            cr_assert_str_eq(e->name, "oven.setpoint");
            cr_assert_eq(e->value, 20.0, "'safe' resolves to the declared value");
        }
    }
    cr_assert(alarm && act);
    hf_hwsim_scenario_destroy(&sc);
}

Test(scenario, disconnect_scenario_drives_the_simulator_from_its_first_open, .timeout = 10)
{
    hf_hwsim_scenario_t *sc = s_load("disconnect-short");
    cr_assert_eq(hf_hwsim_scenario_policy(sc)->disconnect_grace_ns, 3 * S);
    hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, NULL, NULL);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(hal.ops->open(hal.impl, T0, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0 + 999 * MS, &v, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0 + 1 * S, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_str_eq(e.reason, "oven-rig/oven.temp: USB link reset");
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 1500 * MS, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0 + 2 * S, &v, &e), HF_HAL_DISCONNECTED);
    cr_assert_eq(hal.ops->open(hal.impl, T0 + 2 * S, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->read(hal.impl, 0, T0 + 2 * S, &v, &e), HF_HAL_OK);
    hf_hwsim_destroy(&sim);
    hf_hwsim_scenario_destroy(&sc);
}

Test(scenario, scenario_simulator_writes_its_truth_log, .timeout = 10)
{
    char path[] = "/tmp/hf_sctruth_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fclose(fdopen(fd, "w"));
    hf_hwsim_scenario_t *sc = s_load("clean");
    hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, path, NULL);
    cr_assert_not_null(sim);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hal.ops->open(hal.impl, T0, NULL);
    double v;
    hal.ops->read(hal.impl, 3, T0, &v, NULL);
    hf_hwsim_destroy(&sim);
    FILE *f = fopen(path, "r");
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cr_assert_str_eq(buf, "# hwsim truth v1 device=oven-rig seed=1\n"
                          "1000000000000 open - ok\n"
                          "1000000000000 read ambient ok 22\n");
    unlink(path);
    hf_hwsim_scenario_destroy(&sc);
}

Test(scenario, expectation_vocabulary_parses, .timeout = 10)
{
    char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    hf_err_t rc;
    hf_hwsim_scenario_t *sc =
        s_parse("expect run_state interrupted\n"
                "expect event resumed\n"
                "expect no event completed\n"
                "expect hw_error >= 3\n"
                "expect hw_error timeout < 4\n"
                "expect no hw_error\n"
                "expect alarm raised critical\n"
                "expect alarm cleared 1001 == 2\n"
                "expect no alarm raised\n"
                "expect samples temp >= 10\n"
                "expect samples any != 0\n"
                "expect missing_samples == 0\n"
                "expect gaps <= 1\n"
                "expect actuator heater 15.5\n",
                err, sizeof err, &rc);
    cr_assert_not_null(sc, "%s", err);
    cr_assert_eq(hf_hwsim_scenario_expect_count(sc), 14);
    const hf_hwsim_expect_t *e = hf_hwsim_scenario_expect(sc, 0);
    cr_assert_eq(e->run_state, HF_RUN_INTERRUPTED);
    cr_assert_eq(e->line, 8);
    e = hf_hwsim_scenario_expect(sc, 1);
    cr_assert_eq(e->event, HF_EV_RESUMED);
    cr_assert(hf_hwsim_expect_holds(e, 1) && !hf_hwsim_expect_holds(e, 0));
    e = hf_hwsim_scenario_expect(sc, 3);
    cr_assert_eq(e->cls, HF_HWSIM_ANY);
    cr_assert(hf_hwsim_expect_holds(e, 3) && !hf_hwsim_expect_holds(e, 2));
    e = hf_hwsim_scenario_expect(sc, 4);
    cr_assert_eq(e->cls, HF_HAL_TIMEOUT);
    cr_assert_eq(e->cmp, HF_HWSIM_CMP_LT);
    cr_assert_str_eq(hf_hwsim_cmp_name(e->cmp), "<");
    e = hf_hwsim_scenario_expect(sc, 5);
    cr_assert(hf_hwsim_expect_holds(e, 0) && !hf_hwsim_expect_holds(e, 1));
    e = hf_hwsim_scenario_expect(sc, 6);
    cr_assert_eq(e->severity, HF_ALARM_CRITICAL);
    e = hf_hwsim_scenario_expect(sc, 7);
    cr_assert_eq(e->raised, 0);
    cr_assert_eq(e->alarm_code, 1001);
    cr_assert_eq(e->count, 2);
    e = hf_hwsim_scenario_expect(sc, 9);
    cr_assert_str_eq(e->name, "temp");
    e = hf_hwsim_scenario_expect(sc, 10);
    cr_assert_str_eq(e->name, "");
    cr_assert_eq(e->cmp, HF_HWSIM_CMP_NE);
    e = hf_hwsim_scenario_expect(sc, 13);
    cr_assert_eq(e->kind, HF_HWSIM_EXPECT_ACTUATOR);
    cr_assert_eq(e->value, 15.5);
    cr_assert_not(hf_hwsim_expect_holds(e, 0), "not a count");
    hf_hwsim_scenario_destroy(&sc);
}

Test(scenario, bad_files_are_refused_with_line_and_reason, .timeout = 10)
{
    static char t[4096];
#define BAD(body, want)                                                                          \
    do {                                                                                         \
        snprintf(t, sizeof t, "%s%s%s", k_instr, k_method, body);                                \
        s_refused(t, want);                                                                      \
    } while (0)
    /* the instrument + method take lines 1..7; the body starts at line 8 */
    BAD("heat oven\n", "line 8: unknown directive 'heat'");
    BAD("fault burst channel temp at 1s\n", "line 8: burst needs 'count N'");
    BAD("fault stuck channel nope at 1s\n", "line 8: unknown channel 'nope'");
    BAD("fault disconnect channel temp at 1s for 1s\n", "line 8: disconnect applies to the whole");
    BAD("fault disconnect device at 1s\n", "line 8: disconnect needs 'for DURATION'");
    BAD("fault fatal device at 1s for 2s\n", "line 8: fatal takes no for");
    BAD("fault drift channel temp at 1s\n", "line 8: drift needs 'rate R'");
    BAD("fault fail channel temp at 1\n", "line 8: bad time '1': has no unit");
    BAD("fault fail channel temp 1s\n", "line 8: missing 'at TIME'");
    BAD("fault fail channel temp at 1s class broken\n", "line 8: bad class 'broken'");
    BAD("fault stuck actuator heater at 1s\n", "line 8: stuck applies to channels");
    BAD("\n\nexpect run_state sleeping\n", "line 10: unknown run state 'sleeping'");
    BAD("expect event exploded\n", "line 8: unknown event 'exploded'");
    BAD("expect samples temp\n", "line 8: samples needs a comparison");
    BAD("expect hw_error >= lots\n", "line 8: comparison needs a count");
    BAD("expect no run_state completed\n", "line 8: 'no' applies to counts only");
    BAD("expect no event paused == 1\n", "line 8: 'expect no ...' takes no comparison");
    BAD("expect actuator heater safe extra\n", "line 8: unexpected 'extra'");
    BAD("policy retries many\n", "line 8: bad retries 'many'");
    BAD("policy retries 2\npolicy retries 3\n", "line 9: policy 'retries' given twice");
    BAD("method\nhold 1s\nend\n", "line 8: second method block");
    BAD("end\n", "line 8: 'end' outside a method block");
    BAD("seed -1\n", "line 8: usage: seed N");
    /* instrument errors */
    s_refused("channel a sine base 1\n", "line 1: model sine needs 'period DURATION'");
    s_refused("channel a lag tau 1s\n", "line 1: model lag needs 'follows ACTUATOR'");
    s_refused("channel a lag follows x tau 1s\n", "line 1: unknown actuator 'x'");
    s_refused("channel a constant slope 2\n", "line 1: 'slope' does not apply to model constant");
    s_refused("channel a constant\nchannel a noise\n", "line 2: channel 'a' is already declared");
    s_refused("channel a wobble\n", "line 1: unknown model 'wobble'");
    s_refused("channel a/b constant\n", "line 1: bad channel name 'a/b'");
    s_refused("channel a constant noise -1\n", "line 1: noise must be >= 0");
    s_refused("channel a constant base nan\n", "line 1: bad number 'nan'");
    /* structure */
    s_refused("channel a constant\nmethod\nhold 1s\n", "line 2: method block not closed");
    s_refused("channel a constant\n", "line 1: no method block");
    s_refused("method\nhold 1s\nend\n", "line 3: no channel declared");
    s_refused("channel a constant\nmethod\nend\n", "line 3: empty method block");
#undef BAD
}

Test(scenario, limits_are_enforced, .timeout = 10)
{
    static char t[HF_HWSIM_SCENARIO_FILE_MAX + 4096];
    /* a line too long */
    char line[400] = "seed 1 # ";
    memset(line + 9, 'x', 300);
    line[309] = 0;
    s_refused(line, "line 1: line longer than 255 bytes");
    /* too many faults */
    size_t off = (size_t)snprintf(t, sizeof t, "%s%s", k_instr, k_method);
    for (int i = 0; i <= HF_HWSIM_MAX_FAULTS; i++)
        off += (size_t)snprintf(t + off, sizeof t - off, "fault stuck channel temp at %ds\n", i);
    s_refused(t, "line 40: too many faults (max 32)");
    /* too many lines */
    off = 0;
    for (int i = 0; i < HF_HWSIM_SCENARIO_LINES_MAX + 1; i++)
        off += (size_t)snprintf(t + off, sizeof t - off, "\n");
    s_refused(t, "line 1025: too many lines");
    /* too large */
    memset(t, '\n', HF_HWSIM_SCENARIO_FILE_MAX + 1);
    t[HF_HWSIM_SCENARIO_FILE_MAX + 1] = 0;
    s_refused(t, "larger than 65536 bytes");
    /* too many words */
    off = (size_t)snprintf(t, sizeof t, "channel a constant");
    for (int i = 0; i < 40; i++)
        off += (size_t)snprintf(t + off, sizeof t - off, " x");
    s_refused(t, "line 1: too many words");
}

Test(scenario, comments_blanks_and_crlf_are_accepted, .timeout = 10)
{
    const char *text = "# a comment\r\n"
                       "\r\n"
                       "seed 12   # trailing comment\r\n"
                       "\tchannel  a   constant base 3\r\n"
                       "method\r\n"
                       "  # method comment kept for the method parser\r\n"
                       "sample a 10\r\n"
                       "hold 1s\r\n"
                       "  end  \r\n"
                       "expect run_state completed";
    char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    hf_hwsim_scenario_t *sc = hf_hwsim_scenario_parse("crlf", text, err, sizeof err, NULL);
    cr_assert_not_null(sc, "%s", err);
    cr_assert_eq(hf_hwsim_scenario_opts(sc)->seed, 12);
    cr_assert_eq(hf_hwsim_scenario_opts(sc)->channels[0].base, 3.0);
    cr_assert_str_eq(hf_hwsim_scenario_method(sc),
                     "  # method comment kept for the method parser\nsample a 10\nhold 1s\n");
    cr_assert_eq(hf_hwsim_scenario_method_line(sc), 6);
    cr_assert_eq(hf_hwsim_scenario_expect_count(sc), 1);
    cr_assert_eq(hf_hwsim_scenario_expect(sc, 0)->line, 10);
    hf_hwsim_scenario_destroy(&sc);
    hf_hwsim_scenario_destroy(&sc); /* twice is fine */
}

Test(scenario, load_reports_missing_and_invalid_files, .timeout = 10)
{
    char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    hf_err_t rc = HF_OK;
    cr_assert_null(hf_hwsim_scenario_load("/nonexistent/x.scenario", err, sizeof err, &rc));
    cr_assert_eq(rc, HF_ENOTFOUND);
    cr_assert(strstr(err, "/nonexistent/x.scenario"), "%s", err);
    char path[] = "/tmp/hf_scen_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fwrite("seed 1\n\0x", 1, 9, f);
    fclose(f);
    cr_assert_null(hf_hwsim_scenario_load(path, err, sizeof err, &rc));
    cr_assert_eq(rc, HF_EINVAL);
    cr_assert(strstr(err, "NUL byte"), "%s", err);
    unlink(path);
}

Test(scenario, fault_times_and_options_map_onto_the_simulator, .timeout = 10)
{
    char err[HF_HWSIM_SCENARIO_ERR_MAX] = "";
    hf_hwsim_scenario_t *sc =
        s_parse("device rig index 3\n"
                "fault fail channel * at 0s for 250ms class timeout\n"
                "fault burst device at 2s count 1 class fatal\n"
                "fault drift channel flow at 1s rate -0.5 for 2s\n"
                "fault fatal actuator heater at 5s reason relay welded shut\n",
                err, sizeof err, NULL);
    cr_assert_not_null(sc, "%s", err);
    const hf_hwsim_fault_t *f = hf_hwsim_scenario_fault(sc, 0);
    cr_assert_eq(f->channel, HF_HWSIM_ALL_CHANNELS);
    cr_assert_eq(f->from_ns, 0);
    cr_assert_eq(f->until_ns, 250 * MS);
    cr_assert_eq(f->cls, HF_HAL_TIMEOUT);
    f = hf_hwsim_scenario_fault(sc, 2);
    cr_assert_eq(f->kind, HF_HWSIM_DRIFT);
    cr_assert_eq(f->rate, -0.5);
    cr_assert_eq(f->until_ns, 3 * S);
    f = hf_hwsim_scenario_fault(sc, 3);
    cr_assert_str_eq(f->reason, "relay welded shut");
    hf_hwsim_t *sim = hf_hwsim_new_from_scenario(sc, NULL, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_hal_error_t e;
    double v;
    cr_assert_eq(hal.ops->open(hal.impl, T0, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->read(hal.impl, 1, T0 + 100 * MS, &v, &e), HF_HAL_TIMEOUT);
    cr_assert_eq(e.device, 3);
    cr_assert(strncmp(e.reason, "rig/flow:", 9) == 0, "%s", e.reason);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 21.0, &e), HF_HAL_FATAL, "burst");
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 2 * S, 21.0, &e), HF_HAL_OK);
    cr_assert_eq(hal.ops->write(hal.impl, 0, T0 + 5 * S, 21.0, &e), HF_HAL_FATAL);
    cr_assert_str_eq(e.reason, "rig/heater: relay welded shut");
    hf_hwsim_destroy(&sim);
    hf_hwsim_scenario_destroy(&sc);
}
