/*
 * The job layer (see include/qemu/job.h and docs/devel/jobs.md): the state
 * machine, pause points, cancellation, finalization and dismissal.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/job.h"
#include "block/block_int.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-events.h"

/* Newest first, the order query-jobs reports. */
static QTAILQ_HEAD(, Job) jobs = QTAILQ_HEAD_INITIALIZER(jobs);

/*
 * transitions[from][to]: the status changes QEMU allows.  Indexed by
 * JobStatus (undefined, created, running, paused, ready, standby, waiting,
 * pending, aborting, concluded, null).
 */
static const bool transitions[JOB_STATUS__MAX][JOB_STATUS__MAX] = {
    /*                          U  C  R  P  Y  S  W  D  X  E  N */
    [JOB_STATUS_UNDEFINED] = { 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
    [JOB_STATUS_CREATED]   = { 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1 },
    [JOB_STATUS_RUNNING]   = { 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0 },
    [JOB_STATUS_PAUSED]    = { 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0 },
    [JOB_STATUS_READY]     = { 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0 },
    [JOB_STATUS_STANDBY]   = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 },
    [JOB_STATUS_WAITING]   = { 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0 },
    [JOB_STATUS_PENDING]   = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
    [JOB_STATUS_ABORTING]  = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0 },
    [JOB_STATUS_CONCLUDED] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
    [JOB_STATUS_NULL]      = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 },
};

/* verbs[verb][status]: the states in which each QMP verb is accepted. */
static const bool verbs[JOB_VERB__MAX][JOB_STATUS__MAX] = {
    /*                       U  C  R  P  Y  S  W  D  X  E  N */
    [JOB_VERB_CANCEL]    = { 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0 },
    [JOB_VERB_PAUSE]     = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    [JOB_VERB_RESUME]    = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    [JOB_VERB_SET_SPEED] = { 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0 },
    [JOB_VERB_COMPLETE]  = { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0 },
    [JOB_VERB_FINALIZE]  = { 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 },
    [JOB_VERB_DISMISS]   = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0 },
};

bool job_transition_allowed(JobStatus from, JobStatus to)
{
    return transitions[from][to];
}

bool job_verb_allowed(JobStatus status, JobVerb verb)
{
    return verbs[verb][status];
}

bool job_apply_verb(Job *job, JobVerb verb, Error **errp)
{
    if (job_verb_allowed(job->status, verb)) {
        return true;
    }
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb '%s'",
               job->id, JobStatus_str(job->status), JobVerb_str(verb));
    return false;
}

static void job_set_status(Job *job, JobStatus status)
{
    assert(job_transition_allowed(job->status, status));
    job->status = status;
    qapi_event_send_job_status_change(job->id, status);
}

Job *job_next(Job *job)
{
    return job ? QTAILQ_NEXT(job, link) : QTAILQ_FIRST(&jobs);
}

