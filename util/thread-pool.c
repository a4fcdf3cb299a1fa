/*
 * Thread pool: blocking work runs on GLib worker threads; completion
 * re-enters the waiting coroutine in the main loop via aio_co_schedule().
 */
#include "qemu/osdep.h"
#include "qemu/thread-pool.h"
#include "qemu/aio.h"
#include "util-trace.h"

typedef struct {
    ThreadPoolFunc *func;
    void *arg;
    int ret;
    Coroutine *co;
} ThreadPoolRequest;

static GThreadPool *pool;
static int pool_max_threads = 64;

static void thread_pool_worker(gpointer data, gpointer user_data)
{
    ThreadPoolRequest *req = data;

    req->ret = req->func(req->arg);
    trace_thread_pool_complete(req, req->arg, req->ret);
    /* After this the request may be freed by the woken coroutine. */
    aio_co_schedule(qemu_get_aio_context(), req->co);
}

void thread_pool_set_max_threads(int max)
{
    pool_max_threads = max;
    if (pool) {
        g_thread_pool_set_max_threads(pool, max, NULL);
    }
}

int coroutine_fn thread_pool_submit_co(ThreadPoolFunc *func, void *arg)
{
    ThreadPoolRequest req = {
        .func = func,
        .arg = arg,
        .co = qemu_coroutine_self(),
    };

    assert(req.co);
    /* Make sure the main context exists before a worker can use it. */
    qemu_get_aio_context();
    if (!pool) {
        pool = g_thread_pool_new(thread_pool_worker, NULL, pool_max_threads,
                                 FALSE, NULL);
    }
    trace_thread_pool_submit(&req, func, arg);
    g_thread_pool_push(pool, &req, NULL);
    qemu_coroutine_yield();
    return req.ret;
}
