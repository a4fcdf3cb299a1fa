/*
 * Unit tests for the block core: node lifecycle and reference counting,
 * option handling, the request path (alignment, read-modify-write,
 * serialisation, before-write notifiers, zero detection), block status
 * through a backing chain, drain and the BlockBackend wrappers.
 *
 * The tests use "testmem", an in-memory driver defined here, so they
 * exercise the generic code alone.  It can stand as a protocol or (with
 * a "backing" option) as a format with a backing file, can demand a
 * request alignment, and can park requests until the test releases them.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"

typedef struct {
    uint8_t *data;
    int64_t size;
    uint8_t *allocated;         /* one byte per 512-byte sector */
    uint32_t align;
    bool park;                  /* park writes until released */
    Coroutine *parked;
    int writes;                 /* driver-level write calls */
    int64_t last_write_offset;
    int64_t last_write_bytes;
    int zero_writes;
    bool *closed_flag;          /* set on close, for lifecycle tests */
} TestMemState;

static int testmem_open(BlockDriverState *bs, QDict *options, int flags,
                        Error **errp)
{
    TestMemState *s = bs->opaque;
    uint64_t size, align;
    int64_t closed_ptr;

    if (!qdict_get_size_opt(options, "size", 1 * MiB, &size, errp) ||
        !qdict_get_size_opt(options, "align", 1, &align, errp) ||
        !qdict_get_int_opt(options, "closed-flag", 0, &closed_ptr, errp)) {
        return -EINVAL;
    }
    if (qdict_get_try_str(options, "fail")) {
        error_setg(errp, "testmem: asked to fail");
        return -EINVAL;
    }
    s->size = size;
    s->align = align;
    s->data = g_malloc0(size);
    s->allocated = g_malloc0(DIV_ROUND_UP(size, 512));
    s->closed_flag = (bool *)(uintptr_t)closed_ptr;
    snprintf(bs->backing_file, sizeof(bs->backing_file), "%s",
             qdict_get_try_str(options, "backing-file") ?
             qdict_get_try_str(options, "backing-file") : "");
    return 0;
}

static void testmem_close(BlockDriverState *bs)
{
    TestMemState *s = bs->opaque;

    if (s->closed_flag) {
        *s->closed_flag = true;
    }
    g_free(s->data);
    g_free(s->allocated);
}

static void testmem_refresh_limits(BlockDriverState *bs, Error **errp)
{
    TestMemState *s = bs->opaque;

    bs->bl.request_alignment = s->align;
}

static int64_t testmem_getlength(BlockDriverState *bs)
{
    TestMemState *s = bs->opaque;

    return s->size;
}

static void testmem_mark(TestMemState *s, int64_t offset, int64_t bytes,
                         bool alloc)
{
    for (int64_t sec = offset / 512; sec < DIV_ROUND_UP(offset + bytes, 512);
         sec++) {
        s->allocated[sec] = alloc;
    }
}

static int coroutine_fn testmem_co_preadv(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes,
                                          QEMUIOVector *qiov,
                                          BdrvRequestFlags flags)
{
    TestMemState *s = bs->opaque;

    g_assert_cmpint(offset % s->align, ==, 0);
    g_assert_cmpint(bytes % s->align, ==, 0);
    g_assert_cmpint(offset + bytes, <=, s->size);
    /* Unallocated sectors come from the backing file, if any. */
    for (int64_t pos = offset; pos < offset + bytes; pos += 512) {
        int64_t len = MIN(512, offset + bytes - pos);
        if (s->allocated[pos / 512] || !bs->backing) {
            qemu_iovec_from_buf(qiov, pos - offset, s->data + pos, len);
        } else {
            uint8_t buf[512];
            int ret = bdrv_co_pread(bs->backing, pos, len, buf, 0);
            if (ret < 0) {
                return ret;
            }
            qemu_iovec_from_buf(qiov, pos - offset, buf, len);
        }
    }
    return 0;
}

