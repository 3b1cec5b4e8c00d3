/* hf_backup.h - hot backup and verified restore of an aggregator's store.
 *
 * A backup is a directory holding a compacted copy of the store's LMDB file
 * (data.mdb) and a manifest (MANIFEST) with its size, a 64-bit checksum and
 * what it holds (engines, records per lane). It is made from a running
 * store: LMDB's copy reads one snapshot (a read transaction) while writers
 * go on, so the copy holds exactly what was committed when it began.
 *
 * Restore checks the backup before it touches anything: the manifest, the
 * file's size and checksum, then the store itself (opens, right format,
 * every record decodes, the counts match the manifest), and only then
 * installs it: written under a temporary name, synced, renamed. A store
 * already at the destination is never overwritten.
 *
 * Both run outside the aggregator (the CLI calls them on the aggregator's
 * host: LMDB lets another process read a live environment).
 */
#ifndef HF_BACKUP_H_INCLUDED
#define HF_BACKUP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "hf_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Progress: bytes written so far, and the expected total (an estimate:
 * the live bytes before compaction; 0 = unknown). */
typedef void(hf_backup_progress_fn)(uint64_t done, uint64_t total, void *arg);

typedef struct {
    uint64_t bytes;                 /* size of the copied data.mdb          */
    uint64_t engines;               /* engines in it                        */
    uint64_t records[2];            /* records per lane (control, data)     */
    uint64_t checksum;              /* FNV-1a 64 of data.mdb                */
} hf_backup_info_t;

/* Copy the store in data_dir (which must hold one) to dest_dir (created;
 * must not already hold a backup or a store). progress may be NULL.
 * HF_ENOTFOUND no store in data_dir; HF_ECORRUPT the store is foreign or
 * damaged; HF_EINVAL dest_dir holds something; HF_EIO (logged); HF_ESTORE. */
HF_EXPORT hf_err_t hf_backup_make(const char *data_dir, const char *dest_dir,
                                  hf_backup_progress_fn *progress, void *arg,
                                  hf_backup_info_t *info);

/* Check a backup: manifest, size, checksum, then open and walk it.
 * HF_OK and *info; HF_ECORRUPT with the reason logged; HF_ENOTFOUND. */
HF_EXPORT hf_err_t hf_backup_verify(const char *backup_dir, hf_backup_info_t *info);

/* Verify, then install the backup as the store of data_dir (created if
 * missing; must not hold a store). HF_EINVAL data_dir holds a store. */
HF_EXPORT hf_err_t hf_backup_restore(const char *backup_dir, const char *data_dir,
                                     hf_backup_info_t *info);

#ifdef __cplusplus
}
#endif
#endif
