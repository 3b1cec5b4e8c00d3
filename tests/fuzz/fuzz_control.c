/* libFuzzer target: the aggregator's control-request handler (what a CLI,
 * or anyone reaching the control endpoint, sends), against a small store
 * made once with a few engines, runs and records. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_control.h"
#include "hf_store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static hf_store_t *s_store;
static uint8_t s_out[1 << 20];
static char s_dir[] = "/tmp/hf-fuzz-control-XXXXXX";

static void
s_cleanup(void)
{
    char cmd[64];
    hf_store_close(&s_store);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_control: could not remove %s\n", s_dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!mkdtemp(s_dir))
        abort();
    atexit(s_cleanup);
    hf_err_t err;
    s_store = hf_store_open(s_dir, NULL, &err);
    if (!s_store)
        abort();
    hf_store_note_hello(s_store, "eng-1", 7, 0, 0, 1);
    hf_record_t r[3];
    hf_record_event(&r[0], 42, 10, 10, HF_EV_RUN_STARTED, 0, "m");
    hf_record_event(&r[1], 42, 11, 11, HF_EV_CHANNELS, 0, "a,b");
    hf_record_event(&r[2], 42, 12, 12, HF_EV_COMPLETED, 0, "");
    for (int i = 0; i < 3; i++)
        r[i].seq = (uint64_t)i + 1;
    uint64_t acked;
    size_t dups;
    hf_store_commit(s_store, "eng-1", 7, HF_LANE_CONTROL, r, 3, 1, &acked, &dups);
    hf_store_outage_begin(s_store, "eng-1", 5, "link lost");
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_live_t live[1];
    memset(live, 0, sizeof live);
    snprintf(live[0].engine, sizeof live[0].engine, "eng-2");
    live[0].availability = 1;
    size_t len = 0;
    if (hf_control_handle(s_store, live, 1, data, size, s_out, sizeof s_out, &len) != HF_OK)
        abort(); /* a reply is always written */
    if (len == 0 || len > sizeof s_out)
        abort();
    return 0;
}
