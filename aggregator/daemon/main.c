/* holdfast-aggregator - thin shell: flags (and a configuration file of the
 * same options, docs/configuration.md), log sink, signals, run. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_aggregator.h"
#include "hf_config.h"
#include "hf_log.h"

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void
s_usage(FILE *f)
{
    fprintf(f, "usage: holdfast-aggregator --bind ENDPOINT --control ENDPOINT --data DIR\n"
               "                           (--cert FILE --engine-keys DIR --operator-keys DIR\n"
               "                            | --insecure)\n"
               "                           [--watchdog-ms MS] [--max-engines N]\n"
               "                           [--status ENDPOINT] [--command-timeout-ms MS]\n"
               "                           [--max-restarts N] [--restart-period-s S]\n"
               "                           [--retain-age AGE] [--retain-bytes SIZE]\n"
               "                           [--metrics HOST:PORT] [--disk-low-pct N]\n"
               "                           [--config FILE] [--print-config] [-v]\n"
               "  --bind ENDPOINT     where engines connect (e.g. tcp://127.0.0.1:5555)\n"
               "  --control ENDPOINT  where the holdfast CLI connects (e.g. tcp://127.0.0.1:5556)\n"
               "  --data DIR          the store directory (created if missing)\n"
               "  --cert FILE         the aggregator's certificate (holdfast keygen NAME\n"
               "                      --server writes NAME and NAME_secret): CURVE on every\n"
               "                      endpoint (docs/security.md)\n"
               "  --engine-keys DIR   engines' public certificates, each bound to an engine id;\n"
               "                      read again when it changes\n"
               "  --operator-keys DIR operators' public certificates (role operator or reader)\n"
               "  --insecure          the plain mechanism instead: no authentication, no\n"
               "                      encryption (logs a warning; for tests and benchmarks)\n"
               "  --watchdog-ms MS    silence after which an engine is unavailable (3000)\n"
               "  --max-engines N     engines served at once (1024)\n"
               "  --status ENDPOINT   publish the status feed there (ZeroMQ PUB): availability,\n"
               "                      run events, backlogs; `holdfast status --watch` shows it\n"
               "  --command-timeout-ms MS  an engine that has not answered a command in this\n"
               "                      long: the command's outcome is unknown (10000)\n"
               "  --max-restarts N    restart intensity of each supervised task (an engine's\n"
               "  --restart-period-s S  session, the control endpoint, the status feed): past\n"
               "                      N restarts in S seconds the aggregator exits with\n"
               "                      status 70 (10 in 60)\n"
               "  --retain-age AGE    delete records older than AGE (e.g. 90d, 12h, 3600s;\n"
               "                      default: keep)\n"
               "  --retain-bytes SIZE delete the oldest records while the store holds more\n"
               "                      (e.g. 50G, 800M; default: no bound but the map's)\n"
               "  --metrics HOST:PORT serve Prometheus metrics on http://HOST:PORT/metrics\n"
               "  --disk-low-pct N    alarm when the store's filesystem has < N%% free (10)\n"
               "  --config FILE       read these options from FILE (ZPL, a section\n"
               "                      holdfast-aggregator; a flag given here wins)\n"
               "  --print-config      print the effective configuration (ZPL) and exit\n"
               "  -v                  debug logging\n");
}

static int
s_parse_u32(const char *s, unsigned long max, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* "90d", "12h", "30m", "45s", "3600" (seconds) -> ms. */
static int
s_parse_age(const char *s, uint64_t *ms)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || errno || end == s)
        return -1;
    uint64_t mul = 1000;
    if (*end == 'd')
        mul = 86400000ull, end++;
    else if (*end == 'h')
        mul = 3600000ull, end++;
    else if (*end == 'm')
        mul = 60000ull, end++;
    else if (*end == 's')
        end++;
    if (*end || v == 0 || v > UINT64_MAX / mul)
        return -1;
    *ms = v * mul;
    return 0;
}

