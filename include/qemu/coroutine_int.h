/*
 * Coroutine internals shared by the backend and the generic code.
 */
#ifndef QEMU_COROUTINE_INT_H
#define QEMU_COROUTINE_INT_H

#include "qemu/coroutine.h"

typedef enum {
    COROUTINE_YIELD = 1,
    COROUTINE_TERMINATE = 2,
    COROUTINE_ENTER = 3,
} CoroutineAction;

struct Coroutine {
    CoroutineEntry *entry;
    void *entry_arg;
    Coroutine *caller;          /* who entered us; NULL while not running */

    /* Coroutines to enter after this one yields or terminates. */
    QSIMPLEQ_HEAD(, Coroutine) co_queue_wakeup;
    /* Link in a CoQueue or in another coroutine's co_queue_wakeup. */
    QSIMPLEQ_ENTRY(Coroutine) co_queue_next;

    /* Link in the free pool. */
    Coroutine *pool_next;

    /* Non-NULL while queued in an AioContext's scheduled list. */
    const char *scheduled;
};

/* Backend (coroutine-ucontext.c) */
Coroutine *qemu_coroutine_new(void);
void qemu_coroutine_delete(Coroutine *co);
/* The pseudo-coroutine standing for the thread's own stack. */
Coroutine *qemu_coroutine_leader(void);
CoroutineAction qemu_coroutine_switch(Coroutine *from, Coroutine *to,
                                      CoroutineAction action);

#endif
