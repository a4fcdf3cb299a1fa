/*
 * Block device management for the monitor: drives (-drive), nodes owned
 * by the monitor (blockdev-add/-del), the block queries, block_resize and
 * the graph dump.
 *
 * Who holds what (docs/qmp-blockdev.md has the user-facing version):
 * - monitor_nodes holds one reference on each node blockdev-add created;
 *   blockdev-del drops it, which closes the node unless, somehow, another
 *   holder remains (blockdev-del refuses while any does);
 * - the drive table holds the first reference of each -drive
 *   BlockBackend; the BlockBackend's root edge holds its node;
 * - devices (hw/block/virtio-blk.c) hold a BlockBackend reference; jobs
 *   and exports hold nodes through their own root edges.
 */
#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qemu/queue.h"
#include "qemu/job.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/qapi.h"
#include "block/backup.h"
#include "block/blockjob.h"
#include "sysemu/blockdev.h"
#include "hw/block/virtio-blk.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"

typedef struct DriveInfo {
    BlockBackend *blk;          /* first reference held by the table */
    bool writethrough;          /* cache=writethrough/directsync */
    QTAILQ_ENTRY(DriveInfo) link;
} DriveInfo;

static QTAILQ_HEAD(, DriveInfo) drives = QTAILQ_HEAD_INITIALIZER(drives);

/* Nodes created by blockdev-add, oldest first; one reference each. */
static GSList *monitor_nodes;

bool blockdev_is_monitor_owned(BlockDriverState *bs)
{
    return g_slist_find(monitor_nodes, bs) != NULL;
}

static DriveInfo *drive_find(BlockBackend *blk)
{
    DriveInfo *dinfo;

    QTAILQ_FOREACH(dinfo, &drives, link) {
        if (dinfo->blk == blk) {
            return dinfo;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * blockdev-add / blockdev-del
 */

void qmp_blockdev_add(BlockdevOptions *options, Error **errp)
{
    JsonNode *json;
    QDict *opts;
    BlockDriverState *bs;

    if (!options->node_name) {
        error_setg(errp, "'node-name' must be specified for the root node");
        return;
    }
    /*
     * The visited options go back to JSON: exactly the members the user
     * gave, in the nested form bdrv_open() takes.
     */
    json = qapi_BlockdevOptions_to_json(options);
    opts = qdict_ref(json_node_get_object(json));
    json_node_unref(json);
    bs = bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, errp);
    if (!bs) {
        return;
    }
    /* The monitor keeps the reference bdrv_open() returned. */
    monitor_nodes = g_slist_append(monitor_nodes, bs);
}

/* True if @c is the root edge of a drive or of a device's BlockBackend. */
static bool child_is_blk_root(BdrvChild *c)
{
    BlockBackend *blk;

    for (blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (blk_root(blk) == c) {
            return true;
        }
    }
    for (blk = virtio_blk_next_blk(NULL); blk; blk = virtio_blk_next_blk(blk)) {
        if (blk_root(blk) == c) {
            return true;
        }
    }
    return false;
}

/*
 * Checks that nothing but the monitor holds @bs, with QEMU's messages:
 * drives and devices first, then other users without a node of their
 * own (jobs, exports), an overlay using it as its backing file,
 * ownership, and last other parent nodes or references held without an
 * edge.  A block job's source counts as held by a parent
 * node (QEMU's job works through a filter node above it, which also takes
 * over the source's drive): "Block device X is in use", or not owned by
 * the monitor for a drive's node, while its target is busy.
 */
static bool blockdev_del_check(BlockDriverState *bs, Error **errp)
{
    bool job_source = false;
    BdrvChild *c;

    QLIST_FOREACH(c, &bs->parents, next_parent) {
        job_source |= block_job_edge_is_shared(c);
    }
    /* In QEMU, a job's filter node has taken the drive of its source. */
    QLIST_FOREACH(c, &bs->parents, next_parent) {
        if (!job_source && !c->klass->parent_is_bds && child_is_blk_root(c)) {
            error_setg(errp, "Node %s is in use", bs->node_name);
            return false;
        }
    }
    QLIST_FOREACH(c, &bs->parents, next_parent) {
        if (!c->klass->parent_is_bds && !block_job_edge_is_shared(c) &&
            !child_is_blk_root(c)) {
            g_autofree char *desc = c->klass->get_parent_desc(c);

            error_setg(errp, "Node '%s' is busy: block device is in use by "
                       "%s", bs->node_name, desc);
            return false;
        }
    }
    if (!bdrv_check_not_backing(bs, errp)) {
        return false;
    }
    if (!blockdev_is_monitor_owned(bs)) {
        error_setg(errp, "Node %s is not owned by the monitor",
                   bs->node_name);
        return false;
    }
    if (bdrv_get_refcnt(bs) > 1) {
        error_setg(errp, "Block device %s is in use", bs->node_name);
        return false;
    }
    return true;
}

void qmp_blockdev_del(const char *node_name, Error **errp)
{
    BlockDriverState *bs = bdrv_find_node(node_name);

    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'",
                   node_name);
        return;
    }
    if (!blockdev_del_check(bs, errp)) {
        return;
    }
    monitor_nodes = g_slist_remove(monitor_nodes, bs);
    /*
     * The last reference: the node is flushed and closed, and its children
     * go with it unless something else holds them.
     */
    bdrv_unref(bs);
}

