/*
 * block-copy: copies clusters from a source to a target, each exactly
 * once, for copy-before-write and the background loop of live backup.
 *
 * See include/block/block-copy.h for the model (copy map, claiming,
 * tasks) and docs/devel/block-copy.md for the invariants.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/ratelimit.h"
#include "qemu/huge-arena.h"
#include "block/block-copy.h"
#include "block-trace.h"

#define BLOCK_COPY_MIN_CLUSTER_SIZE (64 * KiB)
/* The smallest copy into a target that allocates subclusters. */
#define BLOCK_COPY_MIN_SUBCLUSTER_SIZE (4 * KiB)
#define BLOCK_COPY_DEFAULT_CHUNK    (1 * MiB)
#define BLOCK_COPY_DEFAULT_WORKERS  64
#define BLOCK_COPY_DEFAULT_MEM      (128 * MiB)
#define BLOCK_COPY_SLICE_NS         (100 * 1000 * 1000)
/* Idle task buffers kept for reuse. */
#define BLOCK_COPY_MAX_FREE_BUFS    16

typedef struct BlockCopyCall BlockCopyCall;

/* A piece of a task's range: zeroes in the source, or data to copy. */
typedef struct BlockCopyExtent {
    int64_t offset;
    int64_t bytes;
    bool zero;
} BlockCopyExtent;

/*
 * A claimed range being copied by its own coroutine.  Its clusters are
 * clear in the copy map while it is listed in s->tasks.
 *
 * A write-behind task (copy-before-write) becomes *safe* once the old
 * data is read into @buf: point-in-time readers are served from @buf
 * until the write to the target ends the task.  Its call stops waiting
 * for it earlier, once the bytes the guest write covers are read (the
 * task is then *released*): the guest write may go on while the rest of
 * the range is read, because nothing else may write there before the task
 * is safe.
 */
typedef struct BlockCopyTask {
    BlockCopyState *s;
    BlockCopyCall *call;        /* the claiming call; NULL once released */
    int64_t offset;
    int64_t bytes;
    bool write_behind;
    bool safe;
    /* Write-behind: read before the rest, then the call is released. */
    int64_t ready_offset;
    int64_t ready_bytes;
    void *buf;                  /* write-behind: the data of the whole range */
    GArray *extents;            /* the BlockCopyExtents of the range */
    CoQueue waiters;            /* waiting for the task to end or be safe */
    QLIST_ENTRY(BlockCopyTask) next;
} BlockCopyTask;

/* One block_copy()/block_copy_run() invocation; lives on its stack. */
struct BlockCopyCall {
    /* Write-behind: the bytes the guest write covers (0 bytes: none). */
    int64_t need_offset;
    int64_t need_bytes;
    int running;                /* its tasks still in flight */
    Coroutine *waiter;          /* the caller, while it waits for a task */
    int ret;                    /* first error of its tasks */
    bool error_is_read;
    QEMUTimer *sleep_timer;     /* armed during a rate-limit sleep */
};

struct BlockCopyState {
    BdrvChild *source;
    BdrvChild *target;
    int64_t len;
    int64_t cluster_size;
    int64_t max_chunk;
    int max_workers;
    int64_t max_mem;
    BdrvRequestFlags write_flags;   /* of every data write to the target */

    /* Clusters still to copy; clear for clusters of tasks in flight. */
    HBitmap *copy_bitmap;
    QLIST_HEAD(, BlockCopyTask) tasks;
    /* Bytes of all tasks in flight, i.e. the buffer memory they hold. */
    int64_t in_flight_bytes;
    CoQueue mem_waiters;        /* calls waiting for buffer budget */
    int calls;                  /* calls alive (for the free check) */

    int64_t bytes_done;
    BlockCopyProgressFunc *progress_cb;
    void *progress_opaque;

    RateLimit rate_limit;
    BlockCopyCall *run_call;    /* the active block_copy_run(), if any */
    bool cancelled;

    /*
     * Idle buffers of max_chunk bytes: a task takes one instead of
     * allocating (for chunks of 1 MiB, an mmap(), page faults and a
     * munmap() every time).
     */
    GSList *free_bufs;
    int n_free_bufs;
    /*
     * Buffers of full-size tasks (max_chunk bytes), which the background
     * copy issues back to back: in huge pages, so that each request is
     * one segment and adjacent ones merge into large requests.  Smaller
     * tasks (copy-before-write of a few clusters) keep small pages: a
     * huge page would pin 2 MiB for each.  NULL: none to be had.
     */
    HugeArena *arena;

    /* When the before-write notifier last saw a guest write (0: never). */
    int64_t last_guest_write_ns;

    int write_behind_tasks;     /* released or safe tasks still running */
    int64_t write_behind_bytes; /* bytes of safe ones, counted as done */
    /*
     * A failed write-behind: the old data existed only in memory, so the
     * point in time is lost for good.  Readers get this error, the
     * background loop returns it, copy-before-write stops.
     */
    int error;
};

