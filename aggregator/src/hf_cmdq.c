/* hf_cmdq.c - one engine's operator commands (see hf_cmdq.h).
 *
 * Design notes:
 * - Why "unknown" and not a retry when the link drops with a command in
 *   flight: the engine may have run it and its answer may be in its spool.
 *   Resending could run an abort or a start twice; refusing to say would
 *   hide it. The client is told the outcome is unknown, and the engine's
 *   COMMAND record still lands in the store with the backlog (it is what
 *   `holdfast export` shows), so an operator can always find out.
 * - Waiting commands are refused, not kept, when the link drops: a command
 *   that runs minutes later, when the lab has moved on, is worse than none
 *   (docs/commands.md: "commands are never queued for later").
 */
#include "hf_cmdq.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
hf_cmdq_init(hf_cmdq_t *q)
{
    memset(q, 0, sizeof *q);
}

static void
s_free(hf_cmdq_item_t *it)
{
    free(it->body);
    it->body = NULL;
    it->cmd.body = NULL;
}

void
hf_cmdq_fini(hf_cmdq_t *q)
{
    for (uint32_t i = 0; i < q->count; i++)
        s_free(&q->q[(q->head + i) % HF_CMDQ_MAX]);
    if (q->has_inflight)
        s_free(&q->inflight);
    memset(q, 0, sizeof *q);
}

static void
s_answer(hf_cmdq_answer_t *a, const hf_cmdq_client_t *client, const hf_command_t *cmd,
         hf_err_t result, const char *text)
{
    memset(a, 0, sizeof *a);
    a->client = *client;
    a->id = cmd->id;
    a->verb = cmd->verb;
    a->result = result;
    snprintf(a->text, sizeof a->text, "%s", text);
}

void
hf_cmdq_submit(hf_cmdq_t *q, const hf_command_t *cmd, const hf_cmdq_client_t *client,
               bool available, hf_ms_t now, hf_cmdq_answer_t *ans, uint32_t *nans)
{
    assert(q && cmd && client && ans && nans);
    *nans = 0;
    if (!available) {
        s_answer(&ans[(*nans)++], client, cmd, HF_EUNAVAIL, "engine is not available");
        return;
    }
    if (cmd->verb == HF_CMD_ABORT) {
        char why[HF_TEXT_MAX + 1];
        snprintf(why, sizeof why, "superseded by abort (command %llu)",
                 (unsigned long long)cmd->id);
        for (uint32_t i = 0; i < q->count; i++) {
            hf_cmdq_item_t *it = &q->q[(q->head + i) % HF_CMDQ_MAX];
            s_answer(&ans[(*nans)++], &it->client, &it->cmd, HF_ESUPERSEDED, why);
            s_free(it);
        }
        q->count = 0;
    }
    if (q->count == HF_CMDQ_MAX) {
        char why[HF_TEXT_MAX + 1];
        snprintf(why, sizeof why, "%d commands already wait for this engine", HF_CMDQ_MAX);
        s_answer(&ans[(*nans)++], client, cmd, HF_EFULL, why);
        return;
    }
    hf_cmdq_item_t *it = &q->q[(q->head + q->count) % HF_CMDQ_MAX];
    memset(it, 0, sizeof *it);
    it->cmd = *cmd;
    it->cmd.body = NULL;
    if (cmd->body) {
        it->body = malloc(cmd->body_len ? cmd->body_len : 1);
        if (!it->body) {
            s_answer(&ans[(*nans)++], client, cmd, HF_ENOMEM, "out of memory");
            return;
        }
        memcpy(it->body, cmd->body, cmd->body_len);
        it->cmd.body = it->body;
    }
    it->client = *client;
    it->submitted_at = now;
    q->count++;
}

const hf_cmdq_item_t *
hf_cmdq_next(hf_cmdq_t *q, hf_ms_t now)
{
    assert(q);
    if (q->has_inflight || q->count == 0)
        return NULL;
    q->inflight = q->q[q->head];
    memset(&q->q[q->head], 0, sizeof q->q[q->head]);
    q->head = (q->head + 1) % HF_CMDQ_MAX;
    q->count--;
    q->inflight.sent_at = now;
    q->has_inflight = true;
    return &q->inflight;
}

bool
hf_cmdq_result(hf_cmdq_t *q, uint64_t id, hf_err_t result, const char *text, hf_cmdq_answer_t *ans)
{
    assert(q && ans);
    if (!q->has_inflight || q->inflight.cmd.id != id)
        return false;
    s_answer(ans, &q->inflight.client, &q->inflight.cmd, result, text ? text : "");
    ans->by_engine = true;
    s_free(&q->inflight);
    q->has_inflight = false;
    return true;
}

void
hf_cmdq_lost(hf_cmdq_t *q, const char *why, hf_cmdq_answer_t *ans, uint32_t *nans)
{
    assert(q && ans && nans);
    *nans = 0;
    char text[HF_TEXT_MAX + 1];
    if (q->has_inflight) {
        snprintf(text, sizeof text, "%.40s before the engine answered: it may or may not have run",
                 why);
        s_answer(&ans[(*nans)++], &q->inflight.client, &q->inflight.cmd, HF_EUNKNOWN, text);
        s_free(&q->inflight);
        q->has_inflight = false;
    }
    snprintf(text, sizeof text, "%.60s: not sent", why);
    for (uint32_t i = 0; i < q->count; i++) {
        hf_cmdq_item_t *it = &q->q[(q->head + i) % HF_CMDQ_MAX];
        s_answer(&ans[(*nans)++], &it->client, &it->cmd, HF_EUNAVAIL, text);
        s_free(it);
    }
    q->count = 0;
}

void
hf_cmdq_tick(hf_cmdq_t *q, hf_ms_t now, uint32_t timeout_ms, hf_cmdq_answer_t *ans,
             uint32_t *nans)
{
    assert(q && ans && nans);
    *nans = 0;
    if (!q->has_inflight || now - q->inflight.sent_at < timeout_ms)
        return;
    char text[HF_TEXT_MAX + 1];
    snprintf(text, sizeof text, "no answer from the engine in %u ms: it may or may not have run",
             timeout_ms);
    s_answer(&ans[(*nans)++], &q->inflight.client, &q->inflight.cmd, HF_EUNKNOWN, text);
    s_free(&q->inflight);
    q->has_inflight = false;
}
