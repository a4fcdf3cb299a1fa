/*
 * The "file" protocol driver: regular files and host block devices.
 *
 * Data requests go through one of three I/O engines:
 *
 *  - io_uring (the default when built with liburing): one ring per
 *    process, completions signalled on an eventfd watched by the main loop;
 *  - threads (aio=threads, and the default without liburing):
 *    preadv()/pwritev() in the thread pool;
 *  - Linux AIO (aio=native, needs cache.direct=on): one io_context per
 *    process, completions signalled the same way.
 *
 * With both asynchronous engines a request coroutine queues its operation,
 * a bottom half submits everything queued during the current loop
 * iteration in one system call, and the coroutine yields until the
 * completion handler has stored the result and woken it.  If an engine
 * cannot be set up the node silently falls back to the thread pool.
 *
 * Everything except the thread pool workers runs in the main loop thread,
 * so the engine state needs no locking.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/cutils.h"
#include "qemu/iov.h"
#include "qemu/aio.h"
#include "qemu/thread-pool.h"
#include "block/block_int.h"
#include "block/drivers.h"

#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <linux/fs.h>
#include <linux/falloc.h>

#ifdef CONFIG_LINUX_IO_URING
#include <liburing.h>
#endif
#ifdef CONFIG_LINUX_AIO
#include <libaio.h>
#endif

/* Linux 6.14 UAPI; older headers (Debian 12's) lack it. */
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

/* Largest sector/buffer alignment tried when probing O_DIRECT limits. */
#define RAW_MAX_PROBE_ALIGN 4096
/* Requests an asynchronous engine keeps queued or in flight at most. */
#define RAW_ENGINE_QUEUE_DEPTH 256
/* Chunk written at a time by preallocation=full. */
#define RAW_PREALLOC_CHUNK (1 * MiB)
/*
 * Grow-ahead: an O_DIRECT write past the end of a regular file first
 * extends the file to this much beyond the write, aligned up to
 * RAW_GROW_AHEAD_ALIGN.  QEMU's preallocate filter defaults to 128 MiB;
 * 16 MiB already keeps extending writes out of the request path, and a
 * small target (a sync=top or incremental backup) then fallocates and
 * trims at close far less that it never uses.
 */
#define RAW_GROW_AHEAD_SIZE (16 * MiB)
#define RAW_GROW_AHEAD_ALIGN (1 * MiB)

typedef enum {
    RAW_AIO_THREADS,
    RAW_AIO_NATIVE,
    RAW_AIO_IO_URING,
    RAW_AIO__MAX,
} RawAioEngine;

static const char *const raw_aio_str[] = {
    "threads", "native", "io_uring", NULL,
};

/* QEMU's OnOffAuto; locking is accepted but not implemented. */
static const char *const raw_locking_str[] = { "auto", "on", "off", NULL };

typedef struct BDRVRawState {
    int fd;
    RawAioEngine aio;
    int64_t aio_max_batch;      /* 0: the engine's own batching only */
    bool is_block_dev;
    bool direct;                /* opened with O_DIRECT */
    uint32_t req_align;         /* O_DIRECT offset/length alignment */
    uint32_t buf_align;         /* O_DIRECT memory alignment */
    /*
     * End of a regular file as our own writes and truncates left it (no
     * other writer is expected).  A write past it extends the file.
     */
    int64_t eof;
    /*
     * With grow_ahead, the end of the data: the node's length, raised by
     * every write and write-zeroes when it is submitted, so it covers the
     * requests in flight.  Everything in [data_end, eof) was fallocated
     * by grow-ahead and never written: it reads as zeroes, and close()
     * cuts it off again.
     */
    bool grow_ahead;
    int64_t data_end;
    /*
     * Held by the one extending write (or grow-ahead) in flight: the file
     * system runs them one at a time anyway, and pool threads queueing on
     * its lock only add contention.
     */
    CoMutex extend_lock;
    /* Cleared once the file system has refused the fallocate() mode. */
    bool has_write_zeroes;
    bool has_discard;
    /* Cleared once the kernel or file system has refused RWF_DONTCACHE. */
    bool has_dontcache;
} BDRVRawState;

/* ---- blocking helpers (run in the thread pool) ---- */

typedef enum {
    RAW_OP_READ,
    RAW_OP_WRITE,
    RAW_OP_FLUSH,
    RAW_OP_FALLOCATE,
    RAW_OP_TRUNCATE,
} RawOpType;

/*
 * One blocking operation.  The submitting coroutine owns the structure
 * (on its stack) and only looks at the result after the worker is done.
 */
typedef struct RawOp {
    RawOpType type;
    int fd;
    int64_t offset;
    int64_t bytes;
    struct iovec *iov;
    int niov;
    int rwf;                    /* RWF_* flags of READ/WRITE */
    int falloc_mode;            /* RAW_OP_FALLOCATE */
    PreallocMode prealloc;      /* RAW_OP_TRUNCATE */
    int64_t result;             /* bytes transferred (READ/WRITE) */
    Error *err;                 /* RAW_OP_TRUNCATE failure details */
} RawOp;

static int raw_op_rw(RawOp *op)
{
    ssize_t len;

    do {
        if (op->type == RAW_OP_READ) {
            len = preadv2(op->fd, op->iov, op->niov, op->offset, op->rwf);
        } else {
            len = pwritev2(op->fd, op->iov, op->niov, op->offset, op->rwf);
        }
    } while (len < 0 && errno == EINTR);
    if (len < 0) {
        return -errno;
    }
    op->result = len;
    return 0;
}