BlockCopyState *block_copy_state_new(BdrvChild *source, BdrvChild *target,
                                     const BlockCopyOptions *opts,
                                     Error **errp)
{
    BlockCopyOptions defaults = { 0 };
    BlockCopyState *s;
    BlockDriverInfo bdi;
    int64_t len, target_len;
    int64_t cluster_size = BLOCK_COPY_MIN_CLUSTER_SIZE;

    opts = opts ? opts : &defaults;
    if (source->bs == target->bs) {
        error_setg(errp, "Source and target cannot be the same node ('%s')",
                   bdrv_get_node_name(source->bs));
        return NULL;
    }
    len = bdrv_getlength(source->bs);
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not get the size of '%s'",
                         bdrv_get_node_name(source->bs));
        return NULL;
    }
    target_len = bdrv_getlength(target->bs);
    if (target_len < 0) {
        error_setg_errno(errp, -target_len, "Could not get the size of '%s'",
                         bdrv_get_node_name(target->bs));
        return NULL;
    }
    if (target_len < len) {
        error_setg(errp, "Target '%s' (%" PRId64 " bytes) is smaller than "
                   "source '%s' (%" PRId64 " bytes)",
                   bdrv_get_node_name(target->bs), target_len,
                   bdrv_get_node_name(source->bs), len);
        return NULL;
    }
    if (opts->min_cluster_size && !is_power_of_2(opts->min_cluster_size)) {
        error_setg(errp, "min-cluster-size needs to be a power of 2");
        return NULL;
    }
    if (opts->compress && !target->bs->drv->bdrv_co_pwritev_compressed) {
        error_setg(errp, "Compression is not supported for this drive %s",
                   bdrv_get_node_name(target->bs));
        return NULL;
    }
    memset(&bdi, 0, sizeof(bdi));
    if (bdrv_get_info(target->bs, &bdi) >= 0 && !opts->compress &&
        bdi.subcluster_size > 0 && bdi.subcluster_size < bdi.cluster_size) {
        /*
         * A copy of part of a cluster costs such a target neither a read
         * of the rest (from its backing file) nor a write of it: copy at
         * the subcluster size, so that copy-before-write moves what a
         * small guest write touches rather than a whole cluster.  (A
         * compressed write is a whole cluster.)
         */
        cluster_size = MAX(BLOCK_COPY_MIN_SUBCLUSTER_SIZE,
                           (int64_t)pow2ceil(bdi.subcluster_size));
    } else if (bdi.cluster_size > 0) {
        cluster_size = MAX(cluster_size, (int64_t)pow2ceil(bdi.cluster_size));
    }
    cluster_size = MAX(cluster_size, opts->min_cluster_size);

    s = g_new0(BlockCopyState, 1);
    s->source = source;
    s->target = target;
    s->len = len;
    s->cluster_size = cluster_size;
    s->write_flags = (opts->compress ? BDRV_REQ_WRITE_COMPRESSED : 0) |
                     (opts->dontcache ? BDRV_REQ_DONTCACHE : 0);
    /* A compressed write must be exactly one target cluster. */
    s->max_chunk = opts->compress ? cluster_size :
        MAX(QEMU_ALIGN_UP(opts->max_chunk ? opts->max_chunk :
                          BLOCK_COPY_DEFAULT_CHUNK, cluster_size),
            cluster_size);
    s->max_workers = opts->max_workers > 0 ? opts->max_workers :
        BLOCK_COPY_DEFAULT_WORKERS;
    s->max_mem = MAX(opts->max_mem > 0 ? opts->max_mem :
                     BLOCK_COPY_DEFAULT_MEM, s->max_chunk);
    s->arena = huge_arena_new(s->max_chunk, s->max_mem,
                              BLOCK_COPY_MAX_FREE_BUFS * s->max_chunk);
    s->copy_bitmap = hbitmap_alloc(len, ctz64(cluster_size));
    hbitmap_set(s->copy_bitmap, 0, len);
    QLIST_INIT(&s->tasks);
    qemu_co_queue_init(&s->mem_waiters);
    ratelimit_init(&s->rate_limit);
    trace_block_copy_state_new(s, source->bs, target->bs, cluster_size, len);
    return s;
}

void block_copy_state_free(BlockCopyState *s)
{
    if (!s) {
        return;
    }
    /* Guest writes are drained; their write-behinds may still run. */
    AIO_WAIT_WHILE(s->write_behind_tasks > 0);
    assert(QLIST_EMPTY(&s->tasks) && s->calls == 0);
    g_slist_free_full(s->free_bufs, qemu_vfree);
    huge_arena_free(s->arena);
    hbitmap_free(s->copy_bitmap);
    g_free(s);
}

int64_t block_copy_cluster_size(BlockCopyState *s)
{
    return s->cluster_size;
}

int64_t block_copy_length(BlockCopyState *s)
{
    return s->len;
}

void block_copy_set_copy_map(BlockCopyState *s, const HBitmap *map)
{
    HBitmapIter hbi;
    int64_t item, gran = INT64_C(1) << hbitmap_granularity(map);

    assert(QLIST_EMPTY(&s->tasks));
    hbitmap_reset_all(s->copy_bitmap);
    hbitmap_iter_init(&hbi, map, 0);
    while ((item = hbitmap_iter_next(&hbi)) >= 0 && item < s->len) {
        hbitmap_set(s->copy_bitmap, item, MIN(gran, s->len - item));
    }
}

void block_copy_mark_all(BlockCopyState *s)
{
    assert(QLIST_EMPTY(&s->tasks));
    hbitmap_set(s->copy_bitmap, 0, s->len);
}

void block_copy_mark_none(BlockCopyState *s)
{
    assert(QLIST_EMPTY(&s->tasks));
    hbitmap_reset_all(s->copy_bitmap);
}

void block_copy_set_dirty(BlockCopyState *s, int64_t offset, int64_t bytes)
{
    if (offset < s->len && bytes > 0) {
        hbitmap_set(s->copy_bitmap, offset, MIN(bytes, s->len - offset));
    }
}

void block_copy_reset(BlockCopyState *s, int64_t offset, int64_t bytes)
{
    if (offset < s->len && bytes > 0) {
        hbitmap_reset(s->copy_bitmap, offset, MIN(bytes, s->len - offset));
    }
}

