/*
 * Coroutine tests: enter/yield/terminate, nesting, many coroutines, the
 * free pool, and the CoQueue/CoMutex/CoRwlock/sleep primitives.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"

/* Every test must leave the number of live coroutines as it found it. */
static unsigned start_count;

static void check_start(void)
{
    start_count = qemu_coroutine_count();
}

static void check_end(void)
{
    g_assert_cmpuint(qemu_coroutine_count(), ==, start_count);
}

static void coroutine_fn set_flag(void *opaque)
{
    *(bool *)opaque = true;
}

static void test_enter_terminate(void)
{
    bool done = false;
    Coroutine *co;

    check_start();
    co = qemu_coroutine_create(set_flag, &done);
    g_assert_false(done);
    g_assert_cmpuint(qemu_coroutine_count(), ==, start_count + 1);
    qemu_coroutine_enter(co);
    g_assert_true(done);
    check_end();
}

static void coroutine_fn check_self(void *opaque)
{
    Coroutine **self = opaque;

    g_assert_true(qemu_in_coroutine());
    *self = qemu_coroutine_self();
    g_assert_true(qemu_coroutine_entered(*self));
}

static void test_self(void)
{
    Coroutine *co, *seen = NULL;

    g_assert_false(qemu_in_coroutine());
    g_assert_null(qemu_coroutine_self());
    co = qemu_coroutine_create(check_self, &seen);
    qemu_coroutine_enter(co);
    g_assert_true(seen == co);
    g_assert_false(qemu_in_coroutine());
}

static void coroutine_fn count_yields(void *opaque)
{
    int *n = opaque;

    for (*n = 0; *n < 5; (*n)++) {
        qemu_coroutine_yield();
    }
}

static void test_yield(void)
{
    int n = -1;
    Coroutine *co;

    check_start();
    co = qemu_coroutine_create(count_yields, &n);
    /* Five yields, then the sixth entry runs it to its end. */
    for (int k = 1; k <= 5; k++) {
        qemu_coroutine_enter(co);
        g_assert_cmpint(n, ==, k - 1);
        g_assert_false(qemu_coroutine_entered(co));
        g_assert_cmpuint(qemu_coroutine_count(), ==, start_count + 1);
    }
    qemu_coroutine_enter(co);
    g_assert_cmpint(n, ==, 5);
    check_end();
}

typedef struct NestData {
    Coroutine *parent;
    Coroutine *child;
    GString *log;
} NestData;

static void coroutine_fn nest_child(void *opaque)
{
    NestData *nd = opaque;

    /* The parent is still on the chain of entered coroutines. */
    g_assert_true(qemu_coroutine_entered(nd->parent));
    g_string_append(nd->log, "c1 ");
    qemu_coroutine_yield();
    g_string_append(nd->log, "c2 ");
}

static void coroutine_fn nest_parent(void *opaque)
{
    NestData *nd = opaque;

    nd->child = qemu_coroutine_create(nest_child, nd);
    qemu_coroutine_enter(nd->child);
    /* The child's yield came back here, not to the main stack. */
    g_assert_true(qemu_coroutine_self() == nd->parent);
    g_string_append(nd->log, "p1 ");
    qemu_coroutine_enter(nd->child);
    g_string_append(nd->log, "p2 ");
    qemu_coroutine_yield();
    g_string_append(nd->log, "p3 ");
}

static void test_nesting(void)
{
    NestData nd = { .log = g_string_new(NULL) };

    check_start();
    nd.parent = qemu_coroutine_create(nest_parent, &nd);
    qemu_coroutine_enter(nd.parent);
    g_string_append(nd.log, "m1 ");
    g_assert_false(qemu_in_coroutine());
    g_assert_cmpuint(qemu_coroutine_count(), ==, start_count + 1);
    qemu_coroutine_enter(nd.parent);
    g_assert_cmpstr(nd.log->str, ==, "c1 p1 c2 p2 m1 p3 ");
    g_string_free(nd.log, TRUE);
    check_end();
}