static int raw_op_fallocate(RawOp *op)
{
    int ret;

    do {
        ret = fallocate(op->fd, op->falloc_mode, op->offset, op->bytes);
    } while (ret < 0 && errno == EINTR);
    return ret < 0 ? -errno : 0;
}

/* Writes zeroes to [from, to) with plain writes (preallocation=full). */
static int raw_write_zeroes_range(int fd, int64_t from, int64_t to)
{
    g_autofree char *buf = g_malloc0(RAW_PREALLOC_CHUNK);

    while (from < to) {
        int64_t n = MIN(to - from, RAW_PREALLOC_CHUNK);
        ssize_t len = pwrite(fd, buf, n, from);

        if (len < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (len == 0) {
            return -ENOSPC;
        }
        from += len;
    }
    return 0;
}

/*
 * Resizes a regular file to op->offset, allocating the new area as
 * op->prealloc asks.  A failed preallocation restores the old size.
 */
static int raw_op_truncate(RawOp *op)
{
    struct stat st;
    int64_t cur;
    int ret;

    if (fstat(op->fd, &st) < 0) {
        ret = -errno;
        error_setg_errno(&op->err, -ret, "Could not stat file");
        return ret;
    }
    cur = st.st_size;

    if (op->prealloc != PREALLOC_MODE_OFF && op->offset < cur) {
        error_setg(&op->err, "Cannot use preallocation for shrinking files");
        return -ENOTSUP;
    }

    switch (op->prealloc) {
    case PREALLOC_MODE_OFF:
        if (ftruncate(op->fd, op->offset) < 0) {
            ret = -errno;
            error_setg_errno(&op->err, -ret, "Could not resize file");
            return ret;
        }
        return 0;
    case PREALLOC_MODE_FALLOC:
        ret = -posix_fallocate(op->fd, cur, op->offset - cur);
        if (ret < 0) {
            error_setg_errno(&op->err, -ret, "Could not preallocate new data");
        }
        break;
    case PREALLOC_MODE_FULL:
        ret = raw_write_zeroes_range(op->fd, cur, op->offset);
        if (ret < 0) {
            error_setg_errno(&op->err, -ret,
                             "Could not write zeros for preallocation");
        }
        break;
    default:
        error_setg(&op->err, "Unsupported preallocation mode: %s",
                   PreallocMode_str(op->prealloc));
        return -ENOTSUP;
    }

    if (ret < 0) {
        /*
         * Best effort: give the file back its old size.  If even that
         * fails, the caller still gets the original error.
         */
        int restored G_GNUC_UNUSED = ftruncate(op->fd, cur);
    }
    return ret;
}

static int raw_op_run(void *opaque)
{
    RawOp *op = opaque;

    switch (op->type) {
    case RAW_OP_READ:
    case RAW_OP_WRITE:
        return raw_op_rw(op);
    case RAW_OP_FLUSH:
        return fdatasync(op->fd) < 0 ? -errno : 0;
    case RAW_OP_FALLOCATE:
        return raw_op_fallocate(op);
    case RAW_OP_TRUNCATE:
        return raw_op_truncate(op);
    }
    g_assert_not_reached();
}

/* ---- io_uring engine ---- */

#ifdef CONFIG_LINUX_IO_URING
typedef struct LuringRequest {
    Coroutine *co;
    int ret;
    bool done;
} LuringRequest;

typedef struct LuringState {
    struct io_uring ring;
    int efd;
    QEMUBH *submit_bh;
    unsigned queued;            /* SQEs prepared but not yet submitted */
    unsigned in_flight;         /* submitted, CQE not yet reaped */
    /* Requests waiting until queued + in_flight < RAW_ENGINE_QUEUE_DEPTH. */
    CoQueue slot_waiters;
} LuringState;

static LuringState *luring_state;
static bool luring_setup_failed;

static void luring_submit(LuringState *s)
{
    int ret;

    if (!s->queued) {
        return;
    }
    do {
        ret = io_uring_submit(&s->ring);
    } while (ret == -EINTR);
    if (ret > 0) {
        /* The kernel may take fewer than offered; the rest stays queued. */
        s->queued -= MIN((unsigned)ret, s->queued);
        s->in_flight += ret;
    }
    /*
     * On failure (-EAGAIN/-EBUSY: the kernel is short of resources) the
     * SQEs stay queued: they are retried after the next completion or, if
     * nothing is in flight to complete, from the next loop iteration.
     */
    if (ret < 0 && !s->in_flight) {
        qemu_bh_schedule(s->submit_bh);
    }
}

static void luring_submit_bh(void *opaque)
{
    luring_submit(opaque);
}

static void luring_completion_cb(void *opaque)
{
    LuringState *s = opaque;
    struct io_uring_cqe *cqe;
    eventfd_t cnt;

    eventfd_read(s->efd, &cnt);
    while (io_uring_peek_cqe(&s->ring, &cqe) == 0) {
        LuringRequest *req = io_uring_cqe_get_data(cqe);

        req->ret = cqe->res;
        req->done = true;
        io_uring_cqe_seen(&s->ring, cqe);
        s->in_flight--;
        /* req lives on the woken coroutine's stack: do not touch it after. */
        aio_co_wake(req->co);
        qemu_co_queue_next(&s->slot_waiters);
    }
    if (s->queued) {
        qemu_bh_schedule(s->submit_bh);
    }
}

static LuringState *luring_get(void)
{
    LuringState *s;

    if (luring_state || luring_setup_failed) {
        return luring_state;
    }
    s = g_new0(LuringState, 1);
    if (io_uring_queue_init(RAW_ENGINE_QUEUE_DEPTH, &s->ring, 0) < 0) {
        g_free(s);
        luring_setup_failed = true;
        return NULL;
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0 || io_uring_register_eventfd(&s->ring, s->efd) < 0) {
        if (s->efd >= 0) {
            close(s->efd);
        }
        io_uring_queue_exit(&s->ring);
        g_free(s);
        luring_setup_failed = true;
        return NULL;
    }
    qemu_co_queue_init(&s->slot_waiters);
    s->submit_bh = aio_bh_new(qemu_get_aio_context(), luring_submit_bh, s);
    aio_set_fd_handler(qemu_get_aio_context(), s->efd, luring_completion_cb,
                       NULL, s);
    /* The ring lives until the process exits. */
    luring_state = s;
    return s;
}

/* One readv/writev; returns bytes transferred or a negative errno. */
static int64_t coroutine_fn luring_co_rw(BDRVRawState *bs_state,
                                         bool is_write, int64_t offset,
                                         struct iovec *iov, int niov,
                                         int rwf)
{
    LuringState *s = luring_state;
    LuringRequest req = { .co = qemu_coroutine_self() };
    struct io_uring_sqe *sqe;

    while (s->queued + s->in_flight >= RAW_ENGINE_QUEUE_DEPTH) {
        qemu_co_queue_wait(&s->slot_waiters, NULL);
    }
    sqe = io_uring_get_sqe(&s->ring);
    /* queued + in_flight bounds the SQ use, so a slot is always free. */
    assert(sqe);
    if (is_write) {
        io_uring_prep_writev(sqe, bs_state->fd, iov, niov, offset);
    } else {
        io_uring_prep_readv(sqe, bs_state->fd, iov, niov, offset);
    }
    sqe->rw_flags = rwf;
    io_uring_sqe_set_data(sqe, &req);
    /*
     * A buffered write is done inline by io_uring_submit() when it does not
     * block: the main loop would copy the data into the page cache and run
     * the filesystem's write path itself, one request after the other.
     * Punting it to the kernel's workers lets writes proceed in parallel
     * and keeps the loop free for new requests.  Buffered reads mostly
     * hit the page cache and stay inline; O_DIRECT I/O is asynchronous
     * anyway.
     */
    if (is_write && !bs_state->direct) {
        io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
    }
    s->queued++;
    if (bs_state->aio_max_batch && s->queued >= bs_state->aio_max_batch) {
        luring_submit(s);
    } else {
        qemu_bh_schedule(s->submit_bh);
    }
    while (!req.done) {
        qemu_coroutine_yield();
    }
    return req.ret;
}
#endif

/* ---- Linux AIO engine ---- */

#ifdef CONFIG_LINUX_AIO
typedef struct LaioRequest {
    struct iocb iocb;
    Coroutine *co;
    int64_t ret;
    bool done;
    QSIMPLEQ_ENTRY(LaioRequest) next;
} LaioRequest;

typedef struct LaioState {
    io_context_t ctx;
    int efd;
    QEMUBH *submit_bh;
    QSIMPLEQ_HEAD(, LaioRequest) queue;   /* not yet submitted */
    unsigned queued;
    unsigned in_flight;
    CoQueue slot_waiters;
} LaioState;

static LaioState *laio_state;
static bool laio_setup_failed;

static void laio_complete(LaioState *s, LaioRequest *req, int64_t ret)
{
    req->ret = ret;
    req->done = true;
    aio_co_wake(req->co);
    qemu_co_queue_next(&s->slot_waiters);
}

static void laio_submit(LaioState *s)
{
    struct iocb *iocbs[RAW_ENGINE_QUEUE_DEPTH];

    while (s->queued) {
        LaioRequest *req;
        int n = 0;
        int ret;

        QSIMPLEQ_FOREACH(req, &s->queue, next) {
            iocbs[n++] = &req->iocb;
        }
        ret = io_submit(s->ctx, n, iocbs);
        if ((ret == -EAGAIN || ret == -EINTR) && s->in_flight) {
            /* Retried from the completion handler. */
            return;
        }
        if (ret < 0) {
            /* The first iocb was refused: fail it, try the rest. */
            req = QSIMPLEQ_FIRST(&s->queue);
            QSIMPLEQ_REMOVE_HEAD(&s->queue, next);
            s->queued--;
            laio_complete(s, req, ret);
            continue;
        }
        while (ret--) {
            QSIMPLEQ_REMOVE_HEAD(&s->queue, next);
            s->queued--;
            s->in_flight++;
        }
    }
}

static void laio_submit_bh(void *opaque)
{
    laio_submit(opaque);
}

static void laio_completion_cb(void *opaque)
{
    LaioState *s = opaque;
    struct io_event events[RAW_ENGINE_QUEUE_DEPTH];
    struct timespec zero = { 0, 0 };
    eventfd_t cnt;
    int n;

    eventfd_read(s->efd, &cnt);
    do {
        n = io_getevents(s->ctx, 0, RAW_ENGINE_QUEUE_DEPTH, events, &zero);
        for (int i = 0; i < n; i++) {
            LaioRequest *req = container_of(events[i].obj, LaioRequest, iocb);

            s->in_flight--;
            /* res carries a negative errno cast to unsigned on failure. */
            laio_complete(s, req, (long)events[i].res);
        }
    } while (n == RAW_ENGINE_QUEUE_DEPTH);
    if (s->queued) {
        qemu_bh_schedule(s->submit_bh);
    }
}

static LaioState *laio_get(void)
{
    LaioState *s;

    if (laio_state || laio_setup_failed) {
        return laio_state;
    }
    s = g_new0(LaioState, 1);
    if (io_setup(RAW_ENGINE_QUEUE_DEPTH, &s->ctx) < 0) {
        g_free(s);
        laio_setup_failed = true;
        return NULL;
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd < 0) {
        io_destroy(s->ctx);
        g_free(s);
        laio_setup_failed = true;
        return NULL;
    }
    QSIMPLEQ_INIT(&s->queue);
    qemu_co_queue_init(&s->slot_waiters);
    s->submit_bh = aio_bh_new(qemu_get_aio_context(), laio_submit_bh, s);
    aio_set_fd_handler(qemu_get_aio_context(), s->efd, laio_completion_cb,
                       NULL, s);
    /* The context lives until the process exits. */
    laio_state = s;
    return s;
}

static int64_t coroutine_fn laio_co_rw(BDRVRawState *bs_state, bool is_write,
                                       int64_t offset, struct iovec *iov,
                                       int niov)
{
    LaioState *s = laio_state;
    LaioRequest req = { .co = qemu_coroutine_self() };

    while (s->queued + s->in_flight >= RAW_ENGINE_QUEUE_DEPTH) {
        qemu_co_queue_wait(&s->slot_waiters, NULL);
    }
    if (is_write) {
        io_prep_pwritev(&req.iocb, bs_state->fd, iov, niov, offset);
    } else {
        io_prep_preadv(&req.iocb, bs_state->fd, iov, niov, offset);
    }
    io_set_eventfd(&req.iocb, s->efd);
    QSIMPLEQ_INSERT_TAIL(&s->queue, &req, next);
    s->queued++;
    if (bs_state->aio_max_batch && s->queued >= bs_state->aio_max_batch) {
        laio_submit(s);
    } else {
        qemu_bh_schedule(s->submit_bh);
    }
    while (!req.done) {
        qemu_coroutine_yield();
    }
    return req.ret;
}
#endif

/* ---- request path ---- */

static int coroutine_fn raw_co_fallocate(BDRVRawState *s, int mode,
                                         int64_t offset, int64_t bytes)
{
    RawOp op = {
        .type = RAW_OP_FALLOCATE,
        .fd = s->fd,
        .falloc_mode = mode,
        .offset = offset,
        .bytes = bytes,
    };

    return thread_pool_submit_co(raw_op_run, &op);
}

static bool raw_errno_is_unsupported(int ret)
{
    return ret == -EOPNOTSUPP || ret == -ENOTSUP || ret == -ENOSYS ||
           ret == -EINVAL || ret == -ENOTTY;
}

static int64_t coroutine_fn raw_thread_rw(BDRVRawState *s, bool is_write,
                                          int64_t offset, struct iovec *iov,
                                          int niov, int rwf)
{
    RawOp op = {
        .type = is_write ? RAW_OP_WRITE : RAW_OP_READ,
        .fd = s->fd,
        .offset = offset,
        .iov = iov,
        .niov = niov,
        .rwf = rwf,
    };
    int ret = thread_pool_submit_co(raw_op_run, &op);

    return ret < 0 ? ret : op.result;
}

/*
 * Makes room for a write ending at @end.  An O_DIRECT write that extends
 * a file is slow on the file systems we care about: the size update
 * makes ext4 run it synchronously and under the exclusive inode lock, so
 * extending writes queue one behind the other.  A growing qcow2 image
 * (a backup or fleecing target) does one for every new cluster.  Instead
 * the file is extended with fallocate() in large steps, and the writes
 * land inside it, in parallel, through the engine.  If fallocate() fails
 * (ENOSPC with less room than a step, say) the write extends the file
 * itself; if the file system does not support it, grow-ahead stops.
 */
static void coroutine_fn raw_grow_for_write(BDRVRawState *s, int64_t end)
{
    s->data_end = MAX(s->data_end, end);
    if (end <= s->eof) {
        return;
    }
    qemu_co_mutex_lock(&s->extend_lock);
    if (end > s->eof && s->grow_ahead) {
        int64_t new_eof = QEMU_ALIGN_UP(end + RAW_GROW_AHEAD_SIZE,
                                        RAW_GROW_AHEAD_ALIGN);
        int ret = raw_co_fallocate(s, 0, s->eof, new_eof - s->eof);

        if (ret == 0) {
            s->eof = new_eof;
        } else if (raw_errno_is_unsupported(ret)) {
            s->grow_ahead = false;
        }
    }
    qemu_co_mutex_unlock(&s->extend_lock);
}

/*
 * One vectored transfer through the node's engine.  @rwf (RWF_* flags)
 * is only ever set without O_DIRECT, so never for Linux AIO.
 */
static int64_t coroutine_fn raw_engine_rw(BDRVRawState *s, bool is_write,
                                          int64_t offset, QEMUIOVector *qiov,
                                          int rwf)
{
    if (is_write && s->grow_ahead &&
        offset + (int64_t)qiov->size > s->data_end) {
        raw_grow_for_write(s, offset + (int64_t)qiov->size);
    }
    switch (s->aio) {
#ifdef CONFIG_LINUX_IO_URING
    case RAW_AIO_IO_URING:
        return luring_co_rw(s, is_write, offset, qiov->iov, qiov->niov,
                            rwf);
#endif
#ifdef CONFIG_LINUX_AIO
    case RAW_AIO_NATIVE:
        assert(!rwf);
        /*
         * io_submit() of an O_DIRECT write that extends a regular file
         * does the whole write inside the system call (the file system
         * must update the size), stalling the main loop for milliseconds;
         * a growing qcow2 image does this for every new cluster.  Such
         * writes go to the thread pool instead.
         */
        if (is_write && !s->is_block_dev &&
            offset + (int64_t)qiov->size > s->eof) {
            int64_t ret;

            qemu_co_mutex_lock(&s->extend_lock);
            if (offset + (int64_t)qiov->size <= s->eof) {
                /* An extending write before us made this one in place. */
                qemu_co_mutex_unlock(&s->extend_lock);
                return laio_co_rw(s, is_write, offset, qiov->iov,
                                  qiov->niov);
            }
            ret = raw_thread_rw(s, is_write, offset, qiov->iov, qiov->niov,
                                0);
            if (ret > 0) {
                s->eof = MAX(s->eof, offset + ret);
            }
            qemu_co_mutex_unlock(&s->extend_lock);
            return ret;
        }
        return laio_co_rw(s, is_write, offset, qiov->iov, qiov->niov);
#endif
    default:
        return raw_thread_rw(s, is_write, offset, qiov->iov, qiov->niov, rwf);
    }
}

/*
 * Transfers all of @qiov, resubmitting the rest after a short transfer.
 * A read that hits end of file yields zeroes for the part beyond it; with
 * O_DIRECT the tail after a short read cannot be re-read at an unaligned
 * offset, so any short read counts as end of file there.  A kernel or
 * file system without RWF_DONTCACHE refuses it before transferring
 * anything: the request goes again without it.
 */
static int coroutine_fn raw_rw_all(BDRVRawState *s, bool is_write,
                                   int64_t offset, QEMUIOVector *qiov,
                                   int rwf)
{
    size_t done = 0;

    while (done < qiov->size) {
        QEMUIOVector rest;
        int64_t ret;

        if (done) {
            qemu_iovec_init_slice(&rest, qiov, done, qiov->size - done);
            ret = raw_engine_rw(s, is_write, offset + done, &rest, rwf);
            qemu_iovec_destroy(&rest);
        } else {
            ret = raw_engine_rw(s, is_write, offset, qiov, rwf);
        }
        if (ret == -EINTR || ret == -EAGAIN) {
            continue;
        }
        if (ret == -EOPNOTSUPP && (rwf & RWF_DONTCACHE)) {
            s->has_dontcache = false;
            rwf &= ~RWF_DONTCACHE;
            continue;
        }
        if (ret < 0) {
            return ret;
        }
        if (ret == 0 && is_write) {
            return -ENOSPC;
        }
        if (!is_write &&
            (ret == 0 || (s->direct && done + ret < qiov->size))) {
            qemu_iovec_memset(qiov, done + ret, 0, qiov->size - done - ret);
            return 0;
        }
        done += ret;
    }
    return 0;
}

/* True if @qiov can go to the kernel as it is. */
static bool raw_qiov_usable(BDRVRawState *s, QEMUIOVector *qiov)
{
    if (qiov->niov > IOV_MAX) {
        return false;
    }
    if (!s->direct) {
        return true;
    }
    for (int i = 0; i < qiov->niov; i++) {
        if (!QEMU_PTR_IS_ALIGNED(qiov->iov[i].iov_base, s->buf_align) ||
            !QEMU_IS_ALIGNED(qiov->iov[i].iov_len, s->req_align)) {
            return false;
        }
    }
    return true;
}

static int coroutine_fn raw_co_prw(BlockDriverState *bs, bool is_write,
                                   int64_t offset, int64_t bytes,
                                   QEMUIOVector *qiov, BdrvRequestFlags flags)
{
    BDRVRawState *s = bs->opaque;
    QEMUIOVector bounce_qiov;
    void *bounce;
    int rwf = 0;
    int ret;

    assert(qiov->size == (size_t)bytes);
    /* Only set without O_DIRECT: see raw_open(). */
    if ((flags & BDRV_REQ_DONTCACHE) && s->has_dontcache) {
        rwf = RWF_DONTCACHE;
    }
    if (raw_qiov_usable(s, qiov)) {
        return raw_rw_all(s, is_write, offset, qiov, rwf);
    }

    /* Too many or misaligned buffers: go through one aligned buffer. */
    bounce = qemu_try_memalign(MAX(s->buf_align, 1), bytes);
    if (!bounce) {
        return -ENOMEM;
    }
    qemu_iovec_init_buf(&bounce_qiov, bounce, bytes);
    if (is_write) {
        qemu_iovec_to_buf(qiov, 0, bounce, bytes);
    }
    ret = raw_rw_all(s, is_write, offset, &bounce_qiov, rwf);
    if (!is_write && ret == 0) {
        qemu_iovec_from_buf(qiov, 0, bounce, bytes);
    }
    qemu_vfree(bounce);
    return ret;
}

static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      BdrvRequestFlags flags)
{
    return raw_co_prw(bs, false, offset, bytes, qiov, 0);
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    return raw_co_prw(bs, true, offset, bytes, qiov, flags);
}

