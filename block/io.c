/*
 * The request path: request checks, alignment (read-modify-write), tracked
 * requests and serialisation, before-write notifiers, zero detection,
 * write-zeroes fallbacks, splitting, flush, drain, block status and the
 * synchronous wrappers.
 *
 * Every public request function counts itself in bs->in_flight from start
 * to finish, so bdrv_drain() can wait for quiescence.  Tracked requests
 * live on the requesting coroutine's stack and are listed in
 * bs->tracked_requests while the driver works on them.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "qemu/cutils.h"
#include "block-trace.h"

/* Largest bounce buffer used to emulate write-zeroes. */
#define MAX_ZERO_BOUNCE (1 * MiB)

void bdrv_inc_in_flight(BlockDriverState *bs)
{
    bs->in_flight++;
}

void bdrv_dec_in_flight(BlockDriverState *bs)
{
    assert(bs->in_flight > 0);
    bs->in_flight--;
}

/* True while @bs or any node below it has requests in flight. */
static bool bdrv_requests_pending(BlockDriverState *bs)
{
    BdrvChild *c;

    if (bs->in_flight) {
        return true;
    }
    QLIST_FOREACH(c, &bs->children, next) {
        if (bdrv_requests_pending(c->bs)) {
            return true;
        }
    }
    return false;
}

void bdrv_drain(BlockDriverState *bs)
{
    if (qemu_in_coroutine()) {
        /* Let the loop run the requests we wait for, then look again. */
        while (bdrv_requests_pending(bs)) {
            aio_co_schedule(qemu_get_aio_context(), qemu_coroutine_self());
            qemu_coroutine_yield();
        }
        return;
    }
    AIO_WAIT_WHILE(bdrv_requests_pending(bs));
}

void bdrv_drain_all(void)
{
    BlockDriverState *bs;

    for (bs = bdrv_next_all(NULL); bs; bs = bdrv_next_all(bs)) {
        bdrv_drain(bs);
    }
}

int bdrv_co_run(CoroutineEntry *entry, void *opaque, int *ret_ptr)
{
    *ret_ptr = -EINPROGRESS;
    if (qemu_in_coroutine()) {
        entry(opaque);
    } else {
        qemu_coroutine_enter(qemu_coroutine_create(entry, opaque));
        AIO_WAIT_WHILE(*ret_ptr == -EINPROGRESS);
    }
    return *ret_ptr;
}

static int bdrv_check_request(int64_t offset, int64_t bytes)
{
    if (offset < 0 || bytes < 0 || offset > INT64_MAX - bytes) {
        return -EIO;
    }
    return 0;
}

static void tracked_request_begin(BdrvTrackedRequest *req,
                                  BlockDriverState *bs, int64_t offset,
                                  int64_t bytes, BdrvTrackedRequestType type,
                                  BdrvRequestFlags flags)
{
    *req = (BdrvTrackedRequest) {
        .bs = bs,
        .offset = offset,
        .bytes = bytes,
        .type = type,
        .flags = flags,
        .co = qemu_coroutine_self(),
        .overlap_offset = offset,
        .overlap_bytes = bytes,
    };
    qemu_co_queue_init(&req->wait_queue);
    QLIST_INSERT_HEAD(&bs->tracked_requests, req, list);
}

static void tracked_request_end(BdrvTrackedRequest *req)
{
    if (req->serialising) {
        req->bs->serialising_in_flight--;
    }
    QLIST_REMOVE(req, list);
    qemu_co_queue_restart_all(&req->wait_queue);
}

void bdrv_mark_request_serialising(BdrvTrackedRequest *req, uint64_t align)
{
    int64_t start = QEMU_ALIGN_DOWN(req->offset, align);
    int64_t end = QEMU_ALIGN_UP(req->offset + req->bytes, align);

    if (!req->serialising) {
        req->bs->serialising_in_flight++;
        req->serialising = true;
    }
    req->overlap_offset = MIN(req->overlap_offset, start);
    req->overlap_bytes = MAX(req->overlap_offset + req->overlap_bytes, end) -
                         req->overlap_offset;
}

static bool tracked_request_overlaps(BdrvTrackedRequest *req,
                                     int64_t offset, int64_t bytes)
{
    return offset < req->overlap_offset + req->overlap_bytes &&
           req->overlap_offset < offset + bytes;
}

BdrvTrackedRequest *bdrv_find_conflicting_request(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes)
{
    BdrvTrackedRequest *req;

    QLIST_FOREACH(req, &bs->tracked_requests, list) {
        if (tracked_request_overlaps(req, offset, bytes)) {
            return req;
        }
    }
    return NULL;
}

void coroutine_fn bdrv_co_wait_reads_from(BdrvTrackedRequest *self,
                                         BlockDriverState *parent)
{
    BdrvTrackedRequest *req;

restart:
    QLIST_FOREACH(req, &self->bs->tracked_requests, list) {
        if (req == self || req->type != BDRV_TRACKED_READ || !req->child ||
            req->child->opaque != parent || req->waiting_for == self ||
            !tracked_request_overlaps(req, self->overlap_offset,
                                      self->overlap_bytes)) {
            continue;
        }
        qemu_co_queue_wait(&req->wait_queue, NULL);
        goto restart;
    }
}

/*
 * Waits until no overlapping request conflicts with @self: a serialising
 * request waits for every overlapping one, and every request waits for
 * overlapping serialising ones.  A request never waits for one that is
 * (transitively) waiting for it, which rules out deadlock.
 */
static void coroutine_fn wait_serialising_requests(BdrvTrackedRequest *self)
{
    BlockDriverState *bs = self->bs;
    BdrvTrackedRequest *req;
    bool retry;

    if (!bs->serialising_in_flight) {
        return;
    }
    do {
        retry = false;
        QLIST_FOREACH(req, &bs->tracked_requests, list) {
            BdrvTrackedRequest *w;

            if (req == self || (!req->serialising && !self->serialising)) {
                continue;
            }
            if (!tracked_request_overlaps(req, self->overlap_offset,
                                          self->overlap_bytes)) {
                continue;
            }
            for (w = req->waiting_for; w && w != self; w = w->waiting_for) {
                /* walk the wait chain */
            }
            if (w == self) {
                continue;
            }
            self->waiting_for = req;
            qemu_co_queue_wait(&req->wait_queue, NULL);
            self->waiting_for = NULL;
            retry = true;
            break;
        }
    } while (retry);
}

