/*
 * External snapshots over QMP: blockdev-snapshot-sync (create an overlay
 * image and install it) and blockdev-snapshot (install an overlay node
 * added with blockdev-add).
 *
 * Installing overlay O above the active node A (bdrv_replace_node() in
 * block.c has the reference rules):
 * - O's backing edge is attached to A and holds a new reference on A;
 * - every other parent edge of A (a drive's root edge, a device's
 *   BlockBackend, parent nodes, exports) moves to O, carrying its
 *   reference over, so guest writes through the drive land in O and
 *   reads of clusters O does not have fall through to A;
 * - for blockdev-snapshot-sync the reference bdrv_open() returned for O
 *   is dropped at the end: O is held by the edges moved onto it.  For
 *   blockdev-snapshot the monitor keeps its own reference on O.
 *
 * Messages and the order of the checks are QEMU 7.2's.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "sysemu/blockdev.h"

/* A BlockBackend, job or export holds the overlay: it is not free. */
static bool snapshot_overlay_in_use(BlockDriverState *overlay)
{
    BdrvChild *c;

    QLIST_FOREACH(c, &overlay->parents, next_parent) {
        if (!c->klass->parent_is_bds) {
            return true;
        }
    }
    return false;
}

/*
 * Puts @overlay above @bs: the overlay's backing edge takes @bs, then
 * every other parent of @bs moves to the overlay.  The caller's
 * references on both nodes are unchanged.
 */
static bool snapshot_install(BlockDriverState *bs, BlockDriverState *overlay,
                             Error **errp)
{
    if (snapshot_overlay_in_use(overlay)) {
        error_setg(errp, "The overlay is already in use");
        return false;
    }
    if (overlay->backing) {
        error_setg(errp, "The overlay already has a backing image");
        return false;
    }
    if (!overlay->drv->supports_backing) {
        error_setg(errp, "The overlay does not support backing images");
        return false;
    }
    if (bdrv_set_backing_hd(overlay, bs, errp) < 0) {
        return false;
    }
    if (bdrv_replace_node(bs, overlay, errp) < 0) {
        /* Drops the backing edge's reference on @bs again. */
        bdrv_set_backing_hd(overlay, NULL, &error_abort);
        return false;
    }
    return true;
}

/*
 * Creates the overlay image for mode=absolute-paths: the size of @bs, its
 * filename recorded as backing file as it is (absolute when the drive was
 * opened by absolute path), its format as backing format.
 */
static bool snapshot_create_overlay(BlockDriverState *bs, const char *file,
                                    BlockDriver *drv, Error **errp)
{
    int64_t size = bdrv_getlength(bs);
    QDict *opts;
    int ret;

    if (size < 0) {
        error_setg_errno(errp, -size, "Could not get the size of '%s'",
                         bs->node_name);
        return false;
    }
    opts = qdict_new();
    qdict_put_int(opts, "size", size);
    qdict_put_str(opts, "backing_file", bdrv_get_filename(bs));
    qdict_put_str(opts, "backing_fmt", bdrv_get_format_name(bs));
    ret = bdrv_create(drv, file, opts, errp);
    qobject_unref(opts);
    return ret >= 0;
}

/*
 * Opens the new overlay without its backing file: the backing edge is
 * attached to the live node by snapshot_install().
 */
static BlockDriverState *snapshot_open_overlay(const char *file,
                                               const char *format,
                                               const char *node_name,
                                               Error **errp)
{
    QDict *options = qdict_new();

    qdict_put_str(options, "driver", format);
    if (node_name) {
        qdict_put_str(options, "node-name", node_name);
    }
    qdict_put_null(options, "backing");
    return bdrv_open(file, NULL, options, BDRV_O_RDWR, errp);
}

/*
 * Takes @overlay out again after snapshot_install(): its parents move
 * back to @bs and its backing edge is dropped.  The caller's references
 * are unchanged (the drive's edge goes back to @bs).
 */
