/*
 * Tests of the block QMP handlers (blockdev.c, block/qapi.c,
 * block/create.c, job.c, hw/block/virtio-blk.c), called directly.
 *
 * Every test starts and ends with no node open, so a reference leaked on
 * any path shows up as a node still listed by bdrv_next_all(); reference
 * counts are checked with bdrv_get_refcnt() where a holder is added or
 * refused.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/job.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/qapi.h"
#include "sysemu/blockdev.h"
#include "hw/block/virtio-blk.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-visit.h"

static char *tmpdir;

/* ---- event capture (overrides the weak default that drops events) ---- */

static GPtrArray *events;   /* "NAME data-json" strings */

void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    g_autofree char *json = data ? qnode_to_json(data, false) : NULL;

    g_ptr_array_add(events, g_strdup_printf("%s %s", QAPIEvent_str(event),
                                            json ? json : "null"));
}

static char *events_take(void)
{
    GString *s = g_string_new("");

    for (guint i = 0; i < events->len; i++) {
        g_string_append_printf(s, "%s\n", (char *)events->pdata[i]);
    }
    g_ptr_array_set_size(events, 0);
    return g_string_free(s, false);
}

/* ---- helpers ---- */

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static void create_qcow2(const char *path, int64_t size, const char *backing)
{
    g_autoptr(QDict) opts = qdict_new();

    qdict_put_int(opts, "size", size);
    if (backing) {
        qdict_put_str(opts, "backing_file", backing);
        qdict_put_str(opts, "backing_fmt", "qcow2");
    }
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts,
                                &error_abort), ==, 0);
}

static int count_nodes(void)
{
    int n = 0;

    for (BlockDriverState *bs = bdrv_next_all(NULL); bs;
         bs = bdrv_next_all(bs)) {
        n++;
    }
    return n;
}

/* Open file descriptors of this process that refer to @path. */
static int count_fds(const char *path)
{
    g_autoptr(GDir) dir = g_dir_open("/proc/self/fd", 0, NULL);
    const char *name;
    int n = 0;

    while ((name = g_dir_read_name(dir))) {
        g_autofree char *link = g_strdup_printf("/proc/self/fd/%s", name);
        g_autofree char *target = g_file_read_link(link, NULL);

        n += target && !strcmp(target, path);
    }
    return n;
}

static BlockdevOptions *parse_options(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    BlockdevOptions *opts = NULL;

    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    g_assert_true(visit_type_BlockdevOptions(json_parser_get_root(parser),
                                             &opts, &error_abort));
    return opts;
}

static void blockdev_add_json(const char *json, Error **errp)
{
    BlockdevOptions *opts = parse_options(json);

    qmp_blockdev_add(opts, errp);
    qapi_free_BlockdevOptions(opts);
}

static void assert_error(Error *err, const char *msg)
{
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static QDict *dict(const char *json)
{
    return qdict_from_json(json, &error_abort);
}

/* Closes everything and checks that nothing stayed open. */
static void finish(void)
{
    blockdev_close_all_for_exit();
    g_assert_cmpint(count_nodes(), ==, 0);
    g_ptr_array_set_size(events, 0);
}

/* ---- blockdev-add / blockdev-del ---- */

static void test_add_del(void)
{
    g_autofree char *img = tmp_path("add.qcow2");
    g_autofree char *json = NULL;
    BlockDriverState *bs, *file;
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", img);
    blockdev_add_json(json, &error_abort);
    bs = bdrv_find_node("d0");
    g_assert_nonnull(bs);
    file = bdrv_file_bs(bs);
    g_assert_true(blockdev_is_monitor_owned(bs));
    g_assert_false(blockdev_is_monitor_owned(file));
    /* The monitor holds d0; d0's edge holds its file. */
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(file), ==, 1);
    g_assert_cmpint(count_fds(img), ==, 1);

    /* The implicit file node belongs to d0, not to the monitor. */
    qmp_blockdev_del(file->node_name, &err);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "is not owned by the "
                            "monitor"));
    error_free(err);
    err = NULL;
    qmp_blockdev_del("nosuch", &err);
    assert_error(err, "Failed to find node with node-name='nosuch'");

    qmp_blockdev_del("d0", &error_abort);
    g_assert_null(bdrv_find_node("d0"));
    g_assert_cmpint(count_nodes(), ==, 0);
    g_assert_cmpint(count_fds(img), ==, 0);
    finish();
}