/* ------------------------------------------------------------------------
 * Queries
 */

/* Drives first, then anonymous BlockBackends of devices. */
static BlockBackend *blockdev_next_blk(BlockBackend *blk)
{
    if (!blk || blk_name(blk)[0]) {
        blk = blk_next(blk);
        if (blk) {
            return blk;
        }
        blk = NULL;
    }
    do {
        blk = virtio_blk_next_blk(blk);
    } while (blk && blk_name(blk)[0]);
    return blk;
}

BlockInfoList *qmp_query_block(Error **errp)
{
    BlockInfoList *head = NULL, **tail = &head;
    BlockBackend *blk;

    for (blk = blockdev_next_blk(NULL); blk; blk = blockdev_next_blk(blk)) {
        DriveInfo *dinfo = drive_find(blk);
        BlockInfo *info = bdrv_query_block_info(blk, virtio_blk_qdev_of(blk),
                                                dinfo && dinfo->writethrough,
                                                errp);

        if (!info) {
            qapi_free_BlockInfoList(head);
            return NULL;
        }
        QAPI_LIST_APPEND(tail, info);
    }
    return head;
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat,
                                                 Error **errp)
{
    BlockDeviceInfoList *head = NULL;
    BlockDriverState *bs;

    /* Newest first, as QEMU lists them. */
    for (bs = bdrv_next_all(NULL); bs; bs = bdrv_next_all(bs)) {
        BlockDeviceInfo *info;

        if (!bs->drv) {
            continue;   /* being opened or closed */
        }
        info = bdrv_block_device_info(bs, has_flat && flat, errp);
        if (!info) {
            qapi_free_BlockDeviceInfoList(head);
            return NULL;
        }
        QAPI_LIST_PREPEND(head, info);
    }
    return head;
}

bool blockdev_hmp_info_block(GString *out, const char *device, bool nodes,
                             Error **errp)
{
    bool first = true;

    if (nodes) {
        Error *local_err = NULL;
        BlockDeviceInfoList *list = qmp_query_named_block_nodes(true, true,
                                                                &local_err);

        if (local_err) {
            error_propagate(errp, local_err);
            return false;
        }
        for (BlockDeviceInfoList *l = list; l; l = l->next) {
            g_string_append(out, first ? "" : "\n");
            bdrv_print_node_info(out, l->value);
            first = false;
        }
        qapi_free_BlockDeviceInfoList(list);
        return true;
    } else {
        Error *local_err = NULL;
        BlockInfoList *list = qmp_query_block(&local_err);

        if (local_err) {
            error_propagate(errp, local_err);
            return false;
        }
        for (BlockInfoList *l = list; l; l = l->next) {
            if (device && strcmp(device, l->value->device)) {
                continue;
            }
            g_string_append(out, first ? "" : "\n");
            bdrv_print_block_info(out, l->value);
            first = false;
        }
        qapi_free_BlockInfoList(list);
        return true;
    }
}

/* ------------------------------------------------------------------------
 * x-debug-query-block-graph
 */

