/* hf_err.c - messages and names for hf_err_t.
 * Both are switches without default so -Wswitch flags a code added
 * without its text. */
#include "hf_err.h"

#include <stdio.h>

const char *
hf_strerror(hf_err_t err)
{
    switch (err) {
    case HF_OK: return "success";
    case HF_EINVAL: return "invalid argument or configuration";
    case HF_ENOMEM: return "out of memory";
    case HF_EFULL: return "bounded buffer is full";
    case HF_ETIMEDOUT: return "timed out";
    case HF_ECLOSED: return "closed";
    case HF_EPROTO: return "protocol violation";
    case HF_ESTATE: return "operation not valid in the current state";
    case HF_ESTORE: return "durable store failed";
    case HF_ECORRUPT: return "corrupt or foreign data";
    case HF_EIO: return "I/O error";
    case HF_ENOTFOUND: return "not found";
    case HF_EUNAVAIL: return "unavailable";
    case HF_ESUPERSEDED: return "superseded by a later abort";
    case HF_EUNKNOWN: return "outcome unknown";
    }
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "unknown error (%d)", (int)err);
    return buf;
}

const char *
hf_errname(hf_err_t err)
{
    switch (err) {
    case HF_OK: return "HF_OK";
    case HF_EINVAL: return "HF_EINVAL";
    case HF_ENOMEM: return "HF_ENOMEM";
    case HF_EFULL: return "HF_EFULL";
    case HF_ETIMEDOUT: return "HF_ETIMEDOUT";
    case HF_ECLOSED: return "HF_ECLOSED";
    case HF_EPROTO: return "HF_EPROTO";
    case HF_ESTATE: return "HF_ESTATE";
    case HF_ESTORE: return "HF_ESTORE";
    case HF_ECORRUPT: return "HF_ECORRUPT";
    case HF_EIO: return "HF_EIO";
    case HF_ENOTFOUND: return "HF_ENOTFOUND";
    case HF_EUNAVAIL: return "HF_EUNAVAIL";
    case HF_ESUPERSEDED: return "HF_ESUPERSEDED";
    case HF_EUNKNOWN: return "HF_EUNKNOWN";
    }
    return "HF_E?";
}