int coroutine_fn block_copy_reset_unallocated(BlockCopyState *s,
                                              int64_t offset,
                                              int64_t *count)
{
    int64_t cs = s->cluster_size;
    int64_t pnum, unallocated;
    int ret;

    assert(QEMU_IS_ALIGNED(offset, cs) && offset < s->len);
    ret = bdrv_is_allocated(s->source->bs, offset, s->len - offset, &pnum);
    if (ret < 0) {
        return ret;
    }
    /* A cluster with any allocated byte must be copied whole. */
    unallocated = offset + pnum == s->len ? pnum : QEMU_ALIGN_DOWN(pnum, cs);
    if (ret == 0 && unallocated > 0) {
        hbitmap_reset(s->copy_bitmap, offset, unallocated);
        *count = unallocated;
        return 0;
    }
    *count = MIN(QEMU_ALIGN_UP(MAX(pnum, 1), cs), s->len - offset);
    return 1;
}

static BlockCopyTask *block_copy_find_task(BlockCopyState *s, int64_t offset,
                                           int64_t bytes)
{
    BlockCopyTask *t;

    QLIST_FOREACH(t, &s->tasks, next) {
        if (offset < t->offset + t->bytes && t->offset < offset + bytes) {
            return t;
        }
    }
    return NULL;
}

/*
 * A task that a write-behind call for the guest bytes [offset, offset +
 * bytes) must wait for: one that overlaps them and has not read their old
 * data yet.  A safe task has read all of its range; a released one has
 * read its ready range.
 */
static BlockCopyTask *block_copy_find_unread(BlockCopyState *s,
                                             int64_t offset, int64_t bytes)
{
    BlockCopyTask *t;

    QLIST_FOREACH(t, &s->tasks, next) {
        int64_t lo = MAX(offset, t->offset);
        int64_t hi = MIN(offset + bytes, t->offset + t->bytes);

        if (lo >= hi || t->safe) {
            continue;
        }
        if (!t->call && lo >= t->ready_offset &&
            hi <= t->ready_offset + t->ready_bytes) {
            continue;
        }
        return t;
    }
    return NULL;
}

/*
 * Decides how to copy the start of [offset, offset + bytes): returns true
 * if the first *len bytes read as zeroes in the source (whole clusters,
 * or up to the end of the image), false if *len bytes (whole clusters)
 * must be read.  A block status error makes everything data; the read
 * then reports the real problem.
 */
static bool coroutine_fn block_copy_zero_extent(BlockCopyState *s,
                                                int64_t offset, int64_t bytes,
                                                int64_t *len)
{
    int64_t cs = s->cluster_size;
    int64_t pnum = 0;
    int ret;

    ret = bdrv_co_block_status_above(s->source->bs, NULL, offset, bytes,
                                     &pnum, NULL, NULL, NULL);
    if (ret < 0 || pnum <= 0) {
        *len = bytes;
        return false;
    }
    if (ret & BDRV_BLOCK_ZERO) {
        int64_t zero = offset + pnum == s->len ? pnum :
            QEMU_ALIGN_DOWN(pnum, cs);
        if (zero > 0) {
            *len = MIN(zero, bytes);
            return true;
        }
    }
    *len = MIN(QEMU_ALIGN_UP(offset + pnum, cs) - offset, bytes);
    return false;
}

/* A buffer of max_chunk bytes, the size of the largest task, for @t. */
static void *block_copy_buf_get(BlockCopyState *s, BlockCopyTask *t)
{
    void *buf;

    if (t->bytes == s->max_chunk && s->arena) {
        buf = huge_arena_get(s->arena);
        if (buf) {
            return buf;
        }
    }
    if (!s->free_bufs) {
        return qemu_blockalign(s->source->bs, s->max_chunk);
    }
    buf = s->free_bufs->data;
    s->free_bufs = g_slist_delete_link(s->free_bufs, s->free_bufs);
    s->n_free_bufs--;
    return buf;
}

static void block_copy_buf_put(BlockCopyState *s, void *buf)
{
    if (!buf || huge_arena_put(s->arena, buf)) {
        return;
    }
    if (s->n_free_bufs >= BLOCK_COPY_MAX_FREE_BUFS) {
        qemu_vfree(buf);
        return;
    }
    s->free_bufs = g_slist_prepend(s->free_bufs, buf);
    s->n_free_bufs++;
}

/* Parks the caller of @call until one of its tasks ends. */
static void coroutine_fn block_copy_call_wait(BlockCopyCall *call)
{
    call->waiter = qemu_coroutine_self();
    qemu_coroutine_yield();
}

/* Wakes the coroutine parked in *waiter, if any. */
static void block_copy_wake(Coroutine **waiter)
{
    Coroutine *co = *waiter;

    if (co) {
        *waiter = NULL;
        aio_co_wake(co);
    }
}

static void block_copy_call_kick(BlockCopyCall *call)
{
    block_copy_wake(&call->waiter);
}

/* Splits the task's range into zero and data extents (t->extents). */
static void coroutine_fn block_copy_plan(BlockCopyTask *t)
{
    int64_t offset = t->offset;
    int64_t end = t->offset + t->bytes;

    t->extents = g_array_new(FALSE, FALSE, sizeof(BlockCopyExtent));
    while (offset < end) {
        BlockCopyExtent e = { .offset = offset };

        e.zero = block_copy_zero_extent(t->s, offset, end - offset, &e.bytes);
        g_array_append_val(t->extents, e);
        offset += e.bytes;
    }
}

/*
 * Reads the part of [offset, offset + bytes) that lies in [from, to) into
 * the task's buffer.
 *
 * Called from a guest write's before-write notifier, the read must not
 * wait for that (possibly serialising) write.  What it reads is still the
 * old data: the write waits for the ready range, and no other write may
 * touch the rest of the range until the task is safe.
 */
