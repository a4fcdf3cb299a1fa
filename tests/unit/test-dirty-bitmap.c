/*
 * Dirty bitmap tests: the BdrvDirtyBitmap API on a null-co node (ranges,
 * merge, clear/restore, busy/readonly/inconsistent refusals, successor
 * life cycle), marking through real writes on a qcow2 node, and qcow2
 * persistence (store at close, load at open, in_use while open, remove,
 * v2 refusal, refcounts).
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"

#define DISK_SIZE (64 * MiB)

static char *tmpdir;

static BlockDriverState *open_null(void)
{
    QDict *opts = qdict_new();
    BlockDriverState *bs;

    qdict_put_str(opts, "driver", "null-co");
    qdict_put_int(opts, "size", DISK_SIZE);
    bs = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
    g_assert_nonnull(bs);
    return bs;
}

static char *create_qcow2(const char *name, const char *compat,
                          int cluster_size)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    QDict *opts = qdict_new();

    qdict_put_int(opts, "size", DISK_SIZE);
    qdict_put_str(opts, "compat", compat);
    qdict_put_int(opts, "cluster_size", cluster_size);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts,
                                &error_abort), ==, 0);
    qobject_unref(opts);
    return path;
}

static BlockBackend *open_qcow2(const char *path, int flags)
{
    QDict *opts = qdict_new();
    BlockBackend *blk;

    qdict_put_str(opts, "driver", "qcow2");
    if (flags & BDRV_O_UNMAP) {
        qdict_put_str(opts, "discard", "unmap");
    }
    blk = blk_new_open(path, NULL, opts, flags, &error_abort);
    g_assert_nonnull(blk);
    return blk;
}

/* Asserts that *errp holds exactly @msg, then frees it. */
static void assert_error(Error **errp, const char *msg)
{
    g_assert_nonnull(*errp);
    g_assert_cmpstr(error_get_pretty(*errp), ==, msg);
    error_free(*errp);
    *errp = NULL;
}

static int count_bitmaps(BlockDriverState *bs, bool anonymous_only)
{
    int n = 0;

    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (!anonymous_only || !bdrv_dirty_bitmap_name(bm)) {
            n++;
        }
    }
    return n;
}

/* ---- API on a null-co node ---- */

static void test_create(void)
{
    BlockDriverState *bs = open_null();
    BdrvDirtyBitmap *a, *anon;
    Error *err = NULL;

    g_assert_null(bdrv_create_dirty_bitmap(bs, 1000, "x", &err));
    assert_error(&err, "Granularity must be power of 2 and at least 512");
    g_assert_null(bdrv_create_dirty_bitmap(bs, 256, "x", &err));
    assert_error(&err, "Granularity must be power of 2 and at least 512");

    a = bdrv_create_dirty_bitmap(bs, 65536, "a", &error_abort);
    g_assert_null(bdrv_create_dirty_bitmap(bs, 65536, "a", &err));
    assert_error(&err, "Bitmap already exists: a");
    anon = bdrv_create_dirty_bitmap(bs, 512, NULL, &error_abort);

    g_assert(bdrv_find_dirty_bitmap(bs, "a") == a);
    g_assert_null(bdrv_find_dirty_bitmap(bs, "b"));
    g_assert(bdrv_dirty_bitmap_first(bs) == a);
    g_assert(bdrv_dirty_bitmap_next(a) == anon);
    g_assert_cmpint(bdrv_dirty_bitmap_size(a), ==, DISK_SIZE);
    g_assert_cmpuint(bdrv_dirty_bitmap_granularity(anon), ==, 512);
    g_assert(bdrv_dirty_bitmap_enabled(a));
    g_assert(!bdrv_dirty_bitmap_get_persistence(a));
    /* null-co has no cluster size: the default is 64 KiB. */
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 65536);

    g_assert_null(block_dirty_bitmap_add(bs, "", false, 0, false, false,
                                         &err));
    assert_error(&err, "Bitmap name cannot be empty");
    g_assert_null(block_dirty_bitmap_add(bs, "p", false, 0, true, false,
                                         &err));
    g_assert_nonnull(err);
    g_assert(g_str_has_prefix(error_get_pretty(err),
                              "Can't store persistent bitmaps to "));
    error_free(err);
    err = NULL;

    bdrv_release_dirty_bitmap(anon);
    g_assert_cmpint(count_bitmaps(bs, false), ==, 1);
    /* Closing the node frees what is left. */
    bdrv_unref(bs);
}

