/*
 * The fleecing read race (block/block-copy.c, block_copy_before_write()):
 * a backup sync=none copies into a qcow2 target whose backing is the
 * source, and a reader of the target reads a cluster not yet copied from
 * the source through that backing edge.  A guest write to the cluster
 * saves the old data for the target first; it must then also wait for
 * the reader's read of the source, or it lands in the middle of it and
 * the reader sees data newer than the point in time.
 *
 * The source is a bctest node, which parks a chosen source read until the
 * test resumes it, so every interleaving is forced rather than hoped for.
 * The cases: the reader's source read held under a guest write (one
 * cluster, and a 2 MiB read written in its middle; the write deferred,
 * and with FUA so that it is not), a write with no read
 * in flight, and a serialising guest write that a reader meets while the
 * write's copy is held.
 *
 * A serialising write still queued behind an earlier guest request when
 * the reader comes must not make the reader wait for it on the source:
 * the reader would then read the new data.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/job.h"
#include "block/backup.h"
#include "block/block-backend.h"
#include "block/blockjob.h"
#include "bctest-drv.h"

#define IMG_SIZE (4 * MiB)
/* Bound of every wait: a hang fails the test instead of blocking it. */
#define WAIT_US (30 * G_USEC_PER_SEC)
/*
 * Main-loop iterations a guest write that does not wait needs at most to
 * complete once its copy is done: bctest completes a 64 KiB write within
 * three iterations.  The test polls far more than that.
 */
#define HELD_ITERATIONS 500

typedef struct Request {
    bool done;
    int ret;
} Request;

typedef struct Fixture {
    char *dir;
    BlockDriverState *src;      /* bctest */
    BlockDriverState *tgt;      /* qcow2, backing = src */
    BlockBackend *guest;        /* writes the source */
    BlockBackend *reader;       /* reads the target (the fleecing export) */
    uint8_t *orig;              /* source content at backup start */
    BlockJob *bjob;
} Fixture;

static void request_cb(void *opaque, int ret)
{
    Request *r = opaque;

    r->ret = ret;
    r->done = true;
}

/* Polls the main loop until @r is done, at most WAIT_US. */
static void wait_request(Request *r)
{
    int64_t deadline = g_get_monotonic_time() + WAIT_US;

    while (!r->done) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(100);
    }
}

static BlockBackend *backend_on(BlockDriverState *bs)
{
    BlockBackend *blk = blk_new();

    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    return blk;
}

/* Source, fleecing target over it, and the sync=none backup between. */
static void fixture_init(Fixture *f)
{
    BackupJobOptions opts = {
        .sync = MIRROR_SYNC_MODE_NONE,
        .on_source_error = BLOCKDEV_ON_ERROR_REPORT,
        .on_target_error = BLOCKDEV_ON_ERROR_REPORT,
        .job_flags = JOB_MANUAL_DISMISS,
    };
    g_autofree char *path = NULL;
    g_autofree char *json = NULL;
    QDict *create = qdict_new();

    f->dir = g_dir_make_tmp("test-fleecing-race-XXXXXX", NULL);
    g_assert_nonnull(f->dir);
    path = g_build_filename(f->dir, "fleece.qcow2", NULL);
    f->src = bctest_open("src", IMG_SIZE, false);
    bctest_fill(f->src, 5, NULL);
    f->orig = g_memdup2(bctest(f->src)->data, IMG_SIZE);

    qdict_put_int(create, "size", IMG_SIZE);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, create,
                                &error_abort), ==, 0);
    qobject_unref(create);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"fleece\", "
                           "\"backing\": \"src\", \"file\": {\"driver\": "
                           "\"file\", \"filename\": \"%s\"}}", path);
    f->tgt = bdrv_open(NULL, NULL, qdict_from_json(json, &error_abort),
                       BDRV_O_RDWR, &error_abort);
    g_assert_true(f->tgt->backing && f->tgt->backing->bs == f->src);

    f->guest = backend_on(f->src);
    f->reader = backend_on(f->tgt);
    f->bjob = backup_job_create("fl", f->src, f->tgt, &opts, &error_abort);
}

