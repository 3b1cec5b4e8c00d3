/* hf_backup.c - hot backup and verified restore (see hf_backup.h).
 *
 * Design notes:
 * - The copy is LMDB's own (mdb_env_copyfd2 with compaction, through
 *   hf_store_copy_to_fd): one read transaction, so a consistent snapshot,
 *   and writers are never blocked. It writes into a pipe; a thread here
 *   reads the pipe, writes the file, checksums and reports progress, so the
 *   copy needs no second pass over the file.
 * - The manifest is written last and the file renamed into place only once
 *   synced: a backup directory without MANIFEST is unfinished, one whose
 *   data.mdb does not match its manifest is damaged. Both are refused.
 * - Verification opens the copy read-only (nothing in it changes, so its
 *   checksum stays valid) and walks every engine's records: every one must
 *   decode, and the counts must equal the manifest's.
 * - Restore copies the file (never moves it: the backup stays a backup),
 *   under a temporary name, syncs, renames, syncs the directory.
 *
 * Invariants: a destination store is never overwritten; a file we write is
 * either complete and synced or under a temporary name.
 */
#include "hf_backup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_fs.h"
#include "hf_log.h"
#include "hf_store.h"

#define S_LOG "backup"
#define S_CHUNK (1u << 20) /* bytes per read/write */
#define S_MANIFEST "MANIFEST"
#define S_MANIFEST_MAGIC "holdfast-backup 1"

static uint64_t
s_fnv(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define S_FNV_INIT 0xcbf29ce484222325ull

static hf_err_t
s_path(char *out, size_t cap, const char *dir, const char *name)
{
    return snprintf(out, cap, "%s/%s", dir, name) < (int)cap ? HF_OK : HF_EINVAL;
}

static bool
s_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static hf_err_t
s_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return HF_EIO;
    int r = fsync(fd);
    close(fd);
    return r == 0 ? HF_OK : HF_EIO;
}

/* ---- counting what a store holds ------------------------------------------ */

typedef struct {
    hf_backup_info_t *info;
    hf_store_t *store;
    hf_err_t rc;
} s_count_ctx_t;

static int
s_count_rec(const hf_store_export_rec_t *x, void *arg)
{
    hf_backup_info_t *info = arg;
    if (x->rec.lane < 2)
        info->records[x->rec.lane]++;
    return 0;
}

static int
s_count_engine(const hf_store_engine_t *e, void *arg)
{
    s_count_ctx_t *c = arg;
    c->info->engines++;
    hf_store_export_opts_t o = {0, -1, 1000000, 1000000};
    hf_store_pos_t pos;
    memset(&pos, 0, sizeof pos);
    bool done = false;
    while (!done) {
        hf_err_t rc = hf_store_export(c->store, e->engine, &o, &pos, s_count_rec, c->info, NULL,
                                      &done);
        if (rc == HF_ENOTFOUND)
            break;
        if (rc != HF_OK) {
            c->rc = rc; /* HF_ECORRUPT: a record that does not decode */
            return 1;
        }
    }
    return 0;
}

/* Walk every record of a store: counts into *info (bytes/checksum kept). */
static hf_err_t
s_count(hf_store_t *store, hf_backup_info_t *info)
{
    info->engines = 0;
    info->records[0] = info->records[1] = 0;
    s_count_ctx_t c = {info, store, HF_OK};
    hf_err_t rc = hf_store_engines_each(store, s_count_engine, &c);
    return rc != HF_OK ? rc : c.rc;
}

/* ---- the manifest ---------------------------------------------------------------- */

static hf_err_t
s_manifest_write(const char *dir, const hf_backup_info_t *info)
{
    char path[4096], tmp[4200];
    if (s_path(path, sizeof path, dir, S_MANIFEST) != HF_OK)
        return HF_EINVAL;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return HF_EIO;
    int bad = fprintf(f,
                      "%s\nbytes %" PRIu64 "\nchecksum %016" PRIx64 "\nengines %" PRIu64
                      "\nrecords_control %" PRIu64 "\nrecords_data %" PRIu64 "\n",
                      S_MANIFEST_MAGIC, info->bytes, info->checksum, info->engines,
                      info->records[0], info->records[1]) < 0;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        return HF_EIO;
    }
    return s_fsync_dir(dir);
}