/* "800M", "50G", "1T", "123456" (bytes) -> bytes; at least 1 MiB. */
static int
s_parse_size(const char *s, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || errno || end == s)
        return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M')
        shift = 20, end++;
    else if (*end == 'G')
        shift = 30, end++;
    else if (*end == 'T')
        shift = 40, end++;
    if (*end || v > (SIZE_MAX >> shift) || (v << shift) < (1u << 20))
        return -1;
    *out = (size_t)(v << shift);
    return 0;
}

static void
s_print_config(const hf_aggregator_opts_t *o, bool verbose)
{
    printf("holdfast-aggregator\n");
    printf("    bind = \"%s\"\n    control = \"%s\"\n    data = \"%s\"\n", o->bind, o->control,
           o->data_dir);
    if (o->insecure)
        printf("    insecure = true\n");
    else
        printf("    cert = \"%s\"\n    engine-keys = \"%s\"\n    operator-keys = \"%s\"\n",
               o->cert, o->engine_keys, o->operator_keys);
    printf("    watchdog-ms = %u\n    max-engines = %u\n", o->watchdog_ms, o->max_engines);
    if (o->status)
        printf("    status = \"%s\"\n", o->status);
    printf("    command-timeout-ms = %u\n    max-restarts = %u\n    restart-period-s = %u\n",
           o->command_timeout_ms, o->max_restarts, o->restart_period_ms / 1000);
    if (o->retain_age_ms)
        printf("    retain-age = %" PRIu64 "s\n", o->retain_age_ms / 1000);
    if (o->retain_bytes)
        printf("    retain-bytes = %zu\n", o->retain_bytes);
    if (o->metrics)
        printf("    metrics = \"%s\"\n", o->metrics);
    printf("    disk-low-pct = %u\n", o->disk_low_pct);
    if (verbose)
        printf("    verbose = true\n");
}

