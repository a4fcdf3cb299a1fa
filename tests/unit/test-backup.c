/*
 * Unit tests of the backup job (block/backup.c) on in-memory bctest nodes:
 * point-in-time content under a guest write that races the background
 * copy, sync=none until cancel, a reported target error, argument errors,
 * and the rule that the job holds one reference on source and target for
 * exactly its lifetime, on every exit path.
 */
#include "qemu/osdep.h"
#include "block/backup.h"
#include "block/block-backend.h"
#include "bctest-drv.h"

#define IMG_SIZE (4 * MiB)

typedef struct Fixture {
    BlockDriverState *src;
    BlockDriverState *tgt;
    BlockBackend *blk;          /* the "guest" on the source */
    uint8_t *orig;              /* source content at backup start */
    int src_ref, tgt_ref;       /* reference counts without a job */
} Fixture;

static int fixture_count;

static void fixture_init(Fixture *f, int64_t tgt_size)
{
    g_autofree char *s = g_strdup_printf("s%d", fixture_count);
    g_autofree char *t = g_strdup_printf("t%d", fixture_count++);

    f->src = bctest_open(s, IMG_SIZE, false);
    f->tgt = bctest_open(t, tgt_size, false);
    bctest_fill(f->src, 7, NULL);
    f->orig = g_memdup2(bctest(f->src)->data, IMG_SIZE);
    f->blk = blk_new();
    g_assert_cmpint(blk_insert_bs(f->blk, f->src, &error_abort), ==, 0);
    f->src_ref = bdrv_get_refcnt(f->src);
    f->tgt_ref = bdrv_get_refcnt(f->tgt);
}

static void fixture_check_refs(Fixture *f)
{
    g_assert_cmpint(bdrv_get_refcnt(f->src), ==, f->src_ref);
    g_assert_cmpint(bdrv_get_refcnt(f->tgt), ==, f->tgt_ref);
}

static void fixture_free(Fixture *f)
{
    blk_unref(f->blk);
    bdrv_unref(f->src);
    bdrv_unref(f->tgt);
    g_free(f->orig);
}

static BlockJob *start(Fixture *f, MirrorSyncMode sync, int64_t speed,
                       int flags)
{
    BackupJobOptions opts = {
        .sync = sync,
        .speed = speed,
        .on_source_error = BLOCKDEV_ON_ERROR_REPORT,
        .on_target_error = BLOCKDEV_ON_ERROR_REPORT,
        .job_flags = flags,
    };

    return backup_job_create("bk", f->src, f->tgt, &opts, &error_abort);
}

/*
 * A guest write and flush: the write may complete before its copy
 * (deferred, block/io.c), the flush only once both are done.
 */