typedef struct Chain {
    int depth;
    int *deepest;
} Chain;

/* Recursively enters a child until @depth reaches 0; all terminate. */
static void coroutine_fn chain_entry(void *opaque)
{
    Chain *c = opaque;
    Chain child = { .depth = c->depth - 1, .deepest = c->deepest };

    *c->deepest = MIN(*c->deepest, c->depth);
    if (child.depth >= 0) {
        qemu_coroutine_enter(qemu_coroutine_create(chain_entry, &child));
    }
}

static void test_nesting_deep(void)
{
    int deepest = INT_MAX;
    Chain c = { .depth = 100, .deepest = &deepest };

    check_start();
    qemu_coroutine_enter(qemu_coroutine_create(chain_entry, &c));
    g_assert_cmpint(deepest, ==, 0);
    check_end();
}

static void coroutine_fn yield_once_then_count(void *opaque)
{
    int *counter = opaque;

    qemu_coroutine_yield();
    (*counter)++;
}

static void test_many(void)
{
    enum { N = 1000 };
    Coroutine **cos = g_new(Coroutine *, N);
    int counter = 0;

    check_start();
    for (int i = 0; i < N; i++) {
        cos[i] = qemu_coroutine_create(yield_once_then_count, &counter);
        qemu_coroutine_enter(cos[i]);
    }
    g_assert_cmpuint(qemu_coroutine_count(), ==, start_count + N);
    for (int i = 0; i < N; i++) {
        qemu_coroutine_enter(cos[i]);
    }
    g_assert_cmpint(counter, ==, N);
    check_end();
    g_free(cos);
}

static void coroutine_fn noop(void *opaque)
{
}

/* A terminated coroutine's stack is reused by the next one. */
static void test_pool_reuse(void)
{
    Coroutine *first, *again;

    check_start();
    first = qemu_coroutine_create(noop, NULL);
    qemu_coroutine_enter(first);
    again = qemu_coroutine_create(noop, NULL);
    g_assert_true(again == first);
    qemu_coroutine_enter(again);

    /* Reuse must reset all state: a reused one runs its new entry. */
    for (int i = 0; i < 100; i++) {
        bool done = false;

        qemu_coroutine_enter(qemu_coroutine_create(set_flag, &done));
        g_assert_true(done);
    }
    check_end();
}

/* The pool makes create/enter/terminate cheap (no mmap per coroutine). */
static void test_create_enter_speed(void)
{
    int64_t t0 = g_get_monotonic_time();

    check_start();
    for (int i = 0; i < 200000; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(noop, NULL));
    }
    check_end();
    g_test_message("200000 create/enter: %" PRId64 " us",
                   g_get_monotonic_time() - t0);
}

/* --- CoQueue --- */

typedef struct QueueTest {
    CoQueue queue;
    GString *order;
} QueueTest;

typedef struct QueueWaiter {
    QueueTest *t;
    int id;
} QueueWaiter;

static void coroutine_fn queue_waiter(void *opaque)
{
    QueueWaiter *w = opaque;

    qemu_co_queue_wait(&w->t->queue, NULL);
    g_string_append_printf(w->t->order, "%d ", w->id);
}

static void test_co_queue_fifo(void)
{
    QueueTest t = { .order = g_string_new(NULL) };
    QueueWaiter w[5];

    check_start();
    qemu_co_queue_init(&t.queue);
    g_assert_true(qemu_co_queue_empty(&t.queue));
    for (int i = 0; i < 5; i++) {
        w[i] = (QueueWaiter) { .t = &t, .id = i };
        qemu_coroutine_enter(qemu_coroutine_create(queue_waiter, &w[i]));
    }
    g_assert_false(qemu_co_queue_empty(&t.queue));
    g_assert_true(qemu_co_queue_next(&t.queue));
    g_assert_cmpstr(t.order->str, ==, "0 ");
    g_assert_true(qemu_co_queue_next(&t.queue));
    g_assert_cmpstr(t.order->str, ==, "0 1 ");
    qemu_co_queue_restart_all(&t.queue);
    g_assert_cmpstr(t.order->str, ==, "0 1 2 3 4 ");
    g_assert_true(qemu_co_queue_empty(&t.queue));
    g_assert_false(qemu_co_queue_next(&t.queue));
    g_string_free(t.order, TRUE);
    check_end();
}