static void test_ranges(void)
{
    BlockDriverState *bs = open_null();
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 4096, "r",
                                                   &error_abort);
    BdrvDirtyBitmapIter *iter;
    int64_t start, count, pnum;

    /* Unaligned ranges cover every granule they touch. */
    bdrv_set_dirty_bitmap(bm, 4095, 2);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 8192);
    g_assert(bdrv_dirty_bitmap_get(bm, 0));
    g_assert(bdrv_dirty_bitmap_get(bm, 8191));
    g_assert(!bdrv_dirty_bitmap_get(bm, 8192));

    bdrv_set_dirty_bitmap(bm, 1 * MiB, 64 * 1024);
    /* Past the end is clamped, not a crash. */
    bdrv_set_dirty_bitmap(bm, DISK_SIZE - 4096, 1 * MiB);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 8192 + 65536 + 4096);

    g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(bm, 8192, -1), ==, 1 * MiB);
    g_assert_cmpint(bdrv_dirty_bitmap_next_zero(bm, 1 * MiB, -1), ==,
                    1 * MiB + 65536);
    g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(bm, 8192, 4096), ==, -1);
    g_assert(bdrv_dirty_bitmap_next_dirty_area(bm, 8192, DISK_SIZE, 16384,
                                               &start, &count));
    g_assert_cmpint(start, ==, 1 * MiB);
    g_assert_cmpint(count, ==, 16384);
    g_assert(!bdrv_dirty_bitmap_next_dirty_area(bm, 8192, 1 * MiB, INT64_MAX,
                                                &start, &count));
    g_assert(bdrv_dirty_bitmap_status(bm, 1 * MiB, 1 * MiB, &pnum));
    g_assert_cmpint(pnum, ==, 65536);

    iter = bdrv_dirty_iter_new(bm);
    g_assert_cmpint(bdrv_dirty_iter_next(iter), ==, 0);
    g_assert_cmpint(bdrv_dirty_iter_next(iter), ==, 4096);
    g_assert_cmpint(bdrv_dirty_iter_next(iter), ==, 1 * MiB);
    bdrv_set_dirty_iter(iter, DISK_SIZE - 8192);
    g_assert_cmpint(bdrv_dirty_iter_next(iter), ==, DISK_SIZE - 4096);
    g_assert_cmpint(bdrv_dirty_iter_next(iter), ==, -1);
    bdrv_dirty_iter_free(iter);

    bdrv_reset_dirty_bitmap(bm, 1 * MiB, 32768);
    g_assert(!bdrv_dirty_bitmap_get(bm, 1 * MiB));
    g_assert(bdrv_dirty_bitmap_get(bm, 1 * MiB + 32768));
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 8192 + 32768 + 4096);

    /* bdrv_set_dirty() marks enabled bitmaps only. */
    bdrv_disable_dirty_bitmap(bm);
    bdrv_set_dirty(bs, 2 * MiB, 4096);
    g_assert(!bdrv_dirty_bitmap_get(bm, 2 * MiB));
    bdrv_enable_dirty_bitmap(bm);
    bdrv_set_dirty(bs, 2 * MiB, 4096);
    g_assert(bdrv_dirty_bitmap_get(bm, 2 * MiB));
    bdrv_unref(bs);
}

static void test_clear_restore(void)
{
    BlockDriverState *bs = open_null();
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "c",
                                                   &error_abort);
    HBitmap *backup = NULL;

    bdrv_set_dirty_bitmap(bm, 0, 3 * 65536);
    bdrv_clear_dirty_bitmap(bm, &backup);
    g_assert_nonnull(backup);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 0);
    /* The cleared bitmap keeps working while the undo state is held. */
    bdrv_set_dirty_bitmap(bm, 10 * MiB, 1);
    bdrv_restore_dirty_bitmap(bm, backup);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 3 * 65536);
    g_assert(!bdrv_dirty_bitmap_get(bm, 10 * MiB));

    bdrv_clear_dirty_bitmap(bm, NULL);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 0);
    bdrv_unref(bs);
}

