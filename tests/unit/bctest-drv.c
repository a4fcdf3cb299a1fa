/*
 * The "bctest" driver; see bctest-drv.h.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "bctest-drv.h"

static int bctest_drv_open(BlockDriverState *bs, QDict *options, int flags,
                           Error **errp)
{
    BCTestState *s = bs->opaque;
    uint64_t size;
    bool holes;

    if (!qdict_get_size_opt(options, "size", 4 * MiB, &size, errp) ||
        !qdict_get_bool_opt(options, "holes", false, &holes, errp)) {
        return -EINVAL;
    }
    s->size = size;
    s->holes = holes;
    s->data = g_malloc0(size);
    s->alloc = g_malloc0(DIV_ROUND_UP(size, BCTEST_UNIT));
    s->read_bytes = g_new0(int64_t, DIV_ROUND_UP(size, BCTEST_UNIT));
    s->park_offset = -1;
    /* Accepted (and counted) like the file driver without O_DIRECT. */
    bs->supported_write_flags = BDRV_REQ_DONTCACHE;
    return 0;
}

static void bctest_drv_close(BlockDriverState *bs)
{
    BCTestState *s = bs->opaque;

    g_assert_null(s->parked);
    g_free(s->data);
    g_free(s->alloc);
    g_free(s->read_bytes);
}

static int64_t bctest_drv_getlength(BlockDriverState *bs)
{
    BCTestState *s = bs->opaque;

    return s->size;
}

/*
 * Completes the request some main-loop iterations later: one per started
 * 64 KiB plus 0-2 from a fixed pseudo-random sequence, so requests issued
 * in one order can complete in another and large requests stay in flight
 * while small ones overtake them.
 */
static void coroutine_fn bctest_delay(BCTestState *s, int64_t bytes)
{
    int n = DIV_ROUND_UP(bytes, BCTEST_UNIT) + (s->requests++ * 7) % 3;

    while (n--) {
        aio_co_schedule(qemu_get_aio_context(), qemu_coroutine_self());
        qemu_coroutine_yield();
    }
}

static void bctest_mark(BCTestState *s, int64_t offset, int64_t bytes,
                        bool alloc)
{
    for (int64_t u = offset / BCTEST_UNIT;
         u < DIV_ROUND_UP(offset + bytes, BCTEST_UNIT); u++) {
        s->alloc[u] = alloc;
    }
}

static int coroutine_fn bctest_drv_preadv(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes,
                                          QEMUIOVector *qiov,
                                          BdrvRequestFlags flags)
{
    BCTestState *s = bs->opaque;

    g_assert_cmpint(offset + bytes, <=, s->size);
    s->read_calls++;
    for (int64_t u = offset / BCTEST_UNIT;
         u < DIV_ROUND_UP(offset + bytes, BCTEST_UNIT); u++) {
        s->read_bytes[u] += MIN(offset + bytes, (u + 1) * BCTEST_UNIT) -
                            MAX(offset, u * BCTEST_UNIT);
    }
    if (s->park_offset >= offset && s->park_offset < offset + bytes) {
        s->park_offset = -1;
        s->parked = qemu_coroutine_self();
        qemu_coroutine_yield();
    }
    if (bytes >= BCTEST_UNIT) {
        s->unit_reads_in_flight++;
        s->max_unit_reads_in_flight = MAX(s->max_unit_reads_in_flight,
                                          s->unit_reads_in_flight);
    }
    bctest_delay(s, bytes);
    if (bytes >= BCTEST_UNIT) {
        s->unit_reads_in_flight--;
    }
    if (s->fail_read) {
        return -s->fail_read;
    }
    qemu_iovec_from_buf(qiov, 0, s->data + offset, bytes);
    return 0;
}

static int coroutine_fn bctest_drv_pwritev(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    BCTestState *s = bs->opaque;

    bctest_delay(s, bytes);
    if (s->fail_write) {
        return -s->fail_write;
    }
    g_assert_cmpint(offset + bytes, <=, s->size);
    qemu_iovec_to_buf(qiov, 0, s->data + offset, bytes);
    bctest_mark(s, offset, bytes, true);
    s->data_writes++;
    if (flags & BDRV_REQ_DONTCACHE) {
        s->dontcache_writes++;
    }
    return 0;
}

