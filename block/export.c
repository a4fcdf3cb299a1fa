/*
 * Block exports of the daemon: block-export-add, block-export-del,
 * query-block-exports and the BLOCK_EXPORT_DELETED event.
 *
 * Every export is an NBD export of the daemon's server (blockdev-nbd.c).
 * The registry entry is created with the NBD export and freed from the
 * export's deleted callback, which runs once the export has dropped its
 * node reference; BLOCK_EXPORT_DELETED is sent at that moment, so a client
 * that sees the event may delete the node.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/queue.h"
#include "block/block-backend.h"
#include "block/export.h"
#include "block/dirty-bitmap.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"

typedef struct BlockExport {
    char *id;
    char *node_name;
    NBDExport *nbd;
    /* Removal was requested; the entry goes when the export is gone. */
    bool shutting_down;
    QTAILQ_ENTRY(BlockExport) next;
} BlockExport;

static QTAILQ_HEAD(, BlockExport) block_exports =
    QTAILQ_HEAD_INITIALIZER(block_exports);

static BlockExport *blk_exp_find(const char *id)
{
    BlockExport *exp;

    QTAILQ_FOREACH(exp, &block_exports, next) {
        if (!strcmp(exp->id, id)) {
            return exp;
        }
    }
    return NULL;
}

static BlockExport *blk_exp_find_nbd(NBDExport *nbd)
{
    BlockExport *exp;

    QTAILQ_FOREACH(exp, &block_exports, next) {
        if (exp->nbd == nbd) {
            return exp;
        }
    }
    return NULL;
}

/* The NBD export is gone and its node reference dropped. */
static void blk_exp_deleted(NBDExport *nbd, void *opaque)
{
    BlockExport *exp = opaque;

    QTAILQ_REMOVE(&block_exports, exp, next);
    qapi_event_send_block_export_deleted(exp->id);
    g_free(exp->id);
    g_free(exp->node_name);
    g_free(exp);
}

/* qemu:dirty-bitmap:NAME extents: flag 1 = dirty. */
static int coroutine_fn blk_exp_bitmap_extents(void *opaque, int64_t offset,
                                               int64_t bytes, int64_t *pnum,
                                               uint32_t *flags)
{
    BdrvDirtyBitmap *bitmap = opaque;

    *flags = bdrv_dirty_bitmap_status(bitmap, offset, bytes, pnum) ? 1 : 0;
    return 0;
}

/* Runs when the NBD export is freed, before it drops the node. */
static void blk_exp_bitmap_release(void *opaque)
{
    bdrv_dirty_bitmap_set_busy(opaque, false);
}

/*
 * The node below @bs whose data shows through it: the first non-filter
 * below a filter chain, else the backing child (NULL at the bottom).
 */
static BlockDriverState *blk_exp_filter_or_cow_bs(BlockDriverState *bs)
{
    BlockDriverState *below = bdrv_skip_filters(bs);

    return below != bs ? below : bdrv_backing_bs(bs);
}

/*
 * Finds the bitmap an export option names: a plain name on the exported
 * node or, as in QEMU, the first node of its filter/backing chain that has
 * one (a fleecing overlay exports the bitmap of the drive it backs up); or
 * {node, name} on exactly that node.
 */
static BdrvDirtyBitmap *blk_exp_lookup_bitmap(BlockDriverState *bs,
                                              BlockDirtyBitmapOrStr *ref,
                                              Error **errp)
{
    const char *name;
    BdrvDirtyBitmap *bitmap;

    if (ref->type == QTYPE_QSTRING) {
        name = ref->u.local;
    } else {
        bs = bdrv_lookup_bs(ref->u.external.node, ref->u.external.node,
                            NULL);
        if (!bs) {
            error_setg(errp, "Node '%s' not found", ref->u.external.node);
            return NULL;
        }
        name = ref->u.external.name;
        bitmap = bdrv_find_dirty_bitmap(bs, name);
        if (!bitmap) {
            error_setg(errp, "Bitmap '%s' is not found", name);
        }
        return bitmap;
    }
    for (bitmap = NULL; bs && !bitmap; bs = blk_exp_filter_or_cow_bs(bs)) {
        bitmap = bdrv_find_dirty_bitmap(bs, name);
    }
    if (!bitmap) {
        error_setg(errp, "Bitmap '%s' is not found", name);
    }
    return bitmap;
}

/*
 * Offers every bitmap of @opts on @nbd and marks it busy.  All bitmaps
 * are checked before any is attached, so a failure leaves none busy.
 */
static bool blk_exp_add_bitmaps(NBDExport *nbd, BlockDriverState *bs,
                                BlockDirtyBitmapOrStrList *refs,
                                bool writable, Error **errp)
{
    g_autoptr(GPtrArray) bitmaps = g_ptr_array_new();

    for (BlockDirtyBitmapOrStrList *l = refs; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = blk_exp_lookup_bitmap(bs, l->value, errp);

        if (!bitmap ||
            bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO, errp)) {
            return false;
        }
        if (!writable && !bdrv_is_read_only(bdrv_dirty_bitmap_bs(bitmap)) &&
            bdrv_dirty_bitmap_enabled(bitmap)) {
            error_setg(errp, "Enabled bitmap '%s' incompatible with readonly "
                       "export", bdrv_dirty_bitmap_name(bitmap));
            return false;
        }
        g_ptr_array_add(bitmaps, bitmap);
    }
    for (guint i = 0; i < bitmaps->len; i++) {
        BdrvDirtyBitmap *bitmap = bitmaps->pdata[i];

        if (!nbd_export_add_meta_context(nbd, bdrv_dirty_bitmap_name(bitmap),
                                         blk_exp_bitmap_extents, bitmap,
                                         blk_exp_bitmap_release, errp)) {
            return false;
        }
        /* Not busy until attached: the release callback clears it. */
        bdrv_dirty_bitmap_set_busy(bitmap, true);
    }
    return true;
}

