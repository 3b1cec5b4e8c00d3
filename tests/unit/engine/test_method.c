/* test_method.c - hf_method_t: parsing, refusals with line numbers, binding. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_engine.h"
#include "hf_hwsim.h"

static char s_err[HF_METHOD_ERR_MAX];

static hf_method_t *
s_parse_ok(const char *text)
{
    hf_err_t rc = HF_EIO;
    hf_method_t *m = hf_method_parse("t", text, s_err, sizeof s_err, &rc);
    cr_assert_not_null(m, "refused: %s", s_err);
    cr_assert_eq(rc, HF_OK);
    cr_assert_str_eq(s_err, "");
    return m;
}

/* The text is refused with HF_EINVAL and a message containing want. */
static void
s_refused(const char *text, const char *want)
{
    hf_err_t rc = HF_OK;
    hf_method_t *m = hf_method_parse("t", text, s_err, sizeof s_err, &rc);
    cr_assert_null(m, "accepted: %s", text);
    cr_assert_eq(rc, HF_EINVAL);
    cr_assert(strstr(s_err, want), "error '%s' does not contain '%s'", s_err, want);
}

Test(method, parses_every_step_kind, .timeout = 10)
{
    hf_method_t *m = s_parse_ok("# demo\n"
                                "\n"
                                "sample a,b 100   # two channels\n"
                                "set  oven  25\n"
                                "ramp oven 60.5 5s\n"
                                "hold 250ms\n"
                                "sample c 2.5Hz\r\n"
                                "hold 1.5min");
    cr_assert_str_eq(hf_method_name(m), "t");
    cr_assert_eq(hf_method_step_count(m), 6);
    cr_assert_eq(hf_method_channel_count(m), 3);
    cr_assert_str_eq(hf_method_channel_name(m, 0), "a");
    cr_assert_str_eq(hf_method_channel_name(m, 2), "c");
    cr_assert_null(hf_method_channel_name(m, 3));

    const hf_step_t *s = hf_method_step(m, 0);
    cr_assert_eq(s->kind, HF_STEP_SAMPLE);
    cr_assert_eq(s->line, 3);
    cr_assert_str_eq(s->text, "sample a,b 100");
    cr_assert_float_eq(s->rate_hz, 100.0, 1e-12);
    cr_assert_eq(s->first_channel, 0);
    cr_assert_eq(s->channel_count, 2);

    s = hf_method_step(m, 1);
    cr_assert_eq(s->kind, HF_STEP_SET);
    cr_assert_str_eq(s->text, "set oven 25", "whitespace normalised");
    cr_assert_str_eq(s->actuator, "oven");
    cr_assert_float_eq(s->value, 25.0, 1e-12);

    s = hf_method_step(m, 2);
    cr_assert_eq(s->kind, HF_STEP_RAMP);
    cr_assert_float_eq(s->value, 60.5, 1e-12);
    cr_assert_eq(s->duration_ns, 5000000000ull);

    s = hf_method_step(m, 3);
    cr_assert_eq(s->kind, HF_STEP_HOLD);
    cr_assert_eq(s->duration_ns, 250000000ull);

    s = hf_method_step(m, 4);
    cr_assert_eq(s->first_channel, 2);
    cr_assert_float_eq(s->rate_hz, 2.5, 1e-12);
    cr_assert_eq(s->line, 7);
    cr_assert_eq(hf_method_step(m, 5)->duration_ns, 90000000000ull);
    cr_assert_null(hf_method_step(m, 6));
    cr_assert_eq(hf_method_duration_ns(m), 5000000000ull + 250000000ull + 90000000000ull);
    hf_method_destroy(&m);
    cr_assert_null(m);
    hf_method_destroy(&m);
}

Test(method, all_duration_units, .timeout = 10)
{
    hf_method_t *m = s_parse_ok("hold 7ns\nhold 3us\nhold 2ms\nhold 1s\nhold 1min\nhold 1h\n");
    uint64_t want[] = {7, 3000, 2000000, 1000000000ull, 60000000000ull, 3600000000000ull};
    for (uint32_t i = 0; i < 6; i++)
        cr_assert_eq(hf_method_step(m, i)->duration_ns, want[i], "step %u", i);
    hf_method_destroy(&m);
}

Test(method, refuses_unknown_step_with_line, .timeout = 10)
{
    s_refused("hold 1s\n# c\nheat oven 5\n", "line 3: unknown step 'heat'");
}

Test(method, refuses_bad_numbers, .timeout = 10)
{
    s_refused("set oven hot\n", "line 1: bad value 'hot'");
    s_refused("set oven 1e999\n", "line 1: bad value");
    s_refused("set oven nan\n", "line 1: bad value");
    s_refused("set oven 0x10\n", "line 1: bad value");
    s_refused("sample a fast\n", "line 1: bad rate 'fast'");
    s_refused("sample a 0\n", "line 1: rate 0 out of range");
    s_refused("sample a 20000\n", "out of range");
    s_refused("sample a 10kHz\n", "bad rate");
}

