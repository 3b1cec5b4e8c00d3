/* libFuzzer target: the wire decoder (every frame type, batches of records).
 * Whatever decodes must re-encode and decode to the same frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_proto.h"

#define S_CAP 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static hf_record_t recs[S_CAP], again[S_CAP];
    static uint8_t out[1 << 20];
    hf_frame_t f, g;
    if (hf_frame_decode(data, size, &f, recs, S_CAP) != HF_OK)
        return 0;
    size_t len = 0;
    hf_err_t rc = HF_OK;
    switch (f.type) {
    case HF_FRAME_HELLO: rc = hf_frame_encode_hello(&f.u.hello, out, sizeof out, &len); break;
    case HF_FRAME_WELCOME: rc = hf_frame_encode_welcome(&f.u.welcome, out, sizeof out, &len); break;
    case HF_FRAME_ACK: rc = hf_frame_encode_ack(&f.u.ack, out, sizeof out, &len); break;
    case HF_FRAME_PING: rc = hf_frame_encode_ping(&f.u.ping, out, sizeof out, &len); break;
    case HF_FRAME_PONG: rc = hf_frame_encode_pong(&f.u.ping, out, sizeof out, &len); break;
    case HF_FRAME_STATUS: rc = hf_frame_encode_status(&f.u.status, out, sizeof out, &len); break;
    case HF_FRAME_BYE: rc = hf_frame_encode_bye(out, sizeof out, &len); break;
    case HF_FRAME_BATCH: {
        hf_batch_writer_t w;
        rc = hf_batch_begin(&w, f.u.batch.lane, out, sizeof out);
        for (uint32_t i = 0; rc == HF_OK && i < f.u.batch.count; i++)
            rc = hf_batch_add(&w, &recs[i]);
        if (rc == HF_OK)
            rc = hf_batch_finish(&w, &len);
        break;
    }
    default: abort(); /* decoded a type the decoder should refuse */
    }
    if (rc != HF_OK)
        abort(); /* what decodes must encode */
    if (hf_frame_decode(out, len, &g, again, S_CAP) != HF_OK || g.type != f.type)
        abort();
    if (f.type == HF_FRAME_BATCH && g.u.batch.count != f.u.batch.count)
        abort();
    return 0;
}
