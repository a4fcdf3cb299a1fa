/*
 * Minimal job layer (see include/qemu/job.h): the life cycle, events and
 * QMP view of jobs that run once to completion.  The full job layer will
 * replace this file.
 */
#include "qemu/osdep.h"
#include "qemu/job.h"
#include "block/block_int.h"
#include "qemu/queue.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "sysemu/blockdev.h"

struct Job {
    char *id;
    const JobDriver *driver;
    void *opaque;
    JobStatus status;
    /* Progress as QEMU's create jobs report it: 0 of 1, then 1 of 1. */
    int64_t progress_current;
    int64_t progress_total;
    char *error;                /* failure message once concluded */
    Coroutine *co;
    GSList *nodes;              /* BdrvChild edges the job holds */
    QTAILQ_ENTRY(Job) link;
};

/* Newest first, the order query-jobs reports. */
static QTAILQ_HEAD(, Job) jobs = QTAILQ_HEAD_INITIALIZER(jobs);

static void job_set_status(Job *job, JobStatus status)
{
    job->status = status;
    qapi_event_send_job_status_change(job->id, status);
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

Job *job_create(const char *id, const JobDriver *driver, void *opaque,
                Error **errp)
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
    job->progress_total = 1;
    QTAILQ_INSERT_HEAD(&jobs, job, link);
    job_set_status(job, JOB_STATUS_CREATED);
    return job;
}

static char *job_child_get_parent_desc(BdrvChild *c)
{
    Job *job = c->opaque;

    return g_strdup_printf("block job '%s'", job->id);
}

static const char *job_child_get_name(BdrvChild *c)
{
    Job *job = c->opaque;

    return job->id;
}

static const BdrvChildClass child_job = {
    .parent_is_bds = false,
    .get_parent_desc = job_child_get_parent_desc,
    .get_name = job_child_get_name,
};

BdrvChild *job_add_node(Job *job, BlockDriverState *bs,
                        const char *child_name, Error **errp)
{
    BdrvChild *c;

    bdrv_ref(bs);
    /* The edge takes over the reference just taken. */
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

static void job_release_nodes(Job *job)
{
    GSList *l;

    for (l = job->nodes; l; l = l->next) {
        bdrv_root_unref_child(l->data);
    }
    g_slist_free(job->nodes);
    job->nodes = NULL;
}

/*
 * The job's coroutine.  The transitions after the work happen here, at the
 * end of the coroutine: nothing can dismiss the job before it concludes,
 * and nothing touches job->co once it has.
 */
static void coroutine_fn job_co_entry(void *opaque)
{
    Job *job = opaque;
    Error *err = NULL;
    int ret;

    ret = job->driver->run(job, &err);
    job->progress_current = job->progress_total;
    if (ret < 0) {
        if (!err) {
            error_setg_errno(&err, -ret, "Job failed");
        }
        job->error = g_strdup(error_get_pretty(err));
        error_free(err);
        job_set_status(job, JOB_STATUS_ABORTING);
    } else {
        job_set_status(job, JOB_STATUS_WAITING);
        job_set_status(job, JOB_STATUS_PENDING);
    }
    if (job->driver->clean) {
        job->driver->clean(job);
    }
    job_release_nodes(job);
    job->co = NULL;
    job_set_status(job, JOB_STATUS_CONCLUDED);
}

void job_start(Job *job)
{
    assert(job->status == JOB_STATUS_CREATED);
    job->co = qemu_coroutine_create(job_co_entry, job);
    job_set_status(job, JOB_STATUS_RUNNING);
    qemu_coroutine_enter(job->co);
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

static bool job_any_working(void)
{
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
        if (!job_is_concluded(job)) {
            return true;
        }
    }
    return false;
}

void job_wait_all(void)
{
    AIO_WAIT_WHILE(job_any_working());
}

/* Removes a concluded job: the null event, then it is freed. */
static void job_dismiss(Job *job)
{
    assert(job_is_concluded(job));
    QTAILQ_REMOVE(&jobs, job, link);
    job_set_status(job, JOB_STATUS_NULL);
    g_free(job->error);
    g_free(job->id);
    g_free(job);
}

int job_dismiss_all(void)
{
    Job *job, *next;
    int n = 0;

    QTAILQ_FOREACH_SAFE(job, &jobs, link, next) {
        if (job_is_concluded(job)) {
            job_dismiss(job);
            n++;
        }
    }
    return n;
}

void qmp_job_dismiss(const char *id, Error **errp)
{
    Job *job = job_get(id);

    if (!job) {
        error_setg(errp, "Job not found");
        return;
    }
    if (!job_is_concluded(job)) {
        error_setg(errp, "Job '%s' in state '%s' cannot accept command verb "
                   "'dismiss'", id, JobStatus_str(job->status));
        return;
    }
    job_dismiss(job);
}

JobInfoList *qmp_query_jobs(Error **errp)
{
    JobInfoList *head = NULL, **tail = &head;
    Job *job;

    QTAILQ_FOREACH(job, &jobs, link) {
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
