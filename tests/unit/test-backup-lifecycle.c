/*
 * Lifecycle races of the backup job, meant to run under ASan + UBSan:
 * blockdev-del of the source or target while a job runs (refused with
 * QEMU 7.2's messages), removal of the source drive while a job runs
 * (the job's own edge keeps the node; the backup completes correctly),
 * exit while a job runs (cancelled, every node closed), an exported
 * target-id node that outlives its job until the export goes, job-cancel
 * while a copy-before-write read is in flight, and dismissal of a failed
 * job.
 *
 * Every test starts and ends with no node open, so a reference leaked on
 * any path shows up as a node still listed by bdrv_next_all().
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/job.h"
#include "block/backup.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "block/blockjob.h"
#include "block/export.h"
#include "block/nbd.h"
#include "sysemu/blockdev.h"
#include "qapi/qapi-types.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-events.h"
#include "qapi/qapi-visit.h"
#include "bctest-drv.h"

#define IMG_SIZE (4 * MiB)
/* Bound of every wait: a hang fails the test instead of blocking it. */
#define WAIT_US (30 * G_USEC_PER_SEC)

static char *tmpdir;

/* ---- event capture (overrides the weak default that drops events) ---- */

static GPtrArray *events;   /* "NAME data-json" strings */

void qapi_event_emit(QAPIEvent event, JsonNode *data)
{
    g_autofree char *json = data ? qnode_to_json(data, false) : NULL;

    g_ptr_array_add(events, g_strdup_printf("%s %s", QAPIEvent_str(event),
                                            json ? json : "null"));
}

/* True if an event @name was sent for job @id. */
static bool event_seen(const char *name, const char *id)
{
    g_autofree char *prefix = g_strdup_printf("%s ", name);
    g_autofree char *device = g_strdup_printf("\"device\":\"%s\"", id);

    for (guint i = 0; i < events->len; i++) {
        if (g_str_has_prefix(events->pdata[i], prefix) &&
            strstr(events->pdata[i], device)) {
            return true;
        }
    }
    return false;
}

/* ---- helpers ---- */

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
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

static void assert_error(Error *err, const char *msg)
{
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static JsonNode *parse_json(JsonParser *parser, const char *json)
{
    g_assert_true(json_parser_load_from_data(parser, json, -1, NULL));
    return json_parser_get_root(parser);
}

static void blockdev_add_json(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    BlockdevOptions *opts = NULL;

    g_assert_true(visit_type_BlockdevOptions(parse_json(parser, json),
                                             &opts, &error_abort));
    qmp_blockdev_add(opts, &error_abort);
    qapi_free_BlockdevOptions(opts);
}

static void blockdev_backup_json(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    BlockdevBackup *arg = NULL;

    g_assert_true(visit_type_BlockdevBackup(parse_json(parser, json),
                                            &arg, &error_abort));
    qmp_blockdev_backup(arg, &error_abort);
    qapi_free_BlockdevBackup(arg);
}

static void drive_backup_json(const char *json)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    DriveBackup *arg = NULL;

    g_assert_true(visit_type_DriveBackup(parse_json(parser, json),
                                         &arg, &error_abort));
    qmp_drive_backup(arg, &error_abort);
    qapi_free_DriveBackup(arg);
}

static void create_qcow2(const char *path, int64_t size)
{
    g_autoptr(QDict) opts = qdict_new();

    qdict_put_int(opts, "size", size);
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts,
                                &error_abort), ==, 0);
}

/* Polls the main loop until @cond(@opaque) holds, at most WAIT_US. */
static void wait_until(bool (*cond)(void *), void *opaque)
{
    int64_t deadline = g_get_monotonic_time() + WAIT_US;

    while (!cond(opaque)) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(100);
    }
}

static bool job_gone_or_concluded(void *opaque)
{
    Job *job = job_get(opaque);

    return !job || job_is_concluded(job);
}

static void wait_job(const char *id)
{
    wait_until(job_gone_or_concluded, (void *)id);
}

