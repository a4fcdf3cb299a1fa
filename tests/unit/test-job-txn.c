/*
 * Unit tests of job transactions (job_txn_*() in job.c, what
 * transaction's completion-mode=grouped uses): members go pending only
 * together, a failing member cancels and aborts the whole group in
 * QEMU's order, one job-finalize finalizes the group, and a member that
 * never started leaves the group without a trace.  Checked through the
 * JOB_STATUS_CHANGE events ("id:status") and the driver hooks called.
 */
#include "qemu/osdep.h"
#include "qemu/job.h"
#include "testjob-drv.h"
#include "qapi/qapi-events.h"

static GString *seen;

/* Replaces the generated weak no-op: records JOB_STATUS_CHANGE. */
void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    JsonObject *o;

    if (event != QAPI_EVENT_JOB_STATUS_CHANGE) {
        return;
    }
    o = json_node_get_object(data);
    if (!strcmp(json_object_get_string_member(o, "status"), "running")) {
        return;
    }
    if (seen->len) {
        g_string_append_c(seen, ',');
    }
    g_string_append_printf(seen, "%s:%s",
                           json_object_get_string_member(o, "id"),
                           json_object_get_string_member(o, "status"));
}

/* Two auto-dismissed jobs j1, j2 (added in that order) of one group. */
static void start_pair(TestJob *t1, TestJob *t2, int flags1)
{
    JobTxn *txn = job_txn_new();
    Job *j1 = job_create_full("j1", &test_job_driver, t1, flags1,
                              &error_abort);
    Job *j2 = job_create_full("j2", &test_job_driver, t2, 0, &error_abort);

    job_txn_add_job(txn, j1);
    job_txn_add_job(txn, j2);
    /* The members hold the group from here. */
    job_txn_unref(txn);
    g_string_truncate(seen, 0);
    job_start(j1);
    job_start(j2);
}

static void wait_gone(const char *id)
{
    while (job_get(id)) {
        aio_poll(qemu_get_aio_context(), true);
    }
}

static void test_success_together(void)
{
    TestJob t1 = { .limit = 1 }, t2 = { .limit = 5 };
    Job *j1;

    start_pair(&t1, &t2, 0);
    j1 = job_get("j1");
    while (j1->status != JOB_STATUS_WAITING) {
        aio_poll(qemu_get_aio_context(), true);
    }
    /* j1 is done but waits for j2: nothing finalized yet. */
    g_assert_false(t1.committed);
    g_assert_cmpint(job_get("j2")->status, ==, JOB_STATUS_RUNNING);
    wait_gone("j1");
    wait_gone("j2");
    g_assert_true(t1.committed && t2.committed);
    g_assert_false(t1.aborted || t2.aborted);
    /* Pending together, then finalized newest first (QEMU's order). */
    g_assert_cmpstr(seen->str, ==,
                    "j1:waiting,j2:waiting,j2:pending,j1:pending,"
                    "j2:concluded,j2:null,j1:concluded,j1:null");
}

static void test_failure_cancels_group(void)
{
    TestJob t1 = { .limit = 0 }, t2 = { .limit = 2, .ret = -EIO };

    start_pair(&t1, &t2, 0);
    wait_gone("j1");
    wait_gone("j2");
    g_assert_true(t1.aborted && t1.cleaned && !t1.committed);
    g_assert_true(t2.aborted && t2.cleaned && !t2.committed);
    /* j1 was still working: it goes aborting once it has stopped. */
    g_assert_cmpstr(seen->str, ==,
                    "j2:aborting,j1:aborting,j2:concluded,j2:null,"
                    "j1:concluded,j1:null");
}

static void test_failure_aborts_waiting_member(void)
{
    TestJob t1 = { .limit = 1 }, t2 = { .limit = 4, .ret = -EIO };

    start_pair(&t1, &t2, 0);
    wait_gone("j1");
    wait_gone("j2");
    /* j1's work had succeeded, but the group failed: no commit. */
    g_assert_true(t1.aborted && !t1.committed);
    g_assert_cmpstr(seen->str, ==,
                    "j1:waiting,j2:aborting,j2:concluded,j2:null,"
                    "j1:aborting,j1:concluded,j1:null");
}

static void test_manual_finalize_group(void)
{
    TestJob t1 = { .limit = 1 }, t2 = { .limit = 2 };
    Job *j1, *j2;

    start_pair(&t1, &t2, JOB_MANUAL_FINALIZE);
    j1 = job_get("j1");
    j2 = job_get("j2");
    while (j1->status != JOB_STATUS_PENDING) {
        aio_poll(qemu_get_aio_context(), true);
    }
    /* j2 auto-finalizes, but the group waits for j1's job-finalize. */
    g_assert_cmpint(j2->status, ==, JOB_STATUS_PENDING);
    g_assert_false(t2.committed);
    job_finalize(j2, &error_abort);
    g_assert_null(job_get("j1"));
    g_assert_null(job_get("j2"));
    g_assert_true(t1.committed && t2.committed);
}

static void test_cancel_pending_member(void)
{
    TestJob t1 = { .limit = 1 }, t2 = { .limit = 1 };
    Job *j1;

    start_pair(&t1, &t2, JOB_MANUAL_FINALIZE);
    j1 = job_get("j1");
    while (j1->status != JOB_STATUS_PENDING) {
        aio_poll(qemu_get_aio_context(), true);
    }
    job_user_cancel(j1, true, &error_abort);
    g_assert_null(job_get("j1"));
    g_assert_null(job_get("j2"));
    g_assert_true(t1.aborted && t2.aborted);
    g_assert_false(t1.committed || t2.committed);
}

static void test_unstarted_member(void)
{
    TestJob t1 = { 0 }, t2 = { 0 };
    JobTxn *txn = job_txn_new();
    Job *j1 = job_create_full("j1", &test_job_driver, &t1, 0, &error_abort);
    Job *j2 = job_create_full("j2", &test_job_driver, &t2, 0, &error_abort);

    job_txn_add_job(txn, j1);
    job_txn_add_job(txn, j2);
    g_string_truncate(seen, 0);
    /* A transaction's abort: cancel in created, early failure. */
    job_cancel(j1, true);
    job_early_fail(j2);
    g_assert_cmpstr(seen->str, ==,
                    "j1:aborting,j1:concluded,j1:null,j2:null");
    g_assert_true(t1.aborted && t1.cleaned);
    g_assert_false(t2.aborted || t2.cleaned);
    g_assert_null(job_next(NULL));
    job_txn_unref(txn);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    seen = g_string_new(NULL);
    g_test_add_func("/job-txn/success-together", test_success_together);
    g_test_add_func("/job-txn/failure-cancels-group",
                    test_failure_cancels_group);
    g_test_add_func("/job-txn/failure-aborts-waiting-member",
                    test_failure_aborts_waiting_member);
    g_test_add_func("/job-txn/manual-finalize-group",
                    test_manual_finalize_group);
    g_test_add_func("/job-txn/cancel-pending-member",
                    test_cancel_pending_member);
    g_test_add_func("/job-txn/unstarted-member", test_unstarted_member);
    return g_test_run();
}
