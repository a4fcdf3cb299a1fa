/*
 * The backup job (see include/block/backup.h and docs/backup.md).
 *
 * Ownership: the job holds the source through its "main node" edge and the
 * target through a "target" edge; the block-copy state borrows both edges
 * and is freed in backup_clean(), before the job layer releases the edges.
 * The before-write notifier lives from backup_job_create() to
 * backup_clean(), so every guest write between the two is copied first.
 */
#include "qemu/osdep.h"
#include "block/backup.h"
#include "block/block-copy.h"
#include "block/block_int.h"
#include "block-trace.h"

/*
 * Bytes the background loop hands to block_copy() at a time when the
 * source is read with cache.direct=on.  Block-copy runs a chunk as 1 MiB
 * tasks that start together, so their adjacent reads and writes reach the
 * disk side by side and the kernel merges them into requests of up to
 * 4 MiB, which a virtio disk serves faster than 1 MiB ones.  Through the
 * page cache the kernel reads ahead and writes back in its own units, and
 * 1 MiB chunks (BACKUP_SMALL_CHUNK) were faster (docs/benchmarks.md,
 * "Full backup").
 */
#define BACKUP_CHUNK (4 * MiB)
/* Chunks the background loop keeps in flight (64 MiB of 4 MiB chunks). */
#define BACKUP_MAX_WORKERS 16
/*
 * While the guest writes (seen within the last BACKUP_GUEST_WINDOW_NS),
 * one chunk of BACKUP_SMALL_CHUNK at a time: every byte in flight is a
 * read or a write in the disk's queue ahead of the guest's requests.
 */
#define BACKUP_GUEST_WORKERS 1
#define BACKUP_GUEST_WINDOW_NS (100 * 1000 * 1000)
/*
 * Chunk size through the page cache, beside a busy guest, and of a
 * rate-limited job, which copies one chunk and then sleeps for what it
 * copied: smaller chunks keep its pace even.
 */
#define BACKUP_SMALL_CHUNK (1 * MiB)
/* How long sync=none sleeps between checks for cancel. */
#define BACKUP_IDLE_NS 1000000000LL
/* Pause after an ignored error before the retry, so the loop can run. */
#define BACKUP_RETRY_NS 10000000LL

typedef struct BackupState {
    BlockJob *bjob;
    BdrvChild *source;
    BdrvChild *target;
    BlockCopyState *bcs;
    BlockCopyNotifier *notifier;
    MirrorSyncMode sync;
    BdrvDirtyBitmap *sync_bitmap;   /* frozen, with a successor */
    BitmapSyncMode bitmap_mode;
    BlockdevOnError on_source_error;
    BlockdevOnError on_target_error;
    int64_t len;
    int64_t idle_chunk;             /* chunk size while the guest is idle */
} BackupState;

static BackupState *backup_state(Job *job)
{
    return block_job_from_job(job)->opaque;
}

static void backup_progress(void *opaque, int64_t bytes)
{
    BackupState *s = opaque;

    job_progress_update(s->bjob->job, bytes);
}

/* sync=top: unmark what the top layer does not allocate. */
static int coroutine_fn backup_reset_unallocated(BackupState *s)
{
    int64_t offset, count;
    int ret;

    for (offset = 0; offset < s->len; offset += count) {
        if (job_is_cancelled(s->bjob->job)) {
            return -ECANCELED;
        }
        ret = block_copy_reset_unallocated(s->bcs, offset, &count);
        if (ret < 0) {
            return ret;
        }
        job_progress_set_remaining(s->bjob->job,
                                   block_copy_bytes_remaining(s->bcs));
        job_pause_point(s->bjob->job);
    }
    return 0;
}

static bool backup_chunk_copied(BackupState *s, int64_t offset, int64_t bytes)
{
    int64_t cluster = block_copy_cluster_size(s->bcs);
    int64_t o;

    for (o = offset; o < offset + bytes; o += cluster) {
        if (!block_copy_is_cluster_copied(s->bcs, o)) {
            return false;
        }
    }
    return true;
}