typedef struct GraphBuilder {
    XDbgBlockGraph *graph;
    XDbgBlockGraphNodeList **nodes_tail;
    XDbgBlockGraphEdgeList **edges_tail;
    GHashTable *ids;            /* parent/child object -> vertex id */
    uint64_t next_id;
} GraphBuilder;

static XDbgBlockGraphNode *graph_add_vertex(GraphBuilder *gb, void *obj,
                                            XDbgBlockGraphNodeType type,
                                            const char *name)
{
    XDbgBlockGraphNode *n = g_new0(XDbgBlockGraphNode, 1);

    n->id = ++gb->next_id;
    n->type = type;
    n->name = g_strdup(name);
    g_hash_table_insert(gb->ids, obj, GUINT_TO_POINTER(n->id));
    QAPI_LIST_APPEND(gb->nodes_tail, n);
    return n;
}

static uint64_t graph_vertex_id(GraphBuilder *gb, void *obj)
{
    return GPOINTER_TO_UINT(g_hash_table_lookup(gb->ids, obj));
}

/* Permission lists in QEMU's order (highest bit first). */
static BlockPermissionList *graph_perms(bool read, bool write, bool unchanged,
                                        bool resize)
{
    BlockPermissionList *list = NULL;

    if (read) {
        QAPI_LIST_PREPEND(list, BLOCK_PERMISSION_CONSISTENT_READ);
    }
    if (write) {
        QAPI_LIST_PREPEND(list, BLOCK_PERMISSION_WRITE);
    }
    if (unchanged) {
        QAPI_LIST_PREPEND(list, BLOCK_PERMISSION_WRITE_UNCHANGED);
    }
    if (resize) {
        QAPI_LIST_PREPEND(list, BLOCK_PERMISSION_RESIZE);
    }
    return list;
}

/*
 * qblock has no permission system; the edges report what the parent's
 * role implies, as QEMU's would for the same graph: a writable node uses
 * its file fully and shares only reads, a drive asks for writes only when
 * a device is attached, backing files are only read.
 */
static void graph_add_edge(GraphBuilder *gb, BdrvChild *c, uint64_t parent)
{
    XDbgBlockGraphEdge *e = g_new0(XDbgBlockGraphEdge, 1);
    bool writable = !bdrv_is_read_only(c->bs);

    e->parent = parent;
    e->child = graph_vertex_id(gb, c->bs);
    e->name = g_strdup(c->name);
    if (c->klass->parent_is_bds) {
        BlockDriverState *p = c->opaque;
        bool w = writable && !bdrv_is_read_only(p) &&
                 !(c->role & BDRV_CHILD_COW);

        e->perm = graph_perms(true, w, false, w);
        e->shared_perm = w ? graph_perms(true, false, true, false)
                           : graph_perms(true, false, true, true);
    } else {
        bool w = writable && child_is_blk_root(c) &&
                 virtio_blk_qdev_of(c->opaque);

        e->perm = graph_perms(true, w, false, false);
        e->shared_perm = graph_perms(true, true, true, true);
    }
    QAPI_LIST_APPEND(gb->edges_tail, e);
}

/* The vertex of a non-node parent, added on first sight. */
static uint64_t graph_parent_vertex(GraphBuilder *gb, BdrvChild *c)
{
    uint64_t id = graph_vertex_id(gb, c->opaque);
    Job *job;

    if (id) {
        return id;
    }
    job = job_of_child(c);
    if (job) {
        return graph_add_vertex(gb, c->opaque,
                                X_DBG_BLOCK_GRAPH_NODE_TYPE_BLOCK_JOB,
                                job_id(job))->id;
    }
    return graph_add_vertex(gb, c->opaque,
                            X_DBG_BLOCK_GRAPH_NODE_TYPE_BLOCK_BACKEND,
                            c->klass->get_name(c))->id;
}