static int coroutine_fn raw_co_flush_to_disk(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    RawOp op = { .type = RAW_OP_FLUSH, .fd = s->fd };

    if (bs->open_flags & BDRV_O_NO_FLUSH) {
        return 0;
    }
    return thread_pool_submit_co(raw_op_run, &op);
}

static int64_t raw_getlength(BlockDriverState *bs);

/* Write-zeroes of a regular file made [.., end) zeroes and part of it. */
static void raw_note_zeroed_end(BDRVRawState *s, int64_t end)
{
    if (!s->is_block_dev) {
        s->eof = MAX(s->eof, end);
        s->data_end = MAX(s->data_end, end);
    }
}

static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVRawState *s = bs->opaque;
    int64_t len;
    int ret;

    len = raw_getlength(bs);
    if (len < 0) {
        return len;
    }

    /*
     * Punching a hole never extends the file, so it only serves ranges
     * inside it; a hole reads back as zeroes.
     */
    if ((flags & BDRV_REQ_MAY_UNMAP) && s->has_discard &&
        offset + bytes <= len) {
        ret = raw_co_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               offset, bytes);
        if (ret == 0 || !raw_errno_is_unsupported(ret)) {
            return ret;
        }
        s->has_discard = false;
    }

    if (s->has_write_zeroes) {
        ret = raw_co_fallocate(s, FALLOC_FL_ZERO_RANGE, offset, bytes);
        if (ret == 0) {
            raw_note_zeroed_end(s, offset + bytes);
        }
        if (ret == 0 || !raw_errno_is_unsupported(ret)) {
            return ret;
        }
        s->has_write_zeroes = false;
    }

    /* Growing a regular file reads back as zeroes as well. */
    if (!s->is_block_dev && offset >= len) {
        RawOp op = {
            .type = RAW_OP_TRUNCATE,
            .fd = s->fd,
            .offset = offset + bytes,
            .prealloc = PREALLOC_MODE_OFF,
        };

        if (offset + bytes <= s->eof) {
            /* Inside what grow-ahead fallocated: zeroes already. */
            raw_note_zeroed_end(s, offset + bytes);
            return 0;
        }
        ret = thread_pool_submit_co(raw_op_run, &op);
        error_free(op.err);
        if (ret == 0) {
            raw_note_zeroed_end(s, offset + bytes);
        }
        return ret;
    }
    return -ENOTSUP;
}