bool blk_exp_add(BlockExportOptions *opts, Error **errp)
{
    BlockExportOptionsNbd *nbd_opts = &opts->u.nbd;
    NBDServer *srv;
    BlockDriverState *bs;
    NBDExport *nbd;
    BlockExport *exp;
    const char *name;
    bool writable = opts->has_writable && opts->writable;

    if (!id_wellformed(opts->id)) {
        error_setg(errp, "Invalid block export id");
        return false;
    }
    if (blk_exp_find(opts->id)) {
        error_setg(errp, "Block export id '%s' is already in use", opts->id);
        return false;
    }
    if (opts->iothread) {
        error_setg(errp, "IOThreads are not supported by qblockd");
        return false;
    }
    bs = bdrv_lookup_bs(NULL, opts->node_name, errp);
    if (!bs) {
        return false;
    }
    srv = nbd_server_get(errp);
    if (!srv) {
        return false;
    }
    name = nbd_opts->name ? nbd_opts->name : opts->node_name;
    if (nbd_export_find(srv, name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        return false;
    }
    nbd = nbd_export_new(srv, bs, name, nbd_opts->description, writable,
                         nbd_opts->has_allocation_depth &&
                         nbd_opts->allocation_depth, errp);
    if (!nbd) {
        return false;
    }
    /* A write completes only once it is on the image (FUA on each). */
    blk_set_enable_write_cache(nbd_export_get_blk(nbd),
                               !(opts->has_writethrough &&
                                 opts->writethrough));
    if (!blk_exp_add_bitmaps(nbd, bs, nbd_opts->bitmaps, writable, errp)) {
        /* No client can have connected yet: the export goes at once. */
        nbd_export_remove(nbd, NBD_EXPORT_REMOVE_HARD, &error_abort);
        return false;
    }

    exp = g_new0(BlockExport, 1);
    exp->id = g_strdup(opts->id);
    exp->node_name = g_strdup(bdrv_get_node_name(bs));
    exp->nbd = nbd;
    QTAILQ_INSERT_TAIL(&block_exports, exp, next);
    nbd_export_set_deleted_cb(nbd, blk_exp_deleted, exp);
    return true;
}

/* May free @exp (when the export goes at once). */
static bool blk_exp_remove(BlockExport *exp, BlockExportRemoveMode mode,
                           Error **errp)
{
    if (exp->shutting_down) {
        error_setg(errp, "Export '%s' is already shutting down", exp->id);
        return false;
    }
    exp->shutting_down = true;
    if (nbd_export_remove(exp->nbd, mode == BLOCK_EXPORT_REMOVE_MODE_HARD ?
                          NBD_EXPORT_REMOVE_HARD : NBD_EXPORT_REMOVE_SAFE,
                          errp) < 0) {
        exp->shutting_down = false;
        return false;
    }
    return true;
}

bool blk_exp_del(const char *id, BlockExportRemoveMode mode, Error **errp)
{
    BlockExport *exp = blk_exp_find(id);

    if (!exp) {
        error_setg(errp, "Export '%s' is not found", id);
        return false;
    }
    return blk_exp_remove(exp, mode, errp);
}

bool blk_exp_del_nbd_name(const char *name, BlockExportRemoveMode mode,
                          Error **errp)
{
    NBDServer *srv = nbd_server_get(NULL);
    NBDExport *nbd = srv ? nbd_export_find(srv, name) : NULL;
    BlockExport *exp;

    exp = nbd ? blk_exp_find_nbd(nbd) : NULL;
    if (!exp) {
        error_setg(errp, "Export '%s' is not found", name);
        return false;
    }
    return blk_exp_remove(exp, mode, errp);
}

void blk_exp_server_stopping(void)
{
    BlockExport *exp;

    QTAILQ_FOREACH(exp, &block_exports, next) {
        exp->shutting_down = true;
    }
}

bool blk_exp_any(void)
{
    return !QTAILQ_EMPTY(&block_exports);
}

void qmp_block_export_add(BlockExportOptions *arg, Error **errp)
{
    blk_exp_add(arg, errp);
}

void qmp_block_export_del(const char *id, bool has_mode,
                          BlockExportRemoveMode mode, Error **errp)
{
    blk_exp_del(id, has_mode ? mode : BLOCK_EXPORT_REMOVE_MODE_SAFE, errp);
}

BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    BlockExportInfoList *list = NULL, **tail = &list;
    BlockExport *exp;

    QTAILQ_FOREACH(exp, &block_exports, next) {
        BlockExportInfo *info = g_new0(BlockExportInfo, 1);

        info->id = g_strdup(exp->id);
        info->type = BLOCK_EXPORT_TYPE_NBD;
        info->node_name = g_strdup(exp->node_name);
        info->shutting_down = exp->shutting_down;
        QAPI_LIST_APPEND(tail, info);
    }
    return list;
}
