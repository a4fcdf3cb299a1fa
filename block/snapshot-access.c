/*
 * snapshot-access: a read-only view of the point-in-time image kept by a
 * copy-before-write node (its "file" child), e.g. for an NBD export used
 * by an external backup tool ("image fleecing").
 *
 * Reads, block status and discard go to the copy-before-write node's
 * snapshot functions; discard means "the reader is done with this range"
 * and stops copy-before-write for it.  Writes fail with EPERM.  The node
 * may be opened read-write only so that discards can reach it.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "block/copy-before-write.h"
#include "block/drivers.h"

static int snapshot_access_open(BlockDriverState *bs, QDict *options,
                                int flags, Error **errp)
{
    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_DATA | BDRV_CHILD_PRIMARY, false,
                               errp);
    if (!bs->file) {
        return -EINVAL;
    }
    if (!bdrv_is_cbw(bs->file->bs)) {
        error_setg(errp, "The 'file' of a snapshot-access node must be a "
                   "copy-before-write node ('%s' is %s)",
                   bdrv_get_node_name(bs->file->bs),
                   bdrv_get_format_name(bs->file->bs));
        return -EINVAL;
    }
    return 0;
}

static int coroutine_fn snapshot_access_co_preadv(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  QEMUIOVector *qiov,
                                                  BdrvRequestFlags flags)
{
    return cbw_snapshot_preadv(bs->file->bs, offset, bytes, qiov, 0);
}

static int coroutine_fn snapshot_access_co_block_status(BlockDriverState *bs,
                                                        bool want_zero,
                                                        int64_t offset,
                                                        int64_t bytes,
                                                        int64_t *pnum,
                                                        int64_t *map,
                                                        BlockDriverState **file)
{
    return cbw_snapshot_block_status(bs->file->bs, offset, bytes, pnum, map,
                                     file);
}

static int coroutine_fn snapshot_access_co_pdiscard(BlockDriverState *bs,
                                                    int64_t offset,
                                                    int64_t bytes)
{
    return cbw_snapshot_pdiscard(bs->file->bs, offset, bytes);
}

static int coroutine_fn snapshot_access_co_pwritev(BlockDriverState *bs,
                                                   int64_t offset,
                                                   int64_t bytes,
                                                   QEMUIOVector *qiov,
                                                   BdrvRequestFlags flags)
{
    return -EPERM;
}

static int coroutine_fn snapshot_access_co_pwrite_zeroes(BlockDriverState *bs,
                                                         int64_t offset,
                                                         int64_t bytes,
                                                         BdrvRequestFlags flags)
{
    return -EPERM;
}

static int64_t snapshot_access_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static void snapshot_access_refresh_limits(BlockDriverState *bs,
                                           Error **errp)
{
    /* Discards are handled per cluster of the copy state. */
    bs->bl.pdiscard_alignment =
        block_copy_cluster_size(cbw_get_block_copy_state(bs->file->bs));
}

static const char *const snapshot_access_runtime_opts[] = {
    "file",
    NULL,
};

static BlockDriver bdrv_snapshot_access = {
    .format_name = "snapshot-access",
    .instance_size = 1,
    .runtime_opts = snapshot_access_runtime_opts,
    .bdrv_open = snapshot_access_open,
    .bdrv_refresh_limits = snapshot_access_refresh_limits,
    .bdrv_co_preadv = snapshot_access_co_preadv,
    .bdrv_co_pwritev = snapshot_access_co_pwritev,
    .bdrv_co_pwrite_zeroes = snapshot_access_co_pwrite_zeroes,
    .bdrv_co_pdiscard = snapshot_access_co_pdiscard,
    .bdrv_co_block_status = snapshot_access_co_block_status,
    .bdrv_getlength = snapshot_access_getlength,
};

void bdrv_snapshot_access_init(void)
{
    bdrv_register(&bdrv_snapshot_access);
}
