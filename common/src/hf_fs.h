/* hf_fs.h - (private) small file-system and LMDB helpers shared by the spool, the
 * store and the backup (one copy of each, not three). */
#ifndef HF_FS_H_INCLUDED
#define HF_FS_H_INCLUDED

#include <lmdb.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 0 if dir is a directory, else an errno value (ENOTDIR, ENOENT, ...). */
int hf_isdir(const char *dir);
/* mkdir -p, mode 0700 for the parts it creates; 0 once dir is a directory,
 * else an errno value. */
int hf_mkdirs(const char *dir);
/* Pages on LMDB's free list as seen by txn (read its free database, dbi 0:
 * each value is an ID list whose first word is its length, as
 * `mdb_stat -f` reads it). 0 if it cannot be read. */
size_t hf_lmdb_free_pages(MDB_txn *txn);

#ifdef __cplusplus
}
#endif

#endif
