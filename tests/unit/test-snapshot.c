/*
 * Unit tests for bdrv_replace_node() (block.c) and the external snapshot
 * handlers (block/snapshot-qmp.c): which edges move, the reference counts
 * before and after, and that failures change nothing and leak nothing.
 *
 * Nodes are null-co (no files); the snapshot tests use qcow2 images in a
 * temporary directory.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/osdep.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"

static char *tmpdir;

static BlockDriverState *open_null(const char *name)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "null-co");
    qdict_put_str(opts, "node-name", name);
    qdict_put_int(opts, "size", 1 * MiB);
    return bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
}

/* A raw node named @name whose file child is the existing node @file. */
static BlockDriverState *open_raw_over(const char *name, const char *file)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "raw");
    qdict_put_str(opts, "node-name", name);
    qdict_put_str(opts, "file", file);
    return bdrv_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
}

static BlockBackend *blk_over(BlockDriverState *bs)
{
    BlockBackend *blk = blk_new();

    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    return blk;
}

static void assert_no_nodes(void)
{
    g_assert_null(bdrv_next_all(NULL));
}

/*
 * A drive's root edge and a parent node's file edge move to the overlay;
 * the overlay's own backing edge stays on the old node, which then lives
 * on that edge alone.
 */
static void test_replace_moves_parents(void)
{
    BlockDriverState *a = open_null("a");
    BlockDriverState *o = open_null("o");
    BlockBackend *blk = blk_over(a);
    BlockDriverState *p;

    p = open_raw_over("p", "a");
    /* a: ours, blk root, p's file edge; o: ours. */
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 3);
    g_assert_cmpint(bdrv_get_refcnt(o), ==, 1);

    g_assert_cmpint(bdrv_set_backing_hd(o, a, &error_abort), ==, 0);
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 4);

    g_assert_cmpint(bdrv_replace_node(a, o, &error_abort), ==, 0);
    /* a: ours + o's backing edge; o: ours + blk root + p's file edge. */
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(o), ==, 3);
    g_assert_true(blk_bs(blk) == o);
    g_assert_true(p->file->bs == o);
    g_assert_true(o->backing->bs == a);
    g_assert_true(bdrv_backing_bs(o) == a);
    /* Only the backing edge is left among a's parents. */
    g_assert_true(QLIST_FIRST(&a->parents) == o->backing);
    g_assert_null(QLIST_NEXT(o->backing, next_parent));

    bdrv_unref(a);
    g_assert_nonnull(bdrv_find_node("a"));
    bdrv_unref(p);
    blk_unref(blk);
    g_assert_cmpint(bdrv_get_refcnt(o), ==, 1);
    bdrv_unref(o);
    assert_no_nodes();
}

/* Moving p's file edge onto q, which sits above p, would make a cycle. */
static void test_replace_cycle_changes_nothing(void)
{
    BlockDriverState *a = open_null("a");
    BlockDriverState *p = open_raw_over("p", "a");
    BlockDriverState *q = open_raw_over("q", "p");
    Error *err = NULL;

    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(p), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(q), ==, 1);
    g_assert_cmpint(bdrv_replace_node(a, q, &err), ==, -EINVAL);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Making 'q' a file child of 'p' would create a cycle");
    error_free(err);
    err = NULL;
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(p), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(q), ==, 1);
    g_assert_true(p->file->bs == a);

    g_assert_cmpint(bdrv_replace_node(a, a, &err), ==, -EINVAL);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot replace node 'a' with itself");
    error_free(err);
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);

    bdrv_unref(q);
    bdrv_unref(p);
    bdrv_unref(a);
    assert_no_nodes();
}

static const BdrvChildClass child_stays = {
    .stay_at_node = true,
};

/* Edges of a stay_at_node class (job internals) are left where they are. */
static void test_replace_stay_at_node(void)
{
    BlockDriverState *a = open_null("a");
    BlockDriverState *o = open_null("o");
    BlockBackend *blk;
    BdrvChild *job_edge;

    bdrv_ref(a);                /* taken over by the job's edge */
    job_edge = bdrv_root_attach_child(a, "job", &child_stays, 0, NULL,
                                      &error_abort);
    blk = blk_over(a);
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 3);

    /* Without a backing edge onto a, a lives on our ref and the job's. */
    g_assert_cmpint(bdrv_replace_node(a, o, &error_abort), ==, 0);
    g_assert_true(job_edge->bs == a);
    g_assert_true(blk_bs(blk) == o);
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(o), ==, 2);

    bdrv_root_unref_child(job_edge);
    blk_unref(blk);
    bdrv_unref(o);
    bdrv_unref(a);
    assert_no_nodes();
}

/* The last parent leaving closes @from when nothing else holds it. */
static void test_replace_last_ref_closes_from(void)
{
    BlockDriverState *a = open_null("a");
    BlockDriverState *o = open_null("o");
    BlockBackend *blk = blk_over(a);

    bdrv_unref(a);              /* the drive's edge is the only holder */
    g_assert_cmpint(bdrv_get_refcnt(a), ==, 1);
    g_assert_cmpint(bdrv_replace_node(a, o, &error_abort), ==, 0);
    g_assert_null(bdrv_find_node("a"));
    g_assert_true(blk_bs(blk) == o);
    blk_unref(blk);
    bdrv_unref(o);
    assert_no_nodes();
}

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

