/*
 * Unit tests for block-copy: the background loop, copy-before-write via
 * the before-write notifier under concurrent writers, forced
 * interleavings (a guest write racing a task in flight, the loop skipping
 * what copy-before-write copied), error paths, cancel, sync=top and
 * initial copy maps.
 *
 * Sources and targets are "bctest" nodes (bctest-drv.c): requests
 * complete one loop iteration later and move data at completion, reads
 * are counted per 64 KiB unit (= the copy cluster), and reads can be
 * parked to force an interleaving.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block-backend.h"
#include "block/block-copy.h"
#include "block/dirty-bitmap.h"
#include "bctest-drv.h"

#define IMG_SIZE    (4 * MiB)
#define NUNITS      (IMG_SIZE / BCTEST_UNIT)

typedef struct Fixture {
    BlockDriverState *src_bs;
    BlockDriverState *tgt_bs;
    BlockBackend *src;          /* the "guest" writes here */
    BlockBackend *tgt;
    BlockCopyState *bcs;
    uint8_t *orig;              /* source contents at the start */
} Fixture;

static bool skip_every_fifth(int64_t unit)
{
    return unit % 5 == 0;
}

static void fixture_open(Fixture *f, bool holes, bool (*skip)(int64_t),
                         const BlockCopyOptions *opts)
{
    f->src_bs = bctest_open("src0", IMG_SIZE, holes);
    f->tgt_bs = bctest_open("tgt0", IMG_SIZE, false);
    bctest_fill(f->src_bs, 1, skip);
    f->src = blk_new();
    f->tgt = blk_new();
    g_assert_cmpint(blk_insert_bs(f->src, f->src_bs, &error_abort), ==, 0);
    g_assert_cmpint(blk_insert_bs(f->tgt, f->tgt_bs, &error_abort), ==, 0);
    f->bcs = block_copy_state_new(blk_root(f->src), blk_root(f->tgt), opts,
                                  &error_abort);
    f->orig = g_memdup2(bctest(f->src_bs)->data, IMG_SIZE);
}

static void fixture_close(Fixture *f)
{
    block_copy_state_free(f->bcs);
    blk_unref(f->src);
    blk_unref(f->tgt);
    bdrv_unref(f->src_bs);
    bdrv_unref(f->tgt_bs);
    g_free(f->orig);
    g_assert_null(bdrv_find_node("src0"));
    g_assert_null(bdrv_find_node("tgt0"));
}

/* The target holds the source's original contents, byte for byte. */
static void assert_target_is_original(Fixture *f)
{
    BCTestState *t = bctest(f->tgt_bs);

    for (int64_t u = 0; u < NUNITS; u++) {
        if (memcmp(t->data + u * BCTEST_UNIT, f->orig + u * BCTEST_UNIT,
                   BCTEST_UNIT)) {
            g_error("target unit %" PRId64 " differs from the original", u);
        }
    }
}

/* A block_copy_run() in its own coroutine. */
typedef struct RunCo {
    BlockCopyState *bcs;
    int ret;
    bool error_is_read;
    bool done;
} RunCo;

static void coroutine_fn run_co_entry(void *opaque)
{
    RunCo *r = opaque;

    r->ret = block_copy_run(r->bcs, &r->error_is_read);
    r->done = true;
}

static void run_start(RunCo *r, BlockCopyState *bcs)
{
    *r = (RunCo) { .bcs = bcs };
    qemu_coroutine_enter(qemu_coroutine_create(run_co_entry, r));
}

/* A block_copy() of one range in its own coroutine. */
typedef struct CopyCo {
    BlockCopyState *bcs;
    int64_t offset;
    int64_t bytes;
    int ret;
    bool error_is_read;
    bool done;
} CopyCo;

static void coroutine_fn copy_co_entry(void *opaque)
{
    CopyCo *c = opaque;

    c->ret = block_copy(c->bcs, c->offset, c->bytes, true, &c->error_is_read);
    c->done = true;
}

static int copy_sync(BlockCopyState *bcs, int64_t offset, int64_t bytes,
                     bool *error_is_read)
{
    CopyCo c = { .bcs = bcs, .offset = offset, .bytes = bytes };

    qemu_coroutine_enter(qemu_coroutine_create(copy_co_entry, &c));
    AIO_WAIT_WHILE(!c.done);
    *error_is_read = c.error_is_read;
    return c.ret;
}

/* A guest writer: @count writes of random ranges and random bytes. */
typedef struct WriterCo {
    BlockBackend *blk;
    GRand *rand;
    int count;
    int64_t offset;             /* >= 0: one write of @bytes there */
    int64_t bytes;
    uint8_t pattern;            /* the bytes written without @rand */
    BdrvRequestFlags flags;
    int ret;
    bool done;
} WriterCo;

static void coroutine_fn writer_co_entry(void *opaque)
{
    WriterCo *w = opaque;

    for (int i = 0; i < w->count && !w->ret; i++) {
        int64_t offset = w->offset >= 0 ? w->offset :
            g_rand_int_range(w->rand, 0, IMG_SIZE - 1);
        int64_t bytes = w->offset >= 0 ? w->bytes :
            g_rand_int_range(w->rand, 1, 200 * KiB);
        g_autofree uint8_t *buf = NULL;

        bytes = MIN(bytes, blk_getlength(w->blk) - offset);
        buf = g_malloc(bytes);
        memset(buf, w->rand ? 0xA0 + g_rand_int_range(w->rand, 0, 16) :
               w->pattern, bytes);
        w->ret = blk_co_pwrite(w->blk, offset, bytes, buf, w->flags);
    }
    w->done = true;
}

