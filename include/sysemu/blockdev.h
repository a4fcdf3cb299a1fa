/*
 * Monitor-level block device management: drives (-drive), nodes owned by
 * the monitor (blockdev-add), and what qblockd needs at start-up and exit.
 *
 * Reference ownership (see docs/qmp-blockdev.md):
 * - blockdev-add: the monitor holds the reference bdrv_open() returned
 *   until blockdev-del drops it;
 * - -drive: the named BlockBackend holds the root node through its root
 *   edge; the drive table holds the BlockBackend's first reference;
 * - a device front end holds one reference on its BlockBackend.
 */
#ifndef SYSEMU_BLOCKDEV_H
#define SYSEMU_BLOCKDEV_H

#include "block/block.h"
#include "qemu/qdict.h"
#include "block/blockjob.h"
#include "qapi/qapi-types.h"

/*
 * Creates a drive from -drive options (keyval-parsed, dotted keys nested
 * or flat; ownership of @opts stays with the caller).  With if=virtio a
 * virtio-blk device holding the drive is created too.  Returns the named
 * BlockBackend (owned by the drive table), or NULL with @errp set.
 */
BlockBackend *drive_new(QDict *opts, Error **errp);

/*
 * Removes the drive @id (HMP drive_del): refused while a device is
 * attached.  The node closes when nothing else holds it.
 */
bool drive_del(const char *id, Error **errp);


/* True if @bs is held by the monitor (was created by blockdev-add). */
bool blockdev_is_monitor_owned(BlockDriverState *bs);

/*
 * HMP "info block" text: the drives (only @device if non-NULL), or with
 * @nodes every node ("info block -n").  Lines end in \n.
 */
bool blockdev_hmp_info_block(GString *out, const char *device, bool nodes,
                             Error **errp);

/*
 * drive-backup / blockdev-backup up to the job's start: the job is
 * created (copy-before-write active) but not started; NULL with @errp
 * on failure.  The caller starts or cancels it (transaction).
 */
BlockJob *drive_backup_new_job(DriveBackup *arg, Error **errp);
BlockJob *blockdev_backup_new_job(BlockdevBackup *arg, Error **errp);

/*
 * External snapshots for transactions (block/snapshot-qmp.c): install
 * the overlay above the active node and return both, so that an abort
 * can take it out again with external_snapshot_uninstall().
 * external_snapshot_sync_install() creates and opens the overlay and
 * returns it with the caller holding the bdrv_open() reference (drop it
 * on commit, or after the uninstall on abort: the overlay then closes;
 * its image file stays).  external_snapshot_install() is
 * blockdev-snapshot: the monitor keeps owning the overlay.
 */
BlockDriverState *external_snapshot_sync_install(BlockdevSnapshotSync *arg,
                                                 BlockDriverState **pbs,
                                                 Error **errp);
bool external_snapshot_install(const char *node, const char *overlay_name,
                               BlockDriverState **pbs,
                               BlockDriverState **poverlay, Error **errp);
void external_snapshot_uninstall(BlockDriverState *bs,
                                 BlockDriverState *overlay);

/*
 * At exit: waits for running jobs, removes devices and drives, drops the
 * monitor's references and closes every node (flushing images and
 * clearing qcow2 dirty bits).  Idempotent.
 */
void blockdev_close_all_for_exit(void);

#endif