static hf_err_t
s_manifest_read(const char *dir, hf_backup_info_t *info)
{
    char path[4096], magic[64];
    if (s_path(path, sizeof path, dir, S_MANIFEST) != HF_OK)
        return HF_EINVAL;
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? HF_ENOTFOUND : HF_EIO;
    memset(info, 0, sizeof *info);
    int n = fscanf(f,
                   "%63[^\n]\nbytes %" SCNu64 "\nchecksum %" SCNx64 "\nengines %" SCNu64
                   "\nrecords_control %" SCNu64 "\nrecords_data %" SCNu64 "\n",
                   magic, &info->bytes, &info->checksum, &info->engines, &info->records[0],
                   &info->records[1]);
    fclose(f);
    if (n != 6 || strcmp(magic, S_MANIFEST_MAGIC) != 0)
        return HF_ECORRUPT;
    return HF_OK;
}

/* ---- making a backup ----------------------------------------------------------- */

typedef struct {
    int in;                     /* the pipe's read end                   */
    int out;                    /* the file                              */
    uint64_t bytes;
    uint64_t checksum;
    uint64_t total;             /* estimate, for progress                */
    hf_backup_progress_fn *progress;
    void *arg;
    hf_err_t rc;
} s_pump_t;

static void *
s_pump(void *arg)
{
    s_pump_t *p = arg;
    uint8_t *buf = malloc(S_CHUNK);
    if (!buf) {
        p->rc = HF_ENOMEM;
        /* keep draining so the copier never blocks on a full pipe */
    }
    uint8_t sink[4096];
    for (;;) {
        ssize_t n = read(p->in, buf ? buf : sink, buf ? S_CHUNK : sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && p->rc == HF_OK)
                p->rc = HF_EIO;
            break;
        }
        if (p->rc != HF_OK)
            continue;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(p->out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                hf_log_error(S_LOG, "write: %s", strerror(errno));
                p->rc = HF_EIO;
                break;
            }
            off += w;
        }
        p->checksum = s_fnv(p->checksum, buf, (size_t)n);
        p->bytes += (uint64_t)n;
        if (p->progress)
            p->progress(p->bytes, p->total, p->arg);
    }
    free(buf);
    return NULL;
}

