/*
 * BlockBackend: the user-facing attachment of a root node.
 *
 * A BlockBackend owns one reference on its root node, held by its "root"
 * BdrvChild edge.  BlockBackends themselves are refcounted by their users
 * (device front ends, tools, jobs); a named one is also listed for the
 * monitor until monitor_remove_blk().
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"

struct BlockBackend {
    char *name;                 /* monitor name, NULL if anonymous */
    int refcnt;
    BdrvChild *root;
    bool allow_write_beyond_eof;
    bool disable_write_cache;   /* writethrough: every write is FUA */
    unsigned in_flight;         /* requests issued through this backend */
    QTAILQ_ENTRY(BlockBackend) monitor_link;
};

static QTAILQ_HEAD(, BlockBackend) monitor_block_backends =
    QTAILQ_HEAD_INITIALIZER(monitor_block_backends);

static char *blk_root_get_parent_desc(BdrvChild *child)
{
    BlockBackend *blk = child->opaque;

    if (blk->name) {
        return g_strdup_printf("block device '%s'", blk->name);
    }
    return g_strdup("an unnamed block device");
}

static const char *blk_root_get_name(BdrvChild *child)
{
    BlockBackend *blk = child->opaque;

    return blk->name ? blk->name : "";
}

static const BdrvChildClass child_root = {
    .parent_is_bds = false,
    .get_parent_desc = blk_root_get_parent_desc,
    .get_name = blk_root_get_name,
};

BlockBackend *blk_new(void)
{
    BlockBackend *blk = g_new0(BlockBackend, 1);

    blk->refcnt = 1;
    return blk;
}

BlockBackend *blk_new_open(const char *filename, const char *reference,
                           QDict *options, int flags, Error **errp)
{
    BlockDriverState *bs = bdrv_open(filename, reference, options, flags,
                                     errp);
    BlockBackend *blk;

    if (!bs) {
        return NULL;
    }
    blk = blk_new();
    /* The root edge takes over the reference bdrv_open() gave us. */
    blk->root = bdrv_root_attach_child(bs, "root", &child_root,
                                       BDRV_CHILD_DATA | BDRV_CHILD_FILTERED |
                                       BDRV_CHILD_PRIMARY, blk, errp);
    if (!blk->root) {
        blk_unref(blk);
        return NULL;
    }
    return blk;
}

void blk_ref(BlockBackend *blk)
{
    blk->refcnt++;
}

void blk_unref(BlockBackend *blk)
{
    if (!blk) {
        return;
    }
    assert(blk->refcnt > 0);
    if (--blk->refcnt == 0) {
        blk_drain(blk);
        monitor_remove_blk(blk);
        blk_remove_bs(blk);
        g_free(blk);
    }
}

int blk_insert_bs(BlockBackend *blk, BlockDriverState *bs, Error **errp)
{
    assert(!blk->root);
    bdrv_ref(bs);
    blk->root = bdrv_root_attach_child(bs, "root", &child_root,
                                       BDRV_CHILD_DATA | BDRV_CHILD_FILTERED |
                                       BDRV_CHILD_PRIMARY, blk, errp);
    return blk->root ? 0 : -EPERM;
}

void blk_remove_bs(BlockBackend *blk)
{
    BdrvChild *root = blk->root;

    if (!root) {
        return;
    }
    blk_drain(blk);
    blk->root = NULL;
    bdrv_root_unref_child(root);
}

BlockDriverState *blk_bs(BlockBackend *blk)
{
    return blk->root ? blk->root->bs : NULL;
}

BdrvChild *blk_root(BlockBackend *blk)
{
    return blk->root;
}

bool monitor_add_blk(BlockBackend *blk, const char *name, Error **errp)
{
    assert(!blk->name);
    if (!name || !*name) {
        error_setg(errp, "Device id must not be empty");
        return false;
    }
    if (blk_by_name(name)) {
        error_setg(errp, "Device with id '%s' already exists", name);
        return false;
    }
    if (bdrv_find_node(name)) {
        error_setg(errp, "Device name '%s' conflicts with an existing node "
                   "name", name);
        return false;
    }
    blk->name = g_strdup(name);
    QTAILQ_INSERT_TAIL(&monitor_block_backends, blk, monitor_link);
    return true;
}

void monitor_remove_blk(BlockBackend *blk)
{
    if (!blk->name) {
        return;
    }
    QTAILQ_REMOVE(&monitor_block_backends, blk, monitor_link);
    g_free(blk->name);
    blk->name = NULL;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name ? blk->name : "";
}

BlockBackend *blk_by_name(const char *name)
{
    BlockBackend *blk;

    QTAILQ_FOREACH(blk, &monitor_block_backends, monitor_link) {
        if (!strcmp(blk->name, name)) {
            return blk;
        }
    }
    return NULL;
}