static void fixture_free(Fixture *f)
{
    g_autofree char *path = g_build_filename(f->dir, "fleece.qcow2", NULL);

    job_cancel(f->bjob->job, true);
    job_wait_all();
    g_assert_true(job_is_concluded(f->bjob->job));
    job_dismiss(f->bjob->job, &error_abort);
    blk_unref(f->reader);
    blk_unref(f->guest);
    bdrv_unref(f->tgt);
    bdrv_unref(f->src);
    g_assert_null(bdrv_find_node("src"));
    g_assert_null(bdrv_find_node("fleece"));
    g_free(f->orig);
    g_assert_cmpint(unlink(path), ==, 0);
    g_assert_cmpint(rmdir(f->dir), ==, 0);
    g_free(f->dir);
}

static void assert_equal(const uint8_t *got, const uint8_t *want,
                         int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i++) {
        if (got[i] != want[i]) {
            g_error("byte %" PRId64 ": 0x%02x, expected 0x%02x", i, got[i],
                    want[i]);
        }
    }
}

/* True once the cluster at @offset is saved and written to the target. */
static bool copied(Fixture *f, int64_t offset)
{
    return f->bjob->job->progress_current >= BCTEST_UNIT &&
           bdrv_is_allocated(f->tgt, offset, BCTEST_UNIT, NULL) == 1;
}

typedef struct RaceCase {
    int64_t read_offset;        /* the reader's request on the target */
    int64_t read_bytes;
    int64_t write_offset;       /* the guest write, 64 KiB, inside it */
    /*
     * The guest write's flags.  0: it is deferred (block/io.c) and
     * completes to the guest at once; BDRV_REQ_FUA: it runs in the guest's
     * request and completes only when it has landed.
     */
    BdrvRequestFlags write_flags;
} RaceCase;

/*
 * The reader's source read of the written cluster is held while the guest
 * writes it: the write copies the cluster first, then must wait for the
 * held read; released, the read returns the old data and only then does
 * the guest write land (and, unless deferred, complete).  Afterwards the
 * target holds the old data.
 */
static void test_race(gconstpointer data)
{
    const RaceCase *c = data;
    g_autofree uint8_t *rbuf = g_malloc(c->read_bytes);
    g_autofree uint8_t *wbuf = g_malloc(BCTEST_UNIT);
    g_autofree uint8_t *check = g_malloc(c->read_bytes);
    Request rd = { 0 }, wr = { 0 };
    QEMUIOVector rqiov, wqiov;
    Fixture f;

    fixture_init(&f);

    /* The reader finds the cluster unallocated and reads the source. */
    bctest_park_read(f.src, c->write_offset);
    qemu_iovec_init_buf(&rqiov, rbuf, c->read_bytes);
    blk_aio_preadv(f.reader, c->read_offset, &rqiov, 0, request_cb, &rd);
    bctest_wait_parked(f.src);
    g_assert_false(rd.done);
    g_assert_cmpint(bdrv_is_allocated(f.tgt, c->write_offset, BCTEST_UNIT,
                                      NULL), ==, 0);

    /* The guest writes the cluster; its copy to the target completes. */
    memset(wbuf, 0xee, BCTEST_UNIT);
    qemu_iovec_init_buf(&wqiov, wbuf, BCTEST_UNIT);
    blk_aio_pwritev(f.guest, c->write_offset, &wqiov, c->write_flags,
                    request_cb, &wr);
    for (int i = 0; i < HELD_ITERATIONS ||
                    !copied(&f, c->write_offset); i++) {
        g_assert_cmpint(i, <, 100 * HELD_ITERATIONS);
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(100);
    }

    /* ... but it waits for the held read of the source. */
    g_assert_true(wr.done == !c->write_flags);
    g_assert_false(rd.done);
    g_assert_cmpint(bctest(f.src)->data[c->write_offset], ==,
                    f.orig[c->write_offset]);

    /* Released, the read sees the point in time; then the write lands. */
    bctest_resume(f.src);
    wait_request(&rd);
    g_assert_cmpint(rd.ret, ==, 0);
    assert_equal(rbuf, f.orig + c->read_offset, c->read_bytes);
    wait_request(&wr);
    g_assert_cmpint(wr.ret, ==, 0);
    /* A flush waits for a deferred write to land. */
    g_assert_cmpint(blk_flush(f.guest), ==, 0);
    g_assert_cmpint(bctest(f.src)->data[c->write_offset], ==, 0xee);

    /* The target keeps the point in time over the new source data. */
    g_assert_cmpint(blk_pread(f.reader, c->read_offset, c->read_bytes,
                              check, 0), ==, 0);
    assert_equal(check, f.orig + c->read_offset, c->read_bytes);
    fixture_free(&f);
}