/*
 * Applies the error policy to a failed chunk: returns 0 when the chunk is
 * to be copied again, or the error when the policy says report.  Stop
 * pauses the job (io-status set) here, and the retry follows the resume;
 * ignore retries after a short sleep.
 */
static int coroutine_fn backup_handle_error(BackupState *s, int64_t offset,
                                            int ret, bool is_read)
{
    Job *job = s->bjob->job;
    BlockErrorAction action;

    if (is_read) {
        trace_backup_chunk_read_fail(job, offset, ret);
    } else {
        trace_backup_chunk_write_fail(job, offset, ret);
    }
    action = block_job_error_action(s->bjob, is_read ? s->on_source_error
                                                     : s->on_target_error,
                                    is_read, ret);
    if (action == BLOCK_ERROR_ACTION_REPORT) {
        /* The job layer reports strerror(), as QEMU's backup does. */
        return ret;
    }
    if (action == BLOCK_ERROR_ACTION_IGNORE) {
        job_sleep_ns(job, BACKUP_RETRY_NS);
    } else {
        job_pause_point(job);
    }
    return job_is_cancelled(job) ? -ECANCELED : 0;
}

/*
 * The background copy keeps up to BACKUP_MAX_WORKERS chunks in flight,
 * each copied by block_copy() in its own coroutine, because one chunk at a
 * time leaves the disk idle while a read waits for the previous write.
 * While the guest writes it keeps one (BACKUP_GUEST_WORKERS): the guest's
 * requests then wait behind one chunk of reads and writes, not sixteen.
 *
 * The job's coroutine is the only dispatcher: it alone passes pause
 * points, sleeps for the rate limit and applies the error policy, so the
 * job layer only ever sees its own coroutine.  A chunk coroutine copies,
 * records a failure and wakes the dispatcher if it waits; it never
 * touches the job.  Before a pause point, an error action or returning,
 * the dispatcher waits until no chunk is in flight: a paused job issues
 * no I/O and nothing outlives the loop.
 */
typedef struct BackupDispatch {
    BackupState *s;
    int running;                /* chunk coroutines in flight */
    Coroutine *waiter;          /* the dispatcher, waiting for a chunk */
    int ret;                    /* error of the lowest failed chunk */
    int64_t err_offset;         /* that chunk's offset, or -1 */
    bool err_is_read;
} BackupDispatch;

typedef struct BackupChunk {
    BackupDispatch *d;
    int64_t offset;
    int64_t bytes;
} BackupChunk;

static void coroutine_fn backup_chunk_entry(void *opaque)
{
    BackupChunk *c = opaque;
    BackupDispatch *d = c->d;
    Job *job = d->s->bjob->job;
    bool is_read = false;
    int ret;

    trace_backup_chunk_enter(job, c->offset, c->bytes);
    ret = block_copy(d->s->bcs, c->offset, c->bytes, true, &is_read);
    trace_backup_chunk_process(job, c->offset, c->bytes, ret);
    if (ret < 0 && (d->err_offset < 0 || c->offset < d->err_offset)) {
        d->ret = ret;
        d->err_offset = c->offset;
        d->err_is_read = is_read;
    }
    d->running--;
    if (d->waiter) {
        Coroutine *co = d->waiter;

        d->waiter = NULL;
        aio_co_wake(co);
    }
    g_free(c);
}

/* Parks the dispatcher until fewer than @max chunks are in flight. */
static void coroutine_fn backup_dispatch_wait(BackupDispatch *d, int max)
{
    while (d->running > max) {
        d->waiter = qemu_coroutine_self();
        qemu_coroutine_yield();
    }
}

/*
 * Whether the dispatcher must stop handing out chunks: every chunk in
 * flight must end before the job pauses, fails or ends.
 */
static bool backup_dispatch_must_drain(BackupDispatch *d)
{
    Job *job = d->s->bjob->job;

    return d->err_offset >= 0 || job_is_cancelled(job) ||
           job_is_paused(job);
}

/*
 * How many chunks the dispatcher may have in flight now, and their size.
 * A rate-limited job copies one at a time (see backup_loop()).
 */
