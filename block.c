/*
 * The block layer's node graph: driver registry, opening nodes (probing,
 * options, children, backing files), reference counting and closing.
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/dirty-bitmap.h"
#include "block/drivers.h"
#include "qemu/cutils.h"
#include "block-trace.h"

static QLIST_HEAD(, BlockDriver) bdrv_drivers =
    QLIST_HEAD_INITIALIZER(bdrv_drivers);

/* Every open node, named or not (main loop thread only). */
static QTAILQ_HEAD(, BlockDriverState) all_bdrv_states =
    QTAILQ_HEAD_INITIALIZER(all_bdrv_states);

/* Options every node accepts, handled here rather than by drivers. */
static const char *const bdrv_generic_opts[] = {
    "driver", "node-name", "read-only", "auto-read-only", "force-share",
    "cache", "discard", "detect-zeroes", NULL,
};

static void bdrv_close(BlockDriverState *bs);

void bdrv_register(BlockDriver *drv)
{
    QLIST_INSERT_HEAD(&bdrv_drivers, drv, list);
}

void bdrv_init(void)
{
    static bool done;

    if (done) {
        return;
    }
    done = true;
    qemu_get_aio_context();
    bdrv_file_init();
    bdrv_raw_init();
    bdrv_null_init();
    bdrv_blkdebug_init();
    bdrv_qcow2_init();
    bdrv_nbd_init();
    bdrv_cbw_init();
    bdrv_snapshot_access_init();
}

BlockDriver *bdrv_find_format(const char *format_name)
{
    BlockDriver *drv;

    QLIST_FOREACH(drv, &bdrv_drivers, list) {
        if (!strcmp(drv->format_name, format_name)) {
            return drv;
        }
    }
    return NULL;
}

static gint bdrv_name_cmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void bdrv_print_formats(FILE *f)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    BlockDriver *drv;

    QLIST_FOREACH(drv, &bdrv_drivers, list) {
        g_ptr_array_add(names, (gpointer)drv->format_name);
    }
    g_ptr_array_sort(names, bdrv_name_cmp);
    for (guint i = 0; i < names->len; i++) {
        /* Several drivers may share a format name (nbd, nbd+unix, ...). */
        if (i > 0 && !strcmp(names->pdata[i], names->pdata[i - 1])) {
            continue;
        }
        fprintf(f, " %s", (const char *)names->pdata[i]);
    }
}

/* The protocol driver for "proto:..." filenames, or "file". */
static BlockDriver *bdrv_find_protocol(const char *filename, Error **errp)
{
    BlockDriver *drv;
    const char *colon;
    size_t len;

    if (!path_has_protocol(filename)) {
        return bdrv_find_format("file");
    }
    colon = strchr(filename, ':');
    len = colon - filename;
    QLIST_FOREACH(drv, &bdrv_drivers, list) {
        if (drv->protocol_name && strlen(drv->protocol_name) == len &&
            !strncmp(drv->protocol_name, filename, len)) {
            return drv;
        }
    }
    error_setg(errp, "Unknown protocol '%.*s'", (int)len, filename);
    return NULL;
}

/* Picks the format with the highest probe score; raw scores 1. */
static BlockDriver *bdrv_probe_format(BlockDriverState *file_bs,
                                      Error **errp)
{
    uint8_t buf[2048];
    int64_t len = bdrv_getlength(file_bs);
    int buf_size, ret, score_max = 0;
    BlockDriver *drv, *best = NULL;
    BdrvChild probe_child = { .bs = file_bs, .name = (char *)"probe" };

    if (len < 0) {
        error_setg_errno(errp, -len, "Could not determine image size");
        return NULL;
    }
    buf_size = MIN(len, (int64_t)sizeof(buf));
    memset(buf, 0, sizeof(buf));
    if (buf_size > 0) {
        ret = bdrv_pread(&probe_child, 0, buf_size, buf, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read image for "
                             "determining its format");
            return NULL;
        }
    }
    QLIST_FOREACH(drv, &bdrv_drivers, list) {
        if (drv->bdrv_probe) {
            int score = drv->bdrv_probe(buf, buf_size, file_bs->filename);
            if (score > score_max) {
                score_max = score;
                best = drv;
            }
        }
    }
    if (!best) {
        error_setg(errp, "Could not determine image format: No compatible "
                   "driver found");
    }
    return best;
}

/*
 * node-name rules (QEMU's): letters, digits, '-', '.', '_', starting with a
 * letter, at most 31 characters.
 */
