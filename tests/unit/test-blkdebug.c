/*
 * Tests of the blkdebug fault-injection filter: error rules (event,
 * once, sector, iotype, errno), state transitions, breakpoints, options
 * and config-file errors.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/aio.h"
#include "qemu/iov.h"
#include "block/block_int.h"
#include "block/block-backend.h"

static char *test_dir;
static char *image;

static char *write_config(const char *text)
{
    char *path = g_build_filename(test_dir, "blkdebug.conf", NULL);

    g_assert(g_file_set_contents(path, text, -1, NULL));
    return path;
}

/* raw over blkdebug:CONF:IMAGE, as "qemu-io -f raw blkdebug:..." does. */
static BlockBackend *open_with_config(const char *config_text, Error **errp)
{
    g_autofree char *conf = write_config(config_text);
    g_autofree char *filename = g_strdup_printf("blkdebug:%s:%s", conf,
                                                image);
    QDict *opts = qdict_new();

    qdict_put_str(opts, "driver", "raw");
    return blk_new_open(filename, NULL, opts, BDRV_O_RDWR, errp);
}

static BlockBackend *open_json(const char *blkdebug_members, Error **errp)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"raw\", \"file\": {\"driver\": \"blkdebug\", %s"
        "\"image\": {\"driver\": \"file\", \"filename\": \"%s\"}}}",
        blkdebug_members, image);

    return blk_new_open(NULL, NULL, qdict_from_json(json, &error_abort),
                        BDRV_O_RDWR, errp);
}

static int do_read(BlockBackend *blk, int64_t offset)
{
    uint8_t buf[512];

    return blk_pread(blk, offset, sizeof(buf), buf, 0);
}

static int do_write(BlockBackend *blk, int64_t offset)
{
    uint8_t buf[512];

    memset(buf, 0x42, sizeof(buf));
    return blk_pwrite(blk, offset, sizeof(buf), buf, 0);
}

static void test_read_eio_always(void)
{
    BlockBackend *blk = open_with_config(
        "[inject-error]\nevent = \"read_aio\"\n", &error_abort);

    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(do_read(blk, 0), ==, -EIO);
    g_assert_cmpint(do_read(blk, 4096), ==, -EIO);
    /* An armed rule stays armed until another event arms other rules. */
    g_assert_cmpint(do_write(blk, 0), ==, -EIO);
    blk_unref(blk);
}

static void test_read_eio_once(void)
{
    BlockBackend *blk = open_with_config(
        "# fail the first read only\n"
        "[inject-error]\n"
        "event = \"read_aio\"\n"
        "errno = \"5\"\n"
        "once = \"on\"\n", &error_abort);

    g_assert_cmpint(do_read(blk, 0), ==, -EIO);
    g_assert_cmpint(do_read(blk, 0), ==, 0);
    g_assert_cmpint(do_read(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    blk_unref(blk);
}

static void test_write_enospc(void)
{
    BlockBackend *blk = open_with_config(
        "[inject-error]\nevent = \"write_aio\"\nerrno = \"28\"\n",
        &error_abort);

    g_assert_cmpint(do_read(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 0), ==, -ENOSPC);
    g_assert_cmpint(do_write(blk, 8192), ==, -ENOSPC);
    blk_unref(blk);
}

static void test_write_once_immediately(void)
{
    BlockBackend *blk = open_with_config(
        "[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\n"
        "once = \"on\"\nimmediately = \"on\"\n", &error_abort);

    g_assert_cmpint(do_write(blk, 0), ==, -EIO);
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    blk_unref(blk);
}

static void test_sector_and_iotype(void)
{
    BlockBackend *blk = open_with_config(
        "[inject-error]\nevent = \"write_aio\"\nsector = \"8\"\n"
        "[inject-error]\nevent = \"read_aio\"\niotype = \"write\"\n"
        "errno = \"28\"\n", &error_abort);

    /* Sector 8 is bytes 4096..4607. */
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 4096), ==, -EIO);
    g_assert_cmpint(do_write(blk, 4096 + 512), ==, 0);
    /* Reads arm the write-only rule, which spares the read itself. */
    g_assert_cmpint(do_read(blk, 4096), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    blk_unref(blk);
}

static void test_set_state(void)
{
    BlockBackend *blk = open_with_config(
        "[set-state]\nevent = \"write_aio\"\nstate = \"1\"\n"
        "new_state = \"2\"\n"
        "[set-state]\nevent = \"write_aio\"\nstate = \"2\"\n"
        "new_state = \"3\"\n"
        "[inject-error]\nevent = \"write_aio\"\nstate = \"2\"\n"
        "errno = \"28\"\n", &error_abort);

    /* Rules see the state from before the event: 1, then 2, then 3. */
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 0), ==, -ENOSPC);
    g_assert_cmpint(do_read(blk, 0), ==, -ENOSPC);
    g_assert_cmpint(do_write(blk, 0), ==, -ENOSPC);
    blk_unref(blk);

    /* The same through the set-state option and an armed event rule. */
    blk = open_json("\"set-state\": [{\"event\": \"read_aio\", "
                    "\"new_state\": 5}], \"inject-error\": [{\"event\": "
                    "\"write_aio\", \"state\": 5, \"errno\": 5}], ",
                    &error_abort);
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(do_read(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 0), ==, -EIO);
    blk_unref(blk);
}