/* True if @qiov's buffers satisfy the node's memory alignment. */
static bool bdrv_qiov_is_aligned(BlockDriverState *bs, QEMUIOVector *qiov)
{
    size_t align = MAX(bs->bl.min_mem_alignment, 1);

    if (align == 1) {
        return true;
    }
    for (int i = 0; i < qiov->niov; i++) {
        if ((uintptr_t)qiov->iov[i].iov_base % align ||
            qiov->iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

void *qemu_blockalign(BlockDriverState *bs, size_t size)
{
    return qemu_memalign(MAX(bs->bl.opt_mem_alignment, 4096), size);
}

/* The largest piece the driver accepts in one call. */
static int64_t bdrv_max_driver_request(BlockDriverState *bs)
{
    if (!bs->bl.max_transfer) {
        return BDRV_REQUEST_MAX_BYTES;
    }
    return QEMU_ALIGN_DOWN(MIN(bs->bl.max_transfer, BDRV_REQUEST_MAX_BYTES),
                           MAX(bs->bl.request_alignment, 1));
}

/*
 * Calls the driver for an aligned read or write of @bytes at @offset from
 * @qiov (starting at @qiov_offset), splitting at max_transfer and
 * bouncing pieces whose buffers break the node's memory alignment.
 */
static int coroutine_fn bdrv_driver_rw(BlockDriverState *bs, bool is_write,
                                       int64_t offset, int64_t bytes,
                                       QEMUIOVector *qiov, size_t qiov_offset,
                                       BdrvRequestFlags flags)
{
    BlockDriver *drv = bs->drv;
    int64_t max = bdrv_max_driver_request(bs);
    int64_t done = 0;

    if (!(is_write ? drv->bdrv_co_pwritev : drv->bdrv_co_preadv)) {
        return -ENOTSUP;
    }
    while (done < bytes) {
        int64_t len = MIN(bytes - done, max);
        QEMUIOVector local, bounce;
        QEMUIOVector *io = &local;
        void *buf = NULL;
        int ret;

        qemu_iovec_init_slice(&local, qiov, qiov_offset + done, len);
        if (!bdrv_qiov_is_aligned(bs, &local)) {
            buf = qemu_blockalign(bs, len);
            if (is_write) {
                qemu_iovec_to_buf(&local, 0, buf, len);
            }
            qemu_iovec_init_buf(&bounce, buf, len);
            io = &bounce;
        }
        ret = is_write ? drv->bdrv_co_pwritev(bs, offset + done, len, io, flags)
                       : drv->bdrv_co_preadv(bs, offset + done, len, io, flags);
        if (buf) {
            if (ret >= 0 && !is_write) {
                qemu_iovec_from_buf(&local, 0, buf, len);
            }
            qemu_vfree(buf);
        }
        qemu_iovec_destroy(&local);
        if (ret < 0) {
            return ret;
        }
        done += len;
    }
    return 0;
}

static int coroutine_fn bdrv_driver_preadv(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           size_t qiov_offset,
                                           BdrvRequestFlags flags)
{
    return bdrv_driver_rw(bs, false, offset, bytes, qiov, qiov_offset, flags);
}

static int coroutine_fn bdrv_driver_pwritev(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov,
                                            size_t qiov_offset,
                                            BdrvRequestFlags flags)
{
    int ret = bdrv_driver_rw(bs, true, offset, bytes, qiov, qiov_offset,
                             flags & bs->supported_write_flags);

    /* Emulate FUA with a flush when the driver cannot do it per request. */
    if (ret >= 0 && (flags & BDRV_REQ_FUA) &&
        !(bs->supported_write_flags & BDRV_REQ_FUA)) {
        ret = bdrv_co_flush(bs);
    }
    return ret;
}

/*
 * Reads an aligned range; the part beyond the end of the node reads as
 * zeroes.
 */
static int coroutine_fn bdrv_aligned_preadv(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            QEMUIOVector *qiov,
                                            size_t qiov_offset,
                                            BdrvRequestFlags flags)
{
    int64_t total = bdrv_getlength(bs);
    int64_t in_image;
    int ret = 0;

    if (total < 0) {
        return total;
    }
    in_image = MAX(0, MIN(bytes, total - offset));
    if (in_image > 0) {
        ret = bdrv_driver_preadv(bs, offset, in_image, qiov, qiov_offset,
                                 flags);
    }
    if (ret >= 0 && in_image < bytes) {
        qemu_iovec_memset(qiov, qiov_offset + in_image, 0, bytes - in_image);
    }
    return ret;
}

int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags)
{
    BlockDriverState *bs = child->bs;
    uint64_t align;
    BdrvTrackedRequest req;
    int64_t head, aligned_bytes;
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    ret = bdrv_check_request(offset, bytes);
    if (ret < 0) {
        return ret;
    }
    if (bytes == 0) {
        return 0;
    }
    if (child->read_hook && !(flags & BDRV_REQ_NO_READ_HOOK)) {
        return child->read_hook(child, offset, bytes, qiov, flags);
    }
    flags &= ~BDRV_REQ_NO_READ_HOOK;
    trace_bdrv_co_preadv(bs, offset, bytes, flags);
    bdrv_inc_in_flight(bs);
    align = MAX(bs->bl.request_alignment, 1);
    head = offset % align;
    aligned_bytes = QEMU_ALIGN_UP(head + bytes, align);

    tracked_request_begin(&req, bs, offset - head, aligned_bytes,
                          BDRV_TRACKED_READ, flags);
    req.child = child;
    if (!(flags & BDRV_REQ_NO_SERIALISING)) {
        wait_serialising_requests(&req);
    }
    flags &= ~BDRV_REQ_NO_SERIALISING;
    if (head == 0 && aligned_bytes == bytes) {
        ret = bdrv_aligned_preadv(bs, offset, bytes, qiov, 0, flags);
    } else {
        /* Unaligned: read the covering aligned range and copy out. */
        void *buf = qemu_blockalign(bs, aligned_bytes);
        QEMUIOVector bounce;

        qemu_iovec_init_buf(&bounce, buf, aligned_bytes);
        ret = bdrv_aligned_preadv(bs, offset - head, aligned_bytes, &bounce,
                                  0, flags);
        if (ret >= 0) {
            qemu_iovec_from_buf(qiov, 0, (char *)buf + head, bytes);
        }
        qemu_vfree(buf);
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret < 0 ? ret : 0;
}

static int coroutine_fn bdrv_run_before_write(BdrvTrackedRequest *req)
{
    BdrvBeforeWriteNotifier *n, *next;
    int ret;

    if (req->flags & BDRV_REQ_NO_BEFORE_WRITE) {
        return 0;
    }
    QLIST_FOREACH_SAFE(n, &req->bs->before_write_notifiers, next, next) {
        ret = n->notify(n, req);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

void bdrv_add_before_write_notifier(BlockDriverState *bs,
                                    BdrvBeforeWriteNotifier *n)
{
    QLIST_INSERT_HEAD(&bs->before_write_notifiers, n, next);
}

void bdrv_remove_before_write_notifier(BdrvBeforeWriteNotifier *n)
{
    QLIST_SAFE_REMOVE(n, next);
}

/* Writes zeroes from a bounce buffer (the fallback for write-zeroes). */
static int coroutine_fn bdrv_write_zero_buffer(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    int64_t chunk = MIN(bytes, MAX_ZERO_BOUNCE);
    void *buf = qemu_blockalign(bs, chunk);
    int ret = 0;

    memset(buf, 0, chunk);
    while (bytes > 0 && ret >= 0) {
        int64_t len = MIN(bytes, chunk);
        QEMUIOVector qiov;

        qemu_iovec_init_buf(&qiov, buf, len);
        ret = bdrv_driver_pwritev(bs, offset, len, &qiov, 0,
                                  flags & ~(BDRV_REQ_ZERO_WRITE |
                                            BDRV_REQ_MAY_UNMAP));
        offset += len;
        bytes -= len;
    }
    qemu_vfree(buf);
    return ret;
}

/*
 * Write-zeroes on an aligned range: the driver's efficient method on the
 * part aligned to pwrite_zeroes_alignment, explicit zeroes for the rest
 * and wherever the driver says -ENOTSUP (unless NO_FALLBACK).
 */
static int coroutine_fn bdrv_do_pwrite_zeroes(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags)
{
    BlockDriver *drv = bs->drv;
    uint32_t zalign = MAX(bs->bl.pwrite_zeroes_alignment,
                          bs->bl.request_alignment);
    int64_t max = bs->bl.max_pwrite_zeroes ?
        bs->bl.max_pwrite_zeroes : BDRV_REQUEST_MAX_BYTES;
    int ret = 0;

    zalign = MAX(zalign, 1);
    max = MAX(QEMU_ALIGN_DOWN(max, zalign), zalign);
    if (!(bs->open_flags & BDRV_O_UNMAP)) {
        flags &= ~BDRV_REQ_MAY_UNMAP;
    }
    while (bytes > 0 && ret >= 0) {
        int64_t num = bytes;
        int64_t misalign = offset % zalign;

        if (misalign) {
            /* Up to the next zero alignment boundary. */
            num = MIN(bytes, zalign - misalign);
        } else if (num >= zalign) {
            num = MIN(QEMU_ALIGN_DOWN(num, zalign), max);
        }
        ret = -ENOTSUP;
        if (drv->bdrv_co_pwrite_zeroes && !misalign && num % zalign == 0) {
            ret = drv->bdrv_co_pwrite_zeroes(bs, offset, num,
                                             flags & bs->supported_zero_flags);
        }
        if (ret == -ENOTSUP && !(flags & BDRV_REQ_NO_FALLBACK)) {
            ret = bdrv_write_zero_buffer(bs, offset, num, flags);
        }
        offset += num;
        bytes -= num;
    }
    return ret;
}

/*
 * Performs an aligned write, write-zeroes or compressed write under an
 * already started tracked request.
 */
static int coroutine_fn bdrv_aligned_pwritev(BdrvTrackedRequest *req,
                                             int64_t offset, int64_t bytes,
                                             QEMUIOVector *qiov,
                                             size_t qiov_offset,
                                             BdrvRequestFlags flags)
{
    BlockDriverState *bs = req->bs;
    int ret;

    if (qiov && bs->detect_zeroes != BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF &&
        !(flags & (BDRV_REQ_ZERO_WRITE | BDRV_REQ_WRITE_COMPRESSED)) &&
        qemu_iovec_is_zero(qiov, qiov_offset, bytes)) {
        flags |= BDRV_REQ_ZERO_WRITE;
        if (bs->detect_zeroes == BLOCKDEV_DETECT_ZEROES_OPTIONS_UNMAP) {
            flags |= BDRV_REQ_MAY_UNMAP;
        }
    }

    ret = bdrv_run_before_write(req);
    if (ret < 0) {
        return ret;
    }

    bs->write_gen++;
    if (flags & BDRV_REQ_ZERO_WRITE) {
        ret = bdrv_do_pwrite_zeroes(bs, offset, bytes, flags);
    } else if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        QEMUIOVector local;

        if (!bs->drv->bdrv_co_pwritev_compressed) {
            return -ENOTSUP;
        }
        qemu_iovec_init_slice(&local, qiov, qiov_offset, bytes);
        ret = bs->drv->bdrv_co_pwritev_compressed(bs, offset, bytes, &local);
        qemu_iovec_destroy(&local);
    } else {
        ret = bdrv_driver_pwritev(bs, offset, bytes, qiov, qiov_offset,
                                  flags);
    }
    /*
     * Dirty bitmaps record every range the driver was asked to change:
     * a failed write may still have changed part of it.
     */
    bdrv_set_dirty(bs, offset, bytes);
    if (ret < 0) {
        return ret;
    }
    bs->wr_highest_offset = MAX(bs->wr_highest_offset,
                                (uint64_t)(offset + bytes));
    if (offset + bytes > bs->total_sectors * BDRV_SECTOR_SIZE) {
        /* A protocol grew: keep the cached length in step. */
        bs->total_sectors = DIV_ROUND_UP(offset + bytes, BDRV_SECTOR_SIZE);
    }
    return 0;
}

/*
 * Unaligned write: under a serialising request, read the partial head and
 * tail blocks, merge the new data in and write whole aligned blocks.
 * @qiov NULL means write zeroes.
 */
static int coroutine_fn bdrv_co_do_rmw(BdrvTrackedRequest *req,
                                       int64_t offset, int64_t bytes,
                                       QEMUIOVector *qiov,
                                       BdrvRequestFlags flags,
                                       uint64_t align)
{
    BlockDriverState *bs = req->bs;
    int64_t start = QEMU_ALIGN_DOWN(offset, align);
    int64_t end = QEMU_ALIGN_UP(offset + bytes, align);
    int64_t len = end - start;
    uint8_t *buf = qemu_blockalign(bs, len);
    bool head_partial = offset != start;
    bool tail_partial = (offset + bytes) != end;
    QEMUIOVector whole;
    int ret = 0;

    if (head_partial) {
        qemu_iovec_init_buf(&whole, buf, align);
        ret = bdrv_aligned_preadv(bs, start, align, &whole, 0, 0);
    }
    /* The tail block was read already if it is also the head block. */
    if (ret >= 0 && tail_partial && !(head_partial && end - align == start)) {
        qemu_iovec_init_buf(&whole, buf + len - align, align);
        ret = bdrv_aligned_preadv(bs, end - align, align, &whole, 0, 0);
    }
    if (ret >= 0) {
        if (qiov) {
            qemu_iovec_to_buf(qiov, 0, buf + (offset - start), bytes);
        } else {
            memset(buf + (offset - start), 0, bytes);
        }
        qemu_iovec_init_buf(&whole, buf, len);
        ret = bdrv_aligned_pwritev(req, start, len, &whole, 0,
                                   flags & ~(BDRV_REQ_ZERO_WRITE |
                                             BDRV_REQ_MAY_UNMAP));
    }
    qemu_vfree(buf);
    return ret;
}

/* Writes under a tracked request that has waited for its conflicts. */
static int coroutine_fn bdrv_co_write_tracked(BdrvTrackedRequest *req,
                                              int64_t offset, int64_t bytes,
                                              QEMUIOVector *qiov,
                                              BdrvRequestFlags flags,
                                              uint64_t align)
{
    if (offset % align || bytes % align) {
        return bdrv_co_do_rmw(req, offset, bytes,
                              (flags & BDRV_REQ_ZERO_WRITE) ? NULL : qiov,
                              flags, align);
    }
    return bdrv_aligned_pwritev(req, offset, bytes,
                                (flags & BDRV_REQ_ZERO_WRITE) ? NULL : qiov,
                                0, flags);
}

/*
 * Deferred writes.
 *
 * A guest write into clusters a backup has not copied yet would wait for
 * the old data to be read before it may touch the node.  When every
 * before-write notifier of the node allows it (may_defer), the write
 * instead completes to its caller as soon as its data is in a buffer of
 * its own, and a coroutine of its own does the rest: the notifiers' copy,
 * then the write.  This is the volatile write cache a caller accepts by
 * not asking for BDRV_REQ_FUA (a BlockBackend in writethrough mode sets
 * it on every write), and the cache obeys the same rules as one:
 *
 * - the request stays tracked and serialising until it has landed, so
 *   every later request that overlaps it waits for it (reads see the new
 *   data, later writes land after it); requests that were already in
 *   flight when it was accepted are concurrent with it, as they were;
 * - block status reports its range as data until then (never as a hole
 *   or zeroes the write is about to fill), and dirty bitmaps count it
 *   from the start;
 * - it counts in bs->in_flight, so drain waits for it;
 * - flush waits for every deferred write of the node; once one failed,
 *   its data is lost, and every later flush of the node fails with its
 *   error (as QEMU's file-posix does after a failed fdatasync).
 *
 * The buffers are bounded per node: while they are full, a write waits
 * for a deferred one to end.  After an error, writes run the usual way
 * and wait for their own copy.
 */
#define BDRV_DEFERRED_MAX_WRITES    64
#define BDRV_DEFERRED_MAX_BYTES     (16 * MiB)

typedef struct BdrvDeferredWrite {
    BdrvTrackedRequest req;     /* in bs->tracked_requests until it lands */
    QEMUIOVector qiov;          /* over buf */
    void *buf;
    uint64_t align;
} BdrvDeferredWrite;

/* True if the notifiers of @bs let the data write complete early. */
static bool bdrv_write_may_defer(BlockDriverState *bs, int64_t offset,
                                 int64_t bytes, BdrvRequestFlags flags)
{
    BdrvBeforeWriteNotifier *n;
    bool wanted = false;

    if (flags & (BDRV_REQ_ZERO_WRITE | BDRV_REQ_FUA |
                 BDRV_REQ_WRITE_COMPRESSED | BDRV_REQ_WRITE_UNCHANGED |
                 BDRV_REQ_SERIALISING | BDRV_REQ_NO_BEFORE_WRITE) ||
        bs->deferred_error || bytes > BDRV_DEFERRED_MAX_BYTES) {
        return false;
    }
    QLIST_FOREACH(n, &bs->before_write_notifiers, next) {
        if (!n->may_defer) {
            return false;
        }
        wanted |= n->may_defer(n, offset, bytes);
    }
    return wanted;
}

/*
 * Decides whether to defer the write; while the deferred writes of @bs
 * fill their bounds, waits for one of them to end first.  (The write was
 * not accepted yet: waiting here orders it after nothing new.)
 */
static bool coroutine_fn bdrv_co_write_should_defer(BlockDriverState *bs,
                                                    int64_t offset,
                                                    int64_t bytes,
                                                    BdrvRequestFlags flags)
{
    while (bdrv_write_may_defer(bs, offset, bytes, flags)) {
        if (bs->deferred_writes < BDRV_DEFERRED_MAX_WRITES &&
            bs->deferred_bytes + bytes <= BDRV_DEFERRED_MAX_BYTES) {
            return true;
        }
        qemu_co_queue_wait(&bs->deferred_done, NULL);
    }
    return false;
}

static void coroutine_fn bdrv_deferred_write_entry(void *opaque)
{
    BdrvDeferredWrite *dw = opaque;
    BdrvTrackedRequest *req = &dw->req;
    BlockDriverState *bs = req->bs;
    int ret;

    req->co = qemu_coroutine_self();
    ret = bdrv_co_write_tracked(req, req->offset, req->bytes, &dw->qiov,
                                req->flags, dw->align);
    trace_bdrv_deferred_write_done(bs, req->offset, req->bytes, ret);
    if (ret < 0 && !bs->deferred_error) {
        bs->deferred_error = ret;
    }
    bs->deferred_writes--;
    bs->deferred_bytes -= req->bytes;
    tracked_request_end(req);
    qemu_co_queue_restart_all(&bs->deferred_done);
    bdrv_dec_in_flight(bs);
    qemu_vfree(dw->buf);
    g_free(dw);
}

/*
 * Accepts a write for deferral: copies its data, waits for the requests it
 * conflicts with (the ones the write would have waited for), then leaves
 * the rest to a coroutine that takes over the caller's count in
 * bs->in_flight.
 */
static void coroutine_fn bdrv_co_defer_pwritev(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               QEMUIOVector *qiov,
                                               BdrvRequestFlags flags,
                                               uint64_t align)
{
    BdrvDeferredWrite *dw = g_new0(BdrvDeferredWrite, 1);

    dw->buf = qemu_blockalign(bs, bytes);
    qemu_iovec_to_buf(qiov, 0, dw->buf, bytes);
    qemu_iovec_init_buf(&dw->qiov, dw->buf, bytes);
    dw->align = align;
    /*
     * Dirty bitmaps show the write from now on, as they would show a
     * write that completed (landing marks it once more).
     */
    bdrv_set_dirty(bs, offset, bytes);
    bs->deferred_writes++;
    bs->deferred_bytes += bytes;
    trace_bdrv_deferred_write(bs, offset, bytes);
    tracked_request_begin(&dw->req, bs, offset, bytes, BDRV_TRACKED_WRITE,
                          flags);
    dw->req.deferred = ++bs->deferred_seq;
    if (offset % align || bytes % align) {
        bdrv_mark_request_serialising(&dw->req, align);
    }
    wait_serialising_requests(&dw->req);
    /*
     * From here on every later request that overlaps it waits for it.
     * Nothing yields between the wait and this, so it never waits for a
     * request that arrived after it.
     */
    bdrv_mark_request_serialising(&dw->req, align);
    qemu_coroutine_enter(qemu_coroutine_create(bdrv_deferred_write_entry,
                                               dw));
}

/*
 * Waits for the writes deferred before the call; later ones are not part
 * of what the caller is asking about (and waiting for them too would let
 * a steady writer starve a flush).
 */
static void coroutine_fn bdrv_co_wait_deferred_writes(BlockDriverState *bs)
{
    uint64_t upto = bs->deferred_seq;
    BdrvTrackedRequest *req;

restart:
    if (!bs->deferred_writes) {
        return;
    }
    QLIST_FOREACH(req, &bs->tracked_requests, list) {
        if (req->deferred && req->deferred <= upto) {
            qemu_co_queue_wait(&bs->deferred_done, NULL);
            goto restart;
        }
    }
}

/*
 * Block status must not report a hole or zeroes where a deferred write is
 * about to land.  Returns true if @offset is inside a deferred write of
 * @bs, with *bytes clipped to where that stops being true; otherwise
 * clips *bytes at the first deferred write after @offset.
 */
static bool bdrv_clip_at_deferred_writes(BlockDriverState *bs,
                                         int64_t offset, int64_t *bytes)
{
    int64_t in_end = offset + *bytes, out_end = offset + *bytes;
    BdrvTrackedRequest *req;
    bool inside = false;

    if (!bs->deferred_writes) {
        return false;
    }
    QLIST_FOREACH(req, &bs->tracked_requests, list) {
        if (!req->deferred || !tracked_request_overlaps(req, offset, *bytes)) {
            continue;
        }
        if (req->overlap_offset <= offset) {
            inside = true;
            in_end = MIN(in_end, req->overlap_offset + req->overlap_bytes);
        } else {
            out_end = MIN(out_end, req->overlap_offset);
        }
    }
    *bytes = (inside ? in_end : out_end) - offset;
    return inside;
}

static int coroutine_fn bdrv_co_do_pwritev(BdrvChild *child, int64_t offset,
                                           int64_t bytes, QEMUIOVector *qiov,
                                           BdrvRequestFlags flags)
{
    BlockDriverState *bs = child->bs;
    BdrvTrackedRequest req;
    uint64_t align;
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    ret = bdrv_check_request(offset, bytes);
    if (ret < 0) {
        return ret;
    }
    if (bytes == 0) {
        return 0;
    }
    trace_bdrv_co_pwritev(bs, offset, bytes, flags);
    bdrv_inc_in_flight(bs);
    align = MAX(bs->bl.request_alignment, 1);

    if (bdrv_co_write_should_defer(bs, offset, bytes, flags)) {
        bdrv_co_defer_pwritev(bs, offset, bytes, qiov, flags, align);
        return 0;
    }

    tracked_request_begin(&req, bs, offset, bytes, BDRV_TRACKED_WRITE, flags);
    if (offset % align || bytes % align) {
        bdrv_mark_request_serialising(&req, align);
        if (flags & BDRV_REQ_WRITE_COMPRESSED) {
            ret = -EINVAL;
            goto out;
        }
    }
    if (flags & BDRV_REQ_SERIALISING) {
        bdrv_mark_request_serialising(&req, align);
    }
    wait_serialising_requests(&req);
    ret = bdrv_co_write_tracked(&req, offset, bytes, qiov, flags, align);
out:
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 BdrvRequestFlags flags)
{
    return bdrv_co_do_pwritev(child, offset, bytes, qiov,
                              flags & ~BDRV_REQ_ZERO_WRITE);
}

int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    return bdrv_co_do_pwritev(child, offset, bytes, NULL,
                              flags | BDRV_REQ_ZERO_WRITE);
}

int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return bdrv_co_preadv(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);

    return bdrv_co_pwritev(child, offset, bytes, &qiov, flags);
}

int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags)
{
    int ret = bdrv_co_pwrite(child, offset, bytes, buf, flags);

    return ret < 0 ? ret : bdrv_co_flush(child->bs);
}

int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes)
{
    BlockDriverState *bs = child->bs;
    BdrvTrackedRequest req;
    uint32_t align;
    int64_t max, head, tail;
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->read_only) {
        return -EPERM;
    }
    ret = bdrv_check_request(offset, bytes);
    if (ret < 0) {
        return ret;
    }
    /* Discard is advisory: ignored unless discard=unmap. */
    if (!(bs->open_flags & BDRV_O_UNMAP) || !bs->drv->bdrv_co_pdiscard ||
        bytes == 0) {
        return 0;
    }
    align = MAX(MAX(bs->bl.pdiscard_alignment, bs->bl.request_alignment), 1);
    max = bs->bl.max_pdiscard ? bs->bl.max_pdiscard : BDRV_REQUEST_MAX_BYTES;
    max = MAX(QEMU_ALIGN_DOWN(max, align), align);
    /* Only whole aligned blocks can be discarded; skip the partial ends. */
    head = QEMU_ALIGN_UP(offset, align) - offset;
    if (head >= bytes) {
        return 0;
    }
    tail = (offset + bytes) % align;
    if (offset + bytes == bdrv_getlength(bs)) {
        tail = 0;       /* the image end counts as aligned */
    }

    bdrv_inc_in_flight(bs);
    tracked_request_begin(&req, bs, offset, bytes, BDRV_TRACKED_DISCARD, 0);
    wait_serialising_requests(&req);
    ret = bdrv_run_before_write(&req);
    offset += head;
    bytes -= head + tail;
    if (ret >= 0 && bytes > 0) {
        int64_t start = offset;

        bs->write_gen++;
        while (ret >= 0 && bytes > 0) {
            int64_t num = MIN(bytes, max);

            ret = bs->drv->bdrv_co_pdiscard(bs, offset, num);
            if (ret == -ENOTSUP) {
                ret = 0;
            }
            offset += num;
            bytes -= num;
        }
        /* As for writes: even a failed discard may have dropped data. */
        bdrv_set_dirty(bs, start, offset - start);
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret < 0 ? ret : 0;
}

