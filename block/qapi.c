/*
 * QAPI views of nodes and drives (query-block, query-named-block-nodes,
 * HMP "info block").  Members and their presence follow what QEMU 7.2
 * reports for the same images.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "block/qapi.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-visit.h"

/* The format-specific part, converted from the driver's JSON. */
static bool image_info_add_specific(ImageInfo *info, BlockDriverState *bs,
                                    Error **errp)
{
    Error *local_err = NULL;
    JsonNode *node = bdrv_get_specific_info(bs, &local_err);
    bool ok;

    if (local_err) {
        error_propagate(errp, local_err);
        return false;
    }
    if (!node) {
        return true;
    }
    ok = visit_type_ImageInfoSpecific(node, &info->format_specific, errp);
    json_node_unref(node);
    return ok;
}

ImageInfo *bdrv_query_image_info(BlockDriverState *bs, bool backing_chain,
                                 Error **errp)
{
    ImageInfo *info;
    BlockDriverInfo bdi;
    BlockDriverState *backing;
    int64_t size = bdrv_getlength(bs);
    int64_t actual;

    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bs->filename);
        return NULL;
    }
    info = g_new0(ImageInfo, 1);
    info->filename = g_strdup(bs->filename);
    info->format = g_strdup(bdrv_get_format_name(bs));
    info->virtual_size = size;
    actual = bdrv_get_allocated_file_size(bs);
    if (actual >= 0) {
        info->has_actual_size = true;
        info->actual_size = actual;
    }
    info->has_dirty_flag = true;
    if (bdrv_get_info(bs, &bdi) >= 0) {
        if (bdi.cluster_size > 0) {
            info->has_cluster_size = true;
            info->cluster_size = bdi.cluster_size;
        }
        info->dirty_flag = bdi.is_dirty;
    }
    if (!image_info_add_specific(info, bs, errp)) {
        qapi_free_ImageInfo(info);
        return NULL;
    }
    if (bs->backing_file[0]) {
        Error *local_err = NULL;

        info->backing_filename = g_strdup(bs->backing_file);
        info->full_backing_filename =
            bdrv_get_full_backing_filename(bs, &local_err);
        /* A name that cannot be resolved is still worth showing. */
        error_free(local_err);
        if (bs->backing_format[0]) {
            info->backing_filename_format = g_strdup(bs->backing_format);
        }
    }
    backing = bdrv_backing_bs(bs);
    if (backing_chain && backing) {
        info->backing_image = bdrv_query_image_info(backing, true, errp);
        if (!info->backing_image) {
            qapi_free_ImageInfo(info);
            return NULL;
        }
    }
    return info;
}

/* Named dirty bitmaps of @bs, in creation order; NULL if none. */
static BlockDirtyInfoList *bdrv_query_dirty_bitmaps(BlockDriverState *bs)
{
    BlockDirtyInfoList *head = NULL, **tail = &head;
    BdrvDirtyBitmap *bm;

    for (bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        BlockDirtyInfo *di;

        if (!bdrv_dirty_bitmap_name(bm)) {
            continue;   /* anonymous bitmaps are private to their job */
        }
        di = g_new0(BlockDirtyInfo, 1);
        di->name = g_strdup(bdrv_dirty_bitmap_name(bm));
        di->count = bdrv_get_dirty_count(bm);
        di->granularity = bdrv_dirty_bitmap_granularity(bm);
        di->recording = bdrv_dirty_bitmap_enabled(bm);
        di->busy = bdrv_dirty_bitmap_busy(bm);
        di->persistent = bdrv_dirty_bitmap_get_persistence(bm);
        if (bdrv_dirty_bitmap_inconsistent(bm)) {
            di->has_inconsistent = true;
            di->inconsistent = true;
        }
        QAPI_LIST_APPEND(tail, di);
    }
    return head;
}

