/*
 * block-copy: the copy engine of live backup.
 *
 * A BlockCopyState copies clusters from a source child to a target child,
 * each cluster exactly once.  The clusters still to copy are the set bits
 * of the copy map (an HBitmap over the source's bytes with one bit per
 * cluster).  Copying a cluster first *claims* it: its bit is cleared and a
 * task covering it is listed as in flight.  Claiming never yields, so two
 * coroutines can never claim the same cluster.  A task that succeeds
 * leaves the bit clear for good; a task that fails sets it again, so a
 * later call copies the cluster again.
 *
 * Who waits for whom:
 *  - block_copy() (copy-before-write) claims the dirty clusters of its
 *    range, then waits for its own tasks and for every task of other
 *    callers that overlaps the range, so on success every cluster of the
 *    range is in the target;
 *  - block_copy_run() (the background loop) claims what is dirty and never
 *    waits for other callers' tasks while it walks the image; it only waits
 *    for them at the end so that "done" means the whole map was copied;
 *  - tasks themselves only wait for I/O and never for other tasks, so no
 *    cycle of waits can form.
 *
 * All functions run in the main loop thread.  The state borrows its two
 * child edges: whoever created them (the copy-before-write filter, a
 * backup job) keeps them until after block_copy_state_free().
 */
#ifndef BLOCK_BLOCK_COPY_H
#define BLOCK_BLOCK_COPY_H

#include "block/block_int.h"
#include "qemu/hbitmap.h"

typedef struct BlockCopyState BlockCopyState;
typedef struct BlockCopyNotifier BlockCopyNotifier;

/* Called after every successful task with the number of bytes it copied. */
typedef void BlockCopyProgressFunc(void *opaque, int64_t bytes);

typedef struct BlockCopyOptions {
    /* Write the target with BDRV_REQ_WRITE_COMPRESSED (one cluster a task). */
    bool compress;
    /*
     * Write the target's data with BDRV_REQ_DONTCACHE: nobody reads it
     * back through this host's page cache (a backup, not a fleecing
     * image).
     */
    bool dontcache;
    /*
     * Lower bound for the cluster size (a power of two; 0: none).  The
     * cluster size is the largest of this, the target's cluster size and
     * 64 KiB.
     */
    int64_t min_cluster_size;
    /* Largest task in bytes when adjacent clusters merge (0: 1 MiB). */
    int64_t max_chunk;
    /* Tasks one call runs in parallel (0: 64). */
    int max_workers;
    /* Bytes of buffers all tasks together may hold (0: 128 MiB). */
    int64_t max_mem;
} BlockCopyOptions;

/*
 * Creates a copy state with every cluster of the source marked to copy.
 * @opts may be NULL for the defaults.  Fails if the target is shorter
 * than the source or both children are the same node.
 */
BlockCopyState *block_copy_state_new(BdrvChild *source, BdrvChild *target,
                                     const BlockCopyOptions *opts,
                                     Error **errp);
/* No call may be running any more (drain the nodes first). */
void block_copy_state_free(BlockCopyState *s);

int64_t block_copy_cluster_size(BlockCopyState *s);
/* The source length the copy map covers. */
int64_t block_copy_length(BlockCopyState *s);

/*
 * Initialisers of the copy map; they replace what was marked before and
 * must only be used while no task is in flight (before copying starts).
 * @map covers the source's bytes (any granularity); every cluster that
 * touches a set bit of @map is marked.
 */
void block_copy_set_copy_map(BlockCopyState *s, const HBitmap *map);
void block_copy_mark_all(BlockCopyState *s);
void block_copy_mark_none(BlockCopyState *s);

/*
 * Marks / unmarks the clusters touching [offset, offset + bytes).  An
 * unmarked cluster is never copied ("done with this range"); a task in
 * flight for it still finishes.
 */
void block_copy_set_dirty(BlockCopyState *s, int64_t offset, int64_t bytes);
void block_copy_reset(BlockCopyState *s, int64_t offset, int64_t bytes);

/*
 * For sync=top: looks at the allocation of the cluster at @offset in the
 * source's top layer.  If the source does not allocate it there, unmarks
 * the unallocated clusters from @offset on and returns 0; if it does,
 * returns 1.  Either way *count is the number of bytes (whole clusters)
 * the answer covers.  Negative errno on failure.
 */
int coroutine_fn block_copy_reset_unallocated(BlockCopyState *s,
                                              int64_t offset,
                                              int64_t *count);

/*
 * Copies every marked cluster touching [offset, offset + bytes) and
 * waits for clusters of the range that other callers are copying; on
 * success the whole range is in the target.  Tasks run in parallel.
 * The rate limit applies unless @ignore_ratelimit.  On failure returns
 * the first error and sets *error_is_read (if non-NULL) when it came from
 * the source; the failed clusters stay marked.
 */
int coroutine_fn block_copy(BlockCopyState *s, int64_t offset,
                            int64_t bytes, bool ignore_ratelimit,
                            bool *error_is_read);

/*
 * Like block_copy() with @ignore_ratelimit, but gives up waiting after
 * @timeout_ns (0: never) and returns -ETIMEDOUT.  The copy itself goes on
 * in the background and keeps the source node busy (in flight) until it
 * ends, so draining the source waits for it.
 *
 * With @write_behind it returns once the old data of the bytes it names
 * is read into memory (the rest of their clusters is read afterwards; see
 * docs/devel/block-copy.md); a later failure to read the rest or to write
 * it all to the target cannot fail the caller any more and sets
 * block_copy_error().
 */
