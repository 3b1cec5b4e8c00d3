/* holdfast-aggregator - thin shell: flags, log sink, signals, run. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_aggregator.h"
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
               "                           [--max-restarts N] [--restart-period-s S] [-v]\n"
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
        {0, 0, 0, 0}};
    int c;
    bool verbose = false;
    while ((c = getopt_long(argc, argv, "b:c:d:w:m:s:T:R:P:C:E:O:Ihv", longopts, NULL)) != -1) {
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
        case 'v': verbose = true; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 2;
        }
    }
    if (optind < argc || !o.bind || !o.control || !o.data_dir) {
        fprintf(stderr, "holdfast-aggregator: --bind, --control and --data are required\n");
        s_usage(stderr);
        return 2;
    }
    if (o.insecure ? (o.cert || o.engine_keys || o.operator_keys)
                   : (!o.cert || !o.engine_keys || !o.operator_keys)) {
        fprintf(stderr, "holdfast-aggregator: give --cert, --engine-keys and --operator-keys "
                        "(CURVE), or --insecure alone\n");
        return 2;
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
        return 1;
    }
    err = hf_aggregator_run(agg, &s_stop);
    hf_aggregator_close(&agg);
    if (err == HF_ESTATE)
        return HF_AGGREGATOR_EXIT_GAVE_UP; /* gave up on a task: let systemd restart us */
    return err == HF_OK ? 0 : 1;
}
