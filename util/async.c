/*
 * AioContext on top of GLib: fd handlers, bottom halves, timers and the
 * coroutine scheduling that sits on them.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/coroutine_int.h"

#include <glib-unix.h>
#include <time.h>

struct QEMUBH {
    AioContext *ctx;
    QEMUBHFunc *cb;
    void *opaque;
    bool scheduled;         /* on ctx->bh_list; protected by ctx->lock */
    bool oneshot;           /* free after running */
    QTAILQ_ENTRY(QEMUBH) next;
};

typedef struct AioHandler {
    int fd;
    IOHandler *io_read, *io_write;
    void *opaque;
    GSource *source;
} AioHandler;

struct QEMUTimer {
    AioContext *ctx;
    QEMUTimerCB *cb;
    void *opaque;
    GSource *source;
    bool pending;
};

typedef struct {
    GSource source;
    AioContext *ctx;
} BHSource;

struct AioContext {
    GMainContext *gctx;
    GSource *bh_source;

    /* Guards bh_list and the scheduled coroutine list (thread pool). */
    GMutex lock;
    QTAILQ_HEAD(, QEMUBH) bh_list;
    QSIMPLEQ_HEAD(, Coroutine) scheduled_coroutines;
    QEMUBH *co_schedule_bh;

    GHashTable *handlers;   /* fd -> AioHandler */
};

static AioContext *main_ctx;
static __thread bool in_main_thread;

int64_t qemu_clock_get_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
}

bool qemu_in_main_thread(void)
{
    return in_main_thread;
}

static gboolean bh_source_prepare(GSource *source, gint *timeout)
{
    AioContext *ctx = ((BHSource *)source)->ctx;
    bool pending;

    g_mutex_lock(&ctx->lock);
    pending = !QTAILQ_EMPTY(&ctx->bh_list);
    g_mutex_unlock(&ctx->lock);
    *timeout = pending ? 0 : -1;
    return pending;
}

static gboolean bh_source_check(GSource *source)
{
    gint timeout;

    return bh_source_prepare(source, &timeout);
}

/*
 * Runs the BHs that were scheduled when dispatch started; BHs scheduled
 * while they run wait for the next iteration, so a BH that reschedules
 * itself cannot starve fd handlers.
 */
