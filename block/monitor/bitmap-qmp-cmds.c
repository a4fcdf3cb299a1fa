/*
 * QMP commands for dirty bitmaps: block-dirty-bitmap-add, -remove,
 * -clear, -enable, -disable and -merge.
 *
 * The semantics live in block/dirty-bitmap.c (block_dirty_bitmap_*());
 * these handlers find the node with QEMU's messages and, for merge,
 * make the whole list of sources apply or none of it.
 */
#include "qemu/osdep.h"
#include "block/dirty-bitmap.h"
#include "qapi/qapi-commands.h"

/* The node a bitmap command names (a node-name or a drive id). */
static BlockDriverState *bitmap_node(const char *node, Error **errp)
{
    BlockDriverState *bs = bdrv_lookup_bs(node, node, NULL);

    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
    }
    return bs;
}

void qmp_block_dirty_bitmap_add(const char *node, const char *name,
                                bool has_granularity, uint32_t granularity,
                                bool has_persistent, bool persistent,
                                bool has_disabled, bool disabled,
                                Error **errp)
{
    BlockDriverState *bs = bdrv_lookup_bs(node, node, errp);

    if (!bs) {
        return;
    }
    block_dirty_bitmap_add(bs, name, has_granularity, granularity,
                           has_persistent && persistent,
                           has_disabled && disabled, errp);
}

void qmp_block_dirty_bitmap_remove(const char *node, const char *name,
                                   Error **errp)
{
    BlockDriverState *bs = bitmap_node(node, errp);

    if (bs) {
        block_dirty_bitmap_remove(bs, name, true, errp);
    }
}

void qmp_block_dirty_bitmap_clear(const char *node, const char *name,
                                  Error **errp)
{
    BlockDriverState *bs = bitmap_node(node, errp);

    if (bs) {
        block_dirty_bitmap_clear(bs, name, errp);
    }
}

void qmp_block_dirty_bitmap_enable(const char *node, const char *name,
                                   Error **errp)
{
    BlockDriverState *bs = bitmap_node(node, errp);

    if (bs) {
        block_dirty_bitmap_enable(bs, name, errp);
    }
}

void qmp_block_dirty_bitmap_disable(const char *node, const char *name,
                                    Error **errp)
{
    BlockDriverState *bs = bitmap_node(node, errp);

    if (bs) {
        block_dirty_bitmap_disable(bs, name, errp);
    }
}

/* A merge source: a bitmap on the target's node or {node, name}. */
static BdrvDirtyBitmap *merge_source(BlockDriverState *bs,
                                     BlockDirtyBitmapOrStr *ref, Error **errp)
{
    if (ref->type == QTYPE_QSTRING) {
        return block_dirty_bitmap_lookup(bs, ref->u.local, errp);
    }
    bs = bitmap_node(ref->u.external.node, errp);
    return bs ? block_dirty_bitmap_lookup(bs, ref->u.external.name, errp)
              : NULL;
}

BdrvDirtyBitmap *block_dirty_bitmap_merge_list(const char *node,
                                              const char *target,
                                              BlockDirtyBitmapOrStrList *bitmaps,
                                              HBitmap **backup, Error **errp)
{
    BlockDriverState *bs = bitmap_node(node, errp);
    BdrvDirtyBitmap *dest;

    *backup = NULL;
    if (!bs) {
        return NULL;
    }
    dest = block_dirty_bitmap_lookup(bs, target, errp);
    if (!dest) {
        return NULL;
    }
    for (BlockDirtyBitmapOrStrList *l = bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *src = merge_source(bs, l->value, errp);
        HBitmap **undo = *backup ? NULL : backup;

        if (!src || !bdrv_merge_dirty_bitmap(dest, src, undo, errp)) {
            /* Put back what the target held before the first merge. */
            if (*backup) {
                bdrv_restore_dirty_bitmap(dest, *backup);
                *backup = NULL;
            }
            return NULL;
        }
    }
    return dest;
}

void qmp_block_dirty_bitmap_merge(const char *node, const char *target,
                                  BlockDirtyBitmapOrStrList *bitmaps,
                                  Error **errp)
{
    HBitmap *backup;

    if (block_dirty_bitmap_merge_list(node, target, bitmaps, &backup, errp) &&
        backup) {
        hbitmap_free(backup);
    }
}
