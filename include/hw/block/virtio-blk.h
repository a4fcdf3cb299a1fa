/*
 * virtio-blk front end: the guest-device end of a drive.
 *
 * qblockd has no guest CPU, so the device serves no I/O of its own (a
 * vhost-user-blk export will); it exists as a guest device does for the
 * block layer: it holds one reference on its BlockBackend, which pins the
 * drive and its nodes until device_del.
 */
#ifndef HW_BLOCK_VIRTIO_BLK_H
#define HW_BLOCK_VIRTIO_BLK_H

#include "block/block.h"
#include "qemu/qdict.h"

/*
 * Creates a device from -device/device_add properties: "driver"
 * (virtio-blk or virtio-blk-pci), "drive" (a drive id or a node name),
 * optional "id" and "bus".  @opts is borrowed.  Returns false with @errp
 * set on error (nothing is held then).
 */
bool virtio_blk_device_add(QDict *opts, Error **errp);

/* Removes device @id, dropping its BlockBackend reference. */
bool virtio_blk_device_del(const char *id, Error **errp);

/*
 * The QOM-style path of the device using @blk as QEMU reports it in
 * query-block's "qdev" ("/machine/peripheral/ID/virtio-backend"), or NULL
 * if no device uses it.  Borrowed.
 */
const char *virtio_blk_qdev_of(BlockBackend *blk);

/* The device id using @blk (NULL for none or an anonymous device). */
const char *virtio_blk_id_of(BlockBackend *blk);

/* Iterates over the devices' BlockBackends (@prev NULL starts). */
BlockBackend *virtio_blk_next_blk(BlockBackend *prev);

/* Removes every device (at exit). */
void virtio_blk_del_all(void);

#endif