int coroutine_fn bdrv_co_flush(BlockDriverState *bs)
{
    BdrvChild *c;
    uint64_t gen;
    int ret = 0;

    if (!bs->drv || bs->read_only) {
        return 0;
    }
    bdrv_inc_in_flight(bs);
    bdrv_co_wait_deferred_writes(bs);
    gen = bs->write_gen;
    /*
     * Nothing written to this node since its last flush: its driver has
     * nothing to flush (children are still asked, they count their own).
     */
    if (gen != bs->flushed_gen) {
        if (bs->drv->bdrv_co_flush_to_os) {
            ret = bs->drv->bdrv_co_flush_to_os(bs);
        }
        if (ret >= 0 && !(bs->open_flags & BDRV_O_NO_FLUSH) &&
            bs->drv->bdrv_co_flush_to_disk) {
            ret = bs->drv->bdrv_co_flush_to_disk(bs);
        }
        if (ret >= 0) {
            bs->flushed_gen = gen;
        }
    }
    /* What the driver wrote to its children must reach the disk too. */
    QLIST_FOREACH(c, &bs->children, next) {
        int child_ret;

        if (c->role & BDRV_CHILD_COW) {
            continue;       /* backing files are read-only */
        }
        child_ret = bdrv_co_flush(c->bs);
        if (ret >= 0) {
            ret = child_ret;
        }
    }
    if (ret >= 0 && bs->deferred_error) {
        ret = bs->deferred_error;
    }
    bdrv_dec_in_flight(bs);
    return ret;
}

