/*
 * BlockBackend: a named attachment ("drive") through which a user (guest
 * device, qblock-io, a job's target writer) does I/O on a root node.
 *
 * A BlockBackend holds one reference on its root node through a BdrvChild
 * edge named "root"; blk_remove_bs() or the last blk_unref() drops it.
 */
#ifndef BLOCK_BACKEND_H
#define BLOCK_BACKEND_H

#include "block/block.h"

typedef void BlockCompletionFunc(void *opaque, int ret);

BlockBackend *blk_new(void);
/* Opens a node with bdrv_open() and attaches it; NULL on error. */
BlockBackend *blk_new_open(const char *filename, const char *reference,
                           QDict *options, int flags, Error **errp);
void blk_ref(BlockBackend *blk);
void blk_unref(BlockBackend *blk);

/* Attaches @bs as the root; takes a new reference on it. */
int blk_insert_bs(BlockBackend *blk, BlockDriverState *bs, Error **errp);
void blk_remove_bs(BlockBackend *blk);
BlockDriverState *blk_bs(BlockBackend *blk);
BdrvChild *blk_root(BlockBackend *blk);

/* Monitor names ("drive0"). */
bool monitor_add_blk(BlockBackend *blk, const char *name, Error **errp);
void monitor_remove_blk(BlockBackend *blk);
const char *blk_name(const BlockBackend *blk);
BlockBackend *blk_by_name(const char *name);
/* Iterates over named BlockBackends. */
BlockBackend *blk_next(BlockBackend *blk);

/*
 * With the write cache disabled (cache=writethrough/directsync), every
 * write is FUA: it is on stable storage when it completes.  Enabled by
 * default.
 */
void blk_set_enable_write_cache(BlockBackend *blk, bool wce);
bool blk_enable_write_cache(BlockBackend *blk);

/* Writes past the end grow the image (used when creating images). */
void blk_set_allow_write_beyond_eof(BlockBackend *blk, bool allow);
bool blk_is_read_only(BlockBackend *blk);
bool blk_is_inserted(BlockBackend *blk);

int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, QEMUIOVector *qiov,
                               BdrvRequestFlags flags);
int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn blk_co_pread(BlockBackend *blk, int64_t offset,
                              int64_t bytes, void *buf,
                              BdrvRequestFlags flags);
int coroutine_fn blk_co_pwrite(BlockBackend *blk, int64_t offset,
                               int64_t bytes, const void *buf,
                               BdrvRequestFlags flags);
int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes);
int coroutine_fn blk_co_flush(BlockBackend *blk);

/* Synchronous versions (0 or -errno). */
int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf,
              BdrvRequestFlags flags);
int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags);
int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes,
               QEMUIOVector *qiov, BdrvRequestFlags flags);
int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes,
                QEMUIOVector *qiov, BdrvRequestFlags flags);
int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags);
int blk_pwrite_compressed(BlockBackend *blk, int64_t offset, int64_t bytes,
                          const void *buf);
int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes);
int blk_flush(BlockBackend *blk);
int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, BdrvRequestFlags flags, Error **errp);

/*
 * Asynchronous requests: @cb(@opaque, ret) runs from the main loop when
 * the request completes (never before the function returns).  The caller
 * keeps @qiov alive until then.
 */
void blk_aio_preadv(BlockBackend *blk, int64_t offset, QEMUIOVector *qiov,
                    BdrvRequestFlags flags, BlockCompletionFunc *cb,
                    void *opaque);
void blk_aio_pwritev(BlockBackend *blk, int64_t offset, QEMUIOVector *qiov,
                     BdrvRequestFlags flags, BlockCompletionFunc *cb,
                     void *opaque);
void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
void blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BlockCompletionFunc *cb, void *opaque);

int64_t blk_getlength(BlockBackend *blk);
void blk_drain(BlockBackend *blk);
/* Requests issued through @blk and not completed yet. */
unsigned blk_in_flight(BlockBackend *blk);

#endif