static void test_merge(void)
{
    BlockDriverState *bs = open_null();
    BlockDriverState *other;
    QDict *opts = qdict_new();
    BdrvDirtyBitmap *dst, *src, *fine, *small;
    HBitmap *backup = NULL;
    Error *err = NULL;

    dst = bdrv_create_dirty_bitmap(bs, 65536, "dst", &error_abort);
    src = bdrv_create_dirty_bitmap(bs, 65536, "src", &error_abort);
    fine = bdrv_create_dirty_bitmap(bs, 512, "fine", &error_abort);
    bdrv_disable_dirty_bitmap(dst);
    bdrv_disable_dirty_bitmap(src);
    bdrv_disable_dirty_bitmap(fine);

    bdrv_set_dirty_bitmap(dst, 0, 65536);
    bdrv_set_dirty_bitmap(src, 4 * MiB, 65536);
    g_assert(bdrv_merge_dirty_bitmap(dst, src, &backup, &error_abort));
    g_assert_cmpint(bdrv_get_dirty_count(dst), ==, 2 * 65536);
    g_assert(bdrv_dirty_bitmap_get(dst, 4 * MiB));
    bdrv_restore_dirty_bitmap(dst, backup);
    g_assert_cmpint(bdrv_get_dirty_count(dst), ==, 65536);

    /* A fine source sets every coarse destination bit it touches. */
    bdrv_set_dirty_bitmap(fine, 8 * MiB + 70000, 512);
    g_assert(bdrv_merge_dirty_bitmap(dst, fine, NULL, &error_abort));
    g_assert(bdrv_dirty_bitmap_get(dst, 8 * MiB + 65536));
    g_assert(!bdrv_dirty_bitmap_get(dst, 8 * MiB));
    /* And the other way round. */
    g_assert(bdrv_merge_dirty_bitmap(fine, src, NULL, &error_abort));
    g_assert(bdrv_dirty_bitmap_get(fine, 4 * MiB + 65535));

    qdict_put_str(opts, "driver", "null-co");
    qdict_put_int(opts, "size", DISK_SIZE / 2);
    other = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
    small = bdrv_create_dirty_bitmap(other, 65536, "small", &error_abort);
    g_assert(!bdrv_merge_dirty_bitmap(dst, small, NULL, &err));
    assert_error(&err, "Bitmaps are of different sizes (destination size is "
                 "67108864, source size is 33554432) and can't be merged");
    g_assert_cmpint(block_dirty_bitmap_merge(bs, "dst", bs, "nope", &err),
                    ==, -1);
    assert_error(&err, "Dirty bitmap 'nope' not found");

    bdrv_dirty_bitmap_set_inconsistent(src);
    g_assert(!bdrv_dirty_bitmap_enabled(src));
    g_assert(!bdrv_merge_dirty_bitmap(dst, src, NULL, &err));
    assert_error(&err, "Bitmap 'src' is inconsistent and cannot be used");
    bdrv_unref(other);
    bdrv_unref(bs);
}