int bdrv_flush_all(void)
{
    BlockDriverState *bs;
    int result = 0;

    for (bs = bdrv_next_all(NULL); bs; bs = bdrv_next_all(bs)) {
        int ret = bdrv_flush(bs);
        if (ret < 0 && !result) {
            result = ret;
        }
    }
    return result;
}

/* Re-reads the length of @bs and of every node above it. */
static void bdrv_refresh_length_upwards(BlockDriverState *bs)
{
    BdrvChild *c;

    bdrv_refresh_total_sectors(bs, bs->total_sectors * BDRV_SECTOR_SIZE);
    QLIST_FOREACH(c, &bs->parents, next_parent) {
        if (c->klass->parent_is_bds) {
            bdrv_refresh_length_upwards(c->opaque);
        }
    }
}

int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp)
{
    BlockDriverState *bs = child->bs;
    BlockDriverState *file;
    BdrvTrackedRequest req;
    int64_t old_size;
    int ret;

    if (!bs->drv) {
        error_setg(errp, "No medium inserted");
        return -ENOMEDIUM;
    }
    if (offset < 0) {
        error_setg(errp, "Image size cannot be negative");
        return -EINVAL;
    }
    if (bs->read_only) {
        error_setg(errp, "Image is read-only");
        return -EACCES;
    }
    old_size = bdrv_getlength(bs);
    if (old_size < 0) {
        error_setg_errno(errp, -old_size, "Failed to get old image size");
        return old_size;
    }

    bdrv_inc_in_flight(bs);
    tracked_request_begin(&req, bs, MIN(offset, old_size),
                          INT64_MAX - MIN(offset, old_size),
                          BDRV_TRACKED_TRUNCATE, 0);
    bdrv_mark_request_serialising(&req, 1);
    wait_serialising_requests(&req);

    file = bdrv_file_bs(bs);
    bs->write_gen++;
    if (bs->drv->bdrv_co_truncate) {
        ret = bs->drv->bdrv_co_truncate(bs, offset, exact, prealloc, flags,
                                        errp);
    } else if (bs->drv->is_filter && file) {
        ret = bdrv_co_truncate(bs->file ? bs->file :
                               QLIST_FIRST(&bs->children),
                               offset, exact, prealloc, flags, errp);
    } else {
        error_setg(errp, "Image format driver does not support resize");
        ret = -ENOTSUP;
    }
    if (ret >= 0) {
        bdrv_refresh_length_upwards(bs);
        bdrv_dirty_bitmap_truncate(bs, offset);
    }
    tracked_request_end(&req);
    bdrv_dec_in_flight(bs);
    return ret;
}