typedef struct CondTest {
    CoMutex lock;
    CoQueue cond;
    bool ready;
    GString *log;
    Coroutine *consumer;
} CondTest;

static void coroutine_fn cond_consumer(void *opaque)
{
    CondTest *t = opaque;

    qemu_co_mutex_lock(&t->lock);
    while (!t->ready) {
        /* Drops the lock while waiting and holds it again on return. */
        qemu_co_queue_wait(&t->cond, &t->lock);
    }
    qemu_co_mutex_assert_locked(&t->lock);
    g_string_append(t->log, "consumed ");
    qemu_co_mutex_unlock(&t->lock);
}

static void coroutine_fn cond_producer(void *opaque)
{
    CondTest *t = opaque;

    qemu_co_mutex_lock(&t->lock);
    t->ready = true;
    qemu_co_queue_next(&t->cond);
    /* The consumer cannot run before we unlock and yield. */
    g_string_append(t->log, "produced ");
    qemu_co_mutex_unlock(&t->lock);
    g_string_append(t->log, "unlocked ");
}

static void test_co_queue_with_mutex(void)
{
    CondTest t = { .log = g_string_new(NULL) };

    check_start();
    qemu_co_mutex_init(&t.lock);
    qemu_co_queue_init(&t.cond);
    qemu_coroutine_enter(qemu_coroutine_create(cond_consumer, &t));
    g_assert_false(t.lock.locked);
    qemu_coroutine_enter(qemu_coroutine_create(cond_producer, &t));
    g_assert_cmpstr(t.log->str, ==, "produced unlocked consumed ");
    g_assert_false(t.lock.locked);
    g_string_free(t.log, TRUE);
    check_end();
}

static void coroutine_fn enter_self_if_inactive(void *opaque)
{
    /* Entering ourselves is refused without harm. */
    qemu_coroutine_enter_if_inactive(qemu_coroutine_self());
    (*(int *)opaque)++;
    qemu_coroutine_yield();
    (*(int *)opaque)++;
}

static void test_enter_if_inactive(void)
{
    int n = 0;
    Coroutine *co;

    check_start();
    co = qemu_coroutine_create(enter_self_if_inactive, &n);
    qemu_coroutine_enter_if_inactive(co);
    g_assert_cmpint(n, ==, 1);
    qemu_coroutine_enter_if_inactive(co);
    g_assert_cmpint(n, ==, 2);
    check_end();
}

/* --- CoMutex --- */

typedef struct MutexTest {
    CoMutex lock;
    int holders;            /* must never exceed 1 */
    GString *order;
    Coroutine *cos[4];
} MutexTest;

typedef struct MutexUser {
    MutexTest *t;
    int id;
} MutexUser;

static void coroutine_fn mutex_user(void *opaque)
{
    MutexUser *u = opaque;
    MutexTest *t = u->t;

    for (int round = 0; round < 3; round++) {
        qemu_co_mutex_lock(&t->lock);
        qemu_co_mutex_assert_locked(&t->lock);
        g_assert_cmpint(++t->holders, ==, 1);
        g_string_append_printf(t->order, "%d", u->id);
        /* Hold it across a yield: others must queue up. */
        qemu_coroutine_yield();
        t->holders--;
        qemu_co_mutex_unlock(&t->lock);
    }
}

/*
 * Four coroutines contend; each holds the lock across a yield.  The
 * unlock hands the lock to the longest waiter (FIFO), so the order is
 * strictly round-robin and a coroutine re-locking right after its
 * unlock cannot overtake the waiters.
 */