/* Writes @pattern over the whole (IMG_SIZE) image at @path. */
static void fill_image(const char *path, uint8_t pattern)
{
    BlockDriverState *bs = bdrv_open(path, NULL, NULL, BDRV_O_RDWR,
                                     &error_abort);
    BlockBackend *blk = blk_new();
    g_autofree uint8_t *buf = g_malloc(IMG_SIZE);

    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    memset(buf, pattern, IMG_SIZE);
    g_assert_cmpint(blk_pwrite(blk, 0, IMG_SIZE, buf, 0), ==, 0);
    blk_unref(blk);
    bdrv_unref(bs);
}

/* True if every byte of the image at @path is @pattern. */
static bool image_is(const char *path, uint8_t pattern)
{
    BlockDriverState *bs = bdrv_open(path, NULL, NULL, 0, &error_abort);
    BlockBackend *blk = blk_new();
    g_autofree uint8_t *buf = g_malloc(IMG_SIZE);
    bool same = true;

    g_assert_cmpint(blk_insert_bs(blk, bs, &error_abort), ==, 0);
    g_assert_cmpint(blk_pread(blk, 0, IMG_SIZE, buf, 0), ==, 0);
    for (int64_t i = 0; i < IMG_SIZE && same; i++) {
        same = buf[i] == pattern;
    }
    blk_unref(blk);
    bdrv_unref(bs);
    return same;
}

/*
 * Adds qcow2 node @name over a new image file @name.qcow2, filled with
 * @pattern unless it is 0.
 */
static void add_qcow2_node(const char *name, uint8_t pattern)
{
    g_autofree char *file = g_strdup_printf("%s.qcow2", name);
    g_autofree char *img = tmp_path(file);
    g_autofree char *json = NULL;

    create_qcow2(img, IMG_SIZE);
    if (pattern) {
        fill_image(img, pattern);
    }
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"%s\", "
                           "\"file\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}", name, img);
    blockdev_add_json(json);
}

/* Closes everything as qblockd's exit does and checks nothing stayed. */
static void finish(void)
{
    blockdev_close_all_for_exit();
    g_assert_cmpint(count_nodes(), ==, 0);
    g_assert_null(job_next(NULL));
    g_ptr_array_set_size(events, 0);
}

/* ---- blockdev-del of the source or target while a job runs ---- */

static void test_del_while_running(void)
{
    BlockDriverState *src, *tgt;
    int src_ref, tgt_ref;
    Error *err = NULL;

    add_qcow2_node("src", 0x6b);
    add_qcow2_node("tgt", 0);
    src = bdrv_find_node("src");
    tgt = bdrv_find_node("tgt");
    src_ref = bdrv_get_refcnt(src);
    tgt_ref = bdrv_get_refcnt(tgt);
    /* 64 KiB/s: the job is still running during the deletions. */
    blockdev_backup_json("{\"job-id\": \"bk\", \"device\": \"src\", "
                         "\"target\": \"tgt\", \"sync\": \"full\", "
                         "\"speed\": 65536}");
    g_assert_false(job_is_concluded(job_get("bk")));

    /* QEMU 7.2 (qemu-storage-daemon) says exactly this for the target. */
    qmp_blockdev_del("tgt", &err);
    assert_error(err, "Node 'tgt' is busy: block device is in use by "
                 "block job: backup");
    err = NULL;
    /* The source's message differs from QEMU's: see del-source-message. */
    qmp_blockdev_del("src", &err);
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(error_get_pretty(err), "src"));
    error_free(err);
    err = NULL;
    /* A refused deletion takes and drops nothing. */
    g_assert_cmpint(bdrv_get_refcnt(src), ==, src_ref + 1);
    g_assert_cmpint(bdrv_get_refcnt(tgt), ==, tgt_ref + 1);

    qmp_block_job_cancel("bk", false, false, &error_abort);
    wait_job("bk");
    g_assert_null(job_get("bk"));
    g_assert_true(event_seen("BLOCK_JOB_CANCELLED", "bk"));
    g_assert_cmpint(bdrv_get_refcnt(src), ==, src_ref);
    g_assert_cmpint(bdrv_get_refcnt(tgt), ==, tgt_ref);
    /* Once the job is gone both deletions succeed and close the nodes. */
    qmp_blockdev_del("tgt", &error_abort);
    qmp_blockdev_del("src", &error_abort);
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