/*
 * A guest write with no fleecing read in flight does not wait: the reader
 * read the cluster and finished before the write.
 */
static void test_no_reader(void)
{
    g_autofree uint8_t *buf = g_malloc(BCTEST_UNIT);
    const int64_t off = 2 * MiB;
    Request wr = { 0 };
    QEMUIOVector qiov;
    Fixture f;

    fixture_init(&f);
    g_assert_cmpint(blk_pread(f.reader, off, BCTEST_UNIT, buf, 0), ==, 0);
    assert_equal(buf, f.orig + off, BCTEST_UNIT);
    memset(buf, 0xdd, BCTEST_UNIT);
    qemu_iovec_init_buf(&qiov, buf, BCTEST_UNIT);
    blk_aio_pwritev(f.guest, off, &qiov, 0, request_cb, &wr);
    wait_request(&wr);
    g_assert_cmpint(wr.ret, ==, 0);
    g_assert_cmpint(blk_pread(f.reader, off, BCTEST_UNIT, buf, 0), ==, 0);
    assert_equal(buf, f.orig + off, BCTEST_UNIT);
    fixture_free(&f);
}

/*
 * A serialising guest write (an unaligned write on a node with a request
 * alignment does the same) is in flight, its copy held, when the reader
 * reads the cluster: the reader found it unallocated in the target and
 * waits on the source for the write.  The write's notifier must not wait
 * for that read (deadlock), but the read must still see the old data.
 */
