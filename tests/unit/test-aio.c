/*
 * AioContext tests: bottom halves, timers, fd handlers, cross-thread
 * wake-ups, nested polling and the thread pool.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qemu/thread-pool.h"

#define MS (INT64_C(1000) * 1000)

static AioContext *ctx;

static void drain(void)
{
    while (aio_poll(ctx, false)) {
        /* run everything that is ready */
    }
}

/* --- bottom halves --- */

typedef struct BHLog {
    GString *log;
    QEMUBH *bh;
    int id;
    int runs;
    bool reschedule;
} BHLog;

static void bh_log_cb(void *opaque)
{
    BHLog *b = opaque;

    g_string_append_printf(b->log, "%d ", b->id);
    b->runs++;
    if (b->reschedule) {
        b->reschedule = false;
        qemu_bh_schedule(b->bh);
    }
}

static void test_bh_order(void)
{
    GString *log = g_string_new(NULL);
    BHLog b[3];

    drain();
    for (int i = 0; i < 3; i++) {
        b[i] = (BHLog) { .log = log, .id = i };
        b[i].bh = aio_bh_new(ctx, bh_log_cb, &b[i]);
    }
    qemu_bh_schedule(b[2].bh);
    qemu_bh_schedule(b[0].bh);
    qemu_bh_schedule(b[1].bh);
    /* Scheduling twice before it runs still runs it once. */
    qemu_bh_schedule(b[0].bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(log->str, ==, "2 0 1 ");
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(b[0].runs, ==, 1);

    /* A BH that reschedules itself runs again in the next iteration. */
    g_string_truncate(log, 0);
    b[0].reschedule = true;
    qemu_bh_schedule(b[0].bh);
    qemu_bh_schedule(b[1].bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(log->str, ==, "0 1 ");
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(log->str, ==, "0 1 0 ");
    g_assert_false(aio_poll(ctx, false));

    for (int i = 0; i < 3; i++) {
        qemu_bh_delete(b[i].bh);
    }
    g_string_free(log, TRUE);
}

static void test_bh_cancel_delete(void)
{
    GString *log = g_string_new(NULL);
    BHLog a = { .log = log, .id = 1 }, b = { .log = log, .id = 2 };

    drain();
    a.bh = aio_bh_new(ctx, bh_log_cb, &a);
    b.bh = aio_bh_new(ctx, bh_log_cb, &b);
    qemu_bh_schedule(a.bh);
    qemu_bh_cancel(a.bh);
    qemu_bh_schedule(b.bh);
    /* Deleting a scheduled BH unschedules it. */
    qemu_bh_delete(b.bh);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpstr(log->str, ==, "");
    /* A cancelled BH can be scheduled again. */
    qemu_bh_schedule(a.bh);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpstr(log->str, ==, "1 ");
    qemu_bh_delete(a.bh);
    g_string_free(log, TRUE);
}

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void test_bh_oneshot(void)
{
    int n = 0;

    drain();
    aio_bh_schedule_oneshot(ctx, count_cb, &n);
    aio_bh_schedule_oneshot(ctx, count_cb, &n);
    g_assert_cmpint(n, ==, 0);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 2);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(n, ==, 2);
}

typedef struct SelfDelete {
    QEMUBH *bh;
    QEMUBH *victim;
    int runs;
} SelfDelete;

/* Deletes itself and another scheduled BH from inside its callback. */
static void self_delete_cb(void *opaque)
{
    SelfDelete *d = opaque;

    d->runs++;
    qemu_bh_delete(d->victim);
    qemu_bh_delete(d->bh);
}

static void victim_cb(void *opaque)
{
    g_assert_not_reached();
}

static void test_bh_delete_in_callback(void)
{
    SelfDelete d = { 0 };

    drain();
    d.bh = aio_bh_new(ctx, self_delete_cb, &d);
    d.victim = aio_bh_new(ctx, victim_cb, NULL);
    qemu_bh_schedule(d.bh);
    qemu_bh_schedule(d.victim);
    g_assert_true(aio_poll(ctx, false));
    g_assert_cmpint(d.runs, ==, 1);
    g_assert_false(aio_poll(ctx, false));
}

typedef struct ThreadBH {
    QEMUBH *bh;
    int ran;
    GThread *ran_in;
} ThreadBH;

static void thread_bh_cb(void *opaque)
{
    ThreadBH *t = opaque;

    t->ran++;
    t->ran_in = g_thread_self();
}

static gpointer schedule_later(gpointer opaque)
{
    ThreadBH *t = opaque;

    g_usleep(50 * 1000);
    qemu_bh_schedule(t->bh);
    return NULL;
}

/* A blocking aio_poll() must wake up for a BH scheduled by a thread. */
static void test_bh_from_thread(void)
{
    ThreadBH t = { 0 };
    GThread *th;
    int64_t t0;

    drain();
    t.bh = aio_bh_new(ctx, thread_bh_cb, &t);
    t0 = qemu_clock_get_ns();
    th = g_thread_new("bh-scheduler", schedule_later, &t);
    while (!t.ran) {
        aio_poll(ctx, true);
    }
    g_thread_join(th);
    g_assert_cmpint(t.ran, ==, 1);
    g_assert_true(t.ran_in == g_thread_self());
    g_assert_cmpint(qemu_clock_get_ns() - t0, >=, 40 * MS);
    g_assert_cmpint(qemu_clock_get_ns() - t0, <, 5000 * MS);
    qemu_bh_delete(t.bh);
}

/* --- nested polling --- */

typedef struct NestedBH {
    GString *log;
    QEMUBH *inner;
} NestedBH;

static void inner_cb(void *opaque)
{
    NestedBH *n = opaque;

    g_string_append(n->log, "inner ");
}

static void outer_cb(void *opaque)
{
    NestedBH *n = opaque;

    g_string_append(n->log, "outer-start ");
    qemu_bh_schedule(n->inner);
    /* Like a synchronous bdrv_pread() called from a callback. */
    while (!strstr(n->log->str, "inner")) {
        aio_poll(ctx, true);
    }
    g_string_append(n->log, "outer-end ");
}

static void test_nested_poll(void)
{
    NestedBH n = { .log = g_string_new(NULL) };

    drain();
    n.inner = aio_bh_new(ctx, inner_cb, &n);
    aio_bh_schedule_oneshot(ctx, outer_cb, &n);
    while (!strstr(n.log->str, "outer-end")) {
        aio_poll(ctx, true);
    }
    g_assert_cmpstr(n.log->str, ==, "outer-start inner outer-end ");
    qemu_bh_delete(n.inner);
    g_string_free(n.log, TRUE);
}

/* --- timers --- */

typedef struct TimerLog {
    QEMUTimer *timer;
    int64_t expire;
    int64_t fired_at;
    GString *log;
    int id;
} TimerLog;

static void timer_log_cb(void *opaque)
{
    TimerLog *t = opaque;

    t->fired_at = qemu_clock_get_ns();
    g_assert_false(timer_pending(t->timer));
    g_string_append_printf(t->log, "%d ", t->id);
}

static void test_timers(void)
{
    GString *log = g_string_new(NULL);
    static const int delays_ms[] = { 30, 10, 20, 40 };
    TimerLog t[4];
    int64_t now = qemu_clock_get_ns();

    drain();
    for (int i = 0; i < 4; i++) {
        t[i] = (TimerLog) { .log = log, .id = i,
                            .expire = now + delays_ms[i] * MS };
        t[i].timer = aio_timer_new(ctx, timer_log_cb, &t[i]);
        g_assert_false(timer_pending(t[i].timer));
        timer_mod_ns(t[i].timer, t[i].expire);
        g_assert_true(timer_pending(t[i].timer));
    }
    /* Cancelled before it fires: never runs. */
    timer_del(t[3].timer);
    g_assert_false(timer_pending(t[3].timer));

    while (strlen(log->str) < 6) {
        aio_poll(ctx, true);
    }
    g_assert_cmpstr(log->str, ==, "1 2 0 ");
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(t[i].fired_at, >=, t[i].expire);
    }

    /* Re-arming a fired timer makes it fire again; none fire twice. */
    timer_mod_ns(t[0].timer, qemu_clock_get_ns() + 5 * MS);
    while (timer_pending(t[0].timer)) {
        aio_poll(ctx, true);
    }
    g_usleep(60 * 1000);
    drain();
    g_assert_cmpstr(log->str, ==, "1 2 0 0 ");

    for (int i = 0; i < 4; i++) {
        timer_free(t[i].timer);
    }
    g_string_free(log, TRUE);
}