static bool node_name_is_valid(const char *name)
{
    if (!g_ascii_isalpha(name[0]) || strlen(name) > 31) {
        return false;
    }
    for (const char *p = name; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

void bdrv_assign_node_name(BlockDriverState *bs, const char *node_name,
                           Error **errp)
{
    static uint64_t counter;

    if (!node_name) {
        /* '#' cannot appear in user names, so generated ones never clash. */
        snprintf(bs->node_name, sizeof(bs->node_name), "#block%03" PRIu64,
                 counter++);
        bs->implicit_node_name = true;
        return;
    }
    if (!node_name_is_valid(node_name)) {
        error_setg(errp, "Invalid node-name: '%s'", node_name);
        return;
    }
    if (blk_by_name(node_name)) {
        error_setg(errp, "node-name=%s is conflicting with a device id",
                   node_name);
        return;
    }
    if (bdrv_find_node(node_name)) {
        error_setg(errp, "Duplicate nodes with node-name='%s'", node_name);
        return;
    }
    pstrcpy(bs->node_name, sizeof(bs->node_name), node_name);
    bs->implicit_node_name = false;
}

static BlockDriverState *bdrv_new(void)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);

    bs->refcnt = 1;
    QLIST_INIT(&bs->children);
    QLIST_INIT(&bs->parents);
    QLIST_INIT(&bs->tracked_requests);
    QLIST_INIT(&bs->before_write_notifiers);
    QTAILQ_INIT(&bs->dirty_bitmaps);
    qemu_co_queue_init(&bs->drain_queue);
    qemu_co_queue_init(&bs->deferred_done);
    QTAILQ_INSERT_TAIL(&all_bdrv_states, bs, all_list);
    return bs;
}

static void bdrv_free(BlockDriverState *bs)
{
    QTAILQ_REMOVE(&all_bdrv_states, bs, all_list);
    qobject_unref(bs->options);
    g_free(bs->opaque);
    g_free(bs);
}

/*
 * Translates the generic options (read-only, cache.*, discard,
 * detect-zeroes) into open flags and node fields, removing them from
 * @options.  Returns false on invalid values.
 */
static bool bdrv_apply_generic_opts(BlockDriverState *bs, QDict *options,
                                    int *flags, Error **errp)
{
    static const char *const discard_names[] = {
        "ignore", "off", "unmap", "on", NULL,
    };
    QDict *cache = qdict_get_qdict(options, "cache");
    bool read_only, direct, no_flush, force_share;
    int discard, detect_zeroes;

    if (!qdict_get_bool_opt(options, "read-only", !(*flags & BDRV_O_RDWR),
                            &read_only, errp)) {
        return false;
    }
    if (read_only) {
        *flags &= ~BDRV_O_RDWR;
    } else {
        *flags |= BDRV_O_RDWR;
    }
    if (!qdict_get_bool_opt(options, "force-share", false, &force_share,
                            errp)) {
        return false;
    }
    if (force_share && !read_only) {
        error_setg(errp, "force-share=on can only be used with read-only "
                   "images");
        return false;
    }
    if (cache) {
        if (!qdict_get_bool_opt(cache, "direct", *flags & BDRV_O_NOCACHE,
                                &direct, errp) ||
            !qdict_get_bool_opt(cache, "no-flush", *flags & BDRV_O_NO_FLUSH,
                                &no_flush, errp)) {
            return false;
        }
        *flags = direct ? (*flags | BDRV_O_NOCACHE) : (*flags & ~BDRV_O_NOCACHE);
        *flags = no_flush ? (*flags | BDRV_O_NO_FLUSH)
                          : (*flags & ~BDRV_O_NO_FLUSH);
    }
    if (!qdict_get_enum_opt(options, "discard", discard_names,
                            (*flags & BDRV_O_UNMAP) ? 2 : 0, &discard, errp)) {
        return false;
    }
    *flags = discard >= 2 ? (*flags | BDRV_O_UNMAP) : (*flags & ~BDRV_O_UNMAP);
    if (!qdict_get_enum_opt(options, "detect-zeroes",
                            BlockdevDetectZeroesOptions_lookup.array,
                            BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF,
                            &detect_zeroes, errp)) {
        return false;
    }
    if (detect_zeroes == BLOCKDEV_DETECT_ZEROES_OPTIONS_UNMAP &&
        !(*flags & BDRV_O_UNMAP)) {
        error_setg(errp, "setting detect-zeroes to unmap is not allowed "
                   "without setting discard operation to unmap");
        return false;
    }
    bs->detect_zeroes = detect_zeroes;
    return true;
}

/* Rejects any option that neither the generic layer nor @drv knows. */
static bool bdrv_check_leftover_opts(BlockDriver *drv, QDict *options,
                                     Error **errp)
{
    GList *keys = qdict_keys(options);
    bool ok = true;

    for (GList *l = keys; l && ok; l = l->next) {
        const char *key = l->data;

        if (g_strv_contains(bdrv_generic_opts, key) ||
            (drv->runtime_opts && g_strv_contains(drv->runtime_opts, key))) {
            continue;
        }
        if (drv->is_format || drv->is_filter) {
            error_setg(errp, "Block format '%s' does not support the option "
                       "'%s'", drv->format_name, key);
        } else {
            error_setg(errp, "Block protocol '%s' doesn't support the option "
                       "'%s'", drv->format_name, key);
        }
        ok = false;
    }
    g_list_free(keys);
    return ok;
}