static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (!s->has_discard) {
        return -ENOTSUP;
    }
    ret = raw_co_fallocate(s, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, bytes);
    if (raw_errno_is_unsupported(ret)) {
        s->has_discard = false;
        return -ENOTSUP;
    }
    return ret;
}

/*
 * Data/hole information from SEEK_DATA/SEEK_HOLE.  Boundaries are rounded
 * to the request alignment; a partly allocated aligned block is data.
 */
static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawState *s = bs->opaque;
    uint32_t align = MAX(bs->bl.request_alignment, 1);
    int ret = BDRV_BLOCK_DATA;
    off_t data, hole;

    *map = offset;
    *file = bs;
    *pnum = bytes;
    if (!want_zero) {
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }

    data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) {
        /* No data at or after offset: a hole up to end of file. */
        ret = BDRV_BLOCK_ZERO;
    } else if (data < 0) {
        /* The file system cannot tell: everything is data. */
        ret = BDRV_BLOCK_DATA;
    } else if (data > offset) {
        int64_t n = QEMU_ALIGN_DOWN(data - offset, align);

        if (n > 0) {
            *pnum = MIN(bytes, n);
            ret = BDRV_BLOCK_ZERO;
        } else {
            *pnum = MIN(bytes, align);
        }
    } else {
        hole = lseek(s->fd, offset, SEEK_HOLE);
        if (hole > offset) {
            *pnum = MIN(bytes, QEMU_ALIGN_UP(hole - offset, align));
        }
    }
    return ret | BDRV_BLOCK_OFFSET_VALID;
}