BlockBackend *blk_next(BlockBackend *blk)
{
    return blk ? QTAILQ_NEXT(blk, monitor_link)
               : QTAILQ_FIRST(&monitor_block_backends);
}

void blk_set_enable_write_cache(BlockBackend *blk, bool wce)
{
    blk->disable_write_cache = !wce;
}

bool blk_enable_write_cache(BlockBackend *blk)
{
    return !blk->disable_write_cache;
}

void blk_set_allow_write_beyond_eof(BlockBackend *blk, bool allow)
{
    blk->allow_write_beyond_eof = allow;
}

bool blk_is_read_only(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);

    return bs ? bdrv_is_read_only(bs) : true;
}

bool blk_is_inserted(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);

    return bs && bs->drv;
}

int64_t blk_getlength(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);

    return bs ? bdrv_getlength(bs) : -ENOMEDIUM;
}

unsigned blk_in_flight(BlockBackend *blk)
{
    return blk->in_flight;
}

void blk_drain(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);

    if (qemu_in_coroutine()) {
        while (blk->in_flight) {
            aio_co_schedule(qemu_get_aio_context(), qemu_coroutine_self());
            qemu_coroutine_yield();
        }
    } else {
        AIO_WAIT_WHILE(blk->in_flight > 0);
    }
    if (bs) {
        bdrv_drain(bs);
    }
}

/*
 * Requests must lie within the device unless the backend may grow it
 * (image creation); 0 or -errno.
 */
static int blk_check_byte_request(BlockBackend *blk, int64_t offset,
                                  int64_t bytes, bool is_write)
{
    int64_t len;

    if (!blk_is_inserted(blk)) {
        return -ENOMEDIUM;
    }
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    if (is_write && blk->allow_write_beyond_eof) {
        return 0;
    }
    len = blk_getlength(blk);
    if (len < 0) {
        return len;
    }
    if (offset > len || len - offset < bytes) {
        return -EIO;
    }
    return 0;
}

int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, QEMUIOVector *qiov,
                               BdrvRequestFlags flags)
{
    int ret = blk_check_byte_request(blk, offset, bytes, false);

    if (ret < 0) {
        return ret;
    }
    blk->in_flight++;
    ret = bdrv_co_preadv(blk->root, offset, bytes, qiov, flags);
    blk->in_flight--;
    return ret;
}

int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags)
{
    int ret = blk_check_byte_request(blk, offset, bytes, true);

    if (ret < 0) {
        return ret;
    }
    if (blk->disable_write_cache) {
        flags |= BDRV_REQ_FUA;
    }
    blk->in_flight++;
    if (flags & BDRV_REQ_ZERO_WRITE) {
        ret = bdrv_co_pwrite_zeroes(blk->root, offset, bytes, flags);
    } else {
        ret = bdrv_co_pwritev(blk->root, offset, bytes, qiov, flags);
    }
    blk->in_flight--;
    return ret;
}

int coroutine_fn blk_co_pread(BlockBackend *blk, int64_t offset,
                              int64_t bytes, void *buf,
                              BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return blk_co_preadv(blk, offset, bytes, &qiov, flags);
}

int coroutine_fn blk_co_pwrite(BlockBackend *blk, int64_t offset,
                               int64_t bytes, const void *buf,
                               BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return blk_co_pwritev(blk, offset, bytes, &qiov, flags);
}

int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags)
{
    return blk_co_pwritev(blk, offset, bytes, NULL,
                          flags | BDRV_REQ_ZERO_WRITE);
}

int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes)
{
    int ret = blk_check_byte_request(blk, offset, bytes, true);

    if (ret < 0) {
        return ret;
    }
    blk->in_flight++;
    ret = bdrv_co_pdiscard(blk->root, offset, bytes);
    blk->in_flight--;
    return ret;
}

int coroutine_fn blk_co_flush(BlockBackend *blk)
{
    int ret;

    if (!blk_is_inserted(blk)) {
        return -ENOMEDIUM;
    }
    blk->in_flight++;
    ret = bdrv_co_flush(blk_bs(blk));
    blk->in_flight--;
    return ret;
}

typedef enum {
    BLK_OP_READ,
    BLK_OP_WRITE,
    BLK_OP_DISCARD,
    BLK_OP_FLUSH,
} BlkOp;

/* One request run in its own coroutine, for the sync and aio wrappers. */
typedef struct {
    BlockBackend *blk;
    BlkOp op;
    int64_t offset;
    int64_t bytes;
    QEMUIOVector *qiov;
    BdrvRequestFlags flags;
    int ret;
    BlockCompletionFunc *cb;    /* aio only */
    void *opaque;
} BlkRwCo;