static void writer_enter(WriterCo *w)
{
    qemu_coroutine_enter(qemu_coroutine_create(writer_co_entry, w));
}

static void writer_start(WriterCo *w, BlockBackend *blk, GRand *rand,
                         int count, int64_t offset, int64_t bytes)
{
    *w = (WriterCo) {
        .blk = blk, .rand = rand, .count = count, .offset = offset,
        .bytes = bytes, .pattern = 0xEE,
    };
    writer_enter(w);
}

static void progress_cb(void *opaque, int64_t bytes)
{
    *(int64_t *)opaque += bytes;
}

static void test_run_full_copy(void)
{
    Fixture f;
    RunCo r;
    int64_t progress = 0;
    unsigned allocated = 0;
    BCTestState *src;

    fixture_open(&f, false, skip_every_fifth, NULL);
    src = bctest(f.src_bs);
    g_assert_cmpint(block_copy_cluster_size(f.bcs), ==, 64 * KiB);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, IMG_SIZE);
    block_copy_set_progress_callback(f.bcs, progress_cb, &progress);

    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);

    assert_target_is_original(&f);
    for (int64_t u = 0; u < NUNITS; u++) {
        /* Data units were read exactly once; zero units not at all. */
        g_assert_cmpuint(src->read_bytes[u], ==,
                         skip_every_fifth(u) ? 0 : BCTEST_UNIT);
        allocated += !skip_every_fifth(u);
        g_assert_true(block_copy_is_cluster_copied(f.bcs, u * BCTEST_UNIT));
    }
    /* Adjacent clusters were merged into fewer, larger reads. */
    g_assert_cmpuint(src->read_calls, <, allocated);
    /* Zero areas became write-zeroes on the target. */
    g_assert_cmpuint(bctest(f.tgt_bs)->zero_writes, >, 0);
    g_assert_cmpint(progress, ==, IMG_SIZE);
    g_assert_cmpint(block_copy_bytes_done(f.bcs), ==, IMG_SIZE);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, 0);
    fixture_close(&f);
}

/*
 * The 2013-style hook under load: many writers overwrite random ranges of
 * the source (unaligned, crossing clusters, often clusters the loop has
 * not reached or is copying right now) while the background loop runs.
 * The target must still be the original and every cluster must have
 * been read from the source exactly once.
 */
static void test_notifier_concurrent_writers(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 4 };
    GRand *rand = g_rand_new_with_seed(1234);
    WriterCo writers[32];
    BlockCopyNotifier *n;
    Fixture f;
    RunCo r;
    bool all_done;

    fixture_open(&f, false, NULL, &opts);
    n = block_copy_install_notifier(f.bcs, f.src_bs, false);

    run_start(&r, f.bcs);
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        writer_start(&writers[i], f.src, rand, 6, -1, 0);
    }
    do {
        aio_poll(qemu_get_aio_context(), true);
        all_done = r.done;
        for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
            all_done &= writers[i].done;
        }
    } while (!all_done);

    g_assert_cmpint(r.ret, ==, 0);
    for (int i = 0; i < G_N_ELEMENTS(writers); i++) {
        g_assert_cmpint(writers[i].ret, ==, 0);
    }
    assert_target_is_original(&f);
    for (int64_t u = 0; u < NUNITS; u++) {
        g_assert_cmpuint(bctest(f.src_bs)->read_bytes[u], ==,
                         BCTEST_UNIT);
    }
    /* The writers really changed the source. */
    g_assert_true(memcmp(bctest(f.src_bs)->data, f.orig, IMG_SIZE) != 0);

    block_copy_remove_notifier(n);
    g_rand_free(rand);
    fixture_close(&f);
}

/*
 * An unaligned guest write to a node with 4 KiB request alignment is a
 * serialising read-modify-write.  Its notifier's copy reads the same
 * node; that read must not wait for the write (which waits for the copy),
 * and must still see the old data.
 */
