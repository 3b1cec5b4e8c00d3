/* libFuzzer target: one record (the spool's and the store's value format). */
#include <stdint.h>
#include <stdlib.h>

#include "hf_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hf_record_t r, s;
    size_t used = 0, used2 = 0, len = 0;
    uint8_t out[HF_PROTO_MAX_RECORD];
    if (hf_record_decode(data, size, &r, &used) != HF_OK)
        return 0;
    if (used > size)
        abort();
    if (hf_record_encode(&r, out, sizeof out, &len) != HF_OK)
        abort();
    if (hf_record_decode(out, len, &s, &used2) != HF_OK || used2 != len || s.seq != r.seq ||
        s.kind != r.kind)
        abort();
    return 0;
}