static void test_add_errors(void)
{
    g_autofree char *img = tmp_path("adderr.qcow2");
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    blockdev_add_json("{\"driver\": \"null-co\"}", &err);
    assert_error(err, "'node-name' must be specified for the root node");
    err = NULL;
    blockdev_add_json("{\"driver\": \"null-co\", \"node-name\": \"1x\"}",
                      &err);
    assert_error(err, "Invalid node-name: '1x'");
    err = NULL;
    blockdev_add_json("{\"driver\": \"file\", \"node-name\": \"f\", "
                      "\"filename\": \"/nonexistent/x\"}", &err);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    /* A failure in the child must release the parent too. */
    blockdev_add_json("{\"driver\": \"qcow2\", \"node-name\": \"q\", "
                      "\"file\": {\"driver\": \"file\", "
                      "\"filename\": \"/nonexistent/x\"}}", &err);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    g_assert_cmpint(count_nodes(), ==, 0);

    blockdev_add_json("{\"driver\": \"null-co\", \"node-name\": \"n0\"}",
                      &error_abort);
    blockdev_add_json("{\"driver\": \"null-co\", \"node-name\": \"n0\"}",
                      &err);
    assert_error(err, "Duplicate nodes with node-name='n0'");
    err = NULL;
    /* Referencing a missing node fails without holding the parent. */
    blockdev_add_json("{\"driver\": \"raw\", \"node-name\": \"r\", "
                      "\"file\": \"nosuch\"}", &err);
    assert_error(err, "Cannot find device='nosuch' nor node-name='nosuch'");
    err = NULL;
    g_assert_cmpint(count_nodes(), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(bdrv_find_node("n0")), ==, 1);
    finish();
}

static void test_del_in_use(void)
{
    g_autofree char *img = tmp_path("inuse.qcow2");
    g_autofree char *json = NULL;
    BlockDriverState *f0;
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    json = g_strdup_printf("{\"driver\": \"file\", \"node-name\": \"f0\", "
                           "\"filename\": \"%s\"}", img);
    blockdev_add_json(json, &error_abort);
    blockdev_add_json("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
                      "\"file\": \"f0\"}", &error_abort);
    f0 = bdrv_find_node("f0");
    /* The monitor and d0's file edge. */
    g_assert_cmpint(bdrv_get_refcnt(f0), ==, 2);
    qmp_blockdev_del("f0", &err);
    assert_error(err, "Block device f0 is in use");
    g_assert_cmpint(bdrv_get_refcnt(f0), ==, 2);

    qmp_blockdev_del("d0", &error_abort);
    g_assert_cmpint(bdrv_get_refcnt(f0), ==, 1);
    g_assert_cmpint(count_fds(img), ==, 1);
    qmp_blockdev_del("f0", &error_abort);
    g_assert_cmpint(count_fds(img), ==, 0);
    finish();
}

/* ---- queries ---- */

static void test_query_named_nodes(void)
{
    g_autofree char *base = tmp_path("qbase.qcow2");
    g_autofree char *top = tmp_path("qtop.qcow2");
    g_autofree char *json = NULL;
    BlockDeviceInfoList *list, *l;
    BlockDeviceInfo *topinfo = NULL;
    int n = 0;

    create_qcow2(base, 1 << 20, NULL);
    create_qcow2(top, 1 << 20, base);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"top\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", top);
    blockdev_add_json(json, &error_abort);

    list = qmp_query_named_block_nodes(false, false, &error_abort);
    for (l = list; l; l = l->next, n++) {
        if (!strcmp(l->value->node_name, "top")) {
            topinfo = l->value;
        }
    }
    /* top, its file, the backing image and its file. */
    g_assert_cmpint(n, ==, 4);
    g_assert_nonnull(topinfo);
    g_assert_cmpstr(topinfo->drv, ==, "qcow2");
    g_assert_cmpstr(topinfo->file, ==, top);
    g_assert_cmpstr(topinfo->backing_file, ==, base);
    g_assert_cmpint(topinfo->backing_file_depth, ==, 1);
    g_assert_false(topinfo->ro);
    g_assert_true(topinfo->cache->writeback);
    g_assert_cmpint(topinfo->image->virtual_size, ==, 1 << 20);
    g_assert_cmpint(topinfo->image->cluster_size, ==, 65536);
    g_assert_nonnull(topinfo->image->format_specific);
    g_assert_cmpstr(topinfo->image->backing_filename, ==, base);
    g_assert_cmpstr(topinfo->image->full_backing_filename, ==, base);
    g_assert_cmpstr(topinfo->image->backing_filename_format, ==, "qcow2");
    g_assert_nonnull(topinfo->image->backing_image);
    g_assert_cmpstr(topinfo->image->backing_image->filename, ==, base);
    qapi_free_BlockDeviceInfoList(list);

    list = qmp_query_named_block_nodes(true, true, &error_abort);
    for (l = list; l; l = l->next) {
        g_assert_null(l->value->image->backing_image);
    }
    qapi_free_BlockDeviceInfoList(list);
    finish();
}

