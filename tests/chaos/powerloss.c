/*
 * powerloss.c - an LD_PRELOAD shim that simulates a power loss: every byte
 * written to a watched file since that file's last fsync/fdatasync vanishes.
 *
 *   LD_PRELOAD=libhf_powerloss.so HF_POWERLOSS_MATCH=/path/of/spool \
 *       holdfast-engine ...
 *   kill -USR2 PID       # power loss now; or HF_POWERLOSS_AFTER_MS=N
 *
 * Model. Writes to a file sit in the page cache until the file is synced;
 * a power loss keeps what was synced and (in this model, the harshest
 * outcome at write granularity) none of what was not. The shim wraps
 * write/pwrite/pwrite64/writev/pwritev/pwritev2: before each write to a
 * watched file it reads the bytes about to be overwritten (its own O_RDWR
 * descriptor on the file) and keeps them, with the file's size at the first
 * unsynced write. fsync/fdatasync on any descriptor of the file (and
 * sync/syncfs) drop what was kept: those bytes are durable. A write on a
 * descriptor opened O_SYNC/O_DSYNC is durable when it returns (LMDB writes
 * its meta pages that way) and is not kept. At the power loss the shim
 * freezes the process (SIGSTOP, from a forked child), writes every kept
 * pre-image back, newest first, truncates the file to its size at the last
 * sync, and SIGKILLs it (status 137): no atexit handler, no flush, no
 * further write, and no thread of it ever sees a reverted page. The process's view and the disk's are then what a machine
 * coming back from a power cut would see (the page cache is the disk for
 * every later reader).
 *
 * Design notes:
 * - Watched files: regular files whose path contains HF_POWERLOSS_MATCH
 *   (default "data.mdb"), identified by (st_dev, st_ino), so several
 *   descriptors of one file share one log, and a sync on any of them counts.
 * - The trigger runs on a thread of the shim: SIGUSR2's handler only writes
 *   a byte to a pipe (async-signal-safe); the thread takes the shim's lock,
 *   which every wrapped write holds from its pre-image read to the end of
 *   the real write, so the loss falls between two writes, never inside one.
 *   Any thread that writes afterwards blocks on the lock until _exit.
 * - Bounded: at most S_MAX_FILES watched files and S_MAX_KEPT bytes of
 *   pre-images; past that the shim aborts loudly (a test misconfigured),
 *   never silently forgets.
 * - msync is not modelled: the spool and the store do not use MDB_WRITEMAP
 *   (checked: dispatcher/src/hf_spool.c, aggregator/src/hf_store.c), so LMDB
 *   never writes data through a mapping.
 * - HF_POWERLOSS_MODE=sync: the trigger only arms the shim; the power goes
 *   at the next fsync/fdatasync of a watched file that has unsynced writes,
 *   instead of that sync: the moment a commit's pages are written and not
 *   yet durable, when most is in flight (or 500 ms after the trigger, if no
 *   such sync comes). The default ("now") loses power at the trigger.
 * - HF_POWERLOSS_LOG=1 prints what the loss reverted, to stderr.
 *
 * Invariants: the real write happens only after its pre-image is kept; a
 * sync drops a file's log only after the real sync returned 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The wrappers must be visible to interpose (the build hides by default). */
#define S_PUBLIC __attribute__((visibility("default")))

#define S_MAX_FILES 32
#define S_MAX_KEPT (512u * 1024u * 1024u) /* bytes of pre-images in all files */

typedef struct s_pre {
    struct s_pre *next; /* newer first */
    off_t off;          /* bytes */
    size_t len;         /* bytes kept (may be short: beyond the old EOF) */
    unsigned char data[];
} s_pre_t;

typedef struct {
    dev_t dev;
    ino_t ino;
    int watched;     /* path matched */
    int fd;          /* our O_RDWR descriptor, -1 if not watched */
    off_t sync_size; /* size at the first unsynced write, -1: clean */
    s_pre_t *pres;   /* newest first */
    size_t nbytes;   /* bytes kept */
    char path[256];
} s_file_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_file_t s_files[S_MAX_FILES];
static int s_nfiles;
static size_t s_kept;
static int s_pipe[2] = {-1, -1};
static const char *s_match = "data.mdb";
static int s_log;
static int s_sync_mode;            /* HF_POWERLOSS_MODE=sync */
static volatile sig_atomic_t s_armed; /* sync mode: lose power at the next sync */

