/*
 * The "null-co" and "null-aio" protocols: a device of a given size that
 * discards writes and, unless read-zeroes is set, leaves read buffers
 * untouched.  Used to measure the overhead of the block layer itself.
 *
 * null-co completes requests in the calling coroutine; null-aio
 * completes them from a bottom half, like a driver whose I/O finishes
 * asynchronously.  latency-ns delays every request by that much.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "block/block_int.h"
#include "block/drivers.h"

#define NULL_DEFAULT_SIZE GiB

typedef struct BDRVNullState {
    int64_t length;
    int64_t latency_ns;
    bool read_zeroes;
    bool complete_in_bh;        /* null-aio */
} BDRVNullState;

static void null_parse_filename(const char *filename, QDict *options,
                                Error **errp)
{
    const char *allowed = strstart(filename, "null-aio:", NULL) ?
                          "null-aio://" : "null-co://";

    /* The node has nothing to point at: only the bare URI is valid. */
    if (strcmp(filename, allowed)) {
        error_setg(errp, "The only allowed filename for this driver is '%s'",
                   allowed);
        return;
    }
    qdict_put_str(options, "filename", filename);
}

static int null_open_common(BlockDriverState *bs, QDict *options,
                            bool complete_in_bh, Error **errp)
{
    BDRVNullState *s = bs->opaque;
    uint64_t size;

    if (!qdict_get_size_opt(options, "size", NULL_DEFAULT_SIZE, &size, errp) ||
        !qdict_get_int_opt(options, "latency-ns", 0, &s->latency_ns, errp) ||
        !qdict_get_bool_opt(options, "read-zeroes", false, &s->read_zeroes,
                            errp)) {
        return -EINVAL;
    }
    if (size > INT64_MAX) {
        error_setg(errp, "size is too large");
        return -EINVAL;
    }
    if (s->latency_ns < 0) {
        error_setg(errp, "latency-ns is invalid");
        return -EINVAL;
    }
    s->length = size;
    s->complete_in_bh = complete_in_bh;
    bs->supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK;
    return 0;
}

static int null_co_open(BlockDriverState *bs, QDict *options, int flags,
                        Error **errp)
{
    return null_open_common(bs, options, false, errp);
}

static int null_aio_open(BlockDriverState *bs, QDict *options, int flags,
                         Error **errp)
{
    return null_open_common(bs, options, true, errp);
}

static void null_bh_wake(void *opaque)
{
    aio_co_wake(opaque);
}

/* The common tail of every request: latency, then completion. */
static int coroutine_fn null_co_complete(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;

    if (s->latency_ns) {
        qemu_co_sleep_ns(s->latency_ns);
    } else if (s->complete_in_bh) {
        aio_bh_schedule_oneshot(qemu_get_aio_context(), null_bh_wake,
                                qemu_coroutine_self());
        qemu_coroutine_yield();
    }
    return 0;
}

static int coroutine_fn null_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVNullState *s = bs->opaque;

    if (s->read_zeroes) {
        qemu_iovec_memset(qiov, 0, 0, bytes);
    }
    return null_co_complete(bs);
}

static int coroutine_fn null_co_pwritev(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags)
{
    return null_co_complete(bs);
}

static int coroutine_fn null_co_pwrite_zeroes(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags)
{
    return null_co_complete(bs);
}

static int coroutine_fn null_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes)
{
    return null_co_complete(bs);
}

static int coroutine_fn null_co_flush(BlockDriverState *bs)
{
    return null_co_complete(bs);
}

/* Reads are zeroes only with read-zeroes; otherwise nothing is promised. */
static int coroutine_fn null_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    BDRVNullState *s = bs->opaque;

    *pnum = bytes;
    *map = offset;
    *file = bs;
    return BDRV_BLOCK_OFFSET_VALID | (s->read_zeroes ? BDRV_BLOCK_ZERO : 0);
}

static int64_t null_getlength(BlockDriverState *bs)
{
    BDRVNullState *s = bs->opaque;

    return s->length;
}

static int64_t null_get_allocated_file_size(BlockDriverState *bs)
{
    return 0;
}

static const char *const null_runtime_opts[] = {
    "filename",
    "size",
    "latency-ns",
    "read-zeroes",
    NULL,
};

static BlockDriver bdrv_null_co = {
    .format_name = "null-co",
    .protocol_name = "null-co",
    .instance_size = sizeof(BDRVNullState),
    .runtime_opts = null_runtime_opts,
    .bdrv_parse_filename = null_parse_filename,
    .bdrv_open = null_co_open,
    .bdrv_co_preadv = null_co_preadv,
    .bdrv_co_pwritev = null_co_pwritev,
    .bdrv_co_pwrite_zeroes = null_co_pwrite_zeroes,
    .bdrv_co_pdiscard = null_co_pdiscard,
    .bdrv_co_flush_to_disk = null_co_flush,
    .bdrv_co_block_status = null_co_block_status,
    .bdrv_getlength = null_getlength,
    .bdrv_get_allocated_file_size = null_get_allocated_file_size,
};

static BlockDriver bdrv_null_aio = {
    .format_name = "null-aio",
    .protocol_name = "null-aio",
    .instance_size = sizeof(BDRVNullState),
    .runtime_opts = null_runtime_opts,
    .bdrv_parse_filename = null_parse_filename,
    .bdrv_open = null_aio_open,
    .bdrv_co_preadv = null_co_preadv,
    .bdrv_co_pwritev = null_co_pwritev,
    .bdrv_co_pwrite_zeroes = null_co_pwrite_zeroes,
    .bdrv_co_pdiscard = null_co_pdiscard,
    .bdrv_co_flush_to_disk = null_co_flush,
    .bdrv_co_block_status = null_co_block_status,
    .bdrv_getlength = null_getlength,
    .bdrv_get_allocated_file_size = null_get_allocated_file_size,
};

void bdrv_null_init(void)
{
    bdrv_register(&bdrv_null_co);
    bdrv_register(&bdrv_null_aio);
}
