/*
 * The transaction QMP command: several block actions applied all or
 * nothing.
 *
 * Every action is prepared in list order; a prepare does the work in a
 * way that can still be undone (a bitmap added, an overlay installed, a
 * backup job created with copy-before-write active but not started) and
 * keeps what its abort needs.  If one prepare fails, the actions prepared
 * before it are aborted in reverse order and the command fails with that
 * error.  Otherwise every action commits in order (nothing can fail any
 * more), and only then are the backup jobs started, so that all of them
 * and any bitmap change share one point in time: nothing else runs in the
 * main loop between the prepares and the starts.
 *
 * With completion-mode=grouped the backup jobs form a job transaction
 * (job_txn_*() in job.c): they succeed or are cancelled together.  Only
 * the backup actions accept that mode (QEMU 7.2's rule and messages).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/blockjob.h"
#include "block/dirty-bitmap.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-commands.h"

typedef struct TxnState TxnState;

typedef struct TxnActionOps {
    bool grouped_ok;            /* accepts completion-mode=grouped */
    /* Does the undoable part; false with @errp set if it did nothing. */
    bool (*prepare)(TxnState *s, Error **errp);
    /* Optional: makes the prepared change final. */
    void (*commit)(TxnState *s);
    /* Optional: undoes the prepared change. */
    void (*abort)(TxnState *s);
} TxnActionOps;

/* One action of the command and its undo state. */
struct TxnState {
    TransactionAction *action;
    const TxnActionOps *ops;
    JobTxn *job_txn;            /* grouped: the backups' group, else NULL */

    BlockDriverState *bs;       /* snapshot: the node below the overlay */
    BlockDriverState *overlay;  /* snapshot: the installed overlay */
    BdrvDirtyBitmap *bitmap;    /* bitmap actions: the bitmap touched */
    HBitmap *backup;            /* clear/merge: the old contents */
    bool was_enabled;           /* enable/disable: the old state */
    bool was_persistent;        /* remove: the old persistence */
    BlockJob *job;              /* backups: the created, unstarted job */
};

/* ---- abort ---- */

static bool abort_prepare(TxnState *s, Error **errp)
{
    error_setg(errp, "Transaction aborted using Abort action");
    return false;
}

/* ---- dirty bitmaps ---- */

static BlockDriverState *txn_bitmap_node(const char *node, Error **errp)
{
    BlockDriverState *bs = bdrv_lookup_bs(node, node, NULL);

    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
    }
    return bs;
}

static bool bitmap_add_prepare(TxnState *s, Error **errp)
{
    BlockDirtyBitmapAdd *arg = s->action->u.block_dirty_bitmap_add.data;
    BlockDriverState *bs = bdrv_lookup_bs(arg->node, arg->node, errp);

    if (!bs) {
        return false;
    }
    s->bitmap = block_dirty_bitmap_add(bs, arg->name, arg->has_granularity,
                                       arg->granularity,
                                       arg->has_persistent && arg->persistent,
                                       arg->has_disabled && arg->disabled,
                                       errp);
    return s->bitmap != NULL;
}

/* The bitmap was created in memory only; it is stored at close. */
static void bitmap_add_abort(TxnState *s)
{
    bdrv_release_dirty_bitmap(s->bitmap);
}

/*
 * Remove: the bitmap leaves the image (if persistent) at prepare but
 * stays in memory until commit, so that abort can make it persistent
 * again (it is then stored at close as before).
 */
static bool bitmap_remove_prepare(TxnState *s, Error **errp)
{
    BlockDirtyBitmap *arg = s->action->u.block_dirty_bitmap_remove.data;
    BlockDriverState *bs = txn_bitmap_node(arg->node, errp);
    BdrvDirtyBitmap *bitmap;

    if (!bs) {
        return false;
    }
    bitmap = bdrv_find_dirty_bitmap(bs, arg->name);
    s->was_persistent = bitmap && bdrv_dirty_bitmap_get_persistence(bitmap);
    s->bitmap = block_dirty_bitmap_remove(bs, arg->name, false, errp);
    if (!s->bitmap) {
        return false;
    }
    /* Busy until commit: no later action of this transaction may use it. */
    bdrv_dirty_bitmap_set_busy(s->bitmap, true);
    return true;
}

static void bitmap_remove_commit(TxnState *s)
{
    bdrv_dirty_bitmap_set_busy(s->bitmap, false);
    bdrv_release_dirty_bitmap(s->bitmap);
}

