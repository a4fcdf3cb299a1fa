/*
 * Unit tests for the copy-before-write filter and the snapshot-access
 * driver: point-in-time correctness of the target and of snapshot reads
 * under concurrent guest writers, the frozen-read interleaving, discard,
 * block status, on-cbw-error, the bitmap option, open errors, and a run
 * on real qcow2 images.
 *
 * The source and target are "bctest" nodes (see bctest-drv.h) opened by
 * node-name; the filter references them, as blockdev-add would.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block-backend.h"
#include "block/copy-before-write.h"
#include "block/dirty-bitmap.h"
#include "bctest-drv.h"

#define IMG_SIZE    (4 * MiB)
#define NUNITS      (IMG_SIZE / BCTEST_UNIT)

typedef struct Fixture {
    BlockDriverState *src_bs;
    BlockDriverState *tgt_bs;
    BlockDriverState *cbw_bs;
    BlockDriverState *snap_bs;
    BlockBackend *guest;        /* root: the filter */
    BlockBackend *snap;         /* root: snapshot-access */
    uint8_t *orig;
} Fixture;

static BlockDriverState *open_json(const char *json, Error **errp)
{
    return bdrv_open(NULL, NULL, qdict_from_json(json, &error_abort),
                     BDRV_O_RDWR, errp);
}

static BlockBackend *backend_on(BlockDriverState *bs)
{
    BlockBackend *blk = blk_new();

    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    return blk;
}

/* @cbw_extra: more members for the filter's options ("" or ", ..."). */
static void fixture_open(Fixture *f, const char *cbw_extra)
{
    g_autofree char *cbw_json = g_strdup_printf(
        "{\"driver\": \"copy-before-write\", \"node-name\": \"cbw0\", "
        "\"file\": \"src0\", \"target\": \"tgt0\"%s}", cbw_extra);

    f->src_bs = bctest_open("src0", IMG_SIZE, false);
    f->tgt_bs = bctest_open("tgt0", IMG_SIZE, false);
    bctest_fill(f->src_bs, 3, NULL);
    f->orig = g_memdup2(bctest(f->src_bs)->data, IMG_SIZE);
    f->cbw_bs = open_json(cbw_json, &error_abort);
    f->snap_bs = open_json("{\"driver\": \"snapshot-access\", "
                           "\"node-name\": \"snap0\", \"file\": \"cbw0\", "
                           "\"discard\": \"unmap\"}", &error_abort);
    f->guest = backend_on(f->cbw_bs);
    f->snap = backend_on(f->snap_bs);
}

static void fixture_close(Fixture *f)
{
    blk_unref(f->snap);
    blk_unref(f->guest);
    bdrv_unref(f->snap_bs);
    bdrv_unref(f->cbw_bs);
    bdrv_unref(f->src_bs);
    bdrv_unref(f->tgt_bs);
    g_free(f->orig);
    g_assert_null(bdrv_find_node("cbw0"));
    g_assert_null(bdrv_find_node("src0"));
    g_assert_null(bdrv_find_node("tgt0"));
}

static void assert_target_is_original(Fixture *f)
{
    for (int64_t u = 0; u < NUNITS; u++) {
        if (memcmp(bctest(f->tgt_bs)->data + u * BCTEST_UNIT,
                   f->orig + u * BCTEST_UNIT, BCTEST_UNIT)) {
            g_error("target unit %" PRId64 " differs from the original", u);
        }
    }
}

/* Clusters the filter copied hold the original in the target. */
static void assert_target_copied_clusters(Fixture *f)
{
    BlockCopyState *bcs = cbw_get_block_copy_state(f->cbw_bs);

    for (int64_t u = 0; u < NUNITS; u++) {
        if (block_copy_is_cluster_copied(bcs, u * BCTEST_UNIT) &&
            memcmp(bctest(f->tgt_bs)->data + u * BCTEST_UNIT,
                   f->orig + u * BCTEST_UNIT, BCTEST_UNIT)) {
            g_error("copied unit %" PRId64 " differs from the original", u);
        }
    }
}

typedef struct RunCo {
    BlockCopyState *bcs;
    int ret;
    bool done;
} RunCo;