/*
 * As QEMU 7.2 (qemu-storage-daemon, blockdev-backup from a blockdev-add'ed
 * node): blockdev-del of a running backup's source is refused with "Block
 * device src is in use" (its target's message is "Node 'tgt' is busy...").
 */
static void test_del_source_message(void)
{
    Error *err = NULL;

    add_qcow2_node("src", 0x6b);
    add_qcow2_node("tgt", 0);
    blockdev_backup_json("{\"job-id\": \"bk\", \"device\": \"src\", "
                         "\"target\": \"tgt\", \"sync\": \"none\"}");
    qmp_blockdev_del("src", &err);
    assert_error(err, "Block device src is in use");
    finish();
}

/*
 * As QEMU 7.2 (qemu-storage-daemon): two backup jobs of one source run at
 * once (different targets).
 */
static void test_two_jobs_one_source(void)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    BlockdevBackup *arg = NULL;
    Error *err = NULL;

    add_qcow2_node("src", 0x6b);
    add_qcow2_node("tgt", 0);
    add_qcow2_node("tgt2", 0);
    blockdev_backup_json("{\"job-id\": \"bk\", \"device\": \"src\", "
                         "\"target\": \"tgt\", \"sync\": \"full\", "
                         "\"speed\": 65536}");
    g_assert_true(visit_type_BlockdevBackup(
                      parse_json(parser, "{\"job-id\": \"bk2\", "
                                 "\"device\": \"src\", "
                                 "\"target\": \"tgt2\", "
                                 "\"sync\": \"full\"}"),
                      &arg, &error_abort));
    qmp_blockdev_backup(arg, &err);
    qapi_free_BlockdevBackup(arg);
    g_assert_cmpstr(err ? error_get_pretty(err) : NULL, ==, NULL);
    wait_job("bk2");
    finish();
}

/* ---- the source drive goes away while the job runs ---- */

static void test_drive_del_while_running(void)
{
    g_autofree char *src = tmp_path("dsrc.qcow2");
    g_autofree char *tgt = tmp_path("dtgt.qcow2");
    g_autofree char *opts_json = NULL;
    g_autofree char *bk_json = NULL;
    g_autoptr(QDict) opts = NULL;
    BlockDriverState *bs;

    create_qcow2(src, IMG_SIZE);
    create_qcow2(tgt, IMG_SIZE);
    fill_image(src, 0x5a);
    opts_json = g_strdup_printf("{\"file\": \"%s\", \"if\": \"none\", "
                                "\"id\": \"drv\", \"node-name\": \"dn\"}",
                                src);
    opts = qdict_from_json(opts_json, &error_abort);
    g_assert_nonnull(drive_new(opts, &error_abort));
    bs = bdrv_find_node("dn");
    bk_json = g_strdup_printf("{\"job-id\": \"bk\", \"device\": \"drv\", "
                              "\"target\": \"%s\", \"format\": \"qcow2\", "
                              "\"mode\": \"existing\", \"sync\": \"full\", "
                              "\"speed\": 65536}", tgt);
    drive_backup_json(bk_json);
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 2);

    /*
     * qblock lets the drive go (QEMU 7.2's HMP drive_del refuses with
     * "Node 'drv' is busy: block device is in use by block job:
     * backup"); the job's own edge must keep the node alive.
     */
    g_assert_true(drive_del("drv", &error_abort));
    g_assert_null(blk_by_name("drv"));
    g_assert_true(bdrv_find_node("dn") == bs);
    g_assert_cmpint(bdrv_get_refcnt(bs), ==, 1);
    qmp_block_job_set_speed("bk", 0, &error_abort);
    wait_job("bk");
    g_assert_true(event_seen("BLOCK_JOB_COMPLETED", "bk"));
    /* The job's reference was the last: the source is closed. */
    g_assert_null(bdrv_find_node("dn"));
    g_assert_cmpint(count_nodes(), ==, 0);
    g_assert_true(image_is(tgt, 0x5a));
    finish();
}

/* ---- exit (quit / SIGTERM) while a job runs ---- */