int coroutine_fn block_copy_with_timeout(BlockCopyState *s, int64_t offset,
                                         int64_t bytes, int64_t timeout_ns,
                                         bool write_behind,
                                         bool *error_is_read);

/*
 * The background loop: copies every marked cluster, skipping clusters
 * other callers claim meanwhile, and returns once the copy map is empty
 * and no task is in flight (0), after block_copy_cancel() (-ECANCELED),
 * or on the first error (as block_copy()).  Honours the rate limit.
 * Only one block_copy_run() may be active at a time.
 */
int coroutine_fn block_copy_run(BlockCopyState *s, bool *error_is_read);

/*
 * Makes a running block_copy_run() stop starting tasks and return
 * -ECANCELED once its own tasks have finished (a rate-limit sleep is cut
 * short).  block_copy() calls for copy-before-write keep working.
 */
void block_copy_cancel(BlockCopyState *s);
bool block_copy_is_cancelled(BlockCopyState *s);

/* Bytes per second for block_copy_run() and rate-limited calls; 0: none. */
void block_copy_set_speed(BlockCopyState *s, uint64_t speed);

void block_copy_set_progress_callback(BlockCopyState *s,
                                      BlockCopyProgressFunc *cb,
                                      void *opaque);
/*
 * Whether the before-write notifier saw a guest write at or after
 * @since_ns (qemu_clock_get_ns() time), so that a background copy can
 * leave the disk to the guest.
 */
bool block_copy_guest_writes_since(BlockCopyState *s, int64_t since_ns);
/*
 * Progress: bytes copied so far (copy-before-write included) and bytes
 * still to copy (marked or in flight).
 */
int64_t block_copy_bytes_done(BlockCopyState *s);
int64_t block_copy_bytes_remaining(BlockCopyState *s);

/*
 * True if the cluster containing @offset is neither marked nor being
 * copied: either it is in the target, or it was unmarked.
 */
bool block_copy_is_cluster_copied(BlockCopyState *s, int64_t offset);

/*
 * For point-in-time readers: waits until no task overlaps [offset,
 * offset + bytes) and returns whether the cluster at @offset is still
 * marked, with *pnum the bytes from @offset (at most @bytes) in that same
 * state.  Nothing yields between the last check and the return, so the
 * answer holds until the caller yields.
 */
bool coroutine_fn block_copy_wait_range_status(BlockCopyState *s,
                                               int64_t offset, int64_t bytes,
                                               int64_t *pnum);

/* Where the point-in-time content of a range is. */
typedef enum BlockCopyWhere {
    BLOCK_COPY_IN_SOURCE,       /* not copied yet: still in the source */
    BLOCK_COPY_IN_TARGET,       /* copied (or never to be copied) */
    BLOCK_COPY_IN_BUFFER,       /* read by copy-before-write, being written */
} BlockCopyWhere;

/*
 * For point-in-time readers: where the content at @offset is, with *pnum
 * the bytes from @offset (at most @bytes) in the same place and, for
 * BLOCK_COPY_IN_BUFFER, *buf pointing at them (valid until the caller
 * yields).  Waits while a task is still reading the old data at @offset;
 * nothing yields after the last check.  A negative errno means a
 * write-behind failed and the point in time is lost.
 */
int coroutine_fn block_copy_snapshot_where(BlockCopyState *s, int64_t offset,
                                          int64_t bytes, int64_t *pnum,
                                          const uint8_t **buf);

/* How a point-in-time reader reaches the data; see below. */
typedef struct BlockCopySnapshotReader {
    BdrvChild *source;          /* clusters not copied yet */
    BdrvChild *target;          /* copied clusters */
    BdrvRequestFlags source_flags;
    /*
     * Optional: may shorten *pnum for the piece at @offset, or fail the
     * read with a negative errno.  Called with no yield between it and
     * the read of the piece.
     */
    int (*check)(void *opaque, int64_t offset, int64_t *pnum);
    /*
     * Optional: reads a source piece instead of a plain read of @source,
     * e.g. to register it so that guest writes wait for it.
     */
    int coroutine_fn (*read_source)(void *opaque, int64_t offset,
                                    int64_t bytes, QEMUIOVector *qiov);
    void *opaque;
} BlockCopySnapshotReader;

/*
 * Reads [offset, offset + bytes) of the point in time into @qiov at
 * @qiov_offset, piece by piece: from the source (a tracked read, which
 * guest writes wait for), from the target, or from a buffer.  Bytes at or
 * past the end of the copied range are read from the source.
 */
int coroutine_fn block_copy_snapshot_preadv(BlockCopyState *s,
                                           const BlockCopySnapshotReader *r,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           size_t qiov_offset);

/* The error of a failed write-behind (see above), or 0. */
int block_copy_error(BlockCopyState *s);

/*
 * The 2013-style hook: a before-write notifier on @bs that copies the
 * clusters of every write, write-zeroes and discard of @bs before they
 * reach the driver (an error fails the guest request).  The notifier is
 * removed and freed by block_copy_remove_notifier().
 *
 * Copies are written behind: a guest write waits until the old data is
 * read, not until it is in the target.  With @write_back, a data write
 * into clusters still to be copied need not even wait for that: it may
 * be deferred (io.c), completing to the guest before its copy and its
 * write run, with errors reported by the next flush of @bs.  If the
 * target's backing is @bs (fleecing), reads through that backing edge
 * are served the point in time by block_copy_snapshot_preadv() while the
 * notifier is installed.
 */
BlockCopyNotifier *block_copy_install_notifier(BlockCopyState *s,
                                               BlockDriverState *bs,
                                               bool write_back);
void block_copy_remove_notifier(BlockCopyNotifier *n);

#endif
