/* hf_controller.c - hf_controller_t: the engine's command handler.
 *
 * Owns the current run and its method; carries out START, PAUSE, RESUME,
 * ABORT and SET; answers each with one COMMAND record (hf_engine.h).
 *
 * Design notes:
 * - At most once: the aggregator never resends a command (docs/commands.md),
 *   and this side remembers the last S_SEEN_MAX ids so that a duplicate
 *   that still arrives (a replayed frame, a buggy peer) is not carried out
 *   twice. Ids are per aggregator store and only increase, but with several
 *   aggregators they interleave, hence a set and not a high-water mark.
 * - The COMMAND record goes out after the records the command caused (the
 *   run's events), so a reader of the control lane sees cause before answer.
 * - The record's run field is the run the command acted on: the new run for
 *   START, the current run otherwise (0 if there is none).
 * - A method sent with START is copied and NUL-terminated before parsing:
 *   the frame's body is borrowed and not terminated. A body holding a NUL
 *   byte is refused (the parser would silently stop there).
 *
 * Invariants: run != NULL iff method != NULL; the run borrows method;
 * last_run_id is the id of the newest run started (0 before any).
 */
#include "hf_engine.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SEEN_MAX 256 /* command ids remembered for duplicate detection */
#define S_PATH_MAX 4096

struct hf_controller_s {
    hf_hal_t hal;                    /* borrowed                            */
    hf_channel_t *channel;           /* borrowed                            */
    hf_controller_opts_t opts;       /* methods_dir points at dir below     */
    char *dir;                       /* owned copy of opts.methods_dir      */
    hf_method_t *method;             /* owned; the current run's method     */
    hf_run_t *run;                   /* owned; current or last run          */
    uint64_t last_run_id;
    uint64_t seen[S_SEEN_MAX];       /* ring of command ids carried out     */
    uint32_t seen_next;              /* next slot to overwrite              */
    uint64_t commands;               /* commands answered                   */
    uint64_t send_errors;            /* COMMAND records the channel refused */
};

hf_controller_opts_t
hf_controller_opts_default(void)
{
    return (hf_controller_opts_t){.methods_dir = NULL, .run = hf_run_opts_default()};
}

hf_controller_t *
hf_controller_new(const hf_hal_t *hal, hf_channel_t *channel, const hf_controller_opts_t *opts,
                  hf_err_t *err)
{
    assert(hal && hal->ops && channel && channel->ops);
    hf_err_t rc = HF_OK;
    hf_controller_t *self = calloc(1, sizeof *self);
    if (!self) {
        rc = HF_ENOMEM;
        goto fail;
    }
    self->hal = *hal;
    self->channel = channel;
    self->opts = opts ? *opts : hf_controller_opts_default();
    if (self->opts.methods_dir) {
        if (!*self->opts.methods_dir || strlen(self->opts.methods_dir) > S_PATH_MAX / 2) {
            rc = HF_EINVAL;
            goto fail;
        }
        self->dir = strdup(self->opts.methods_dir);
        if (!self->dir) {
            rc = HF_ENOMEM;
            goto fail;
        }
    }
    self->opts.methods_dir = self->dir;
    if (err)
        *err = HF_OK;
    return self;

fail:
    hf_controller_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void
hf_controller_destroy(hf_controller_t **self_p)
{
    assert(self_p);
    hf_controller_t *self = *self_p;
    if (!self)
        return;
    hf_run_destroy(&self->run);
    hf_method_destroy(&self->method);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

static bool
s_active(const hf_controller_t *self)
{
    hf_run_state_t st = self->run ? hf_run_state(self->run) : HF_RUN_IDLE;
    return st == HF_RUN_RUNNING || st == HF_RUN_PAUSED;
}

hf_err_t
hf_controller_start(hf_controller_t *self, hf_method_t *method, uint64_t mono_ns,
                    uint64_t wall_ns, char *errbuf, size_t errlen)
{
    assert(self && method);
    if (errbuf && errlen)
        errbuf[0] = 0;
    if (s_active(self)) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "run %llu is %s: abort it first",
                     (unsigned long long)hf_run_id(self->run),
                     hf_run_state_name((uint8_t)hf_run_state(self->run)));
        hf_method_destroy(&method);
        return HF_ESTATE;
    }
    uint64_t id = wall_ns > self->last_run_id ? wall_ns : self->last_run_id + 1;
    hf_err_t rc = HF_OK;
    hf_run_t *run = hf_run_new(method, &self->hal, self->channel, id, &self->opts.run, errbuf,
                               errlen, &rc);
    if (!run) {
        hf_method_destroy(&method);
        return rc;
    }
    hf_run_destroy(&self->run);
    hf_method_destroy(&self->method);
    self->method = method;
    self->run = run;
    self->last_run_id = id;
    return hf_run_start(run, mono_ns, wall_ns);
}

