/*
 * Block jobs: jobs that work on nodes (backup), with the block-job QMP
 * view (query-block-jobs, block-job-*), rate limiting, I/O error policy
 * and the BLOCK_JOB_* events.
 *
 * A BlockJob is the opaque of its Job (JobDriver.is_block_job); the
 * driver's own state hangs off BlockJob.opaque.  The BlockJob lives as
 * long as the Job: it is freed when the job is dismissed.  Drivers set
 * .event_pending = block_job_event_pending, .event_finished =
 * block_job_event_finished, .resume = block_job_resume_hook (clears
 * io-status) and .free = block_job_free (or a function that ends with it)
 * in their JobDriver.
 */
#ifndef BLOCK_BLOCKJOB_H
#define BLOCK_BLOCKJOB_H

#include "qemu/job.h"
#include "qemu/ratelimit.h"

typedef struct BlockJob {
    Job *job;
    void *opaque;
    BdrvChild *main_node;       /* the job's edge to the node it works on */
    int64_t speed;
    RateLimit limit;
    BlockDeviceIoStatus iostatus;
} BlockJob;

/*
 * Creates a block job working on @bs (the job holds @bs through an edge
 * named "main node").  @job_id NULL defaults to the name of the drive
 * whose root @bs is.  Refuses a node another job holds exclusively (see
 * block_job_edge_is_shared()); several jobs may work on one node, e.g.
 * two backups of one source.  @flags as job_create_full().
 */
BlockJob *block_job_create(const char *job_id, const JobDriver *driver,
                           BlockDriverState *bs, int64_t speed, int flags,
                           void *opaque, Error **errp);

/*
 * Undoes block_job_create() for a job that never started (job_early_fail);
 * the caller frees its opaque.
 */
void block_job_early_fail(BlockJob *bjob);

/*
 * Whether the job edge @c leaves its node to other block jobs: true for a
 * block job's main node (a backup's source), false for every other job
 * edge (a backup's target, a node blockdev-create works on).  As QEMU,
 * where a job works on a filter node above its source, so the source
 * itself carries no job blocker and only its target is the job's alone.
 */
bool block_job_edge_is_shared(BdrvChild *c);
/*
 * The unconcluded job that holds @bs through an exclusive edge (not a
 * block job's main node), or NULL.
 */
Job *block_job_exclusive_user(BlockDriverState *bs);

BlockJob *block_job_from_job(Job *job);
/* A block job by id, or NULL. */
BlockJob *block_job_get(const char *id);

void block_job_set_speed(BlockJob *bjob, int64_t speed, Error **errp);
/*
 * Accounts @n bytes against the rate limit and sleeps (interruptibly,
 * honouring pause and cancel) for as long as the limit asks.
 */
void coroutine_fn block_job_ratelimit_sleep(BlockJob *bjob, uint64_t n);

/*
 * Applies the error policy @on_err to an I/O error @error (negative
 * errno) and returns what was done: report (the job should fail), ignore
 * or stop (the job was paused; retry after the next pause point).  Sends
 * BLOCK_JOB_ERROR.
 */
BlockErrorAction block_job_error_action(BlockJob *bjob, BlockdevOnError on_err,
                                        bool is_read, int error);

/* Job driver hooks (see above). */
void block_job_event_pending(Job *job);
void block_job_event_finished(Job *job);
void block_job_free(Job *job);
void block_job_resume_hook(Job *job);

#endif