static void test_co_mutex_fair(void)
{
    MutexTest t = { .order = g_string_new(NULL) };
    MutexUser u[4];
    int rounds = 0;

    check_start();
    qemu_co_mutex_init(&t.lock);
    for (int i = 0; i < 4; i++) {
        u[i] = (MutexUser) { .t = &t, .id = i };
        t.cos[i] = qemu_coroutine_create(mutex_user, &u[i]);
        qemu_coroutine_enter(t.cos[i]);
    }
    /* Only coroutine 0 got the lock; the others wait inside lock(). */
    g_assert_cmpstr(t.order->str, ==, "0");
    g_assert_true(t.lock.holder == t.cos[0]);
    /* Resume whoever holds the lock, until everyone is done. */
    while (qemu_coroutine_count() != start_count) {
        g_assert_true(t.lock.locked);
        qemu_coroutine_enter(t.lock.holder);
        g_assert_cmpint(++rounds, <=, 12);
    }
    g_assert_cmpstr(t.order->str, ==, "012301230123");
    g_assert_false(t.lock.locked);
    g_string_free(t.order, TRUE);
    check_end();
}

/* --- CoRwlock --- */

typedef struct RwTest {
    CoRwlock lock;
    int readers;
    int writers;
    GString *log;
} RwTest;

typedef struct RwUser {
    RwTest *t;
    bool write;
    char name;
    Coroutine *co;
} RwUser;

static void coroutine_fn rw_user(void *opaque)
{
    RwUser *u = opaque;
    RwTest *t = u->t;

    if (u->write) {
        qemu_co_rwlock_wrlock(&t->lock);
        g_assert_cmpint(t->readers, ==, 0);
        g_assert_cmpint(t->writers, ==, 0);
        t->writers++;
    } else {
        qemu_co_rwlock_rdlock(&t->lock);
        g_assert_cmpint(t->writers, ==, 0);
        t->readers++;
    }
    g_string_append_c(t->log, u->name);
    qemu_coroutine_yield();
    g_string_append_c(t->log, g_ascii_tolower(u->name));
    if (u->write) {
        t->writers--;
    } else {
        t->readers--;
    }
    qemu_co_rwlock_unlock(&t->lock);
}

static void rw_start(RwTest *t, RwUser *u, bool write, char name)
{
    *u = (RwUser) { .t = t, .write = write, .name = name };
    u->co = qemu_coroutine_create(rw_user, u);
    qemu_coroutine_enter(u->co);
}

/*
 * Log letters: upper case when a holder gets the lock, lower case when
 * it releases it.
 */
static void test_co_rwlock(void)
{
    RwTest t = { .log = g_string_new(NULL) };
    RwUser r1, r2, w1, r3, w2;

    check_start();
    qemu_co_rwlock_init(&t.lock);
    rw_start(&t, &r1, false, 'A');
    rw_start(&t, &r2, false, 'B');
    /* Two readers share the lock. */
    g_assert_cmpstr(t.log->str, ==, "AB");
    g_assert_cmpint(t.readers, ==, 2);

    /* A writer waits for them; a reader arriving after it waits too. */
    rw_start(&t, &w1, true, 'W');
    rw_start(&t, &r3, false, 'C');
    g_assert_cmpstr(t.log->str, ==, "AB");

    qemu_coroutine_enter(r1.co);
    g_assert_cmpstr(t.log->str, ==, "ABa");
    /* Last reader leaves: the writer gets it, not the later reader. */
    qemu_coroutine_enter(r2.co);
    g_assert_cmpstr(t.log->str, ==, "ABabW");
    g_assert_cmpint(t.writers, ==, 1);

    /* A second writer queues behind reader C. */
    rw_start(&t, &w2, true, 'X');
    qemu_coroutine_enter(w1.co);
    g_assert_cmpstr(t.log->str, ==, "ABabWwC");
    qemu_coroutine_enter(r3.co);
    g_assert_cmpstr(t.log->str, ==, "ABabWwCcX");
    qemu_coroutine_enter(w2.co);
    g_assert_cmpstr(t.log->str, ==, "ABabWwCcXx");
    g_assert_false(t.lock.writer);
    g_assert_cmpint(t.lock.readers, ==, 0);
    g_string_free(t.log, TRUE);
    check_end();
}