static ssize_t (*r_write)(int, const void *, size_t);
static ssize_t (*r_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*r_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*r_writev)(int, const struct iovec *, int);
static ssize_t (*r_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*r_pwritev2)(int, const struct iovec *, int, off_t, int);
static int (*r_fsync)(int);
static int (*r_fdatasync)(int);
static void (*r_sync)(void);
static int (*r_syncfs)(int);

static void
s_die(const char *msg)
{
    fprintf(stderr, "powerloss: %s\n", msg);
    abort();
}

static void
s_resolve(void)
{
    r_write = dlsym(RTLD_NEXT, "write");
    r_pwrite = dlsym(RTLD_NEXT, "pwrite");
    r_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    r_writev = dlsym(RTLD_NEXT, "writev");
    r_pwritev = dlsym(RTLD_NEXT, "pwritev");
    r_pwritev2 = dlsym(RTLD_NEXT, "pwritev2");
    r_fsync = dlsym(RTLD_NEXT, "fsync");
    r_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    r_sync = dlsym(RTLD_NEXT, "sync");
    r_syncfs = dlsym(RTLD_NEXT, "syncfs");
    if (!r_write || !r_pwrite || !r_writev || !r_fsync || !r_fdatasync)
        s_die("cannot resolve libc's write/sync functions");
}

/* The file behind FD if it is watched (lock held), else NULL. */
static s_file_t *
s_file_of(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return NULL;
    for (int i = 0; i < s_nfiles; i++)
        if (s_files[i].dev == st.st_dev && s_files[i].ino == st.st_ino)
            return s_files[i].watched ? &s_files[i] : NULL;
    if (s_nfiles == S_MAX_FILES)
        s_die("too many files (raise S_MAX_FILES)");
    s_file_t *f = &s_files[s_nfiles++];
    memset(f, 0, sizeof *f);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->fd = -1;
    f->sync_size = -1;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, f->path, sizeof f->path - 1);
    if (n <= 0)
        return NULL;
    f->path[n] = '\0';
    if (!strstr(f->path, s_match))
        return NULL;
    f->fd = open(f->path, O_RDWR | O_CLOEXEC);
    if (f->fd < 0)
        s_die("cannot open a watched file for its pre-images");
    f->watched = 1;
    if (s_log)
        fprintf(stderr, "powerloss: watching %s\n", f->path);
    return f;
}

static int
s_sync_fd(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & (O_SYNC | O_DSYNC));
}

/* Keep the LEN bytes at OFF of F before they are overwritten (lock held). */
static void
s_keep(s_file_t *f, off_t off, size_t len)
{
    if (len == 0)
        return;
    if (f->sync_size < 0) {
        struct stat st;
        if (fstat(f->fd, &st) != 0)
            s_die("fstat failed");
        f->sync_size = st.st_size;
    }
    if (s_kept + len > S_MAX_KEPT)
        s_die("more than S_MAX_KEPT bytes written without a sync");
    s_pre_t *p = malloc(sizeof *p + len);
    if (!p)
        s_die("out of memory");
    ssize_t n = pread(f->fd, p->data, len, off);
    p->off = off;
    p->len = n > 0 ? (size_t)n : 0;
    p->next = f->pres;
    f->pres = p;
    f->nbytes += len;
    s_kept += len;
}

static void
s_clean(s_file_t *f)
{
    while (f->pres) {
        s_pre_t *p = f->pres;
        f->pres = p->next;
        free(p);
    }
    s_kept -= f->nbytes;
    f->nbytes = 0;
    f->sync_size = -1;
}

/* stderr without stdio: after fork, another thread may have held stderr's
 * lock, and the child would wait for it forever. */
