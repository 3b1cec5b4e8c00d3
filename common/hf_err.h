/* hf_err.h - the one project-wide error enum.
 *
 * Every fallible Holdfast function returns hf_err_t. Numbers are stable and
 * append-only: they appear on the wire and in logs. Foreign codes (errno,
 * MDB_*, zmq) are mapped where they enter Holdfast and never leak out.
 */
#ifndef HF_ERR_H_INCLUDED
#define HF_ERR_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HF_EXPORT __attribute__((visibility("default")))
#else
#define HF_EXPORT
#endif

typedef enum {
    HF_OK = 0,
    HF_EINVAL = 1,    /* caller passed a bad argument or config          */
    HF_ENOMEM = 2,    /* allocation failed                               */
    HF_EFULL = 3,     /* bounded queue/spool at capacity: backpressure   */
    HF_ETIMEDOUT = 4, /* deadline passed                                 */
    HF_ECLOSED = 5,   /* object or peer closed                           */
    HF_EPROTO = 6,    /* peer sent something the protocol forbids        */
    HF_ESTATE = 7,    /* call not legal in the object's current state    */
    HF_ESTORE = 8,    /* durable store failed; detail was logged         */
    HF_ECORRUPT = 9,  /* checksum/version/length check failed            */
    HF_EIO = 10,      /* operating-system I/O error; detail was logged   */
    HF_ENOTFOUND = 11,/* no such engine, run, key or file                */
    HF_EUNAVAIL = 12, /* target exists but is not reachable now          */
    HF_ESUPERSEDED = 13, /* a command was cancelled by a later abort      */
    HF_EUNKNOWN = 14, /* outcome unknown: the peer went away before it answered */
} hf_err_t;

/* Human-readable message; never NULL ("unknown error (N)" for others). */
HF_EXPORT const char *hf_strerror(hf_err_t err);
/* Symbolic name, e.g. "HF_EFULL"; never NULL. */
HF_EXPORT const char *hf_errname(hf_err_t err);

#ifdef __cplusplus
}
#endif
#endif
