/*
 * copy-before-write filter: before a guest write, write-zeroes or discard
 * reaches the "file" child, the old contents of the clusters it touches
 * are copied to the "target" child (block-copy), so the target plus the
 * still-unchanged parts of the source always form the image as it was
 * when the filter was opened.
 *
 * Options (QEMU's BlockdevOptionsCbw): file, target, bitmap ({node,
 * name}: copy only its dirty areas), on-cbw-error (break-guest-write |
 * break-snapshot), cbw-timeout (seconds, 0: none), min-cluster-size.
 *
 * Point-in-time readers (snapshot-access) read source clusters that were
 * not copied yet.  Such a read registers a *frozen read* on its source
 * range first; a guest write copies its clusters (which needs only the
 * source's old data) and then waits for the frozen reads overlapping it
 * before it touches the source.  Nothing yields between a reader's check
 * of the copy map and the registration, so a reader either sees a
 * cluster as copied (and reads the target) or freezes it in time.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "block/copy-before-write.h"
#include "block/dirty-bitmap.h"
#include "block/drivers.h"

/* A snapshot read of source bytes; lives on the reader's stack. */
typedef struct CBWFrozenRead {
    int64_t offset;
    int64_t bytes;
    CoQueue waiters;            /* guest writes waiting for it */
    QLIST_ENTRY(CBWFrozenRead) next;
} CBWFrozenRead;

typedef struct BDRVCopyBeforeWriteState {
    BlockCopyState *bcs;
    BdrvChild *target;
    OnCbwError on_cbw_error;
    int64_t cbw_timeout_ns;
    /*
     * Clusters the snapshot still covers: set at open for everything the
     * copy map covers, cleared by snapshot discard.
     */
    HBitmap *access_bitmap;
    QLIST_HEAD(, CBWFrozenRead) frozen_reads;
    /* 0, or the error of the copy-before-write that broke the snapshot. */
    int snapshot_error;
} BDRVCopyBeforeWriteState;

bool bdrv_is_cbw(BlockDriverState *bs)
{
    return bs && bs->drv && !strcmp(bs->drv->format_name,
                                     "copy-before-write");
}

BlockCopyState *cbw_get_block_copy_state(BlockDriverState *bs)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;

    assert(bdrv_is_cbw(bs));
    return s->bcs;
}

static void coroutine_fn cbw_wait_frozen_reads(BDRVCopyBeforeWriteState *s,
                                               int64_t offset, int64_t bytes)
{
    CBWFrozenRead *r;
    bool again;

    do {
        again = false;
        QLIST_FOREACH(r, &s->frozen_reads, next) {
            if (offset < r->offset + r->bytes && r->offset < offset + bytes) {
                qemu_co_queue_wait(&r->waiters, NULL);
                again = true;
                break;
            }
        }
    } while (again);
}

/*
 * Copies the clusters of a guest request before it modifies the source.
 * With break-snapshot a failure lets the guest request go on and marks
 * the snapshot broken; after that nothing is copied any more.
 */
static int coroutine_fn cbw_do_copy_before_write(BlockDriverState *bs,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 BdrvRequestFlags flags)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;
    int ret;

    if (flags & BDRV_REQ_WRITE_UNCHANGED) {
        return 0;
    }
    if (!s->snapshot_error) {
        /*
         * Writing the copy behind the guest write would let a failure of
         * that write go unreported to the guest: only break-snapshot,
         * where the guest never sees copy errors, may do it.
         */
        ret = block_copy_with_timeout(s->bcs, offset, bytes,
                                      s->cbw_timeout_ns,
                                      s->on_cbw_error ==
                                      ON_CBW_ERROR_BREAK_SNAPSHOT, NULL);
        if (ret < 0) {
            if (s->on_cbw_error == ON_CBW_ERROR_BREAK_GUEST_WRITE) {
                return ret;
            }
            s->snapshot_error = ret;
        } else if (block_copy_error(s->bcs)) {
            /* An earlier copy failed after its guest write went on. */
            s->snapshot_error = block_copy_error(s->bcs);
        }
    }
    cbw_wait_frozen_reads(s, offset, bytes);
    return 0;
}

static int coroutine_fn cbw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn cbw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    int ret = cbw_do_copy_before_write(bs, offset, bytes, flags);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn cbw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    int ret = cbw_do_copy_before_write(bs, offset, bytes, flags);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn cbw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    int ret = cbw_do_copy_before_write(bs, offset, bytes, 0);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

static int64_t cbw_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

/* The snapshot still covers the piece; its error ends every read. */
static int cbw_snapshot_check(void *opaque, int64_t offset, int64_t *pnum)
{
    BlockDriverState *bs = opaque;
    BDRVCopyBeforeWriteState *s = bs->opaque;
    int64_t apnum;

    if (s->snapshot_error) {
        return s->snapshot_error;
    }
    if (!hbitmap_status(s->access_bitmap, offset, *pnum, &apnum)) {
        return -EACCES;
    }
    *pnum = MIN(*pnum, apnum);
    return 0;
}