static void test_graph(void)
{
    g_autofree char *img = tmp_path("graph.qcow2");
    g_autofree char *json = NULL;
    XDbgBlockGraph *g;
    XDbgBlockGraphNode *d0 = NULL, *f0 = NULL;
    XDbgBlockGraphEdge *e;

    create_qcow2(img, 1 << 20, NULL);
    json = g_strdup_printf("{\"driver\": \"file\", \"node-name\": \"f0\", "
                           "\"filename\": \"%s\"}", img);
    blockdev_add_json(json, &error_abort);
    blockdev_add_json("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
                      "\"file\": \"f0\"}", &error_abort);
    g = qmp_x_debug_query_block_graph(&error_abort);
    for (XDbgBlockGraphNodeList *l = g->nodes; l; l = l->next) {
        if (!strcmp(l->value->name, "d0")) {
            d0 = l->value;
        } else if (!strcmp(l->value->name, "f0")) {
            f0 = l->value;
        }
    }
    g_assert_nonnull(d0);
    g_assert_nonnull(f0);
    g_assert_cmpint(d0->type, ==, X_DBG_BLOCK_GRAPH_NODE_TYPE_BLOCK_DRIVER);
    g_assert_cmpint(f0->refcount, ==, 2);
    g_assert_true(f0->monitor_owned);
    g_assert_cmpint(d0->refcount, ==, 1);
    g_assert_nonnull(g->edges);
    g_assert_null(g->edges->next);
    e = g->edges->value;
    g_assert_cmpint(e->parent, ==, d0->id);
    g_assert_cmpint(e->child, ==, f0->id);
    g_assert_cmpstr(e->name, ==, "file");
    qapi_free_XDbgBlockGraph(g);
    finish();
}

/* ---- -drive ---- */

static void test_drive(void)
{
    g_autofree char *img = tmp_path("drive.qcow2");
    g_autofree char *opts_json = NULL;
    g_autoptr(QDict) opts = NULL;
    BlockInfoList *list;
    BlockDriverState *bs;
    BlockBackend *blk;
    GString *text = g_string_new("");
    g_autofree char *expected = NULL;
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    opts_json = g_strdup_printf("{\"file\": \"%s\", \"if\": \"none\", "
                                "\"id\": \"dr0\", \"node-name\": \"dn\", "
                                "\"cache\": \"directsync\", "
                                "\"detect-zeroes\": \"on\"}", img);
    opts = dict(opts_json);
    blk = drive_new(opts, &error_abort);
    g_assert_true(blk == blk_by_name("dr0"));
    bs = bdrv_find_node("dn");
    g_assert_true(blk_bs(blk) == bs);
    /* Only the drive's root edge holds the node. */
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    g_assert_true(bdrv_get_flags(bs) & BDRV_O_NOCACHE);
    g_assert_false(blk_enable_write_cache(blk));

    list = qmp_query_block(&error_abort);
    g_assert_nonnull(list);
    g_assert_null(list->next);
    g_assert_cmpstr(list->value->device, ==, "dr0");
    g_assert_true(list->value->removable);
    g_assert_null(list->value->qdev);
    g_assert_false(list->value->has_io_status);
    g_assert_cmpstr(list->value->inserted->node_name, ==, "dn");
    g_assert_false(list->value->inserted->cache->writeback);
    g_assert_true(list->value->inserted->cache->direct);
    g_assert_cmpint(list->value->inserted->detect_zeroes, ==,
                    BLOCKDEV_DETECT_ZEROES_OPTIONS_ON);
    qapi_free_BlockInfoList(list);

    g_assert_true(blockdev_hmp_info_block(text, NULL, false, &error_abort));
    expected = g_strdup_printf("dr0 (dn): %s (qcow2)\n"
                               "    Removable device: not locked, tray closed\n"
                               "    Cache mode:       writethrough, direct\n"
                               "    Detect zeroes:    on\n", img);
    g_assert_cmpstr(text->str, ==, expected);
    g_string_free(text, true);

    qmp_blockdev_del("dn", &err);
    assert_error(err, "Node dn is in use");
    err = NULL;
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);

    /* Default names and a drive without medium. */
    qobject_unref(opts);
    opts = dict("{\"if\": \"none\"}");
    blk = drive_new(opts, &error_abort);
    g_assert_cmpstr(blk_name(blk), ==, "none0");
    g_assert_null(blk_bs(blk));
    g_assert_true(drive_del("none0", &error_abort));
    g_assert_true(drive_del("dr0", &error_abort));
    g_assert_cmpint(count_nodes(), ==, 0);
    g_assert_cmpint(count_fds(img), ==, 0);
    drive_del("dr0", &err);
    assert_error(err, "Device 'dr0' not found");
    finish();
}