static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (s->is_block_dev) {
        uint64_t size;

        if (ioctl(s->fd, BLKGETSIZE64, &size) < 0) {
            return -errno;
        }
        return size;
    }
    if (s->grow_ahead) {
        return s->data_end;
    }
    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return st.st_size;
}

static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    RawOp op = {
        .type = RAW_OP_TRUNCATE,
        .fd = s->fd,
        .offset = offset,
        .prealloc = prealloc,
    };
    int64_t len;
    int ret;

    if (!s->is_block_dev) {
        ret = thread_pool_submit_co(raw_op_run, &op);
        if (ret < 0) {
            error_propagate(errp, op.err);
        } else {
            s->eof = s->data_end = offset;
        }
        return ret;
    }

    /* A device cannot change its size; accept what it already satisfies. */
    if (prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Preallocation mode '%s' unsupported for this "
                   "non-regular file", PreallocMode_str(prealloc));
        return -ENOTSUP;
    }
    len = raw_getlength(bs);
    if (len < 0) {
        error_setg_errno(errp, -len, "Failed to get device size");
        return len;
    }
    if (offset > len) {
        error_setg(errp, "Cannot grow device files");
        return -EINVAL;
    }
    if (exact && offset != len) {
        error_setg(errp, "Cannot resize device files");
        return -ENOTSUP;
    }
    return 0;
}

