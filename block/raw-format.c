/*
 * The "raw" format: the guest sees the bytes of its file child, optionally
 * restricted to the window [offset, offset + size).
 *
 * Without offset and size the node is a thin filter over its file; with
 * them it is an ordinary format node whose requests are shifted and
 * bounded to the window.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "block/block_int.h"
#include "block/drivers.h"

typedef struct BDRVRawFormatState {
    uint64_t offset;
    uint64_t size;
    bool has_size;              /* the window has a fixed size */
} BDRVRawFormatState;

static bool raw_read_options(QDict *options, BDRVRawFormatState *s,
                             Error **errp)
{
    s->has_size = qdict_haskey(options, "size");
    return qdict_get_size_opt(options, "offset", 0, &s->offset, errp) &&
           qdict_get_size_opt(options, "size", 0, &s->size, errp);
}

/* Checks the window against the length of the file child. */
static int raw_check_window(BlockDriverState *bs, Error **errp)
{
    BDRVRawFormatState *s = bs->opaque;
    int64_t len = bdrv_getlength(bs->file->bs);

    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the size of the file");
        return len;
    }
    if (s->offset > (uint64_t)len) {
        error_setg(errp, "Offset (%" PRIu64 ") cannot be greater than size "
                   "of the containing file (%" PRId64 ")", s->offset, len);
        return -EINVAL;
    }
    if (s->has_size && (uint64_t)len - s->offset < s->size) {
        error_setg(errp, "The sum of offset (%" PRIu64 ") and size (%"
                   PRIu64 ") has to be smaller or equal to the  actual size "
                   "of the containing file (%" PRId64 ")",
                   s->offset, s->size, len);
        return -EINVAL;
    }
    if (s->has_size && !QEMU_IS_ALIGNED(s->size, BDRV_SECTOR_SIZE)) {
        error_setg(errp, "Specified size is not multiple of %llu",
                   BDRV_SECTOR_SIZE);
        return -EINVAL;
    }
    return 0;
}

static int raw_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVRawFormatState *s = bs->opaque;
    BdrvChildRole role = BDRV_CHILD_DATA | BDRV_CHILD_PRIMARY;
    BlockDriverState *file_bs;
    int ret;

    if (!raw_read_options(options, s, errp)) {
        return -EINVAL;
    }
    /* Only a node showing the whole file filters it. */
    if (!s->offset && !s->has_size) {
        role |= BDRV_CHILD_FILTERED;
    }
    bs->file = bdrv_open_child(NULL, options, "file", bs, role, false, errp);
    if (!bs->file) {
        return -EINVAL;
    }

    ret = raw_check_window(bs, errp);
    if (ret < 0) {
        bdrv_unref_child(bs, bs->file);
        bs->file = NULL;
        return ret;
    }

    file_bs = bs->file->bs;
    bs->supported_write_flags = BDRV_REQ_WRITE_UNCHANGED |
        (file_bs->supported_write_flags &
         (BDRV_REQ_FUA | BDRV_REQ_DONTCACHE));
    bs->supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED |
        (file_bs->supported_zero_flags &
         (BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK));
    return 0;
}

/*
 * Shifts a request into the window.  Requests reaching past a fixed-size
 * window fail: writes with -ENOSPC like a full device, others -EINVAL.
 */
static int raw_adjust_offset(BlockDriverState *bs, int64_t *offset,
                             int64_t bytes, bool is_write)
{
    BDRVRawFormatState *s = bs->opaque;

    if (s->has_size && ((uint64_t)*offset > s->size ||
                        (uint64_t)bytes > s->size - *offset)) {
        return is_write ? -ENOSPC : -EINVAL;
    }
    if ((uint64_t)*offset > INT64_MAX - s->offset) {
        return -EINVAL;
    }
    *offset += s->offset;
    return 0;
}