/*
 * Block status of one node, without looking at its backing file (beyond
 * deciding whether an unallocated area reads as zeroes).
 */
static int coroutine_fn bdrv_co_block_status_one(BlockDriverState *bs,
                                                 bool want_zero,
                                                 int64_t offset,
                                                 int64_t bytes,
                                                 int64_t *pnum, int64_t *map,
                                                 BlockDriverState **file)
{
    int64_t total, local_map = 0, aligned_offset, aligned_bytes;
    BlockDriverState *local_file = NULL;
    uint32_t align;
    int ret;

    *pnum = 0;
    total = bdrv_getlength(bs);
    if (total < 0) {
        return total;
    }
    if (offset >= total) {
        return BDRV_BLOCK_EOF;
    }
    bytes = MIN(bytes, total - offset);

    if (bdrv_clip_at_deferred_writes(bs, offset, &bytes)) {
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA;
    } else if (!bs->drv->bdrv_co_block_status) {
        *pnum = bytes;
        if (bs->drv->is_filter && bdrv_file_bs(bs)) {
            ret = BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
            local_file = bdrv_file_bs(bs);
        } else {
            ret = BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED |
                  BDRV_BLOCK_OFFSET_VALID;
            local_file = bs;
        }
        local_map = offset;
    } else {
        align = MAX(bs->bl.request_alignment, 1);
        aligned_offset = QEMU_ALIGN_DOWN(offset, align);
        aligned_bytes = QEMU_ALIGN_UP(offset + bytes, align) - aligned_offset;

        bdrv_inc_in_flight(bs);
        ret = bs->drv->bdrv_co_block_status(bs, want_zero, aligned_offset,
                                            aligned_bytes, pnum, &local_map,
                                            &local_file);
        bdrv_dec_in_flight(bs);
        if (ret < 0) {
            *pnum = 0;
            return ret;
        }
        assert(*pnum > 0);
        /* Trim the answer back to the caller's unaligned range. */
        *pnum -= offset - aligned_offset;
        *pnum = MIN(*pnum, bytes);
        if (ret & BDRV_BLOCK_OFFSET_VALID) {
            local_map += offset - aligned_offset;
        }
    }

    if (ret & BDRV_BLOCK_RAW) {
        assert(ret & BDRV_BLOCK_OFFSET_VALID && local_file);
        return bdrv_co_block_status_one(local_file, want_zero, local_map,
                                        *pnum, pnum, map, file);
    }

    if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) {
        ret |= BDRV_BLOCK_ALLOCATED;
    } else if (bs->drv->supports_backing) {
        BlockDriverState *backing = bdrv_backing_bs(bs);

        if (!backing) {
            ret |= BDRV_BLOCK_ZERO;
        } else if (want_zero) {
            int64_t backing_len = bdrv_getlength(backing);
            if (backing_len >= 0 && offset >= backing_len) {
                ret |= BDRV_BLOCK_ZERO;
            }
        }
    }

    /* Data whose backing store is a hole reads as zeroes. */
    if (want_zero && (ret & BDRV_BLOCK_RECURSE) && local_file &&
        local_file != bs && (ret & BDRV_BLOCK_DATA) &&
        !(ret & BDRV_BLOCK_ZERO) && (ret & BDRV_BLOCK_OFFSET_VALID)) {
        int64_t file_pnum;
        int ret2 = bdrv_co_block_status_one(local_file, want_zero, local_map,
                                            *pnum, &file_pnum, NULL, NULL);
        if (ret2 >= 0) {
            if ((ret2 & BDRV_BLOCK_EOF) &&
                (!file_pnum || (ret2 & BDRV_BLOCK_ZERO))) {
                ret |= BDRV_BLOCK_ZERO;
            } else {
                *pnum = file_pnum;
                ret |= ret2 & BDRV_BLOCK_ZERO;
            }
        }
    }

    if (offset + *pnum == total) {
        ret |= BDRV_BLOCK_EOF;
    }
    if (map) {
        *map = local_map;
    }
    if (file) {
        *file = local_file;
    }
    return ret & ~(BDRV_BLOCK_RAW | BDRV_BLOCK_RECURSE);
}