static int coroutine_fn testmem_co_pwritev(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    TestMemState *s = bs->opaque;

    g_assert_cmpint(offset % s->align, ==, 0);
    g_assert_cmpint(bytes % s->align, ==, 0);
    if (s->park) {
        s->parked = qemu_coroutine_self();
        qemu_coroutine_yield();
    }
    if (offset + bytes > s->size) {
        return -ENOSPC;
    }
    qemu_iovec_to_buf(qiov, 0, s->data + offset, bytes);
    testmem_mark(s, offset, bytes, true);
    s->writes++;
    s->last_write_offset = offset;
    s->last_write_bytes = bytes;
    return 0;
}

static int coroutine_fn testmem_co_pwrite_zeroes(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 BdrvRequestFlags flags)
{
    TestMemState *s = bs->opaque;

    memset(s->data + offset, 0, bytes);
    testmem_mark(s, offset, bytes, true);
    s->zero_writes++;
    return 0;
}

static int coroutine_fn testmem_co_block_status(BlockDriverState *bs,
                                                bool want_zero,
                                                int64_t offset, int64_t bytes,
                                                int64_t *pnum, int64_t *map,
                                                BlockDriverState **file)
{
    TestMemState *s = bs->opaque;
    bool alloc = s->allocated[offset / 512];
    int64_t n = 0;

    while (n < bytes && !!s->allocated[(offset + n) / 512] == alloc) {
        n += 512 - (offset + n) % 512;
    }
    *pnum = MIN(n, bytes);
    *map = offset;
    *file = bs;
    return alloc ? BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID : 0;
}

static const char *const testmem_runtime_opts[] = {
    "size", "align", "closed-flag", "fail", "backing-file", NULL,
};

static BlockDriver bdrv_testmem = {
    .format_name = "testmem",
    .instance_size = sizeof(TestMemState),
    .is_format = true,
    .supports_backing = true,
    .runtime_opts = testmem_runtime_opts,
    .bdrv_open = testmem_open,
    .bdrv_close = testmem_close,
    .bdrv_refresh_limits = testmem_refresh_limits,
    .bdrv_getlength = testmem_getlength,
    .bdrv_co_preadv = testmem_co_preadv,
    .bdrv_co_pwritev = testmem_co_pwritev,
    .bdrv_co_pwrite_zeroes = testmem_co_pwrite_zeroes,
    .bdrv_co_block_status = testmem_co_block_status,
};

static BlockDriverState *open_testmem(const char *extra, Error **errp)
{
    g_autofree char *spec = g_strdup_printf("driver=testmem%s%s",
                                            extra ? "," : "",
                                            extra ? extra : "");
    QDict *opts = keyval_parse(spec, NULL, &error_abort);

    return bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, errp);
}

static TestMemState *mem(BlockDriverState *bs)
{
    return bs->opaque;
}

static void test_lifecycle_last_unref_closes(void)
{
    bool closed = false;
    g_autofree char *extra = g_strdup_printf("closed-flag=%" PRIdPTR,
                                             (intptr_t)&closed);
    BlockDriverState *bs = open_testmem(extra, &error_abort);

    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    g_assert_true(bs->implicit_node_name);
    g_assert_true(bdrv_find_node(bs->node_name) == bs);

    bdrv_ref(bs);
    bdrv_unref(bs);
    g_assert_false(closed);
    g_assert_true(bdrv_find_node(bs->node_name) == bs);

    bdrv_unref(bs);
    g_assert_true(closed);
}