static void coroutine_fn run_co_entry(void *opaque)
{
    RunCo *r = opaque;

    r->ret = block_copy_run(r->bcs, NULL);
    r->done = true;
}

/*
 * A guest writer or a snapshot reader: @count requests of random ranges
 * (or one at @offset).  Readers compare what they read with @expect.
 */
typedef struct IoCo {
    BlockBackend *blk;
    GRand *rand;
    bool is_read;
    const uint8_t *expect;
    int count;
    int64_t offset;
    int64_t bytes;
    int64_t span;               /* random ranges start below this */
    int64_t max_bytes;          /* and are at most this long */
    int ret;
    bool done;
    int mismatches;
} IoCo;

static void coroutine_fn io_co_entry(void *opaque)
{
    IoCo *c = opaque;

    for (int i = 0; i < c->count && !c->ret; i++) {
        int64_t offset = c->offset >= 0 ? c->offset :
            g_rand_int_range(c->rand, 0, c->span - 1);
        int64_t bytes = c->offset >= 0 ? c->bytes :
            g_rand_int_range(c->rand, 1, c->max_bytes);
        g_autofree uint8_t *buf = NULL;

        bytes = MIN(bytes, IMG_SIZE - offset);
        buf = g_malloc(bytes);
        if (c->is_read) {
            c->ret = blk_co_pread(c->blk, offset, bytes, buf, 0);
            if (!c->ret && memcmp(buf, c->expect + offset, bytes)) {
                c->mismatches++;
            }
        } else {
            memset(buf, c->rand ? 0xC0 + g_rand_int_range(c->rand, 0, 16) :
                   0xEE, bytes);
            c->ret = blk_co_pwrite(c->blk, offset, bytes, buf, 0);
        }
    }
    c->done = true;
}

static void io_start(IoCo *c, BlockBackend *blk, bool is_read,
                     const uint8_t *expect, GRand *rand, int count,
                     int64_t offset, int64_t bytes)
{
    *c = (IoCo) {
        .blk = blk, .is_read = is_read, .expect = expect, .rand = rand,
        .count = count, .offset = offset, .bytes = bytes, .span = IMG_SIZE,
        .max_bytes = 300 * KiB,
    };
    qemu_coroutine_enter(qemu_coroutine_create(io_co_entry, c));
}

static void poll_a_while(void)
{
    for (int i = 0; i < 50; i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
}

/*
 * The filter as the root of a guest's BlockBackend, the backup's
 * background loop and snapshot readers all at once: the target ends up
 * as the original image, each cluster was read from the source by the
 * copy engine exactly once, and every snapshot read saw the original.
 */
static void test_concurrent_guest_backup_and_readers(void)
{
    GRand *rand = g_rand_new_with_seed(42);
    IoCo writers[24], readers[8];
    Fixture f;
    RunCo r;
    bool all_done;

    fixture_open(&f, "");
    r = (RunCo) { .bcs = cbw_get_block_copy_state(f.cbw_bs) };
    qemu_coroutine_enter(qemu_coroutine_create(run_co_entry, &r));
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        io_start(&writers[i], f.guest, false, NULL, rand, 6, -1, 0);
    }
    for (int i = 0; i < G_N_ELEMENTS(readers); i++) {
        io_start(&readers[i], f.snap, true, f.orig, rand, 8, -1, 0);
    }
    do {
        aio_poll(qemu_get_aio_context(), true);
        all_done = r.done;
        for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
            all_done &= writers[i].done;
        }
        for (int i = 0; i < G_N_ELEMENTS(readers); i++) {
            all_done &= readers[i].done;
        }
    } while (!all_done);

    g_assert_cmpint(r.ret, ==, 0);
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        g_assert_cmpint(writers[i].ret, ==, 0);
    }
    for (int i = 0; i < G_N_ELEMENTS(readers); i++) {
        g_assert_cmpint(readers[i].ret, ==, 0);
        g_assert_cmpint(readers[i].mismatches, ==, 0);
    }
    assert_target_is_original(&f);
    g_assert_true(memcmp(bctest(f.src_bs)->data, f.orig, IMG_SIZE) != 0);
    g_rand_free(rand);
    fixture_close(&f);
}