/*
 * A source piece is read as a frozen read: listed before the read starts
 * (no yield since the copy map said "not copied"), so that guest writes
 * wait for it after copying their clusters.
 */
static int coroutine_fn cbw_snapshot_read_source(void *opaque, int64_t offset,
                                                 int64_t bytes,
                                                 QEMUIOVector *qiov)
{
    BlockDriverState *bs = opaque;
    BDRVCopyBeforeWriteState *s = bs->opaque;
    CBWFrozenRead frozen = { .offset = offset, .bytes = bytes };
    int ret;

    qemu_co_queue_init(&frozen.waiters);
    QLIST_INSERT_HEAD(&s->frozen_reads, &frozen, next);
    ret = bdrv_co_preadv(bs->file, offset, bytes, qiov, 0);
    QLIST_REMOVE(&frozen, next);
    qemu_co_queue_restart_all(&frozen.waiters);
    return ret;
}

int coroutine_fn cbw_snapshot_preadv(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, QEMUIOVector *qiov,
                                     size_t qiov_offset)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;
    int64_t len = block_copy_length(s->bcs);
    BlockCopySnapshotReader r = {
        .source = bs->file,
        .target = s->target,
        .check = cbw_snapshot_check,
        .read_source = cbw_snapshot_read_source,
        .opaque = bs,
    };
    int ret;

    assert(bdrv_is_cbw(bs));
    /* Beyond the end there is nothing to protect. */
    if (offset + bytes > len) {
        int64_t tail = offset + bytes - MAX(offset, len);

        qemu_iovec_memset(qiov, qiov_offset + (bytes - tail), 0, tail);
        bytes -= tail;
    }
    ret = block_copy_snapshot_preadv(s->bcs, &r, offset, bytes, qiov,
                                     qiov_offset);
    if (ret < 0) {
        return ret;
    }
    /* A copy that failed meanwhile may have let a guest write through. */
    return s->snapshot_error;
}

int coroutine_fn cbw_snapshot_block_status(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           int64_t *pnum, int64_t *map,
                                           BlockDriverState **file)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;
    int64_t len = block_copy_length(s->bcs);
    int64_t apnum;
    bool dirty;

    assert(bdrv_is_cbw(bs));
    if (s->snapshot_error) {
        return s->snapshot_error;
    }
    if (offset >= len) {
        *pnum = bytes;
        return 0;
    }
    dirty = block_copy_wait_range_status(s->bcs, offset, bytes, pnum);
    if (!hbitmap_status(s->access_bitmap, offset, *pnum, &apnum)) {
        *pnum = apnum;
        return 0;
    }
    *pnum = MIN(*pnum, apnum);
    *map = offset;
    *file = dirty ? bs->file->bs : s->target->bs;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

int coroutine_fn cbw_snapshot_pdiscard(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;
    int64_t cs = block_copy_cluster_size(s->bcs);
    int64_t len = block_copy_length(s->bcs);
    int64_t start = QEMU_ALIGN_UP(offset, cs);
    int64_t end = offset + bytes >= len ? len :
        QEMU_ALIGN_DOWN(offset + bytes, cs);
    int64_t pnum;

    assert(bdrv_is_cbw(bs));
    if (end <= start) {
        return 0;
    }
    /*
     * Let tasks of the range end first: a failing one would mark its
     * clusters to copy again after we dropped them.
     */
    block_copy_wait_range_status(s->bcs, start, end - start, &pnum);
    block_copy_reset(s->bcs, start, end - start);
    hbitmap_reset(s->access_bitmap, start, end - start);
    return bdrv_co_pdiscard(s->target, start, end - start);
}

/*
 * The "bitmap" option ({"node": N, "name": B}): only the dirty areas of
 * that bitmap are copied and covered by the snapshot.
 */
static bool cbw_apply_bitmap_option(BDRVCopyBeforeWriteState *s,
                                    QDict *options, Error **errp)
{
    QDict *bitmap_opts = qdict_get_qdict(options, "bitmap");
    const char *node, *name;
    BlockDriverState *bitmap_bs;
    BdrvDirtyBitmap *bitmap;
    int64_t len = block_copy_length(s->bcs);
    int64_t pos = 0, area, area_bytes;

    if (!qdict_haskey(options, "bitmap")) {
        return true;
    }
    node = bitmap_opts ? qdict_get_try_str(bitmap_opts, "node") : NULL;
    name = bitmap_opts ? qdict_get_try_str(bitmap_opts, "name") : NULL;
    if (!node || !name) {
        error_setg(errp, "Parameter 'bitmap' expects an object with the "
                   "members 'node' and 'name'");
        return false;
    }
    bitmap_bs = bdrv_lookup_bs(node, node, errp);
    if (!bitmap_bs) {
        return false;
    }
    bitmap = block_dirty_bitmap_lookup(bitmap_bs, name, errp);
    if (!bitmap ||
        bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO, errp) < 0) {
        return false;
    }
    if (bdrv_dirty_bitmap_size(bitmap) != len) {
        error_setg(errp, "Bitmap '%s' covers %" PRId64 " bytes, but the "
                   "copy-before-write source has %" PRId64, name,
                   bdrv_dirty_bitmap_size(bitmap), len);
        return false;
    }
    block_copy_mark_none(s->bcs);
    hbitmap_reset_all(s->access_bitmap);
    while (bdrv_dirty_bitmap_next_dirty_area(bitmap, pos, len, INT64_MAX,
                                             &area, &area_bytes)) {
        block_copy_set_dirty(s->bcs, area, area_bytes);
        hbitmap_set(s->access_bitmap, area, area_bytes);
        pos = area + area_bytes;
    }
    qdict_del(options, "bitmap");
    return true;
}