Job *job_get(const char *id)
{
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
        if (!strcmp(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

static void job_sleep_timer_cb(void *opaque)
{
    job_enter(opaque);
}

Job *job_create_full(const char *id, const JobDriver *driver, void *opaque,
                     int flags, Error **errp)
{
    Job *job;

    if (!id_wellformed(id)) {
        error_setg(errp, "Invalid job ID '%s'", id);
        return NULL;
    }
    if (job_get(id)) {
        error_setg(errp, "Job ID '%s' already in use", id);
        return NULL;
    }
    job = g_new0(Job, 1);
    job->id = g_strdup(id);
    job->driver = driver;
    job->opaque = opaque;
    job->auto_finalize = !(flags & JOB_MANUAL_FINALIZE);
    job->auto_dismiss = !(flags & JOB_MANUAL_DISMISS);
    job->busy = true;
    /* Jobs that report no progress show 0 of 1, then 1 of 1 (QEMU's). */
    job->progress_total = 1;
    job->sleep_timer = aio_timer_new(qemu_get_aio_context(),
                                     job_sleep_timer_cb, job);
    QTAILQ_INSERT_HEAD(&jobs, job, link);
    job_set_status(job, JOB_STATUS_CREATED);
    return job;
}

Job *job_create(const char *id, const JobDriver *driver, void *opaque,
                Error **errp)
{
    return job_create_full(id, driver, opaque, JOB_MANUAL_DISMISS, errp);
}

static void job_free(Job *job)
{
    timer_free(job->sleep_timer);
    g_free(job->error);
    g_free(job->id);
    g_free(job);
}

const char *job_id(const Job *job)
{
    return job->id;
}

void *job_opaque(const Job *job)
{
    return job->opaque;
}

bool job_is_concluded(const Job *job)
{
    return job->status == JOB_STATUS_CONCLUDED;
}

bool job_is_cancelled(const Job *job)
{
    return job->cancelled;
}

bool job_is_paused(const Job *job)
{
    return job->pause_count > 0;
}

/* ---- progress ---- */

void job_progress_update(Job *job, int64_t done)
{
    if (!job->progress_tracked) {
        job->progress_tracked = true;
        job->progress_total = job->progress_current;
    }
    job->progress_current += done;
}

void job_progress_set_remaining(Job *job, int64_t remaining)
{
    job->progress_tracked = true;
    job->progress_total = job->progress_current + remaining;
}

/* ---- nodes ---- */

static char *job_child_get_parent_desc(BdrvChild *c)
{
    Job *job = c->opaque;

    return g_strdup_printf("block job: %s", JobType_str(job->driver->type));
}

static const char *job_child_get_name(BdrvChild *c)
{
    Job *job = c->opaque;

    return job->id;
}

/*
 * A job works on the nodes it was given: an external snapshot taken
 * while it runs must not move its edges to the new overlay.
 */
static const BdrvChildClass child_job = {
    .parent_is_bds = false,
    .stay_at_node = true,
    .get_parent_desc = job_child_get_parent_desc,
    .get_name = job_child_get_name,
};

BdrvChild *job_add_node(Job *job, BlockDriverState *bs,
                        const char *child_name, Error **errp)
{
    BdrvChild *c;

    bdrv_ref(bs);
    /* The edge takes over the reference just taken (even on failure). */
    c = bdrv_root_attach_child(bs, child_name, &child_job, BDRV_CHILD_DATA,
                               job, errp);
    if (!c) {
        return NULL;
    }
    job->nodes = g_slist_prepend(job->nodes, c);
    return c;
}

Job *job_of_child(BdrvChild *c)
{
    return c->klass == &child_job ? c->opaque : NULL;
}

Job *job_using_node(BlockDriverState *bs)
{
    BdrvChild *c;

    QLIST_FOREACH(c, &bs->parents, next_parent) {
        Job *job = job_of_child(c);

        if (job && !job_is_concluded(job)) {
            return job;
        }
    }
    return NULL;
}

/* ---- job transactions ---- */

struct JobTxn {
    QTAILQ_HEAD(, Job) jobs;    /* newest first */
    int refcnt;
    bool aborting;              /* job_txn_abort() is finalizing them */
};

JobTxn *job_txn_new(void)
{
    JobTxn *txn = g_new0(JobTxn, 1);

    QTAILQ_INIT(&txn->jobs);
    txn->refcnt = 1;
    return txn;
}

void job_txn_unref(JobTxn *txn)
{
    if (txn && --txn->refcnt == 0) {
        assert(QTAILQ_EMPTY(&txn->jobs));
        g_free(txn);
    }
}

void job_txn_add_job(JobTxn *txn, Job *job)
{
    assert(!job->txn && job->status == JOB_STATUS_CREATED);
    job->txn = txn;
    txn->refcnt++;
    /* Newest first, as in QEMU: the group finalizes in this order. */
    QTAILQ_INSERT_HEAD(&txn->jobs, job, txn_link);
}

/* Takes @job out of its group (at finalization); drops its reference. */
static void job_txn_del_job(Job *job)
{
    JobTxn *txn = job->txn;

    if (txn) {
        QTAILQ_REMOVE(&txn->jobs, job, txn_link);
        job->txn = NULL;
        job_txn_unref(txn);
    }
}

static void job_release_nodes(Job *job)
{
    GSList *l;

    for (l = job->nodes; l; l = l->next) {
        bdrv_root_unref_child(l->data);
    }
    g_slist_free(job->nodes);
    job->nodes = NULL;
}

void job_early_fail(Job *job)
{
    assert(job->status == JOB_STATUS_CREATED);
    job_txn_del_job(job);
    job_release_nodes(job);
    QTAILQ_REMOVE(&jobs, job, link);
    job_set_status(job, JOB_STATUS_NULL);
    job_free(job);
}

/* ---- the coroutine side ---- */

void job_enter(Job *job)
{
    /* Only a job parked in job_sleep_ns() or a pause is entered here. */
    if (!job->co || job->busy) {
        return;
    }
    timer_del(job->sleep_timer);
    job->busy = true;
    aio_co_wake(job->co);
}

/* Parks the coroutine (not busy) until job_enter(). */
static void coroutine_fn job_yield(Job *job)
{
    job->busy = false;
    qemu_coroutine_yield();
    assert(job->busy);
}

void coroutine_fn job_pause_point(Job *job)
{
    if (job->pause_count == 0 || job->cancelled) {
        return;
    }
    job_set_status(job, JOB_STATUS_PAUSED);
    /* job_resume() enters us once the last pause request is withdrawn. */
    while (job->pause_count > 0 && !job->cancelled) {
        job_yield(job);
    }
    job_set_status(job, JOB_STATUS_RUNNING);
}

void coroutine_fn job_sleep_ns(Job *job, int64_t ns)
{
    if (!job->cancelled && job->pause_count == 0) {
        timer_mod_ns(job->sleep_timer, qemu_clock_get_ns() + ns);
        job_yield(job);
    }
    job_pause_point(job);
}

/* ---- the end of a job ---- */

static void job_dismiss_now(Job *job)
{
    assert(job_is_concluded(job));
    QTAILQ_REMOVE(&jobs, job, link);
    job_set_status(job, JOB_STATUS_NULL);
    if (job->driver->free) {
        job->driver->free(job);
    }
    job_free(job);
}

/* Commit or abort, clean, the finished event, concluded, maybe null. */
static void job_finalize_single(Job *job)
{
    if (job->ret == 0) {
        if (job->driver->commit) {
            job->driver->commit(job);
        }
    } else if (job->driver->abort) {
        job->driver->abort(job);
    }
    if (job->driver->clean) {
        job->driver->clean(job);
    }
    job_release_nodes(job);
    /* A job that never started (a transaction's abort) sends no result. */
    if (job->deferred && job->driver->event_finished) {
        job->driver->event_finished(job);
    }
    job_txn_del_job(job);
    job_set_status(job, JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss) {
        job_dismiss_now(job);
    }
}

/* The job failed or was cancelled: it goes aborting (once). */
static void job_mark_aborting(Job *job)
{
    if (job->ret == 0) {
        job->ret = -ECANCELED;
    }
    if (job->status != JOB_STATUS_ABORTING) {
        job_set_status(job, JOB_STATUS_ABORTING);
    }
}

static void job_do_abort(Job *job)
{
    job_mark_aborting(job);
    job_finalize_single(job);
}

/* True while a job of @txn has not been through job_exit() yet. */
static bool job_txn_busy(JobTxn *txn)
{
    Job *job;

    QTAILQ_FOREACH(job, &txn->jobs, txn_link) {
        if (job->status != JOB_STATUS_CREATED && !job->exited) {
            return true;
        }
    }
    return false;
}

/*
 * @job failed or was cancelled: cancel every other job of its group, wait
 * until all have stopped (their job_exit() only marks them aborting),
 * then finalize each.  Runs in the main loop outside coroutine context.
 */
static void job_txn_abort(Job *job)
{
    JobTxn *txn = job->txn;
    Job *other;

    txn->aborting = true;
    /* The last member's finalization must not free @txn under us. */
    txn->refcnt++;
    QTAILQ_FOREACH(other, &txn->jobs, txn_link) {
        if (other != job) {
            other->cancelled = true;
            job_enter(other);
        }
    }
    AIO_WAIT_WHILE(job_txn_busy(txn));
    while ((other = QTAILQ_FIRST(&txn->jobs))) {
        job_do_abort(other);
    }
    job_txn_unref(txn);
}

/* Finalizes every member of @txn (each one leaves the group). */
static void job_txn_finalize_all(JobTxn *txn)
{
    Job *job;

    /* The last member's finalization must not free @txn under us. */
    txn->refcnt++;
    while ((job = QTAILQ_FIRST(&txn->jobs))) {
        job_finalize_single(job);
    }
    job_txn_unref(txn);
}

/*
 * Only a job that waits for job-finalize announces it (BLOCK_JOB_PENDING),
 * as QEMU: each member of a group decides by its own auto-finalize.
 */
static void job_move_to_pending(Job *job)
{
    job_set_status(job, JOB_STATUS_PENDING);
    if (!job->auto_finalize && job->driver->event_pending) {
        job->driver->event_pending(job);
    }
}

/*
 * @job's work succeeded and it waits.  Once every member waits, they all
 * go pending, then finalize together unless one of them wants job-finalize.
 */
static void job_txn_try_pending(JobTxn *txn)
{
    bool auto_finalize = true;
    Job *job;

    QTAILQ_FOREACH(job, &txn->jobs, txn_link) {
        if (job->status != JOB_STATUS_WAITING) {
            return;
        }
        auto_finalize &= job->auto_finalize;
    }
    QTAILQ_FOREACH(job, &txn->jobs, txn_link) {
        job_move_to_pending(job);
    }
    if (auto_finalize) {
        job_txn_finalize_all(txn);
    }
}

/*
 * The work has ended (bottom half after the coroutine terminated): the
 * success path goes waiting -> pending, then finalizes unless the user
 * wants to do that; failure and cancel go to aborting.  Members of a job
 * transaction go through the group instead.
 */
static void job_exit(void *opaque)
{
    Job *job = opaque;

    job->exited = true;
    if (job->ret < 0 || job->cancelled) {
        if (!job->txn) {
            job_do_abort(job);
            return;
        }
        job_mark_aborting(job);
        /* If the group aborts already, job_txn_abort() waits for this. */
        if (!job->txn->aborting) {
            job_txn_abort(job);
        }
        return;
    }
    job_set_status(job, JOB_STATUS_WAITING);
    if (job->txn) {
        job_txn_try_pending(job->txn);
        return;
    }
    job_move_to_pending(job);
    if (job->auto_finalize) {
        job_finalize_single(job);
    }
}

static void coroutine_fn job_co_entry(void *opaque)
{
    Job *job = opaque;
    Error *err = NULL;

    job_pause_point(job);
    job->ret = job->cancelled ? -ECANCELED : job->driver->run(job, &err);
    if (job->ret < 0 && !job->cancelled) {
        if (!err) {
            /* QEMU's message for a job that failed without one. */
            error_setg(&err, "%s", strerror(-job->ret));
        }
        job->error = g_strdup(error_get_pretty(err));
    } else if (job->cancelled) {
        job->ret = -ECANCELED;
    }
    error_free(err);
    if (!job->progress_tracked) {
        job->progress_current = job->progress_total;
    }
    job->co = NULL;
    job->busy = false;
    job->deferred = true;
    aio_bh_schedule_oneshot(qemu_get_aio_context(), job_exit, job);
}

void job_start(Job *job)
{
    assert(job->status == JOB_STATUS_CREATED);
    job->co = qemu_coroutine_create(job_co_entry, job);
    job_set_status(job, JOB_STATUS_RUNNING);
    qemu_coroutine_enter(job->co);
}

/* ---- control ---- */

void job_pause(Job *job)
{
    job->pause_count++;
    /* A sleeping job wakes up to reach its pause point now. */
    job_enter(job);
}

void job_resume(Job *job)
{
    assert(job->pause_count > 0);
    job->pause_count--;
    if (job->pause_count) {
        return;
    }
    if (job->driver->resume) {
        job->driver->resume(job);
    }
    job_enter(job);
}

void job_user_pause(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_PAUSE, errp)) {
        return;
    }
    if (job->user_paused) {
        error_setg(errp, "Job is already paused");
        return;
    }
    job->user_paused = true;
    job_pause(job);
}

void job_user_resume(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_RESUME, errp)) {
        return;
    }
    if (!job->user_paused || job->pause_count <= 0) {
        error_setg(errp, "Can't resume a job that was not paused");
        return;
    }
    job->user_paused = false;
    job_resume(job);
}

