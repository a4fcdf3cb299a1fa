/*
 * QAPI views of the block layer: the BlockInfo, BlockDeviceInfo and
 * ImageInfo structures that query-block and query-named-block-nodes
 * return, and the text of HMP's "info block".
 *
 * Every function returns a new QAPI object owned by the caller (free
 * with qapi_free_T()); nodes and backends are only read.
 */
#ifndef BLOCK_QAPI_H
#define BLOCK_QAPI_H

#include "block/block.h"
#include "qapi/qapi-types.h"

/*
 * What qemu-img info reports about @bs; with @backing_chain the backing
 * images are nested in backing-image.
 */
ImageInfo *bdrv_query_image_info(BlockDriverState *bs, bool backing_chain,
                                 Error **errp);

/*
 * @bs as a BlockDeviceInfo.  @flat leaves out the backing images under
 * image.  cache.writeback is true: write-through is a drive setting, which
 * bdrv_query_block_info() applies.
 */
BlockDeviceInfo *bdrv_block_device_info(BlockDriverState *bs, bool flat,
                                        Error **errp);

/*
 * A drive as query-block shows it.  @qdev is the path of the device using
 * it (NULL for none); @writethrough is the drive's cache mode.
 */
BlockInfo *bdrv_query_block_info(BlockBackend *blk, const char *qdev,
                                 bool writethrough, Error **errp);

/* "info block" text for one drive, QEMU's layout, lines ending in \n. */
void bdrv_print_block_info(GString *out, const BlockInfo *info);
/* "info block -n" text for one node. */
void bdrv_print_node_info(GString *out, const BlockDeviceInfo *info);

#endif