static void test_busy_refusal(void)
{
    BlockDriverState *bs = open_null();
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "b",
                                                   &error_abort);
    const char *busy = "Bitmap 'b' is currently in use by another operation "
                       "and cannot be used";
    Error *err = NULL;

    bdrv_set_dirty_bitmap(bm, 0, 65536);
    bdrv_dirty_bitmap_set_busy(bm, true);
    g_assert_cmpint(block_dirty_bitmap_clear(bs, "b", &err), ==, -1);
    assert_error(&err, busy);
    g_assert_cmpint(block_dirty_bitmap_enable(bs, "b", &err), ==, -1);
    assert_error(&err, busy);
    g_assert_cmpint(block_dirty_bitmap_disable(bs, "b", &err), ==, -1);
    assert_error(&err, busy);
    g_assert_null(block_dirty_bitmap_remove(bs, "b", true, &err));
    assert_error(&err, busy);
    g_assert_cmpint(block_dirty_bitmap_merge(bs, "b", bs, "b", &err), ==, -1);
    assert_error(&err, busy);
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &err), ==, -1);
    assert_error(&err, busy);
    /* Nothing was changed by the refused operations. */
    g_assert(bdrv_find_dirty_bitmap(bs, "b") == bm);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 65536);

    bdrv_dirty_bitmap_set_busy(bm, false);
    bdrv_dirty_bitmap_set_readonly(bm, true);
    g_assert_cmpint(block_dirty_bitmap_clear(bs, "b", &err), ==, -1);
    assert_error(&err, "Bitmap 'b' is readonly and cannot be modified");
    /* Enabling is allowed on read-only bitmaps (ALLOW_RO). */
    g_assert_cmpint(block_dirty_bitmap_disable(bs, "b", &error_abort), ==, 0);
    bdrv_dirty_bitmap_set_readonly(bm, false);

    g_assert_cmpint(block_dirty_bitmap_clear(bs, "b", &error_abort), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 0);
    g_assert_null(block_dirty_bitmap_remove(bs, "b", true, &error_abort));
    g_assert_null(bdrv_find_dirty_bitmap(bs, "b"));
    g_assert_cmpint(block_dirty_bitmap_clear(bs, "b", &err), ==, -1);
    assert_error(&err, "Dirty bitmap 'b' not found");
    bdrv_unref(bs);
}

static void test_successor(void)
{
    BlockDriverState *bs = open_null();
    BdrvDirtyBitmap *bm = bdrv_create_dirty_bitmap(bs, 65536, "s",
                                                   &error_abort);
    Error *err = NULL;

    g_assert_null(bdrv_dirty_bitmap_abdicate(bm, &err));
    assert_error(&err, "Cannot relinquish control if there's no successor "
                 "present");
    g_assert_null(bdrv_reclaim_dirty_bitmap(bm, &err));
    assert_error(&err, "Cannot reclaim a successor when none is present");

    /* Success path (bitmap-mode on-success): keep only the new writes. */
    bdrv_set_dirty(bs, 0, 65536);
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort),
                    ==, 0);
    g_assert(bdrv_dirty_bitmap_has_successor(bm));
    g_assert(bdrv_dirty_bitmap_busy(bm));
    g_assert(!bdrv_dirty_bitmap_enabled(bm));
    g_assert_cmpint(count_bitmaps(bs, true), ==, 1);
    bdrv_set_dirty(bs, 1 * MiB, 65536);
    /* The frozen bitmap does not see writes made while the job runs. */
    g_assert(!bdrv_dirty_bitmap_get(bm, 1 * MiB));
    g_assert(bdrv_dirty_bitmap_abdicate(bm, &error_abort) == bm);
    g_assert_cmpstr(bdrv_dirty_bitmap_name(bm), ==, "s");
    g_assert(!bdrv_dirty_bitmap_busy(bm));
    g_assert(bdrv_dirty_bitmap_enabled(bm));
    g_assert(!bdrv_dirty_bitmap_get(bm, 0));
    g_assert(bdrv_dirty_bitmap_get(bm, 1 * MiB));
    g_assert_cmpint(count_bitmaps(bs, true), ==, 0);

    /* Failure path: both sets of bits are kept. */
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort),
                    ==, 0);
    bdrv_set_dirty(bs, 2 * MiB, 65536);
    g_assert(bdrv_reclaim_dirty_bitmap(bm, &error_abort) == bm);
    g_assert(bdrv_dirty_bitmap_get(bm, 1 * MiB));
    g_assert(bdrv_dirty_bitmap_get(bm, 2 * MiB));
    g_assert(!bdrv_dirty_bitmap_busy(bm));
    g_assert(bdrv_dirty_bitmap_enabled(bm));
    g_assert_cmpint(count_bitmaps(bs, true), ==, 0);

    /* A disabled bitmap's successor is disabled too. */
    bdrv_disable_dirty_bitmap(bm);
    g_assert_cmpint(bdrv_dirty_bitmap_create_successor(bm, &error_abort),
                    ==, 0);
    bdrv_set_dirty(bs, 3 * MiB, 65536);
    bdrv_reclaim_dirty_bitmap(bm, &error_abort);
    g_assert(!bdrv_dirty_bitmap_get(bm, 3 * MiB));
    g_assert(!bdrv_dirty_bitmap_enabled(bm));

    /* Releasing a frozen bitmap releases its successor as well. */
    bdrv_dirty_bitmap_create_successor(bm, &error_abort);
    bdrv_dirty_bitmap_set_busy(bm, false);
    bdrv_release_dirty_bitmap(bm);
    g_assert_cmpint(count_bitmaps(bs, false), ==, 0);
    bdrv_unref(bs);
}