XDbgBlockGraph *qmp_x_debug_query_block_graph(Error **errp)
{
    GraphBuilder gb = { .graph = g_new0(XDbgBlockGraph, 1) };
    BlockDriverState *bs;
    BlockBackend *blk;

    gb.nodes_tail = &gb.graph->nodes;
    gb.edges_tail = &gb.graph->edges;
    gb.ids = g_hash_table_new(NULL, NULL);

    for (blk = blockdev_next_blk(NULL); blk; blk = blockdev_next_blk(blk)) {
        const char *name = blk_name(blk);

        graph_add_vertex(&gb, blk, X_DBG_BLOCK_GRAPH_NODE_TYPE_BLOCK_BACKEND,
                         name[0] ? name : virtio_blk_qdev_of(blk));
    }
    for (bs = bdrv_next_all(NULL); bs; bs = bdrv_next_all(bs)) {
        XDbgBlockGraphNode *n =
            graph_add_vertex(&gb, bs, X_DBG_BLOCK_GRAPH_NODE_TYPE_BLOCK_DRIVER,
                             bs->node_name);

        n->has_refcount = true;
        n->refcount = bdrv_get_refcnt(bs);
        n->has_monitor_owned = true;
        n->monitor_owned = blockdev_is_monitor_owned(bs);
    }
    for (bs = bdrv_next_all(NULL); bs; bs = bdrv_next_all(bs)) {
        BdrvChild *c;

        QLIST_FOREACH(c, &bs->parents, next_parent) {
            uint64_t parent = c->klass->parent_is_bds ?
                graph_vertex_id(&gb, c->opaque) : graph_parent_vertex(&gb, c);

            graph_add_edge(&gb, c, parent);
        }
    }
    g_hash_table_destroy(gb.ids);
    return gb.graph;
}

/* ------------------------------------------------------------------------
 * block_resize
 */

void qmp_block_resize(const char *device, const char *node_name,
                      int64_t size, Error **errp)
{
    BlockDriverState *bs;
    BlockBackend *blk;

    bs = bdrv_lookup_bs(device, node_name, errp);
    if (!bs) {
        return;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return;
    }
    if (bdrv_is_read_only(bs)) {
        error_setg(errp, "Block node is read-only");
        return;
    }
    /* A temporary user of the node, as QEMU resizes through one. */
    blk = blk_new();
    if (blk_insert_bs(blk, bs, errp) == 0) {
        blk_truncate(blk, size, false, PREALLOC_MODE_OFF, 0, errp);
    }
    blk_unref(blk);
}

/* ------------------------------------------------------------------------
 * -drive
 */

typedef struct DriveCacheMode {
    const char *name;
    bool direct;
    bool no_flush;
    bool writethrough;
} DriveCacheMode;

static const DriveCacheMode drive_cache_modes[] = {
    { "writeback",    false, false, false },
    { "none",         true,  false, false },
    { "writethrough", false, false, true  },
    { "directsync",   true,  false, true  },
    { "unsafe",       false, true,  false },
};

static const DriveCacheMode *drive_find_cache_mode(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(drive_cache_modes); i++) {
        if (!strcmp(drive_cache_modes[i].name, name)) {
            return &drive_cache_modes[i];
        }
    }
    return NULL;
}

/* "none0", "virtio1", ...: the first free name for the interface. */
static char *drive_default_id(const char *iface)
{
    for (unsigned n = 0;; n++) {
        char *id = g_strdup_printf("%s%u", iface, n);

        if (!blk_by_name(id) && !bdrv_find_node(id)) {
            return id;
        }
        g_free(id);
    }
}

/* Takes a string option out of @opts (NULL if absent); g_free the result. */
static char *drive_take_str(QDict *opts, const char *key, Error **errp)
{
    char *val;

    if (!qdict_haskey(opts, key)) {
        return NULL;
    }
    val = qdict_get_as_string(opts, key);
    if (!val) {
        error_setg(errp, "Invalid parameter type for '%s', expected: string",
                   key);
        return NULL;
    }
    qdict_del(opts, key);
    return val;
}

/*
 * Turns the drive-level options of @opts (a private copy) into node
 * options and open flags: format, readonly, cache, aio.  What is left in
 * @opts afterwards goes to bdrv_open() as is.
 */