static int backup_max_chunks(BackupState *s, bool limited, int64_t *chunk)
{
    int64_t since = qemu_clock_get_ns() - BACKUP_GUEST_WINDOW_NS;

    if (limited) {
        *chunk = BACKUP_SMALL_CHUNK;
        return 1;
    }
    if (block_copy_guest_writes_since(s->bcs, since)) {
        *chunk = BACKUP_SMALL_CHUNK;
        return BACKUP_GUEST_WORKERS;
    }
    *chunk = s->idle_chunk;
    return BACKUP_MAX_WORKERS;
}

static int coroutine_fn backup_loop(BackupState *s)
{
    Job *job = s->bjob->job;
    BackupDispatch d = { .s = s, .err_offset = -1 };
    int64_t offset = 0, bytes, chunk, done;
    int max_chunks;
    bool limited;
    int ret;

    while (offset < s->len || d.running) {
        BackupChunk *c;

        if (offset >= s->len || backup_dispatch_must_drain(&d)) {
            backup_dispatch_wait(&d, 0);
            if (job_is_cancelled(job)) {
                return -ECANCELED;
            }
            if (d.err_offset >= 0) {
                ret = backup_handle_error(s, d.err_offset, d.ret,
                                          d.err_is_read);
                if (ret < 0) {
                    return ret;
                }
                /* Chunks past it that succeeded are skipped below. */
                offset = d.err_offset;
                d.err_offset = -1;
            }
            job_pause_point(job);
            continue;
        }
        limited = ratelimit_enabled(&s->bjob->limit);
        max_chunks = backup_max_chunks(s, limited, &chunk);
        bytes = MIN(chunk, s->len - offset);
        if (backup_chunk_copied(s, offset, bytes)) {
            trace_backup_chunk_skip(job, offset, bytes);
            offset += bytes;
            continue;
        }
        /*
         * A rate-limit sleep passes a pause point, where nothing may be in
         * flight, so a limited job copies one chunk at a time and is
         * charged for what the chunk really copied.
         */
        backup_dispatch_wait(&d, max_chunks - 1);
        if (backup_dispatch_must_drain(&d)) {
            continue;
        }
        done = block_copy_bytes_done(s->bcs);
        c = g_new(BackupChunk, 1);
        c->d = &d;
        c->offset = offset;
        c->bytes = bytes;
        d.running++;
        offset += bytes;
        qemu_coroutine_enter(qemu_coroutine_create(backup_chunk_entry, c));
        if (limited) {
            backup_dispatch_wait(&d, 0);
            block_job_ratelimit_sleep(s->bjob,
                                      block_copy_bytes_done(s->bcs) - done);
        }
    }
    return 0;
}

static int coroutine_fn backup_run(Job *job, Error **errp)
{
    BackupState *s = backup_state(job);
    int ret;

    trace_backup_run(job, s->sync, s->len);
    if (s->sync == MIRROR_SYNC_MODE_NONE) {
        /*
         * Only copy-before-write works; the job lasts until cancelled, or
         * until a copy written behind its guest write fails.
         */
        while (!job_is_cancelled(job)) {
            if (block_copy_error(s->bcs)) {
                return block_copy_error(s->bcs);
            }
            job_sleep_ns(job, BACKUP_IDLE_NS);
        }
        return -ECANCELED;
    }
    if (s->sync == MIRROR_SYNC_MODE_TOP) {
        ret = backup_reset_unallocated(s);
        if (ret < 0) {
            return ret;
        }
    }
    return backup_loop(s);
}

/* After failure with bitmap-mode=always: drop the bits that were copied. */
static void backup_clear_copied_bits(BackupState *s)
{
    int64_t cluster = block_copy_cluster_size(s->bcs);
    int64_t offset;

    for (offset = 0; offset < s->len; offset += cluster) {
        if (block_copy_is_cluster_copied(s->bcs, offset)) {
            bdrv_reset_dirty_bitmap(s->sync_bitmap, offset,
                                    MIN(cluster, s->len - offset));
        }
    }
}

