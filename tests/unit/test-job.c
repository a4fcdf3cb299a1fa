/*
 * Unit tests of the job layer (job.c): the transition and verb tables,
 * and the life cycle of a test job driven through pause, resume, cancel,
 * manual finalize and dismiss, checked through the JOB_STATUS_CHANGE
 * events it sends.
 */
#include "qemu/osdep.h"
#include "qemu/job.h"
#include "testjob-drv.h"
#include "qapi/qapi-events.h"

/* The statuses announced since the last reset, as "a,b,c". */
static GString *seen;

/* Replaces the generated weak no-op: records JOB_STATUS_CHANGE. */
void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    JsonObject *o;

    if (event != QAPI_EVENT_JOB_STATUS_CHANGE) {
        return;
    }
    o = json_node_get_object(data);
    if (seen->len) {
        g_string_append_c(seen, ',');
    }
    g_string_append(seen, json_object_get_string_member(o, "status"));
}

static void seen_reset(void)
{
    g_string_truncate(seen, 0);
}

static void poll_for(int ms)
{
    int64_t end = g_get_monotonic_time() + ms * 1000;

    while (g_get_monotonic_time() < end) {
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(100);
    }
}

/* ---- tables ---- */

static void test_transitions(void)
{
    /* The happy path and the abort path. */
    g_assert_true(job_transition_allowed(JOB_STATUS_UNDEFINED,
                                         JOB_STATUS_CREATED));
    g_assert_true(job_transition_allowed(JOB_STATUS_CREATED,
                                         JOB_STATUS_RUNNING));
    g_assert_true(job_transition_allowed(JOB_STATUS_RUNNING,
                                         JOB_STATUS_WAITING));
    g_assert_true(job_transition_allowed(JOB_STATUS_WAITING,
                                         JOB_STATUS_PENDING));
    g_assert_true(job_transition_allowed(JOB_STATUS_PENDING,
                                         JOB_STATUS_CONCLUDED));
    g_assert_true(job_transition_allowed(JOB_STATUS_CONCLUDED,
                                         JOB_STATUS_NULL));
    g_assert_true(job_transition_allowed(JOB_STATUS_RUNNING,
                                         JOB_STATUS_ABORTING));
    g_assert_true(job_transition_allowed(JOB_STATUS_PENDING,
                                         JOB_STATUS_ABORTING));
    g_assert_true(job_transition_allowed(JOB_STATUS_ABORTING,
                                         JOB_STATUS_CONCLUDED));
    g_assert_true(job_transition_allowed(JOB_STATUS_CREATED,
                                         JOB_STATUS_NULL));
    /* Pause only from running, and only back to running. */
    g_assert_true(job_transition_allowed(JOB_STATUS_RUNNING,
                                         JOB_STATUS_PAUSED));
    g_assert_true(job_transition_allowed(JOB_STATUS_PAUSED,
                                         JOB_STATUS_RUNNING));
    g_assert_false(job_transition_allowed(JOB_STATUS_PAUSED,
                                          JOB_STATUS_ABORTING));
    g_assert_false(job_transition_allowed(JOB_STATUS_PENDING,
                                          JOB_STATUS_PAUSED));
    /* No skipping of states, no way back, nothing after null. */
    g_assert_false(job_transition_allowed(JOB_STATUS_RUNNING,
                                          JOB_STATUS_CONCLUDED));
    g_assert_false(job_transition_allowed(JOB_STATUS_RUNNING,
                                          JOB_STATUS_PENDING));
    g_assert_false(job_transition_allowed(JOB_STATUS_CONCLUDED,
                                          JOB_STATUS_RUNNING));
    g_assert_false(job_transition_allowed(JOB_STATUS_ABORTING,
                                          JOB_STATUS_PENDING));
    for (int s = 0; s < JOB_STATUS__MAX; s++) {
        g_assert_false(job_transition_allowed(JOB_STATUS_NULL, s));
        g_assert_false(job_transition_allowed(s, s) &&
                       s != JOB_STATUS_ABORTING);
    }
    /* Ready/standby belong to mirror-like jobs. */
    g_assert_true(job_transition_allowed(JOB_STATUS_READY,
                                         JOB_STATUS_STANDBY));
    g_assert_true(job_transition_allowed(JOB_STATUS_STANDBY,
                                         JOB_STATUS_READY));
}