BlockDeviceInfo *bdrv_block_device_info(BlockDriverState *bs, bool flat,
                                        Error **errp)
{
    BlockDeviceInfo *info = g_new0(BlockDeviceInfo, 1);
    int flags = bdrv_get_flags(bs);

    info->file = g_strdup(bs->filename);
    info->node_name = g_strdup(bs->node_name);
    info->ro = bdrv_is_read_only(bs);
    info->drv = g_strdup(bdrv_get_format_name(bs));
    if (bs->backing_file[0]) {
        info->backing_file = g_strdup(bs->backing_file);
    }
    for (BlockDriverState *p = bdrv_backing_bs(bs); p;
         p = bdrv_backing_bs(p)) {
        info->backing_file_depth++;
    }
    info->encrypted = false;
    info->detect_zeroes = bs->detect_zeroes;
    info->cache = g_new0(BlockdevCacheInfo, 1);
    /*
     * Write-through is a property of the drive (the guest's view), not of
     * the node: nodes outside a write-through drive report writeback.
     */
    info->cache->writeback = true;
    info->cache->direct = flags & BDRV_O_NOCACHE;
    info->cache->no_flush = flags & BDRV_O_NO_FLUSH;
    info->write_threshold = 0;
    info->dirty_bitmaps = bdrv_query_dirty_bitmaps(bs);
    info->image = bdrv_query_image_info(bs, !flat, errp);
    if (!info->image) {
        qapi_free_BlockDeviceInfo(info);
        return NULL;
    }
    return info;
}

BlockInfo *bdrv_query_block_info(BlockBackend *blk, const char *qdev,
                                 bool writethrough, Error **errp)
{
    BlockInfo *info = g_new0(BlockInfo, 1);
    BlockDriverState *bs = blk_bs(blk);

    info->device = g_strdup(blk_name(blk));
    info->type = g_strdup("unknown");
    info->locked = false;
    /*
     * As in QEMU: a drive without a device behaves like removable media;
     * virtio-blk is not removable and reports an I/O status.
     */
    info->removable = !qdev;
    if (qdev) {
        info->qdev = g_strdup(qdev);
        info->has_io_status = true;
        info->io_status = BLOCK_DEVICE_IO_STATUS_OK;
    }
    if (bs && bs->drv) {
        info->inserted = bdrv_block_device_info(bs, false, errp);
        if (!info->inserted) {
            qapi_free_BlockInfo(info);
            return NULL;
        }
        info->inserted->cache->writeback = !writethrough;
    }
    return info;
}

static void print_cache_mode(GString *out, const BlockdevCacheInfo *cache)
{
    g_string_append_printf(out, "    Cache mode:       %s%s%s\n",
                           cache->writeback ? "writeback" : "writethrough",
                           cache->direct ? ", direct" : "",
                           cache->no_flush ? ", ignore flushes" : "");
}

/* The lines shared by drives and nodes, after the title line. */
static void print_inserted_details(GString *out, const BlockDeviceInfo *ins)
{
    print_cache_mode(out, ins->cache);
    if (ins->backing_file) {
        g_string_append_printf(out, "    Backing file:     %s "
                               "(chain depth: %" PRId64 ")\n",
                               ins->backing_file, ins->backing_file_depth);
    }
    if (ins->detect_zeroes != BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF) {
        g_string_append_printf(out, "    Detect zeroes:    %s\n",
                               BlockdevDetectZeroesOptions_str(
                                   ins->detect_zeroes));
    }
}

void bdrv_print_block_info(GString *out, const BlockInfo *info)
{
    const BlockDeviceInfo *ins = info->inserted;

    g_string_append(out, info->device);
    if (ins && ins->node_name) {
        g_string_append_printf(out, " (%s)", ins->node_name);
    }
    if (ins) {
        g_string_append_printf(out, ": %s (%s%s)\n", ins->file, ins->drv,
                               ins->ro ? ", read-only" : "");
    } else {
        g_string_append(out, ": [not inserted]\n");
    }
    if (info->qdev) {
        g_string_append_printf(out, "    Attached to:      %s\n", info->qdev);
    }
    if (info->removable) {
        g_string_append_printf(out, "    Removable device: %slocked, "
                               "tray %s\n", info->locked ? "" : "not ",
                               info->has_tray_open && info->tray_open ?
                               "open" : "closed");
    }
    if (ins) {
        print_inserted_details(out, ins);
    }
}

void bdrv_print_node_info(GString *out, const BlockDeviceInfo *info)
{
    g_string_append_printf(out, "%s: %s (%s%s)\n", info->node_name,
                           info->file, info->drv,
                           info->ro ? ", read-only" : "");
    print_inserted_details(out, info);
}
