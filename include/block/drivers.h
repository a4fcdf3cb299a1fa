/*
 * Registration entry points of the built-in block drivers.
 *
 * bdrv_init() calls each of these once; every function registers its
 * driver(s) with bdrv_register().
 */
#ifndef BLOCK_DRIVERS_H
#define BLOCK_DRIVERS_H

/* "file" protocol (block/file-posix.c) */
void bdrv_file_init(void);
/* "raw" format (block/raw-format.c) */
void bdrv_raw_init(void);
/* "null-co" and "null-aio" protocols (block/null.c) */
void bdrv_null_init(void);
/* "blkdebug" fault-injection filter (block/blkdebug.c) */
void bdrv_blkdebug_init(void);
/* "qcow2" format (block/qcow2.c) */
void bdrv_qcow2_init(void);
/* "nbd", "nbd+tcp" and "nbd+unix" protocols (block/nbd.c) */
void bdrv_nbd_init(void);
/* "copy-before-write" filter (block/copy-before-write.c) */
void bdrv_cbw_init(void);
/* "snapshot-access" driver (block/snapshot-access.c) */
void bdrv_snapshot_access_init(void);

#endif