int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file)
{
    return bdrv_co_block_status_one(bs, true, offset, bytes, pnum, map, file);
}

/*
 * Walks the chain from @bs down to @base (exclusive) and answers from the
 * first layer that defines the range (status with DATA or ZERO), narrowing
 * the range as it goes.  *depth is that layer's index.
 */
int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth)
{
    BlockDriverState *p;
    int d = 0;
    int ret = 0;

    for (p = bs; p && p != base; p = bdrv_backing_bs(bdrv_skip_filters(p))) {
        int64_t len = bytes;

        p = bdrv_skip_filters(p);
        ret = bdrv_co_block_status_one(p, true, offset, bytes, &len, map,
                                       file);
        if (ret < 0) {
            return ret;
        }
        if (p == bs || len < *pnum) {
            *pnum = len;
        }
        if (len == 0) {
            /* Past this layer's end: the rest of the chain is shorter. */
            ret = p == bs ? ret : (ret | BDRV_BLOCK_ZERO);
            break;
        }
        bytes = len;
        if (ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ZERO)) {
            break;
        }
        if (!bdrv_backing_bs(p) || bdrv_backing_bs(p) == base) {
            break;
        }
        d++;
    }
    if (depth) {
        *depth = d;
    }
    return ret;
}

int coroutine_fn bdrv_co_is_allocated_above(BlockDriverState *top,
                                            BlockDriverState *base,
                                            bool include_base, int64_t offset,
                                            int64_t bytes, int64_t *pnum)
{
    BlockDriverState *p = top;
    int64_t n = bytes;

    for (;;) {
        int64_t pnum_inter;
        int ret;

        p = bdrv_skip_filters(p);
        ret = bdrv_co_block_status_one(p, false, offset, n, &pnum_inter,
                                       NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (ret & BDRV_BLOCK_ALLOCATED) {
            *pnum = pnum_inter;
            return 1;
        }
        if (pnum_inter == 0) {
            /* Beyond this layer: reads as zeroes defined above it. */
            *pnum = n;
            return p == top ? 0 : 1;
        }
        n = pnum_inter;
        if (p == base || !bdrv_backing_bs(p) ||
            (!include_base && bdrv_backing_bs(p) == base)) {
            break;
        }
        p = bdrv_backing_bs(p);
    }
    *pnum = n;
    return 0;
}

/* Synchronous wrappers: one coroutine per call, polled to completion. */

typedef struct {
    BdrvChild *child;
    BlockDriverState *bs;
    BlockDriverState *base;
    int64_t offset;
    int64_t bytes;
    QEMUIOVector *qiov;
    BdrvRequestFlags flags;
    int64_t *pnum;
    int64_t *map;
    BlockDriverState **file;
    int *depth;
    bool include_base;
    int ret;
} BdrvIoCo;

static void coroutine_fn bdrv_preadv_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_preadv(c->child, c->offset, c->bytes, c->qiov, c->flags);
}

