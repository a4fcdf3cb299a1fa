/*
 * Generic coroutine code: creation with a stack pool, enter/yield, and
 * deferred wake-ups.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine_int.h"

/* Released coroutines kept for reuse, so hot paths never mmap a stack. */
#define POOL_MAX 256

static __thread Coroutine *pool;
static __thread unsigned pool_size;
static unsigned alive;

static void coroutine_pool_cleanup(void) __attribute__((destructor));
static void coroutine_pool_cleanup(void)
{
    while (pool) {
        Coroutine *co = pool;

        pool = co->pool_next;
        qemu_coroutine_delete(co);
    }
    pool_size = 0;
}

Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque)
{
    Coroutine *co;

    if (pool) {
        co = pool;
        pool = co->pool_next;
        pool_size--;
    } else {
        co = qemu_coroutine_new();
    }
    co->entry = entry;
    co->entry_arg = opaque;
    co->caller = NULL;
    co->scheduled = NULL;
    QSIMPLEQ_INIT(&co->co_queue_wakeup);
    alive++;
    return co;
}

static void coroutine_release(Coroutine *co)
{
    alive--;
    if (pool_size < POOL_MAX) {
        co->pool_next = pool;
        pool = co;
        pool_size++;
        return;
    }
    qemu_coroutine_delete(co);
}

unsigned qemu_coroutine_count(void)
{
    return alive;
}

void qemu_coroutine_enter(Coroutine *co)
{
    Coroutine *self = qemu_coroutine_self();
    QSIMPLEQ_HEAD(, Coroutine) pending = QSIMPLEQ_HEAD_INITIALIZER(pending);
    Coroutine *to = co;

    if (!self) {
        self = qemu_coroutine_leader();
    }

    /*
     * Enter @co, then every coroutine it asked to wake while it ran, each
     * from this same (outer) context so wake-ups do not nest.
     */
    QSIMPLEQ_INSERT_TAIL(&pending, to, co_queue_next);
    while (!QSIMPLEQ_EMPTY(&pending)) {
        CoroutineAction ret;

        to = QSIMPLEQ_FIRST(&pending);
        QSIMPLEQ_REMOVE_HEAD(&pending, co_queue_next);

        if (to->caller) {
            fprintf(stderr, "Co-routine re-entered recursively\n");
            abort();
        }
        if (to->scheduled) {
            fprintf(stderr, "%s: Co-routine was already scheduled in '%s'\n",
                    __func__, to->scheduled);
            abort();
        }
        to->caller = self;
        ret = qemu_coroutine_switch(self, to, COROUTINE_ENTER);

        /* Queue the wake-ups the coroutine requested while it ran. */
        while (!QSIMPLEQ_EMPTY(&to->co_queue_wakeup)) {
            Coroutine *w = QSIMPLEQ_FIRST(&to->co_queue_wakeup);

            QSIMPLEQ_REMOVE_HEAD(&to->co_queue_wakeup, co_queue_next);
            QSIMPLEQ_INSERT_TAIL(&pending, w, co_queue_next);
        }

        if (ret == COROUTINE_TERMINATE) {
            coroutine_release(to);
        } else {
            assert(ret == COROUTINE_YIELD);
        }
    }
}

void qemu_coroutine_enter_if_inactive(Coroutine *co)
{
    if (!qemu_coroutine_entered(co)) {
        qemu_coroutine_enter(co);
    }
}

void coroutine_fn qemu_coroutine_yield(void)
{
    Coroutine *self = qemu_coroutine_self();
    Coroutine *to;

    assert(self);
    to = self->caller;
    assert(to);
    self->caller = NULL;
    qemu_coroutine_switch(self, to, COROUTINE_YIELD);
}

bool qemu_coroutine_entered(Coroutine *co)
{
    return co->caller != NULL;
}

void qemu_coroutine_wake_deferred(Coroutine *co)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self && self != co);
    QSIMPLEQ_INSERT_TAIL(&self->co_queue_wakeup, co, co_queue_next);
}