static void test_drive_errors(void)
{
    g_autofree char *img = tmp_path("driveerr.qcow2");
    static const struct {
        const char *opts;
        const char *msg;
    } cases[] = {
        { "\"cache\": \"bogus\"", "invalid cache option" },
        { "\"aio\": \"bogus\"", "invalid aio option" },
        { "\"aio\": \"native\"", "aio=native was specified, but it requires "
          "cache.direct=on, which was not specified." },
        { "\"id\": \"1x\"", "Parameter 'id' expects an identifier" },
        { "\"readonly\": \"maybe\"",
          "Parameter 'read-only' expects 'on' or 'off'" },
        { "\"format\": \"bogus\"", "Unknown driver 'bogus'" },
        { "\"bogus\": \"1\"",
          "Block format 'qcow2' does not support the option 'bogus'" },
        { "\"if\": \"scsi\"", "Unsupported interface if=scsi: qblockd has no "
          "machine; use if=none or if=virtio" },
    };
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *json = g_strdup_printf("{\"file\": \"%s\", %s}", img,
                                                cases[i].opts);
        g_autoptr(QDict) opts = dict(json);

        g_assert_null(drive_new(opts, &err));
        assert_error(err, cases[i].msg);
        err = NULL;
        g_assert_cmpint(count_nodes(), ==, 0);
        g_assert_null(blk_next(NULL));
        g_assert_cmpint(count_fds(img), ==, 0);
    }
    {
        g_autofree char *json = g_strdup_printf("{\"file\": \"%s\", "
                                                "\"id\": \"d\"}", img);
        g_autoptr(QDict) opts = dict(json);

        g_assert_nonnull(drive_new(opts, &error_abort));
        g_assert_null(drive_new(opts, &err));
        assert_error(err, "Duplicate ID 'd' for drive");
        err = NULL;
    }
    finish();
}

/* ---- devices ---- */

static void test_device(void)
{
    g_autofree char *img = tmp_path("dev.qcow2");
    g_autofree char *json = NULL;
    g_autoptr(QDict) opts = NULL;
    g_autoptr(QDict) dev = NULL;
    g_autofree char *ev = NULL;
    BlockInfoList *list;
    BlockDriverState *bs;
    JsonNode *ret = NULL;
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    json = g_strdup_printf("{\"file\": \"%s\", \"id\": \"dr0\", "
                           "\"node-name\": \"dn\"}", img);
    opts = dict(json);
    g_assert_nonnull(drive_new(opts, &error_abort));
    bs = bdrv_find_node("dn");

    dev = dict("{\"driver\": \"virtio-blk-pci\", \"drive\": \"dr0\", "
               "\"id\": \"vd0\"}");
    qmp_marshal_device_add(dev, &ret, &error_abort);
    g_assert_nonnull(ret);
    json_node_unref(ret);
    ret = NULL;

    list = qmp_query_block(&error_abort);
    g_assert_cmpstr(list->value->qdev, ==,
                    "/machine/peripheral/vd0/virtio-backend");
    g_assert_false(list->value->removable);
    g_assert_true(list->value->has_io_status);
    qapi_free_BlockInfoList(list);

    /* The device pins the drive and its node. */
    qmp_marshal_device_add(dev, &ret, &err);
    assert_error(err, "Duplicate device ID 'vd0'");
    err = NULL;
    qobject_unref(dev);
    dev = dict("{\"driver\": \"virtio-blk\", \"drive\": \"dr0\"}");
    g_assert_false(virtio_blk_device_add(dev, &err));
    assert_error(err, "Drive 'dr0' is already in use by another device");
    err = NULL;
    g_assert_false(drive_del("dr0", &err));
    assert_error(err, "Drive 'dr0' is in use by device "
                 "'/machine/peripheral/vd0/virtio-backend'");
    err = NULL;
    qmp_blockdev_del("dn", &err);
    assert_error(err, "Node dn is in use");
    err = NULL;
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    g_assert_null(ret);

    g_ptr_array_set_size(events, 0);
    qmp_device_del("vd0", &error_abort);
    ev = events_take();
    g_assert_cmpstr(ev, ==,
        "DEVICE_DELETED {\"path\":\"/machine/peripheral/vd0/virtio-backend\"}\n"
        "DEVICE_DELETED {\"device\":\"vd0\","
        "\"path\":\"/machine/peripheral/vd0\"}\n");
    qmp_device_del("vd0", &err);
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_DEVICE_NOT_FOUND);
    assert_error(err, "Device 'vd0' not found");
    err = NULL;
    g_assert_true(drive_del("dr0", &error_abort));
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

