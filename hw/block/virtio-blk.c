/*
 * virtio-blk front end (see include/hw/block/virtio-blk.h).
 *
 * A device holds one reference on its BlockBackend: a drive's named
 * BlockBackend, or an anonymous one it created for a node given by name.
 * While the device exists the drive cannot be removed and its root node
 * cannot be deleted.  Paths and messages follow QEMU's for virtio-blk-pci.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/queue.h"
#include "block/block-backend.h"
#include "hw/block/virtio-blk.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qmp-dispatch.h"
#include "qapi/qapi-visit-core.h"

typedef struct VirtIOBlock {
    char *id;                   /* NULL for an anonymous device */
    char *path;                 /* "/machine/peripheral/ID" */
    char *backend_path;         /* path + "/virtio-backend": the qdev */
    char *serial;
    BlockBackend *blk;          /* one reference held */
    QTAILQ_ENTRY(VirtIOBlock) link;
} VirtIOBlock;

static QTAILQ_HEAD(, VirtIOBlock) devices = QTAILQ_HEAD_INITIALIZER(devices);
/* Numbering of anonymous devices, as QEMU's peripheral-anon/device[N]. */
static unsigned anon_count;

/* Device properties of virtio-blk that qblockd understands. */
static const char *const virtio_blk_props[] = {
    "driver", "id", "bus", "drive", "serial", NULL,
};

static VirtIOBlock *virtio_blk_find(const char *id)
{
    VirtIOBlock *dev;

    QTAILQ_FOREACH(dev, &devices, link) {
        if (dev->id && !strcmp(dev->id, id)) {
            return dev;
        }
    }
    return NULL;
}

static VirtIOBlock *virtio_blk_find_by_blk(BlockBackend *blk)
{
    VirtIOBlock *dev;

    QTAILQ_FOREACH(dev, &devices, link) {
        if (dev->blk == blk) {
            return dev;
        }
    }
    return NULL;
}

static bool virtio_blk_check_props(QDict *opts, const char *driver,
                                   Error **errp)
{
    GList *keys = qdict_keys(opts);
    bool ok = true;

    for (GList *l = keys; l && ok; l = l->next) {
        if (!g_strv_contains(virtio_blk_props, l->data)) {
            error_setg(errp, "Property '%s.%s' not found", driver,
                       (const char *)l->data);
            ok = false;
        }
    }
    g_list_free(keys);
    return ok;
}

/*
 * The BlockBackend the device will use, with a reference for it: the
 * drive named @drive, or a new anonymous one on the node named @drive.
 */
static BlockBackend *virtio_blk_get_backend(const char *drive, Error **errp)
{
    BlockBackend *blk = blk_by_name(drive);
    BlockDriverState *bs;

    if (blk) {
        if (virtio_blk_find_by_blk(blk)) {
            error_setg(errp, "Drive '%s' is already in use by another device",
                       drive);
            return NULL;
        }
        blk_ref(blk);
        return blk;
    }
    bs = bdrv_find_node(drive);
    if (!bs) {
        error_setg(errp, "Property 'virtio-blk-device.drive' can't find "
                   "value '%s'", drive);
        return NULL;
    }
    blk = blk_new();
    if (blk_insert_bs(blk, bs, errp) < 0) {
        blk_unref(blk);
        return NULL;
    }
    return blk;
}

bool virtio_blk_device_add(QDict *opts, Error **errp)
{
    const char *driver = qdict_get_try_str(opts, "driver");
    const char *id = qdict_get_try_str(opts, "id");
    const char *drive = qdict_get_try_str(opts, "drive");
    VirtIOBlock *dev;
    BlockBackend *blk;

    if (!driver) {
        error_setg(errp, qdict_haskey(opts, "driver") ?
                   "Invalid parameter type for 'driver', expected: string" :
                   "Parameter 'driver' is missing");
        return false;
    }
    if (strcmp(driver, "virtio-blk") && strcmp(driver, "virtio-blk-pci")) {
        error_setg(errp, "'%s' is not a valid device model name", driver);
        return false;
    }
    if (qdict_haskey(opts, "id") && (!id || !id_wellformed(id))) {
        error_setg(errp, "Parameter 'id' expects an identifier");
        error_append_hint(errp, "Identifiers consist of letters, digits, "
                          "'-', '.', '_', starting with a letter.\n");
        return false;
    }
    if (id && virtio_blk_find(id)) {
        error_setg(errp, "Duplicate device ID '%s'", id);
        return false;
    }
    if (!virtio_blk_check_props(opts, driver, errp)) {
        return false;
    }
    if (!drive) {
        error_setg(errp, "drive property not set");
        return false;
    }
    blk = virtio_blk_get_backend(drive, errp);
    if (!blk) {
        return false;
    }

    dev = g_new0(VirtIOBlock, 1);
    dev->id = g_strdup(id);
    dev->path = id ? g_strdup_printf("/machine/peripheral/%s", id)
                   : g_strdup_printf("/machine/peripheral-anon/device[%u]",
                                     anon_count++);
    dev->backend_path = g_strdup_printf("%s/virtio-backend", dev->path);
    dev->serial = g_strdup(qdict_get_try_str(opts, "serial"));
    dev->blk = blk;
    QTAILQ_INSERT_TAIL(&devices, dev, link);
    return true;
}

/* Unlinks and frees @dev, releasing its BlockBackend reference. */
static void virtio_blk_free(VirtIOBlock *dev)
{
    QTAILQ_REMOVE(&devices, dev, link);
    blk_unref(dev->blk);
    g_free(dev->id);
    g_free(dev->path);
    g_free(dev->backend_path);
    g_free(dev->serial);
    g_free(dev);
}

bool virtio_blk_device_del(const char *id, Error **errp)
{
    VirtIOBlock *dev = virtio_blk_find(id);

    if (!dev) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "Device '%s' not found", id);
        return false;
    }
    /* QEMU reports the virtio backend's removal, then the device's. */
    qapi_event_send_device_deleted(NULL, dev->backend_path);
    qapi_event_send_device_deleted(dev->id, dev->path);
    virtio_blk_free(dev);
    return true;
}

void virtio_blk_del_all(void)
{
    while (!QTAILQ_EMPTY(&devices)) {
        virtio_blk_free(QTAILQ_FIRST(&devices));
    }
}

const char *virtio_blk_qdev_of(BlockBackend *blk)
{
    VirtIOBlock *dev = virtio_blk_find_by_blk(blk);

    return dev ? dev->backend_path : NULL;
}

const char *virtio_blk_id_of(BlockBackend *blk)
{
    VirtIOBlock *dev = virtio_blk_find_by_blk(blk);

    return dev ? dev->id : NULL;
}

BlockBackend *virtio_blk_next_blk(BlockBackend *prev)
{
    VirtIOBlock *dev = prev ? virtio_blk_find_by_blk(prev) : NULL;

    dev = dev ? QTAILQ_NEXT(dev, link) : QTAILQ_FIRST(&devices);
    return dev ? dev->blk : NULL;
}

/* device_add is 'gen': false: its arguments are the device's properties. */
void qmp_marshal_device_add(JsonObject *args, JsonNode **ret, Error **errp)
{
    if (virtio_blk_device_add(args, errp)) {
        *ret = qapi_empty_object_node();
    }
}

void qmp_device_del(const char *id, Error **errp)
{
    virtio_blk_device_del(id, errp);
}
