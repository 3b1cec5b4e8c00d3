/* test_pxcmd.c - hf-proxy's control-line parser (hf_pxcmd.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "hf_pxcmd.h"
#include "hf_pxpipe.h"

static hf_err_t
s_parse(const char *line, hf_pxcmd_t *c, const char **why)
{
    return hf_pxcmd_parse(line, strlen(line), c, why);
}

Test(pxcmd, parses_every_bare_command, .timeout = 10)
{
    static const struct {
        const char *line;
        hf_pxcmd_kind_t kind;
    } cases[] = {
        {"pass", HF_PXCMD_PASS},           {"cut", HF_PXCMD_CUT},
        {"reset", HF_PXCMD_RESET},         {"blackhole", HF_PXCMD_BLACKHOLE},
        {"refuse", HF_PXCMD_REFUSE},       {"halfopen", HF_PXCMD_HALFOPEN},
        {"stats", HF_PXCMD_STATS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_pxcmd_t c = {0, 99};
        const char *why = NULL;
        cr_assert_eq(s_parse(cases[i].line, &c, &why), HF_OK, "%s", cases[i].line);
        cr_assert_eq(c.kind, cases[i].kind);
        cr_assert_eq(c.arg, 0);
        cr_assert_str_eq(hf_pxcmd_name(c.kind), cases[i].line);
    }
}

Test(pxcmd, takes_delay_and_throttle_arguments, .timeout = 10)
{
    hf_pxcmd_t c;
    const char *why = NULL;
    cr_assert_eq(s_parse("delay 250", &c, &why), HF_OK);
    cr_assert_eq(c.kind, HF_PXCMD_DELAY);
    cr_assert_eq(c.arg, 250);
    cr_assert_eq(s_parse("throttle 100000", &c, &why), HF_OK);
    cr_assert_eq(c.kind, HF_PXCMD_THROTTLE);
    cr_assert_eq(c.arg, 100000);
    cr_assert_eq(s_parse("delay 0", &c, &why), HF_OK);
    cr_assert_eq(c.arg, 0);
    cr_assert_eq(s_parse("delay 600000", &c, &why), HF_OK);
    cr_assert_eq(s_parse("throttle 10000000000", &c, &why), HF_OK);
    cr_assert_eq(c.arg, HF_PXPIPE_MAX_RATE);
}

Test(pxcmd, takes_a_jitter_no_larger_than_the_delay, .timeout = 10)
{
    hf_pxcmd_t c;
    const char *why = NULL;
    cr_assert_eq(s_parse("delay 300 100", &c, &why), HF_OK);
    cr_assert_eq(c.kind, HF_PXCMD_DELAY);
    cr_assert_eq(c.arg, 300);
    cr_assert_eq(c.arg2, 100);
    cr_assert_eq(s_parse("delay 300 300", &c, &why), HF_OK);
    cr_assert_eq(c.arg2, 300);
    cr_assert_eq(s_parse("delay 300", &c, &why), HF_OK);
    cr_assert_eq(c.arg2, 0, "no jitter unless given");
    cr_assert_eq(s_parse("delay 300 301", &c, &why), HF_EINVAL, "a jitter past the delay");
    cr_assert_str_eq(why, "jitter must be a decimal number no larger than the delay");
    cr_assert_eq(s_parse("delay 300 100 7", &c, &why), HF_EINVAL);
    cr_assert_eq(s_parse("throttle 100 5", &c, &why), HF_EINVAL, "only delay has a second");
}

Test(pxcmd, ignores_blanks_and_line_endings, .timeout = 10)
{
    hf_pxcmd_t c;
    const char *why = NULL;
    cr_assert_eq(s_parse("  \tdelay   7 \r\n", &c, &why), HF_OK);
    cr_assert_eq(c.kind, HF_PXCMD_DELAY);
    cr_assert_eq(c.arg, 7);
    cr_assert_eq(s_parse("cut\n", &c, &why), HF_OK);
    cr_assert_eq(c.kind, HF_PXCMD_CUT);
}

Test(pxcmd, refuses_bad_lines_with_a_reason_and_leaves_out_untouched, .timeout = 10)
{
    static const char *bad[] = {
        "", "   ", "\r\n", "PASS", "passx", "pas", "cut now", "delay", "delay -1", "delay +5",
        "delay 1.5", "delay 12ab", "delay 600001", "throttle 10000000001",
        "throttle 99999999999999999999999", "delay 5 6", "stats x", "de\x01lay 5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hf_pxcmd_t c = {HF_PXCMD_STATS, 42};
        const char *why = NULL;
        cr_assert_eq(s_parse(bad[i], &c, &why), HF_EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert_not_null(why);
        cr_assert_gt(strlen(why), 0);
        cr_assert_eq(c.kind, HF_PXCMD_STATS);
        cr_assert_eq(c.arg, 42);
    }
}

Test(pxcmd, refuses_an_embedded_nul_and_an_overlong_line, .timeout = 10)
{
    hf_pxcmd_t c;
    const char *why = NULL;
    cr_assert_eq(hf_pxcmd_parse("cut\0x", 5, &c, &why), HF_EINVAL);
    char big[HF_PXCMD_LINE_MAX + 10];
    memset(big, ' ', sizeof big);
    memcpy(big, "cut", 3);
    cr_assert_eq(hf_pxcmd_parse(big, sizeof big, &c, &why), HF_EINVAL);
    cr_assert_str_eq(why, "line too long");
    cr_assert_eq(hf_pxcmd_parse(big, HF_PXCMD_LINE_MAX, &c, &why), HF_OK);
}