/*
 * Without the background loop most clusters stay uncopied, so snapshot
 * readers mostly read the source while guest writers hit the same
 * clusters: every read must still see the original.
 */
static void test_guest_writes_with_snapshot_readers(void)
{
    GRand *rand = g_rand_new_with_seed(7);
    IoCo writers[8], readers[8];
    Fixture f;
    bool all_done;
    uint8_t *snapshot = g_malloc(IMG_SIZE);
    unsigned copy_reads = 0;

    fixture_open(&f, "");
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        /*
         * All in the first 1 MiB to collide often; long reads and short
         * writes, so that a write's copy-before-write can finish while a
         * read of the same source cluster is still in flight.
         */
        writers[i] = (IoCo) {
            .blk = f.guest, .rand = rand, .count = 3, .offset = -1,
            .span = 1 * MiB, .max_bytes = 8 * KiB,
        };
        readers[i] = (IoCo) {
            .blk = f.snap, .is_read = true, .expect = f.orig, .rand = rand,
            .count = 12, .offset = -1, .span = 1 * MiB, .max_bytes = 1 * MiB,
        };
        qemu_coroutine_enter(qemu_coroutine_create(io_co_entry, &readers[i]));
        qemu_coroutine_enter(qemu_coroutine_create(io_co_entry, &writers[i]));
    }
    do {
        aio_poll(qemu_get_aio_context(), true);
        all_done = true;
        for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
            all_done &= writers[i].done && readers[i].done;
        }
    } while (!all_done);
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        g_assert_cmpint(writers[i].ret, ==, 0);
        g_assert_cmpint(readers[i].ret, ==, 0);
        g_assert_cmpint(readers[i].mismatches, ==, 0);
    }
    for (int64_t u = 0; u < NUNITS; u++) {
        copy_reads += block_copy_is_cluster_copied(
            cbw_get_block_copy_state(f.cbw_bs), u * BCTEST_UNIT);
    }
    /* Some clusters were copied, and not all (readers used the source). */
    g_assert_cmpuint(copy_reads, >, 0);
    g_assert_cmpuint(copy_reads, <, NUNITS);
    /* The guest sees its own writes; the snapshot the original. */
    g_assert_cmpint(blk_pread(f.guest, 0, IMG_SIZE, snapshot, 0), ==, 0);
    g_assert_cmpint(memcmp(snapshot, bctest(f.src_bs)->data, IMG_SIZE), ==,
                    0);
    g_assert_cmpint(blk_pread(f.snap, 0, IMG_SIZE, snapshot, 0), ==, 0);
    g_assert_cmpint(memcmp(snapshot, f.orig, IMG_SIZE), ==, 0);
    assert_target_copied_clusters(&f);
    g_free(snapshot);
    g_rand_free(rand);
    fixture_close(&f);
}

/*
 * A snapshot read of a cluster not copied yet is parked in its source
 * read; a guest write to that cluster copies it and then waits for the
 * read, so the reader still gets the original bytes.
 */
static void test_frozen_read_holds_guest_write(void)
{
    int64_t victim = 4 * BCTEST_UNIT;
    IoCo reader, writer;
    Fixture f;

    fixture_open(&f, "");
    bctest_park_read(f.src_bs, victim + 512);
    io_start(&reader, f.snap, true, f.orig, NULL, 1, victim, BCTEST_UNIT);
    bctest_wait_parked(f.src_bs);

    io_start(&writer, f.guest, false, NULL, NULL, 1, victim + 512, 4096);
    poll_a_while();
    g_assert_false(writer.done);
    /* The copy-before-write itself went ahead. */
    g_assert_true(block_copy_is_cluster_copied(
        cbw_get_block_copy_state(f.cbw_bs), victim));
    g_assert_true(bctest(f.src_bs)->data[victim + 512] == f.orig[victim + 512]);

    bctest_resume(f.src_bs);
    AIO_WAIT_WHILE(!reader.done || !writer.done);
    g_assert_cmpint(reader.ret, ==, 0);
    g_assert_cmpint(reader.mismatches, ==, 0);
    g_assert_cmpint(writer.ret, ==, 0);
    g_assert_cmpint(bctest(f.src_bs)->data[victim + 512], ==, 0xEE);
    fixture_close(&f);
}