static void coroutine_fn bdrv_pwritev_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_do_pwritev(c->child, c->offset, c->bytes, c->qiov,
                                c->flags);
}

static void coroutine_fn bdrv_pdiscard_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_pdiscard(c->child, c->offset, c->bytes);
}

static void coroutine_fn bdrv_flush_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_flush(c->bs);
}

static void coroutine_fn bdrv_block_status_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_block_status_above(c->bs, c->base, c->offset, c->bytes,
                                        c->pnum, c->map, c->file, c->depth);
}

static void coroutine_fn bdrv_block_status_one_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_block_status_one(c->bs, !c->include_base, c->offset,
                                      c->bytes, c->pnum, c->map, c->file);
}

static void coroutine_fn bdrv_is_allocated_above_co_entry(void *opaque)
{
    BdrvIoCo *c = opaque;

    c->ret = bdrv_co_is_allocated_above(c->bs, c->base, c->include_base,
                                        c->offset, c->bytes, c->pnum);
}

int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);
    BdrvIoCo c = {
        .child = child, .offset = offset, .bytes = bytes, .qiov = &qiov,
        .flags = flags,
    };

    return bdrv_co_run(bdrv_preadv_co_entry, &c, &c.ret);
}

int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags)
{
    QEMUIOVector qiov = QEMU_IOVEC_INIT_BUF(qiov, buf, bytes);
    BdrvIoCo c = {
        .child = child, .offset = offset, .bytes = bytes, .qiov = &qiov,
        .flags = flags & ~BDRV_REQ_ZERO_WRITE,
    };

    return bdrv_co_run(bdrv_pwritev_co_entry, &c, &c.ret);
}