static void test_device_errors(void)
{
    static const struct {
        const char *opts;
        const char *msg;
    } cases[] = {
        { "{\"drive\": \"n0\"}", "Parameter 'driver' is missing" },
        { "{\"driver\": \"nosuch\"}",
          "'nosuch' is not a valid device model name" },
        { "{\"driver\": \"virtio-blk-pci\"}", "drive property not set" },
        { "{\"driver\": \"virtio-blk-pci\", \"drive\": \"nodrive\"}",
          "Property 'virtio-blk-device.drive' can't find value 'nodrive'" },
        { "{\"driver\": \"virtio-blk-pci\", \"drive\": \"n0\", "
          "\"id\": \"1bad\"}", "Parameter 'id' expects an identifier" },
        { "{\"driver\": \"virtio-blk-pci\", \"drive\": \"n0\", "
          "\"bogus\": 1}", "Property 'virtio-blk-pci.bogus' not found" },
    };
    BlockDriverState *n0;
    Error *err = NULL;

    blockdev_add_json("{\"driver\": \"null-co\", \"node-name\": \"n0\"}",
                      &error_abort);
    n0 = bdrv_find_node("n0");
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(QDict) opts = dict(cases[i].opts);

        g_assert_false(virtio_blk_device_add(opts, &err));
        assert_error(err, cases[i].msg);
        err = NULL;
        g_assert_cmpint(bdrv_get_refcnt(n0), ==, 1);
    }

    /* A node given by name gets an anonymous drive held by the device. */
    {
        g_autoptr(QDict) opts = dict("{\"driver\": \"virtio-blk-pci\", "
                                     "\"drive\": \"n0\"}");
        BlockInfoList *list;

        g_assert_true(virtio_blk_device_add(opts, &error_abort));
        g_assert_cmpint(bdrv_get_refcnt(n0), ==, 2);
        list = qmp_query_block(&error_abort);
        g_assert_cmpstr(list->value->device, ==, "");
        g_assert_true(g_str_has_prefix(list->value->qdev,
                                       "/machine/peripheral-anon/device["));
        qapi_free_BlockInfoList(list);
        qmp_blockdev_del("n0", &err);
        assert_error(err, "Node n0 is in use");
    }
    finish();
}

/* ---- block_resize ---- */