static void test_lifecycle_backend_and_child_refs(void)
{
    bool closed_top = false, closed_base = false;
    g_autofree char *base_opts = g_strdup_printf(
        "node-name=base0,closed-flag=%" PRIdPTR, (intptr_t)&closed_base);
    BlockDriverState *base = open_testmem(base_opts, &error_abort);
    g_autofree char *top_opts = g_strdup_printf(
        "node-name=top0,backing=base0,closed-flag=%" PRIdPTR,
        (intptr_t)&closed_top);
    BlockDriverState *top = open_testmem(top_opts, &error_abort);
    BlockBackend *blk = blk_new();

    /* The backing edge holds its own reference on base. */
    g_assert_true(bdrv_backing_bs(top) == base);
    g_assert_cmpint(bdrv_get_refcnt(base), ==, 2);
    bdrv_unref(base);
    g_assert_false(closed_base);

    /* The BlockBackend takes its own reference too. */
    g_assert_cmpint(blk_insert_bs(blk, top, &error_abort), ==, 0);
    g_assert_cmpint(bdrv_get_refcnt(top), ==, 2);
    bdrv_unref(top);
    g_assert_false(closed_top);

    /* Dropping the last holder closes top, whose edge releases base. */
    blk_unref(blk);
    g_assert_true(closed_top);
    g_assert_true(closed_base);
    g_assert_null(bdrv_find_node("top0"));
    g_assert_null(bdrv_find_node("base0"));
}

static void test_open_errors_leave_nothing(void)
{
    Error *err = NULL;
    BlockDriverState *before = bdrv_next_all(NULL);
    BlockDriverState *bs;

    bs = open_testmem("bogus=1", &err);
    g_assert_null(bs);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Block format 'testmem' does not support the option "
                    "'bogus'");
    error_free_or_abort(&err);

    bs = open_testmem("node-name=1abc", &err);
    g_assert_null(bs);
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid node-name: '1abc'");
    error_free_or_abort(&err);

    bs = open_testmem("fail=yes", &err);
    g_assert_null(bs);
    g_assert_cmpstr(error_get_pretty(err), ==, "testmem: asked to fail");
    error_free_or_abort(&err);

    bs = open_testmem("size=lots", &err);
    g_assert_null(bs);
    error_free_or_abort(&err);

    bs = bdrv_open(NULL, NULL, keyval_parse("driver=nosuch", NULL,
                                            &error_abort), 0, &err);
    g_assert_null(bs);
    g_assert_cmpstr(error_get_pretty(err), ==, "Unknown driver 'nosuch'");
    error_free_or_abort(&err);

    /* A failed backing open must drop the half-built top node. */
    bs = open_testmem("node-name=orphan,backing=missing0", &err);
    g_assert_null(bs);
    error_free_or_abort(&err);
    g_assert_null(bdrv_find_node("orphan"));

    g_assert_true(bdrv_next_all(NULL) == before);
}

static void test_duplicate_node_name(void)
{
    Error *err = NULL;
    BlockDriverState *a = open_testmem("node-name=dup", &error_abort);
    BlockDriverState *b = open_testmem("node-name=dup", &err);

    g_assert_null(b);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Duplicate nodes with node-name='dup'");
    error_free(err);
    bdrv_unref(a);
}

static void test_reference_open(void)
{
    BlockDriverState *a = open_testmem("node-name=refme", &error_abort);
    BlockDriverState *b = bdrv_open(NULL, "refme", NULL, 0, &error_abort);

    g_assert_true(a == b);
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);
    bdrv_unref(b);
    bdrv_unref(a);
}

static void test_unaligned_rmw(void)
{
    BlockDriverState *bs = open_testmem("align=4096,size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    uint8_t buf[5000], check[64 * KiB];

    blk_insert_bs(blk, bs, &error_abort);
    memset(mem(bs)->data, 0xee, 64 * KiB);
    memset(buf, 0x5a, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 1000, sizeof(buf), buf, 0), ==, 0);
    /* The driver saw whole 4k blocks covering [1000, 6000). */
    g_assert_cmpint(mem(bs)->last_write_offset, ==, 0);
    g_assert_cmpint(mem(bs)->last_write_bytes, ==, 8192);

    g_assert_cmpint(blk_pread(blk, 0, sizeof(check), check, 0), ==, 0);
    for (int i = 0; i < 64 * KiB; i++) {
        uint8_t want = (i >= 1000 && i < 6000) ? 0x5a : 0xee;
        if (check[i] != want) {
            g_error("byte %d is 0x%02x, expected 0x%02x", i, check[i], want);
        }
    }

    /* Unaligned read of a small piece in the middle of a block. */
    memset(buf, 0, sizeof(buf));
    g_assert_cmpint(blk_pread(blk, 5990, 20, buf, 0), ==, 0);
    for (int i = 0; i < 20; i++) {
        g_assert_cmpint(buf[i], ==, 5990 + i < 6000 ? 0x5a : 0xee);
    }
    blk_unref(blk);
    bdrv_unref(bs);
}