static int coroutine_fn blk_rw_co_do(BlkRwCo *rwco)
{
    switch (rwco->op) {
    case BLK_OP_READ:
        return blk_co_preadv(rwco->blk, rwco->offset, rwco->bytes,
                             rwco->qiov, rwco->flags);
    case BLK_OP_WRITE:
        return blk_co_pwritev(rwco->blk, rwco->offset, rwco->bytes,
                              rwco->qiov, rwco->flags);
    case BLK_OP_DISCARD:
        return blk_co_pdiscard(rwco->blk, rwco->offset, rwco->bytes);
    case BLK_OP_FLUSH:
        return blk_co_flush(rwco->blk);
    }
    g_assert_not_reached();
}

static void coroutine_fn blk_rw_co_entry(void *opaque)
{
    BlkRwCo *rwco = opaque;

    rwco->ret = blk_rw_co_do(rwco);
}

static int blk_rw_sync(BlockBackend *blk, BlkOp op, int64_t offset,
                       int64_t bytes, QEMUIOVector *qiov,
                       BdrvRequestFlags flags)
{
    BlkRwCo rwco = {
        .blk = blk, .op = op, .offset = offset, .bytes = bytes,
        .qiov = qiov, .flags = flags,
    };

    return bdrv_co_run(blk_rw_co_entry, &rwco, &rwco.ret);
}

int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes,
               QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    return blk_rw_sync(blk, BLK_OP_READ, offset, bytes, qiov, flags);
}

int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes,
                QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    return blk_rw_sync(blk, BLK_OP_WRITE, offset, bytes, qiov, flags);
}

int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf,
              BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return blk_preadv(blk, offset, bytes, &qiov, flags);
}

int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return blk_pwritev(blk, offset, bytes, &qiov, flags);
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags)
{
    return blk_rw_sync(blk, BLK_OP_WRITE, offset, bytes, NULL,
                       flags | BDRV_REQ_ZERO_WRITE);
}

int blk_pwrite_compressed(BlockBackend *blk, int64_t offset, int64_t bytes,
                          const void *buf)
{
    return blk_pwrite(blk, offset, bytes, buf, BDRV_REQ_WRITE_COMPRESSED);
}

int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    return blk_rw_sync(blk, BLK_OP_DISCARD, offset, bytes, NULL, 0);
}

int blk_flush(BlockBackend *blk)
{
    return blk_rw_sync(blk, BLK_OP_FLUSH, 0, 0, NULL, 0);
}

int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, BdrvRequestFlags flags, Error **errp)
{
    if (!blk_is_inserted(blk)) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    return bdrv_truncate(blk->root, offset, exact, prealloc, flags, errp);
}

static void blk_aio_complete_bh(void *opaque)
{
    BlkRwCo *rwco = opaque;

    rwco->cb(rwco->opaque, rwco->ret);
    blk_unref(rwco->blk);
    g_free(rwco);
}

static void coroutine_fn blk_aio_co_entry(void *opaque)
{
    BlkRwCo *rwco = opaque;

    rwco->ret = blk_rw_co_do(rwco);
    /* Completion always comes from the loop, never inside the submit. */
    aio_bh_schedule_oneshot(qemu_get_aio_context(), blk_aio_complete_bh,
                            rwco);
}

/* The aio request holds a reference on @blk until its callback ran. */
static void blk_aio_submit(BlockBackend *blk, BlkOp op, int64_t offset,
                           int64_t bytes, QEMUIOVector *qiov,
                           BdrvRequestFlags flags, BlockCompletionFunc *cb,
                           void *opaque)
{
    BlkRwCo *rwco = g_new(BlkRwCo, 1);

    *rwco = (BlkRwCo) {
        .blk = blk, .op = op, .offset = offset, .bytes = bytes,
        .qiov = qiov, .flags = flags, .cb = cb, .opaque = opaque,
    };
    blk_ref(blk);
    qemu_coroutine_enter(qemu_coroutine_create(blk_aio_co_entry, rwco));
}

void blk_aio_preadv(BlockBackend *blk, int64_t offset, QEMUIOVector *qiov,
                    BdrvRequestFlags flags, BlockCompletionFunc *cb,
                    void *opaque)
{
    blk_aio_submit(blk, BLK_OP_READ, offset, qiov->size, qiov, flags, cb,
                   opaque);
}

void blk_aio_pwritev(BlockBackend *blk, int64_t offset, QEMUIOVector *qiov,
                     BdrvRequestFlags flags, BlockCompletionFunc *cb,
                     void *opaque)
{
    blk_aio_submit(blk, BLK_OP_WRITE, offset, qiov->size, qiov, flags, cb,
                   opaque);
}

void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLK_OP_FLUSH, 0, 0, NULL, 0, cb, opaque);
}

void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque)
{
    blk_aio_submit(blk, BLK_OP_DISCARD, offset, bytes, NULL, 0, cb, opaque);
}