/* ---- open/close ---- */

/*
 * Finds the smallest request size and buffer alignment O_DIRECT reads
 * accept, falling back to 4096 for whatever cannot be determined.
 */
static void raw_probe_alignment(BDRVRawState *s)
{
    char *buf = qemu_memalign(RAW_MAX_PROBE_ALIGN, 2 * RAW_MAX_PROBE_ALIGN);
    int sector_size;

    s->req_align = 0;
    s->buf_align = 0;
    if (s->is_block_dev && ioctl(s->fd, BLKSSZGET, &sector_size) == 0 &&
        sector_size > 0) {
        s->req_align = sector_size;
    }
    for (uint32_t align = 512; !s->req_align && align <= RAW_MAX_PROBE_ALIGN;
         align <<= 1) {
        if (pread(s->fd, buf, align, 0) >= 0) {
            s->req_align = align;
        }
    }
    for (uint32_t align = 512; !s->buf_align && align <= RAW_MAX_PROBE_ALIGN;
         align <<= 1) {
        if (pread(s->fd, buf + align, RAW_MAX_PROBE_ALIGN, 0) >= 0) {
            s->buf_align = align;
        }
    }
    qemu_vfree(buf);
    if (!s->req_align) {
        s->req_align = RAW_MAX_PROBE_ALIGN;
    }
    if (!s->buf_align) {
        s->buf_align = RAW_MAX_PROBE_ALIGN;
    }
}