/* ---- commands ---------------------------------------------------------------- */

static bool
s_seen(const hf_controller_t *self, uint64_t id)
{
    for (uint32_t i = 0; i < S_SEEN_MAX; i++)
        if (self->seen[i] == id)
            return true;
    return false;
}

static bool
s_name_ok(const char *name)
{
    /* a method name is a file name in methods_dir: no path, no dot-files */
    if (!name[0] || name[0] == '.')
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static hf_err_t
s_cmd_start(hf_controller_t *self, const hf_command_t *cmd, uint64_t mono_ns, uint64_t wall_ns,
            char *text, size_t cap)
{
    char err[HF_METHOD_ERR_MAX];
    hf_err_t rc = HF_OK;
    hf_method_t *m = NULL;
    if (s_active(self)) {
        snprintf(text, cap, "run %llu is %s: abort it first",
                 (unsigned long long)hf_run_id(self->run),
                 hf_run_state_name((uint8_t)hf_run_state(self->run)));
        return HF_ESTATE;
    }
    if (cmd->body) {
        if (memchr(cmd->body, 0, cmd->body_len)) {
            snprintf(text, cap, "method text holds a NUL byte");
            return HF_EINVAL;
        }
        char *copy = malloc((size_t)cmd->body_len + 1);
        if (!copy)
            return HF_ENOMEM;
        memcpy(copy, cmd->body, cmd->body_len);
        copy[cmd->body_len] = 0;
        m = hf_method_parse(cmd->name[0] ? cmd->name : "inline", copy, err, sizeof err, &rc);
        free(copy);
    } else {
        if (!s_name_ok(cmd->name)) {
            snprintf(text, cap, "invalid method name '%.60s'", cmd->name);
            return HF_EINVAL;
        }
        if (!self->dir) {
            snprintf(text, cap, "no methods directory: send the method text");
            return HF_ENOTFOUND;
        }
        char path[S_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s.method", self->dir, cmd->name);
        m = hf_method_load(path, err, sizeof err, &rc);
        if (!m && rc == HF_ENOTFOUND) {
            snprintf(text, cap, "no method '%.60s' on this engine", cmd->name);
            return rc;
        }
    }
    if (!m) {
        snprintf(text, cap, "method %.40s: %.70s", cmd->name, err);
        return rc;
    }
    const char *name = hf_method_name(m);
    char namecopy[HF_METHOD_NAME_MAX + 1];
    snprintf(namecopy, sizeof namecopy, "%s", name);
    rc = hf_controller_start(self, m, mono_ns, wall_ns, err, sizeof err);
    if (rc != HF_OK && !(self->run && hf_run_state(self->run) == HF_RUN_RUNNING)) {
        snprintf(text, cap, "method %.40s: %.70s", namecopy, err[0] ? err : hf_strerror(rc));
        return rc;
    }
    snprintf(text, cap, "run %llu started: method %.60s", (unsigned long long)self->last_run_id,
             namecopy);
    return HF_OK;
}

static hf_err_t
s_cmd_set(hf_controller_t *self, const hf_command_t *cmd, uint64_t mono_ns, char *text,
          size_t cap)
{
    if (self->run && hf_run_state(self->run) == HF_RUN_RUNNING) {
        snprintf(text, cap, "run %llu is running: pause it first (the method drives the "
                            "actuators)",
                 (unsigned long long)hf_run_id(self->run));
        return HF_ESTATE;
    }
    uint32_t idx;
    if (hf_hal_find_actuator(&self->hal, cmd->name, &idx) != HF_OK) {
        snprintf(text, cap, "no actuator '%.60s' on this instrument", cmd->name);
        return HF_ENOTFOUND;
    }
    hf_hal_error_t e;
    hf_hal_class_t cls = HF_HAL_OK;
    /* same retry rule as a run's writes: transient and timeout only */
    for (uint32_t a = 0; a <= self->opts.run.write_retries; a++) {
        memset(&e, 0, sizeof e);
        cls = self->hal.ops->write(self->hal.impl, idx, mono_ns, cmd->value, &e);
        if (cls == HF_HAL_OK || (cls != HF_HAL_TRANSIENT && cls != HF_HAL_TIMEOUT))
            break;
    }
    if (cls != HF_HAL_OK) {
        snprintf(text, cap, "write %.40s: %s: %.60s", cmd->name, hf_hal_class_name(cls),
                 e.reason);
        return cls == HF_HAL_DISCONNECTED ? HF_EUNAVAIL : HF_EIO;
    }
    snprintf(text, cap, "%.60s = %g", cmd->name, cmd->value);
    return HF_OK;
}

static hf_err_t
s_cmd_run_state(hf_controller_t *self, const hf_command_t *cmd, uint64_t mono_ns, char *text,
                size_t cap)
{
    if (!self->run) {
        snprintf(text, cap, "no run to %s", hf_command_verb_name(cmd->verb));
        return HF_ESTATE;
    }
    hf_run_state_t before = hf_run_state(self->run);
    unsigned long long id = (unsigned long long)hf_run_id(self->run);
    if (cmd->verb == HF_CMD_RESUME && hf_run_device_lost(self->run)) {
        /* the device decides: the run resumes by itself once it reopens */
        snprintf(text, cap, "cannot resume run %llu: the device is disconnected (it resumes "
                            "when the device is back; abort to stop)", id);
        return HF_ESTATE;
    }
    hf_err_t rc;
    switch (cmd->verb) {
    case HF_CMD_PAUSE: rc = hf_run_pause(self->run, mono_ns, "paused by command"); break;
    case HF_CMD_RESUME: rc = hf_run_resume(self->run, mono_ns, "resumed by command"); break;
    default: rc = hf_run_abort(self->run, mono_ns); break;
    }
    hf_run_state_t after = hf_run_state(self->run);
    if (after == before) {
        snprintf(text, cap, "cannot %s run %llu: it is %s", hf_command_verb_name(cmd->verb), id,
                 hf_run_state_name((uint8_t)before));
        return HF_ESTATE;
    }
    if (cmd->verb == HF_CMD_PAUSE && after != HF_RUN_PAUSED) {
        snprintf(text, cap, "cannot pause run %llu: it ended (%s)", id,
                 hf_run_state_name((uint8_t)after));
        return HF_ESTATE;
    }
    (void)rc; /* a send error shows in the run's counters; the state changed */
    snprintf(text, cap, "run %llu %s", id, hf_run_state_name((uint8_t)after));
    return HF_OK;
}

hf_err_t
hf_controller_command(hf_controller_t *self, const hf_command_t *cmd, uint64_t mono_ns,
                      uint64_t wall_ns)
{
    assert(self && cmd);
    char text[HF_TEXT_MAX + 1] = "";
    hf_err_t result;
    if (cmd->id == 0 || s_seen(self, cmd->id)) {
        snprintf(text, sizeof text, "duplicate command id: not carried out again");
        result = HF_EPROTO;
    } else {
        self->seen[self->seen_next] = cmd->id;
        self->seen_next = (self->seen_next + 1) % S_SEEN_MAX;
        switch (cmd->verb) {
        case HF_CMD_START: result = s_cmd_start(self, cmd, mono_ns, wall_ns, text, sizeof text); break;
        case HF_CMD_PAUSE:
        case HF_CMD_RESUME:
        case HF_CMD_ABORT: result = s_cmd_run_state(self, cmd, mono_ns, text, sizeof text); break;
        case HF_CMD_SET: result = s_cmd_set(self, cmd, mono_ns, text, sizeof text); break;
        default:
            snprintf(text, sizeof text, "unknown command verb %u", cmd->verb);
            result = HF_EINVAL;
            break;
        }
    }
    hf_record_t r;
    memset(&r, 0, sizeof r);
    r.kind = HF_KIND_COMMAND;
    r.lane = (uint8_t)hf_record_lane_of(HF_KIND_COMMAND);
    r.run = self->run ? hf_run_id(self->run) : 0;
    r.ts_ns = wall_ns;
    r.mono_ns = mono_ns;
    r.u.command.id = cmd->id;
    r.u.command.verb = cmd->verb <= HF_CMD_MAX && cmd->verb ? cmd->verb : HF_CMD_ABORT;
    r.u.command.result = (int32_t)result;
    snprintf(r.u.command.text, sizeof r.u.command.text, "%s", text);
    if (hf_channel_send(self->channel, &r) != HF_OK)
        self->send_errors++;
    self->commands++;
    return result;
}

void
hf_controller_seed_run_id(hf_controller_t *self, uint64_t last)
{
    assert(self);
    if (last > self->last_run_id)
        self->last_run_id = last;
}

hf_err_t
hf_controller_tick(hf_controller_t *self, uint64_t mono_ns, uint64_t *next_mono_ns)
{
    assert(self);
    if (!self->run || !s_active(self)) {
        if (next_mono_ns)
            *next_mono_ns = HF_RUN_NEVER;
        return HF_OK;
    }
    return hf_run_tick(self->run, mono_ns, next_mono_ns);
}

hf_err_t
hf_controller_abort(hf_controller_t *self, uint64_t mono_ns)
{
    assert(self);
    if (!s_active(self))
        return HF_ESTATE;
    return hf_run_abort(self->run, mono_ns);
}

const hf_run_t *
hf_controller_run(const hf_controller_t *self)
{
    assert(self);
    return self->run;
}

hf_run_state_t
hf_controller_state(const hf_controller_t *self)
{
    assert(self);
    return self->run ? hf_run_state(self->run) : HF_RUN_IDLE;
}

uint64_t
hf_controller_commands(const hf_controller_t *self)
{
    assert(self);
    return self->commands;
}