static void test_exit_while_running(void)
{
    g_autofree char *tgt = tmp_path("etgt.qcow2");
    g_autofree char *bk_json = NULL;

    add_qcow2_node("esrc", 0x6b);
    create_qcow2(tgt, IMG_SIZE);
    bk_json = g_strdup_printf("{\"job-id\": \"bk\", \"device\": \"esrc\", "
                              "\"target\": \"%s\", \"format\": \"qcow2\", "
                              "\"mode\": \"existing\", \"sync\": \"full\", "
                              "\"speed\": 65536, \"auto-dismiss\": false}",
                              tgt);
    drive_backup_json(bk_json);
    /* A second job, paused, must be cancelled too. */
    add_qcow2_node("esrc2", 0);
    add_qcow2_node("etgt2", 0);
    blockdev_backup_json("{\"job-id\": \"bk2\", \"device\": \"esrc2\", "
                         "\"target\": \"etgt2\", \"sync\": \"none\"}");
    qmp_block_job_pause("bk2", &error_abort);
    g_ptr_array_set_size(events, 0);

    /* What qblockd does on quit and on SIGTERM. */
    blockdev_close_all_for_exit();
    g_assert_true(event_seen("BLOCK_JOB_CANCELLED", "bk"));
    g_assert_true(event_seen("BLOCK_JOB_CANCELLED", "bk2"));
    g_assert_null(job_next(NULL));
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

/* ---- an exported target-id node outlives its job ---- */

static void nbd_start(void)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *sock = tmp_path("nbd.sock");
    g_autofree char *json = g_strdup_printf(
        "{\"type\": \"unix\", \"path\": \"%s\"}", sock);
    SocketAddress *addr = NULL;

    g_assert_true(visit_type_SocketAddress(parse_json(parser, json), &addr,
                                           &error_abort));
    g_assert_true(nbd_server_start(addr, NULL, NULL, 0, &error_abort));
    qapi_free_SocketAddress(addr);
}

/* @extra: more members of the export's options, "" or ", ...". */
static void export_add(const char *id, const char *node, const char *extra)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *json = g_strdup_printf(
        "{\"type\": \"nbd\", \"id\": \"%s\", \"node-name\": \"%s\"%s}",
        id, node, extra);
    BlockExportOptions *opts = NULL;

    g_assert_true(visit_type_BlockExportOptions(parse_json(parser, json),
                                                &opts, &error_abort));
    qmp_block_export_add(opts, &error_abort);
    qapi_free_BlockExportOptions(opts);
}

static bool node_gone(void *opaque)
{
    return !bdrv_find_node(opaque);
}