__attribute__((format(printf, 1, 2))) static void
s_say(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!r_write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Revert every unsynced write of every watched file. */
static void
s_revert(const char *why)
{
    for (int i = 0; i < s_nfiles; i++) {
        s_file_t *f = &s_files[i];
        if (!f->watched || f->sync_size < 0)
            continue;
        size_t nw = 0;
        for (s_pre_t *p = f->pres; p; p = p->next, nw++)
            if (p->len && r_pwrite(f->fd, p->data, p->len, p->off) != (ssize_t)p->len)
                s_die("cannot restore a pre-image");
        if (ftruncate(f->fd, f->sync_size) != 0)
            s_die("cannot truncate to the synced size");
        if (s_log)
            s_say("powerloss: %s: %s: %zu unsynced writes (%zu bytes) reverted, size %lld\n",
                  why, f->path, nw, f->nbytes, (long long)f->sync_size);
    }
}

/* Are all threads of pid stopped (state T or t)? */
static int
s_all_stopped(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int all = 1;
    char buf[8192];
    long n;
    /* getdents64 via the raw syscall keeps us off opendir's malloc */
    while (all && (n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; all && off < n;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            off += d->reclen;
            if (d->name[0] == '.')
                continue;
            char path[128], st[512];
            snprintf(path, sizeof path, "%s/%s/stat", dir, d->name);
            int sf = open(path, O_RDONLY | O_CLOEXEC);
            if (sf < 0)
                continue; /* the thread is gone */
            ssize_t len = read(sf, st, sizeof st - 1);
            close(sf);
            if (len <= 0)
                continue;
            st[len] = 0;
            const char *rp = strrchr(st, ')');
            all = rp && rp[1] == ' ' && (rp[2] == 'T' || rp[2] == 't');
        }
    }
    close(fd);
    return all;
}

/* The power loss (lock held). Reverting the files while the process's
 * other threads run lets them read reverted pages through their LMDB maps
 * (a segfault or an LMDB assertion instead of a clean loss, seen under
 * load). So the process is frozen first: a child (a copy of this thread,
 * with the same descriptors and pre-images) stops the whole process with
 * SIGSTOP, waits until every thread is stopped, reverts, and kills it with
 * SIGKILL: exit status 137, after the revert, as a machine that lost
 * power comes back to a disk that has it. */
static void
s_lose_power(const char *why)
{
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        if (kill(parent, SIGSTOP) != 0)
            _exit(1);
        for (int i = 0; i < 2000 && !s_all_stopped(parent); i++)
            usleep(1000);
        s_revert(why);
        if (s_log)
            s_say("powerloss: %s: power lost, exit 137\n", why);
        kill(parent, SIGKILL);
        _exit(0);
    }
    if (child < 0) { /* no child: revert in place, the old way */
        s_revert(why);
        if (s_log)
            s_say("powerloss: %s: power lost, exit 137\n", why);
        _exit(137);
    }
    for (;;)
        pause(); /* SIGSTOP, then SIGKILL, from the child */
}

static void
s_on_signal(int sig)
{
    (void)sig;
    int e = errno;
    if (s_pipe[1] >= 0) {
        ssize_t n = r_write(s_pipe[1], "x", 1);
        (void)n;
    }
    errno = e;
}

static void *
s_trigger(void *arg)
{
    long after_ms = (long)(intptr_t)arg;
    struct pollfd pfd = {.fd = s_pipe[0], .events = POLLIN};
    int rc;
    do {
        rc = poll(&pfd, 1, after_ms > 0 ? (int)after_ms : -1);
    } while (rc < 0 && errno == EINTR);
    const char *why = rc == 0 ? "timer" : "SIGUSR2";
    if (s_sync_mode) {
        char c;
        if (rc > 0 && read(s_pipe[0], &c, 1) < 0)
            s_die("read of the trigger pipe failed");
        s_armed = 1;
        do {
            rc = poll(&pfd, 1, 500);
        } while (rc < 0 && errno == EINTR);
        why = "armed, no sync within 500 ms";
    }
    pthread_mutex_lock(&s_lock);
    s_lose_power(why);
    return NULL;
}