void external_snapshot_uninstall(BlockDriverState *bs,
                                 BlockDriverState *overlay)
{
    bdrv_replace_node(overlay, bs, &error_abort);
    bdrv_set_backing_hd(overlay, NULL, &error_abort);
}

BlockDriverState *external_snapshot_sync_install(BlockdevSnapshotSync *arg,
                                                 BlockDriverState **pbs,
                                                 Error **errp)
{
    NewImageMode mode = arg->has_mode ? arg->mode
                                      : NEW_IMAGE_MODE_ABSOLUTE_PATHS;
    const char *format = arg->format ? arg->format : "qcow2";
    const char *node_name = arg->node_name;
    const char *snapshot_node_name = arg->snapshot_node_name;
    BlockDriverState *bs, *overlay;
    BlockDriver *drv;

    bs = bdrv_lookup_bs(arg->device, node_name, errp);
    if (!bs) {
        return NULL;
    }
    if (!bdrv_check_not_backing(bs, errp)) {
        return NULL;
    }
    if (node_name && !snapshot_node_name) {
        error_setg(errp, "New overlay node-name missing");
        return NULL;
    }
    if (snapshot_node_name &&
        (bdrv_find_node(snapshot_node_name) ||
         blk_by_name(snapshot_node_name))) {
        error_setg(errp, "New overlay node-name already in use");
        return NULL;
    }
    drv = bdrv_find_format(format);
    if (mode != NEW_IMAGE_MODE_EXISTING) {
        if (!drv) {
            error_setg(errp, "Unknown file format '%s'", format);
            return NULL;
        }
        if (!drv->supports_backing) {
            error_setg(errp, "Backing file not supported for file format "
                       "'%s'", format);
            return NULL;
        }
        if (!snapshot_create_overlay(bs, arg->snapshot_file, drv, errp)) {
            return NULL;
        }
    }
    overlay = snapshot_open_overlay(arg->snapshot_file, format,
                                    snapshot_node_name, errp);
    if (!overlay) {
        return NULL;
    }
    if (!snapshot_install(bs, overlay, errp)) {
        /* This was the only reference: the overlay closes. */
        bdrv_unref(overlay);
        return NULL;
    }
    *pbs = bs;
    return overlay;
}

void qmp_blockdev_snapshot_sync(const char *device, const char *node_name,
                                const char *snapshot_file,
                                const char *snapshot_node_name,
                                const char *format, bool has_mode,
                                NewImageMode mode, Error **errp)
{
    BlockdevSnapshotSync arg = {
        .device = (char *)device,
        .node_name = (char *)node_name,
        .snapshot_file = (char *)snapshot_file,
        .snapshot_node_name = (char *)snapshot_node_name,
        .format = (char *)format,
        .has_mode = has_mode,
        .mode = mode,
    };
    BlockDriverState *bs;
    BlockDriverState *overlay = external_snapshot_sync_install(&arg, &bs,
                                                               errp);

    /* The moved edges hold the overlay now. */
    if (overlay) {
        bdrv_unref(overlay);
    }
}

bool external_snapshot_install(const char *node, const char *overlay_name,
                               BlockDriverState **pbs,
                               BlockDriverState **poverlay, Error **errp)
{
    BlockDriverState *bs, *overlay;

    bs = bdrv_lookup_bs(node, node, errp);
    if (!bs) {
        return false;
    }
    overlay = bdrv_lookup_bs(overlay_name, overlay_name, errp);
    if (!overlay) {
        return false;
    }
    if (!bdrv_check_not_backing(bs, errp) ||
        !snapshot_install(bs, overlay, errp)) {
        return false;
    }
    *pbs = bs;
    *poverlay = overlay;
    return true;
}

void qmp_blockdev_snapshot(const char *node, const char *overlay_name,
                           Error **errp)
{
    BlockDriverState *bs, *overlay;

    external_snapshot_install(node, overlay_name, &bs, &overlay, errp);
}