int bdrv_pwrite_sync(BdrvChild *child, int64_t offset, int64_t bytes,
                     const void *buf, BdrvRequestFlags flags)
{
    int ret = bdrv_pwrite(child, offset, bytes, buf, flags);

    return ret < 0 ? ret : bdrv_flush(child->bs);
}

int bdrv_pwrite_zeroes(BdrvChild *child, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags)
{
    BdrvIoCo c = {
        .child = child, .offset = offset, .bytes = bytes,
        .flags = flags | BDRV_REQ_ZERO_WRITE,
    };

    return bdrv_co_run(bdrv_pwritev_co_entry, &c, &c.ret);
}

int bdrv_pdiscard(BdrvChild *child, int64_t offset, int64_t bytes)
{
    BdrvIoCo c = { .child = child, .offset = offset, .bytes = bytes };

    return bdrv_co_run(bdrv_pdiscard_co_entry, &c, &c.ret);
}

int bdrv_flush(BlockDriverState *bs)
{
    BdrvIoCo c = { .bs = bs };

    return bdrv_co_run(bdrv_flush_co_entry, &c, &c.ret);
}

int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                            int64_t offset, int64_t bytes, int64_t *pnum,
                            int64_t *map, BlockDriverState **file,
                            int *depth)
{
    BdrvIoCo c = {
        .bs = bs, .base = base, .offset = offset, .bytes = bytes,
        .pnum = pnum, .map = map, .file = file, .depth = depth,
    };

    return bdrv_co_run(bdrv_block_status_co_entry, &c, &c.ret);
}

int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file)
{
    BdrvIoCo c = {
        .bs = bs, .offset = offset, .bytes = bytes, .pnum = pnum,
        .map = map, .file = file,
        .include_base = false,  /* want_zero = !include_base */
    };

    return bdrv_co_run(bdrv_block_status_one_co_entry, &c, &c.ret);
}

int bdrv_is_allocated(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum)
{
    int64_t dummy;
    BdrvIoCo c = {
        .bs = bs, .offset = offset, .bytes = bytes,
        .pnum = pnum ? pnum : &dummy,
        .include_base = true,   /* want_zero = false */
    };
    int ret = bdrv_co_run(bdrv_block_status_one_co_entry, &c, &c.ret);

    return ret < 0 ? ret : !!(ret & BDRV_BLOCK_ALLOCATED);
}

int bdrv_is_allocated_above(BlockDriverState *top, BlockDriverState *base,
                            bool include_base, int64_t offset,
                            int64_t bytes, int64_t *pnum)
{
    int64_t dummy;
    BdrvIoCo c = {
        .bs = top, .base = base, .include_base = include_base,
        .offset = offset, .bytes = bytes, .pnum = pnum ? pnum : &dummy,
    };

    return bdrv_co_run(bdrv_is_allocated_above_co_entry, &c, &c.ret);
}

typedef struct {
    BdrvChild *child;
    int64_t offset;
    bool exact;
    PreallocMode prealloc;
    BdrvRequestFlags flags;
    Error **errp;
    int ret;
} TruncateCo;

static void coroutine_fn bdrv_truncate_co_entry(void *opaque)
{
    TruncateCo *t = opaque;

    t->ret = bdrv_co_truncate(t->child, t->offset, t->exact, t->prealloc,
                              t->flags, t->errp);
}

int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp)
{
    TruncateCo t = {
        .child = child, .offset = offset, .exact = exact,
        .prealloc = prealloc, .flags = flags, .errp = errp,
    };

    return bdrv_co_run(bdrv_truncate_co_entry, &t, &t.ret);
}