static void test_options(void)
{
    BlockBackend *blk;
    QDict *opts;

    /* Event-less rules are always armed. */
    blk = open_json("\"inject-error\": [{\"iotype\": \"flush\", "
                    "\"errno\": 5}], ", &error_abort);
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, -EIO);
    g_assert_cmpint(blk_flush(blk), ==, -EIO);
    blk_unref(blk);

    blk = open_json("\"inject-error\": [{\"iotype\": \"write\", "
                    "\"sector\": 2, \"once\": true}], ", &error_abort);
    g_assert_cmpint(do_write(blk, 0), ==, 0);
    g_assert_cmpint(do_write(blk, 1024), ==, -EIO);
    g_assert_cmpint(do_write(blk, 1024), ==, 0);
    blk_unref(blk);

    /* Dotted keys from the command line. */
    opts = qdict_new();
    qdict_put_str(opts, "driver", "raw");
    qdict_put_str(opts, "file.driver", "blkdebug");
    qdict_put_str(opts, "file.image.driver", "file");
    qdict_put_str(opts, "file.image.filename", image);
    qdict_put_str(opts, "file.inject-error.0.event", "read_aio");
    qdict_put_str(opts, "file.inject-error.0.errno", "28");
    qdict_put_str(opts, "file.inject-error.1.event", "write_aio");
    qdict_put_str(opts, "file.inject-error.1.errno", "5");
    blk = blk_new_open(NULL, NULL, opts, BDRV_O_RDWR, &error_abort);
    g_assert_cmpint(do_read(blk, 0), ==, -ENOSPC);
    g_assert_cmpint(do_write(blk, 0), ==, -EIO);
    blk_unref(blk);
}

/* Events raised by hand on a bare blkdebug node. */
static void test_manual_event(void)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"blkdebug\", \"inject-error\": [{\"event\": "
        "\"l2_load\", \"errno\": 28, \"once\": true}], \"image\": "
        "{\"driver\": \"file\", \"filename\": \"%s\"}}", image);
    BlockBackend *blk = blk_new_open(NULL, NULL,
                                     qdict_from_json(json, &error_abort),
                                     BDRV_O_RDWR, &error_abort);

    g_assert_cmpstr(blk_bs(blk)->drv->format_name, ==, "blkdebug");
    g_assert_cmpint(do_read(blk, 0), ==, 0);
    bdrv_debug_event(blk_bs(blk), BLKDBG_L2_LOAD);
    g_assert_cmpint(do_read(blk, 0), ==, -ENOSPC);
    g_assert_cmpint(do_read(blk, 0), ==, 0);
    blk_unref(blk);
}

