/* test_backup.c - hot backup during ingestion, verification, restore, and
 * the refusals (damaged, truncated, unfinished copies; an existing store). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_backup.h"
#include "hf_store.h"

#define EPOCH 0x1111222233334444ull
#define T0 1700000000000000000ull

static char s_root[64];

static void
s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/hf-backup-test-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
}

static void
s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(backup, .init = s_setup, .fini = s_teardown, .timeout = 60);

static void
s_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", s_root, name);
}

static void
s_commit(hf_store_t *st, uint8_t lane, uint64_t first, uint64_t n)
{
    static hf_record_t recs[1000];
    cr_assert_leq(n, 1000);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = first + i;
        if (lane == HF_LANE_DATA)
            hf_record_sample(&recs[i], 7, T0 + seq, seq, (uint32_t)(seq % 4), (double)seq);
        else
            hf_record_event(&recs[i], 7, T0 + seq, seq, HF_EV_STEP, 0, "step");
        recs[i].seq = seq;
    }
    uint64_t acked = 0;
    cr_assert_eq(hf_store_commit(st, "eng-1", EPOCH, lane, recs, n, T0, &acked, NULL), HF_OK);
}

typedef struct {
    hf_store_t *st;
    atomic_int stop;
    uint64_t next; /* next data seq */
} s_writer_t;

static void *
s_writer(void *arg)
{
    s_writer_t *w = arg;
    while (!atomic_load(&w->stop) && w->next < 2000000) {
        s_commit(w->st, HF_LANE_DATA, w->next, 1000);
        w->next += 1000;
    }
    return NULL;
}

static uint64_t s_progress_calls;
static void
s_progress(uint64_t done, uint64_t total, void *arg)
{
    (void)total;
    (void)arg;
    cr_assert_gt(done, 0);
    s_progress_calls++;
}

Test(backup, a_backup_taken_during_ingestion_restores_everything_acked_before_it)
{
    char data[128], bak[128], data2[128];
    s_dir(data, sizeof data, "data");
    s_dir(bak, sizeof bak, "bak");
    s_dir(data2, sizeof data2, "data2");
    hf_store_t *st = hf_store_open(data, NULL, NULL);
    cr_assert_not_null(st);
    s_commit(st, HF_LANE_CONTROL, 1, 10);
    for (uint64_t f = 1; f <= 50000; f += 1000)
        s_commit(st, HF_LANE_DATA, f, 1000);
    /* acked before the backup began: control 10, data 50,000 */
    s_writer_t w = {st, 0, 50001};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, s_writer, &w), 0);
    hf_backup_info_t info;
    s_progress_calls = 0;
    cr_assert_eq(hf_backup_make(data, bak, s_progress, NULL, &info), HF_OK);
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    cr_assert_gt(s_progress_calls, 0);
    cr_assert_eq(info.engines, 1);
    cr_assert_eq(info.records[HF_LANE_CONTROL], 10);
    cr_assert_geq(info.records[HF_LANE_DATA], 50000, "everything acked before the backup");
    cr_assert_leq(info.records[HF_LANE_DATA], w.next - 1);
    hf_store_close(&st);

    hf_backup_info_t v;
    cr_assert_eq(hf_backup_verify(bak, &v), HF_OK);
    cr_assert_eq(v.checksum, info.checksum);
    cr_assert_eq(hf_backup_restore(bak, data2, NULL), HF_OK);
    st = hf_store_open(data2, NULL, NULL);
    cr_assert_not_null(st, "the restored store opens");
    uint64_t acked[2];
    cr_assert_eq(hf_store_cursor(st, "eng-1", EPOCH, acked), HF_OK);
    cr_assert_eq(acked[HF_LANE_CONTROL], 10);
    cr_assert_eq(acked[HF_LANE_DATA], info.records[HF_LANE_DATA],
                 "the copy is one consistent snapshot: cursor and records agree");
    /* and it goes on ingesting where the snapshot ended */
    s_commit(st, HF_LANE_DATA, acked[HF_LANE_DATA] + 1, 10);
    hf_store_close(&st);
    /* never over an existing store */
    cr_assert_eq(hf_backup_restore(bak, data2, NULL), HF_EINVAL);
    cr_assert_eq(hf_backup_make(data, bak, NULL, NULL, NULL), HF_EINVAL, "bak holds a backup");
}

static void
s_flip(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

Test(backup, damaged_truncated_or_unfinished_copies_are_refused_and_nothing_installed)
{
    char data[128], bak[128], target[128], file[200], man[200], dst[200];
    s_dir(data, sizeof data, "data");
    s_dir(bak, sizeof bak, "bak");
    s_dir(target, sizeof target, "target");
    hf_store_t *st = hf_store_open(data, NULL, NULL);
    s_commit(st, HF_LANE_DATA, 1, 1000);
    hf_store_close(&st);
    cr_assert_eq(hf_backup_make(data, bak, NULL, NULL, NULL), HF_OK);
    snprintf(file, sizeof file, "%s/data.mdb", bak);
    snprintf(man, sizeof man, "%s/MANIFEST", bak);
    snprintf(dst, sizeof dst, "%s/data.mdb", target);

    s_flip(file, 9000); /* a bit flip in a data page */
    cr_assert_eq(hf_backup_verify(bak, NULL), HF_ECORRUPT);
    cr_assert_eq(hf_backup_restore(bak, target, NULL), HF_ECORRUPT);
    cr_assert_eq(access(dst, F_OK), -1, "nothing installed");
    s_flip(file, 9000); /* undo */
    cr_assert_eq(hf_backup_verify(bak, NULL), HF_OK);

    cr_assert_eq(truncate(file, 8192), 0);
    cr_assert_eq(hf_backup_verify(bak, NULL), HF_ECORRUPT);

    cr_assert_eq(unlink(man), 0);
    cr_assert_eq(hf_backup_verify(bak, NULL), HF_ECORRUPT, "no manifest: unfinished");
    cr_assert_eq(access(dst, F_OK), -1);

    char none[128];
    s_dir(none, sizeof none, "none");
    cr_assert_eq(hf_backup_make(none, bak, NULL, NULL, NULL), HF_ENOTFOUND);
}
