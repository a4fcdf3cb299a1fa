/*
 * The copy-before-write filter ("copy-before-write").
 *
 * It sits above the node being protected (its "file" child) and, before
 * every guest write, write-zeroes or discard passes through it, copies
 * the old contents of the affected clusters to its "target" child with
 * block-copy.  Reads pass through.  The filter owns the BlockCopyState;
 * a backup job runs the background copy on it, and the snapshot-access
 * driver reads the point-in-time image through the functions below.
 */
#ifndef BLOCK_COPY_BEFORE_WRITE_H
#define BLOCK_COPY_BEFORE_WRITE_H

#include "block/block-copy.h"

/* True if @bs is a copy-before-write node. */
bool bdrv_is_cbw(BlockDriverState *bs);

/* The filter's copy state (borrowed; lives as long as the node). */
BlockCopyState *cbw_get_block_copy_state(BlockDriverState *bs);

/*
 * Reads the image as it was when the filter was opened: clusters already
 * copied come from the target, the others from the source, which stays
 * protected while it is read (a guest write to the range copies first
 * and then waits for the read).  -EACCES for ranges the snapshot no
 * longer covers (discarded, or outside the initial bitmap), and the
 * snapshot's error once a failed copy-before-write broke it.
 */
int coroutine_fn cbw_snapshot_preadv(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, QEMUIOVector *qiov,
                                     size_t qiov_offset);
/*
 * Block status of the snapshot: BDRV_BLOCK_RAW into the node the data
 * comes from (source or target) for the first *pnum bytes; 0 for ranges
 * the snapshot no longer covers.
 */
int coroutine_fn cbw_snapshot_block_status(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           int64_t *pnum, int64_t *map,
                                           BlockDriverState **file);
/*
 * "Done with this range": whole clusters inside [offset, offset + bytes)
 * leave the copy map (guest writes stop copying them) and the snapshot;
 * the target may drop their copies.
 */
int coroutine_fn cbw_snapshot_pdiscard(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes);

#endif