int
main(int argc, char **argv)
{
    hf_aggregator_opts_t o = hf_aggregator_opts_default();
    static const struct option longopts[] = {
        {"bind", required_argument, 0, 'b'},        {"control", required_argument, 0, 'c'},
        {"data", required_argument, 0, 'd'},        {"watchdog-ms", required_argument, 0, 'w'},
        {"max-engines", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
        {"status", required_argument, 0, 's'},
        {"command-timeout-ms", required_argument, 0, 'T'},
        {"max-restarts", required_argument, 0, 'R'},
        {"restart-period-s", required_argument, 0, 'P'},
        {"cert", required_argument, 0, 'C'},
        {"engine-keys", required_argument, 0, 'E'},
        {"operator-keys", required_argument, 0, 'O'},
        {"insecure", no_argument, 0, 'I'},
        {"retain-age", required_argument, 0, 'A'},
        {"retain-bytes", required_argument, 0, 'Z'},
        {"metrics", required_argument, 0, 'M'},
        {"disk-low-pct", required_argument, 0, 'L'},
        {"config", required_argument, 0, 'F'},
        {"print-config", no_argument, 0, 'p'},
        {"verbose", no_argument, 0, 'v'},
        {0, 0, 0, 0}};
    /* a configuration file: its options go first, so a flag wins */
    static const char *const k_cli_only[] = {"config", "print-config", "help", NULL};
    hf_config_args_t file = {0};
    char **args = argv;
    const char *cfg = hf_config_path(argc, argv);
    if (cfg) {
        char cerr[512];
        hf_err_t crc = hf_config_load(cfg, "holdfast-aggregator", longopts, k_cli_only, &file,
                                      cerr, sizeof cerr);
        if (crc != HF_OK) {
            fprintf(stderr, "holdfast-aggregator: configuration %s\n", cerr);
            return 2;
        }
        args = hf_config_merge(argc, argv, &file, &argc);
        if (!args) {
            hf_config_args_free(&file);
            return 1;
        }
    }
    int c;
    bool verbose = false, print_config = false;
    int code = -1;
    while ((c = getopt_long(argc, args, "b:c:d:w:m:s:T:R:P:C:E:O:IA:Z:M:L:F:phv", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'b': o.bind = optarg; break;
        case 'c': o.control = optarg; break;
        case 'd': o.data_dir = optarg; break;
        case 'w':
            if (s_parse_u32(optarg, 3600000, &o.watchdog_ms) != 0 || o.watchdog_ms < 100) {
                fprintf(stderr, "holdfast-aggregator: --watchdog-ms must be 100..3600000\n");
                return 2;
            }
            break;
        case 'm':
            if (s_parse_u32(optarg, 100000, &o.max_engines) != 0 || o.max_engines == 0) {
                fprintf(stderr, "holdfast-aggregator: --max-engines must be 1..100000\n");
                return 2;
            }
            break;
        case 's': o.status = optarg; break;
        case 'T':
            if (s_parse_u32(optarg, 3600000, &o.command_timeout_ms) != 0 ||
                o.command_timeout_ms < 100) {
                fprintf(stderr, "holdfast-aggregator: --command-timeout-ms must be 100..3600000\n");
                return 2;
            }
            break;
        case 'R':
            if (s_parse_u32(optarg, 256, &o.max_restarts) != 0 || o.max_restarts == 0) {
                fprintf(stderr, "holdfast-aggregator: --max-restarts must be 1..256\n");
                return 2;
            }
            break;
        case 'P': {
            uint32_t sec = 0;
            if (s_parse_u32(optarg, 86400, &sec) != 0 || sec == 0) {
                fprintf(stderr, "holdfast-aggregator: --restart-period-s must be 1..86400\n");
                return 2;
            }
            o.restart_period_ms = sec * 1000u;
            break;
        }
        case 'C': o.cert = optarg; break;
        case 'E': o.engine_keys = optarg; break;
        case 'O': o.operator_keys = optarg; break;
        case 'I': o.insecure = true; break;
        case 'A':
            if (s_parse_age(optarg, &o.retain_age_ms) != 0) {
                fprintf(stderr, "holdfast-aggregator: --retain-age must be like 90d, 12h, 30m or "
                                "3600s\n");
                code = 2;
            }
            break;
        case 'Z':
            if (s_parse_size(optarg, &o.retain_bytes) != 0) {
                fprintf(stderr, "holdfast-aggregator: --retain-bytes must be a size of at least "
                                "1M, like 800M or 50G\n");
                code = 2;
            }
            break;
        case 'M': o.metrics = optarg; break;
        case 'L':
            if (s_parse_u32(optarg, 90, &o.disk_low_pct) != 0 || o.disk_low_pct == 0) {
                fprintf(stderr, "holdfast-aggregator: --disk-low-pct must be 1..90\n");
                code = 2;
            }
            break;
        case 'F': break; /* read above */
        case 'p': print_config = true; break;
        case 'v': verbose = true; break;
        case 'h': s_usage(stdout); code = 0; break;
        default: s_usage(stderr); code = 2; break;
        }
        if (code >= 0)
            goto out;
    }
    if (optind < argc || !o.bind || !o.control || !o.data_dir) {
        fprintf(stderr, "holdfast-aggregator: --bind, --control and --data are required\n");
        s_usage(stderr);
        code = 2;
        goto out;
    }
    if (o.insecure ? (o.cert || o.engine_keys || o.operator_keys)
                   : (!o.cert || !o.engine_keys || !o.operator_keys)) {
        fprintf(stderr, "holdfast-aggregator: give --cert, --engine-keys and --operator-keys "
                        "(CURVE), or --insecure alone\n");
        code = 2;
        goto out;
    }
    if (print_config) {
        s_print_config(&o, verbose);
        code = 0;
        goto out;
    }
    hf_log_set_sink(hf_log_stderr_sink, NULL);
    hf_log_set_level(verbose ? HF_LOG_DEBUG : HF_LOG_INFO);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    hf_err_t err = HF_OK;
    hf_aggregator_t *agg = hf_aggregator_open(&o, &err);
    if (!agg) {
        fprintf(stderr, "holdfast-aggregator: cannot start: %s (%s)\n", hf_strerror(err),
                hf_errname(err));
        code = 1;
        goto out;
    }
    err = hf_aggregator_run(agg, &s_stop);
    hf_aggregator_close(&agg);
    if (err == HF_ESTATE)
        code = HF_AGGREGATOR_EXIT_GAVE_UP; /* gave up on a task: let systemd restart us */
    else
        code = err == HF_OK ? 0 : 1;
out:
    if (args != argv)
        free(args);
    hf_config_args_free(&file);
    return code;
}
