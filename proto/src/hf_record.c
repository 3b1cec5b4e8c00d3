/* hf_record.c - record helpers: lanes, names, fill helpers, engine ids.
 *
 * Purpose: the small pure functions declared in hf_record.h. The record
 * wire codec (hf_record_encode/decode) lives with the frames in
 * hf_proto.c, because it shares the bounded writer and reader with them.
 *
 * Design notes:
 * - The fill helpers zero the whole record first, so no stale union bytes
 *   from a previous use ever reach the spool or the wire; the compiler turns
 *   the fixed-size memset into a few vector stores.
 * - Text is truncated to HF_TEXT_MAX bytes without splitting a UTF-8
 *   sequence: a cut in the middle of a character would leave invalid UTF-8
 *   in a msgpack str.
 *
 * Invariants: every name function returns a static string, never NULL.
 */
#include <stdbool.h>
#include <string.h>

#include "hf_record.h"

hf_lane_t
hf_record_lane_of(uint8_t kind)
{
    /* Only samples are bulk data; everything else is control, including
     * kinds we do not know (the codec rejects those anyway). */
    return kind == HF_KIND_SAMPLE ? HF_LANE_DATA : HF_LANE_CONTROL;
}

const char *
hf_kind_name(uint8_t kind)
{
    switch (kind) {
    case HF_KIND_SAMPLE:
        return "sample";
    case HF_KIND_EVENT:
        return "event";
    case HF_KIND_ALARM:
        return "alarm";
    case HF_KIND_HW_ERROR:
        return "hw_error";
    case HF_KIND_GAP:
        return "gap";
    case HF_KIND_COMMAND:
        return "command";
    default:
        return "?";
    }
}

const char *
hf_event_name(uint8_t type)
{
    static const char *const names[HF_EV_MAX + 1] = {
        [HF_EV_RUN_STARTED] = "run_started", [HF_EV_STEP] = "step",
        [HF_EV_PAUSED] = "paused",           [HF_EV_RESUMED] = "resumed",
        [HF_EV_COMPLETED] = "completed",     [HF_EV_FAILED] = "failed",
        [HF_EV_ABORTED] = "aborted",         [HF_EV_INTERRUPTED] = "interrupted",
        [HF_EV_CHANNELS] = "channels",
    };
    if (type == 0 || type > HF_EV_MAX)
        return "?";
    return names[type];
}

const char *
hf_lane_name(uint8_t lane)
{
    switch (lane) {
    case HF_LANE_CONTROL:
        return "control";
    case HF_LANE_DATA:
        return "data";
    default:
        return "?";
    }
}

const char *
hf_run_state_name(uint8_t state)
{
    static const char *const names[HF_RUN_STATE_MAX + 1] = {
        [HF_RUN_IDLE] = "idle",           [HF_RUN_RUNNING] = "running",
        [HF_RUN_PAUSED] = "paused",       [HF_RUN_COMPLETED] = "completed",
        [HF_RUN_FAILED] = "failed",       [HF_RUN_ABORTED] = "aborted",
        [HF_RUN_INTERRUPTED] = "interrupted",
    };
    if (state > HF_RUN_STATE_MAX)
        return "?";
    return names[state];
}

/* Copies at most HF_TEXT_MAX bytes of src into dst (HF_TEXT_MAX + 1 bytes)
 * and NUL-terminates. When the cut falls inside a UTF-8 sequence, it moves
 * back to the sequence's lead byte (at most 3 steps: longer runs of
 * continuation bytes are not UTF-8 anyway, and are cut where they are). */
static void
s_copy_text(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, HF_TEXT_MAX + 1) : 0;
    if (n > HF_TEXT_MAX) {
        n = HF_TEXT_MAX;
        size_t cut = n;
        for (int i = 0; i < 3 && cut > 0 && ((unsigned char)src[cut] & 0xC0) == 0x80; i++)
            cut--;
        if (((unsigned char)src[cut] & 0xC0) != 0x80)
            n = cut;
    }
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void
hf_record_sample(hf_record_t *r, uint64_t run, uint64_t ts_ns, uint64_t mono_ns,
                 uint32_t channel, double value)
{
    memset(r, 0, sizeof *r);
    r->ts_ns = ts_ns;
    r->mono_ns = mono_ns;
    r->run = run;
    r->kind = HF_KIND_SAMPLE;
    r->lane = hf_record_lane_of(HF_KIND_SAMPLE);
    r->u.sample.channel = channel;
    r->u.sample.value = value;
}

void
hf_record_event(hf_record_t *r, uint64_t run, uint64_t ts_ns, uint64_t mono_ns,
                hf_event_type_t type, uint32_t step, const char *text)
{
    memset(r, 0, sizeof *r);
    r->ts_ns = ts_ns;
    r->mono_ns = mono_ns;
    r->run = run;
    r->kind = HF_KIND_EVENT;
    r->lane = hf_record_lane_of(HF_KIND_EVENT);
    r->u.event.type = (uint8_t)type;
    r->u.event.step = step;
    s_copy_text(r->u.event.text, text);
}

int
hf_engine_id_valid(const char *id)
{
    if (!id)
        return 0;
    size_t n = 0;
    for (; id[n]; n++) {
        if (n >= HF_ENGINE_ID_MAX)
            return 0;
        unsigned char c = (unsigned char)id[n];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return n > 0;
}

static const char *const s_verbs[HF_CMD_MAX + 1] = {
    [HF_CMD_START] = "start", [HF_CMD_PAUSE] = "pause", [HF_CMD_RESUME] = "resume",
    [HF_CMD_ABORT] = "abort", [HF_CMD_SET] = "set",
};

const char *
hf_command_verb_name(uint8_t verb)
{
    if (verb == 0 || verb > HF_CMD_MAX)
        return "?";
    return s_verbs[verb];
}

hf_err_t
hf_command_verb_parse(const char *s, uint8_t *out)
{
    for (uint8_t v = 1; s && v <= HF_CMD_MAX; v++) {
        if (strcmp(s, s_verbs[v]) == 0) {
            *out = v;
            return HF_OK;
        }
    }
    return HF_EINVAL;
}