static void test_backend_range_checks(void)
{
    BlockDriverState *bs = open_testmem("size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    uint8_t buf[512];

    blk_insert_bs(blk, bs, &error_abort);
    g_assert_cmpint(blk_pread(blk, 64 * KiB - 256, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pwrite(blk, -1, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_getlength(blk), ==, 64 * KiB);
    blk_unref(blk);
    bdrv_unref(bs);
}

static void test_read_only_refuses_writes(void)
{
    QDict *opts = keyval_parse("driver=testmem,read-only=on", NULL,
                               &error_abort);
    BlockDriverState *bs = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR,
                                     &error_abort);
    BlockBackend *blk = blk_new();
    uint8_t buf[512] = { 1 };

    g_assert_true(bdrv_is_read_only(bs));
    blk_insert_bs(blk, bs, &error_abort);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, -EPERM);
    blk_unref(blk);
    bdrv_unref(bs);
}

typedef struct {
    BdrvBeforeWriteNotifier n;
    int calls;
    int64_t offset, bytes;
    uint8_t old_byte;           /* content before the write landed */
    int fail_with;
} TestNotifier;

static int coroutine_fn test_before_write(BdrvBeforeWriteNotifier *n,
                                          BdrvTrackedRequest *req)
{
    TestNotifier *t = container_of(n, TestNotifier, n);
    TestMemState *s = req->bs->opaque;

    t->calls++;
    t->offset = req->offset;
    t->bytes = req->bytes;
    t->old_byte = s->data[req->offset];
    return t->fail_with;
}

static void test_before_write_notifier(void)
{
    BlockDriverState *bs = open_testmem("size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    TestNotifier t = { .n.notify = test_before_write };
    uint8_t buf[4096];

    blk_insert_bs(blk, bs, &error_abort);
    memset(mem(bs)->data, 0x77, 64 * KiB);
    bdrv_add_before_write_notifier(bs, &t.n);

    memset(buf, 0x01, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 8192, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(t.calls, ==, 1);
    g_assert_cmpint(t.offset, ==, 8192);
    g_assert_cmpint(t.bytes, ==, 4096);
    /* The notifier ran before the data reached the driver. */
    g_assert_cmpint(t.old_byte, ==, 0x77);
    g_assert_cmpint(mem(bs)->data[8192], ==, 0x01);

    /* Write-zeroes goes through the notifier too. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 0, 4096, 0), ==, 0);
    g_assert_cmpint(t.calls, ==, 2);

    /* A failing notifier fails the write and leaves the data alone. */
    t.fail_with = -EIO;
    g_assert_cmpint(blk_pwrite(blk, 16384, sizeof(buf), buf, 0), ==, -EIO);
    g_assert_cmpint(mem(bs)->data[16384], ==, 0x77);

    /* Writes flagged as not needing CoW skip the notifiers. */
    t.fail_with = 0;
    g_assert_cmpint(blk_pwrite(blk, 16384, sizeof(buf), buf,
                               BDRV_REQ_NO_BEFORE_WRITE), ==, 0);
    g_assert_cmpint(t.calls, ==, 3);

    bdrv_remove_before_write_notifier(&t.n);
    g_assert_cmpint(blk_pwrite(blk, 0, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(t.calls, ==, 3);
    blk_unref(blk);
    bdrv_unref(bs);
}

static void test_detect_zeroes(void)
{
    QDict *opts = keyval_parse("driver=testmem,detect-zeroes=on", NULL,
                               &error_abort);
    BlockDriverState *bs = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR,
                                     &error_abort);
    BlockBackend *blk = blk_new();
    uint8_t zero[4096] = { 0 }, data[4096];

    blk_insert_bs(blk, bs, &error_abort);
    g_assert_cmpint(blk_pwrite(blk, 0, sizeof(zero), zero, 0), ==, 0);
    g_assert_cmpint(mem(bs)->zero_writes, ==, 1);
    g_assert_cmpint(mem(bs)->writes, ==, 0);
    memset(data, 3, sizeof(data));
    g_assert_cmpint(blk_pwrite(blk, 0, sizeof(data), data, 0), ==, 0);
    g_assert_cmpint(mem(bs)->writes, ==, 1);
    blk_unref(blk);
    bdrv_unref(bs);

    /* unmap needs discard=unmap, as in QEMU. */
    {
        Error *err = NULL;
        opts = keyval_parse("driver=testmem,detect-zeroes=unmap", NULL,
                            &error_abort);
        g_assert_null(bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &err));
        error_free_or_abort(&err);
    }
}

typedef struct {
    BlockBackend *blk;
    int64_t offset;
    int64_t bytes;
    uint8_t pattern;
    int ret;
    bool done;
} WriteCo;

static void coroutine_fn write_co_entry(void *opaque)
{
    WriteCo *w = opaque;
    g_autofree uint8_t *buf = g_malloc(w->bytes);

    memset(buf, w->pattern, w->bytes);
    w->ret = blk_co_pwrite(w->blk, w->offset, w->bytes, buf, 0);
    w->done = true;
}

/*
 * Two unaligned writes into the same 4k block: the second must wait for
 * the first's read-modify-write, or it would resurrect stale bytes.
 */
static void test_serialising_rmw(void)
{
    BlockDriverState *bs = open_testmem("align=4096,size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    WriteCo a = { .offset = 100, .bytes = 100, .pattern = 0xaa };
    WriteCo b = { .offset = 300, .bytes = 100, .pattern = 0xbb };
    uint8_t check[4096];

    blk_insert_bs(blk, bs, &error_abort);
    a.blk = b.blk = blk;
    mem(bs)->park = true;
    qemu_coroutine_enter(qemu_coroutine_create(write_co_entry, &a));
    g_assert_nonnull(mem(bs)->parked);
    g_assert_false(a.done);

    /* b is queued behind a; nothing reaches the driver meanwhile. */
    mem(bs)->park = false;
    qemu_coroutine_enter(qemu_coroutine_create(write_co_entry, &b));
    g_assert_false(b.done);
    g_assert_cmpint(mem(bs)->writes, ==, 0);

    qemu_coroutine_enter(mem(bs)->parked);
    AIO_WAIT_WHILE(!a.done || !b.done);
    g_assert_cmpint(a.ret, ==, 0);
    g_assert_cmpint(b.ret, ==, 0);
    g_assert_cmpint(mem(bs)->writes, ==, 2);

    g_assert_cmpint(blk_pread(blk, 0, sizeof(check), check, 0), ==, 0);
    for (int i = 0; i < 4096; i++) {
        uint8_t want = i >= 100 && i < 200 ? 0xaa :
                       i >= 300 && i < 400 ? 0xbb : 0;
        g_assert_cmpint(check[i], ==, want);
    }
    blk_unref(blk);
    bdrv_unref(bs);
}

static void test_drain_waits(void)
{
    BlockDriverState *bs = open_testmem("size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    WriteCo a = { .offset = 0, .bytes = 512, .pattern = 1 };

    blk_insert_bs(blk, bs, &error_abort);
    a.blk = blk;
    mem(bs)->park = true;
    qemu_coroutine_enter(qemu_coroutine_create(write_co_entry, &a));
    g_assert_cmpint(bs->in_flight, ==, 1);
    g_assert_cmpint(blk_in_flight(blk), ==, 1);

    /* Release the parked write from the loop while drain polls. */
    aio_co_schedule(qemu_get_aio_context(), mem(bs)->parked);
    mem(bs)->park = false;
    blk_drain(blk);
    g_assert_true(a.done);
    g_assert_cmpint(bs->in_flight, ==, 0);
    blk_unref(blk);
    bdrv_unref(bs);
}

static void test_block_status_chain(void)
{
    BlockDriverState *base = open_testmem("node-name=sbase,size=64k",
                                          &error_abort);
    BlockDriverState *mid = open_testmem("node-name=smid,size=64k,"
                                         "backing=sbase", &error_abort);
    BlockDriverState *top = open_testmem("node-name=stop,size=64k,"
                                         "backing=smid", &error_abort);
    int64_t pnum, map;
    BlockDriverState *file;
    int depth, ret;

    bdrv_unref(base);
    bdrv_unref(mid);
    testmem_mark(mem(base), 0, 4096, true);
    testmem_mark(mem(mid), 4096, 4096, true);
    testmem_mark(mem(top), 8192, 4096, true);

    ret = bdrv_block_status_above(top, NULL, 0, 64 * KiB, &pnum, &map, &file,
                                  &depth);
    g_assert_cmpint(ret & BDRV_BLOCK_DATA, !=, 0);
    g_assert_cmpint(pnum, ==, 4096);
    g_assert_cmpint(depth, ==, 2);
    g_assert_true(file == base);

    ret = bdrv_block_status_above(top, NULL, 4096, 60 * KiB, &pnum, NULL,
                                  NULL, &depth);
    g_assert_cmpint(pnum, ==, 4096);
    g_assert_cmpint(depth, ==, 1);

    ret = bdrv_block_status_above(top, NULL, 8192, 56 * KiB, &pnum, NULL,
                                  NULL, &depth);
    g_assert_cmpint(pnum, ==, 4096);
    g_assert_cmpint(depth, ==, 0);
    g_assert_cmpint(ret & BDRV_BLOCK_ALLOCATED, !=, 0);

    /* Unallocated everywhere: reads as zeroes from the bottom layer. */
    ret = bdrv_block_status_above(top, NULL, 12288, 52 * KiB, &pnum, NULL,
                                  NULL, &depth);
    g_assert_cmpint(pnum, ==, 52 * KiB);
    g_assert_cmpint(ret & BDRV_BLOCK_ZERO, !=, 0);
    g_assert_cmpint(ret & BDRV_BLOCK_ALLOCATED, ==, 0);
    g_assert_cmpint(depth, ==, 2);

    g_assert_cmpint(bdrv_is_allocated(top, 0, 64 * KiB, &pnum), ==, 0);
    g_assert_cmpint(pnum, ==, 8192);
    g_assert_cmpint(bdrv_is_allocated_above(top, NULL, false, 0, 64 * KiB,
                                            &pnum), ==, 1);
    g_assert_cmpint(pnum, ==, 4096);
    /* Above base (excluded), [0, 4k) is not allocated. */
    g_assert_cmpint(bdrv_is_allocated_above(top, base, false, 0, 64 * KiB,
                                            &pnum), ==, 0);
    g_assert_cmpint(pnum, ==, 4096);
    g_assert_cmpint(bdrv_is_allocated_above(top, base, true, 0, 64 * KiB,
                                            &pnum), ==, 1);

    /* Reads fall through the chain. */
    {
        uint8_t buf[3];
        BdrvChild c = { .bs = top, .name = (char *)"test" };

        mem(base)->data[0] = 1;
        mem(mid)->data[4096] = 2;
        mem(top)->data[8192] = 3;
        g_assert_cmpint(bdrv_pread(&c, 0, 1, &buf[0], 0), ==, 0);
        g_assert_cmpint(bdrv_pread(&c, 4096, 1, &buf[1], 0), ==, 0);
        g_assert_cmpint(bdrv_pread(&c, 8192, 1, &buf[2], 0), ==, 0);
        g_assert_cmpint(buf[0], ==, 1);
        g_assert_cmpint(buf[1], ==, 2);
        g_assert_cmpint(buf[2], ==, 3);
    }
    bdrv_unref(top);
    g_assert_null(bdrv_find_node("sbase"));
}

static void test_cycle_refused(void)
{
    BlockDriverState *a = open_testmem("node-name=cyca", &error_abort);
    BlockDriverState *b = open_testmem("node-name=cycb,backing=cyca",
                                       &error_abort);
    Error *err = NULL;

    g_assert_cmpint(bdrv_set_backing_hd(a, b, &err), <, 0);
    error_free_or_abort(&err);
    g_assert_cmpint(bdrv_get_refcnt(b), ==, 1);
    bdrv_unref(b);
    bdrv_unref(a);
}

typedef struct {
    int ret;
    int calls;
} AioResult;

static void aio_cb(void *opaque, int ret)
{
    AioResult *r = opaque;

    r->ret = ret;
    r->calls++;
}

static void test_aio_completes_from_loop(void)
{
    BlockDriverState *bs = open_testmem("size=64k", &error_abort);
    BlockBackend *blk = blk_new();
    uint8_t buf[512] = { 9 };
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, sizeof(buf));
    AioResult r = { .ret = 1 };

    blk_insert_bs(blk, bs, &error_abort);
    bdrv_unref(bs);
    blk_aio_pwritev(blk, 0, &qiov, 0, aio_cb, &r);
    /* The callback never runs inside the submission. */
    g_assert_cmpint(r.calls, ==, 0);
    AIO_WAIT_WHILE(r.calls == 0);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpint(mem(blk_bs(blk))->data[0], ==, 9);

    /* The request holds the backend alive until its callback ran. */
    r.calls = 0;
    blk_aio_flush(blk, aio_cb, &r);
    blk_unref(blk);
    AIO_WAIT_WHILE(r.calls == 0);
    g_assert_cmpint(r.ret, ==, 0);
}

static void test_monitor_names(void)
{
    BlockBackend *blk = blk_new();
    BlockBackend *blk2 = blk_new();
    BlockDriverState *bs = open_testmem("node-name=named0", &error_abort);
    Error *err = NULL;

    g_assert_true(monitor_add_blk(blk, "drive0", &error_abort));
    g_assert_true(blk_by_name("drive0") == blk);
    g_assert_false(monitor_add_blk(blk2, "drive0", &err));
    error_free_or_abort(&err);
    g_assert_false(monitor_add_blk(blk2, "named0", &err));
    error_free_or_abort(&err);

    blk_insert_bs(blk, bs, &error_abort);
    g_assert_true(bdrv_lookup_bs("drive0", NULL, &error_abort) == bs);
    g_assert_true(bdrv_lookup_bs(NULL, "named0", &error_abort) == bs);
    g_assert_null(bdrv_lookup_bs("nope", "nope", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot find device='nope' nor node-name='nope'");
    error_free(err);

    bdrv_unref(bs);
    blk_unref(blk);
    blk_unref(blk2);
    g_assert_null(blk_by_name("drive0"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bdrv_register(&bdrv_testmem);

    g_test_add_func("/block/lifecycle/last-unref-closes",
                    test_lifecycle_last_unref_closes);
    g_test_add_func("/block/lifecycle/backend-and-child-refs",
                    test_lifecycle_backend_and_child_refs);
    g_test_add_func("/block/lifecycle/open-errors-leave-nothing",
                    test_open_errors_leave_nothing);
    g_test_add_func("/block/lifecycle/duplicate-node-name",
                    test_duplicate_node_name);
    g_test_add_func("/block/lifecycle/reference-open", test_reference_open);
    g_test_add_func("/block/lifecycle/cycle-refused", test_cycle_refused);
    g_test_add_func("/block/io/unaligned-rmw", test_unaligned_rmw);
    g_test_add_func("/block/io/backend-range-checks",
                    test_backend_range_checks);
    g_test_add_func("/block/io/read-only", test_read_only_refuses_writes);
    g_test_add_func("/block/io/before-write-notifier",
                    test_before_write_notifier);
    g_test_add_func("/block/io/detect-zeroes", test_detect_zeroes);
    g_test_add_func("/block/io/serialising-rmw", test_serialising_rmw);
    g_test_add_func("/block/io/drain", test_drain_waits);
    g_test_add_func("/block/io/aio", test_aio_completes_from_loop);
    g_test_add_func("/block/status/chain", test_block_status_chain);
    g_test_add_func("/block/backend/monitor-names", test_monitor_names);
    return g_test_run();
}
