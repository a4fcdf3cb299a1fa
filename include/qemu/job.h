/*
 * The job layer: long-running operations with QEMU's job life cycle.
 *
 * States and who moves the job between them (see docs/devel/jobs.md):
 *
 *   created -> running         job_start()
 *   running <-> paused         the job's coroutine at a pause point, while
 *                              job_pause() requests are outstanding
 *   running -> waiting         the work ended successfully
 *   waiting -> pending         at once, or in a job transaction once
 *                              every job of the group is waiting
 *   pending -> concluded       finalization: auto-finalize, or job-finalize
 *   running/paused/waiting/pending -> aborting -> concluded
 *                              the work failed or the job was cancelled
 *   concluded -> null          dismissal: auto-dismiss, or job-dismiss
 *
 * Every status change is announced with JOB_STATUS_CHANGE.  The transition
 * table and the verb table (which QMP verbs each state accepts) are QEMU's;
 * job_transition_allowed() / job_verb_allowed() expose them for tests.
 *
 * Threading: everything runs in the main loop thread.  The work runs in
 * the job's coroutine; the steps after the work (waiting ... concluded)
 * run from a bottom half in the main loop, never inside that coroutine,
 * so they can also be triggered by a monitor command (job-finalize).
 *
 * Lifetime: the job list holds the job from job_create() until it is
 * dismissed (job_dismiss()); nodes the job holds are released when it
 * concludes.
 */
#ifndef QEMU_JOB_H
#define QEMU_JOB_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/queue.h"
#include "qemu/aio.h"
#include "block/block.h"
#include "qapi/qapi-types.h"

typedef struct Job Job;
typedef struct JobTxn JobTxn;

typedef struct JobDriver {
    JobType type;
    /* The job's opaque is a BlockJob (include/block/blockjob.h). */
    bool is_block_job;
    /*
     * The work, in coroutine context; returns 0 or a negative errno with
     * @errp set.  It may yield (I/O, job_sleep_ns(), job_pause_point())
     * and the monitor runs meanwhile.  It should return soon after
     * job_is_cancelled() becomes true.
     */
    int coroutine_fn (*run)(Job *job, Error **errp);
    /* Optional: job-complete in state ready. */
    void (*complete)(Job *job, Error **errp);
    /* Optional: the last pause request was withdrawn (job_resume). */
    void (*resume)(Job *job);
    /*
     * Optional, in finalization order: commit after success, abort after
     * failure or cancel, then clean in both cases (release what the job
     * holds).  All run in the main loop outside coroutine context.
     */
    void (*commit)(Job *job);
    void (*abort)(Job *job);
    void (*clean)(Job *job);
    /*
     * Optional event hooks of the block-job layer: entering pending, and
     * the end of finalization (before concluded).
     */
    void (*event_pending)(Job *job);
    void (*event_finished)(Job *job);
    /* Optional: frees the opaque when the job is dismissed. */
    void (*free)(Job *job);
} JobDriver;

/* Flags for job_create_full(). */
enum {
    JOB_MANUAL_FINALIZE = 1,    /* auto-finalize=false */
    JOB_MANUAL_DISMISS = 2,     /* auto-dismiss=false */
};

struct Job {
    char *id;
    const JobDriver *driver;
    void *opaque;
    JobStatus status;
    bool auto_finalize;
    bool auto_dismiss;

    Coroutine *co;              /* NULL before start and after the work */
    bool busy;                  /* false while sleeping or paused */
    bool deferred;              /* the work ended; finalization scheduled */
    int pause_count;            /* outstanding job_pause() requests */
    bool user_paused;           /* one of them is the user's */
    bool cancelled;
    QEMUTimer *sleep_timer;

    /* Progress; progress_tracked once the driver reports any. */
    int64_t progress_current;
    int64_t progress_total;
    bool progress_tracked;

    int ret;                    /* result of the work */
    char *error;                /* failure message once it failed */
    GSList *nodes;              /* BdrvChild edges the job holds */
    QTAILQ_ENTRY(Job) link;

    bool exited;                /* job_exit() ran after the work ended */
    JobTxn *txn;                /* the group, until the job finalizes */
    QTAILQ_ENTRY(Job) txn_link;
};

