/* test_config.c - ZPL configuration files turned into flags: values,
 * switches, the flag wins, and every error names the file and the line. */
#include <criterion/criterion.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_config.h"

static const struct option k_opts[] = {
    {"bind", required_argument, NULL, 'b'},   {"watchdog-ms", required_argument, NULL, 'w'},
    {"insecure", no_argument, NULL, 'i'},     {"config", required_argument, NULL, 'C'},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
};
static const char *const k_skip[] = {"config", "help", NULL};

static char s_path[64];

static void
s_write(const char *text)
{
    snprintf(s_path, sizeof s_path, "/tmp/hf-config-XXXXXX");
    int fd = mkstemp(s_path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static hf_err_t
s_load(const char *text, hf_config_args_t *a, char *err, size_t errlen)
{
    s_write(text);
    hf_err_t rc = hf_config_load(s_path, "holdfast-aggregator", k_opts, k_skip, a, err, errlen);
    unlink(s_path);
    return rc;
}

Test(config, keys_become_flags_and_the_command_line_wins, .timeout = 10)
{
    hf_config_args_t a;
    char err[256];
    cr_assert_eq(s_load("# a comment\n"
                        "other-program\n"
                        "    nonsense = 1\n"
                        "holdfast-aggregator\n"
                        "    bind = \"tcp://0.0.0.0:5555\"\n"
                        "    watchdog-ms = 3000   # inline comment\n"
                        "    insecure = true\n",
                        &a, err, sizeof err),
                 HF_OK, "%s", err);
    cr_assert_eq(a.argc, 3);
    cr_assert_str_eq(a.argv[0], "--bind=tcp://0.0.0.0:5555");
    cr_assert_str_eq(a.argv[1], "--watchdog-ms=3000");
    cr_assert_str_eq(a.argv[2], "--insecure");
    char *argv[] = {"prog", "--watchdog-ms=500", NULL};
    int n = 0;
    char **m = hf_config_merge(2, argv, &a, &n);
    cr_assert_eq(n, 5);
    /* getopt sees the file first, the command line last: the flag wins */
    optind = 1;
    int c;
    const char *wd = NULL;
    while ((c = getopt_long(n, m, "", k_opts, NULL)) != -1)
        if (c == 'w')
            wd = optarg;
    cr_assert_str_eq(wd, "500");
    free(m);
    hf_config_args_free(&a);

    cr_assert_eq(s_load("holdfast-aggregator\n    insecure = false\n", &a, err, sizeof err), HF_OK);
    cr_assert_eq(a.argc, 0, "a false switch adds nothing");
}

Test(config, errors_name_the_file_and_the_line, .timeout = 10)
{
    hf_config_args_t a;
    char err[256];
    struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"holdfast-aggregator\n    bind = x\n    colour = blue\n", ":3: unknown option 'colour'"},
        {"holdfast-aggregator\n\n    help = true\n", ":3: not settable in a file: 'help'"},
        {"holdfast-aggregator\n    insecure = maybe\n", ":2: 'insecure' is a switch"},
        {"holdfast-aggregator\n    bind =\n", ":2: 'bind' needs a value"},
        {"holdfast-aggregator\n   bind = x\n", ":2: indentation"},
        {"holdfast-aggregator\n\tbind = x\n", ":2: a tab"},
        {"holdfast-aggregator\n    bind x\n", ":2: expected '= value'"},
        {"holdfast-aggregator\n    bind = x\n        deeper = 1\n", ":2: 'bind' takes a value"},
        {"engine\n    bind = x\n", "no section 'holdfast-aggregator'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_err_t rc = s_load(cases[i].text, &a, err, sizeof err);
        cr_assert_eq(rc, HF_EINVAL, "case %zu: %s", i, err);
        cr_assert_not_null(strstr(err, cases[i].want), "case %zu: '%s' lacks '%s'", i, err,
                           cases[i].want);
        cr_assert_not_null(strstr(err, "/tmp/hf-config-"), "case %zu names the file: %s", i, err);
        cr_assert_eq(a.argc, 0);
    }
    cr_assert_eq(hf_config_load("/nonexistent/x.cfg", "p", k_opts, k_skip, &a, err, sizeof err),
                 HF_ENOTFOUND);
}

Test(config, the_config_flag_is_found_before_getopt, .timeout = 10)
{
    char *a1[] = {"p", "--bind", "x", "--config", "/etc/h.cfg", NULL};
    cr_assert_str_eq(hf_config_path(5, a1), "/etc/h.cfg");
    char *a2[] = {"p", "--config=/etc/h.cfg", NULL};
    cr_assert_str_eq(hf_config_path(2, a2), "/etc/h.cfg");
    char *a3[] = {"p", "--bind", "x", NULL};
    cr_assert_null(hf_config_path(3, a3));
}