/*
 * QEMU defaults to the thread pool.  We default to io_uring where it is
 * built: each thread-pool request costs a futex wake-up on submission and
 * another on completion, which bounds small random I/O and copy-before-write
 * on the main loop's CPU.  An explicit aio=threads still gets the pool.
 */
#ifdef CONFIG_LINUX_IO_URING
#define RAW_AIO_DEFAULT RAW_AIO_IO_URING
#else
#define RAW_AIO_DEFAULT RAW_AIO_THREADS
#endif

static bool raw_read_aio_option(QDict *options, int flags,
                                RawAioEngine *aio, Error **errp)
{
    int def = RAW_AIO_DEFAULT;
    int value;

    if (flags & BDRV_O_THREAD_POOL) {
        def = RAW_AIO_THREADS;
    } else if (flags & BDRV_O_IO_URING) {
        def = RAW_AIO_IO_URING;
    } else if (flags & BDRV_O_NATIVE_AIO) {
        def = RAW_AIO_NATIVE;
    }
    if (!qdict_get_enum_opt(options, "aio", raw_aio_str, def, &value, errp)) {
        return false;
    }
    *aio = value;

    if (*aio == RAW_AIO_NATIVE && !(flags & BDRV_O_NOCACHE)) {
        error_setg(errp, "aio=native was specified, but it requires "
                   "cache.direct=on, which was not specified.");
        return false;
    }
#ifndef CONFIG_LINUX_AIO
    if (*aio == RAW_AIO_NATIVE) {
        error_setg(errp, "aio=native was specified, but is not supported "
                   "in this build.");
        return false;
    }
#endif
#ifndef CONFIG_LINUX_IO_URING
    if (*aio == RAW_AIO_IO_URING) {
        error_setg(errp, "aio=io_uring was specified, but is not supported "
                   "in this build.");
        return false;
    }
#endif
    return true;
}

/* Falls back to the thread pool when the engine cannot be set up. */
static void raw_setup_engine(BDRVRawState *s)
{
#ifdef CONFIG_LINUX_IO_URING
    if (s->aio == RAW_AIO_IO_URING && !luring_get()) {
        s->aio = RAW_AIO_THREADS;
    }
#endif
#ifdef CONFIG_LINUX_AIO
    if (s->aio == RAW_AIO_NATIVE && !laio_get()) {
        s->aio = RAW_AIO_THREADS;
    }
#endif
}

static int raw_open(BlockDriverState *bs, QDict *options, int flags,
                    Error **errp)
{
    BDRVRawState *s = bs->opaque;
    const char *filename;
    int64_t max_batch;
    int locking;
    int open_flags;
    struct stat st;

    filename = qdict_get_try_str(options, "filename");
    if (!filename) {
        error_setg(errp, "The 'file' block driver requires a file name");
        return -EINVAL;
    }
    if (!raw_read_aio_option(options, flags, &s->aio, errp) ||
        !qdict_get_enum_opt(options, "locking", raw_locking_str, 0, &locking,
                            errp) ||
        !qdict_get_int_opt(options, "aio-max-batch", 0, &max_batch, errp)) {
        return -EINVAL;
    }
    if (max_batch < 0) {
        error_setg(errp, "aio-max-batch must be a non-negative integer");
        return -EINVAL;
    }
    s->aio_max_batch = max_batch;

    open_flags = O_CLOEXEC | ((flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY);
    if (flags & BDRV_O_NOCACHE) {
        open_flags |= O_DIRECT;
    }
    do {
        s->fd = open(filename, open_flags);
    } while (s->fd < 0 && errno == EINTR);
    if (s->fd < 0) {
        int ret = -errno;

        error_setg_errno(errp, -ret, "Could not open '%s'", filename);
        return ret;
    }
    if (fstat(s->fd, &st) < 0) {
        int ret = -errno;

        error_setg_errno(errp, -ret, "Could not stat '%s'", filename);
        close(s->fd);
        return ret;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        error_setg(errp, "'file' driver requires '%s' to be a regular file "
                   "or a block device", filename);
        close(s->fd);
        return -EINVAL;
    }
    s->eof = s->data_end = st.st_size;
    qemu_co_mutex_init(&s->extend_lock);

    s->is_block_dev = S_ISBLK(st.st_mode);
    s->direct = flags & BDRV_O_NOCACHE;
    /* Buffered extending writes are cheap: only O_DIRECT grows ahead. */
    s->grow_ahead = s->direct && !s->is_block_dev && (flags & BDRV_O_RDWR);
    s->has_write_zeroes = true;
    s->has_discard = true;
    s->has_dontcache = true;
    if (s->direct) {
        raw_probe_alignment(s);
    }
    raw_setup_engine(s);

    bs->supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK;
    /* O_DIRECT bypasses the page cache already. */
    if (!s->direct) {
        bs->supported_write_flags = BDRV_REQ_DONTCACHE;
    }
    if (!bs->filename[0]) {
        pstrcpy(bs->filename, sizeof(bs->filename), filename);
    }
    return 0;
}

static void raw_close(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    if (s->fd >= 0) {
        /*
         * Give back what grow-ahead fallocated and nothing used.  If that
         * fails the file keeps a tail of zeroes, which no format minds.
         */
        if (s->grow_ahead && s->eof > s->data_end &&
            ftruncate(s->fd, s->data_end) < 0) {
            warn_report("Could not cut '%s' back to %" PRId64 " bytes: %s",
                        bs->filename, s->data_end, strerror(errno));
        }
        close(s->fd);
        s->fd = -1;
    }
}

static void raw_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    size_t page = sysconf(_SC_PAGESIZE);

    bs->bl.request_alignment = s->direct ? s->req_align : 1;
    bs->bl.min_mem_alignment = s->direct ? s->buf_align : 1;
    bs->bl.opt_mem_alignment = MAX(bs->bl.min_mem_alignment, page);
    bs->bl.max_iov = IOV_MAX;
    bs->bl.max_transfer = QEMU_ALIGN_DOWN(BDRV_REQUEST_MAX_BYTES,
                                          bs->bl.request_alignment);
}