/* A timer moved later while armed fires at the new time only. */
static void test_timer_mod_later(void)
{
    GString *log = g_string_new(NULL);
    TimerLog t = { .log = log };
    int64_t now = qemu_clock_get_ns();

    drain();
    t.timer = aio_timer_new(ctx, timer_log_cb, &t);
    timer_mod_ns(t.timer, now + 5 * MS);
    t.expire = now + 40 * MS;
    timer_mod_ns(t.timer, t.expire);
    while (timer_pending(t.timer)) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(t.fired_at, >=, t.expire);
    g_assert_cmpstr(log->str, ==, "0 ");
    timer_free(t.timer);
    g_string_free(log, TRUE);
}

/* --- fd handlers --- */

typedef struct PipeTest {
    int fds[2];
    int reads;
    int writes;
    char last;
} PipeTest;

static void pipe_read_cb(void *opaque)
{
    PipeTest *p = opaque;
    char c;

    g_assert_cmpint(read(p->fds[0], &c, 1), ==, 1);
    p->last = c;
    p->reads++;
}

static void pipe_write_cb(void *opaque)
{
    PipeTest *p = opaque;

    p->writes++;
    /* Level-triggered: stop it from firing forever. */
    aio_set_fd_handler(ctx, p->fds[1], NULL, NULL, NULL);
}