static void bitmap_remove_abort(TxnState *s)
{
    bdrv_dirty_bitmap_set_busy(s->bitmap, false);
    bdrv_dirty_bitmap_set_persistence(s->bitmap, s->was_persistent);
}

/* The bitmap a clear/enable/disable names, checked as the commands do. */
static BdrvDirtyBitmap *txn_bitmap_lookup(BlockDirtyBitmap *arg,
                                          uint32_t flags, Error **errp)
{
    BlockDriverState *bs = txn_bitmap_node(arg->node, errp);
    BdrvDirtyBitmap *bitmap;

    if (!bs) {
        return NULL;
    }
    bitmap = block_dirty_bitmap_lookup(bs, arg->name, errp);
    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, flags, errp)) {
        return NULL;
    }
    return bitmap;
}

static bool bitmap_clear_prepare(TxnState *s, Error **errp)
{
    s->bitmap = txn_bitmap_lookup(s->action->u.block_dirty_bitmap_clear.data,
                                  BDRV_BITMAP_DEFAULT, errp);
    if (!s->bitmap) {
        return false;
    }
    bdrv_clear_dirty_bitmap(s->bitmap, &s->backup);
    return true;
}

/* Clear and merge keep the old contents until commit or abort. */
static void bitmap_backup_commit(TxnState *s)
{
    if (s->backup) {
        hbitmap_free(s->backup);
    }
}

static void bitmap_backup_abort(TxnState *s)
{
    if (s->backup) {
        bdrv_restore_dirty_bitmap(s->bitmap, s->backup);
    }
}

static bool bitmap_enable_prepare(TxnState *s, Error **errp)
{
    s->bitmap = txn_bitmap_lookup(s->action->u.block_dirty_bitmap_enable.data,
                                  BDRV_BITMAP_ALLOW_RO, errp);
    if (!s->bitmap) {
        return false;
    }
    s->was_enabled = bdrv_dirty_bitmap_enabled(s->bitmap);
    bdrv_enable_dirty_bitmap(s->bitmap);
    return true;
}

static bool bitmap_disable_prepare(TxnState *s, Error **errp)
{
    s->bitmap = txn_bitmap_lookup(s->action->u.block_dirty_bitmap_disable.data,
                                  BDRV_BITMAP_ALLOW_RO, errp);
    if (!s->bitmap) {
        return false;
    }
    s->was_enabled = bdrv_dirty_bitmap_enabled(s->bitmap);
    bdrv_disable_dirty_bitmap(s->bitmap);
    return true;
}

static void bitmap_enabled_abort(TxnState *s)
{
    if (s->was_enabled) {
        bdrv_enable_dirty_bitmap(s->bitmap);
    } else {
        bdrv_disable_dirty_bitmap(s->bitmap);
    }
}

static bool bitmap_merge_prepare(TxnState *s, Error **errp)
{
    BlockDirtyBitmapMerge *arg = s->action->u.block_dirty_bitmap_merge.data;

    s->bitmap = block_dirty_bitmap_merge_list(arg->node, arg->target,
                                              arg->bitmaps, &s->backup, errp);
    return s->bitmap != NULL;
}

/* ---- external snapshots ---- */

static bool snapshot_sync_prepare(TxnState *s, Error **errp)
{
    s->overlay = external_snapshot_sync_install(
        s->action->u.blockdev_snapshot_sync.data, &s->bs, errp);
    return s->overlay != NULL;
}

/* The edges moved onto the overlay hold it now. */
static void snapshot_sync_commit(TxnState *s)
{
    bdrv_unref(s->overlay);
}

/* The graph goes back; the overlay closes (its image file stays). */
static void snapshot_sync_abort(TxnState *s)
{
    external_snapshot_uninstall(s->bs, s->overlay);
    bdrv_unref(s->overlay);
}

static bool snapshot_prepare(TxnState *s, Error **errp)
{
    BlockdevSnapshot *arg = s->action->u.blockdev_snapshot.data;

    return external_snapshot_install(arg->node, arg->overlay, &s->bs,
                                     &s->overlay, errp);
}

/* The monitor keeps owning the overlay: only the graph goes back. */
static void snapshot_abort(TxnState *s)
{
    external_snapshot_uninstall(s->bs, s->overlay);
}

/* ---- backups ---- */

static bool backup_job_prepared(TxnState *s, BlockJob *job)
{
    s->job = job;
    if (job && s->job_txn) {
        job_txn_add_job(s->job_txn, job->job);
    }
    return job != NULL;
}

static bool drive_backup_prepare(TxnState *s, Error **errp)
{
    DriveBackup *arg = s->action->u.drive_backup.data;

    return backup_job_prepared(s, drive_backup_new_job(arg, errp));
}