static void raw_parse_filename(const char *filename, QDict *options,
                               Error **errp)
{
    strstart(filename, "file:", &filename);
    qdict_put_str(options, "filename", filename);
}

/* ---- image creation ---- */

/* Marks the new file no-copy-on-write (btrfs); other file systems ignore it. */
static void raw_set_nocow(int fd)
{
    int attr;

    if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
        attr |= FS_NOCOW_FL;
        ioctl(fd, FS_IOC_SETFLAGS, &attr);
    }
}

static int coroutine_fn raw_co_create_opts(BlockDriver *drv,
                                           const char *filename, QDict *opts,
                                           Error **errp)
{
    RawOp op = { .type = RAW_OP_TRUNCATE };
    uint64_t size;
    int prealloc;
    bool nocow;
    int ret;

    strstart(filename, "file:", &filename);
    if (!qdict_get_size_opt(opts, "size", 0, &size, errp) ||
        !qdict_get_enum_opt(opts, "preallocation",
                            PreallocMode_lookup.array,
                            PREALLOC_MODE_OFF, &prealloc, errp) ||
        !qdict_get_bool_opt(opts, "nocow", false, &nocow, errp)) {
        return -EINVAL;
    }
    if (prealloc != PREALLOC_MODE_OFF && prealloc != PREALLOC_MODE_FALLOC &&
        prealloc != PREALLOC_MODE_FULL) {
        error_setg(errp, "Unsupported preallocation mode: %s",
                   PreallocMode_str(prealloc));
        return -ENOTSUP;
    }
    if (size > INT64_MAX) {
        error_setg(errp, "Image size must be less than 8 EiB!");
        return -EINVAL;
    }

    op.fd = open(filename, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (op.fd < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not create '%s'", filename);
        return ret;
    }
    if (nocow) {
        raw_set_nocow(op.fd);
    }

    /* Start from an empty file so that preallocation covers everything. */
    if (ftruncate(op.fd, 0) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not clear '%s'", filename);
        close(op.fd);
        return ret;
    }
    op.offset = size;
    op.prealloc = prealloc;
    ret = thread_pool_submit_co(raw_op_run, &op);
    if (ret < 0) {
        error_propagate(errp, op.err);
        close(op.fd);
        return ret;
    }
    if (close(op.fd) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not close '%s'", filename);
        return ret;
    }
    return 0;
}

static const char *const raw_runtime_opts[] = {
    "filename",
    "aio",
    "aio-max-batch",
    "locking",
    "pr-manager",
    "drop-cache",
    "x-check-cache-dropped",
    NULL,
};

static const CreateOptDesc raw_create_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "nocow", CREATE_OPT_BOOL, "Turn off copy-on-write (valid only on "
      "btrfs)", NULL },
    { "preallocation", CREATE_OPT_STRING, "Preallocation mode (allowed "
      "values: off, falloc, full)", NULL },
    { NULL }
};

static BlockDriver bdrv_file = {
    .format_name = "file",
    .protocol_name = "file",
    .instance_size = sizeof(BDRVRawState),
    .runtime_opts = raw_runtime_opts,
    .create_opts = raw_create_opts,
    .bdrv_parse_filename = raw_parse_filename,
    .bdrv_open = raw_open,
    .bdrv_close = raw_close,
    .bdrv_refresh_limits = raw_refresh_limits,
    .bdrv_co_preadv = raw_co_preadv,
    .bdrv_co_pwritev = raw_co_pwritev,
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .bdrv_co_pdiscard = raw_co_pdiscard,
    .bdrv_co_flush_to_disk = raw_co_flush_to_disk,
    .bdrv_co_block_status = raw_co_block_status,
    .bdrv_co_truncate = raw_co_truncate,
    .bdrv_getlength = raw_getlength,
    .bdrv_get_allocated_file_size = raw_get_allocated_file_size,
    .bdrv_co_create_opts = raw_co_create_opts,
};

void bdrv_file_init(void)
{
    bdrv_register(&bdrv_file);
}