Test(method, refuses_bad_durations, .timeout = 10)
{
    s_refused("hold 5\n", "line 1: bad duration '5': has no unit");
    s_refused("\nhold 5 s\n", "line 2: unexpected argument 's'");
    s_refused("hold 5sec\n", "unknown unit");
    s_refused("hold 0s\n", "must be positive");
    s_refused("hold -1s\n", "must be positive");
    s_refused("hold 31d\n", "unknown unit");
    s_refused("hold 800h\n", "longer than 30 days");
    s_refused("set o 1\nramp o 2 fast\n", "line 2: bad duration 'fast'");
}

Test(method, refuses_missing_and_extra_arguments, .timeout = 10)
{
    s_refused("sample a\n", "line 1: missing arguments: usage: sample");
    s_refused("set oven\n", "line 1: missing arguments: usage: set ACTUATOR VALUE");
    s_refused("set o 1\nramp o 5\n", "line 2: missing arguments");
    s_refused("hold\n", "line 1: missing arguments");
    s_refused("set oven 1 2\n", "line 1: unexpected argument '2'");
    s_refused("hold 1s a b c d e f g h\n", "line 1: unexpected argument");
}

Test(method, refuses_bad_names_and_channel_lists, .timeout = 10)
{
    s_refused("sample a,,b 10\n", "line 1: empty channel name");
    s_refused("sample a, 10\n", "empty channel name");
    s_refused("sample a/b 10\n", "bad channel name 'a/b'");
    s_refused("sample a,b,a 10\n", "channel 'a' is already sampled (line 1)");
    s_refused("sample a 10\nhold 1s\nsample a 5\n",
              "line 3: channel 'a' is already sampled (line 1)");
    s_refused("set o$ 1\n", "bad actuator name");
}

Test(method, refuses_ramp_without_start_value, .timeout = 10)
{
    s_refused("set other 1\nramp oven 5 1s\n", "line 2: ramp of 'oven' before any set");
    hf_method_t *m = s_parse_ok("set oven 1\nramp oven 5 1s\nramp oven 2 1s\n");
    hf_method_destroy(&m);
}

Test(method, refuses_too_many_steps, .timeout = 10)
{
    size_t cap = (HF_METHOD_MAX_STEPS + 2) * 10;
    char *text = calloc(1, cap);
    size_t off = 0;
    for (int i = 0; i < HF_METHOD_MAX_STEPS; i++)
        off += (size_t)snprintf(text + off, cap - off, "hold 1s\n");
    hf_method_t *m = s_parse_ok(text);
    cr_assert_eq(hf_method_step_count(m), HF_METHOD_MAX_STEPS);
    hf_method_destroy(&m);
    snprintf(text + off, cap - off, "hold 1s\n");
    char want[64];
    snprintf(want, sizeof want, "line %d: too many steps", HF_METHOD_MAX_STEPS + 1);
    s_refused(text, want);
    free(text);
}

Test(method, refuses_too_many_channels, .timeout = 10)
{
    char text[2048] = "sample ";
    for (int i = 0; i <= HF_METHOD_MAX_CHANNELS; i++) {
        char one[16];
        snprintf(one, sizeof one, "%sc%d", i ? "," : "", i);
        strcat(text, one);
    }
    strcat(text, " 10\n");
    s_refused(text, "line 1: too many channels");
}