static bool blockdev_backup_prepare(TxnState *s, Error **errp)
{
    BlockdevBackup *arg = s->action->u.blockdev_backup.data;

    return backup_job_prepared(s, blockdev_backup_new_job(arg, errp));
}

/*
 * The job never ran: cancelling it in state created finalizes it at once
 * (copy-before-write removed, bitmap successor merged back, nodes
 * released), with the events of a cancelled job.
 */
static void backup_abort(TxnState *s)
{
    job_cancel(s->job->job, true);
}

/* ---- the command ---- */

static const TxnActionOps txn_ops[TRANSACTION_ACTION_KIND__MAX] = {
    [TRANSACTION_ACTION_KIND_ABORT] = {
        .prepare = abort_prepare,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ADD] = {
        .prepare = bitmap_add_prepare,
        .abort = bitmap_add_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_REMOVE] = {
        .prepare = bitmap_remove_prepare,
        .commit = bitmap_remove_commit,
        .abort = bitmap_remove_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_CLEAR] = {
        .prepare = bitmap_clear_prepare,
        .commit = bitmap_backup_commit,
        .abort = bitmap_backup_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ENABLE] = {
        .prepare = bitmap_enable_prepare,
        .abort = bitmap_enabled_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_DISABLE] = {
        .prepare = bitmap_disable_prepare,
        .abort = bitmap_enabled_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_MERGE] = {
        .prepare = bitmap_merge_prepare,
        .commit = bitmap_backup_commit,
        .abort = bitmap_backup_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_SYNC] = {
        .prepare = snapshot_sync_prepare,
        .commit = snapshot_sync_commit,
        .abort = snapshot_sync_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT] = {
        .prepare = snapshot_prepare,
        .abort = snapshot_abort,
    },
    [TRANSACTION_ACTION_KIND_DRIVE_BACKUP] = {
        .grouped_ok = true,
        .prepare = drive_backup_prepare,
        .abort = backup_abort,
    },
    [TRANSACTION_ACTION_KIND_BLOCKDEV_BACKUP] = {
        .grouped_ok = true,
        .prepare = blockdev_backup_prepare,
        .abort = backup_abort,
    },
};

/* QEMU checks the completion mode as the first step of each prepare. */
static bool txn_prepare_one(TxnState *s, bool grouped, Error **errp)
{
    TransactionActionKind kind = s->action->type;

    if (s->action->type != TRANSACTION_ACTION_KIND_ABORT && grouped &&
        !s->ops->grouped_ok) {
        error_setg(errp, "Action '%s' does not support Transaction property "
                   "completion-mode = %s", TransactionActionKind_str(kind),
                   ActionCompletionMode_str(ACTION_COMPLETION_MODE_GROUPED));
        return false;
    }
    if (!s->ops->prepare) {
        error_setg(errp, "Action '%s' is not supported",
                   TransactionActionKind_str(kind));
        return false;
    }
    return s->ops->prepare(s, errp);
}

void qmp_transaction(TransactionActionList *actions,
                     TransactionProperties *properties, Error **errp)
{
    bool grouped = properties && properties->has_completion_mode &&
        properties->completion_mode == ACTION_COMPLETION_MODE_GROUPED;
    JobTxn *job_txn = grouped ? job_txn_new() : NULL;
    GPtrArray *done = g_ptr_array_new_with_free_func(g_free);
    TransactionActionList *l;
    guint i;

    for (l = actions; l; l = l->next) {
        TxnState *s = g_new0(TxnState, 1);

        s->action = l->value;
        s->ops = &txn_ops[l->value->type];
        s->job_txn = job_txn;
        if (!txn_prepare_one(s, grouped, errp)) {
            g_free(s);
            goto abort;
        }
        g_ptr_array_add(done, s);
    }
    for (i = 0; i < done->len; i++) {
        TxnState *s = done->pdata[i];

        if (s->ops->commit) {
            s->ops->commit(s);
        }
    }
    /* All jobs start only after every action has committed. */
    for (i = 0; i < done->len; i++) {
        TxnState *s = done->pdata[i];

        if (s->job) {
            job_start(s->job->job);
        }
    }
    goto out;

abort:
    for (i = done->len; i-- > 0;) {
        TxnState *s = done->pdata[i];

        if (s->ops->abort) {
            s->ops->abort(s);
        }
    }
out:
    g_ptr_array_free(done, true);
    /* The jobs hold the group from here (or it was never used). */
    job_txn_unref(job_txn);
}