/* ---- through writes on a real qcow2 node ---- */

static void test_writes_mark(void)
{
    g_autofree char *path = create_qcow2("writes.qcow2", "1.1", 65536);
    BlockBackend *blk = open_qcow2(path, BDRV_O_RDWR | BDRV_O_UNMAP);
    BlockDriverState *bs = blk_bs(blk);
    BdrvDirtyBitmap *bm, *off;
    uint8_t buf[4096];

    memset(buf, 0x5a, sizeof(buf));
    bm = bdrv_create_dirty_bitmap(bs, 512, "w", &error_abort);
    off = bdrv_create_dirty_bitmap(bs, 512, "off", &error_abort);
    bdrv_disable_dirty_bitmap(off);
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(bs), ==, 65536);

    g_assert_cmpint(blk_pwrite(blk, 1000, 100, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 5 * MiB, 8192, 0), ==, 0);
    g_assert_cmpint(blk_pdiscard(blk, 10 * MiB, 65536), ==, 0);

    /* [1000, 1100) touches the granules at 512 and 1024. */
    g_assert(bdrv_dirty_bitmap_get(bm, 512));
    g_assert(bdrv_dirty_bitmap_get(bm, 1024));
    g_assert(!bdrv_dirty_bitmap_get(bm, 0));
    g_assert(!bdrv_dirty_bitmap_get(bm, 1536));
    g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(bm, 1536, -1), ==, 5 * MiB);
    g_assert_cmpint(bdrv_dirty_bitmap_next_zero(bm, 5 * MiB, -1), ==,
                    5 * MiB + 8192);
    g_assert_cmpint(bdrv_dirty_bitmap_next_dirty(bm, 5 * MiB + 8192, -1), ==,
                    10 * MiB);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 1024 + 8192 + 65536);
    g_assert_cmpint(bdrv_get_dirty_count(off), ==, 0);

    /* Reads do not mark. */
    g_assert_cmpint(blk_pread(blk, 20 * MiB, 4096, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 1024 + 8192 + 65536);

    /* Growing the node grows its bitmaps; the new area is clean. */
    g_assert_cmpint(blk_truncate(blk, DISK_SIZE * 2, false,
                                 PREALLOC_MODE_OFF, 0, &error_abort), ==, 0);
    g_assert_cmpint(bdrv_dirty_bitmap_size(bm), ==, DISK_SIZE * 2);
    g_assert_cmpint(blk_pwrite(blk, DISK_SIZE + 4096, 512, buf, 0), ==, 0);
    g_assert(bdrv_dirty_bitmap_get(bm, DISK_SIZE + 4096));
    blk_unref(blk);
}

/* ---- qcow2 persistence ---- */

