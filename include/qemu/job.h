/*
 * Minimal job layer: long-running operations with QEMU's job life cycle,
 * observable through JOB_STATUS_CHANGE events, query-jobs and job-dismiss.
 *
 * This is the small version blockdev-create needs.  A job runs once from
 * start to end without pause, cancel or transactions:
 *
 *   created -> running -> waiting -> pending -> concluded   (success)
 *   created -> running -> aborting -> concluded             (failure)
 *   concluded -> null                                       (job-dismiss)
 *
 * Jobs are never dismissed automatically (QEMU's auto-dismiss=false, the
 * setting of blockdev-create).  The full job layer (pause, cancel,
 * auto-finalize, transactions, block jobs) will replace this file and
 * keep its interface.
 *
 * Everything runs in the main loop thread.
 */
#ifndef QEMU_JOB_H
#define QEMU_JOB_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "block/block.h"
#include "qapi/qapi-types.h"

typedef struct Job Job;

typedef struct JobDriver {
    JobType type;
    /*
     * The work, in coroutine context; returns 0 or a negative errno with
     * @errp set.  It may yield (I/O) and the monitor runs meanwhile.
     */
    int coroutine_fn (*run)(Job *job, Error **errp);
    /*
     * Releases what the job holds (node references...); called once the
     * work has ended, before the job concludes, on success and failure.
     */
    void (*clean)(Job *job);
} JobDriver;

/*
 * Creates a job in state created (the event is sent); @opaque belongs to
 * the job's driver.  Fails for a malformed or duplicate @id.
 */
Job *job_create(const char *id, const JobDriver *driver, void *opaque,
                Error **errp);
/* Starts the job: it runs until its first yield before this returns. */
void job_start(Job *job);

const char *job_id(const Job *job);
void *job_opaque(const Job *job);
/* NULL if there is no job @id. */
Job *job_get(const char *id);
/* True once the job has concluded (its work and clean-up are over). */
bool job_is_concluded(const Job *job);

/*
 * Makes the job a holder of @bs through a root edge named @child_name
 * (blockdev-del then refuses to delete the node).  Takes a new reference;
 * the job drops it when it concludes.
 */
BdrvChild *job_add_node(Job *job, BlockDriverState *bs,
                        const char *child_name, Error **errp);
/* The job that holds the edge @c, or NULL if @c is not a job's edge. */
Job *job_of_child(BdrvChild *c);

/* Waits until no job is still working; call outside coroutine context. */
void job_wait_all(void);
/* Dismisses every concluded job (at exit); returns how many. */
int job_dismiss_all(void);

#endif