static void test_align(void)
{
    uint8_t buf[700], check[700];
    BlockBackend *blk;
    Error *err = NULL;

    /* blkdebug asserts that every request it sees is 4k-aligned. */
    blk = open_json("\"align\": 4096, \"max-transfer\": 8192, ",
                    &error_abort);
    g_assert_cmpuint(blk_bs(blk)->file->bs->bl.request_alignment, ==, 4096);
    memset(buf, 0x17, sizeof(buf));
    g_assert_cmpint(blk_pwrite(blk, 100, sizeof(buf), buf, 0), ==, 0);
    g_assert_cmpint(blk_pread(blk, 100, sizeof(check), check, 0), ==, 0);
    g_assert_cmpmem(buf, sizeof(buf), check, sizeof(check));
    {
        g_autofree uint8_t *big = g_malloc(64 * KiB);

        g_assert_cmpint(blk_pread(blk, 0, 64 * KiB, big, 0), ==, 0);
    }
    blk_unref(blk);

    g_assert_null(open_json("\"align\": 1000, ", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot meet constraints with align 1000");
    error_free(err);
    err = NULL;

    g_assert_null(open_json("\"align\": 4096, \"max-transfer\": 6144, ",
                            &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot meet constraints with max-transfer 6144");
    error_free(err);
}

/* ---- breakpoints ---- */

typedef struct AioResult {
    bool done;
    int ret;
} AioResult;

static void aio_result_cb(void *opaque, int ret)
{
    AioResult *r = opaque;

    r->ret = ret;
    r->done = true;
}

static void poll_until_suspended(BlockDriverState *bs, const char *tag)
{
    for (int i = 0; i < 10000 && !bdrv_debug_is_suspended(bs, tag); i++) {
        aio_poll(qemu_get_aio_context(), false);
        g_usleep(100);
    }
    g_assert_true(bdrv_debug_is_suspended(bs, tag));
}

static void test_breakpoint(void)
{
    BlockBackend *blk = open_with_config("", &error_abort);
    BlockDriverState *bs = blk_bs(blk);
    uint8_t *wbuf = g_malloc(4096), *rbuf = g_malloc(4096);
    QEMUIOVector wqiov, rqiov;
    AioResult w = { 0 }, r = { 0 };

    g_assert_cmpint(bdrv_debug_breakpoint(bs, "no_such_event", "A"), ==,
                    -ENOENT);
    g_assert_cmpint(bdrv_debug_resume(bs, "A"), ==, -ENOENT);
    g_assert_cmpint(bdrv_debug_breakpoint(bs, "write_aio", "A"), ==, 0);

    memset(wbuf, 0x33, 4096);
    qemu_iovec_init_buf(&wqiov, wbuf, 4096);
    blk_aio_pwritev(blk, 0, &wqiov, 0, aio_result_cb, &w);
    poll_until_suspended(bs, "A");
    g_assert_false(w.done);

    /* Another request goes past the halted one. */
    qemu_iovec_init_buf(&rqiov, rbuf, 4096);
    blk_aio_preadv(blk, 65536, &rqiov, 0, aio_result_cb, &r);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_false(w.done);
    g_assert_true(bdrv_debug_is_suspended(bs, "A"));

    g_assert_cmpint(bdrv_debug_resume(bs, "B"), ==, -ENOENT);
    g_assert_cmpint(bdrv_debug_resume(bs, "A"), ==, 0);
    AIO_WAIT_WHILE(!w.done);
    g_assert_cmpint(w.ret, ==, 0);
    g_assert_false(bdrv_debug_is_suspended(bs, "A"));

    /* Breakpoints are one-shot. */
    g_assert_cmpint(do_write(blk, 8192), ==, 0);
    g_assert_cmpint(blk_pread(blk, 0, 4096, rbuf, 0), ==, 0);
    g_assert_cmpmem(rbuf, 4096, wbuf, 4096);

    /* Removing a breakpoint releases what it halted. */
    g_assert_cmpint(bdrv_debug_breakpoint(bs, "read_aio", "C"), ==, 0);
    r.done = false;
    blk_aio_preadv(blk, 0, &rqiov, 0, aio_result_cb, &r);
    poll_until_suspended(bs, "C");
    g_assert_cmpint(bdrv_debug_remove_breakpoint(bs, "C"), ==, 0);
    AIO_WAIT_WHILE(!r.done);
    g_assert_cmpint(r.ret, ==, 0);
    g_assert_cmpint(bdrv_debug_remove_breakpoint(bs, "C"), ==, -ENOENT);

    g_assert_cmpint(bdrv_debug_breakpoint(bs, "write_aio", "D"), ==, 0);
    g_assert_cmpint(bdrv_debug_remove_breakpoint(bs, "D"), ==, 0);
    g_assert_cmpint(do_write(blk, 0), ==, 0);

    blk_unref(blk);
    g_free(wbuf);
    g_free(rbuf);
}

/* ---- config errors ---- */

static void test_config_errors(void)
{
    g_autofree char *conf = g_build_filename(test_dir, "blkdebug.conf",
                                             NULL);
    struct {
        const char *text;
        const char *msg;        /* %s: the config file name */
    } cases[] = {
        { "[bogus]\nevent = \"read_aio\"\n",
          "There is no option group 'bogus'" },
        { "[inject-error]\nevent = \"nosuch\"\n",
          "invalid parameter value: nosuch" },
        { "[inject-error]\nerrno = \"5\"\n",
          "Missing event name for rule" },
        { "[inject-error]\nevent = \"read_aio\"\nfoo = \"5\"\n",
          "Invalid parameter 'foo'" },
        { "[inject-error]\nevent = \"read_aio\"\nonce = \"maybe\"\n",
          "Parameter 'once' expects 'on' or 'off'" },
        { "[inject-error]\nevent = \"read_aio\"\nerrno = \"x5\"\n",
          "Parameter 'errno' expects a number" },
        { "[inject-error]\nevent = \"read_aio\"\nerrno = \"-3\"\n",
          "errno must be a positive error number" },
        { "[set-state]\nevent = \"read_aio\"\n",
          "Parameter 'new_state' is missing" },
        { "\n\nevent = \"read_aio\"\n", "%s:3: no group defined" },
        { "[inject-error]\nevent \"read_aio\"\n", "%s:2: parse error" },
        { "[inject-error\n", "%s:1: parse error" },
    };
    Error *err = NULL;

    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *expect = g_strdup_printf(cases[i].msg, conf);

        g_assert_null(open_with_config(cases[i].text, &err));
        g_assert_nonnull(err);
        g_assert_cmpstr(error_get_pretty(err), ==, expect);
        error_free(err);
        err = NULL;
    }

    /* A missing config file. */
    {
        g_autofree char *name = g_strdup_printf("blkdebug:/nonexistent.conf:"
                                                "%s", image);

        g_assert_null(bdrv_open(name, NULL, NULL, BDRV_O_PROTOCOL, &err));
        g_assert_cmpstr(error_get_pretty(err), ==, "Could not read blkdebug "
                        "config file: No such file or directory");
        error_free(err);
        err = NULL;
    }

    /* Option lists are checked the same way. */
    g_assert_null(open_json("\"inject-error\": [{\"event\": \"read_aio\", "
                            "\"iotype\": \"sideways\"}], ", &err));
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    g_assert_null(open_json("\"inject-error\": [5], ", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameter 'inject-error[0]' expects an object");
    error_free(err);
}

/* blkdebug::IMAGE: no config file, the node just passes I/O through. */
static void test_empty_config(void)
{
    g_autofree char *name = g_strdup_printf("blkdebug::%s", image);
    BlockDriverState *bs = bdrv_open(name, NULL, NULL,
                                     BDRV_O_PROTOCOL | BDRV_O_RDWR,
                                     &error_abort);

    g_assert_cmpstr(bs->drv->format_name, ==, "blkdebug");
    g_assert_true(bdrv_skip_filters(bs) == bs->file->bs);
    g_assert_cmpint(bdrv_getlength(bs), ==, 1 * MiB);
    bdrv_unref(bs);
}

int main(int argc, char **argv)
{
    int fd, ret;

    g_test_init(&argc, &argv, NULL);
    qemu_get_aio_context();
    bdrv_init();
    test_dir = g_dir_make_tmp("test-blkdebug-XXXXXX", NULL);
    g_assert(test_dir);
    image = g_build_filename(test_dir, "image.raw", NULL);
    fd = open(image, O_RDWR | O_CREAT | O_TRUNC, 0644);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, 1 * MiB), ==, 0);
    close(fd);

    g_test_add_func("/blkdebug/read-eio-always", test_read_eio_always);
    g_test_add_func("/blkdebug/read-eio-once", test_read_eio_once);
    g_test_add_func("/blkdebug/write-enospc", test_write_enospc);
    g_test_add_func("/blkdebug/write-once-immediately",
                    test_write_once_immediately);
    g_test_add_func("/blkdebug/sector-and-iotype", test_sector_and_iotype);
    g_test_add_func("/blkdebug/set-state", test_set_state);
    g_test_add_func("/blkdebug/options", test_options);
    g_test_add_func("/blkdebug/manual-event", test_manual_event);
    g_test_add_func("/blkdebug/align", test_align);
    g_test_add_func("/blkdebug/breakpoint", test_breakpoint);
    g_test_add_func("/blkdebug/config-errors", test_config_errors);
    g_test_add_func("/blkdebug/empty-config", test_empty_config);

    ret = g_test_run();

    {
        g_autofree char *conf = g_build_filename(test_dir, "blkdebug.conf",
                                                 NULL);

        unlink(conf);
        unlink(image);
        rmdir(test_dir);
    }
    g_free(image);
    g_free(test_dir);
    return ret;
}