static void test_serialising_write(void)
{
    g_autofree uint8_t *rbuf = g_malloc(BCTEST_UNIT);
    g_autofree uint8_t *wbuf = g_malloc(BCTEST_UNIT);
    const int64_t off = 1 * MiB;
    Request rd = { 0 }, wr = { 0 };
    QEMUIOVector rqiov, wqiov;
    Fixture f;

    fixture_init(&f);

    /* The guest write's copy-before-write read of the source is held. */
    bctest_park_read(f.src, off);
    memset(wbuf, 0xee, BCTEST_UNIT);
    qemu_iovec_init_buf(&wqiov, wbuf, BCTEST_UNIT);
    blk_aio_pwritev(f.guest, off, &wqiov, BDRV_REQ_SERIALISING, request_cb,
                    &wr);
    bctest_wait_parked(f.src);

    /* The reader finds the cluster not copied yet. */
    qemu_iovec_init_buf(&rqiov, rbuf, BCTEST_UNIT);
    blk_aio_preadv(f.reader, off, &rqiov, 0, request_cb, &rd);
    for (int i = 0; i < HELD_ITERATIONS; i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
    g_assert_false(wr.done);

    bctest_resume(f.src);
    wait_request(&wr);
    g_assert_cmpint(wr.ret, ==, 0);
    wait_request(&rd);
    g_assert_cmpint(rd.ret, ==, 0);
    assert_equal(rbuf, f.orig + off, BCTEST_UNIT);
    fixture_free(&f);
}

/*
 * As above, but the serialising guest write is still queued behind an
 * earlier guest request (a read of the cluster, held) when the reader
 * comes: nothing is being copied yet, so the reader goes to the source,
 * where it waits for the serialising write.  The write's copy must still
 * not let the reader see the new data.
 */
static void test_serialising_write_queued(void)
{
    g_autofree uint8_t *gbuf = g_malloc(BCTEST_UNIT);
    g_autofree uint8_t *rbuf = g_malloc(BCTEST_UNIT);
    g_autofree uint8_t *wbuf = g_malloc(BCTEST_UNIT);
    const int64_t off = 1 * MiB;
    Request gr = { 0 }, rd = { 0 }, wr = { 0 };
    QEMUIOVector gqiov, rqiov, wqiov;
    Fixture f;

    fixture_init(&f);

    /* An earlier guest read of the cluster is held in the source. */
    bctest_park_read(f.src, off);
    qemu_iovec_init_buf(&gqiov, gbuf, BCTEST_UNIT);
    blk_aio_preadv(f.guest, off, &gqiov, 0, request_cb, &gr);
    bctest_wait_parked(f.src);

    /* The serialising write waits for it; then the reader comes. */
    memset(wbuf, 0xee, BCTEST_UNIT);
    qemu_iovec_init_buf(&wqiov, wbuf, BCTEST_UNIT);
    blk_aio_pwritev(f.guest, off, &wqiov, BDRV_REQ_SERIALISING, request_cb,
                    &wr);
    qemu_iovec_init_buf(&rqiov, rbuf, BCTEST_UNIT);
    blk_aio_preadv(f.reader, off, &rqiov, 0, request_cb, &rd);
    for (int i = 0; i < HELD_ITERATIONS; i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
    g_assert_false(gr.done);
    g_assert_false(wr.done);

    bctest_resume(f.src);
    wait_request(&gr);
    wait_request(&wr);
    wait_request(&rd);
    g_assert_cmpint(gr.ret, ==, 0);
    g_assert_cmpint(wr.ret, ==, 0);
    g_assert_cmpint(rd.ret, ==, 0);
    assert_equal(rbuf, f.orig + off, BCTEST_UNIT);
    fixture_free(&f);
}

/* One cluster, read exactly. */
static const RaceCase race_cluster = {
    .read_offset = 1 * MiB,
    .read_bytes = BCTEST_UNIT,
    .write_offset = 1 * MiB,
};

static const RaceCase race_cluster_fua = {
    .read_offset = 1 * MiB,
    .read_bytes = BCTEST_UNIT,
    .write_offset = 1 * MiB,
    .write_flags = BDRV_REQ_FUA,
};

/* A 2 MiB read (qemu-img convert's request size), written in the middle. */
static const RaceCase race_large = {
    .read_offset = 1 * MiB,
    .read_bytes = 2 * MiB,
    .write_offset = 2 * MiB + 3 * BCTEST_UNIT,
};

static const RaceCase race_large_fua = {
    .read_offset = 1 * MiB,
    .read_bytes = 2 * MiB,
    .write_offset = 2 * MiB + 3 * BCTEST_UNIT,
    .write_flags = BDRV_REQ_FUA,
};

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bctest_register();
    g_test_add_data_func("/fleecing-race/cluster", &race_cluster, test_race);
    g_test_add_data_func("/fleecing-race/large-read", &race_large, test_race);
    g_test_add_data_func("/fleecing-race/cluster-fua", &race_cluster_fua,
                         test_race);
    g_test_add_data_func("/fleecing-race/large-read-fua", &race_large_fua,
                         test_race);
    g_test_add_func("/fleecing-race/no-reader", test_no_reader);
    g_test_add_func("/fleecing-race/serialising-write",
                    test_serialising_write);
    g_test_add_func("/fleecing-race/serialising-write-queued",
                    test_serialising_write_queued);
    return g_test_run();
}