/*
 * QEMU's bitmap semantics: on success, on-success and always replace the
 * bitmap by its successor (the writes since the job started); never
 * merges the successor back.  On failure, on-success and never merge back
 * everything; always first clears the copied bits.
 */
static void backup_cleanup_sync_bitmap(BackupState *s, bool success)
{
    if (!s->sync_bitmap) {
        return;
    }
    if (success && s->bitmap_mode != BITMAP_SYNC_MODE_NEVER) {
        bdrv_dirty_bitmap_abdicate(s->sync_bitmap, &error_abort);
    } else {
        if (!success && s->bitmap_mode == BITMAP_SYNC_MODE_ALWAYS) {
            backup_clear_copied_bits(s);
        }
        bdrv_reclaim_dirty_bitmap(s->sync_bitmap, &error_abort);
    }
    s->sync_bitmap = NULL;
}

static void backup_commit(Job *job)
{
    backup_cleanup_sync_bitmap(backup_state(job), true);
}

static void backup_abort(Job *job)
{
    backup_cleanup_sync_bitmap(backup_state(job), false);
}

/*
 * Stops copy-before-write and frees the copy state.  Draining first lets
 * guest writes whose copy is in flight finish inside the notifier.
 */
static void backup_clean(Job *job)
{
    BackupState *s = backup_state(job);

    if (s->source) {
        bdrv_drain(s->source->bs);
    }
    if (s->notifier) {
        block_copy_remove_notifier(s->notifier);
        s->notifier = NULL;
    }
    if (s->bcs) {
        block_copy_state_free(s->bcs);
        s->bcs = NULL;
    }
    if (s->target) {
        bdrv_drain(s->target->bs);
        bdrv_flush(s->target->bs);
    }
}

static void backup_free(Job *job)
{
    g_free(backup_state(job));
    block_job_free(job);
}

static const JobDriver backup_job_driver = {
    .type = JOB_TYPE_BACKUP,
    .is_block_job = true,
    .run = backup_run,
    .resume = block_job_resume_hook,
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
    .event_pending = block_job_event_pending,
    .event_finished = block_job_event_finished,
    .free = backup_free,
};

/* Checks that do not need the job, with QEMU's messages. */
static bool backup_check_args(BlockDriverState *bs, BlockDriverState *target,
                              const BackupJobOptions *opts, Error **errp)
{
    int64_t len, target_len;
    Job *user;

    if (bs == target) {
        error_setg(errp, "Source and target cannot be the same");
        return false;
    }
    user = job_using_node(target);
    if (user) {
        error_setg(errp, "Node '%s' is busy: block device is in use by "
                   "block job: %s", bdrv_get_node_name(target),
                   JobType_str(user->driver->type));
        return false;
    }
    if (bdrv_is_read_only(target)) {
        error_setg(errp, "Target node '%s' is read-only",
                   bdrv_get_node_name(target));
        return false;
    }
    if (opts->compress && !target->drv->bdrv_co_pwritev_compressed) {
        error_setg(errp, "Compression is not supported for this drive %s",
                   bdrv_get_node_name(target));
        return false;
    }
    len = bdrv_getlength(bs);
    if (len < 0) {
        error_setg_errno(errp, -len, "Unable to get length for '%s'",
                         bdrv_get_node_name(bs));
        return false;
    }
    target_len = bdrv_getlength(target);
    if (target_len < 0) {
        error_setg_errno(errp, -target_len, "Unable to get length for '%s'",
                         bdrv_get_node_name(target));
        return false;
    }
    if (target_len != len) {
        error_setg(errp, "Source and target image have different sizes");
        return false;
    }
    if (opts->bitmap &&
        bdrv_dirty_bitmap_check(opts->bitmap, BDRV_BITMAP_DEFAULT, errp)) {
        return false;
    }
    return true;
}

