/*
 * Coroutine synchronisation: CoQueue, CoMutex, CoRwlock.
 *
 * Everything here runs in the main loop thread, so plain variables are
 * enough; what makes these primitives correct is that a woken coroutine
 * only runs once the waker yields (see aio_co_wake()).
 */
#include "qemu/osdep.h"
#include "qemu/coroutine_int.h"

void qemu_co_queue_init(CoQueue *queue)
{
    QSIMPLEQ_INIT(&queue->entries);
}

void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *lock)
{
    Coroutine *self = qemu_coroutine_self();

    QSIMPLEQ_INSERT_TAIL(&queue->entries, self, co_queue_next);
    if (lock) {
        qemu_co_mutex_unlock(lock);
    }
    qemu_coroutine_yield();
    if (lock) {
        qemu_co_mutex_lock(lock);
    }
}

bool qemu_co_queue_next(CoQueue *queue)
{
    Coroutine *next = QSIMPLEQ_FIRST(&queue->entries);

    if (!next) {
        return false;
    }
    QSIMPLEQ_REMOVE_HEAD(&queue->entries, co_queue_next);
    aio_co_wake(next);
    return true;
}

void qemu_co_queue_restart_all(CoQueue *queue)
{
    while (qemu_co_queue_next(queue)) {
        /* each call wakes one */
    }
}

bool qemu_co_queue_empty(CoQueue *queue)
{
    return QSIMPLEQ_EMPTY(&queue->entries);
}

void qemu_co_mutex_init(CoMutex *mutex)
{
    mutex->locked = false;
    mutex->holder = NULL;
    qemu_co_queue_init(&mutex->waiters);
}

void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex)
{
    Coroutine *self = qemu_coroutine_self();

    assert(self);
    if (!mutex->locked) {
        mutex->locked = true;
        mutex->holder = self;
        return;
    }
    assert(mutex->holder != self);
    /* Ownership is handed to us by unlock before we are woken. */
    QSIMPLEQ_INSERT_TAIL(&mutex->waiters.entries, self, co_queue_next);
    qemu_coroutine_yield();
    assert(mutex->locked && mutex->holder == self);
}

void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex)
{
    Coroutine *next = QSIMPLEQ_FIRST(&mutex->waiters.entries);

    assert(mutex->locked);
    assert(mutex->holder == qemu_coroutine_self());
    if (!next) {
        mutex->locked = false;
        mutex->holder = NULL;
        return;
    }
    QSIMPLEQ_REMOVE_HEAD(&mutex->waiters.entries, co_queue_next);
    mutex->holder = next;
    aio_co_wake(next);
}

void qemu_co_mutex_assert_locked(CoMutex *mutex)
{
    assert(mutex->locked && mutex->holder == qemu_coroutine_self());
}

struct CoRwTicket {
    bool read;
    Coroutine *co;
    QSIMPLEQ_ENTRY(CoRwTicket) next;
};

void qemu_co_rwlock_init(CoRwlock *lock)
{
    lock->readers = 0;
    lock->writer = false;
    QSIMPLEQ_INIT(&lock->tickets);
}

/* Hands the lock to as many queued waiters as can hold it together. */
static void qemu_co_rwlock_wake(CoRwlock *lock)
{
    CoRwTicket *t;

    while ((t = QSIMPLEQ_FIRST(&lock->tickets)) != NULL) {
        if (t->read) {
            if (lock->writer) {
                return;
            }
            lock->readers++;
        } else {
            if (lock->writer || lock->readers) {
                return;
            }
            lock->writer = true;
        }
        QSIMPLEQ_REMOVE_HEAD(&lock->tickets, next);
        aio_co_wake(t->co);
    }
}

static void coroutine_fn qemu_co_rwlock_wait(CoRwlock *lock, bool read)
{
    CoRwTicket ticket = { .read = read, .co = qemu_coroutine_self() };

    QSIMPLEQ_INSERT_TAIL(&lock->tickets, &ticket, next);
    qemu_coroutine_yield();
}

void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock)
{
    if (!lock->writer && QSIMPLEQ_EMPTY(&lock->tickets)) {
        lock->readers++;
        return;
    }
    qemu_co_rwlock_wait(lock, true);
}

void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock)
{
    if (!lock->writer && !lock->readers && QSIMPLEQ_EMPTY(&lock->tickets)) {
        lock->writer = true;
        return;
    }
    qemu_co_rwlock_wait(lock, false);
}

void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock)
{
    if (lock->writer) {
        lock->writer = false;
    } else {
        assert(lock->readers > 0);
        lock->readers--;
    }
    qemu_co_rwlock_wake(lock);
}