static bool drive_translate_opts(QDict *opts, int *flags, bool *writethrough,
                                 Error **errp)
{
    Error *local_err = NULL;
    g_autofree char *format = drive_take_str(opts, "format", &local_err);
    g_autofree char *cache = NULL;
    g_autofree char *aio = NULL;
    bool readonly;

    if (!local_err) {
        cache = drive_take_str(opts, "cache", &local_err);
    }
    if (!local_err) {
        aio = drive_take_str(opts, "aio", &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        return false;
    }
    if (format) {
        qdict_put_str(opts, "driver", format);
    }
    if (qdict_haskey(opts, "readonly")) {
        if (!qdict_get_bool_opt(opts, "readonly", false, &readonly,
                                &local_err)) {
            /* QEMU names the node option the drive option stands for. */
            error_free(local_err);
            error_setg(errp, "Parameter 'read-only' expects 'on' or 'off'");
            return false;
        }
        qdict_del(opts, "readonly");
        qdict_put_bool(opts, "read-only", readonly);
    }
    *flags = BDRV_O_RDWR;
    *writethrough = false;
    if (cache) {
        const DriveCacheMode *mode = drive_find_cache_mode(cache);
        QDict *cache_opts;

        if (!mode) {
            error_setg(errp, "invalid cache option");
            return false;
        }
        /* Explicit cache.* options win over the shorthand. */
        cache_opts = qdict_get_qdict(opts, "cache");
        if (!cache_opts) {
            cache_opts = qdict_new();
            qdict_put_qdict(opts, "cache", cache_opts);
        }
        if (!qdict_haskey(cache_opts, "direct")) {
            qdict_put_bool(cache_opts, "direct", mode->direct);
        }
        if (!qdict_haskey(cache_opts, "no-flush")) {
            qdict_put_bool(cache_opts, "no-flush", mode->no_flush);
        }
        *writethrough = mode->writethrough;
    }
    if (aio) {
        QDict *cache_opts = qdict_get_qdict(opts, "cache");
        bool direct = false;

        if (!strcmp(aio, "native")) {
            *flags |= BDRV_O_NATIVE_AIO;
        } else if (!strcmp(aio, "io_uring")) {
            *flags |= BDRV_O_IO_URING;
        } else if (!strcmp(aio, "threads")) {
            *flags |= BDRV_O_THREAD_POOL;
        } else {
            error_setg(errp, "invalid aio option");
            return false;
        }
        if (cache_opts &&
            !qdict_get_bool_opt(cache_opts, "direct", false, &direct, errp)) {
            return false;
        }
        if ((*flags & BDRV_O_NATIVE_AIO) && !direct) {
            error_setg(errp, "aio=native was specified, but it requires "
                       "cache.direct=on, which was not specified.");
            return false;
        }
    }
    return true;
}

/* Opens the drive's node and attaches it to @blk. */
static bool drive_open_medium(BlockBackend *blk, QDict *opts, int flags,
                              Error **errp)
{
    g_autofree char *filename = NULL;
    BlockDriverState *bs;
    int ret;

    /* file=PATH names the image; a nested "file" holds child options. */
    if (qdict_get_try_str(opts, "file")) {
        filename = g_strdup(qdict_get_try_str(opts, "file"));
        qdict_del(opts, "file");
    }
    bs = bdrv_open(filename, NULL, qdict_ref(opts), flags, errp);
    if (!bs) {
        return false;
    }
    ret = blk_insert_bs(blk, bs, errp);
    /* The BlockBackend took its own reference (or failed to). */
    bdrv_unref(bs);
    return ret == 0;
}

/* Every key of @opts except "id" and "if": is there a medium to open? */
static bool drive_has_medium(QDict *opts)
{
    GList *keys = qdict_keys(opts);
    bool medium = false;

    for (GList *l = keys; l && !medium; l = l->next) {
        medium = strcmp(l->data, "id") && strcmp(l->data, "if");
    }
    g_list_free(keys);
    return medium;
}

static bool drive_add_device(const char *id, Error **errp)
{
    g_autoptr(QDict) dev_opts = qdict_new();

    qdict_put_str(dev_opts, "driver", "virtio-blk-pci");
    qdict_put_str(dev_opts, "drive", id);
    return virtio_blk_device_add(dev_opts, errp);
}

BlockBackend *drive_new(QDict *options, Error **errp)
{
    g_autoptr(QDict) opts = qdict_clone(options);
    g_autofree char *iface = NULL;
    g_autofree char *id = NULL;
    Error *local_err = NULL;
    DriveInfo *dinfo;
    BlockBackend *blk;
    bool writethrough;
    int flags;

    qdict_crumple(opts);
    iface = drive_take_str(opts, "if", &local_err);
    if (!local_err) {
        id = drive_take_str(opts, "id", &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        return NULL;
    }
    if (iface && strcmp(iface, "none") && strcmp(iface, "virtio")) {
        error_setg(errp, "Unsupported interface if=%s: qblockd has no "
                   "machine; use if=none or if=virtio", iface);
        return NULL;
    }
    if (!iface) {
        /* QEMU's default (ide) needs a machine: a plain drive is closest. */
        iface = g_strdup("none");
    }
    if (id && !id_wellformed(id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
        error_append_hint(errp, "Identifiers consist of letters, digits, "
                          "'-', '.', '_', starting with a letter.\n");
        return NULL;
    }
    if (id && blk_by_name(id)) {
        error_setg(errp, "Duplicate ID '%s' for drive", id);
        return NULL;
    }
    if (!id) {
        id = drive_default_id(iface);
    }
    if (!drive_translate_opts(opts, &flags, &writethrough, errp)) {
        return NULL;
    }

    blk = blk_new();
    if ((drive_has_medium(opts) &&
         !drive_open_medium(blk, opts, flags, errp)) ||
        !monitor_add_blk(blk, id, errp)) {
        blk_unref(blk);
        return NULL;
    }
    /* Writethrough: every write is FUA, so none completes early either. */
    blk_set_enable_write_cache(blk, !writethrough);
    dinfo = g_new0(DriveInfo, 1);
    dinfo->blk = blk;
    dinfo->writethrough = writethrough;
    QTAILQ_INSERT_TAIL(&drives, dinfo, link);

    if (!strcmp(iface, "virtio") && !drive_add_device(id, errp)) {
        drive_del(id, &error_abort);
        return NULL;
    }
    return blk;
}

/* Drops the drive table's reference; the node goes with the last one. */
static void drive_free(DriveInfo *dinfo)
{
    QTAILQ_REMOVE(&drives, dinfo, link);
    monitor_remove_blk(dinfo->blk);
    blk_unref(dinfo->blk);
    g_free(dinfo);
}

bool drive_del(const char *id, Error **errp)
{
    BlockBackend *blk = blk_by_name(id);
    DriveInfo *dinfo = blk ? drive_find(blk) : NULL;
    const char *qdev;

    if (!dinfo) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND,
                  "Device '%s' not found", id);
        return false;
    }
    qdev = virtio_blk_qdev_of(blk);
    if (qdev) {
        error_setg(errp, "Drive '%s' is in use by device '%s'", id, qdev);
        return false;
    }
    drive_free(dinfo);
    return true;
}

/* ------------------------------------------------------------------------
 * Backup
 */

/*
 * The generated DriveBackup and BlockdevBackup start with BackupCommon's
 * members in the same order (QAPI's base-struct layout), so the common
 * part can be viewed through a BackupCommon pointer.
 */
#define backup_common(arg) ((BackupCommon *)(arg))

/*
 * Translates the arguments both backup commands share; false with @errp
 * for QEMU's argument errors.
 */
static bool backup_common_opts(BackupCommon *b, BlockDriverState *bs,
                               BackupJobOptions *opts, Error **errp)
{
    memset(opts, 0, sizeof(*opts));
    if (b->has_speed && b->speed < 0) {
        /* Before drive-backup creates anything. */
        error_setg(errp, "Parameter 'speed' expects a non-negative value");
        return false;
    }
    opts->sync = b->sync;
    opts->speed = b->has_speed ? b->speed : 0;
    opts->compress = b->has_compress && b->compress;
    opts->on_source_error = b->has_on_source_error ? b->on_source_error
                                                   : BLOCKDEV_ON_ERROR_REPORT;
    opts->on_target_error = b->has_on_target_error ? b->on_target_error
                                                   : BLOCKDEV_ON_ERROR_REPORT;
    if (b->has_auto_finalize && !b->auto_finalize) {
        opts->job_flags |= JOB_MANUAL_FINALIZE;
    }
    if (b->has_auto_dismiss && !b->auto_dismiss) {
        opts->job_flags |= JOB_MANUAL_DISMISS;
    }
    if (b->x_perf) {
        opts->max_workers = b->x_perf->has_max_workers
                            ? b->x_perf->max_workers : 0;
        opts->max_chunk = b->x_perf->has_max_chunk ? b->x_perf->max_chunk : 0;
    }
    if (b->sync == MIRROR_SYNC_MODE_INCREMENTAL) {
        if (b->has_bitmap_mode &&
            b->bitmap_mode != BITMAP_SYNC_MODE_ON_SUCCESS) {
            error_setg(errp, "Bitmap sync mode must be 'on-success' when "
                       "using sync mode 'incremental'");
            return false;
        }
        b->has_bitmap_mode = true;
        b->bitmap_mode = BITMAP_SYNC_MODE_ON_SUCCESS;
    }
    if (b->bitmap) {
        opts->bitmap = bdrv_find_dirty_bitmap(bs, b->bitmap);
        if (!opts->bitmap) {
            error_setg(errp, "Bitmap '%s' could not be found", b->bitmap);
            return false;
        }
        if (!b->has_bitmap_mode) {
            error_setg(errp, "Bitmap sync mode must be given when providing "
                       "a bitmap");
            return false;
        }
        if (b->sync == MIRROR_SYNC_MODE_NONE) {
            error_setg(errp, "sync mode '%s' does not produce meaningful "
                       "bitmap outputs", MirrorSyncMode_str(b->sync));
            return false;
        }
        opts->bitmap_mode = b->bitmap_mode;
    } else if (b->sync == MIRROR_SYNC_MODE_BITMAP ||
               b->sync == MIRROR_SYNC_MODE_INCREMENTAL) {
        error_setg(errp, "must provide a valid bitmap name for '%s' sync mode",
                   MirrorSyncMode_str(b->sync));
        return false;
    } else if (b->has_bitmap_mode) {
        error_setg(errp, "Cannot specify bitmap sync mode without a bitmap");
        return false;
    }
    return true;
}

/*
 * Creates drive-backup's target image: sync=full without backing file,
 * top with the source's backing file (none if the source has none: the
 * job then copies everything), none with the source image itself as the
 * backing file.
 */
static bool drive_backup_create_target(DriveBackup *arg, BlockDriverState *bs,
                                       const char *format, Error **errp)
{
    BlockDriverState *backing = NULL;
    BlockDriver *drv = bdrv_find_format(format);
    QDict *opts;
    int64_t size;
    int ret;

    if (!drv) {
        error_setg(errp, "Unknown driver '%s'", format);
        return false;
    }
    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "bdrv_getlength failed");
        return false;
    }
    if (arg->sync == MIRROR_SYNC_MODE_TOP) {
        backing = bdrv_backing_bs(bs);
    } else if (arg->sync == MIRROR_SYNC_MODE_NONE) {
        backing = bs;
    }
    opts = qdict_new();
    qdict_put_int(opts, "size", size);
    if (backing) {
        qdict_put_str(opts, "backing_file", bdrv_get_filename(backing));
        qdict_put_str(opts, "backing_fmt", bdrv_get_format_name(backing));
    }
    ret = bdrv_create(drv, arg->target, opts, errp);
    qobject_unref(opts);
    return ret >= 0;
}

