/* hf_cmdq.h - one engine's operator commands on the aggregator (pure).
 *
 * The rules of docs/commands.md, as a state machine with no sockets, no
 * clock and no store: the router feeds submissions, the engine's answers
 * (COMMAND records, once committed), link losses and time; it carries out
 * what comes back (send this command to the engine; answer this client).
 *
 *   submit --engine not available--> answered HF_EUNAVAIL at once
 *   submit --> waiting (FIFO, bounded) --next--> in flight (one at a time)
 *   in flight --engine's COMMAND record--> answered with its result
 *   in flight --link lost--> answered HF_EUNKNOWN (it may have run; never resent)
 *   in flight --no answer for timeout_ms--> answered HF_EUNKNOWN
 *   waiting --link lost--> answered HF_EUNAVAIL (never sent)
 *   submit ABORT --> every waiting command answered HF_ESUPERSEDED; the
 *                    abort goes first in line (after the one in flight)
 *
 * At most once: a command leaves `next` exactly once and is never queued
 * again, so nothing here can send it twice; the engine also refuses an id
 * it has seen.
 *
 * Invariants: count <= HF_CMDQ_MAX; an id is either waiting, in flight or
 * answered, never two of these; every submitted command is answered
 * exactly once (by submit, result, lost, tick or clear).
 */
#ifndef HF_CMDQ_H_INCLUDED
#define HF_CMDQ_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#include "hf_proto.h"
#include "hf_record.h"
#include "hf_time.h"

#define HF_CMDQ_MAX 8           /* commands waiting per engine           */
#define HF_CMDQ_CLIENT_MAX 255  /* bytes of a client's routing id (ZMTP) */

/* Who asked: the control client's routing id, opaque bytes. */
typedef struct {
    uint8_t id[HF_CMDQ_CLIENT_MAX];
    uint8_t len;
} hf_cmdq_client_t;

typedef struct {
    hf_command_t cmd;           /* body points at body (owned) or is NULL */
    char *body;                 /* owned copy of the method text          */
    hf_cmdq_client_t client;
    hf_ms_t submitted_at;       /* ms                                     */
    hf_ms_t sent_at;            /* ms, once in flight                     */
} hf_cmdq_item_t;

/* An answer for a client. */
typedef struct {
    hf_cmdq_client_t client;
    uint64_t id;
    uint8_t verb;
    hf_err_t result;
    bool by_engine;             /* the engine's own answer (its COMMAND record) */
    char text[HF_TEXT_MAX + 1];
} hf_cmdq_answer_t;

/* Enough room for every answer one call can produce. */
#define HF_CMDQ_ANSWERS_MAX (HF_CMDQ_MAX + 2)

typedef struct {
    hf_cmdq_item_t q[HF_CMDQ_MAX];
    uint32_t head;              /* oldest waiting                          */
    uint32_t count;             /* waiting                                 */
    hf_cmdq_item_t inflight;
    bool has_inflight;
} hf_cmdq_t;

void hf_cmdq_init(hf_cmdq_t *q);
/* Answers nothing: frees what it owns (shutdown). */
void hf_cmdq_fini(hf_cmdq_t *q);

/* A client submits cmd (its body is copied). available: the engine is
 * connected now. Answers are written to ans (*nans of them, at most
 * HF_CMDQ_ANSWERS_MAX): the submission itself when refused (HF_EUNAVAIL,
 * HF_EFULL, HF_ENOMEM), and the commands an ABORT supersedes. */
void hf_cmdq_submit(hf_cmdq_t *q, const hf_command_t *cmd, const hf_cmdq_client_t *client,
                    bool available, hf_ms_t now, hf_cmdq_answer_t *ans, uint32_t *nans);

/* The command to send now, or NULL: only when none is in flight. It moves
 * to in flight; the pointer is valid until the next call on q. */
const hf_cmdq_item_t *hf_cmdq_next(hf_cmdq_t *q, hf_ms_t now);

/* The engine answered command id (a committed COMMAND record). true and
 * *ans filled if id was in flight; false for any other id (a late answer
 * to a command already answered HF_EUNKNOWN, or one from before a restart). */
bool hf_cmdq_result(hf_cmdq_t *q, uint64_t id, hf_err_t result, const char *text,
                    hf_cmdq_answer_t *ans);

/* The link to the engine was lost (watchdog, BYE, new connection). */
void hf_cmdq_lost(hf_cmdq_t *q, const char *why, hf_cmdq_answer_t *ans, uint32_t *nans);

/* Time passed: a command in flight for timeout_ms is answered HF_EUNKNOWN. */
void hf_cmdq_tick(hf_cmdq_t *q, hf_ms_t now, uint32_t timeout_ms, hf_cmdq_answer_t *ans,
                  uint32_t *nans);

#endif
