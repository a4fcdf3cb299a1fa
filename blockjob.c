/*
 * Block jobs (see include/block/blockjob.h): creation with QEMU's checks,
 * speed, error policy, events and the block-job QMP commands.
 */
#include "qemu/osdep.h"
#include "block/blockjob.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"

/* Rate-limit slice: 100 ms, as QEMU's block jobs. */
#define BLOCK_JOB_SLICE_TIME 100000000ULL

BlockJob *block_job_from_job(Job *job)
{
    return job->driver->is_block_job ? job->opaque : NULL;
}

BlockJob *block_job_get(const char *id)
{
    Job *job = job_get(id);

    return job ? block_job_from_job(job) : NULL;
}

/* The name of the drive whose root is @bs, or NULL. */
static const char *block_job_device_name(BlockDriverState *bs)
{
    BlockBackend *blk;

    for (blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (blk_bs(blk) == bs) {
            return blk_name(blk);
        }
    }
    return NULL;
}

bool block_job_edge_is_shared(BdrvChild *c)
{
    Job *job = job_of_child(c);
    BlockJob *bjob = job ? block_job_from_job(job) : NULL;

    return bjob && bjob->main_node == c;
}

Job *block_job_exclusive_user(BlockDriverState *bs)
{
    BdrvChild *c;

    QLIST_FOREACH(c, &bs->parents, next_parent) {
        Job *job = job_of_child(c);

        if (job && !job_is_concluded(job) && !block_job_edge_is_shared(c)) {
            return job;
        }
    }
    return NULL;
}

BlockJob *block_job_create(const char *job_id, const JobDriver *driver,
                           BlockDriverState *bs, int64_t speed, int flags,
                           void *opaque, Error **errp)
{
    BlockJob *bjob;
    Job *job;
    Job *user;

    assert(driver->is_block_job);
    if (!job_id) {
        /* A node that is no drive's root has "" (an invalid ID), as QEMU. */
        job_id = block_job_device_name(bs);
        job_id = job_id ? job_id : "";
    }
    user = block_job_exclusive_user(bs);
    if (user) {
        error_setg(errp, "Node '%s' is busy: block device is in use by "
                   "block job: %s", bdrv_get_node_name(bs),
                   JobType_str(user->driver->type));
        return NULL;
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return NULL;
    }
    bjob = g_new0(BlockJob, 1);
    bjob->opaque = opaque;
    bjob->iostatus = BLOCK_DEVICE_IO_STATUS_OK;
    ratelimit_init(&bjob->limit);
    job = job_create_full(job_id, driver, bjob, flags, errp);
    if (!job) {
        g_free(bjob);
        return NULL;
    }
    bjob->job = job;
    block_job_set_speed(bjob, speed, &error_abort);
    bjob->main_node = job_add_node(job, bs, "main node", errp);
    if (!bjob->main_node) {
        block_job_early_fail(bjob);
        return NULL;
    }
    return bjob;
}

void block_job_early_fail(BlockJob *bjob)
{
    job_early_fail(bjob->job);
    g_free(bjob);
}

void block_job_set_speed(BlockJob *bjob, int64_t speed, Error **errp)
{
    if (!job_apply_verb(bjob->job, JOB_VERB_SET_SPEED, errp)) {
        return;
    }
    if (speed < 0) {
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return;
    }
    bjob->speed = speed;
    ratelimit_set_speed(&bjob->limit, speed, BLOCK_JOB_SLICE_TIME);
    /* A job sleeping under the old limit recomputes its delay. */
    job_enter(bjob->job);
}

void coroutine_fn block_job_ratelimit_sleep(BlockJob *bjob, uint64_t n)
{
    int64_t delay;

    ratelimit_account(&bjob->limit, n);
    while (!job_is_cancelled(bjob->job) &&
           (delay = ratelimit_calculate_delay(&bjob->limit, 0)) > 0) {
        job_sleep_ns(bjob->job, delay);
    }
    job_pause_point(bjob->job);
}