static gboolean bh_source_dispatch(GSource *source, GSourceFunc cb,
                                   gpointer data)
{
    AioContext *ctx = ((BHSource *)source)->ctx;
    unsigned budget;
    QEMUBH *bh;

    g_mutex_lock(&ctx->lock);
    budget = 0;
    QTAILQ_FOREACH(bh, &ctx->bh_list, next) {
        budget++;
    }
    g_mutex_unlock(&ctx->lock);

    while (budget--) {
        bool oneshot;

        g_mutex_lock(&ctx->lock);
        bh = QTAILQ_FIRST(&ctx->bh_list);
        if (!bh) {
            g_mutex_unlock(&ctx->lock);
            break;
        }
        QTAILQ_REMOVE(&ctx->bh_list, bh, next);
        bh->scheduled = false;
        g_mutex_unlock(&ctx->lock);

        /* The callback may qemu_bh_delete() its own BH: read it first. */
        oneshot = bh->oneshot;
        bh->cb(bh->opaque);
        if (oneshot) {
            g_free(bh);
        }
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs bh_source_funcs = {
    .prepare = bh_source_prepare,
    .check = bh_source_check,
    .dispatch = bh_source_dispatch,
};

static void co_schedule_bh_cb(void *opaque)
{
    AioContext *ctx = opaque;
    QSIMPLEQ_HEAD(, Coroutine) list = QSIMPLEQ_HEAD_INITIALIZER(list);

    g_mutex_lock(&ctx->lock);
    while (!QSIMPLEQ_EMPTY(&ctx->scheduled_coroutines)) {
        Coroutine *co = QSIMPLEQ_FIRST(&ctx->scheduled_coroutines);

        QSIMPLEQ_REMOVE_HEAD(&ctx->scheduled_coroutines, co_queue_next);
        QSIMPLEQ_INSERT_TAIL(&list, co, co_queue_next);
    }
    g_mutex_unlock(&ctx->lock);

    while (!QSIMPLEQ_EMPTY(&list)) {
        Coroutine *co = QSIMPLEQ_FIRST(&list);

        QSIMPLEQ_REMOVE_HEAD(&list, co_queue_next);
        co->scheduled = NULL;
        qemu_coroutine_enter(co);
    }
}

static AioContext *aio_context_new(GMainContext *gctx)
{
    AioContext *ctx = g_new0(AioContext, 1);

    ctx->gctx = g_main_context_ref(gctx);
    g_mutex_init(&ctx->lock);
    QTAILQ_INIT(&ctx->bh_list);
    QSIMPLEQ_INIT(&ctx->scheduled_coroutines);
    ctx->handlers = g_hash_table_new(g_direct_hash, g_direct_equal);

    ctx->bh_source = g_source_new(&bh_source_funcs, sizeof(BHSource));
    ((BHSource *)ctx->bh_source)->ctx = ctx;
    g_source_set_can_recurse(ctx->bh_source, TRUE);
    g_source_set_name(ctx->bh_source, "aio-bh");
    g_source_attach(ctx->bh_source, gctx);

    ctx->co_schedule_bh = aio_bh_new(ctx, co_schedule_bh_cb, ctx);
    return ctx;
}

AioContext *qemu_get_aio_context(void)
{
    if (!main_ctx) {
        in_main_thread = true;
        main_ctx = aio_context_new(g_main_context_default());
    }
    return main_ctx;
}

GMainContext *aio_get_g_main_context(AioContext *ctx)
{
    return ctx->gctx;
}

static gboolean aio_fd_dispatch(gint fd, GIOCondition cond, gpointer opaque)
{
    AioHandler *h = opaque;

    if ((cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && h->io_read) {
        h->io_read(h->opaque);
        /* The handler may have removed or replaced itself. */
        return G_SOURCE_CONTINUE;
    }
    if ((cond & (G_IO_OUT | G_IO_HUP | G_IO_ERR)) && h->io_write) {
        h->io_write(h->opaque);
    }
    return G_SOURCE_CONTINUE;
}

static void aio_handler_free(AioHandler *h)
{
    g_source_destroy(h->source);
    g_source_unref(h->source);
    g_free(h);
}

void aio_set_fd_handler(AioContext *ctx, int fd, IOHandler *io_read,
                        IOHandler *io_write, void *opaque)
{
    AioHandler *h = g_hash_table_lookup(ctx->handlers, GINT_TO_POINTER(fd));
    GIOCondition cond = 0;

    if (h) {
        g_hash_table_remove(ctx->handlers, GINT_TO_POINTER(fd));
        aio_handler_free(h);
    }
    if (!io_read && !io_write) {
        return;
    }
    if (io_read) {
        cond |= G_IO_IN | G_IO_HUP | G_IO_ERR;
    }
    if (io_write) {
        cond |= G_IO_OUT | G_IO_ERR;
    }
    h = g_new0(AioHandler, 1);
    h->fd = fd;
    h->io_read = io_read;
    h->io_write = io_write;
    h->opaque = opaque;
    h->source = g_unix_fd_source_new(fd, cond);
    g_source_set_callback(h->source, (GSourceFunc)(void (*)(void))aio_fd_dispatch,
                          h, NULL);
    g_source_set_can_recurse(h->source, TRUE);
    g_source_attach(h->source, ctx->gctx);
    g_hash_table_insert(ctx->handlers, GINT_TO_POINTER(fd), h);
}

QEMUBH *aio_bh_new(AioContext *ctx, QEMUBHFunc *cb, void *opaque)
{
    QEMUBH *bh = g_new0(QEMUBH, 1);

    bh->ctx = ctx;
    bh->cb = cb;
    bh->opaque = opaque;
    return bh;
}

static void aio_notify(AioContext *ctx)
{
    if (!in_main_thread || ctx != main_ctx) {
        g_main_context_wakeup(ctx->gctx);
    }
}

void qemu_bh_schedule(QEMUBH *bh)
{
    AioContext *ctx = bh->ctx;

    g_mutex_lock(&ctx->lock);
    if (!bh->scheduled) {
        bh->scheduled = true;
        QTAILQ_INSERT_TAIL(&ctx->bh_list, bh, next);
    }
    g_mutex_unlock(&ctx->lock);
    aio_notify(ctx);
}

void qemu_bh_cancel(QEMUBH *bh)
{
    AioContext *ctx = bh->ctx;

    g_mutex_lock(&ctx->lock);
    if (bh->scheduled) {
        bh->scheduled = false;
        QTAILQ_REMOVE(&ctx->bh_list, bh, next);
    }
    g_mutex_unlock(&ctx->lock);
}

void qemu_bh_delete(QEMUBH *bh)
{
    if (bh) {
        qemu_bh_cancel(bh);
        g_free(bh);
    }
}

void aio_bh_schedule_oneshot(AioContext *ctx, QEMUBHFunc *cb, void *opaque)
{
    QEMUBH *bh = aio_bh_new(ctx, cb, opaque);

    bh->oneshot = true;
    qemu_bh_schedule(bh);
}

void aio_co_schedule(AioContext *ctx, Coroutine *co)
{
    const char *old = co->scheduled;

    if (old) {
        fprintf(stderr, "%s: Co-routine was already scheduled in '%s'\n",
                __func__, old);
        abort();
    }
    co->scheduled = __func__;
    g_mutex_lock(&ctx->lock);
    QSIMPLEQ_INSERT_TAIL(&ctx->scheduled_coroutines, co, co_queue_next);
    g_mutex_unlock(&ctx->lock);
    qemu_bh_schedule(ctx->co_schedule_bh);
}

void aio_co_wake(Coroutine *co)
{
    if (!in_main_thread) {
        aio_co_schedule(qemu_get_aio_context(), co);
    } else if (qemu_in_coroutine()) {
        qemu_coroutine_wake_deferred(co);
    } else {
        qemu_coroutine_enter(co);
    }
}

bool aio_poll(AioContext *ctx, bool blocking)
{
    return g_main_context_iteration(ctx->gctx, blocking);
}

static gboolean timer_dispatch(gpointer opaque)
{
    QEMUTimer *t = opaque;

    t->pending = false;
    g_source_set_ready_time(t->source, -1);
    t->cb(t->opaque);
    return G_SOURCE_CONTINUE;
}

static gboolean timer_source_dispatch(GSource *source, GSourceFunc cb,
                                      gpointer data)
{
    return cb(data);
}

static GSourceFuncs timer_source_funcs = {
    .dispatch = timer_source_dispatch,
};

QEMUTimer *aio_timer_new(AioContext *ctx, QEMUTimerCB *cb, void *opaque)
{
    QEMUTimer *t = g_new0(QEMUTimer, 1);

    t->ctx = ctx;
    t->cb = cb;
    t->opaque = opaque;
    t->source = g_source_new(&timer_source_funcs, sizeof(GSource));
    g_source_set_callback(t->source, timer_dispatch, t, NULL);
    g_source_set_can_recurse(t->source, TRUE);
    g_source_set_ready_time(t->source, -1);
    g_source_attach(t->source, ctx->gctx);
    return t;
}

/*
 * GLib's ready time is in microseconds of g_get_monotonic_time(), which is
 * CLOCK_MONOTONIC as well; round up so a timer never fires early.
 */
void timer_mod_ns(QEMUTimer *t, int64_t expire_ns)
{
    int64_t now_ns = qemu_clock_get_ns();
    int64_t delta_us = expire_ns > now_ns ?
                       DIV_ROUND_UP(expire_ns - now_ns, 1000) : 0;

    t->pending = true;
    g_source_set_ready_time(t->source, g_get_monotonic_time() + delta_us);
}

void timer_del(QEMUTimer *t)
{
    t->pending = false;
    g_source_set_ready_time(t->source, -1);
}

bool timer_pending(QEMUTimer *t)
{
    return t->pending;
}

void timer_free(QEMUTimer *t)
{
    if (t) {
        g_source_destroy(t->source);
        g_source_unref(t->source);
        g_free(t);
    }
}

typedef struct {
    Coroutine *co;
    QEMUTimer *timer;
} CoSleepState;

static void co_sleep_cb(void *opaque)
{
    CoSleepState *s = opaque;

    aio_co_wake(s->co);
}

void coroutine_fn qemu_co_sleep_ns(int64_t ns)
{
    CoSleepState s = { .co = qemu_coroutine_self() };

    s.timer = aio_timer_new(qemu_get_aio_context(), co_sleep_cb, &s);
    timer_mod_ns(s.timer, qemu_clock_get_ns() + ns);
    qemu_coroutine_yield();
    timer_free(s.timer);
}

void *qemu_try_memalign(size_t alignment, size_t size)
{
    void *ptr;

    if (alignment < sizeof(void *)) {
        alignment = sizeof(void *);
    }
    if (posix_memalign(&ptr, alignment, size ? size : alignment)) {
        return NULL;
    }
    return ptr;
}

void *qemu_memalign(size_t alignment, size_t size)
{
    void *p = qemu_try_memalign(alignment, size);

    if (!p) {
        g_error("qemu_memalign: out of memory allocating %zu bytes", size);
    }
    return p;
}

void qemu_vfree(void *ptr)
{
    free(ptr);
}