void job_cancel(Job *job, bool force)
{
    if (job->status == JOB_STATUS_CONCLUDED) {
        return;
    }
    job->cancelled = true;
    if (job->status == JOB_STATUS_CREATED) {
        /* Never started: nothing to stop, straight to aborting. */
        job_do_abort(job);
        return;
    }
    if (job->deferred) {
        /*
         * The work is over; a pending job aborts instead of finalizing,
         * and so does the group of a job that waits for its group.
         */
        if (job->txn && !job->txn->aborting &&
            (job->status == JOB_STATUS_WAITING ||
             job->status == JOB_STATUS_PENDING)) {
            job->ret = -ECANCELED;
            job_txn_abort(job);
        } else if (job->status == JOB_STATUS_PENDING) {
            job->ret = -ECANCELED;
            job_do_abort(job);
        }
        return;
    }
    job_enter(job);
}

void job_user_cancel(Job *job, bool force, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_CANCEL, errp)) {
        return;
    }
    job_cancel(job, force);
}

void job_complete(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_COMPLETE, errp)) {
        return;
    }
    if (job->cancelled || !job->driver->complete) {
        error_setg(errp, "The active block job '%s' cannot be completed",
                   job->id);
        return;
    }
    job->driver->complete(job, errp);
}

void job_finalize(Job *job, Error **errp)
{
    JobTxn *txn = job->txn;

    if (!job_apply_verb(job, JOB_VERB_FINALIZE, errp)) {
        return;
    }
    if (!txn) {
        job_finalize_single(job);
        return;
    }
    /* Pending members only exist once the whole group is pending. */
    job_txn_finalize_all(txn);
}