static BlockDriverState *open_qcow2(const char *path, const char *node_name,
                                    bool no_backing)
{
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "qcow2");
    qdict_put_str(opts, "node-name", node_name);
    if (no_backing) {
        qdict_put_null(opts, "backing");
    }
    return bdrv_open(path, NULL, opts, BDRV_O_RDWR, &error_abort);
}

static void create_qcow2(const char *path)
{
    QDict *opts = qdict_new();

    qdict_put_int(opts, "size", 1 * MiB);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts,
                                &error_abort), ==, 0);
    qobject_unref(opts);
}

/*
 * blockdev-snapshot-sync through the QMP handler: the overlay file is
 * created with the old top recorded as backing, and on failure (a bad
 * node name, detected when the overlay is opened) nothing is left open.
 */
static void test_snapshot_sync(void)
{
    g_autofree char *base = tmp_path("base.qcow2");
    g_autofree char *top = tmp_path("top.qcow2");
    g_autofree char *bad = tmp_path("bad.qcow2");
    BlockDriverState *bs, *overlay;
    BlockBackend *blk;
    Error *err = NULL;

    create_qcow2(base);
    bs = open_qcow2(base, "base", false);
    blk = blk_over(bs);
    bdrv_unref(bs);             /* held by the drive's edge alone */

    qmp_blockdev_snapshot_sync(NULL, "base", bad, "1bad", NULL, false, 0,
                               &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid node-name: '1bad'");
    error_free(err);
    err = NULL;
    g_assert_true(blk_bs(blk) == bs);
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);

    qmp_blockdev_snapshot_sync(NULL, "base", top, "top", NULL, false, 0,
                               &error_abort);
    overlay = bdrv_find_node("top");
    g_assert_nonnull(overlay);
    g_assert_true(blk_bs(blk) == overlay);
    g_assert_true(bdrv_backing_bs(overlay) == bs);
    g_assert_cmpstr(overlay->backing_file, ==, base);
    g_assert_cmpstr(overlay->backing_format, ==, "qcow2");
    /* The overlay lives on the drive's edge, the base on the backing. */
    g_assert_cmpint(bdrv_get_refcnt(overlay), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);

    qmp_blockdev_snapshot_sync(NULL, "base", bad, "x", NULL, false, 0, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Node 'base' is busy: node is used as backing hd of "
                    "'top'");
    error_free(err);

    blk_unref(blk);
    assert_no_nodes();
}

/* blockdev-snapshot's checks on the overlay, and a failure leaks nothing. */
static void test_snapshot_existing_overlay(void)
{
    g_autofree char *base = tmp_path("b2.qcow2");
    g_autofree char *ov = tmp_path("o2.qcow2");
    BlockDriverState *bs, *overlay, *n;
    BlockBackend *blk;
    Error *err = NULL;

    create_qcow2(base);
    create_qcow2(ov);
    bs = open_qcow2(base, "base", false);
    blk = blk_over(bs);
    bdrv_unref(bs);             /* held by the drive's edge alone */
    overlay = open_qcow2(ov, "ov", true);
    n = open_null("n");

    qmp_blockdev_snapshot("base", "n", &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The overlay does not support backing images");
    error_free(err);
    err = NULL;
    qmp_blockdev_snapshot("ov", "base", &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The overlay is already in use");
    error_free(err);
    err = NULL;
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(overlay), ==, 1);

    qmp_blockdev_snapshot("base", "ov", &error_abort);
    g_assert_true(blk_bs(blk) == overlay);
    g_assert_true(bdrv_backing_bs(overlay) == bs);
    /* ours (the monitor's, in qblockd) + the drive's edge. */
    g_assert_cmpint(bdrv_get_refcnt(overlay), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);

    qmp_blockdev_snapshot("n", "ov", &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The overlay is already in use");
    error_free(err);

    bdrv_unref(n);
    blk_unref(blk);
    g_assert_nonnull(bdrv_find_node("base"));
    bdrv_unref(overlay);
    assert_no_nodes();
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    tmpdir = g_dir_make_tmp("test-snapshot-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/replace-node/moves-parents", test_replace_moves_parents);
    g_test_add_func("/replace-node/cycle", test_replace_cycle_changes_nothing);
    g_test_add_func("/replace-node/stay-at-node", test_replace_stay_at_node);
    g_test_add_func("/replace-node/last-ref-closes",
                    test_replace_last_ref_closes_from);
    g_test_add_func("/snapshot/sync", test_snapshot_sync);
    g_test_add_func("/snapshot/existing-overlay",
                    test_snapshot_existing_overlay);
    ret = g_test_run();

    for (const char *f = "base.qcow2\0top.qcow2\0bad.qcow2\0b2.qcow2\0"
                         "o2.qcow2\0"; *f; f += strlen(f) + 1) {
        g_autofree char *p = tmp_path(f);

        unlink(p);
    }
    rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