__attribute__((constructor)) static void
s_init(void)
{
    s_resolve();
    const char *m = getenv("HF_POWERLOSS_MATCH");
    if (m && *m)
        s_match = m;
    s_log = getenv("HF_POWERLOSS_LOG") != NULL;
    const char *mode = getenv("HF_POWERLOSS_MODE");
    s_sync_mode = mode && strcmp(mode, "sync") == 0;
    const char *a = getenv("HF_POWERLOSS_AFTER_MS");
    long after_ms = a ? strtol(a, NULL, 10) : 0;
    if (pipe2(s_pipe, O_CLOEXEC) != 0)
        s_die("pipe failed");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    /* The thread takes no signal but ours' byte: block everything in it. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, s_trigger, (void *)(intptr_t)after_ms) != 0)
        s_die("pthread_create failed");
    pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static size_t
s_iov_len(const struct iovec *iov, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

/* Keep the pre-image of a write of LEN bytes at OFF (-1: the descriptor's
 * offset, or the end with O_APPEND) to FD. Lock held. */
static void
s_before(int fd, off_t off, size_t len)
{
    s_file_t *f = s_file_of(fd);
    if (!f || s_sync_fd(fd))
        return;
    if (off < 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0 && (fl & O_APPEND)) {
            struct stat st;
            off = fstat(fd, &st) == 0 ? st.st_size : 0;
        } else {
            off = lseek(fd, 0, SEEK_CUR);
        }
        if (off < 0)
            return; /* not seekable: not a file we model */
    }
    s_keep(f, off, len);
}

S_PUBLIC ssize_t
write(int fd, const void *buf, size_t n)
{
    if (!r_write)
        s_resolve();
    if (fd <= 2 || fd == s_pipe[1])
        return r_write(fd, buf, n); /* stdio: never a watched file */
    pthread_mutex_lock(&s_lock);
    s_before(fd, -1, n);
    ssize_t rc = r_write(fd, buf, n);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    pthread_mutex_lock(&s_lock);
    s_before(fd, off, n);
    ssize_t rc = r_pwrite(fd, buf, n, off);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC ssize_t
pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    pthread_mutex_lock(&s_lock);
    s_before(fd, off, n);
    ssize_t rc = (r_pwrite64 ? r_pwrite64 : r_pwrite)(fd, buf, n, off);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
    pthread_mutex_lock(&s_lock);
    s_before(fd, -1, s_iov_len(iov, cnt));
    ssize_t rc = r_writev(fd, iov, cnt);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    pthread_mutex_lock(&s_lock);
    s_before(fd, off, s_iov_len(iov, cnt));
    ssize_t rc = r_pwritev(fd, iov, cnt, off);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC ssize_t
pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
    pthread_mutex_lock(&s_lock);
    s_before(fd, off, s_iov_len(iov, cnt));
    ssize_t rc = r_pwritev2(fd, iov, cnt, off, flags);
    pthread_mutex_unlock(&s_lock);
    return rc;
}

static int
s_synced(int fd, int rc)
{
    if (rc == 0) {
        s_file_t *f = s_file_of(fd);
        if (f)
            s_clean(f);
    }
    return rc;
}

/* Sync mode, armed: the power goes instead of this sync (lock held). */
static void
s_maybe_lose(int fd)
{
    if (!s_armed)
        return;
    s_file_t *f = s_file_of(fd);
    if (f && f->sync_size >= 0)
        s_lose_power("armed, at a sync with unsynced writes");
}

S_PUBLIC int
fsync(int fd)
{
    pthread_mutex_lock(&s_lock);
    s_maybe_lose(fd);
    int rc = s_synced(fd, r_fsync(fd));
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC int
fdatasync(int fd)
{
    pthread_mutex_lock(&s_lock);
    s_maybe_lose(fd);
    int rc = s_synced(fd, r_fdatasync(fd));
    pthread_mutex_unlock(&s_lock);
    return rc;
}

S_PUBLIC void
sync(void)
{
    pthread_mutex_lock(&s_lock);
    r_sync();
    for (int i = 0; i < s_nfiles; i++)
        if (s_files[i].watched)
            s_clean(&s_files[i]);
    pthread_mutex_unlock(&s_lock);
}

S_PUBLIC int
syncfs(int fd)
{
    pthread_mutex_lock(&s_lock);
    int rc = r_syncfs(fd);
    if (rc == 0)
        for (int i = 0; i < s_nfiles; i++)
            if (s_files[i].watched)
                s_clean(&s_files[i]);
    pthread_mutex_unlock(&s_lock);
    return rc;
}