static int coroutine_fn block_copy_read_part(BlockCopyTask *t, int64_t offset,
                                             int64_t bytes, int64_t from,
                                             int64_t to)
{
    int64_t lo = MAX(offset, from);
    int64_t hi = MIN(offset + bytes, to);
    int ret;

    if (lo >= hi) {
        return 0;
    }
    ret = bdrv_co_pread(t->s->source, lo, hi - lo,
                        (uint8_t *)t->buf + (lo - t->offset),
                        BDRV_REQ_NO_SERIALISING);
    if (ret < 0) {
        trace_block_copy_read_fail(t->s, lo, ret);
    }
    return ret;
}

/*
 * The call of a write-behind task has what it waits for: it goes on, and
 * the task holds the source and the target busy until it ends, so that a
 * drain waits for the rest of its reads and for its write.
 */
static void block_copy_task_release(BlockCopyTask *t)
{
    BlockCopyCall *call = t->call;

    t->call = NULL;
    t->s->write_behind_tasks++;
    bdrv_inc_in_flight(t->s->source->bs);
    bdrv_inc_in_flight(t->s->target->bs);
    qemu_co_queue_restart_all(&t->waiters);
    call->running--;
    block_copy_call_kick(call);
}

/*
 * Reads a write-behind task's range into t->buf, zero extents as zeroes
 * so that readers can be served any part of it.  The ready range comes
 * first, then the call is released.
 */