static void test_export_holds_target(void)
{
    g_autofree char *tgt = tmp_path("fleece.qcow2");
    g_autofree char *bk_json = NULL;
    BlockDriverState *fleece;
    Error *err = NULL;

    add_qcow2_node("xsrc", 0x6b);
    create_qcow2(tgt, IMG_SIZE);
    nbd_start();
    bk_json = g_strdup_printf("{\"job-id\": \"bk\", \"device\": \"xsrc\", "
                              "\"target\": \"%s\", \"format\": \"qcow2\", "
                              "\"mode\": \"existing\", \"sync\": \"none\", "
                              "\"target-id\": \"fleece\"}", tgt);
    drive_backup_json(bk_json);
    fleece = bdrv_find_node("fleece");
    g_assert_nonnull(fleece);
    export_add("exp", "fleece", "");
    qmp_blockdev_del("fleece", &err);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;

    /* The job ends while the export still holds its target. */
    qmp_block_job_cancel("bk", false, false, &error_abort);
    wait_job("bk");
    g_assert_null(job_get("bk"));
    g_assert_true(bdrv_find_node("fleece") == fleece);
    g_assert_cmpint(bdrv_get_refcnt(fleece), >=, 1);
    g_assert_cmpint(bdrv_getlength(fleece), ==, IMG_SIZE);

    /* The export was the last holder: the node closes with it. */
    qmp_block_export_del("exp", false, 0, &error_abort);
    wait_until(node_gone, "fleece");
    qmp_nbd_server_stop(&error_abort);
    qmp_blockdev_del("xsrc", &error_abort);
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

/*
 * An export's writethrough option turns its write cache off, so that no
 * write of its clients is deferred during a backup (block/io.c).
 */
static void test_export_writethrough(void)
{
    NBDServer *srv;

    add_qcow2_node("xsrc", 0x6b);
    nbd_start();
    export_add("wb", "xsrc", ", \"writable\": true");
    export_add("wt", "xsrc",
               ", \"writable\": true, \"writethrough\": true, "
               "\"name\": \"wt\"");
    srv = nbd_server_get(&error_abort);
    g_assert_true(blk_enable_write_cache(
        nbd_export_get_blk(nbd_export_find(srv, "xsrc"))));
    g_assert_false(blk_enable_write_cache(
        nbd_export_get_blk(nbd_export_find(srv, "wt"))));
    qmp_block_export_del("wb", false, 0, &error_abort);
    qmp_block_export_del("wt", false, 0, &error_abort);
    qmp_nbd_server_stop(&error_abort);
    qmp_blockdev_del("xsrc", &error_abort);
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

/* ---- job-cancel while a copy-before-write read is in flight ---- */

typedef struct WriteDone {
    bool done;
    int ret;
} WriteDone;

static void write_cb(void *opaque, int ret)
{
    WriteDone *w = opaque;

    w->ret = ret;
    w->done = true;
}

static bool write_done(void *opaque)
{
    return ((WriteDone *)opaque)->done;
}

static void resume_source(void *opaque)
{
    bctest_resume(opaque);
}

static void test_cancel_during_cbw(gconstpointer data)
{
    MirrorSyncMode sync = GPOINTER_TO_INT(data);
    BackupJobOptions opts = {
        .sync = sync,
        .speed = 65536,
        .on_source_error = BLOCKDEV_ON_ERROR_REPORT,
        .on_target_error = BLOCKDEV_ON_ERROR_REPORT,
        .job_flags = JOB_MANUAL_DISMISS,
    };
    BlockDriverState *src = bctest_open("csrc", IMG_SIZE, false);
    BlockDriverState *tgt = bctest_open("ctgt", IMG_SIZE, false);
    BlockBackend *blk = blk_new();
    const int64_t victim = 3 * MiB;
    g_autofree uint8_t *orig = NULL;
    g_autofree uint8_t *buf = g_malloc(BCTEST_UNIT);
    WriteDone w = { 0 };
    QEMUTimer *resume_timer;
    QEMUIOVector qiov;
    BlockJob *bjob;

    bctest_fill(src, 9, NULL);
    orig = g_memdup2(bctest(src)->data, IMG_SIZE);
    g_assert_cmpint(blk_insert_bs(blk, src, &error_abort), ==, 0);
    bjob = backup_job_create("bk", src, tgt, &opts, &error_abort);

    /* The guest write's copy-before-write read parks in the source. */
    bctest_park_read(src, victim);
    memset(buf, 0xee, BCTEST_UNIT);
    qemu_iovec_init_buf(&qiov, buf, BCTEST_UNIT);
    blk_aio_pwritev(blk, victim, &qiov, 0, write_cb, &w);
    bctest_wait_parked(src);
    g_assert_false(w.done);

    /*
     * Cancel (forced) while the copy is in flight.  The job's clean-up
     * drains the source and so waits for the parked read: the "device"
     * finishes it from a timer 50 ms later, inside that drain.
     */
    resume_timer = aio_timer_new(qemu_get_aio_context(), resume_source, src);
    timer_mod_ns(resume_timer, qemu_clock_get_ns() + 50 * 1000 * 1000);
    job_cancel(bjob->job, true);
    g_assert_false(w.done);
    wait_until(write_done, &w);
    wait_job("bk");
    timer_free(resume_timer);

    /* The guest write succeeds; the copy it waited for is on the target. */
    g_assert_cmpint(w.ret, ==, 0);
    g_assert_cmpint(bctest(src)->data[victim], ==, 0xee);
    g_assert_true(memcmp(bctest(tgt)->data + victim, orig + victim,
                         BCTEST_UNIT) == 0);
    g_assert_true(job_is_concluded(bjob->job));
    g_assert_cmpint(bjob->job->ret, ==, -ECANCELED);
    job_dismiss(bjob->job, &error_abort);
    /* Only the test's own references remain. */
    g_assert_cmpint(bdrv_get_refcnt(src), ==, 2);
    g_assert_cmpint(bdrv_get_refcnt(tgt), ==, 1);
    blk_unref(blk);
    bdrv_unref(src);
    bdrv_unref(tgt);
    finish();
}

/* ---- job-dismiss after a failed job ---- */

static void test_dismiss_failed(void)
{
    g_autofree char *img = tmp_path("ftgt.qcow2");
    g_autofree char *json = NULL;
    BlockDriverState *src, *tgt;
    BlockJobInfoList *jobs;
    Error *err = NULL;

    add_qcow2_node("fsrc", 0x6b);
    create_qcow2(img, IMG_SIZE);
    /* Every data write of the target's qcow2 fails with EIO. */
    json = g_strdup_printf("{\"driver\": \"qcow2\", \"node-name\": \"ftgt\", "
                           "\"file\": {\"driver\": \"blkdebug\", "
                           "\"inject-error\": [{\"event\": \"write_aio\", "
                           "\"errno\": 5}], "
                           "\"image\": {\"driver\": \"file\", "
                           "\"filename\": \"%s\"}}}", img);
    blockdev_add_json(json);
    src = bdrv_find_node("fsrc");
    tgt = bdrv_find_node("ftgt");
    blockdev_backup_json("{\"job-id\": \"bk\", \"device\": \"fsrc\", "
                         "\"target\": \"ftgt\", \"sync\": \"full\", "
                         "\"auto-dismiss\": false}");
    /* Dismiss is refused until the job concluded. */
    if (!job_is_concluded(job_get("bk"))) {
        qmp_block_job_dismiss("bk", &err);
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(error_get_pretty(err),
                                "cannot accept command verb 'dismiss'"));
        error_free(err);
        err = NULL;
    }
    wait_job("bk");
    jobs = qmp_query_block_jobs(&error_abort);
    g_assert_nonnull(jobs);
    g_assert_cmpint(jobs->value->status, ==, JOB_STATUS_CONCLUDED);
    g_assert_cmpstr(jobs->value->error, ==, "Input/output error");
    qapi_free_BlockJobInfoList(jobs);
    /* A concluded job holds nothing any more. */
    g_assert_cmpint(bdrv_get_refcnt(src), ==, 1);
    g_assert_cmpint(bdrv_get_refcnt(tgt), ==, 1);
    qmp_blockdev_del("ftgt", &error_abort);

    qmp_block_job_dismiss("bk", &error_abort);
    g_assert_null(job_get("bk"));
    qmp_block_job_dismiss("bk", &err);
    assert_error(err, "Block job 'bk' not found");
    qmp_blockdev_del("fsrc", &error_abort);
    g_assert_cmpint(count_nodes(), ==, 0);
    finish();
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    bctest_register();
    events = g_ptr_array_new_with_free_func(g_free);
    tmpdir = g_dir_make_tmp("test-backup-lifecycle-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/backup-lifecycle/del-while-running",
                    test_del_while_running);
    g_test_add_func("/backup-lifecycle/del-source-message",
                    test_del_source_message);
    g_test_add_func("/backup-lifecycle/two-jobs-one-source",
                    test_two_jobs_one_source);
    g_test_add_func("/backup-lifecycle/drive-del-while-running",
                    test_drive_del_while_running);
    g_test_add_func("/backup-lifecycle/exit-while-running",
                    test_exit_while_running);
    g_test_add_func("/backup-lifecycle/export-writethrough",
                    test_export_writethrough);
    g_test_add_func("/backup-lifecycle/export-holds-target",
                    test_export_holds_target);
    g_test_add_data_func("/backup-lifecycle/cancel-during-cbw/none",
                         GINT_TO_POINTER(MIRROR_SYNC_MODE_NONE),
                         test_cancel_during_cbw);
    g_test_add_data_func("/backup-lifecycle/cancel-during-cbw/full",
                         GINT_TO_POINTER(MIRROR_SYNC_MODE_FULL),
                         test_cancel_during_cbw);
    g_test_add_func("/backup-lifecycle/dismiss-failed",
                    test_dismiss_failed);
    ret = g_test_run();

    g_ptr_array_free(events, true);
    {
        g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);

        g_assert_cmpint(system(cmd), ==, 0);
    }
    g_free(tmpdir);
    return ret;
}