static void test_fd_handlers(void)
{
    PipeTest p = { 0 };

    drain();
    g_assert_cmpint(pipe(p.fds), ==, 0);
    aio_set_fd_handler(ctx, p.fds[0], pipe_read_cb, NULL, &p);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(p.reads, ==, 0);

    g_assert_cmpint(write(p.fds[1], "x", 1), ==, 1);
    while (p.reads < 1) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(p.last, ==, 'x');

    /* Two bytes, level-triggered: the handler runs until both are read. */
    g_assert_cmpint(write(p.fds[1], "yz", 2), ==, 2);
    while (p.reads < 3) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(p.last, ==, 'z');
    g_assert_false(aio_poll(ctx, false));

    /* Removed: data stays in the pipe, nothing runs. */
    aio_set_fd_handler(ctx, p.fds[0], NULL, NULL, NULL);
    g_assert_cmpint(write(p.fds[1], "w", 1), ==, 1);
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(p.reads, ==, 3);

    /* A writable pipe runs the write handler, which removes itself. */
    aio_set_fd_handler(ctx, p.fds[1], NULL, pipe_write_cb, &p);
    while (p.writes < 1) {
        aio_poll(ctx, true);
    }
    g_assert_false(aio_poll(ctx, false));
    g_assert_cmpint(p.writes, ==, 1);

    close(p.fds[0]);
    close(p.fds[1]);
}

/* --- coroutines scheduled across threads --- */

typedef struct CrossThread {
    Coroutine *co;
    bool woken;
    bool done;
    GThread *ran_in;
} CrossThread;

static void coroutine_fn cross_thread_co(void *opaque)
{
    CrossThread *c = opaque;

    qemu_coroutine_yield();
    c->woken = true;
    c->ran_in = g_thread_self();
    c->done = true;
}

