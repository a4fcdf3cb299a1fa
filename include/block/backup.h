/*
 * The backup job: a point-in-time copy of a node into a target node.
 *
 * At creation the job installs a before-write notifier of its block-copy
 * state on the source (the 2013 design): from that instant every guest
 * write, write-zeroes and discard first copies the old content of the
 * affected clusters to the target.  The job's coroutine copies the rest
 * in the background (sync full/top/bitmap/incremental) or only waits to
 * be cancelled (sync none).  See docs/backup.md.
 */
#ifndef BLOCK_BACKUP_H
#define BLOCK_BACKUP_H

#include "block/blockjob.h"
#include "block/dirty-bitmap.h"

typedef struct BackupJobOptions {
    MirrorSyncMode sync;
    int64_t speed;
    /* Bitmap for sync=bitmap/incremental (or full/top); NULL: none. */
    BdrvDirtyBitmap *bitmap;
    BitmapSyncMode bitmap_mode;
    bool compress;
    BlockdevOnError on_source_error;
    BlockdevOnError on_target_error;
    int job_flags;              /* JOB_MANUAL_FINALIZE / _DISMISS */
    int max_workers;            /* x-perf; 0: default */
    int64_t max_chunk;          /* x-perf; 0: default */
} BackupJobOptions;

/*
 * Creates and starts a backup job from @bs to @target.  The job takes its
 * own references on both nodes (job edges) and drops them when it
 * concludes; the caller keeps its own.  @job_id NULL: the drive name.
 */
BlockJob *backup_job_create(const char *job_id, BlockDriverState *bs,
                            BlockDriverState *target,
                            const BackupJobOptions *opts, Error **errp);

/*
 * backup_job_create() without the start: the job is in state created and
 * copy-before-write is already active.  The caller either job_start()s it
 * or job_cancel()s it (a transaction's commit or abort).
 */
BlockJob *backup_job_new(const char *job_id, BlockDriverState *bs,
                         BlockDriverState *target,
                         const BackupJobOptions *opts, Error **errp);

#endif