static void guest_write(Fixture *f, int64_t offset, uint8_t pattern)
{
    uint8_t buf[BCTEST_UNIT];

    memset(buf, pattern, sizeof(buf));
    g_assert_cmpint(blk_pwrite(f->blk, offset, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(blk_flush(f->blk), ==, 0);
}

static void test_full_point_in_time(void)
{
    Fixture f;
    BlockJob *bjob;

    fixture_init(&f, IMG_SIZE);
    /* 1 MiB/s: the first chunk is copied, then the job sleeps. */
    bjob = start(&f, MIRROR_SYNC_MODE_FULL, 1 * MiB, 0);
    g_assert_cmpint(bdrv_get_refcnt(f.src), ==, f.src_ref + 1);
    g_assert_cmpint(bdrv_get_refcnt(f.tgt), ==, f.tgt_ref + 1);
    /* Clusters the background copy has not reached yet. */
    guest_write(&f, 3 * MiB, 0xee);
    guest_write(&f, 2 * MiB + 64 * KiB, 0xdd);
    g_assert_cmpint(bjob->job->progress_current, >=, 2 * BCTEST_UNIT);
    block_job_set_speed(bjob, 0, &error_abort);
    job_wait_all();
    g_assert_null(job_get("bk"));
    g_assert_true(memcmp(bctest(f.tgt)->data, f.orig, IMG_SIZE) == 0);
    g_assert_cmpint(bctest(f.src)->data[3 * MiB], ==, 0xee);
    /* A backup is not read back: it stays out of the page cache. */
    g_assert_cmpuint(bctest(f.tgt)->data_writes, >, 0);
    g_assert_cmpuint(bctest(f.tgt)->dontcache_writes, ==,
                     bctest(f.tgt)->data_writes);
    fixture_check_refs(&f);
    fixture_free(&f);
}

static void test_none_until_cancel(void)
{
    Fixture f;
    BlockJob *bjob;

    fixture_init(&f, IMG_SIZE);
    bjob = start(&f, MIRROR_SYNC_MODE_NONE, 0, JOB_MANUAL_DISMISS);
    guest_write(&f, 0, 0xee);
    g_assert_cmpint(bjob->job->progress_current, ==, BCTEST_UNIT);
    g_assert_cmpint(bjob->job->progress_total, ==, IMG_SIZE);
    job_cancel(bjob->job, false);
    job_wait_all();
    g_assert_true(job_is_concluded(bjob->job));
    g_assert_cmpint(bjob->job->ret, ==, -ECANCELED);
    /* Only the overwritten cluster was copied, with its old data. */
    g_assert_true(memcmp(bctest(f.tgt)->data, f.orig, BCTEST_UNIT) == 0);
    g_assert_cmpint(bctest(f.tgt)->alloc[1], ==, 0);
    /* A fleecing image is read back by its export: keep it cached. */
    g_assert_cmpuint(bctest(f.tgt)->data_writes, >, 0);
    g_assert_cmpuint(bctest(f.tgt)->dontcache_writes, ==, 0);
    fixture_check_refs(&f);
    job_dismiss(bjob->job, &error_abort);
    fixture_free(&f);
}

/* A guest that rewrites its first 4 KiB until told to stop. */
typedef struct BusyGuest {
    BlockBackend *blk;
    bool stop;
    bool done;
    int writes;
} BusyGuest;

static void coroutine_fn busy_guest_entry(void *opaque)
{
    BusyGuest *g = opaque;
    uint8_t buf[4096];

    memset(buf, 0xcc, sizeof(buf));
    while (!g->stop) {
        g_assert_cmpint(blk_co_pwrite(g->blk, 0, sizeof(buf), buf, 0), ==, 0);
        g->writes++;
    }
    g->done = true;
}

/* Twice what an idle full backup keeps in flight. */
#define YIELD_IMG_SIZE (128 * MiB)

/*
 * A full backup of 128 MiB.  Alone, of a source read with cache.direct=on,
 * it keeps 16 chunks of 4 MiB in flight, each copied as 1 MiB tasks side
 * by side, so more reads are in flight than there are chunks.  Through
 * the page cache its chunks are 1 MiB, one task each.  While the guest
 * writes, one chunk of 1 MiB, so that the guest's requests do not queue
 * behind megabytes of copy traffic: once the first guest write was seen
 * and the chunks started before it drained, the job never reads more
 * than one task's worth at a time.  The guest's own copy-before-write
 * reads less than a unit, so every unit-sized read is the job's.
 */
static void test_full_yields_to_guest(void)
{
    static const struct {
        bool direct, busy;
        int min_reads, max_reads;   /* of unit-sized reads in flight */
    } cases[] = {
        { .direct = true, .busy = false, .min_reads = 17, .max_reads = 64 },
        { .direct = true, .busy = true, .min_reads = 1, .max_reads = 1 },
        { .direct = false, .busy = false, .min_reads = 2, .max_reads = 16 },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        bool busy = cases[i].busy;
        BusyGuest g = { .stop = true, .done = true };
        BlockDriverState *src = cases[i].direct ?
            bctest_open_direct("ys", YIELD_IMG_SIZE) :
            bctest_open("ys", YIELD_IMG_SIZE, false);
        BlockDriverState *tgt = bctest_open("yt", YIELD_IMG_SIZE, false);
        BlockBackend *blk = blk_new();
        g_autofree uint8_t *orig = NULL;
        BackupJobOptions opts = { .sync = MIRROR_SYNC_MODE_FULL };
        BlockJob *bjob;

        bctest_fill(src, 9, NULL);
        orig = g_memdup2(bctest(src)->data, YIELD_IMG_SIZE);
        g_assert_cmpint(blk_insert_bs(blk, src, &error_abort), ==, 0);
        bjob = backup_job_create("bk", src, tgt, &opts, &error_abort);
        if (busy) {
            g = (BusyGuest) { .blk = blk };
            qemu_coroutine_enter(qemu_coroutine_create(busy_guest_entry, &g));
            AIO_WAIT_WHILE(g.writes < 1 ||
                           bctest(src)->unit_reads_in_flight > 1);
            bctest(src)->max_unit_reads_in_flight =
                bctest(src)->unit_reads_in_flight;
        }
        /* The job's clean-up drains the source: the guest stops first. */
        AIO_WAIT_WHILE(bjob->job->progress_current <
                       bjob->job->progress_total);
        g.stop = true;
        AIO_WAIT_WHILE(!g.done);
        job_wait_all();
        g_assert_cmpint(bctest(src)->max_unit_reads_in_flight, >=,
                        cases[i].min_reads);
        g_assert_cmpint(bctest(src)->max_unit_reads_in_flight, <=,
                        cases[i].max_reads);
        g_assert_true(memcmp(bctest(tgt)->data, orig, YIELD_IMG_SIZE) == 0);
        blk_unref(blk);
        bdrv_unref(src);
        bdrv_unref(tgt);
    }
}

static void test_target_error_report(void)
{
    Fixture f;
    BlockJob *bjob;

    fixture_init(&f, IMG_SIZE);
    bctest(f.tgt)->fail_write = EIO;
    bjob = start(&f, MIRROR_SYNC_MODE_FULL, 0, JOB_MANUAL_DISMISS);
    job_wait_all();
    g_assert_true(job_is_concluded(bjob->job));
    g_assert_cmpint(bjob->job->ret, ==, -EIO);
    g_assert_cmpstr(bjob->job->error, ==, "Input/output error");
    fixture_check_refs(&f);
    job_dismiss(bjob->job, &error_abort);
    fixture_free(&f);
}

static void test_create_errors(void)
{
    BackupJobOptions opts = { .sync = MIRROR_SYNC_MODE_FULL };
    Error *err = NULL;
    Fixture f;

    fixture_init(&f, IMG_SIZE / 2);
    g_assert_null(backup_job_create("bk", f.src, f.tgt, &opts, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Source and target image have different sizes");
    error_free(err);
    err = NULL;
    g_assert_null(backup_job_create("bk", f.src, f.src, &opts, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Source and target cannot be the same");
    error_free(err);
    g_assert_null(job_get("bk"));
    fixture_check_refs(&f);
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bctest_register();
    g_test_add_func("/backup/full-point-in-time", test_full_point_in_time);
    g_test_add_func("/backup/none-until-cancel", test_none_until_cancel);
    g_test_add_func("/backup/full-yields-to-guest",
                    test_full_yields_to_guest);
    g_test_add_func("/backup/target-error-report", test_target_error_report);
    g_test_add_func("/backup/create-errors", test_create_errors);
    return g_test_run();
}