static void bdrv_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BdrvChild *c;

    memset(&bs->bl, 0, sizeof(bs->bl));
    bs->bl.request_alignment = 1;
    bs->bl.min_mem_alignment = 1;
    bs->bl.opt_mem_alignment = 1;
    bs->bl.max_iov = IOV_MAX;

    /* Buffers must suit every child: take the strictest alignment. */
    QLIST_FOREACH(c, &bs->children, next) {
        bs->bl.min_mem_alignment = MAX(bs->bl.min_mem_alignment,
                                       c->bs->bl.min_mem_alignment);
        bs->bl.opt_mem_alignment = MAX(bs->bl.opt_mem_alignment,
                                       c->bs->bl.opt_mem_alignment);
        bs->bl.opt_transfer = MAX(bs->bl.opt_transfer, c->bs->bl.opt_transfer);
    }
    if (bs->drv->bdrv_refresh_limits) {
        bs->drv->bdrv_refresh_limits(bs, errp);
    }
}

int bdrv_refresh_total_sectors(BlockDriverState *bs, int64_t hint)
{
    int64_t len;

    if (!bs->drv->bdrv_getlength) {
        bs->total_sectors = DIV_ROUND_UP(hint, BDRV_SECTOR_SIZE);
        return 0;
    }
    len = bs->drv->bdrv_getlength(bs);
    if (len < 0) {
        return len;
    }
    bs->total_sectors = DIV_ROUND_UP(len, BDRV_SECTOR_SIZE);
    return 0;
}

/*
 * Decides which driver opens @filename/@options: the "driver" option, a
 * protocol prefix, or (for images) a probe of the protocol node, which is
 * then opened first and handed to the format as its "file" child.
 */
static BlockDriver *bdrv_select_driver(const char *filename, QDict *options,
                                       int flags, BlockDriverState **probed,
                                       Error **errp)
{
    const char *drvname = qdict_get_try_str(options, "driver");
    BlockDriver *drv;
    BlockDriverState *file_bs;
    QDict *file_opts;

    if (qdict_haskey(options, "driver") && !drvname) {
        error_setg(errp, "Invalid parameter type for 'driver', expected: "
                   "string");
        return NULL;
    }
    if (drvname) {
        drv = bdrv_find_format(drvname);
        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", drvname);
        }
        return drv;
    }
    if (flags & BDRV_O_PROTOCOL) {
        if (!filename) {
            filename = qdict_get_try_str(options, "filename");
        }
        if (!filename) {
            error_setg(errp, "Must specify either driver or file");
            return NULL;
        }
        return bdrv_find_protocol(filename, errp);
    }

    /* An image: open the protocol layer and probe what lies on it. */
    if (qdict_haskey(options, "file")) {
        /* The format is unknown, but the file child is given explicitly. */
        file_bs = NULL;
        file_opts = NULL;
        if (qdict_get_try_str(options, "file")) {
            file_bs = bdrv_open(NULL, qdict_get_try_str(options, "file"),
                                NULL, flags, errp);
        } else {
            file_opts = qdict_extract_subqdict(options, "file");
            file_bs = bdrv_open(NULL, NULL, file_opts,
                                (flags & ~BDRV_O_NO_BACKING) | BDRV_O_PROTOCOL,
                                errp);
            if (file_bs) {
                qdict_put_str(options, "file", file_bs->node_name);
            }
        }
    } else {
        if (!filename) {
            error_setg(errp, "Must specify either driver or file");
            return NULL;
        }
        file_bs = bdrv_open(filename, NULL, NULL,
                            (flags & ~BDRV_O_NO_BACKING) | BDRV_O_PROTOCOL,
                            errp);
        if (file_bs) {
            qdict_put_str(options, "file", file_bs->node_name);
        }
    }
    if (!file_bs) {
        return NULL;
    }
    /*
     * The options now name the probed node as "file"; the format's
     * bdrv_open_child() takes its own reference.  The caller keeps ours
     * (*probed) until the format is open, then drops it.
     */
    *probed = file_bs;
    return bdrv_probe_format(file_bs, errp);
}

/*
 * "json:{...}" filenames carry the options themselves (as QEMU writes them
 * into image headers); merges them into @options, which win on conflicts.
 */
static bool bdrv_merge_json_filename(const char *filename, QDict *options,
                                     Error **errp)
{
    Error *local_err = NULL;
    QDict *json_opts = qdict_from_json(filename + strlen("json:"),
                                       &local_err);
    GList *keys;

    if (!json_opts) {
        error_propagate_prepend(errp, local_err, "Could not parse the JSON "
                                "options: ");
        return false;
    }
    qdict_crumple(json_opts);
    keys = qdict_keys(json_opts);
    for (GList *l = keys; l; l = l->next) {
        if (!qdict_haskey(options, l->data)) {
            qdict_put_node(options, l->data,
                           qnode_deep_copy(qdict_get(json_opts, l->data)));
        }
    }
    g_list_free(keys);
    qobject_unref(json_opts);
    return true;
}