static int cbw_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;
    BlockCopyOptions bc_opts = { 0 };
    BlockDriverState *file_bs;
    int64_t timeout, len;
    uint64_t min_cluster_size;
    int on_error;

    if (!qdict_get_enum_opt(options, "on-cbw-error",
                            OnCbwError_lookup.array,
                            ON_CBW_ERROR_BREAK_GUEST_WRITE, &on_error,
                            errp) ||
        !qdict_get_int_opt(options, "cbw-timeout", 0, &timeout, errp) ||
        !qdict_get_size_opt(options, "min-cluster-size", 0,
                            &min_cluster_size, errp)) {
        return -EINVAL;
    }
    if (timeout < 0 || timeout > UINT32_MAX) {
        error_setg(errp, "Parameter 'cbw-timeout' expects uint32_t");
        return -EINVAL;
    }
    if (min_cluster_size > INT64_MAX) {
        error_setg(errp, "Parameter 'min-cluster-size' is too large");
        return -EINVAL;
    }

    bs->file = bdrv_open_child(NULL, options, "file", bs,
                               BDRV_CHILD_DATA | BDRV_CHILD_FILTERED |
                               BDRV_CHILD_PRIMARY, false, errp);
    if (!bs->file) {
        return -EINVAL;
    }
    s->target = bdrv_open_child(NULL, options, "target", bs,
                                BDRV_CHILD_DATA, false, errp);
    if (!s->target) {
        return -EINVAL;
    }

    bc_opts.min_cluster_size = min_cluster_size;
    s->bcs = block_copy_state_new(bs->file, s->target, &bc_opts, errp);
    if (!s->bcs) {
        return -EINVAL;
    }
    len = block_copy_length(s->bcs);
    s->access_bitmap = hbitmap_alloc(len,
                                     ctz64(block_copy_cluster_size(s->bcs)));
    hbitmap_set(s->access_bitmap, 0, len);
    if (!cbw_apply_bitmap_option(s, options, errp)) {
        hbitmap_free(s->access_bitmap);
        block_copy_state_free(s->bcs);
        return -EINVAL;
    }
    s->on_cbw_error = on_error;
    s->cbw_timeout_ns = timeout * NANOSECONDS_PER_SECOND;
    QLIST_INIT(&s->frozen_reads);

    file_bs = bs->file->bs;
    bs->supported_write_flags = BDRV_REQ_WRITE_UNCHANGED |
        (file_bs->supported_write_flags & BDRV_REQ_FUA);
    bs->supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED |
        (file_bs->supported_zero_flags &
         (BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK));
    return 0;
}

/* Runs after the generic close drained the node (and so its children). */
static void cbw_close(BlockDriverState *bs)
{
    BDRVCopyBeforeWriteState *s = bs->opaque;

    assert(QLIST_EMPTY(&s->frozen_reads));
    block_copy_state_free(s->bcs);
    s->bcs = NULL;
    hbitmap_free(s->access_bitmap);
    s->access_bitmap = NULL;
}

static const char *const cbw_runtime_opts[] = {
    "file",
    "target",
    "bitmap",
    "on-cbw-error",
    "cbw-timeout",
    "min-cluster-size",
    NULL,
};

static BlockDriver bdrv_cbw = {
    .format_name = "copy-before-write",
    .instance_size = sizeof(BDRVCopyBeforeWriteState),
    .is_filter = true,
    .runtime_opts = cbw_runtime_opts,
    .bdrv_open = cbw_open,
    .bdrv_close = cbw_close,
    .bdrv_co_preadv = cbw_co_preadv,
    .bdrv_co_pwritev = cbw_co_pwritev,
    .bdrv_co_pwrite_zeroes = cbw_co_pwrite_zeroes,
    .bdrv_co_pdiscard = cbw_co_pdiscard,
    .bdrv_getlength = cbw_getlength,
};

void bdrv_cbw_init(void)
{
    bdrv_register(&bdrv_cbw);
}