void job_dismiss(Job *job, Error **errp)
{
    if (!job_apply_verb(job, JOB_VERB_DISMISS, errp)) {
        return;
    }
    job_dismiss_now(job);
}

/* ---- global ---- */

/* Its coroutine runs, or its bottom half has not finished it yet. */
static bool job_is_working(Job *job)
{
    return job->co || (job->deferred && job->status == JOB_STATUS_RUNNING);
}

static bool job_any_working(void)
{
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
        if (job_is_working(job)) {
            return true;
        }
    }
    return false;
}

void job_wait_all(void)
{
    AIO_WAIT_WHILE(job_any_working());
}

static bool job_any_cancelled_working(void)
{
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
        if (job->cancelled && job_is_working(job)) {
            return true;
        }
    }
    return false;
}

/* The newest job that is neither concluded nor cancelled yet, or NULL. */
static Job *job_next_to_cancel(void)
{
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
        if (!job_is_concluded(job) && !job->cancelled) {
            return job;
        }
    }
    return NULL;
}

void job_cancel_sync_all(void)
{
    Job *job;

    /*
     * One job at a time, newest first, as QEMU: each job's events
     * (aborting, the cancelled event, concluded, null) come together.
     * The list is searched afresh each time, since a finished job may be
     * freed, and cancelling one member of a group cancels them all.
     * Pending jobs (waiting for job-finalize) abort at once.
     */
    while ((job = job_next_to_cancel())) {
        job_cancel(job, true);
        AIO_WAIT_WHILE(job_any_cancelled_working());
    }
    job_wait_all();
}

int job_dismiss_all(void)
{
    Job *job, *next;
    int n = 0;

    QTAILQ_FOREACH_SAFE(job, &jobs, link, next) {
        if (job_is_concluded(job)) {
            job_dismiss_now(job);
            n++;
        }
    }
    return n;
}