/* Opens a new node; takes ownership of @options. */
static BlockDriverState *bdrv_open_inherit(const char *filename,
                                           QDict *options, int flags,
                                           Error **errp)
{
    BlockDriverState *bs = NULL;
    BlockDriverState *probed = NULL;
    BlockDriver *drv;
    Error *local_err = NULL;
    const char *node_name;
    int ret;

    if (filename && g_str_has_prefix(filename, "json:")) {
        if (!bdrv_merge_json_filename(filename, options, &local_err)) {
            goto fail;
        }
        filename = NULL;
    }
    qdict_crumple(options);
    drv = bdrv_select_driver(filename, options, flags, &probed, &local_err);
    if (!drv) {
        goto fail;
    }

    bs = bdrv_new();
    if (!bdrv_apply_generic_opts(bs, options, &flags, &local_err)) {
        goto fail;
    }
    node_name = qdict_get_try_str(options, "node-name");
    if (qdict_haskey(options, "node-name") && !node_name) {
        error_setg(&local_err, "Invalid parameter type for 'node-name', "
                   "expected: string");
        goto fail;
    }
    bdrv_assign_node_name(bs, node_name, &local_err);
    if (local_err) {
        goto fail;
    }

    /*
     * "proto:..." names, given as the argument or arriving as the
     * "filename" option (a format's file child), are parsed by their
     * driver; other protocols get the filename as an option, and formats
     * hand it to their "file".
     */
    if (drv->bdrv_parse_filename) {
        g_autofree char *name = g_strdup(filename ? filename :
                                         qdict_get_try_str(options,
                                                           "filename"));
        if (name && path_has_protocol(name)) {
            qdict_del(options, "filename");
            drv->bdrv_parse_filename(name, options, &local_err);
            if (local_err) {
                goto fail;
            }
            filename = NULL;
        }
    }
    if (filename && !drv->is_format && !drv->is_filter) {
        if (!qdict_haskey(options, "filename")) {
            qdict_put_str(options, "filename", filename);
        }
    } else if (filename && drv->is_format && !qdict_haskey(options, "file")) {
        QDict *file_opts = qdict_new();
        qdict_put_str(file_opts, "filename", filename);
        qdict_put_qdict(options, "file", file_opts);
    }
    if (qdict_get_try_str(options, "filename")) {
        pstrcpy(bs->filename, sizeof(bs->filename),
                qdict_get_try_str(options, "filename"));
    }

    bs->drv = drv;
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->opaque = g_malloc0(MAX(drv->instance_size, 1));
    bs->options = qdict_clone(options);

    ret = drv->bdrv_open(bs, options, flags, &local_err);
    bdrv_unref(probed);
    probed = NULL;
    if (ret < 0) {
        if (!local_err) {
            error_setg_errno(&local_err, -ret, "Could not open '%s'",
                             filename ? filename : bs->filename);
        }
        /* The driver freed its own state; release children it attached. */
        while (!QLIST_EMPTY(&bs->children)) {
            bdrv_unref_child(bs, QLIST_FIRST(&bs->children));
        }
        bs->drv = NULL;
        goto fail;
    }
    if (!bs->filename[0] && bs->file) {
        pstrcpy(bs->filename, sizeof(bs->filename), bs->file->bs->filename);
    }

    bdrv_refresh_limits(bs, &local_err);
    if (local_err) {
        goto fail_opened;
    }
    ret = bdrv_refresh_total_sectors(bs, 0);
    if (ret < 0) {
        error_setg_errno(&local_err, -ret, "Could not refresh total sector "
                         "count");
        goto fail_opened;
    }

    if (drv->supports_backing && !(flags & BDRV_O_NO_BACKING)) {
        if (bdrv_open_backing_file(bs, options, &local_err) < 0) {
            goto fail_opened;
        }
    } else {
        qdict_del(options, "backing");
    }

    if (!bdrv_check_leftover_opts(drv, options, &local_err)) {
        goto fail_opened;
    }
    trace_bdrv_open_node(bs, bs->node_name, drv->format_name, flags);
    qobject_unref(options);
    return bs;

fail_opened:
    bdrv_unref(bs);
    bs = NULL;
fail:
    bdrv_unref(probed);
    if (bs) {
        bdrv_free(bs);
    }
    qobject_unref(options);
    error_propagate(errp, local_err);
    return NULL;
}

BlockDriverState *bdrv_open(const char *filename, const char *reference,
                            QDict *options, int flags, Error **errp)
{
    BlockDriverState *bs;

    if (reference) {
        if (filename || (options && qdict_size(options))) {
            error_setg(errp, "Cannot reference an existing block device "
                       "with additional options or a new filename");
            qobject_unref(options);
            return NULL;
        }
        qobject_unref(options);
        bs = bdrv_lookup_bs(reference, reference, errp);
        if (bs) {
            bdrv_ref(bs);
        }
        return bs;
    }
    return bdrv_open_inherit(filename, options ? options : qdict_new(),
                             flags, errp);
}

/*
 * Open flags a child inherits from its parent.  A format's "file" child is
 * a protocol node and never probed; a filter's child stands where the
 * filter stands, so it is a protocol node exactly when the filter is one
 * (blkdebug:CONF:IMAGE under a probed format).  Backing files are opened
 * read-only.
 */
static int bdrv_child_flags(BlockDriverState *parent, const char *child_name,
                            BdrvChildRole role)
{
    int flags = parent->open_flags &
        (BDRV_O_RDWR | BDRV_O_NOCACHE | BDRV_O_NO_FLUSH | BDRV_O_UNMAP |
         BDRV_O_CHECK | BDRV_O_NO_IO | BDRV_O_NATIVE_AIO | BDRV_O_IO_URING |
         BDRV_O_THREAD_POOL);

    if (!strcmp(child_name, "file")) {
        flags |= BDRV_O_PROTOCOL;
    } else if (role & BDRV_CHILD_FILTERED) {
        flags |= parent->open_flags & BDRV_O_PROTOCOL;
    }
    if (role & BDRV_CHILD_COW) {
        flags &= ~(BDRV_O_RDWR | BDRV_O_CHECK);
    }
    return flags;
}