/* The clusters to copy: everything, or what the bitmap marks. */
static void backup_init_copy_map(BackupState *s)
{
    int64_t offset, bytes;

    if (s->sync != MIRROR_SYNC_MODE_BITMAP &&
        s->sync != MIRROR_SYNC_MODE_INCREMENTAL) {
        block_copy_mark_all(s->bcs);
        return;
    }
    block_copy_mark_none(s->bcs);
    offset = 0;
    while (bdrv_dirty_bitmap_next_dirty_area(s->sync_bitmap, offset, s->len,
                                             INT64_MAX, &offset, &bytes)) {
        block_copy_set_dirty(s->bcs, offset, bytes);
        offset += bytes;
    }
}

/*
 * Whether @bs reads its data from a node opened with cache.direct=on,
 * following format and filter nodes down to the protocol node.
 */
static bool backup_reads_bypass_cache(BlockDriverState *bs)
{
    while (bdrv_file_bs(bs)) {
        bs = bdrv_file_bs(bs);
    }
    return bs->open_flags & BDRV_O_NOCACHE;
}

BlockJob *backup_job_new(const char *job_id, BlockDriverState *bs,
                         BlockDriverState *target,
                         const BackupJobOptions *opts, Error **errp)
{
    BlockCopyOptions bc_opts = {
        .compress = opts->compress,
        /* sync=none fills a fleecing image, which its export reads back. */
        .dontcache = opts->sync != MIRROR_SYNC_MODE_NONE,
        .max_workers = opts->max_workers,
        .max_chunk = opts->max_chunk,
    };
    BackupState *s;
    BlockJob *bjob;

    if (!backup_check_args(bs, target, opts, errp)) {
        return NULL;
    }
    s = g_new0(BackupState, 1);
    s->sync = opts->sync;
    if (s->sync == MIRROR_SYNC_MODE_TOP && !bdrv_backing_bs(bs)) {
        /* Nothing below the top layer: top is full. */
        s->sync = MIRROR_SYNC_MODE_FULL;
    }
    s->bitmap_mode = opts->bitmap_mode;
    s->on_source_error = opts->on_source_error;
    s->on_target_error = opts->on_target_error;
    s->len = bdrv_getlength(bs);
    s->idle_chunk = backup_reads_bypass_cache(bs) ? BACKUP_CHUNK :
                                                    BACKUP_SMALL_CHUNK;

    bjob = block_job_create(job_id, &backup_job_driver, bs, opts->speed,
                            opts->job_flags, s, errp);
    if (!bjob) {
        g_free(s);
        return NULL;
    }
    s->bjob = bjob;
    s->source = bjob->main_node;
    s->target = job_add_node(bjob->job, target, "target", errp);
    if (s->target) {
        s->bcs = block_copy_state_new(s->source, s->target, &bc_opts, errp);
    }
    if (s->bcs && opts->bitmap &&
        bdrv_dirty_bitmap_create_successor(opts->bitmap, errp) == 0) {
        s->sync_bitmap = opts->bitmap;
    }
    if (!s->bcs || (opts->bitmap && !s->sync_bitmap)) {
        /* Nothing ran yet: undo in reverse order; the job drops its edges. */
        if (s->bcs) {
            block_copy_state_free(s->bcs);
        }
        block_job_early_fail(bjob);
        g_free(s);
        return NULL;
    }
    backup_init_copy_map(s);
    block_copy_set_progress_callback(s->bcs, backup_progress, s);
    job_progress_set_remaining(bjob->job, block_copy_bytes_remaining(s->bcs));
    /*
     * From here on, guest writes to the source copy the old data first.
     * They may complete before that copy (write-back): the job already
     * fails, rather than the guest write, when a copy written behind it
     * fails, so the guest loses no error report it would otherwise get
     * that a flush does not give it.
     */
    s->notifier = block_copy_install_notifier(s->bcs, bs, true);
    return bjob;
}

BlockJob *backup_job_create(const char *job_id, BlockDriverState *bs,
                            BlockDriverState *target,
                            const BackupJobOptions *opts, Error **errp)
{
    BlockJob *bjob = backup_job_new(job_id, bs, target, opts, errp);

    if (bjob) {
        job_start(bjob->job);
    }
    return bjob;
}
