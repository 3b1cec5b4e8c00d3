/* hf_fs.c - see hf_fs.h. */
#include "hf_fs.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

int
hf_isdir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno;
    return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

int
hf_mkdirs(const char *dir)
{
    char path[4096];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return ENAMETOOLONG;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != 0)
            continue;
        char c = path[i];
        path[i] = 0;
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return errno;
        path[i] = c;
    }
    return hf_isdir(dir);
}

size_t
hf_lmdb_free_pages(MDB_txn *txn)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t free_pages = 0;
    int mrc = mdb_cursor_open(txn, 0, &cur);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        if (v.mv_size >= sizeof(size_t)) {
            size_t n;
            memcpy(&n, v.mv_data, sizeof n);
            free_pages += n;
        }
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur)
        mdb_cursor_close(cur);
    return free_pages;
}