/* Discard on the snapshot: the range is dropped from copy map and view. */
static void test_snapshot_discard(void)
{
    BlockCopyState *bcs;
    uint8_t buf[4096];
    Fixture f;

    fixture_open(&f, "");
    bcs = cbw_get_block_copy_state(f.cbw_bs);
    /* Only whole clusters inside the range are dropped. */
    g_assert_cmpint(blk_pdiscard(f.snap, 6 * BCTEST_UNIT - 512,
                                 BCTEST_UNIT + 1024), ==, 0);
    g_assert_false(block_copy_is_cluster_copied(bcs, 5 * BCTEST_UNIT));
    g_assert_false(block_copy_is_cluster_copied(bcs, 7 * BCTEST_UNIT));
    g_assert_true(block_copy_is_cluster_copied(bcs, 6 * BCTEST_UNIT));
    g_assert_cmpint(blk_pdiscard(f.snap, 6 * BCTEST_UNIT, BCTEST_UNIT), ==,
                    0);
    g_assert_true(block_copy_is_cluster_copied(bcs, 6 * BCTEST_UNIT));

    /* Guest writes there no longer copy. */
    memset(buf, 0x55, sizeof(buf));
    g_assert_cmpint(blk_pwrite(f.guest, 6 * BCTEST_UNIT, sizeof(buf), buf, 0),
                    ==, 0);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[6], ==, 0);
    g_assert_cmpint(blk_pread(f.snap, 6 * BCTEST_UNIT + 100, 10, buf, 0), ==,
                    -EACCES);
    /* The snapshot cannot be written. */
    g_assert_cmpint(blk_pwrite(f.snap, 0, sizeof(buf), buf, 0), ==, -EPERM);
    /* The neighbours are still readable. */
    g_assert_cmpint(blk_pread(f.snap, 7 * BCTEST_UNIT, sizeof(buf), buf, 0),
                    ==, 0);
    g_assert_cmpint(memcmp(buf, f.orig + 7 * BCTEST_UNIT, sizeof(buf)), ==,
                    0);
    fixture_close(&f);
}

static void test_snapshot_block_status(void)
{
    BlockDriverState *file = NULL;
    int64_t pnum, map;
    uint8_t buf[512] = { 0 };
    Fixture f;
    int ret;

    fixture_open(&f, "");
    g_assert_cmpint(blk_pwrite(f.guest, 2 * BCTEST_UNIT, sizeof(buf), buf, 0),
                    ==, 0);
    /* Not copied: the data comes from the source. */
    ret = bdrv_block_status(f.snap_bs, 0, IMG_SIZE, &pnum, &map, &file);
    g_assert_cmpint(ret & BDRV_BLOCK_DATA, ==, BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, ==, 2 * BCTEST_UNIT);
    g_assert_true(file == f.src_bs);
    /* Copied by the guest write: from the target. */
    ret = bdrv_block_status(f.snap_bs, 2 * BCTEST_UNIT, IMG_SIZE / 2, &pnum,
                            &map, &file);
    g_assert_cmpint(ret & BDRV_BLOCK_DATA, ==, BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, ==, BCTEST_UNIT);
    g_assert_true(file == f.tgt_bs);
    fixture_close(&f);
}

static void test_on_cbw_error_break_guest_write(void)
{
    uint8_t buf[4096];
    Fixture f;

    fixture_open(&f, "");
    bctest(f.tgt_bs)->fail_write = ENOSPC;
    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(blk_pwrite(f.guest, BCTEST_UNIT, sizeof(buf), buf, 0), ==,
                    -ENOSPC);
    g_assert_cmpint(memcmp(bctest(f.src_bs)->data, f.orig, IMG_SIZE), ==, 0);
    /* The snapshot is intact. */
    bctest(f.tgt_bs)->fail_write = 0;
    g_assert_cmpint(blk_pread(f.snap, BCTEST_UNIT, sizeof(buf), buf, 0), ==,
                    0);
    g_assert_cmpint(memcmp(buf, f.orig + BCTEST_UNIT, sizeof(buf)), ==, 0);
    fixture_close(&f);
}