hf_err_t
hf_backup_make(const char *data_dir, const char *dest_dir, hf_backup_progress_fn *progress,
               void *arg, hf_backup_info_t *info)
{
    hf_err_t rc = HF_OK;
    hf_store_t *store = NULL;
    int pfd[2] = {-1, -1};
    int out = -1;
    bool pumping = false;
    pthread_t th;
    char src[4096], dst[4096], tmp[4200];
    hf_backup_info_t bi;
    memset(&bi, 0, sizeof bi);
    if (!data_dir || !dest_dir || s_path(src, sizeof src, data_dir, "data.mdb") != HF_OK ||
        s_path(dst, sizeof dst, dest_dir, "data.mdb") != HF_OK)
        return HF_EINVAL;
    snprintf(tmp, sizeof tmp, "%s.partial", dst);
    if (!s_exists(src)) {
        hf_log_error(S_LOG, "no store in %s", data_dir);
        return HF_ENOTFOUND;
    }
    int e = hf_mkdirs(dest_dir);
    if (e != 0) {
        hf_log_error(S_LOG, "mkdir %s: %s", dest_dir, strerror(e));
        return HF_EIO;
    }
    char man[4096];
    s_path(man, sizeof man, dest_dir, S_MANIFEST);
    if (s_exists(dst) || s_exists(man)) {
        hf_log_error(S_LOG, "%s already holds a store or a backup: not overwritten", dest_dir);
        return HF_EINVAL;
    }
    hf_store_opts_t so = hf_store_opts_default();
    so.readonly = true;
    store = hf_store_open(data_dir, &so, &rc);
    if (!store)
        return rc;
    out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || pipe(pfd) != 0) {
        hf_log_error(S_LOG, "%s: %s", tmp, strerror(errno));
        rc = HF_EIO;
        goto fail;
    }
    s_pump_t p = {pfd[0], out, 0, S_FNV_INIT, hf_store_live_bytes(store), progress, arg, HF_OK};
    if (pthread_create(&th, NULL, s_pump, &p) != 0) {
        rc = HF_EIO;
        goto fail;
    }
    pumping = true;
    rc = hf_store_copy_to_fd(store, pfd[1]);
    close(pfd[1]);
    pfd[1] = -1;
    pthread_join(th, NULL);
    pumping = false;
    if (rc == HF_OK)
        rc = p.rc;
    if (rc != HF_OK)
        goto fail;
    if (fsync(out) != 0 || close(out) != 0) {
        out = -1;
        rc = HF_EIO;
        goto fail;
    }
    out = -1;
    bi.bytes = p.bytes;
    bi.checksum = p.checksum;
    /* count what the snapshot holds, from the copy itself */
    hf_store_close(&store);
    if (rename(tmp, dst) != 0) {
        rc = HF_EIO;
        goto fail;
    }
    store = hf_store_open(dest_dir, &so, &rc);
    if (!store)
        goto fail;
    rc = s_count(store, &bi);
    hf_store_close(&store);
    if (rc != HF_OK)
        goto fail;
    rc = s_manifest_write(dest_dir, &bi);
    if (rc != HF_OK)
        goto fail;
    hf_log_info(S_LOG, "backup %s -> %s bytes=%" PRIu64 " engines=%" PRIu64
                       " records=%" PRIu64 "/%" PRIu64 " checksum=%016" PRIx64,
                data_dir, dest_dir, bi.bytes, bi.engines, bi.records[0], bi.records[1],
                bi.checksum);
    if (info)
        *info = bi;
    return HF_OK;

fail:
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (pumping)
        pthread_join(th, NULL);
    if (pfd[0] >= 0)
        close(pfd[0]);
    if (out >= 0)
        close(out);
    hf_store_close(&store);
    remove(tmp);
    remove(dst); /* no manifest: an unfinished backup is not left looking whole */
    hf_log_error(S_LOG, "backup %s -> %s failed err=%s", data_dir, dest_dir, hf_errname(rc));
    return rc;
}

/* ---- verify and restore ---------------------------------------------------------- */

/* Size and checksum of a file, and optionally a copy of it to fd_out. */
static hf_err_t
s_scan_file(const char *path, int fd_out, uint64_t *bytes, uint64_t *sum)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? HF_ENOTFOUND : HF_EIO;
    uint8_t *buf = malloc(S_CHUNK);
    hf_err_t rc = buf ? HF_OK : HF_ENOMEM;
    *bytes = 0;
    *sum = S_FNV_INIT;
    while (rc == HF_OK) {
        ssize_t n = read(fd, buf, S_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = HF_EIO;
        if (n <= 0)
            break;
        *sum = s_fnv(*sum, buf, (size_t)n);
        *bytes += (uint64_t)n;
        for (ssize_t off = 0; fd_out >= 0 && off < n;) {
            ssize_t w = write(fd_out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = HF_EIO;
                break;
            }
            off += w;
        }
    }
    free(buf);
    close(fd);
    return rc;
}