/*
 * Opens drive-backup's target.  For sync=none its backing link is the live
 * source node (the fleecing arrangement): clusters not yet copied read
 * through to the source's unchanged data.
 */
static BlockDriverState *drive_backup_open_target(DriveBackup *arg,
                                                  BlockDriverState *bs,
                                                  const char *format,
                                                  Error **errp)
{
    QDict *options = qdict_new();

    if (format) {
        qdict_put_str(options, "driver", format);
    }
    if (arg->target_id) {
        qdict_put_str(options, "node-name", arg->target_id);
    }
    if (arg->sync == MIRROR_SYNC_MODE_NONE) {
        qdict_put_str(options, "backing", bdrv_get_node_name(bs));
    }
    return bdrv_open(arg->target, NULL, options, BDRV_O_RDWR, errp);
}

/*
 * Refuses a backup node (@name as the command gave it) that a running job
 * holds, with QEMU's message.  A drive name finds every job on the drive's
 * root busy, since in QEMU that job's filter node has become the drive's
 * root; by node name a job's source is free for another job's source
 * (several backups of one node run at once) but no job's node may be a
 * target.
 */
static bool backup_check_node_free(const char *name, BlockDriverState *bs,
                                   bool is_target, Error **errp)
{
    bool by_drive = blk_by_name(name) != NULL;
    Job *user = by_drive || is_target ? job_using_node(bs)
                                      : block_job_exclusive_user(bs);

    if (user) {
        error_setg(errp, "Node '%s' is busy: block device is in use by "
                   "block job: %s", by_drive ? name : bdrv_get_node_name(bs),
                   JobType_str(user->driver->type));
        return false;
    }
    return true;
}

