/*
 * Coroutines: cooperative user-space threads on their own stacks.
 *
 * All coroutines of qblock run in the main loop thread.  A coroutine runs
 * until it yields or terminates; it is resumed by whoever holds a pointer to
 * it (typically a completion callback or a CoQueue).  Wake-ups requested
 * from inside a running coroutine are deferred until that coroutine yields,
 * so wake-ups never nest deeply.
 */
#ifndef QEMU_COROUTINE_H
#define QEMU_COROUTINE_H

#include "qemu/osdep.h"

typedef struct Coroutine Coroutine;
typedef void coroutine_fn CoroutineEntry(void *opaque);

/* Creates a coroutine; it does not run until qemu_coroutine_enter(). */
Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque);

/*
 * Transfers control to @co until it yields or terminates.  @co must not be
 * running already.  Calling from inside a coroutine nests: @co returns to
 * the caller when it yields.
 */
void qemu_coroutine_enter(Coroutine *co);

/* Enters @co unless it is currently running (it is then left alone). */
void qemu_coroutine_enter_if_inactive(Coroutine *co);

/* Returns control to whoever entered the current coroutine. */
void coroutine_fn qemu_coroutine_yield(void);

/* The running coroutine, or NULL outside coroutine context. */
Coroutine *qemu_coroutine_self(void);
bool qemu_in_coroutine(void);

/* True while @co is on the chain of entered (not yielded) coroutines. */
bool qemu_coroutine_entered(Coroutine *co);

/*
 * Wakes @co: enters it now when called outside coroutine context, or after
 * the current coroutine yields when called from one.  Safe from any thread
 * (from another thread it is scheduled on the main loop).
 */
void aio_co_wake(Coroutine *co);

/* Used by the aio layer: enter @co at the next safe point. */
void qemu_coroutine_wake_deferred(Coroutine *co);

/* Number of coroutines currently alive (for leak tests). */
unsigned qemu_coroutine_count(void);

/*
 * CoQueue: a FIFO of coroutines waiting for a condition.
 */
typedef struct CoQueue {
    QSIMPLEQ_HEAD(, Coroutine) entries;
} CoQueue;

typedef struct CoMutex CoMutex;

void qemu_co_queue_init(CoQueue *queue);
/* Adds the current coroutine to @queue and yields; drops/retakes @lock. */
void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *lock);
/* Wakes the first waiter; returns false if there was none. */
bool qemu_co_queue_next(CoQueue *queue);
void qemu_co_queue_restart_all(CoQueue *queue);
bool qemu_co_queue_empty(CoQueue *queue);

/*
 * CoMutex: a mutex whose lock() yields instead of blocking.  Ownership is
 * handed directly to the first waiter on unlock, so waiters are served in
 * FIFO order and cannot be overtaken.
 */
struct CoMutex {
    bool locked;
    Coroutine *holder;
    CoQueue waiters;
};

void qemu_co_mutex_init(CoMutex *mutex);
void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex);
void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex);
void qemu_co_mutex_assert_locked(CoMutex *mutex);

/*
 * CoRwlock: many readers or one writer; waiters are served in arrival
 * order so that a stream of readers cannot starve a writer.
 */
typedef struct CoRwTicket CoRwTicket;
typedef struct CoRwlock {
    int readers;            /* active readers */
    bool writer;            /* a writer holds the lock */
    QSIMPLEQ_HEAD(, CoRwTicket) tickets;
} CoRwlock;

void qemu_co_rwlock_init(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock);

/* Sleeps the current coroutine for @ns nanoseconds on the main loop. */
void coroutine_fn qemu_co_sleep_ns(int64_t ns);

#endif