BdrvChild *bdrv_open_child(const char *filename, QDict *options,
                           const char *child_name, BlockDriverState *parent,
                           BdrvChildRole role, bool allow_none,
                           Error **errp)
{
    const char *reference = qdict_get_try_str(options, child_name);
    BlockDriverState *bs;
    QDict *child_opts = NULL;
    int flags = bdrv_child_flags(parent, child_name, role);

    if (reference) {
        bs = bdrv_open(NULL, reference, NULL, flags, errp);
        qdict_del(options, child_name);
    } else {
        child_opts = qdict_extract_subqdict(options, child_name);
        if (!qdict_size(child_opts) && !filename) {
            qobject_unref(child_opts);
            if (!allow_none) {
                error_setg(errp, "A block device must be specified for "
                           "\"%s\"", child_name);
            }
            return NULL;
        }
        bs = bdrv_open_inherit(filename, child_opts, flags, errp);
    }
    if (!bs) {
        return NULL;
    }
    return bdrv_attach_child(parent, bs, child_name, role, errp);
}

static char *bdrv_child_parent_desc(BdrvChild *c)
{
    BlockDriverState *parent = c->opaque;

    return g_strdup_printf("node '%s'", parent->node_name);
}

static const char *bdrv_child_parent_name(BdrvChild *c)
{
    BlockDriverState *parent = c->opaque;

    return parent->node_name;
}

const BdrvChildClass child_of_bds = {
    .parent_is_bds = true,
    .get_parent_desc = bdrv_child_parent_desc,
    .get_name = bdrv_child_parent_name,
};

BdrvChild *bdrv_root_attach_child(BlockDriverState *child_bs,
                                  const char *child_name,
                                  const BdrvChildClass *klass,
                                  BdrvChildRole role, void *opaque,
                                  Error **errp)
{
    BdrvChild *child = g_new0(BdrvChild, 1);

    child->bs = child_bs;
    child->name = g_strdup(child_name);
    child->klass = klass;
    child->role = role;
    child->opaque = opaque;
    QLIST_INSERT_HEAD(&child_bs->parents, child, next_parent);
    return child;
}

void bdrv_root_unref_child(BdrvChild *child)
{
    BlockDriverState *bs = child->bs;

    QLIST_REMOVE(child, next_parent);
    g_free(child->name);
    g_free(child);
    bdrv_unref(bs);
}

BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child_bs,
                             const char *child_name, BdrvChildRole role,
                             Error **errp)
{
    BdrvChild *child;

    for (BlockDriverState *p = child_bs; p; p = bdrv_backing_bs(p)) {
        if (p == parent) {
            error_setg(errp, "Making '%s' a %s child of '%s' would create a "
                       "cycle", child_bs->node_name, child_name,
                       parent->node_name);
            bdrv_unref(child_bs);
            return NULL;
        }
    }
    child = bdrv_root_attach_child(child_bs, child_name, &child_of_bds, role,
                                   parent, errp);
    QLIST_INSERT_HEAD(&parent->children, child, next);
    if (!strcmp(child_name, "file")) {
        parent->file = child;
    } else if (role & BDRV_CHILD_COW) {
        parent->backing = child;
    }
    return child;
}

void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child)
{
    if (!child) {
        return;
    }
    if (parent->file == child) {
        parent->file = NULL;
    }
    if (parent->backing == child) {
        parent->backing = NULL;
    }
    QLIST_REMOVE(child, next);
    bdrv_root_unref_child(child);
}

int bdrv_set_backing_hd(BlockDriverState *bs, BlockDriverState *backing_hd,
                        Error **errp)
{
    if (bs->backing) {
        bdrv_unref_child(bs, bs->backing);
    }
    if (!backing_hd) {
        return 0;
    }
    bdrv_ref(backing_hd);
    if (!bdrv_attach_child(bs, backing_hd, "backing",
                           BDRV_CHILD_COW | BDRV_CHILD_DATA |
                           BDRV_CHILD_METADATA, errp)) {
        return -EINVAL;
    }
    return 0;
}

/* True if @bs is @target or lies anywhere below it. */
static bool bdrv_reaches(BlockDriverState *bs, BlockDriverState *target)
{
    BdrvChild *c;

    if (bs == target) {
        return true;
    }
    QLIST_FOREACH(c, &bs->children, next) {
        if (bdrv_reaches(c->bs, target)) {
            return true;
        }
    }
    return false;
}

/* Whether bdrv_replace_node(from, to) moves the parent edge @c. */
static bool bdrv_replace_moves(BdrvChild *c, BlockDriverState *to)
{
    if (c->klass->stay_at_node) {
        return false;
    }
    return !(c->klass->parent_is_bds && c->opaque == to);
}