static int coroutine_fn block_copy_read_behind(BlockCopyTask *t,
                                               bool *error_is_read)
{
    int64_t ready_end = t->ready_offset + t->ready_bytes;
    guint i;
    int ret;

    t->buf = block_copy_buf_get(t->s, t);
    for (i = 0; i < t->extents->len; i++) {
        BlockCopyExtent *e = &g_array_index(t->extents, BlockCopyExtent, i);

        if (!e->zero) {
            ret = block_copy_read_part(t, e->offset, e->bytes, t->ready_offset,
                                       ready_end);
            if (ret < 0) {
                *error_is_read = true;
                return ret;
            }
        }
    }
    block_copy_task_release(t);

    for (i = 0; i < t->extents->len; i++) {
        BlockCopyExtent *e = &g_array_index(t->extents, BlockCopyExtent, i);

        if (e->zero) {
            memset((uint8_t *)t->buf + (e->offset - t->offset), 0, e->bytes);
            continue;
        }
        ret = block_copy_read_part(t, e->offset, e->bytes, e->offset,
                                   t->ready_offset);
        if (ret == 0) {
            ret = block_copy_read_part(t, e->offset, e->bytes, ready_end,
                                       e->offset + e->bytes);
        }
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * Writes one extent of the task's range to the target: a zero extent as
 * write-zeroes, a data extent from @buf, which holds the extent's data.
 */
static int coroutine_fn block_copy_write_extent(BlockCopyState *s,
                                                const BlockCopyExtent *e,
                                                const void *buf)
{
    int ret;

    if (e->zero) {
        trace_block_copy_write_zeroes(s, e->offset, e->bytes);
        ret = bdrv_co_pwrite_zeroes(s->target, e->offset, e->bytes,
                                    BDRV_REQ_MAY_UNMAP);
    } else {
        ret = bdrv_co_pwrite(s->target, e->offset, e->bytes, buf,
                             s->write_flags);
    }
    if (ret < 0) {
        trace_block_copy_write_fail(s, e->offset, ret);
    }
    return ret;
}

/* Copies the task's range: each extent read (unless zero) and written. */
static int coroutine_fn block_copy_do_copy(BlockCopyTask *t,
                                           bool *error_is_read)
{
    BlockCopyState *s = t->s;
    void *buf = NULL;
    guint i;
    int ret = 0;

    for (i = 0; i < t->extents->len; i++) {
        BlockCopyExtent *e = &g_array_index(t->extents, BlockCopyExtent, i);

        if (!e->zero) {
            if (!buf) {
                buf = block_copy_buf_get(s, t);
            }
            ret = bdrv_co_pread(s->source, e->offset, e->bytes, buf,
                                BDRV_REQ_NO_SERIALISING);
            if (ret < 0) {
                trace_block_copy_read_fail(s, e->offset, ret);
                *error_is_read = true;
                break;
            }
        }
        ret = block_copy_write_extent(s, e, buf);
        if (ret < 0) {
            *error_is_read = false;
            break;
        }
    }
    block_copy_buf_put(s, buf);
    return ret;
}

/* Writes the range a safe write-behind task holds in t->buf. */
static int coroutine_fn block_copy_write_behind(BlockCopyTask *t)
{
    guint i;
    int ret;

    for (i = 0; i < t->extents->len; i++) {
        BlockCopyExtent *e = &g_array_index(t->extents, BlockCopyExtent, i);

        ret = block_copy_write_extent(t->s, e, (uint8_t *)t->buf +
                                      (e->offset - t->offset));
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

/*
 * A released write-behind task has all the old data in t->buf: readers
 * may use the buffer, and it is done with the source.
 */
static void block_copy_task_set_safe(BlockCopyTask *t)
{
    t->safe = true;
    /* The data is secured: this is the progress a guest write sees. */
    t->s->bytes_done += t->bytes;
    if (t->s->progress_cb) {
        t->s->progress_cb(t->s->progress_opaque, t->bytes);
    }
    t->s->write_behind_bytes += t->bytes;
    bdrv_dec_in_flight(t->s->source->bs);
    qemu_co_queue_restart_all(&t->waiters);
}

/*
 * A task's coroutine: copies, then either keeps the clusters clear
 * (success) or marks them again (failure), and wakes everyone waiting for
 * it.  The task is freed here; waiters never touch it after waking.
 *
 * A write-behind task that fails after its call was released cannot mark
 * its clusters again: the guest write may have changed the source.  The
 * old data is lost, and so is the point in time: s->error records it.
 */
static void coroutine_fn block_copy_task_entry(void *opaque)
{
    BlockCopyTask *t = opaque;
    BlockCopyState *s = t->s;
    bool error_is_read = false;
    bool released;
    int ret;

    block_copy_plan(t);
    if (t->write_behind) {
        ret = block_copy_read_behind(t, &error_is_read);
        if (ret == 0) {
            block_copy_task_set_safe(t);
            ret = block_copy_write_behind(t);
        }
    } else {
        ret = block_copy_do_copy(t, &error_is_read);
    }
    trace_block_copy_task_end(s, t->offset, t->bytes, ret);

    released = !t->call;
    QLIST_REMOVE(t, next);
    s->in_flight_bytes -= t->bytes;
    if (ret < 0 && released) {
        if (!s->error) {
            s->error = ret;
        }
    } else if (ret < 0) {
        hbitmap_set(s->copy_bitmap, t->offset, t->bytes);
        if (!t->call->ret) {
            t->call->ret = ret;
            t->call->error_is_read = error_is_read;
        }
    } else if (!t->safe) {
        s->bytes_done += t->bytes;
        if (s->progress_cb) {
            s->progress_cb(s->progress_opaque, t->bytes);
        }
    }
    qemu_co_queue_restart_all(&t->waiters);
    qemu_co_queue_restart_all(&s->mem_waiters);
    if (released) {
        if (t->safe) {
            s->write_behind_bytes -= t->bytes;
        } else {
            bdrv_dec_in_flight(s->source->bs);
        }
        s->write_behind_tasks--;
        bdrv_dec_in_flight(s->target->bs);
    } else {
        t->call->running--;
        block_copy_call_kick(t->call);
    }
    block_copy_buf_put(s, t->buf);
    g_array_free(t->extents, TRUE);
    g_free(t);
}

/*
 * The part of a write-behind task that its call needs before it may go
 * on: the guest's bytes, widened to whole blocks of the source (at least
 * 4 KiB, so reads stay aligned for O_DIRECT below a format driver), or
 * the whole task if the call named none.
 */
static void block_copy_set_ready_range(BlockCopyTask *t, BlockCopyCall *call)
{
    int64_t align = MAX(4 * KiB, t->s->source->bs->bl.request_alignment);
    int64_t lo = MAX(call->need_offset, t->offset);
    int64_t hi = MIN(call->need_offset + call->need_bytes,
                     t->offset + t->bytes);

    if (lo >= hi) {
        t->ready_offset = t->offset;
        t->ready_bytes = t->bytes;
        return;
    }
    lo = MAX(QEMU_ALIGN_DOWN(lo, align), t->offset);
    hi = MIN(QEMU_ALIGN_UP(hi, align), t->offset + t->bytes);
    t->ready_offset = lo;
    t->ready_bytes = hi - lo;
}

/*
 * Claims [offset, offset + bytes) for @call and starts copying it in a
 * new coroutine.  Nothing yields between finding the range dirty and
 * clearing it here, which is what makes claims exclusive.
 */
static void block_copy_task_start(BlockCopyState *s, BlockCopyCall *call,
                                  int64_t offset, int64_t bytes,
                                  bool write_behind)
{
    BlockCopyTask *t = g_new0(BlockCopyTask, 1);

    t->s = s;
    t->call = call;
    t->offset = offset;
    t->bytes = bytes;
    t->write_behind = write_behind;
    if (write_behind) {
        block_copy_set_ready_range(t, call);
    }
    qemu_co_queue_init(&t->waiters);
    hbitmap_reset(s->copy_bitmap, offset, bytes);
    QLIST_INSERT_HEAD(&s->tasks, t, next);
    s->in_flight_bytes += bytes;
    call->running++;
    trace_block_copy_task_start(s, offset, bytes);
    qemu_coroutine_enter(qemu_coroutine_create(block_copy_task_entry, t));
}

static void block_copy_sleep_cb(void *opaque)
{
    block_copy_call_kick(opaque);
}

/*
 * Rate-limit sleep of @call; block_copy_cancel() cuts the sleep of the
 * background loop short.  The caller has no task running on a kick, so
 * only the timer or cancel can wake it.
 */
static void coroutine_fn block_copy_sleep(BlockCopyCall *call, int64_t ns)
{
    call->sleep_timer = aio_timer_new(qemu_get_aio_context(),
                                      block_copy_sleep_cb, call);
    timer_mod_ns(call->sleep_timer, qemu_clock_get_ns() + ns);
    block_copy_call_wait(call);
    timer_free(call->sleep_timer);
    call->sleep_timer = NULL;
}

/*
 * One pass over [start, end) (cluster aligned, end may be the image end):
 * claims every dirty area and runs it as a task, at most max_workers at a
 * time and within the buffer budget, then waits for its own tasks.  Every
 * yield restarts the search at @pos because others may have claimed
 * clusters meanwhile.
 */
static void coroutine_fn block_copy_pass(BlockCopyState *s,
                                         BlockCopyCall *call,
                                         int64_t start, int64_t end,
                                         bool rate_limited, bool background,
                                         bool write_behind)
{
    int64_t pos = start;

    while (pos < end && !call->ret && !(background && s->cancelled)) {
        int64_t area, area_bytes, avail;

        if (!hbitmap_next_dirty_area(s->copy_bitmap, pos, end, s->max_chunk,
                                     &area, &area_bytes)) {
            break;
        }
        if (call->running >= s->max_workers) {
            block_copy_call_wait(call);
            continue;
        }
        avail = s->max_mem - s->in_flight_bytes;
        if (avail < MIN(area_bytes, s->cluster_size)) {
            qemu_co_queue_wait(&s->mem_waiters, NULL);
            continue;
        }
        if (area_bytes > avail) {
            /* avail >= cluster_size here, so the claim is not empty. */
            area_bytes = QEMU_ALIGN_DOWN(avail, s->cluster_size);
        }
        if (rate_limited && ratelimit_enabled(&s->rate_limit)) {
            int64_t delay = ratelimit_calculate_delay(&s->rate_limit,
                                                      area_bytes);
            if (delay > 0) {
                if (call->running) {
                    /* Let the running tasks finish first: no timer race. */
                    block_copy_call_wait(call);
                } else {
                    trace_block_copy_sleep(s, delay);
                    block_copy_sleep(call, delay);
                }
                continue;
            }
            ratelimit_account(&s->rate_limit, area_bytes);
        }
        block_copy_task_start(s, call, area, area_bytes, write_behind);
        pos = area + area_bytes;
    }
    while (call->running > 0) {
        block_copy_call_wait(call);
    }
}

/*
 * Copies every dirty cluster of the range and waits until each one is
 * copied or, with @write_behind, at least safe: read into the buffer of a
 * task whose write to the target is in flight.  A write-behind call waits
 * only for tasks that are not safe yet; the others are what it would have
 * done itself.  Once a write-behind failed there is nothing left to
 * protect, and a write-behind call returns at once.
 */
static int coroutine_fn block_copy_range(BlockCopyState *s, int64_t offset,
                                         int64_t bytes, bool ignore_ratelimit,
                                         bool write_behind,
                                         bool *error_is_read)
{
    BlockCopyCall call = { 0 };
    int64_t start, end;

    if (bytes <= 0 || offset >= s->len || (write_behind && s->error)) {
        return 0;
    }
    if (write_behind) {
        call.need_offset = offset;
        call.need_bytes = MIN(bytes, s->len - offset);
    }
    start = QEMU_ALIGN_DOWN(offset, s->cluster_size);
    end = MIN(QEMU_ALIGN_UP(offset + bytes, s->cluster_size), s->len);
    trace_block_copy(s, start, end - start);
    s->calls++;
    for (;;) {
        BlockCopyTask *t;

        block_copy_pass(s, &call, start, end, !ignore_ratelimit, false,
                        write_behind);
        if (call.ret) {
            break;
        }
        /* Clusters of the range that others are copying. */
        t = write_behind ? block_copy_find_unread(s, offset, call.need_bytes)
                         : block_copy_find_task(s, start, end - start);
        if (t) {
            trace_block_copy_wait_task(s, t->offset, t->bytes);
            qemu_co_queue_wait(&t->waiters, NULL);
            continue;
        }
        /* A failed task of another caller may have marked clusters again. */
        if (hbitmap_next_dirty(s->copy_bitmap, start, end - start) < 0) {
            break;
        }
    }
    s->calls--;
    if (call.ret && error_is_read) {
        *error_is_read = call.error_is_read;
    }
    return call.ret;
}

int coroutine_fn block_copy(BlockCopyState *s, int64_t offset,
                            int64_t bytes, bool ignore_ratelimit,
                            bool *error_is_read)
{
    return block_copy_range(s, offset, bytes, ignore_ratelimit, false,
                            error_is_read);
}

/*
 * A block_copy() that its caller may stop waiting for.  Shared by the
 * copying coroutine and the waiter; the last of them frees it.
 */
typedef struct BlockCopyDetached {
    BlockCopyState *s;
    int64_t offset;
    int64_t bytes;
    int ret;
    bool write_behind;
    bool error_is_read;
    bool done;
    Coroutine *waiter;          /* NULL once woken (or given up) */
    int refcnt;
} BlockCopyDetached;

static void block_copy_detached_unref(BlockCopyDetached *d)
{
    if (--d->refcnt == 0) {
        g_free(d);
    }
}

static void coroutine_fn block_copy_detached_entry(void *opaque)
{
    BlockCopyDetached *d = opaque;
    BlockDriverState *source_bs = d->s->source->bs;

    d->ret = block_copy_range(d->s, d->offset, d->bytes, true,
                              d->write_behind, &d->error_is_read);
    d->done = true;
    block_copy_wake(&d->waiter);
    bdrv_dec_in_flight(source_bs);
    block_copy_detached_unref(d);
}

static void block_copy_timeout_cb(void *opaque)
{
    BlockCopyDetached *d = opaque;

    block_copy_wake(&d->waiter);
}

int coroutine_fn block_copy_with_timeout(BlockCopyState *s, int64_t offset,
                                         int64_t bytes, int64_t timeout_ns,
                                         bool write_behind,
                                         bool *error_is_read)
{
    BlockCopyDetached *d;
    QEMUTimer *timer;
    int ret;

    if (!timeout_ns) {
        return block_copy_range(s, offset, bytes, true, write_behind,
                                error_is_read);
    }
    d = g_new0(BlockCopyDetached, 1);
    *d = (BlockCopyDetached) {
        .s = s, .offset = offset, .bytes = bytes, .refcnt = 2,
        .write_behind = write_behind,
    };
    /* Drain of the source (and the filter above it) waits for the copy. */
    bdrv_inc_in_flight(s->source->bs);
    qemu_coroutine_enter(qemu_coroutine_create(block_copy_detached_entry, d));
    if (!d->done) {
        timer = aio_timer_new(qemu_get_aio_context(), block_copy_timeout_cb,
                              d);
        timer_mod_ns(timer, qemu_clock_get_ns() + timeout_ns);
        d->waiter = qemu_coroutine_self();
        qemu_coroutine_yield();
        timer_free(timer);
        d->waiter = NULL;
    }
    if (d->done) {
        ret = d->ret;
        if (ret && error_is_read) {
            *error_is_read = d->error_is_read;
        }
    } else {
        trace_block_copy_timeout(s, offset, bytes);
        ret = -ETIMEDOUT;
    }
    block_copy_detached_unref(d);
    return ret;
}

int coroutine_fn block_copy_run(BlockCopyState *s, bool *error_is_read)
{
    BlockCopyCall call = { 0 };
    int ret;

    assert(!s->run_call);
    s->run_call = &call;
    s->calls++;
    for (;;) {
        BlockCopyTask *t;

        block_copy_pass(s, &call, 0, s->len, true, true, false);
        if (call.ret || s->cancelled || s->error) {
            break;
        }
        if (!hbitmap_is_empty(s->copy_bitmap)) {
            continue;
        }
        /* Everything is claimed: wait for copy-before-write still running. */
        t = QLIST_FIRST(&s->tasks);
        if (!t) {
            break;
        }
        qemu_co_queue_wait(&t->waiters, NULL);
    }
    s->calls--;
    s->run_call = NULL;
    ret = call.ret ? call.ret : s->error ? s->error :
        s->cancelled ? -ECANCELED : 0;
    if (ret < 0 && error_is_read) {
        *error_is_read = call.ret && call.error_is_read;
    }
    trace_block_copy_run_end(s, ret);
    return ret;
}

void block_copy_cancel(BlockCopyState *s)
{
    s->cancelled = true;
    if (s->run_call && s->run_call->sleep_timer) {
        block_copy_call_kick(s->run_call);
    }
}

bool block_copy_is_cancelled(BlockCopyState *s)
{
    return s->cancelled;
}

void block_copy_set_speed(BlockCopyState *s, uint64_t speed)
{
    ratelimit_set_speed(&s->rate_limit, speed, BLOCK_COPY_SLICE_NS);
}

void block_copy_set_progress_callback(BlockCopyState *s,
                                      BlockCopyProgressFunc *cb,
                                      void *opaque)
{
    s->progress_cb = cb;
    s->progress_opaque = opaque;
}

bool block_copy_guest_writes_since(BlockCopyState *s, int64_t since_ns)
{
    return s->last_guest_write_ns && s->last_guest_write_ns >= since_ns;
}

int64_t block_copy_bytes_done(BlockCopyState *s)
{
    return s->bytes_done;
}

int64_t block_copy_bytes_remaining(BlockCopyState *s)
{
    return MIN((int64_t)hbitmap_count(s->copy_bitmap), s->len) +
           s->in_flight_bytes - s->write_behind_bytes;
}

bool block_copy_is_cluster_copied(BlockCopyState *s, int64_t offset)
{
    int64_t start = QEMU_ALIGN_DOWN(offset, s->cluster_size);

    assert(offset >= 0 && offset < s->len);
    return !hbitmap_get(s->copy_bitmap, offset) &&
           !block_copy_find_task(s, start, s->cluster_size);
}

bool coroutine_fn block_copy_wait_range_status(BlockCopyState *s,
                                               int64_t offset, int64_t bytes,
                                               int64_t *pnum)
{
    int64_t start = QEMU_ALIGN_DOWN(offset, s->cluster_size);
    int64_t end = QEMU_ALIGN_UP(offset + bytes, s->cluster_size);
    BlockCopyTask *t;

    assert(offset >= 0 && offset < s->len && bytes > 0);
    while ((t = block_copy_find_task(s, start, end - start))) {
        qemu_co_queue_wait(&t->waiters, NULL);
    }
    return hbitmap_status(s->copy_bitmap, offset,
                          MIN(bytes, s->len - offset), pnum);
}

int block_copy_error(BlockCopyState *s)
{
    return s->error;
}

int coroutine_fn block_copy_snapshot_where(BlockCopyState *s, int64_t offset,
                                          int64_t bytes, int64_t *pnum,
                                          const uint8_t **buf)
{
    assert(offset >= 0 && offset < s->len && bytes > 0);
    for (;;) {
        int64_t limit = MIN(offset + bytes, s->len);
        BlockCopyTask *t, *cover = NULL;

        if (s->error) {
            return s->error;
        }
        QLIST_FOREACH(t, &s->tasks, next) {
            if (t->offset <= offset && offset < t->offset + t->bytes) {
                cover = t;
                break;
            }
            if (t->offset > offset && t->offset < limit) {
                limit = t->offset;
            }
        }
        if (cover && !cover->safe) {
            qemu_co_queue_wait(&cover->waiters, NULL);
            continue;
        }
        if (cover) {
            *pnum = MIN(cover->offset + cover->bytes, offset + bytes) - offset;
            *buf = (const uint8_t *)cover->buf + (offset - cover->offset);
            return BLOCK_COPY_IN_BUFFER;
        }
        return hbitmap_status(s->copy_bitmap, offset, limit - offset, pnum) ?
            BLOCK_COPY_IN_SOURCE : BLOCK_COPY_IN_TARGET;
    }
}

/* One piece of a point-in-time read, from the source or the target. */
static int coroutine_fn block_copy_snapshot_read_piece(
    const BlockCopySnapshotReader *r, bool from_source, int64_t offset,
    int64_t bytes, QEMUIOVector *qiov, size_t qiov_offset)
{
    QEMUIOVector local;
    int ret;

    qemu_iovec_init_slice(&local, qiov, qiov_offset, bytes);
    if (from_source && r->read_source) {
        ret = r->read_source(r->opaque, offset, bytes, &local);
    } else if (from_source) {
        ret = bdrv_co_preadv(r->source, offset, bytes, &local,
                             r->source_flags);
    } else {
        ret = bdrv_co_preadv(r->target, offset, bytes, &local, 0);
    }
    qemu_iovec_destroy(&local);
    return ret;
}

int coroutine_fn block_copy_snapshot_preadv(BlockCopyState *s,
                                           const BlockCopySnapshotReader *r,
                                           int64_t offset, int64_t bytes,
                                           QEMUIOVector *qiov,
                                           size_t qiov_offset)
{
    while (bytes > 0) {
        const uint8_t *buf = NULL;
        int64_t pnum = bytes;
        int where = BLOCK_COPY_IN_SOURCE;
        int ret = 0;

        if (offset < s->len) {
            where = block_copy_snapshot_where(s, offset, bytes, &pnum, &buf);
            if (where < 0) {
                return where;
            }
        }
        if (r->check) {
            ret = r->check(r->opaque, offset, &pnum);
            if (ret < 0) {
                return ret;
            }
        }
        if (where == BLOCK_COPY_IN_BUFFER) {
            /* Old data whose copy to the target is still in flight. */
            qemu_iovec_from_buf(qiov, qiov_offset, buf, pnum);
        } else {
            ret = block_copy_snapshot_read_piece(
                r, where == BLOCK_COPY_IN_SOURCE, offset, pnum, qiov,
                qiov_offset);
        }
        if (ret < 0) {
            return ret;
        }
        offset += pnum;
        bytes -= pnum;
        qiov_offset += pnum;
    }
    return 0;
}

struct BlockCopyNotifier {
    BdrvBeforeWriteNotifier n;
    BlockCopyState *s;
    BdrvChild *fleecing_edge;   /* the target's backing edge to bs, hooked */
};

/* A read of the source through the fleecing target's backing edge. */
static int coroutine_fn block_copy_fleecing_read(BdrvChild *c, int64_t offset,
                                                int64_t bytes,
                                                QEMUIOVector *qiov,
                                                BdrvRequestFlags flags)
{
    BlockCopyState *s = c->read_hook_opaque;
    /*
     * The source read must not wait for a serialising guest write: that
     * write may be queued before its copy, and would land first.  The
     * write waits for this read after its copy instead.
     */
    BlockCopySnapshotReader r = {
        .source = c,
        .target = s->target,
        .source_flags = flags | BDRV_REQ_NO_READ_HOOK |
                        BDRV_REQ_NO_SERIALISING,
    };

    return block_copy_snapshot_preadv(s, &r, offset, bytes, qiov, 0);
}

/*
 * Runs inside the guest request, after it is tracked and before the
 * driver sees it.  The covered range includes the aligned blocks of a
 * read-modify-write.  Writes that keep the data (WRITE_UNCHANGED) need no
 * copy.
 *
 * When the target's backing is the source (fleecing), a reader of the
 * target that found a cluster not yet copied reads it from the source
 * through that backing edge.  Such a read may still be in flight when the
 * copy completes, so the guest write also waits for it: otherwise the
 * write could land in the middle of the read and the reader would see
 * data newer than the point in time.  The reader registers its read
 * without yielding after finding the cluster unallocated, so a read that
 * is not listed here found the copied cluster in the target.
 */
static int coroutine_fn block_copy_before_write(BdrvBeforeWriteNotifier *n,
                                                BdrvTrackedRequest *req)
{
    BlockCopyNotifier *bn = container_of(n, BlockCopyNotifier, n);
    int64_t start = MIN(req->offset, req->overlap_offset);
    int64_t end = MAX(req->offset + req->bytes,
                      req->overlap_offset + req->overlap_bytes);
    int ret;

    if (req->flags & BDRV_REQ_WRITE_UNCHANGED) {
        return 0;
    }
    if (req->deferred) {
        /*
         * Nobody waits for a deferred write (io.c): reading its old
         * clusters whole, in one request each, costs it less than the
         * usual early release after its own bytes.
         */
        start = QEMU_ALIGN_DOWN(start, bn->s->cluster_size);
        end = QEMU_ALIGN_UP(end, bn->s->cluster_size);
    }
    bn->s->last_guest_write_ns = qemu_clock_get_ns();
    ret = block_copy_range(bn->s, start, end - start, true, true, NULL);
    if (ret == 0) {
        bdrv_co_wait_reads_from(req, bn->s->target->bs);
    }
    return ret;
}

/*
 * A write may complete before its copy while the copy has clusters left
 * to do and nothing failed yet: a failure after that point could not be
 * reported to the guest any more than a write-behind failure can.
 */
static bool block_copy_may_defer(BdrvBeforeWriteNotifier *n, int64_t offset,
                                 int64_t bytes)
{
    BlockCopyNotifier *bn = container_of(n, BlockCopyNotifier, n);
    BlockCopyState *s = bn->s;
    int64_t start = QEMU_ALIGN_DOWN(offset, s->cluster_size);
    int64_t end = MIN(offset + bytes, s->len);

    return !s->error && start < end &&
           hbitmap_next_dirty(s->copy_bitmap, start, end - start) >= 0;
}

BlockCopyNotifier *block_copy_install_notifier(BlockCopyState *s,
                                               BlockDriverState *bs,
                                               bool write_back)
{
    BlockCopyNotifier *bn = g_new0(BlockCopyNotifier, 1);

    bn->s = s;
    bn->n.notify = block_copy_before_write;
    if (write_back) {
        bn->n.may_defer = block_copy_may_defer;
    }
    bdrv_add_before_write_notifier(bs, &bn->n);
    if (s->target->bs->backing && s->target->bs->backing->bs == bs &&
        !s->target->bs->backing->read_hook) {
        bn->fleecing_edge = s->target->bs->backing;
        bn->fleecing_edge->read_hook_opaque = s;
        bn->fleecing_edge->read_hook = block_copy_fleecing_read;
    }
    return bn;
}

void block_copy_remove_notifier(BlockCopyNotifier *n)
{
    if (n) {
        if (n->fleecing_edge) {
            n->fleecing_edge->read_hook = NULL;
            n->fleecing_edge->read_hook_opaque = NULL;
        }
        bdrv_remove_before_write_notifier(&n->n);
        g_free(n);
    }
}