static void test_notifier_serialising_write(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 4 };
    BlockDriverState *img = bctest_open("src0", IMG_SIZE, false);
    BlockDriverState *tgt_bs = bctest_open("tgt0", IMG_SIZE, false);
    QDict *o = keyval_parse("driver=blkdebug,image=src0,align=4096",
                            NULL, &error_abort);
    BlockDriverState *src_bs = bdrv_open(NULL, NULL, o, BDRV_O_RDWR,
                                         &error_abort);
    BlockBackend *src = blk_new();
    BlockBackend *tgt = blk_new();
    g_autofree uint8_t *orig = NULL;
    BlockCopyNotifier *n;
    BlockCopyState *bcs;
    uint8_t buf[100];

    g_assert_cmpint(src_bs->bl.request_alignment, ==, 4096);
    bctest_fill(img, 1, NULL);
    orig = g_memdup2(bctest(img)->data, IMG_SIZE);
    g_assert_cmpint(blk_insert_bs(src, src_bs, &error_abort), ==, 0);
    g_assert_cmpint(blk_insert_bs(tgt, tgt_bs, &error_abort), ==, 0);
    bcs = block_copy_state_new(blk_root(src), blk_root(tgt), &opts,
                               &error_abort);
    n = block_copy_install_notifier(bcs, src_bs, false);

    memset(buf, 0xee, sizeof(buf));
    g_assert_cmpint(blk_pwrite(src, 1000, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(bctest(img)->data[1000], ==, 0xee);
    g_assert_cmpint(bctest(img)->data[999], ==, orig[999]);

    block_copy_remove_notifier(n);
    /* Waits for the copy, which writes behind the guest write. */
    block_copy_state_free(bcs);
    g_assert_cmpint(memcmp(bctest(tgt_bs)->data, orig, BCTEST_UNIT), ==, 0);
    blk_unref(src);
    blk_unref(tgt);
    bdrv_unref(src_bs);
    bdrv_unref(img);
    bdrv_unref(tgt_bs);
    g_assert_null(bdrv_find_node("src0"));
}

/* Polls the loop a few times without blocking. */
static void poll_a_while(void)
{
    for (int i = 0; i < 50; i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
}

/* Polls without blocking until *done, at most a bounded number of times. */
static void poll_until(bool *done)
{
    for (int i = 0; i < 10000 && !*done; i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
}

/*
 * A copy-before-write releases the guest write once the bytes it covers
 * are read; the rest of the cluster is read afterwards.  Until then a
 * write to the rest waits, a write to the same bytes does not, and the
 * target still ends up with the old cluster, every byte read once.
 */
/*
 * Opens @f with a notifier and lets a 4 KiB guest write at @victim
 * complete while the rest of its cluster's copy is parked in the read.
 */
static BlockCopyNotifier *released_cow_start(Fixture *f, int64_t victim)
{
    static const BlockCopyOptions opts = {
        .max_chunk = 64 * KiB, .max_workers = 1,
    };
    BlockCopyNotifier *n;
    WriterCo w;

    fixture_open(f, false, NULL, &opts);
    n = block_copy_install_notifier(f->bcs, f->src_bs, false);
    bctest_park_read(f->src_bs, victim + 32 * KiB);
    writer_start(&w, f->src, NULL, 1, victim, 4 * KiB);
    bctest_wait_parked(f->src_bs);
    poll_until(&w.done);
    g_assert_true(w.done);
    g_assert_cmpint(w.ret, ==, 0);
    g_assert_cmpint(bctest(f->src_bs)->data[victim], ==, 0xEE);
    return n;
}

static void test_cow_releases_after_ready_range(void)
{
    int64_t victim = 5 * BCTEST_UNIT;
    BlockCopyNotifier *n;
    WriterCo w_rest, w_same;
    bool copied = false;
    Fixture f;

    n = released_cow_start(&f, victim);
    g_assert_false(block_copy_is_cluster_copied(f.bcs, victim));

    writer_start(&w_rest, f.src, NULL, 1, victim + 40 * KiB, 512);
    poll_a_while();
    g_assert_false(w_rest.done);
    g_assert_true(bctest(f.src_bs)->data[victim + 40 * KiB] ==
                  f.orig[victim + 40 * KiB]);
    writer_start(&w_same, f.src, NULL, 1, victim + 1024, 1024);
    poll_until(&w_same.done);
    g_assert_true(w_same.done);

    bctest_resume(f.src_bs);
    poll_until(&w_rest.done);
    g_assert_true(w_rest.done);
    g_assert_cmpint(w_rest.ret, ==, 0);
    for (int i = 0; i < 10000 && !copied; i++) {
        aio_poll(qemu_get_aio_context(), false);
        copied = block_copy_is_cluster_copied(f.bcs, victim);
    }
    g_assert_true(copied);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[5], ==, BCTEST_UNIT);
    g_assert_cmpint(memcmp(bctest(f.tgt_bs)->data + victim, f.orig + victim,
                           BCTEST_UNIT), ==, 0);
    g_assert_cmpint(block_copy_error(f.bcs), ==, 0);

    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * A read that fails after the guest write was released cannot be retried:
 * the source already holds the new bytes, so the point in time is lost.
 * The guest write succeeded; block_copy_error() reports the loss.
 */
static void test_cow_rest_read_error(void)
{
    BlockCopyNotifier *n;
    Fixture f;

    n = released_cow_start(&f, 5 * BCTEST_UNIT);
    bctest(f.src_bs)->fail_read = EIO;
    bctest_resume(f.src_bs);
    for (int i = 0; i < 10000 && !block_copy_error(f.bcs); i++) {
        aio_poll(qemu_get_aio_context(), false);
    }
    g_assert_cmpint(block_copy_error(f.bcs), ==, -EIO);
    bctest(f.src_bs)->fail_read = 0;

    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * A guest write to a cluster whose background copy is in flight (parked
 * in the source read) waits for that task and does not copy again.
 */
static void test_cow_waits_for_task_in_flight(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 1 };
    int64_t victim = 5 * BCTEST_UNIT;
    BlockCopyNotifier *n;
    WriterCo w;
    Fixture f;
    RunCo r;

    fixture_open(&f, false, NULL, &opts);
    n = block_copy_install_notifier(f.bcs, f.src_bs, false);
    bctest_park_read(f.src_bs, victim + 100);
    run_start(&r, f.bcs);
    bctest_wait_parked(f.src_bs);
    g_assert_false(block_copy_is_cluster_copied(f.bcs, victim));

    writer_start(&w, f.src, NULL, 1, victim + 4096, 512);
    poll_a_while();
    g_assert_false(w.done);
    g_assert_true(bctest(f.src_bs)->data[victim + 4096] == f.orig[victim + 4096]);

    bctest_resume(f.src_bs);
    AIO_WAIT_WHILE(!w.done || !r.done);
    g_assert_cmpint(w.ret, ==, 0);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[5], ==, BCTEST_UNIT);
    g_assert_true(bctest(f.src_bs)->data[victim + 4096] != f.orig[victim + 4096]);
    assert_target_is_original(&f);

    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * While the loop is parked early in the image, a guest write copies a
 * later cluster; the loop then skips it (still one source read).
 */
static void test_run_skips_cow_copied(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 1 };
    BlockCopyNotifier *n;
    WriterCo w;
    Fixture f;
    RunCo r;

    fixture_open(&f, false, NULL, &opts);
    n = block_copy_install_notifier(f.bcs, f.src_bs, false);
    bctest_park_read(f.src_bs, 2 * BCTEST_UNIT);
    run_start(&r, f.bcs);
    bctest_wait_parked(f.src_bs);

    /* Crosses units 10 and 11: both are copied before the write. */
    writer_start(&w, f.src, NULL, 1, 11 * BCTEST_UNIT - 512, 1024);
    AIO_WAIT_WHILE(!w.done);
    g_assert_cmpint(w.ret, ==, 0);
    /* The copies write behind the guest write; the loop is still parked. */
    AIO_WAIT_WHILE(!block_copy_is_cluster_copied(f.bcs, 10 * BCTEST_UNIT) ||
                   !block_copy_is_cluster_copied(f.bcs, 11 * BCTEST_UNIT));
    g_assert_false(r.done);
    g_assert_false(block_copy_is_cluster_copied(f.bcs, 12 * BCTEST_UNIT));
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[10], ==, BCTEST_UNIT);

    bctest_resume(f.src_bs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    for (int64_t u = 0; u < NUNITS; u++) {
        g_assert_cmpuint(bctest(f.src_bs)->read_bytes[u], ==,
                         BCTEST_UNIT);
    }
    assert_target_is_original(&f);
    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * Write-back (block_copy_install_notifier(..., true), deferred writes in
 * block/io.c): a guest write into clusters still to be copied completes
 * before its copy, and until it lands a later read waits for it, block
 * status reports its range as data, dirty bitmaps count it, and a flush
 * waits for it.  (The node has a dirty bitmap "b0".)  A write
 * over unit 4 (data, whose copy is parked in its read) and unit 5 (a
 * hole) is held that way.
 */
static BlockCopyNotifier *write_back_start(Fixture *f, WriterCo *w,
                                           BdrvRequestFlags flags)
{
    static const BlockCopyOptions opts = {
        .max_chunk = 64 * KiB, .max_workers = 1,
    };
    BlockCopyNotifier *n;

    fixture_open(f, true, skip_every_fifth, &opts);
    n = block_copy_install_notifier(f->bcs, f->src_bs, true);
    bdrv_create_dirty_bitmap(f->src_bs, BCTEST_UNIT, "b0", &error_abort);
    bctest_park_read(f->src_bs, 4 * BCTEST_UNIT);
    *w = (WriterCo) {
        .blk = f->src, .count = 1, .offset = 4 * BCTEST_UNIT,
        .bytes = 2 * BCTEST_UNIT, .pattern = 0xEE, .flags = flags,
    };
    writer_enter(w);
    return n;
}

/* write_back_start() of a deferred write: it completed, and is held. */
static BlockCopyNotifier *write_back_start_deferred(Fixture *f, WriterCo *w)
{
    BlockCopyNotifier *n = write_back_start(f, w, 0);

    bctest_wait_parked(f->src_bs);
    g_assert_true(w->done);
    g_assert_cmpint(w->ret, ==, 0);
    g_assert_cmpuint(f->src_bs->deferred_writes, ==, 1);
    return n;
}

/* A coroutine reading one unit through @blk. */
typedef struct ReaderCo {
    BlockBackend *blk;
    int64_t offset;
    uint8_t buf[BCTEST_UNIT];
    int ret;
    bool done;
} ReaderCo;

static void coroutine_fn reader_co_entry(void *opaque)
{
    ReaderCo *r = opaque;

    r->ret = blk_co_pread(r->blk, r->offset, BCTEST_UNIT, r->buf, 0);
    r->done = true;
}

static void test_write_back_deferred(void)
{
    const int64_t victim = 4 * BCTEST_UNIT, hole = 5 * BCTEST_UNIT;
    BdrvDirtyBitmap *bm;
    ReaderCo rd = { 0 };
    int64_t pnum;
    WriterCo w;
    Fixture f;
    BlockCopyNotifier *n = write_back_start_deferred(&f, &w);

    g_assert_cmpint(bctest(f.src_bs)->data[victim], ==, f.orig[victim]);
    /* A completed write is in the dirty bitmaps, landed or not. */
    bm = bdrv_find_dirty_bitmap(f.src_bs, "b0");
    g_assert_cmpint(bdrv_get_dirty_count(bm), ==, 2 * BCTEST_UNIT);

    /* The hole reads as data now: the write is about to fill it. */
    g_assert_cmpint(bdrv_block_status(f.src_bs, hole, BCTEST_UNIT, &pnum,
                                      NULL, NULL) & BDRV_BLOCK_DATA, !=, 0);
    g_assert_cmpint(pnum, ==, BCTEST_UNIT);
    /* Past the write, the node answers again. */
    g_assert_cmpint(bdrv_block_status(f.src_bs, hole + BCTEST_UNIT,
                                      BCTEST_UNIT, &pnum, NULL, NULL) &
                    BDRV_BLOCK_DATA, !=, 0);

    rd.blk = f.src;
    rd.offset = hole;
    qemu_coroutine_enter(qemu_coroutine_create(reader_co_entry, &rd));
    poll_a_while();
    g_assert_false(rd.done);

    bctest_resume(f.src_bs);
    poll_until(&rd.done);
    g_assert_true(rd.done);
    g_assert_cmpint(rd.ret, ==, 0);
    g_assert_cmpint(rd.buf[0], ==, 0xEE);
    g_assert_cmpint(blk_flush(f.src), ==, 0);
    g_assert_cmpuint(f.src_bs->deferred_writes, ==, 0);
    g_assert_cmpint(bctest(f.src_bs)->data[victim], ==, 0xEE);
    g_assert_true(block_copy_is_cluster_copied(f.bcs, victim));
    g_assert_true(block_copy_is_cluster_copied(f.bcs, hole));

    block_copy_remove_notifier(n);
    block_copy_state_free(f.bcs);
    f.bcs = NULL;
    g_assert_cmpint(memcmp(bctest(f.tgt_bs)->data + victim, f.orig + victim,
                           2 * BCTEST_UNIT), ==, 0);
    fixture_close(&f);
}

/* With FUA the guest write waits for its copy and lands before it completes. */
static void test_write_back_fua(void)
{
    WriterCo w;
    Fixture f;
    BlockCopyNotifier *n = write_back_start(&f, &w, BDRV_REQ_FUA);

    bctest_wait_parked(f.src_bs);
    poll_a_while();
    g_assert_false(w.done);
    g_assert_cmpuint(f.src_bs->deferred_writes, ==, 0);
    bctest_resume(f.src_bs);
    poll_until(&w.done);
    g_assert_cmpint(w.ret, ==, 0);
    g_assert_cmpint(bctest(f.src_bs)->data[4 * BCTEST_UNIT], ==, 0xEE);

    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * A deferred write that fails has lost its data: every flush from then on
 * fails, and later writes are not deferred (they fail themselves).
 */
static void test_write_back_error(void)
{
    uint8_t buf[512] = { 0 };
    WriterCo w;
    Fixture f;
    BlockCopyNotifier *n = write_back_start_deferred(&f, &w);

    bctest(f.src_bs)->fail_write = ENOSPC;
    bctest_resume(f.src_bs);
    g_assert_cmpint(blk_flush(f.src), ==, -ENOSPC);
    g_assert_cmpint(blk_flush(f.src), ==, -ENOSPC);
    g_assert_cmpint(blk_pwrite(f.src, 9 * BCTEST_UNIT, sizeof(buf), buf, 0),
                    ==, -ENOSPC);
    g_assert_cmpuint(f.src_bs->deferred_writes, ==, 0);
    bctest(f.src_bs)->fail_write = 0;
    g_assert_cmpint(blk_flush(f.src), ==, -ENOSPC);

    block_copy_remove_notifier(n);
    fixture_close(&f);
}

/*
 * A later write over a deferred one waits for it, so it lands last; and
 * no more than 64 writes are deferred at once (the next ones wait for
 * their copies themselves).  Needs more clusters than the fixture has.
 */
static void test_write_back_order_and_bound(void)
{
    enum { SIZE = 8 * MiB, WRITERS = 100 };
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 1 };
    BlockDriverState *src_bs = bctest_open("src0", SIZE, false);
    BlockDriverState *tgt_bs = bctest_open("tgt0", SIZE, false);
    BlockBackend *src = blk_new();
    BlockBackend *tgt = blk_new();
    g_autofree uint8_t *orig = NULL;
    WriterCo first, later, many[WRITERS];
    BlockCopyNotifier *n;
    BlockCopyState *bcs;
    int done = 0;

    bctest_fill(src_bs, 1, NULL);
    orig = g_memdup2(bctest(src_bs)->data, SIZE);
    g_assert_cmpint(blk_insert_bs(src, src_bs, &error_abort), ==, 0);
    g_assert_cmpint(blk_insert_bs(tgt, tgt_bs, &error_abort), ==, 0);
    bcs = block_copy_state_new(blk_root(src), blk_root(tgt), &opts,
                               &error_abort);
    n = block_copy_install_notifier(bcs, src_bs, true);

    bctest_park_read(src_bs, 0);
    writer_start(&first, src, NULL, 1, 0, 4096);
    bctest_wait_parked(src_bs);
    g_assert_true(first.done);
    later = (WriterCo) {
        .blk = src, .count = 1, .offset = 512, .bytes = 512, .pattern = 0xDD,
    };
    writer_enter(&later);
    g_assert_false(later.done);

    /* Distinct clusters past the held one, started without polling. */
    for (int i = 0; i < WRITERS; i++) {
        writer_start(&many[i], src, NULL, 1, (1 + i) * BCTEST_UNIT, 4096);
        done += many[i].done;
    }
    g_assert_cmpint(done, ==, 64 - 1);
    g_assert_cmpuint(src_bs->deferred_writes, ==, 64);

    bctest_resume(src_bs);
    for (int i = 0; i < WRITERS; i++) {
        poll_until(&many[i].done);
        g_assert_cmpint(many[i].ret, ==, 0);
    }
    poll_until(&later.done);
    g_assert_cmpint(later.ret, ==, 0);
    g_assert_cmpint(blk_flush(src), ==, 0);
    g_assert_cmpuint(src_bs->deferred_writes, ==, 0);
    g_assert_cmpint(bctest(src_bs)->data[600], ==, 0xDD);
    g_assert_cmpint(bctest(src_bs)->data[1024], ==, 0xEE);
    g_assert_cmpint(bctest(src_bs)->data[4096], ==, orig[4096]);

    block_copy_remove_notifier(n);
    block_copy_state_free(bcs);
    g_assert_cmpint(memcmp(bctest(tgt_bs)->data, orig,
                           (WRITERS + 1) * BCTEST_UNIT), ==, 0);
    blk_unref(src);
    blk_unref(tgt);
    bdrv_unref(src_bs);
    bdrv_unref(tgt_bs);
    g_assert_null(bdrv_find_node("src0"));
}

/*
 * Two overlapping block_copy() calls: the second waits for the first
 * one's task instead of copying the cluster again.
 */
static void test_overlapping_calls(void)
{
    Fixture f;
    CopyCo a = { 0 }, b = { 0 };

    fixture_open(&f, false, NULL, NULL);
    a = (CopyCo) { .bcs = f.bcs, .offset = 0, .bytes = 3 * BCTEST_UNIT };
    b = (CopyCo) { .bcs = f.bcs, .offset = BCTEST_UNIT, .bytes = 100 };
    bctest_park_read(f.src_bs, BCTEST_UNIT);
    qemu_coroutine_enter(qemu_coroutine_create(copy_co_entry, &a));
    bctest_wait_parked(f.src_bs);
    qemu_coroutine_enter(qemu_coroutine_create(copy_co_entry, &b));
    poll_a_while();
    g_assert_false(b.done);
    bctest_resume(f.src_bs);
    AIO_WAIT_WHILE(!a.done || !b.done);
    g_assert_cmpint(a.ret, ==, 0);
    g_assert_cmpint(b.ret, ==, 0);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[1], ==, BCTEST_UNIT);
    g_assert_cmpint(block_copy_bytes_done(f.bcs), ==, 3 * BCTEST_UNIT);
    fixture_close(&f);
}

static void test_error_source_eio(void)
{
    Fixture f;
    BlockDriverState *dbg_bs;
    BlockBackend *dbg;
    BlockCopyState *bcs;
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"blkdebug\", \"image\": \"src0\", "
        "\"inject-error\": [{\"iotype\": \"read\", \"errno\": 5, "
        "\"once\": true, \"sector\": %" PRId64 "}]}",
        (3 * BCTEST_UNIT + 4096) / 512);
    bool error_is_read = false;
    int64_t remaining;

    fixture_open(&f, false, NULL, NULL);
    dbg_bs = bdrv_open(NULL, NULL, qdict_from_json(json, &error_abort),
                       BDRV_O_RDWR, &error_abort);
    dbg = blk_new();
    g_assert_cmpint(blk_insert_bs(dbg, dbg_bs, &error_abort), ==, 0);
    bcs = block_copy_state_new(blk_root(dbg), blk_root(f.tgt), NULL,
                               &error_abort);

    remaining = block_copy_bytes_remaining(bcs);
    g_assert_cmpint(copy_sync(bcs, 3 * BCTEST_UNIT, 10, &error_is_read), ==,
                    -EIO);
    g_assert_true(error_is_read);
    /* The cluster stays to be copied and nothing counts as done. */
    g_assert_false(block_copy_is_cluster_copied(bcs, 3 * BCTEST_UNIT));
    g_assert_cmpint(block_copy_bytes_remaining(bcs), ==, remaining);
    g_assert_cmpint(block_copy_bytes_done(bcs), ==, 0);

    /* The rule fired once: a retry copies the cluster. */
    g_assert_cmpint(copy_sync(bcs, 3 * BCTEST_UNIT, 10, &error_is_read), ==,
                    0);
    g_assert_true(block_copy_is_cluster_copied(bcs, 3 * BCTEST_UNIT));
    g_assert_cmpint(memcmp(bctest(f.tgt_bs)->data + 3 * BCTEST_UNIT,
                           f.orig + 3 * BCTEST_UNIT, BCTEST_UNIT), ==, 0);

    block_copy_state_free(bcs);
    blk_unref(dbg);
    bdrv_unref(dbg_bs);
    fixture_close(&f);
}

static void test_error_target_enospc(void)
{
    Fixture f;
    RunCo r;
    bool error_is_read = true;

    fixture_open(&f, false, NULL, NULL);
    bctest(f.tgt_bs)->fail_write = ENOSPC;
    g_assert_cmpint(copy_sync(f.bcs, 0, 2 * BCTEST_UNIT, &error_is_read), ==,
                    -ENOSPC);
    g_assert_false(error_is_read);
    g_assert_false(block_copy_is_cluster_copied(f.bcs, 0));
    g_assert_false(block_copy_is_cluster_copied(f.bcs, BCTEST_UNIT));

    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, -ENOSPC);
    g_assert_false(r.error_is_read);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, IMG_SIZE);

    /* Space again: everything is copied on the next run. */
    bctest(f.tgt_bs)->fail_write = 0;
    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    assert_target_is_original(&f);
    fixture_close(&f);
}