hf_err_t
hf_backup_verify(const char *backup_dir, hf_backup_info_t *info)
{
    hf_backup_info_t want, got;
    char path[4096];
    if (!backup_dir || s_path(path, sizeof path, backup_dir, "data.mdb") != HF_OK)
        return HF_EINVAL;
    hf_err_t rc = s_manifest_read(backup_dir, &want);
    if (rc != HF_OK) {
        hf_log_error(S_LOG, "%s: %s", backup_dir,
                     rc == HF_ENOTFOUND ? "no MANIFEST (not a backup, or an unfinished one)"
                                        : "MANIFEST unreadable or damaged");
        return rc == HF_ENOTFOUND ? HF_ECORRUPT : rc;
    }
    memset(&got, 0, sizeof got);
    rc = s_scan_file(path, -1, &got.bytes, &got.checksum);
    if (rc != HF_OK) {
        hf_log_error(S_LOG, "%s: data.mdb %s", backup_dir,
                     rc == HF_ENOTFOUND ? "missing" : "unreadable");
        return rc == HF_ENOTFOUND ? HF_ECORRUPT : rc;
    }
    if (got.bytes != want.bytes || got.checksum != want.checksum) {
        hf_log_error(S_LOG, "%s: data.mdb is %" PRIu64 " bytes, checksum %016" PRIx64
                            "; the manifest says %" PRIu64 " bytes, %016" PRIx64 ": damaged",
                     backup_dir, got.bytes, got.checksum, want.bytes, want.checksum);
        return HF_ECORRUPT;
    }
    hf_store_opts_t so = hf_store_opts_default();
    so.readonly = true;
    hf_store_t *store = hf_store_open(backup_dir, &so, &rc);
    if (!store)
        return rc == HF_ENOTFOUND ? HF_ECORRUPT : rc;
    rc = s_count(store, &got);
    hf_store_close(&store);
    if (rc != HF_OK)
        return rc;
    if (got.engines != want.engines || got.records[0] != want.records[0] ||
        got.records[1] != want.records[1]) {
        hf_log_error(S_LOG, "%s: holds %" PRIu64 " engines, %" PRIu64 "/%" PRIu64
                            " records; the manifest says %" PRIu64 ", %" PRIu64 "/%" PRIu64,
                     backup_dir, got.engines, got.records[0], got.records[1], want.engines,
                     want.records[0], want.records[1]);
        return HF_ECORRUPT;
    }
    if (info)
        *info = want;
    return HF_OK;
}

hf_err_t
hf_backup_restore(const char *backup_dir, const char *data_dir, hf_backup_info_t *info)
{
    char src[4096], dst[4096], tmp[4200];
    if (!backup_dir || !data_dir || s_path(src, sizeof src, backup_dir, "data.mdb") != HF_OK ||
        s_path(dst, sizeof dst, data_dir, "data.mdb") != HF_OK)
        return HF_EINVAL;
    snprintf(tmp, sizeof tmp, "%s.restoring", dst);
    hf_backup_info_t bi;
    hf_err_t rc = hf_backup_verify(backup_dir, &bi);
    if (rc != HF_OK)
        return rc;
    int e = hf_mkdirs(data_dir);
    if (e != 0) {
        hf_log_error(S_LOG, "mkdir %s: %s", data_dir, strerror(e));
        return HF_EIO;
    }
    if (s_exists(dst)) {
        hf_log_error(S_LOG, "%s already holds a store: not overwritten (move it away first)",
                     data_dir);
        return HF_EINVAL;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0)
        return HF_EIO;
    uint64_t bytes = 0, sum = 0;
    rc = s_scan_file(src, out, &bytes, &sum);
    if (rc == HF_OK && (bytes != bi.bytes || sum != bi.checksum))
        rc = HF_ECORRUPT; /* changed under us since the verification */
    if (rc == HF_OK && fsync(out) != 0)
        rc = HF_EIO;
    if (close(out) != 0 && rc == HF_OK)
        rc = HF_EIO;
    if (rc == HF_OK && rename(tmp, dst) != 0)
        rc = HF_EIO;
    if (rc == HF_OK)
        rc = s_fsync_dir(data_dir);
    if (rc != HF_OK) {
        remove(tmp);
        hf_log_error(S_LOG, "restore %s -> %s failed err=%s", backup_dir, data_dir,
                     hf_errname(rc));
        return rc;
    }
    hf_log_info(S_LOG, "restored %s -> %s engines=%" PRIu64 " records=%" PRIu64 "/%" PRIu64,
                backup_dir, data_dir, bi.engines, bi.records[0], bi.records[1]);
    if (info)
        *info = bi;
    return HF_OK;
}