static int coroutine_fn bctest_drv_pwrite_zeroes(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 BdrvRequestFlags flags)
{
    BCTestState *s = bs->opaque;

    bctest_delay(s, bytes);
    if (s->fail_write) {
        return -s->fail_write;
    }
    memset(s->data + offset, 0, bytes);
    /* Only whole units become holes again. */
    if (QEMU_IS_ALIGNED(offset, BCTEST_UNIT) &&
        QEMU_IS_ALIGNED(bytes, BCTEST_UNIT)) {
        bctest_mark(s, offset, bytes, false);
    }
    s->zero_writes++;
    return 0;
}

static int coroutine_fn bctest_drv_block_status(BlockDriverState *bs,
                                                bool want_zero,
                                                int64_t offset, int64_t bytes,
                                                int64_t *pnum, int64_t *map,
                                                BlockDriverState **file)
{
    BCTestState *s = bs->opaque;
    bool alloc = s->alloc[offset / BCTEST_UNIT];
    int64_t n = QEMU_ALIGN_UP(offset + 1, BCTEST_UNIT) - offset;

    while (n < bytes && !!s->alloc[(offset + n) / BCTEST_UNIT] == alloc) {
        n += BCTEST_UNIT;
    }
    *pnum = MIN(n, bytes);
    *map = offset;
    *file = bs;
    if (alloc) {
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }
    return s->holes ? 0 : BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
}

static const char *const bctest_runtime_opts[] = {
    "size", "holes", NULL,
};

static BlockDriver bdrv_bctest = {
    .format_name = "bctest",
    .instance_size = sizeof(BCTestState),
    .runtime_opts = bctest_runtime_opts,
    .bdrv_open = bctest_drv_open,
    .bdrv_close = bctest_drv_close,
    .bdrv_getlength = bctest_drv_getlength,
    .bdrv_co_preadv = bctest_drv_preadv,
    .bdrv_co_pwritev = bctest_drv_pwritev,
    .bdrv_co_pwrite_zeroes = bctest_drv_pwrite_zeroes,
    .bdrv_co_block_status = bctest_drv_block_status,
};

void bctest_register(void)
{
    bdrv_register(&bdrv_bctest);
}

BCTestState *bctest(BlockDriverState *bs)
{
    g_assert_cmpstr(bs->drv->format_name, ==, "bctest");
    return bs->opaque;
}

static BlockDriverState *bctest_open_flags(const char *name, int64_t size,
                                           bool holes, int flags)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "bctest");
    qdict_put_str(opts, "node-name", name);
    qdict_put_int(opts, "size", size);
    qdict_put_bool(opts, "holes", holes);
    return bdrv_open(NULL, NULL, opts, flags, &error_abort);
}

BlockDriverState *bctest_open(const char *name, int64_t size, bool holes)
{
    return bctest_open_flags(name, size, holes, BDRV_O_RDWR);
}

BlockDriverState *bctest_open_direct(const char *name, int64_t size)
{
    return bctest_open_flags(name, size, false, BDRV_O_RDWR | BDRV_O_NOCACHE);
}

void bctest_fill(BlockDriverState *bs, uint8_t seed, bool (*skip)(int64_t))
{
    BCTestState *s = bctest(bs);

    for (int64_t u = 0; u < DIV_ROUND_UP(s->size, BCTEST_UNIT); u++) {
        int64_t start = u * BCTEST_UNIT;
        int64_t len = MIN(BCTEST_UNIT, s->size - start);

        if (skip && skip(u)) {
            continue;
        }
        for (int64_t i = 0; i < len; i++) {
            /* Differs per byte, per unit and per seed. */
            s->data[start + i] = (uint8_t)(seed * 31 + u * 7 + i / 512 + 1);
        }
        s->alloc[u] = true;
    }
}

void bctest_park_read(BlockDriverState *bs, int64_t offset)
{
    bctest(bs)->park_offset = offset;
}

void bctest_wait_parked(BlockDriverState *bs)
{
    AIO_WAIT_WHILE(!bctest(bs)->parked);
}

void bctest_resume(BlockDriverState *bs)
{
    BCTestState *s = bctest(bs);
    Coroutine *co = s->parked;

    g_assert_nonnull(co);
    s->parked = NULL;
    aio_co_wake(co);
}