/* Cancel during a rate-limit sleep: returns at once, nothing left over. */
static void test_cancel_while_sleeping(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 1 };
    unsigned coroutines;
    Fixture f;
    RunCo r;
    int64_t start;

    fixture_open(&f, false, NULL, &opts);
    coroutines = qemu_coroutine_count();
    /* One cluster a second: the loop sleeps after the first one. */
    block_copy_set_speed(f.bcs, 64 * KiB);
    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(block_copy_bytes_done(f.bcs) == 0);
    poll_a_while();
    g_assert_false(r.done);

    start = qemu_clock_get_ns();
    block_copy_cancel(f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(qemu_clock_get_ns() - start, <, NANOSECONDS_PER_SECOND / 2);
    g_assert_cmpint(r.ret, ==, -ECANCELED);
    g_assert_true(block_copy_is_cancelled(f.bcs));
    g_assert_cmpint(block_copy_bytes_done(f.bcs) +
                    block_copy_bytes_remaining(f.bcs), ==, IMG_SIZE);
    g_assert_cmpuint(qemu_coroutine_count(), ==, coroutines);
    fixture_close(&f);
}

/* Cancel with tasks in flight: they finish, then the loop returns. */
static void test_cancel_with_tasks_in_flight(void)
{
    BlockCopyOptions opts = { .max_chunk = 64 * KiB, .max_workers = 1 };
    unsigned coroutines;
    Fixture f;
    RunCo r;

    fixture_open(&f, false, NULL, &opts);
    coroutines = qemu_coroutine_count();
    bctest_park_read(f.src_bs, 0);
    run_start(&r, f.bcs);
    bctest_wait_parked(f.src_bs);
    block_copy_cancel(f.bcs);
    poll_a_while();
    g_assert_false(r.done);
    bctest_resume(f.src_bs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, -ECANCELED);
    /* The parked task completed and stays done. */
    g_assert_true(block_copy_is_cluster_copied(f.bcs, 0));
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), >, 0);
    g_assert_cmpuint(qemu_coroutine_count(), ==, coroutines);
    fixture_close(&f);
}