static void test_verbs(void)
{
    static const struct {
        JobVerb verb;
        const char *allowed;    /* one letter per status U C R P Y S W D X E N */
    } table[] = {
        { JOB_VERB_CANCEL,    "01111111000" },
        { JOB_VERB_PAUSE,     "01111100000" },
        { JOB_VERB_RESUME,    "01111100000" },
        { JOB_VERB_SET_SPEED, "01111100000" },
        { JOB_VERB_COMPLETE,  "00001000000" },
        { JOB_VERB_FINALIZE,  "00000001000" },
        { JOB_VERB_DISMISS,   "00000000010" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        for (int s = 0; s < JOB_STATUS__MAX; s++) {
            g_assert_cmpint(job_verb_allowed(s, table[i].verb), ==,
                            table[i].allowed[s] == '1');
        }
    }
}

/* ---- lifecycles of a test job (testjob-drv.c) ---- */

static void test_success_manual(void)
{
    TestJob t = { .limit = 3 };
    Error *err = NULL;
    Job *job;

    seen_reset();
    job = job_create_full("j", &test_job_driver, &t,
                          JOB_MANUAL_FINALIZE | JOB_MANUAL_DISMISS,
                          &error_abort);
    g_assert_null(job_create_full("j", &test_job_driver, &t, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Job ID 'j' already in use");
    error_free(err);
    err = NULL;
    g_assert_null(job_create_full("1x", &test_job_driver, &t, 0, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid job ID '1x'");
    error_free(err);
    err = NULL;

    job_start(job);
    while (job->status != JOB_STATUS_PENDING) {
        aio_poll(qemu_get_aio_context(), true);
    }
    g_assert_cmpstr(seen->str, ==, "created,running,waiting,pending");
    g_assert_false(t.committed);
    g_assert_false(t.cleaned);

    job_dismiss(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job 'j' in state 'pending' "
                    "cannot accept command verb 'dismiss'");
    error_free(err);

    job_finalize(job, &error_abort);
    g_assert_true(t.committed);
    g_assert_false(t.aborted);
    g_assert_true(t.cleaned);
    g_assert_cmpint(job->status, ==, JOB_STATUS_CONCLUDED);
    g_assert_true(job_get("j") == job);
    job_dismiss(job, &error_abort);
    g_assert_null(job_get("j"));
    g_assert_cmpstr(seen->str, ==,
                    "created,running,waiting,pending,concluded,null");
    g_assert_cmpint(t.iterations, ==, 3);
}

static void test_failure(void)
{
    TestJob t = { .limit = 2, .ret = -EIO };
    Job *job;

    seen_reset();
    job = job_create_full("f", &test_job_driver, &t, JOB_MANUAL_DISMISS,
                          &error_abort);
    job_start(job);
    while (!job_is_concluded(job)) {
        aio_poll(qemu_get_aio_context(), true);
    }
    g_assert_cmpstr(seen->str, ==, "created,running,aborting,concluded");
    g_assert_cmpstr(job->error, ==, "test failure");
    g_assert_true(t.aborted);
    g_assert_false(t.committed);
    g_assert_true(t.cleaned);
    job_dismiss(job, &error_abort);
}

/* A paused job does no work; resume continues; cancel ends it. */
static void test_pause_resume_cancel(void)
{
    TestJob t = { 0 };
    Error *err = NULL;
    Job *job;
    int before;

    seen_reset();
    job = job_create_full("p", &test_job_driver, &t, 0, &error_abort);
    job_start(job);
    poll_for(20);
    g_assert_cmpint(t.iterations, >, 0);

    job_user_pause(job, &error_abort);
    job_user_pause(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job is already paused");
    error_free(err);
    err = NULL;
    poll_for(5);
    g_assert_cmpint(job->status, ==, JOB_STATUS_PAUSED);
    g_assert_false(job->busy);
    before = t.iterations;
    poll_for(30);
    g_assert_cmpint(t.iterations, ==, before);

    job_user_resume(job, &error_abort);
    job_user_resume(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Can't resume a job that was not paused");
    error_free(err);
    poll_for(20);
    g_assert_cmpint(job->status, ==, JOB_STATUS_RUNNING);
    g_assert_cmpint(t.iterations, >, before);

    job_user_cancel(job, true, &error_abort);
    job_wait_all();
    /* auto-dismiss: the job is gone. */
    g_assert_null(job_get("p"));
    g_assert_cmpstr(seen->str, ==, "created,running,paused,running,"
                    "aborting,concluded,null");
    g_assert_true(t.aborted);
    g_assert_true(t.cleaned);
}

/* Cancel of a paused job does not need a resume first. */
static void test_cancel_paused(void)
{
    TestJob t = { 0 };
    Job *job;

    seen_reset();
    job = job_create_full("c", &test_job_driver, &t, 0, &error_abort);
    job_user_pause(job, &error_abort);
    job_start(job);
    g_assert_cmpint(job->status, ==, JOB_STATUS_PAUSED);
    g_assert_cmpint(t.iterations, ==, 0);
    job_cancel(job, true);
    job_wait_all();
    g_assert_null(job_get("c"));
    g_assert_cmpint(t.iterations, ==, 0);
    g_assert_cmpstr(seen->str, ==, "created,running,paused,running,"
                    "aborting,concluded,null");
}

/* The minimal interface blockdev-create uses: auto-dismiss off, 0/1 -> 1/1. */
static void test_legacy_create(void)
{
    TestJob t = { .limit = 1 };
    Job *job;

    job = job_create("cr", &test_job_driver, &t, &error_abort);
    g_assert_cmpint(job->progress_current, ==, 0);
    g_assert_cmpint(job->progress_total, ==, 1);
    job_start(job);
    job_wait_all();
    g_assert_true(job_is_concluded(job));
    g_assert_cmpint(job->progress_current, ==, 1);
    g_assert_cmpint(job_dismiss_all(), ==, 1);
    g_assert_null(job_get("cr"));
}

/* A job its creator could not set up disappears without running hooks. */
static void test_early_fail(void)
{
    TestJob t = { 0 };
    Job *job;

    seen_reset();
    job = job_create_full("e", &test_job_driver, &t, 0, &error_abort);
    job_early_fail(job);
    g_assert_null(job_get("e"));
    g_assert_cmpstr(seen->str, ==, "created,null");
    g_assert_false(t.aborted || t.cleaned || t.committed);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    seen = g_string_new(NULL);
    g_test_add_func("/job/transitions", test_transitions);
    g_test_add_func("/job/verbs", test_verbs);
    g_test_add_func("/job/success-manual", test_success_manual);
    g_test_add_func("/job/failure", test_failure);
    g_test_add_func("/job/pause-resume-cancel", test_pause_resume_cancel);
    g_test_add_func("/job/cancel-paused", test_cancel_paused);
    g_test_add_func("/job/legacy-create", test_legacy_create);
    g_test_add_func("/job/early-fail", test_early_fail);
    return g_test_run();
}
