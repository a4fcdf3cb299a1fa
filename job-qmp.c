/*
 * QMP commands of the job layer: job-pause, job-resume, job-cancel,
 * job-complete, job-finalize, job-dismiss and query-jobs.
 */
#include "qemu/osdep.h"
#include "qemu/job.h"
#include "qapi/qapi-commands.h"

static Job *find_job(const char *id, Error **errp)
{
    Job *job = job_get(id);

    if (!job) {
        error_setg(errp, "Job not found");
    }
    return job;
}

void qmp_job_pause(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_pause(job, errp);
    }
}

void qmp_job_resume(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_resume(job, errp);
    }
}

void qmp_job_cancel(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_cancel(job, true, errp);
    }
}

void qmp_job_complete(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_complete(job, errp);
    }
}

void qmp_job_finalize(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_finalize(job, errp);
    }
}

void qmp_job_dismiss(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_dismiss(job, errp);
    }
}

JobInfoList *qmp_query_jobs(Error **errp)
{
    JobInfoList *head = NULL, **tail = &head;
    Job *job;

    for (job = job_next(NULL); job; job = job_next(job)) {
        JobInfo *info = g_new0(JobInfo, 1);

        info->id = g_strdup(job->id);
        info->type = job->driver->type;
        info->status = job->status;
        info->current_progress = job->progress_current;
        info->total_progress = job->progress_total;
        info->error = g_strdup(job->error);
        QAPI_LIST_APPEND(tail, info);
    }
    return head;
}