static gpointer wake_from_thread(gpointer opaque)
{
    CrossThread *c = opaque;

    g_usleep(20 * 1000);
    aio_co_wake(c->co);
    return NULL;
}

static void test_co_wake_from_thread(void)
{
    CrossThread c = { 0 };
    GThread *th;

    drain();
    c.co = qemu_coroutine_create(cross_thread_co, &c);
    qemu_coroutine_enter(c.co);
    th = g_thread_new("waker", wake_from_thread, &c);
    AIO_WAIT_WHILE(!c.done);
    g_thread_join(th);
    g_assert_true(c.woken);
    /* The coroutine ran in the loop thread, not in the waker. */
    g_assert_true(c.ran_in == g_thread_self());
}

/* --- thread pool --- */

static gint pool_active;
static gint pool_max_active;

static int pool_work(void *arg)
{
    int n = GPOINTER_TO_INT(arg);
    gint active = g_atomic_int_add(&pool_active, 1) + 1;
    gint max;

    while ((max = g_atomic_int_get(&pool_max_active)) < active &&
           !g_atomic_int_compare_and_exchange(&pool_max_active, max, active)) {
        /* retry */
    }
    g_assert_false(qemu_in_main_thread());
    g_usleep(1000 * (1 + n % 5));
    g_atomic_int_add(&pool_active, -1);
    return n % 3 == 0 ? -n : n;
}

typedef struct PoolJob {
    int n;
    int ret;
    bool done;
} PoolJob;

static void coroutine_fn pool_job_co(void *opaque)
{
    PoolJob *j = opaque;

    j->ret = thread_pool_submit_co(pool_work, GINT_TO_POINTER(j->n));
    g_assert_true(qemu_in_main_thread());
    j->done = true;
}

static void test_thread_pool(void)
{
    enum { N = 100 };
    PoolJob jobs[N];
    unsigned co_start = qemu_coroutine_count();
    int done;

    drain();
    for (int i = 0; i < N; i++) {
        jobs[i] = (PoolJob) { .n = i + 1 };
        qemu_coroutine_enter(qemu_coroutine_create(pool_job_co, &jobs[i]));
    }
    g_assert_cmpuint(qemu_coroutine_count(), ==, co_start + N);
    do {
        aio_poll(ctx, true);
        done = 0;
        for (int i = 0; i < N; i++) {
            done += jobs[i].done;
        }
    } while (done < N);
    for (int i = 0; i < N; i++) {
        int n = i + 1;

        g_assert_cmpint(jobs[i].ret, ==, n % 3 == 0 ? -n : n);
    }
    g_assert_cmpint(g_atomic_int_get(&pool_active), ==, 0);
    /* The requests overlapped in several worker threads. */
    g_assert_cmpint(g_atomic_int_get(&pool_max_active), >, 1);
    g_assert_cmpuint(qemu_coroutine_count(), ==, co_start);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ctx = qemu_get_aio_context();
    g_assert_true(qemu_in_main_thread());
    g_test_add_func("/aio/bh/order", test_bh_order);
    g_test_add_func("/aio/bh/cancel-delete", test_bh_cancel_delete);
    g_test_add_func("/aio/bh/oneshot", test_bh_oneshot);
    g_test_add_func("/aio/bh/delete-in-callback", test_bh_delete_in_callback);
    g_test_add_func("/aio/bh/from-thread", test_bh_from_thread);
    g_test_add_func("/aio/nested-poll", test_nested_poll);
    g_test_add_func("/aio/timers", test_timers);
    g_test_add_func("/aio/timer-mod-later", test_timer_mod_later);
    g_test_add_func("/aio/fd-handlers", test_fd_handlers);
    g_test_add_func("/aio/co-wake-from-thread", test_co_wake_from_thread);
    g_test_add_func("/aio/thread-pool", test_thread_pool);
    return g_test_run();
}