static bool skip_unallocated_units(int64_t unit)
{
    return !(unit < 4 || unit == 10 || unit == NUNITS - 1);
}

typedef struct ResetCo {
    BlockCopyState *bcs;
    int ret;
    bool done;
} ResetCo;

static void coroutine_fn reset_co_entry(void *opaque)
{
    ResetCo *c = opaque;
    int64_t offset = 0, count;

    while (offset < IMG_SIZE) {
        c->ret = block_copy_reset_unallocated(c->bcs, offset, &count);
        if (c->ret < 0) {
            break;
        }
        g_assert_cmpint(count, >, 0);
        g_assert_cmpint(count % BCTEST_UNIT, ==, 0);
        offset += count;
    }
    c->done = true;
}

/* sync=top: clusters the source's top layer does not allocate are skipped. */
static void test_reset_unallocated(void)
{
    Fixture f;
    ResetCo c;
    RunCo r;

    fixture_open(&f, true, skip_unallocated_units, NULL);
    c = (ResetCo) { .bcs = f.bcs };
    qemu_coroutine_enter(qemu_coroutine_create(reset_co_entry, &c));
    AIO_WAIT_WHILE(!c.done);
    g_assert_cmpint(c.ret, >=, 0);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, 6 * BCTEST_UNIT);
    for (int64_t u = 0; u < NUNITS; u++) {
        g_assert_cmpint(block_copy_is_cluster_copied(f.bcs, u * BCTEST_UNIT),
                        ==, skip_unallocated_units(u));
    }
    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpint(block_copy_bytes_done(f.bcs), ==, 6 * BCTEST_UNIT);
    for (int64_t u = 0; u < NUNITS; u++) {
        g_assert_cmpuint(bctest(f.src_bs)->read_bytes[u], ==,
                         skip_unallocated_units(u) ? 0 : BCTEST_UNIT);
    }
    fixture_close(&f);
}