static void test_resize(void)
{
    g_autofree char *img = tmp_path("resize.qcow2");
    g_autofree char *json = NULL;
    Error *err = NULL;

    create_qcow2(img, 1 << 20, NULL);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"d0\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", img);
    blockdev_add_json(json, &error_abort);
    qmp_block_resize(NULL, "d0", 4 << 20, &error_abort);
    g_assert_cmpint(bdrv_getlength(bdrv_find_node("d0")), ==, 4 << 20);
    /* The temporary user is gone again. */
    g_assert_cmpint(bdrv_get_refcnt(bdrv_find_node("d0")), ==, 1);

    qmp_block_resize(NULL, "d0", -1, &err);
    assert_error(err, "Parameter 'size' expects a >0 size");
    err = NULL;
    qmp_block_resize(NULL, "nonode", 1, &err);
    assert_error(err, "Cannot find device='' nor node-name='nonode'");
    err = NULL;
    qmp_block_resize("nodev", NULL, 1, &err);
    assert_error(err, "Cannot find device='nodev' nor node-name=''");
    err = NULL;
    qmp_block_resize(NULL, NULL, 1, &err);
    assert_error(err, "Cannot find device='' nor node-name=''");
    err = NULL;
    blockdev_add_json("{\"driver\": \"null-co\", \"node-name\": \"ro\", "
                      "\"read-only\": true}", &error_abort);
    qmp_block_resize(NULL, "ro", 1 << 20, &err);
    assert_error(err, "Block node is read-only");
    finish();
}

/* ---- blockdev-create and jobs ---- */

static void wait_job(const char *id)
{
    while (!job_is_concluded(job_get(id))) {
        aio_poll(qemu_get_aio_context(), true);
    }
}

static BlockdevCreateOptions *parse_create(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    BlockdevCreateOptions *opts = NULL;

    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    g_assert_true(visit_type_BlockdevCreateOptions(
                      json_parser_get_root(parser), &opts, &error_abort));
    return opts;
}

static void create_job(const char *id, const char *json, Error **errp)
{
    BlockdevCreateOptions *opts = parse_create(json);

    qmp_blockdev_create(id, opts, errp);
    qapi_free_BlockdevCreateOptions(opts);
}

static void test_create(void)
{
    g_autofree char *img = tmp_path("created.qcow2");
    g_autofree char *json = NULL;
    g_autofree char *ev = NULL;
    JobInfoList *jobs;
    BlockDriverState *f1;
    Error *err = NULL;

    json = g_strdup_printf("{\"driver\": \"file\", \"filename\": \"%s\", "
                           "\"size\": 0}", img);
    g_ptr_array_set_size(events, 0);
    create_job("c0", json, &error_abort);
    wait_job("c0");
    ev = events_take();
    g_assert_cmpstr(ev, ==,
        "JOB_STATUS_CHANGE {\"id\":\"c0\",\"status\":\"created\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"c0\",\"status\":\"running\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"c0\",\"status\":\"waiting\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"c0\",\"status\":\"pending\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"c0\",\"status\":\"concluded\"}\n");
    g_assert_true(g_file_test(img, G_FILE_TEST_EXISTS));

    create_job("c0", json, &err);
    assert_error(err, "Job ID 'c0' already in use");
    err = NULL;
    create_job("1c", json, &err);
    assert_error(err, "Invalid job ID '1c'");
    err = NULL;

    g_free(json);
    json = g_strdup_printf("{\"driver\": \"file\", \"node-name\": \"f1\", "
                           "\"filename\": \"%s\"}", img);
    blockdev_add_json(json, &error_abort);
    f1 = bdrv_find_node("f1");
    create_job("c2", "{\"driver\": \"qcow2\", \"file\": \"f1\", "
               "\"size\": 1048576}", &error_abort);
    /* While the job works it holds f1. */
    if (!job_is_concluded(job_get("c2"))) {
        qmp_blockdev_del("f1", &err);
        assert_error(err, "Node 'f1' is busy: block device is in use by "
                     "block job: create");
        err = NULL;
    }
    wait_job("c2");
    g_assert_cmpint(bdrv_get_refcnt(f1), ==, 1);
    create_job("c3", "{\"driver\": \"qcow2\", \"file\": \"nonode\", "
               "\"size\": 1048576}", &error_abort);
    wait_job("c3");
    create_job("c4", "{\"driver\": \"raw\"}", &err);
    assert_error(err, "Driver does not support blockdev-create");
    err = NULL;
    g_assert_null(job_get("c4"));

    jobs = qmp_query_jobs(&error_abort);
    /* Newest first. */
    g_assert_cmpstr(jobs->value->id, ==, "c3");
    g_assert_cmpint(jobs->value->status, ==, JOB_STATUS_CONCLUDED);
    g_assert_cmpint(jobs->value->type, ==, JOB_TYPE_CREATE);
    g_assert_cmpstr(jobs->value->error, ==,
                    "Cannot find device='nonode' nor node-name='nonode'");
    g_assert_cmpstr(jobs->next->value->id, ==, "c2");
    g_assert_null(jobs->next->value->error);
    g_assert_cmpint(jobs->next->value->current_progress, ==, 1);
    g_assert_cmpint(jobs->next->value->total_progress, ==, 1);
    qapi_free_JobInfoList(jobs);

    qmp_job_dismiss("nope", &err);
    assert_error(err, "Job not found");
    err = NULL;
    g_ptr_array_set_size(events, 0);
    qmp_job_dismiss("c3", &error_abort);
    g_free(ev);
    ev = events_take();
    g_assert_cmpstr(ev, ==,
        "JOB_STATUS_CHANGE {\"id\":\"c3\",\"status\":\"null\"}\n");
    g_assert_null(job_get("c3"));

    /* The qcow2 image written through f1 opens as qcow2. */
    g_free(json);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"q\", "
                           "\"file\": \"f1\"}");
    blockdev_add_json(json, &error_abort);
    g_assert_cmpint(bdrv_getlength(bdrv_find_node("q")), ==, 1048576);
    finish();
    g_assert_null(job_get("c0"));
    g_assert_null(job_get("c2"));
}

