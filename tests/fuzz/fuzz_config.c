/* fuzz_config.c - libFuzzer target for the configuration-file reader
 * (hf_config_parse: our syntax check, zconfig, key lookup). */
#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

#include "hf_config.h"

static const struct option k_opts[] = {
    {"bind", required_argument, NULL, 'b'}, {"watchdog-ms", required_argument, NULL, 'w'},
    {"insecure", no_argument, NULL, 'i'},   {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
static const char *const k_skip[] = {"help", NULL};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_config_args_t a;
    char err[256];
    if (hf_config_parse("fuzz", (const char *)data, size, "holdfast-aggregator", k_opts, k_skip,
                        &a, err, sizeof err) == HF_OK)
        hf_config_args_free(&a);
    return 0;
}