/*
 * A continuous stream of overlapping readers must not starve a writer:
 * once it waits, new readers queue behind it.
 */
static void test_co_rwlock_no_starvation(void)
{
    RwTest t = { .log = g_string_new(NULL) };
    RwUser readers[10], w;
    int next = 0;

    check_start();
    qemu_co_rwlock_init(&t.lock);
    rw_start(&t, &readers[next], false, 'A' + next);
    next++;
    rw_start(&t, &w, true, 'W');
    /* Readers keep arriving while the first one still holds the lock. */
    for (; next < 10; next++) {
        rw_start(&t, &readers[next], false, 'A' + next);
    }
    g_assert_cmpstr(t.log->str, ==, "A");
    qemu_coroutine_enter(readers[0].co);
    g_assert_cmpstr(t.log->str, ==, "AaW");
    /* The writer's release admits all queued readers together. */
    qemu_coroutine_enter(w.co);
    g_assert_cmpstr(t.log->str, ==, "AaWwBCDEFGHIJ");
    g_assert_cmpint(t.readers, ==, 9);
    for (int i = 1; i < 10; i++) {
        qemu_coroutine_enter(readers[i].co);
    }
    g_assert_cmpint(t.readers, ==, 0);
    g_string_free(t.log, TRUE);
    check_end();
}

/* --- qemu_co_sleep_ns --- */

typedef struct SleepTest {
    int64_t ns;
    int64_t slept;
    bool done;
} SleepTest;

static void coroutine_fn sleeper(void *opaque)
{
    SleepTest *s = opaque;
    int64_t t0 = qemu_clock_get_ns();

    qemu_co_sleep_ns(s->ns);
    s->slept = qemu_clock_get_ns() - t0;
    s->done = true;
}

static void test_co_sleep(void)
{
    SleepTest s[3] = {
        { .ns = 200 * 1000 * 1000 },
        { .ns = 10 * 1000 * 1000 },
        { .ns = 0 },
    };
    int64_t t0 = qemu_clock_get_ns();

    check_start();
    for (int i = 0; i < 3; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(sleeper, &s[i]));
        g_assert_false(s[i].done);
    }
    AIO_WAIT_WHILE(!s[1].done);
    /* The 10 ms sleeper wakes first; the 200 ms one is still asleep. */
    g_assert_true(s[2].done);
    g_assert_false(s[0].done);
    AIO_WAIT_WHILE(!s[0].done);
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(s[i].slept, >=, s[i].ns);
    }
    g_assert_cmpint(qemu_clock_get_ns() - t0, <, 2000 * 1000 * 1000);
    check_end();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qemu_get_aio_context();
    g_test_add_func("/coroutine/enter-terminate", test_enter_terminate);
    g_test_add_func("/coroutine/self", test_self);
    g_test_add_func("/coroutine/yield", test_yield);
    g_test_add_func("/coroutine/nesting", test_nesting);
    g_test_add_func("/coroutine/nesting-deep", test_nesting_deep);
    g_test_add_func("/coroutine/many", test_many);
    g_test_add_func("/coroutine/pool-reuse", test_pool_reuse);
    g_test_add_func("/coroutine/create-enter-speed", test_create_enter_speed);
    g_test_add_func("/coroutine/co-queue-fifo", test_co_queue_fifo);
    g_test_add_func("/coroutine/co-queue-with-mutex", test_co_queue_with_mutex);
    g_test_add_func("/coroutine/enter-if-inactive", test_enter_if_inactive);
    g_test_add_func("/coroutine/co-mutex-fair", test_co_mutex_fair);
    g_test_add_func("/coroutine/co-rwlock", test_co_rwlock);
    g_test_add_func("/coroutine/co-rwlock-no-starvation",
                    test_co_rwlock_no_starvation);
    g_test_add_func("/coroutine/co-sleep", test_co_sleep);
    return g_test_run();
}