static void test_create_fail(void)
{
    g_autofree char *ev = NULL;
    JobInfoList *jobs;

    g_ptr_array_set_size(events, 0);
    create_job("bad", "{\"driver\": \"file\", "
               "\"filename\": \"/nonexistent/dir/x.img\", \"size\": 0}",
               &error_abort);
    wait_job("bad");
    ev = events_take();
    g_assert_cmpstr(ev, ==,
        "JOB_STATUS_CHANGE {\"id\":\"bad\",\"status\":\"created\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"bad\",\"status\":\"running\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"bad\",\"status\":\"aborting\"}\n"
        "JOB_STATUS_CHANGE {\"id\":\"bad\",\"status\":\"concluded\"}\n");
    jobs = qmp_query_jobs(&error_abort);
    g_assert_nonnull(jobs->value->error);
    g_assert_nonnull(strstr(jobs->value->error, "/nonexistent/dir/x.img"));
    qapi_free_JobInfoList(jobs);
    finish();
}

/* An inline file definition is opened for the job and closed after it. */
static void test_create_inline(void)
{
    g_autofree char *img = tmp_path("inline.qcow2");
    g_autofree char *json = NULL;
    g_autoptr(QDict) opts = qdict_new();
    JobInfoList *jobs;
    BlockDriverState *bs;

    g_assert_cmpint(bdrv_create_file(img, opts, &error_abort), ==, 0);
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"size\": 65536, "
                           "\"cluster-size\": 4096, "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", img);
    create_job("ci", json, &error_abort);
    wait_job("ci");
    jobs = qmp_query_jobs(&error_abort);
    g_assert_null(jobs->value->error);
    qapi_free_JobInfoList(jobs);
    g_assert_cmpint(count_nodes(), ==, 0);
    g_assert_cmpint(count_fds(img), ==, 0);

    bs = bdrv_open(img, NULL, NULL, 0, &error_abort);
    g_assert_cmpstr(bdrv_get_format_name(bs), ==, "qcow2");
    g_assert_cmpint(bdrv_getlength(bs), ==, 65536);
    bdrv_unref(bs);
    finish();
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    events = g_ptr_array_new_with_free_func(g_free);
    tmpdir = g_dir_make_tmp("test-blockdev-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/blockdev/add-del", test_add_del);
    g_test_add_func("/blockdev/add-errors", test_add_errors);
    g_test_add_func("/blockdev/del-in-use", test_del_in_use);
    g_test_add_func("/blockdev/query-named-nodes", test_query_named_nodes);
    g_test_add_func("/blockdev/graph", test_graph);
    g_test_add_func("/blockdev/drive", test_drive);
    g_test_add_func("/blockdev/drive-errors", test_drive_errors);
    g_test_add_func("/blockdev/device", test_device);
    g_test_add_func("/blockdev/device-errors", test_device_errors);
    g_test_add_func("/blockdev/resize", test_resize);
    g_test_add_func("/blockdev/create", test_create);
    g_test_add_func("/blockdev/create-fail", test_create_fail);
    g_test_add_func("/blockdev/create-inline", test_create_inline);
    ret = g_test_run();

    g_ptr_array_free(events, true);
    {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);

        g_assert_cmpint(system(cmd), ==, 0);
    }
    g_free(tmpdir);
    return ret;
}