static void test_on_cbw_error_break_snapshot(void)
{
    uint8_t buf[4096];
    Fixture f;

    fixture_open(&f, ", \"on-cbw-error\": \"break-snapshot\"");
    bctest(f.tgt_bs)->fail_write = ENOSPC;
    memset(buf, 0x11, sizeof(buf));
    g_assert_cmpint(blk_pwrite(f.guest, BCTEST_UNIT, sizeof(buf), buf, 0), ==,
                    0);
    g_assert_cmpint(bctest(f.src_bs)->data[BCTEST_UNIT], ==, 0x11);
    bctest(f.tgt_bs)->fail_write = 0;
    /* The snapshot is broken for good, even where nothing changed. */
    g_assert_cmpint(blk_pread(f.snap, 0, sizeof(buf), buf, 0), ==, -ENOSPC);
    fixture_close(&f);
}

/*
 * cbw-timeout: a copy-before-write stuck in the source read fails the
 * guest write with ETIMEDOUT; the copy finishes later in the background.
 */
static void test_cbw_timeout(void)
{
    IoCo writer;
    Fixture f;
    int64_t start;

    fixture_open(&f, ", \"cbw-timeout\": 1");
    bctest_park_read(f.src_bs, 0);
    start = qemu_clock_get_ns();
    io_start(&writer, f.guest, false, NULL, NULL, 1, 0, 512);
    AIO_WAIT_WHILE(!writer.done);
    g_assert_cmpint(writer.ret, ==, -ETIMEDOUT);
    g_assert_cmpint(qemu_clock_get_ns() - start, >=, NANOSECONDS_PER_SECOND);
    g_assert_cmpint(memcmp(bctest(f.src_bs)->data, f.orig, 512), ==, 0);

    bctest_resume(f.src_bs);
    bdrv_drain(f.cbw_bs);
    g_assert_true(block_copy_is_cluster_copied(
        cbw_get_block_copy_state(f.cbw_bs), 0));
    g_assert_cmpint(memcmp(bctest(f.tgt_bs)->data, f.orig, BCTEST_UNIT), ==,
                    0);
    fixture_close(&f);
}