Test(method, refuses_long_lines_and_empty_methods, .timeout = 10)
{
    char text[HF_METHOD_LINE_MAX + 16];
    memset(text, '#', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    s_refused(text, "line 1: line too long");
    s_refused("# only comments\n\n", "method has no steps");
    s_refused("", "method has no steps");
}

Test(method, load_names_method_after_file, .timeout = 10)
{
    char path[] = "/tmp/hf_test_methodXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char *text = "sample a 10\nhold 1s\n";
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char named[64];
    snprintf(named, sizeof named, "%s.method", path);
    cr_assert_eq(rename(path, named), 0);
    hf_err_t rc = HF_EIO;
    hf_method_t *m = hf_method_load(named, s_err, sizeof s_err, &rc);
    unlink(named);
    cr_assert_not_null(m, "%s", s_err);
    cr_assert_str_eq(hf_method_name(m), strrchr(path, '/') + 1);
    hf_method_destroy(&m);
}

Test(method, load_of_missing_file_names_the_path, .timeout = 10)
{
    hf_err_t rc = HF_OK;
    hf_method_t *m = hf_method_load("/nonexistent/x.method", s_err, sizeof s_err, &rc);
    cr_assert_null(m);
    cr_assert_eq(rc, HF_ENOTFOUND);
    cr_assert(strstr(s_err, "/nonexistent/x.method"), "%s", s_err);
}

Test(method, bind_resolves_names_on_the_instrument, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_method_t *m = s_parse_ok("sample ambient,oven.temp 10\nset oven.setpoint 30\nhold 1s\n");
    hf_method_binding_t b;
    cr_assert_eq(hf_method_bind(m, &hal, &b, s_err, sizeof s_err), HF_OK, "%s", s_err);
    cr_assert_eq(b.channel[0], 3);
    cr_assert_eq(b.channel[1], 0);
    cr_assert_eq(b.actuator[1], 0);
    hf_method_destroy(&m);
    hf_hwsim_destroy(&sim);
}

Test(method, bind_refuses_unknown_channel_naming_it_and_its_line, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_method_binding_t b;
    hf_method_t *m = s_parse_ok("hold 1s\nsample flow,oven.tmp 10\n");
    cr_assert_eq(hf_method_bind(m, &hal, &b, s_err, sizeof s_err), HF_ENOTFOUND);
    cr_assert_str_eq(s_err, "line 2: unknown channel 'oven.tmp'");
    hf_method_destroy(&m);
    m = s_parse_ok("\n\nset valve 1\n");
    cr_assert_eq(hf_method_bind(m, &hal, &b, s_err, sizeof s_err), HF_ENOTFOUND);
    cr_assert_str_eq(s_err, "line 3: unknown actuator 'valve'");
    hf_method_destroy(&m);
    hf_hwsim_destroy(&sim);
}

Test(method, parses_wait_until_with_every_comparison, .timeout = 10)
{
    hf_method_t *m = s_parse_ok("set oven.setpoint 60\n"
                                "wait-until oven.temp >= 59.5 30s  # heat up\n"
                                "wait-until flow < 2 500ms\nwait-until flow <= -1 1s\n"
                                "wait-until flow > 1e1 1s\nwait-until flow == 0 1s\n"
                                "wait-until\tflow != 3 2min\n");
    cr_assert_eq(hf_method_step_count(m), 7);
    const hf_step_t *st = hf_method_step(m, 1);
    cr_assert_eq(st->kind, HF_STEP_WAIT_UNTIL);
    cr_assert_str_eq(st->channel, "oven.temp");
    cr_assert_eq(st->op, HF_WAIT_GE);
    cr_assert_float_eq(st->value, 59.5, 1e-12);
    cr_assert_eq(st->duration_ns, 30000000000ull);
    cr_assert_str_eq(st->text, "wait-until oven.temp >= 59.5 30s");
    cr_assert_eq(st->line, 2);
    uint8_t want[] = {HF_WAIT_LT, HF_WAIT_LE, HF_WAIT_GT, HF_WAIT_EQ, HF_WAIT_NE};
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(hf_method_step(m, 2 + i)->op, want[i], "step %u", 2 + i);
    cr_assert_eq(hf_method_step(m, 6)->duration_ns, 120000000000ull);
    cr_assert_eq(hf_method_channel_count(m), 0, "a polled channel is not a sampled one");
    cr_assert_eq(hf_method_duration_ns(m), 0, "waits are not in the scheduled length");
    hf_method_destroy(&m);
}

Test(method, refuses_bad_wait_until_with_line, .timeout = 10)
{
    s_refused("wait-until oven.temp >= 59.5\n",
              "line 1: missing arguments: usage: wait-until CHANNEL OP VALUE TIMEOUT");
    s_refused("hold 1s\nwait-until oven.temp => 59.5 30s\n",
              "line 2: bad comparison '=>' (expected <, <=, >, >=, == or !=)");
    s_refused("wait-until oven.temp >= hot 30s\n", "line 1: bad value 'hot'");
    s_refused("wait-until oven.temp >= nan 30s\n", "line 1: bad value 'nan'");
    s_refused("wait-until oven.temp >= 1 30\n", "line 1: bad timeout '30': has no unit");
    s_refused("wait-until oven.temp >= 1 0s\n", "line 1: bad timeout '0s': must be positive");
    s_refused("wait-until oven/temp >= 1 1s\n", "line 1: bad channel name 'oven/temp'");
    s_refused("wait-until oven.temp >= 1 1s extra\n", "line 1: unexpected argument 'extra'");
    s_refused("wait-until oven.temp >=59 1s\n", "line 1: missing arguments");
    s_refused("wait oven.temp >= 1 1s\n", "line 1: unknown step 'wait'");
}

Test(method, bind_resolves_and_refuses_wait_until_channels, .timeout = 10)
{
    hf_hwsim_opts_t o = hf_hwsim_opts_default();
    hf_hwsim_t *sim = hf_hwsim_new(&o, NULL);
    hf_hal_t hal = hf_hwsim_hal(sim);
    hf_method_binding_t b;
    hf_method_t *m = s_parse_ok("hold 1s\nwait-until ambient > 1 1s\n");
    cr_assert_eq(hf_method_bind(m, &hal, &b, s_err, sizeof s_err), HF_OK, "%s", s_err);
    cr_assert_eq(b.wait_channel[1], 3);
    hf_method_destroy(&m);
    m = s_parse_ok("hold 1s\n\nwait-until oven.tmp > 1 1s\n");
    cr_assert_eq(hf_method_bind(m, &hal, &b, s_err, sizeof s_err), HF_ENOTFOUND);
    cr_assert_str_eq(s_err, "line 3: unknown channel 'oven.tmp'");
    hf_method_destroy(&m);
    hf_hwsim_destroy(&sim);
}