/* The state machine, as tables (exported for unit tests). */
bool job_transition_allowed(JobStatus from, JobStatus to);
bool job_verb_allowed(JobStatus status, JobVerb verb);
/* Sets @errp with QEMU's message if @job's state refuses @verb. */
bool job_apply_verb(Job *job, JobVerb verb, Error **errp);

/*
 * Creates a job in state created (the event is sent); @opaque belongs to
 * the job's driver.  Fails for a malformed or duplicate @id.  job_create()
 * is auto-finalize=true, auto-dismiss=false (blockdev-create's setting).
 */
Job *job_create_full(const char *id, const JobDriver *driver, void *opaque,
                     int flags, Error **errp);
Job *job_create(const char *id, const JobDriver *driver, void *opaque,
                Error **errp);
/*
 * Undoes job_create*() of a job that never started (its creator failed to
 * set it up): releases the nodes it holds, sends null and frees the job
 * without calling any driver hook; the creator frees the opaque.
 */
void job_early_fail(Job *job);
/* Starts the job: it runs until its first yield before this returns. */
void job_start(Job *job);

const char *job_id(const Job *job);
void *job_opaque(const Job *job);
/* NULL if there is no job @id. */
Job *job_get(const char *id);
/* Iterates over all jobs, newest first (@job NULL starts). */
Job *job_next(Job *job);
bool job_is_concluded(const Job *job);
bool job_is_cancelled(const Job *job);
/* True if the job is paused or a pause is requested. */
bool job_is_paused(const Job *job);

/* ---- inside the job's coroutine ---- */

/* If a pause is requested: goes paused, yields until resumed. */
void coroutine_fn job_pause_point(Job *job);
/*
 * Sleeps @ns (not busy), woken early by cancel and pause requests; then
 * passes a pause point.
 */
void coroutine_fn job_sleep_ns(Job *job, int64_t ns);
/* Wakes the job if it sleeps (job_sleep_ns). */
void job_enter(Job *job);

void job_progress_update(Job *job, int64_t done);
void job_progress_set_remaining(Job *job, int64_t remaining);

/* ---- control (the QMP verbs) ---- */

void job_pause(Job *job);
void job_resume(Job *job);
void job_user_pause(Job *job, Error **errp);
void job_user_resume(Job *job, Error **errp);
/*
 * Cancels the job (any state before concluded).  @force matters only to
 * the block-job verb (a user-paused job); jobs here have no ready state.
 */
void job_cancel(Job *job, bool force);
void job_user_cancel(Job *job, bool force, Error **errp);
void job_complete(Job *job, Error **errp);
void job_finalize(Job *job, Error **errp);
void job_dismiss(Job *job, Error **errp);

/*
 * Makes the job a holder of @bs through a root edge named @child_name
 * (blockdev-del then refuses to delete the node).  Takes a new reference;
 * the job drops it when it concludes.
 */
BdrvChild *job_add_node(Job *job, BlockDriverState *bs,
                        const char *child_name, Error **errp);
/* The job that holds the edge @c, or NULL if @c is not a job's edge. */
Job *job_of_child(BdrvChild *c);
/* The job that holds @bs through an edge, or NULL. */
Job *job_using_node(BlockDriverState *bs);

/*
 * Job transactions (transaction with completion-mode=grouped, QEMU's
 * job_txn): the jobs of a group go pending only once all of them have
 * finished their work successfully, and finalize together (auto-finalize,
 * or one job-finalize for the group).  When one fails or is cancelled,
 * every other is cancelled, the group waits for all of them to stop and
 * then each aborts (newest first, as in QEMU).
 *
 * The creator holds a reference from job_txn_new(); each member holds
 * one until it finalizes (or job_early_fail()).  Members must be added
 * in state created.
 */
JobTxn *job_txn_new(void);
void job_txn_add_job(JobTxn *txn, Job *job);
void job_txn_unref(JobTxn *txn);

/* Waits until no job is still working; call outside coroutine context. */
void job_wait_all(void);
/*
 * Cancels every job that has not concluded (at exit), one at a time,
 * newest first, waiting for each before the next.
 */
void job_cancel_sync_all(void);
/* Dismisses every concluded job (at exit); returns how many. */
int job_dismiss_all(void);

#endif