static void test_bitmap_option(void)
{
    BlockDriverState *src_bs, *tgt_bs, *cbw_bs;
    BdrvDirtyBitmap *bitmap;
    BlockCopyState *bcs;
    Error *err = NULL;

    src_bs = bctest_open("src0", IMG_SIZE, false);
    tgt_bs = bctest_open("tgt0", IMG_SIZE, false);
    bitmap = bdrv_create_dirty_bitmap(src_bs, 4096, "b0", &error_abort);
    bdrv_set_dirty_bitmap(bitmap, 3 * BCTEST_UNIT + 4096, 4096);

    cbw_bs = open_json("{\"driver\": \"copy-before-write\", "
                       "\"file\": \"src0\", \"target\": \"tgt0\", "
                       "\"bitmap\": {\"node\": \"src0\", \"name\": \"b0\"}}",
                       &error_abort);
    bcs = cbw_get_block_copy_state(cbw_bs);
    g_assert_cmpint(block_copy_bytes_remaining(bcs), ==, BCTEST_UNIT);
    g_assert_false(block_copy_is_cluster_copied(bcs, 3 * BCTEST_UNIT));
    bdrv_unref(cbw_bs);

    g_assert_null(open_json("{\"driver\": \"copy-before-write\", "
                            "\"file\": \"src0\", \"target\": \"tgt0\", "
                            "\"bitmap\": {\"node\": \"src0\", "
                            "\"name\": \"nope\"}}", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Dirty bitmap 'nope' not found");
    error_free(err);

    bdrv_release_dirty_bitmap(bitmap);
    bdrv_unref(src_bs);
    bdrv_unref(tgt_bs);
}

static void test_open_errors(void)
{
    BlockDriverState *src_bs = bctest_open("src0", IMG_SIZE, false);
    BlockDriverState *small_bs = bctest_open("small0", IMG_SIZE / 2, false);
    Error *err = NULL;

    g_assert_null(open_json("{\"driver\": \"copy-before-write\", "
                            "\"file\": \"src0\"}", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "A block device must be specified for \"target\"");
    error_free(err);
    err = NULL;
    g_assert_null(open_json("{\"driver\": \"copy-before-write\", "
                            "\"file\": \"src0\", \"target\": \"small0\"}",
                            &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "is smaller than"));
    error_free(err);
    err = NULL;
    g_assert_null(open_json("{\"driver\": \"copy-before-write\", "
                            "\"file\": \"small0\", \"target\": \"src0\", "
                            "\"on-cbw-error\": \"ignore\"}", &err));
    error_free_or_abort(&err);
    g_assert_null(open_json("{\"driver\": \"snapshot-access\", "
                            "\"file\": \"src0\"}", &err));
    g_assert_nonnull(strstr(error_get_pretty(err),
                            "must be a copy-before-write node"));
    error_free(err);
    /* Failed opens dropped their references again. */
    g_assert_cmpint(bdrv_get_refcnt(src_bs), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(small_bs), ==, 1);
    bdrv_unref(src_bs);
    bdrv_unref(small_bs);
}

/*
 * Copy-before-write of one 4 KiB guest write into a target with extended
 * L2 entries: only those 4 KiB reach the target (the rest of the cluster
 * stays unallocated there), and they hold the old data.
 */
static void assert_cbw_copies_subclusters(BlockDriverState *cbw_bs,
                                          BlockDriverState *tgt_bs,
                                          const uint8_t *orig)
{
    BlockBackend *guest = backend_on(cbw_bs);
    BlockBackend *tgt = backend_on(tgt_bs);
    uint8_t buf[4096];
    int64_t pnum;
    int ret;

    g_assert_cmpint(block_copy_cluster_size(cbw_get_block_copy_state(cbw_bs)),
                    ==, 4 * KiB);
    memset(buf, 0xee, sizeof(buf));
    g_assert_cmpint(blk_pwrite(guest, 64 * KiB + 8 * KiB, sizeof(buf), buf,
                               0), ==, 0);
    ret = bdrv_block_status(tgt_bs, 64 * KiB, 64 * KiB, &pnum, NULL, NULL);
    g_assert_false(ret & BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 8 * KiB);
    ret = bdrv_block_status(tgt_bs, 64 * KiB + 8 * KiB, 56 * KiB, &pnum,
                            NULL, NULL);
    g_assert_true(ret & BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 4 * KiB);
    ret = bdrv_block_status(tgt_bs, 64 * KiB + 12 * KiB, 52 * KiB, &pnum,
                            NULL, NULL);
    g_assert_false(ret & BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 52 * KiB);
    g_assert_cmpint(blk_pread(tgt, 64 * KiB + 8 * KiB, sizeof(buf), buf, 0),
                    ==, 0);
    g_assert_true(memcmp(buf, orig + 64 * KiB + 8 * KiB, sizeof(buf)) == 0);
    blk_unref(tgt);
    blk_unref(guest);
}

/*
 * qcow2 on both sides, guest writers through the filter, background run;
 * @opaque: the target has extended L2 entries.
 */
static void test_qcow2_point_in_time(gconstpointer opaque)
{
    bool extended_l2 = GPOINTER_TO_INT(opaque);
    g_autofree char *dir = g_dir_make_tmp("test-cbw-XXXXXX", NULL);
    g_autofree char *src_path = g_build_filename(dir, "src.qcow2", NULL);
    g_autofree char *tgt_path = g_build_filename(dir, "tgt.qcow2", NULL);
    g_autofree char *src_json = g_strdup_printf(
        "{\"driver\": \"qcow2\", \"node-name\": \"qsrc\", "
        "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}", src_path);
    g_autofree char *tgt_json = g_strdup_printf(
        "{\"driver\": \"qcow2\", \"node-name\": \"qtgt\", "
        "\"file\": {\"driver\": \"file\", \"filename\": \"%s\"}}", tgt_path);
    uint8_t *orig = g_malloc(IMG_SIZE), *check = g_malloc(IMG_SIZE);
    GRand *rand = g_rand_new_with_seed(99);
    BlockDriverState *src_bs, *tgt_bs, *cbw_bs;
    BlockBackend *guest, *tgt;
    QDict *create = qdict_new();
    IoCo writers[16];
    RunCo r;
    bool all_done;

    qdict_put_int(create, "size", IMG_SIZE);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), src_path, create,
                                &error_abort), ==, 0);
    qdict_put_str(create, "extended_l2", extended_l2 ? "on" : "off");
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), tgt_path, create,
                                &error_abort), ==, 0);
    qobject_unref(create);
    src_bs = open_json(src_json, &error_abort);
    tgt_bs = open_json(tgt_json, &error_abort);
    for (int64_t i = 0; i < IMG_SIZE; i++) {
        /* Leave every fourth cluster unallocated (zero). */
        orig[i] = (i / (64 * KiB)) % 4 == 3 ? 0 : (uint8_t)(i / 4096 + 1);
    }
    guest = backend_on(src_bs);
    for (int64_t off = 0; off < IMG_SIZE; off += 64 * KiB) {
        if ((off / (64 * KiB)) % 4 != 3) {
            g_assert_cmpint(blk_pwrite(guest, off, 64 * KiB, orig + off, 0),
                            ==, 0);
        }
    }
    blk_unref(guest);

    cbw_bs = open_json("{\"driver\": \"copy-before-write\", "
                       "\"node-name\": \"qcbw\", \"file\": \"qsrc\", "
                       "\"target\": \"qtgt\"}", &error_abort);
    if (extended_l2) {
        assert_cbw_copies_subclusters(cbw_bs, tgt_bs, orig);
    } else {
        g_assert_cmpint(block_copy_cluster_size(
                            cbw_get_block_copy_state(cbw_bs)), ==, 64 * KiB);
    }
    guest = backend_on(cbw_bs);
    r = (RunCo) { .bcs = cbw_get_block_copy_state(cbw_bs) };
    qemu_coroutine_enter(qemu_coroutine_create(run_co_entry, &r));
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        io_start(&writers[i], guest, false, NULL, rand, 4, -1, 0);
    }
    do {
        aio_poll(qemu_get_aio_context(), true);
        all_done = r.done;
        for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
            all_done &= writers[i].done;
            g_assert_cmpint(writers[i].ret, ==, 0);
        }
    } while (!all_done);
    g_assert_cmpint(r.ret, ==, 0);

    tgt = backend_on(tgt_bs);
    g_assert_cmpint(blk_pread(tgt, 0, IMG_SIZE, check, 0), ==, 0);
    g_assert_true(memcmp(check, orig, IMG_SIZE) == 0);
    g_assert_cmpint(blk_pread(guest, 0, IMG_SIZE, check, 0), ==, 0);
    g_assert_true(memcmp(check, orig, IMG_SIZE) != 0);

    blk_unref(tgt);
    blk_unref(guest);
    bdrv_unref(cbw_bs);
    bdrv_unref(src_bs);
    bdrv_unref(tgt_bs);
    unlink(src_path);
    unlink(tgt_path);
    rmdir(dir);
    g_rand_free(rand);
    g_free(orig);
    g_free(check);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bctest_register();

    g_test_add_func("/cbw/concurrent-guest-backup-and-readers",
                    test_concurrent_guest_backup_and_readers);
    g_test_add_func("/cbw/guest-writes-with-snapshot-readers",
                    test_guest_writes_with_snapshot_readers);
    g_test_add_func("/cbw/snapshot/frozen-read-holds-guest-write",
                    test_frozen_read_holds_guest_write);
    g_test_add_func("/cbw/snapshot/discard", test_snapshot_discard);
    g_test_add_func("/cbw/snapshot/block-status", test_snapshot_block_status);
    g_test_add_func("/cbw/on-cbw-error/break-guest-write",
                    test_on_cbw_error_break_guest_write);
    g_test_add_func("/cbw/on-cbw-error/break-snapshot",
                    test_on_cbw_error_break_snapshot);
    g_test_add_func("/cbw/cbw-timeout", test_cbw_timeout);
    g_test_add_func("/cbw/open/bitmap", test_bitmap_option);
    g_test_add_func("/cbw/open/errors", test_open_errors);
    g_test_add_data_func("/cbw/qcow2-point-in-time",
                         GINT_TO_POINTER(false), test_qcow2_point_in_time);
    g_test_add_data_func("/cbw/qcow2-point-in-time/extended-l2",
                         GINT_TO_POINTER(true), test_qcow2_point_in_time);
    return g_test_run();
}