static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    int ret = raw_adjust_offset(bs, &offset, bytes, false);

    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_READ_AIO);
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    int ret = raw_adjust_offset(bs, &offset, bytes, true);

    if (ret < 0) {
        return ret;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_WRITE_AIO);
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    int ret = raw_adjust_offset(bs, &offset, bytes, true);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    int ret = raw_adjust_offset(bs, &offset, bytes, true);

    if (ret < 0) {
        return ret;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

/* The data is wherever the file has it: let the generic code ask it. */
static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawFormatState *s = bs->opaque;

    *pnum = bytes;
    *file = bs->file->bs;
    *map = offset + s->offset;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawFormatState *s = bs->opaque;
    int64_t len;

    if (s->has_size) {
        return s->size;
    }
    len = bdrv_getlength(bs->file->bs);
    if (len < 0) {
        return len;
    }
    /* The file may have shrunk below the offset since open. */
    return (uint64_t)len > s->offset ? len - (int64_t)s->offset : 0;
}

static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    return bdrv_get_allocated_file_size(bs->file->bs);
}

static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawFormatState *s = bs->opaque;

    if (s->has_size) {
        error_setg(errp, "Cannot resize fixed-size raw disks");
        return -ENOTSUP;
    }
    if ((uint64_t)offset > INT64_MAX - s->offset) {
        error_setg(errp, "Disk size too large for the chosen offset");
        return -EINVAL;
    }
    return bdrv_co_truncate(bs->file, offset + s->offset, exact, prealloc,
                            flags, errp);
}

static int coroutine_fn raw_co_create_opts(BlockDriver *drv,
                                           const char *filename, QDict *opts,
                                           Error **errp)
{
    return bdrv_create_file(filename, opts, errp);
}

/* Any content is a valid raw image: the lowest non-zero score. */
static int raw_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return 1;
}

/* No clusters and no VM state: what qemu-io info prints for raw. */
static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    return 0;
}

/*
 * A raw image needs exactly its virtual size, rounded up to whole
 * sectors, whatever the source's allocation.
 */
static int raw_measure(QDict *opts, BlockDriverState *in_bs,
                       BlockMeasureInfo *info, Error **errp)
{
    uint64_t size;
    int64_t len;

    if (in_bs) {
        len = bdrv_getlength(in_bs);
        if (len < 0) {
            error_setg_errno(errp, -len, "Unable to get image virtual_size");
            return len;
        }
        size = len;
    } else if (!qdict_get_size_opt(opts, "size", 0, &size, errp)) {
        return -EINVAL;
    }
    info->required = QEMU_ALIGN_UP(size, BDRV_SECTOR_SIZE);
    info->fully_allocated = info->required;
    return 0;
}

static const char *const raw_runtime_opts[] = {
    "offset",
    "size",
    "file",
    NULL,
};

static const CreateOptDesc raw_create_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "nocow", CREATE_OPT_BOOL, "Turn off copy-on-write (valid only on "
      "btrfs)", NULL },
    { "preallocation", CREATE_OPT_STRING, "Preallocation mode (allowed "
      "values: off, falloc, full)", NULL },
    { NULL }
};

static BlockDriver bdrv_raw = {
    .format_name = "raw",
    .instance_size = sizeof(BDRVRawFormatState),
    .is_format = true,
    .has_variable_length = true,
    .runtime_opts = raw_runtime_opts,
    .create_opts = raw_create_opts,
    .bdrv_probe = raw_probe,
    .bdrv_open = raw_open,
    .bdrv_co_preadv = raw_co_preadv,
    .bdrv_co_pwritev = raw_co_pwritev,
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .bdrv_co_pdiscard = raw_co_pdiscard,
    .bdrv_co_block_status = raw_co_block_status,
    .bdrv_co_truncate = raw_co_truncate,
    .bdrv_getlength = raw_getlength,
    .bdrv_get_allocated_file_size = raw_get_allocated_file_size,
    .bdrv_co_create_opts = raw_co_create_opts,
    .bdrv_measure = raw_measure,
    .bdrv_get_info = raw_get_info,
};

void bdrv_raw_init(void)
{
    bdrv_register(&bdrv_raw);
}