/* An initial map with a finer granularity marks the clusters it touches. */
static void test_set_copy_map(void)
{
    HBitmap *map = hbitmap_alloc(IMG_SIZE, 12);
    Fixture f;
    RunCo r;

    fixture_open(&f, false, NULL, NULL);
    hbitmap_set(map, 2 * BCTEST_UNIT + 8192, 4096);
    hbitmap_set(map, 7 * BCTEST_UNIT - 4096, 8192);    /* units 6 and 7 */
    block_copy_set_copy_map(f.bcs, map);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, 3 * BCTEST_UNIT);
    g_assert_false(block_copy_is_cluster_copied(f.bcs, 2 * BCTEST_UNIT));
    g_assert_false(block_copy_is_cluster_copied(f.bcs, 6 * BCTEST_UNIT));
    g_assert_false(block_copy_is_cluster_copied(f.bcs, 7 * BCTEST_UNIT));
    g_assert_true(block_copy_is_cluster_copied(f.bcs, 3 * BCTEST_UNIT));

    run_start(&r, f.bcs);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[2], ==, BCTEST_UNIT);
    g_assert_cmpuint(bctest(f.src_bs)->read_bytes[3], ==, 0);
    g_assert_cmpint(block_copy_bytes_done(f.bcs), ==, 3 * BCTEST_UNIT);

    block_copy_mark_none(f.bcs);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, 0);
    block_copy_mark_all(f.bcs);
    g_assert_cmpint(block_copy_bytes_remaining(f.bcs), ==, IMG_SIZE);
    hbitmap_free(map);
    fixture_close(&f);
}