int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp)
{
    BdrvChild *c, *next;

    if (from == to) {
        error_setg(errp, "Cannot replace node '%s' with itself",
                   from->node_name);
        return -EINVAL;
    }
    /* Checked first so that a failure leaves the graph untouched. */
    QLIST_FOREACH(c, &from->parents, next_parent) {
        if (bdrv_replace_moves(c, to) && c->klass->parent_is_bds &&
            bdrv_reaches(to, c->opaque)) {
            BlockDriverState *parent = c->opaque;

            error_setg(errp, "Making '%s' a %s child of '%s' would create a "
                       "cycle", to->node_name, c->name, parent->node_name);
            return -EINVAL;
        }
    }
    /* No request may see the edge half moved. */
    bdrv_drain(from);
    /*
     * Our own reference keeps @from alive while its last edges leave (its
     * final unref below closes it if nothing else holds it).
     */
    bdrv_ref(from);
    QLIST_FOREACH_SAFE(c, &from->parents, next_parent, next) {
        if (!bdrv_replace_moves(c, to)) {
            continue;
        }
        QLIST_REMOVE(c, next_parent);
        c->bs = to;
        bdrv_ref(to);
        QLIST_INSERT_HEAD(&to->parents, c, next_parent);
        bdrv_unref(from);
    }
    bdrv_unref(from);
    return 0;
}

char *bdrv_get_full_backing_filename(BlockDriverState *bs, Error **errp)
{
    if (!bs->backing_file[0]) {
        return NULL;
    }
    if (path_has_protocol(bs->filename) && bs->backing_file[0] != '/' &&
        !path_has_protocol(bs->backing_file)) {
        error_setg(errp, "Cannot use relative backing file names for '%s'",
                   bs->filename);
        return NULL;
    }
    return path_combine(bs->filename, bs->backing_file);
}

int bdrv_open_backing_file(BlockDriverState *bs, QDict *options,
                           Error **errp)
{
    const char *reference = qdict_get_try_str(options, "backing");
    g_autofree char *backing_filename = NULL;
    QDict *backing_opts;
    BlockDriverState *backing_hd;
    Error *local_err = NULL;
    int flags = bdrv_child_flags(bs, "backing", BDRV_CHILD_COW);

    if (qdict_is_null(options, "backing")) {
        qdict_del(options, "backing");
        return 0;
    }
    if (reference) {
        backing_hd = bdrv_open(NULL, reference, NULL, flags, errp);
        qdict_del(options, "backing");
        if (!backing_hd) {
            return -EINVAL;
        }
        goto attach;
    }
    backing_opts = qdict_extract_subqdict(options, "backing");
    if (!qdict_size(backing_opts)) {
        if (!bs->backing_file[0]) {
            qobject_unref(backing_opts);
            return 0;
        }
        backing_filename = bdrv_get_full_backing_filename(bs, &local_err);
        if (!backing_filename) {
            qobject_unref(backing_opts);
            error_propagate(errp, local_err);
            return -EINVAL;
        }
        if (bs->backing_format[0]) {
            qdict_put_str(backing_opts, "driver", bs->backing_format);
        }
    }
    backing_hd = bdrv_open_inherit(backing_filename, backing_opts, flags,
                                   &local_err);
    if (!backing_hd) {
        error_propagate_prepend(errp, local_err,
                                "Could not open backing file: ");
        return -EINVAL;
    }

attach:
    if (!bdrv_attach_child(bs, backing_hd, "backing",
                           BDRV_CHILD_COW | BDRV_CHILD_DATA |
                           BDRV_CHILD_METADATA, errp)) {
        return -EINVAL;
    }
    return 0;
}

void bdrv_ref(BlockDriverState *bs)
{
    bs->refcnt++;
}

void bdrv_unref(BlockDriverState *bs)
{
    if (!bs) {
        return;
    }
    assert(bs->refcnt > 0);
    if (--bs->refcnt == 0) {
        /* Every parent edge holds a reference, so none can remain. */
        assert(QLIST_EMPTY(&bs->parents));
        bdrv_close(bs);
        bdrv_free(bs);
    }
}

int bdrv_get_refcnt(BlockDriverState *bs)
{
    return bs->refcnt;
}

/* Flushes and closes a node whose last reference is gone. */
static void bdrv_close(BlockDriverState *bs)
{
    trace_bdrv_close_node(bs, bs->node_name);
    if (bs->drv) {
        bdrv_drain(bs);
        if (!bs->read_only) {
            Error *err = NULL;

            /* Bitmaps go to the image while the driver is still open. */
            if (bdrv_store_persistent_dirty_bitmaps(bs, &err) < 0) {
                error_report_err(err);
            }
            bdrv_flush(bs);
        }
        if (bs->drv->bdrv_close) {
            bs->drv->bdrv_close(bs);
        }
        bs->drv = NULL;
    }
    bdrv_release_all_dirty_bitmaps(bs);
    while (!QLIST_EMPTY(&bs->children)) {
        bdrv_unref_child(bs, QLIST_FIRST(&bs->children));
    }
}

BlockDriverState *bdrv_find_node(const char *node_name)
{
    BlockDriverState *bs;

    QTAILQ_FOREACH(bs, &all_bdrv_states, all_list) {
        if (!strcmp(bs->node_name, node_name)) {
            return bs;
        }
    }
    return NULL;
}