static void test_persistence(void)
{
    g_autofree char *path = create_qcow2("persist.qcow2", "1.1", 65536);
    BlockBackend *blk = open_qcow2(path, BDRV_O_RDWR);
    BlockBackend *peek;
    BlockDriverState *bs = blk_bs(blk);
    BdrvDirtyBitmap *a, *b, *fine;
    BdrvCheckResult res = { 0 };
    uint8_t buf[512] = { 1 };

    a = block_dirty_bitmap_add(bs, "a", false, 0, true, false, &error_abort);
    b = block_dirty_bitmap_add(bs, "b", true, 131072, true, true,
                               &error_abort);
    fine = block_dirty_bitmap_add(bs, "fine", true, 512, true, false,
                                  &error_abort);
    /* Non-persistent bitmaps are not stored. */
    block_dirty_bitmap_add(bs, "temp", false, 0, false, false, &error_abort);
    g_assert(a && b && fine);
    bdrv_set_dirty_bitmap(b, 30 * MiB, 1);
    g_assert_cmpint(blk_pwrite(blk, 512, 512, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 40 * MiB + 1024, 512, buf, 0), ==, 0);
    /* Bits in the last bitmap data cluster: near the disk's end. */
    g_assert_cmpint(blk_pwrite(blk, DISK_SIZE - 512, 512, buf, 0), ==, 0);
    blk_unref(blk);

    blk = open_qcow2(path, BDRV_O_RDWR);
    bs = blk_bs(blk);
    g_assert_cmpint(count_bitmaps(bs, false), ==, 3);
    g_assert_null(bdrv_find_dirty_bitmap(bs, "temp"));
    a = bdrv_find_dirty_bitmap(bs, "a");
    b = bdrv_find_dirty_bitmap(bs, "b");
    fine = bdrv_find_dirty_bitmap(bs, "fine");
    g_assert(a && b && fine);
    g_assert(bdrv_dirty_bitmap_get_persistence(a));
    g_assert(!bdrv_dirty_bitmap_inconsistent(a));
    g_assert(!bdrv_dirty_bitmap_readonly(a));
    g_assert(bdrv_dirty_bitmap_enabled(a));
    g_assert(!bdrv_dirty_bitmap_enabled(b));
    g_assert_cmpuint(bdrv_dirty_bitmap_granularity(b), ==, 131072);
    g_assert_cmpuint(bdrv_dirty_bitmap_granularity(fine), ==, 512);
    g_assert_cmpint(bdrv_get_dirty_count(a), ==, 3 * 65536);
    g_assert_cmpint(bdrv_get_dirty_count(b), ==, 131072);
    g_assert(bdrv_dirty_bitmap_get(b, 30 * MiB));
    g_assert_cmpint(bdrv_get_dirty_count(fine), ==, 3 * 512);
    g_assert(bdrv_dirty_bitmap_get(fine, 512));
    g_assert(bdrv_dirty_bitmap_get(fine, 40 * MiB + 1024));
    g_assert(bdrv_dirty_bitmap_get(fine, DISK_SIZE - 512));
    g_assert(!bdrv_dirty_bitmap_get(fine, 40 * MiB + 512));

    /*
     * While the image is open read-write its bitmaps are in_use on disk:
     * a second, read-only opener sees them as inconsistent.
     */
    peek = open_qcow2(path, 0);
    a = bdrv_find_dirty_bitmap(blk_bs(peek), "a");
    g_assert_nonnull(a);
    g_assert(bdrv_dirty_bitmap_inconsistent(a));
    g_assert(bdrv_dirty_bitmap_readonly(a));
    blk_unref(peek);

    /* Removal takes the bitmap out of the image at once. */
    g_assert_null(block_dirty_bitmap_remove(bs, "b", true, &error_abort));
    peek = open_qcow2(path, 0);
    g_assert_null(bdrv_find_dirty_bitmap(blk_bs(peek), "b"));
    g_assert_nonnull(bdrv_find_dirty_bitmap(blk_bs(peek), "fine"));
    blk_unref(peek);
    blk_unref(blk);

    /* Read-only open: consistent, read-only bitmaps with the same bits. */
    blk = open_qcow2(path, 0);
    bs = blk_bs(blk);
    g_assert_cmpint(count_bitmaps(bs, false), ==, 2);
    fine = bdrv_find_dirty_bitmap(bs, "fine");
    g_assert(!bdrv_dirty_bitmap_inconsistent(fine));
    g_assert(bdrv_dirty_bitmap_readonly(fine));
    g_assert(bdrv_has_readonly_bitmaps(bs));
    g_assert_cmpint(bdrv_get_dirty_count(fine), ==, 3 * 512);
    blk_unref(blk);

    /* Several store cycles leak nothing (our check counts bitmap tables). */
    for (int i = 0; i < 3; i++) {
        blk = open_qcow2(path, BDRV_O_RDWR);
        g_assert_cmpint(blk_pwrite(blk, i * MiB, 512, buf, 0), ==, 0);
        blk_unref(blk);
    }
    blk = open_qcow2(path, BDRV_O_CHECK);
    g_assert_cmpint(bdrv_check(blk_bs(blk), &res, 0), ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    g_assert_cmpint(res.corruptions, ==, 0);
    fine = bdrv_find_dirty_bitmap(blk_bs(blk), "fine");
    g_assert(bdrv_dirty_bitmap_get(fine, 2 * MiB));
    blk_unref(blk);

    /* Removing the last bitmaps removes the extension; still no leaks. */
    blk = open_qcow2(path, BDRV_O_RDWR);
    block_dirty_bitmap_remove(blk_bs(blk), "a", true, &error_abort);
    block_dirty_bitmap_remove(blk_bs(blk), "fine", true, &error_abort);
    blk_unref(blk);
    blk = open_qcow2(path, BDRV_O_CHECK);
    g_assert(!bdrv_has_dirty_bitmaps(blk_bs(blk)));
    memset(&res, 0, sizeof(res));
    g_assert_cmpint(bdrv_check(blk_bs(blk), &res, 0), ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    blk_unref(blk);
}

static void test_store_limits(void)
{
    g_autofree char *v2 = create_qcow2("v2.qcow2", "0.10", 65536);
    g_autofree char *small = create_qcow2("small.qcow2", "1.1", 512);
    BlockBackend *blk = open_qcow2(v2, BDRV_O_RDWR);
    g_autofree char *longname = g_strnfill(1024, 'n');
    g_autofree char *msg = NULL;
    Error *err = NULL;

    g_assert_null(block_dirty_bitmap_add(blk_bs(blk), "x", false, 0, true,
                                         false, &err));
    msg = g_strdup_printf("Can't make bitmap 'x' persistent in '%s': Cannot "
                          "store dirty bitmaps in qcow2 v2 files",
                          bdrv_get_node_name(blk_bs(blk)));
    assert_error(&err, msg);
    /* Non-persistent bitmaps are fine on v2. */
    g_assert_nonnull(block_dirty_bitmap_add(blk_bs(blk), "x", false, 0,
                                            false, false, &error_abort));
    blk_unref(blk);

    blk = open_qcow2(small, BDRV_O_RDWR);
    /* 512-byte clusters: the default granularity is clamped to 4 KiB. */
    g_assert_cmpuint(bdrv_get_default_bitmap_granularity(blk_bs(blk)), ==,
                     4096);
    g_assert_null(block_dirty_bitmap_add(blk_bs(blk), longname, false, 0,
                                         true, false, &err));
    g_assert_nonnull(err);
    g_assert(g_str_has_suffix(error_get_pretty(err),
                              "Name length exceeds maximum (1023 "
                              "characters)"));
    error_free(err);
    blk_unref(blk);
}

/* Removes the scratch images (the directory holds only ours). */
static void cleanup_tmpdir(void)
{
    GDir *dir = g_dir_open(tmpdir, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *p = g_build_filename(tmpdir, name, NULL);
        unlink(p);
    }
    if (dir) {
        g_dir_close(dir);
    }
    rmdir(tmpdir);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    tmpdir = g_dir_make_tmp("test-dirty-bitmap-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/dirty-bitmap/create", test_create);
    g_test_add_func("/dirty-bitmap/ranges", test_ranges);
    g_test_add_func("/dirty-bitmap/clear-restore", test_clear_restore);
    g_test_add_func("/dirty-bitmap/merge", test_merge);
    g_test_add_func("/dirty-bitmap/busy-refusal", test_busy_refusal);
    g_test_add_func("/dirty-bitmap/successor", test_successor);
    g_test_add_func("/dirty-bitmap/writes-mark", test_writes_mark);
    g_test_add_func("/qcow2-bitmap/persistence", test_persistence);
    g_test_add_func("/qcow2-bitmap/store-limits", test_store_limits);
    ret = g_test_run();

    cleanup_tmpdir();
    g_free(tmpdir);
    return ret;
}