static void test_state_new_errors(void)
{
    Fixture f;
    BlockDriverState *small_bs = bctest_open("small0", IMG_SIZE / 2, false);
    BlockBackend *small = blk_new();
    BlockCopyOptions opts = { .min_cluster_size = 3 * KiB };
    BlockCopyOptions big = { .min_cluster_size = 1 * MiB };
    BlockCopyOptions compress = { .compress = true };
    BlockCopyState *bcs;
    Error *err = NULL;

    fixture_open(&f, false, NULL, NULL);
    g_assert_cmpint(blk_insert_bs(small, small_bs, &error_abort), ==, 0);

    g_assert_null(block_copy_state_new(blk_root(f.src), blk_root(small), NULL,
                                       &err));
    g_assert_nonnull(strstr(error_get_pretty(err), "is smaller than"));
    error_free(err);
    err = NULL;
    g_assert_null(block_copy_state_new(blk_root(f.src), blk_root(f.src), NULL,
                                       &err));
    error_free_or_abort(&err);
    g_assert_null(block_copy_state_new(blk_root(f.src), blk_root(f.tgt),
                                       &opts, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "min-cluster-size needs to be a power of 2");
    error_free(err);
    err = NULL;
    g_assert_null(block_copy_state_new(blk_root(f.src), blk_root(f.tgt),
                                       &compress, &err));
    error_free_or_abort(&err);

    bcs = block_copy_state_new(blk_root(f.src), blk_root(f.tgt), &big,
                               &error_abort);
    g_assert_cmpint(block_copy_cluster_size(bcs), ==, 1 * MiB);
    block_copy_state_free(bcs);

    blk_unref(small);
    bdrv_unref(small_bs);
    fixture_close(&f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bctest_register();

    g_test_add_func("/block-copy/run/full-copy", test_run_full_copy);
    g_test_add_func("/block-copy/run/skips-cow-copied",
                    test_run_skips_cow_copied);
    g_test_add_func("/block-copy/notifier/serialising-write",
                    test_notifier_serialising_write);
    g_test_add_func("/block-copy/notifier/concurrent-writers",
                    test_notifier_concurrent_writers);
    g_test_add_func("/block-copy/notifier/waits-for-task-in-flight",
                    test_cow_waits_for_task_in_flight);
    g_test_add_func("/block-copy/notifier/releases-after-ready-range",
                    test_cow_releases_after_ready_range);
    g_test_add_func("/block-copy/notifier/rest-read-error",
                    test_cow_rest_read_error);
    g_test_add_func("/block-copy/write-back/deferred",
                    test_write_back_deferred);
    g_test_add_func("/block-copy/write-back/fua", test_write_back_fua);
    g_test_add_func("/block-copy/write-back/error", test_write_back_error);
    g_test_add_func("/block-copy/write-back/order-and-bound",
                    test_write_back_order_and_bound);
    g_test_add_func("/block-copy/overlapping-calls", test_overlapping_calls);
    g_test_add_func("/block-copy/error/source-eio", test_error_source_eio);
    g_test_add_func("/block-copy/error/target-enospc",
                    test_error_target_enospc);
    g_test_add_func("/block-copy/cancel/while-sleeping",
                    test_cancel_while_sleeping);
    g_test_add_func("/block-copy/cancel/tasks-in-flight",
                    test_cancel_with_tasks_in_flight);
    g_test_add_func("/block-copy/map/reset-unallocated",
                    test_reset_unallocated);
    g_test_add_func("/block-copy/map/set-copy-map", test_set_copy_map);
    g_test_add_func("/block-copy/state-new-errors", test_state_new_errors);
    return g_test_run();
}