BlockDriverState *bdrv_next_all(BlockDriverState *bs)
{
    return bs ? QTAILQ_NEXT(bs, all_list) : QTAILQ_FIRST(&all_bdrv_states);
}

BlockDriverState *bdrv_lookup_bs(const char *device, const char *node_name,
                                 Error **errp)
{
    BlockBackend *blk;
    BlockDriverState *bs;

    if (device) {
        blk = blk_by_name(device);
        if (blk) {
            bs = blk_bs(blk);
            if (!bs) {
                error_setg(errp, "Device '%s' has no medium", device);
            }
            return bs;
        }
    }
    if (node_name) {
        bs = bdrv_find_node(node_name);
        if (bs) {
            return bs;
        }
    }
    error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
               device ? device : "", node_name ? node_name : "");
    return NULL;
}

BlockDriverState *bdrv_child_bs(BdrvChild *child)
{
    return child ? child->bs : NULL;
}

const char *bdrv_get_node_name(const BlockDriverState *bs)
{
    return bs->node_name;
}

const char *bdrv_get_format_name(BlockDriverState *bs)
{
    return bs->drv ? bs->drv->format_name : NULL;
}

const char *bdrv_get_filename(BlockDriverState *bs)
{
    return bs->filename;
}

bool bdrv_is_read_only(BlockDriverState *bs)
{
    return bs->read_only;
}

int bdrv_get_flags(BlockDriverState *bs)
{
    return bs->open_flags;
}

int64_t bdrv_nb_sectors(BlockDriverState *bs)
{
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->drv->has_variable_length) {
        int ret = bdrv_refresh_total_sectors(bs, bs->total_sectors);
        if (ret < 0) {
            return ret;
        }
    }
    return bs->total_sectors;
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    int64_t sectors = bdrv_nb_sectors(bs);

    if (sectors < 0) {
        return sectors;
    }
    return sectors * BDRV_SECTOR_SIZE;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    BlockDriverState *file;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (bs->drv->bdrv_get_allocated_file_size) {
        return bs->drv->bdrv_get_allocated_file_size(bs);
    }
    file = bdrv_file_bs(bs);
    return file ? bdrv_get_allocated_file_size(file) : -ENOTSUP;
}

int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_get_info) {
        return bs->drv->is_filter && bdrv_file_bs(bs) ?
               bdrv_get_info(bdrv_file_bs(bs), bdi) : -ENOTSUP;
    }
    return bs->drv->bdrv_get_info(bs, bdi);
}

JsonNode *bdrv_get_specific_info(BlockDriverState *bs, Error **errp)
{
    if (bs->drv && bs->drv->bdrv_get_specific_info) {
        return bs->drv->bdrv_get_specific_info(bs, errp);
    }
    return NULL;
}

BlockDriverState *bdrv_backing_bs(BlockDriverState *bs)
{
    return bs && bs->backing ? bs->backing->bs : NULL;
}

BlockDriverState *bdrv_file_bs(BlockDriverState *bs)
{
    BdrvChild *c;

    if (bs->file) {
        return bs->file->bs;
    }
    /* Filters like blkdebug name their only child differently. */
    QLIST_FOREACH(c, &bs->children, next) {
        if (c->role & BDRV_CHILD_FILTERED) {
            return c->bs;
        }
    }
    return NULL;
}

BlockDriverState *bdrv_skip_filters(BlockDriverState *bs)
{
    while (bs && bs->drv && bs->drv->is_filter && bdrv_file_bs(bs)) {
        bs = bdrv_file_bs(bs);
    }
    return bs;
}

const char *bdrv_get_backing_filename(BlockDriverState *bs)
{
    return bs->backing_file;
}

const char *bdrv_get_backing_format(BlockDriverState *bs)
{
    return bs->backing_format;
}

typedef struct {
    BlockDriver *drv;
    const char *filename;
    QDict *opts;
    Error **errp;
    int ret;
} CreateCo;

static void coroutine_fn bdrv_create_co_entry(void *opaque)
{
    CreateCo *cco = opaque;

    cco->ret = cco->drv->bdrv_co_create_opts(cco->drv, cco->filename,
                                             cco->opts, cco->errp);
}

int bdrv_create(BlockDriver *drv, const char *filename, QDict *opts,
                Error **errp)
{
    g_autoptr(QDict) no_opts = opts ? NULL : qdict_new();
    CreateCo cco = {
        .drv = drv, .filename = filename, .opts = opts ? opts : no_opts,
        .errp = errp,
    };

    if (!drv->bdrv_co_create_opts) {
        error_setg(errp, "Driver '%s' does not support image creation",
                   drv->format_name);
        return -ENOTSUP;
    }
    return bdrv_co_run(bdrv_create_co_entry, &cco, &cco.ret);
}

int bdrv_create_file(const char *filename, QDict *opts, Error **errp)
{
    BlockDriver *drv = bdrv_find_protocol(filename, errp);

    if (!drv) {
        return -ENOENT;
    }
    return bdrv_create(drv, filename, opts, errp);
}

