/*
 * The job layer's test job; see testjob-drv.h.
 */
#include "qemu/osdep.h"
#include "testjob-drv.h"

static int coroutine_fn test_job_run(Job *job, Error **errp)
{
    TestJob *t = job_opaque(job);

    while (!job_is_cancelled(job)) {
        if (t->limit && t->iterations == t->limit) {
            if (t->ret < 0) {
                error_setg(errp, "test failure");
            }
            return t->ret;
        }
        t->iterations++;
        job_sleep_ns(job, 1000000);
    }
    return -ECANCELED;
}

static void test_job_commit(Job *job)
{
    ((TestJob *)job_opaque(job))->committed = true;
}

static void test_job_abort(Job *job)
{
    ((TestJob *)job_opaque(job))->aborted = true;
}

static void test_job_clean(Job *job)
{
    ((TestJob *)job_opaque(job))->cleaned = true;
}

const JobDriver test_job_driver = {
    .type = JOB_TYPE_BACKUP,
    .run = test_job_run,
    .commit = test_job_commit,
    .abort = test_job_abort,
    .clean = test_job_clean,
};
