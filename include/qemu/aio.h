/*
 * AioContext: qblock's event loop, built on a GLib GMainContext.
 *
 * It runs fd handlers, bottom halves (BHs) and timers.  Everything is
 * dispatched in the thread that owns the loop (the main thread); only
 * qemu_bh_schedule(), aio_bh_schedule_oneshot(), aio_co_schedule() and
 * aio_co_wake() may be called from other threads (the thread pool).
 *
 * Nested polling is allowed: code running in a BH or fd handler may call
 * aio_poll() (for instance through a synchronous bdrv_pread()), and every
 * source, including the one being dispatched, can run again inside it.
 */
#ifndef QEMU_AIO_H
#define QEMU_AIO_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"

typedef struct AioContext AioContext;
typedef struct QEMUBH QEMUBH;
typedef struct QEMUTimer QEMUTimer;

typedef void IOHandler(void *opaque);
typedef void QEMUBHFunc(void *opaque);
typedef void QEMUTimerCB(void *opaque);

/* The main loop's context (created on first use, owned by that thread). */
AioContext *qemu_get_aio_context(void);
GMainContext *aio_get_g_main_context(AioContext *ctx);
bool qemu_in_main_thread(void);

/*
 * Registers read/write handlers for @fd; passing NULL for both removes
 * the registration.  Handlers are level-triggered.
 */
void aio_set_fd_handler(AioContext *ctx, int fd, IOHandler *io_read,
                        IOHandler *io_write, void *opaque);

QEMUBH *aio_bh_new(AioContext *ctx, QEMUBHFunc *cb, void *opaque);
void qemu_bh_schedule(QEMUBH *bh);
void qemu_bh_cancel(QEMUBH *bh);
void qemu_bh_delete(QEMUBH *bh);
/* Runs @cb(@opaque) once from the loop, then forgets it. */
void aio_bh_schedule_oneshot(AioContext *ctx, QEMUBHFunc *cb, void *opaque);

QEMUTimer *aio_timer_new(AioContext *ctx, QEMUTimerCB *cb, void *opaque);
/* Arms the timer for the absolute time @expire_ns (qemu_clock_get_ns()). */
void timer_mod_ns(QEMUTimer *timer, int64_t expire_ns);
void timer_del(QEMUTimer *timer);
void timer_free(QEMUTimer *timer);
bool timer_pending(QEMUTimer *timer);

/*
 * Runs one iteration of the loop; with @blocking, waits for an event.
 * Returns true if progress was made.
 */
bool aio_poll(AioContext *ctx, bool blocking);

/* Enters @co from the loop of @ctx at the next iteration (thread-safe). */
void aio_co_schedule(AioContext *ctx, Coroutine *co);

/* Polls the main loop until @cond is false.  Not for coroutine context. */
#define AIO_WAIT_WHILE(cond) do {                                       \
    assert(!qemu_in_coroutine());                                       \
    while (cond) {                                                      \
        aio_poll(qemu_get_aio_context(), true);                         \
    }                                                                   \
} while (0)

#endif
