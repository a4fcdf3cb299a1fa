/*
 * Thread pool for blocking system calls issued from coroutines.
 */
#ifndef QEMU_THREAD_POOL_H
#define QEMU_THREAD_POOL_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"

/* Runs in a worker thread; returns 0 or a negative errno. */
typedef int ThreadPoolFunc(void *opaque);

/*
 * Runs @func(@arg) in a worker thread; the calling coroutine yields until
 * it has finished and gets its return value.
 */
int coroutine_fn thread_pool_submit_co(ThreadPoolFunc *func, void *arg);

/* Number of worker threads the pool may use (default 64). */
void thread_pool_set_max_threads(int max);

#endif