/*
 * Whether a backup's source and target, named @src_name and @tgt_name,
 * are one node as QEMU sees them: there a drive whose root a job holds
 * names that job's filter node, not the node below it.
 */
static bool backup_same_node(const char *src_name, BlockDriverState *bs,
                             const char *tgt_name, BlockDriverState *target)
{
    if (bs != target) {
        return false;
    }
    return !job_using_node(bs) ||
           !blk_by_name(src_name) == !blk_by_name(tgt_name);
}

BlockJob *drive_backup_new_job(DriveBackup *arg, Error **errp)
{
    NewImageMode mode = arg->has_mode ? arg->mode
                                      : NEW_IMAGE_MODE_ABSOLUTE_PATHS;
    const char *format = arg->format;
    BlockDriverState *bs, *target;
    BackupJobOptions opts;
    BlockJob *bjob;

    bs = bdrv_lookup_bs(arg->device, arg->device, errp);
    if (!bs || !backup_check_node_free(arg->device, bs, false, errp)) {
        return NULL;
    }
    if (!backup_common_opts(backup_common(arg), bs, &opts, errp)) {
        return NULL;
    }
    if (!format && mode != NEW_IMAGE_MODE_EXISTING) {
        format = bdrv_get_format_name(bs);
    }
    if (mode != NEW_IMAGE_MODE_EXISTING &&
        !drive_backup_create_target(arg, bs, format, errp)) {
        return NULL;
    }
    target = drive_backup_open_target(arg, bs, format, errp);
    if (!target) {
        return NULL;
    }
    bjob = backup_job_new(arg->job_id, bs, target, &opts, errp);
    /* The job holds the target now; without a job it closes here. */
    bdrv_unref(target);
    return bjob;
}

