/* hf_channel.h - the engine's outbound channel: the only view an engine has
 * of "the outside". A tiny vtable implemented by the dispatcher (durable,
 * store-and-forward) and by direct channels (tests, in-process).
 *
 * Semantics (the dispatcher's, which every implementation must honour):
 * - send() copies the record and returns once it is in the channel's
 *   in-memory batch. The channel assigns rec->seq when it commits; the
 *   caller's copy is not changed. It never blocks except on a full staging
 *   buffer (then it waits for the next group commit).
 * - flush() returns once everything sent before it is durable.
 * - close() flushes, stops and frees the implementation.
 *
 * Thread-safety: send() and flush() may be called from one producer thread
 * while the channel works in its own thread; this is the one documented
 * exception to "one object, one thread".
 */
#ifndef HF_CHANNEL_H_INCLUDED
#define HF_CHANNEL_H_INCLUDED

#include "hf_err.h"
#include "hf_record.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    hf_err_t (*send)(void *impl, const hf_record_t *rec);
    hf_err_t (*flush)(void *impl);
    void (*close)(void *impl);
} hf_channel_ops_t;

typedef struct {
    const hf_channel_ops_t *ops; /* borrowed, static                        */
    void *impl;                  /* owned by the channel                    */
} hf_channel_t;

static inline hf_err_t
hf_channel_send(hf_channel_t *ch, const hf_record_t *rec)
{
    return ch->ops->send(ch->impl, rec);
}

static inline hf_err_t
hf_channel_flush(hf_channel_t *ch)
{
    return ch->ops->flush(ch->impl);
}

#ifdef __cplusplus
}
#endif
#endif