BlockBackend *bdrv_create_open_file(const char *filename, Error **errp)
{
    BlockBackend *blk = blk_new_open(filename, NULL, NULL,
                                     BDRV_O_RDWR | BDRV_O_PROTOCOL, errp);

    if (blk) {
        blk_set_allow_write_beyond_eof(blk, true);
    }
    return blk;
}

typedef struct {
    BlockDriverState *bs;
    BdrvCheckResult *res;
    BdrvCheckMode fix;
    QDict *opts;
    bool force;
    Error **errp;
    int ret;
} BdrvMaintCo;

static void coroutine_fn bdrv_check_co_entry(void *opaque)
{
    BdrvMaintCo *m = opaque;

    m->ret = m->bs->drv->bdrv_co_check(m->bs, m->res, m->fix);
}

int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix)
{
    BdrvMaintCo m = { .bs = bs, .res = res, .fix = fix };

    memset(res, 0, sizeof(*res));
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_co_check) {
        return -ENOTSUP;
    }
    return bdrv_co_run(bdrv_check_co_entry, &m, &m.ret);
}

static void coroutine_fn bdrv_amend_co_entry(void *opaque)
{
    BdrvMaintCo *m = opaque;

    m->ret = m->bs->drv->bdrv_co_amend(m->bs, m->opts, m->force, m->errp);
}

int bdrv_amend_options(BlockDriverState *bs, QDict *opts, bool force,
                       Error **errp)
{
    BdrvMaintCo m = { .bs = bs, .opts = opts, .force = force, .errp = errp };

    if (!bs->drv->bdrv_co_amend) {
        error_setg(errp, "Block driver '%s' does not support option "
                   "amendment", bs->drv->format_name);
        return -ENOTSUP;
    }
    return bdrv_co_run(bdrv_amend_co_entry, &m, &m.ret);
}

int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, Error **errp)
{
    int ret;

    if (!bs->drv->bdrv_change_backing_file) {
        error_setg(errp, "Image format '%s' does not support backing files",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    if (backing_fmt && !backing_file) {
        error_setg(errp, "A backing format requires a backing file");
        return -EINVAL;
    }
    ret = bs->drv->bdrv_change_backing_file(bs, backing_file, backing_fmt);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not change the backing file to "
                         "'%s'", backing_file ? backing_file : "");
        return ret;
    }
    pstrcpy(bs->backing_file, sizeof(bs->backing_file),
            backing_file ? backing_file : "");
    pstrcpy(bs->backing_format, sizeof(bs->backing_format),
            backing_fmt ? backing_fmt : "");
    return 0;
}

int bdrv_measure(BlockDriver *drv, QDict *opts, BlockDriverState *in_bs,
                 BlockMeasureInfo *info, Error **errp)
{
    if (!drv->bdrv_measure) {
        error_setg(errp, "Block driver '%s' does not support size "
                   "measurement", drv->format_name);
        return -ENOTSUP;
    }
    memset(info, 0, sizeof(*info));
    return drv->bdrv_measure(opts, in_bs, info, errp);
}

/* blkdebug lives on the file/filtered children: find the implementer. */
static BlockDriverState *bdrv_find_debug_node(BlockDriverState *bs)
{
    while (bs && bs->drv && !bs->drv->bdrv_debug_breakpoint) {
        bs = bdrv_file_bs(bs);
    }
    return bs && bs->drv ? bs : NULL;
}

void bdrv_debug_event(BlockDriverState *bs, BlkdebugEvent event)
{
    if (bs && bs->drv && bs->drv->bdrv_debug_event) {
        bs->drv->bdrv_debug_event(bs, event);
    }
}

int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event,
                          const char *tag)
{
    bs = bdrv_find_debug_node(bs);
    return bs ? bs->drv->bdrv_debug_breakpoint(bs, event, tag) : -ENOTSUP;
}

int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag)
{
    bs = bdrv_find_debug_node(bs);
    return bs ? bs->drv->bdrv_debug_remove_breakpoint(bs, tag) : -ENOTSUP;
}

int bdrv_debug_resume(BlockDriverState *bs, const char *tag)
{
    bs = bdrv_find_debug_node(bs);
    return bs ? bs->drv->bdrv_debug_resume(bs, tag) : -ENOTSUP;
}

bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag)
{
    bs = bdrv_find_debug_node(bs);
    return bs ? bs->drv->bdrv_debug_is_suspended(bs, tag) : false;
}

void bdrv_close_all(void)
{
    BlockBackend *blk;

    bdrv_drain_all();
    bdrv_flush_all();
    /* Named BlockBackends hold the roots; their owners are exiting. */
    for (blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        blk_remove_bs(blk);
    }
}

bool bdrv_check_not_backing(BlockDriverState *bs, Error **errp)
{
    BdrvChild *c;

    QLIST_FOREACH(c, &bs->parents, next_parent) {
        if (c->klass->parent_is_bds && (c->role & BDRV_CHILD_COW)) {
            BlockDriverState *parent = c->opaque;

            error_setg(errp, "Node '%s' is busy: node is used as backing hd "
                       "of '%s'", bs->node_name, parent->node_name);
            return false;
        }
    }
    return true;
}