BlockErrorAction block_job_error_action(BlockJob *bjob, BlockdevOnError on_err,
                                        bool is_read, int error)
{
    BlockErrorAction action;

    switch (on_err) {
    case BLOCKDEV_ON_ERROR_ENOSPC:
        action = error == -ENOSPC ? BLOCK_ERROR_ACTION_STOP
                                  : BLOCK_ERROR_ACTION_REPORT;
        break;
    case BLOCKDEV_ON_ERROR_STOP:
        action = BLOCK_ERROR_ACTION_STOP;
        break;
    case BLOCKDEV_ON_ERROR_IGNORE:
        action = BLOCK_ERROR_ACTION_IGNORE;
        break;
    default:
        action = BLOCK_ERROR_ACTION_REPORT;
        break;
    }
    qapi_event_send_block_job_error(bjob->job->id,
                                    is_read ? IO_OPERATION_TYPE_READ
                                            : IO_OPERATION_TYPE_WRITE,
                                    action);
    if (action == BLOCK_ERROR_ACTION_STOP) {
        /* A user pause: block-job-resume clears io-status and retries. */
        if (!bjob->job->user_paused) {
            bjob->job->user_paused = true;
            job_pause(bjob->job);
        }
        bjob->iostatus = error == -ENOSPC ? BLOCK_DEVICE_IO_STATUS_NOSPACE
                                          : BLOCK_DEVICE_IO_STATUS_FAILED;
    }
    return action;
}

void block_job_resume_hook(Job *job)
{
    BlockJob *bjob = block_job_from_job(job);

    bjob->iostatus = BLOCK_DEVICE_IO_STATUS_OK;
}

void block_job_event_pending(Job *job)
{
    qapi_event_send_block_job_pending(job->driver->type, job->id);
}

void block_job_event_finished(Job *job)
{
    BlockJob *bjob = block_job_from_job(job);

    if (job->cancelled) {
        qapi_event_send_block_job_cancelled(job->driver->type, job->id,
                                            job->progress_total,
                                            job->progress_current,
                                            bjob->speed);
    } else {
        qapi_event_send_block_job_completed(job->driver->type, job->id,
                                            job->progress_total,
                                            job->progress_current,
                                            bjob->speed, job->error);
    }
}

void block_job_free(Job *job)
{
    g_free(block_job_from_job(job));
}

/* ---- QMP ---- */

static BlockJob *find_block_job(const char *id, Error **errp)
{
    BlockJob *bjob = block_job_get(id);

    if (!bjob) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_ACTIVE,
                  "Block job '%s' not found", id);
    }
    return bjob;
}

void qmp_block_job_set_speed(const char *device, int64_t speed, Error **errp)
{
    BlockJob *bjob = find_block_job(device, errp);

    if (bjob) {
        block_job_set_speed(bjob, speed, errp);
    }
}

void qmp_block_job_cancel(const char *device, bool has_force, bool force,
                          Error **errp)
{
    BlockJob *bjob = find_block_job(device, errp);

    if (!bjob) {
        return;
    }
    if (bjob->job->user_paused && !force) {
        error_setg(errp, "The block job for device '%s' is currently paused",
                   device);
        return;
    }
    job_user_cancel(bjob->job, force, errp);
}

void qmp_block_job_pause(const char *device, Error **errp)
{
    BlockJob *bjob = find_block_job(device, errp);

    if (bjob) {
        job_user_pause(bjob->job, errp);
    }
}

void qmp_block_job_resume(const char *device, Error **errp)
{
    BlockJob *bjob = find_block_job(device, errp);

    if (bjob) {
        job_user_resume(bjob->job, errp);
    }
}

void qmp_block_job_complete(const char *device, Error **errp)
{
    BlockJob *bjob = find_block_job(device, errp);

    if (bjob) {
        job_complete(bjob->job, errp);
    }
}

void qmp_block_job_finalize(const char *id, Error **errp)
{
    BlockJob *bjob = find_block_job(id, errp);

    if (bjob) {
        job_finalize(bjob->job, errp);
    }
}

void qmp_block_job_dismiss(const char *id, Error **errp)
{
    BlockJob *bjob = find_block_job(id, errp);

    if (bjob) {
        job_dismiss(bjob->job, errp);
    }
}

BlockJobInfoList *qmp_query_block_jobs(Error **errp)
{
    BlockJobInfoList *head = NULL, **tail = &head;
    Job *job;

    for (job = job_next(NULL); job; job = job_next(job)) {
        BlockJob *bjob = block_job_from_job(job);
        BlockJobInfo *info;

        if (!bjob) {
            continue;
        }
        info = g_new0(BlockJobInfo, 1);
        info->type = g_strdup(JobType_str(job->driver->type));
        info->device = g_strdup(job->id);
        info->len = job->progress_total;
        info->offset = job->progress_current;
        info->busy = job->busy;
        info->paused = job_is_paused(job);
        info->speed = bjob->speed;
        info->io_status = bjob->iostatus;
        info->ready = job->status == JOB_STATUS_READY;
        info->status = job->status;
        info->auto_finalize = job->auto_finalize;
        info->auto_dismiss = job->auto_dismiss;
        info->error = g_strdup(job->error);
        QAPI_LIST_APPEND(tail, info);
    }
    return head;
}