void qmp_drive_backup(DriveBackup *arg, Error **errp)
{
    BlockJob *bjob = drive_backup_new_job(arg, errp);

    if (bjob) {
        job_start(bjob->job);
    }
}

BlockJob *blockdev_backup_new_job(BlockdevBackup *arg, Error **errp)
{
    BlockDriverState *bs, *target;
    BackupJobOptions opts;

    bs = bdrv_lookup_bs(arg->device, arg->device, errp);
    if (!bs) {
        return NULL;
    }
    target = bdrv_lookup_bs(arg->target, arg->target, errp);
    if (!target) {
        return NULL;
    }
    /* QEMU's order: one node for both, then the source, then the target. */
    if (!backup_same_node(arg->device, bs, arg->target, target) &&
        (!backup_check_node_free(arg->device, bs, false, errp) ||
         !backup_check_node_free(arg->target, target, true, errp))) {
        return NULL;
    }
    if (!backup_common_opts(backup_common(arg), bs, &opts, errp)) {
        return NULL;
    }
    return backup_job_new(arg->job_id, bs, target, &opts, errp);
}

void qmp_blockdev_backup(BlockdevBackup *arg, Error **errp)
{
    BlockJob *bjob = blockdev_backup_new_job(arg, errp);

    if (bjob) {
        job_start(bjob->job);
    }
}

/* ------------------------------------------------------------------------
 * Exit
 */

void blockdev_close_all_for_exit(void)
{
    /* Jobs first: they hold nodes and may still be writing. */
    job_cancel_sync_all();
    job_dismiss_all();
    virtio_blk_del_all();
    while (!QTAILQ_EMPTY(&drives)) {
        drive_free(QTAILQ_FIRST(&drives));
    }
    while (monitor_nodes) {
        BlockDriverState *bs = monitor_nodes->data;

        monitor_nodes = g_slist_delete_link(monitor_nodes, monitor_nodes);
        bdrv_unref(bs);
    }
    /* Whatever other holders (exports...) still keep open. */
    bdrv_close_all();
}
