/*
 * qcow2 driver tests through the block API: round trips, allocation and
 * refcount table growth, zero clusters, discard, compression, backing
 * chains, check/repair of damaged images, hostile headers, concurrency,
 * and interoperability with Debian's qemu-img/qemu-io when installed.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/block.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "page-cache.h"

#include <linux/falloc.h>

static char *tmpdir;

static char *tmp_path(const char *name)
{
    return g_build_filename(tmpdir, name, NULL);
}

/* ---- helpers ---- */

static void create_image(const char *path, uint64_t size, const char *extra)
{
    QDict *opts = qdict_new();
    Error *err = NULL;
    int ret;

    qdict_put_int(opts, "size", size);
    if (extra) {
        QDict *more = keyval_parse(extra, NULL, &error_abort);
        GList *keys = qdict_keys(more), *l;
        for (l = keys; l; l = l->next) {
            qdict_put_str(opts, l->data, qdict_get_try_str(more, l->data));
        }
        g_list_free(keys);
        qobject_unref(more);
    }
    ret = bdrv_create(bdrv_find_format("qcow2"), path, opts, &err);
    if (err) {
        g_printerr("create: %s\n", error_get_pretty(err));
    }
    g_assert_null(err);
    g_assert_cmpint(ret, ==, 0);
    qobject_unref(opts);
}

static BlockBackend *open_image_opts(const char *path, int flags,
                                     const char *extra, Error **errp)
{
    QDict *opts = extra ? keyval_parse(extra, NULL, &error_abort)
                        : qdict_new();

    qdict_put_str(opts, "driver", "qcow2");
    return blk_new_open(path, NULL, opts, flags, errp);
}

static BlockBackend *open_image(const char *path, int flags)
{
    Error *err = NULL;
    BlockBackend *blk = open_image_opts(path, flags, NULL, &err);

    if (!blk) {
        g_printerr("open: %s\n", error_get_pretty(err));
    }
    g_assert_nonnull(blk);
    return blk;
}

static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
    size_t i;

    for (i = 0; i < len; i++) {
        buf[i] = (uint8_t)((i + seed) * 31 + (seed >> 3));
    }
}

static void assert_pattern(BlockBackend *blk, int64_t off, size_t len,
                           uint64_t seed)
{
    uint8_t *want = g_malloc(len), *got = g_malloc(len);

    fill(want, len, seed);
    g_assert_cmpint(blk_pread(blk, off, len, got, 0), ==, 0);
    g_assert(memcmp(want, got, len) == 0);
    g_free(want);
    g_free(got);
}

static void assert_byte(BlockBackend *blk, int64_t off, size_t len, int c)
{
    uint8_t *got = g_malloc(len);
    size_t i;

    g_assert_cmpint(blk_pread(blk, off, len, got, 0), ==, 0);
    for (i = 0; i < len; i++) {
        if (got[i] != c) {
            g_error("byte at %" PRId64 " is %#x, want %#x", off + (int64_t)i,
                    got[i], c);
        }
    }
    g_free(got);
}

static void write_pattern(BlockBackend *blk, int64_t off, size_t len,
                          uint64_t seed)
{
    uint8_t *buf = g_malloc(len);

    fill(buf, len, seed);
    g_assert_cmpint(blk_pwrite(blk, off, len, buf, 0), ==, 0);
    g_free(buf);
}

/* A 1 MiB image (a backing file) filled with the pattern of @seed. */
static void create_filled_base(const char *path, uint64_t seed)
{
    BlockBackend *blk;

    create_image(path, 1 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 1 * MiB, seed);
    blk_unref(blk);
}

static BdrvCheckResult check_image(const char *path, BdrvCheckMode fix)
{
    BdrvCheckResult res = { 0 };
    BlockBackend *blk = open_image(path, BDRV_O_CHECK |
                                   (fix ? BDRV_O_RDWR : 0));

    bdrv_check(blk_bs(blk), &res, fix);
    blk_unref(blk);
    return res;
}

static void assert_clean(const char *path)
{
    BdrvCheckResult res = check_image(path, 0);

    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    g_assert_cmpint(res.check_errors, ==, 0);
}

static bool have_qemu(void)
{
    char *p = g_find_program_in_path("qemu-img");
    char *q = g_find_program_in_path("qemu-io");
    bool ok = p && q;

    g_free(p);
    g_free(q);
    return ok;
}

/* Runs a command; returns its exit status, output in *out if non-NULL. */
static int run(char **out, const char *fmt, ...) QEMU_PRINTF(2, 3);
static int run(char **out, const char *fmt, ...)
{
    va_list ap;
    char *cmd, *sout = NULL, *serr = NULL;
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", NULL, NULL };
    int status = -1;

    va_start(ap, fmt);
    cmd = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    argv[2] = cmd;
    g_assert(g_spawn_sync(NULL, argv, NULL, 0, NULL, NULL, &sout, &serr,
                          &status, NULL));
    if (status) {
        g_printerr("'%s' failed:\n%s%s", cmd, sout, serr);
    }
    if (out) {
        *out = sout;
    } else {
        g_free(sout);
    }
    g_free(serr);
    g_free(cmd);
    return g_spawn_check_wait_status(status, NULL) ? 0 : 1;
}

static void assert_qemu_check_clean(const char *path)
{
    if (have_qemu()) {
        g_assert_cmpint(run(NULL, "qemu-img check -f qcow2 '%s'", path),
                        ==, 0);
    }
}

static void file_pwrite(const char *path, off_t off, const void *buf,
                        size_t len)
{
    int fd = open(path, O_RDWR);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, buf, len, off), ==, (ssize_t)len);
    close(fd);
}

static void file_pread(const char *path, off_t off, void *buf, size_t len)
{
    int fd = open(path, O_RDONLY);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pread(fd, buf, len, off), ==, (ssize_t)len);
    close(fd);
}

static uint64_t file_be64(const char *path, off_t off)
{
    uint64_t v;

    file_pread(path, off, &v, 8);
    return GUINT64_FROM_BE(v);
}

static void file_put_be64(const char *path, off_t off, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    file_pwrite(path, off, &v, 8);
}

static void file_put_be32(const char *path, off_t off, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    file_pwrite(path, off, &v, 4);
}

/* ---- tests ---- */

static void test_create_matches_qemu(void)
{
    char *ours = tmp_path("create-ours.qcow2");
    char *theirs = tmp_path("create-theirs.qcow2");
    char *a = NULL, *b = NULL;
    gsize alen, blen;

    create_image(ours, 64 * MiB, NULL);
    assert_clean(ours);
    if (!have_qemu()) {
        g_test_skip("qemu-img not installed");
        goto out;
    }
    g_assert_cmpint(run(NULL, "qemu-img create -q -f qcow2 '%s' 64M",
                        theirs), ==, 0);
    g_assert(g_file_get_contents(ours, &a, &alen, NULL));
    g_assert(g_file_get_contents(theirs, &b, &blen, NULL));
    g_assert_cmpuint(alen, ==, blen);
    g_assert(memcmp(a, b, alen) == 0);
    assert_qemu_check_clean(ours);
out:
    g_free(a);
    g_free(b);
    g_free(ours);
    g_free(theirs);
}

static void test_roundtrip(void)
{
    char *path = tmp_path("rt.qcow2");
    BlockBackend *blk;

    create_image(path, 16 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 4096, 1);
    write_pattern(blk, 100000, 200000, 2);        /* unaligned, 4 clusters */
    write_pattern(blk, 16 * MiB - 3000, 3000, 3); /* the very end */
    write_pattern(blk, 5 * MiB + 7, 65536, 4);    /* straddles two clusters */
    write_pattern(blk, 5 * MiB + 1000, 10, 5);    /* overwrite in place */
    assert_pattern(blk, 0, 4096, 1);
    assert_pattern(blk, 100000, 200000, 2);
    assert_byte(blk, 4096, 100000 - 4096, 0);
    assert_byte(blk, 8 * MiB, 4096, 0);
    assert_pattern(blk, 5 * MiB + 1000, 10, 5);
    assert_pattern(blk, 5 * MiB + 7, 993, 4);
    blk_unref(blk);

    /* Reopen: everything came from the disk. */
    blk = open_image(path, 0);
    assert_pattern(blk, 0, 4096, 1);
    assert_pattern(blk, 100000, 200000, 2);
    assert_pattern(blk, 16 * MiB - 3000, 3000, 3);
    assert_pattern(blk, 5 * MiB + 1000, 10, 5);
    blk_unref(blk);
    assert_clean(path);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_reftable_growth(gconstpointer opaque)
{
    const char *opts = opaque;
    char *path = tmp_path("grow.qcow2");
    BlockBackend *blk;
    BdrvCheckResult res;
    int i;

    /* 512-byte clusters: one refcount table cluster covers few clusters. */
    create_image(path, 64 * MiB, opts);
    blk = open_image(path, BDRV_O_RDWR);
    for (i = 0; i < 200; i++) {
        write_pattern(blk, (int64_t)i * 300 * 1024, 64 * 1024, i);
    }
    for (i = 0; i < 200; i++) {
        assert_pattern(blk, (int64_t)i * 300 * 1024, 64 * 1024, i);
    }
    blk_unref(blk);
    blk = open_image(path, 0);
    for (i = 0; i < 200; i += 7) {
        assert_pattern(blk, (int64_t)i * 300 * 1024, 64 * 1024, i);
    }
    blk_unref(blk);
    /* 16/64-bit: 12.5 MiB of data needs more than one table cluster. */
    if (!strstr(opts, "refcount_bits=1")) {
        g_assert_cmpuint(file_be64(path, 48), !=, 512);
    }
    res = check_image(path, 0);
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    g_assert_cmpuint(res.bfi.allocated_clusters, ==, 200 * 128);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_zero_clusters(void)
{
    char *path = tmp_path("zero.qcow2");
    BlockBackend *blk;
    int64_t pnum, map;
    BlockDriverState *file;
    int ret;

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 1 * MiB, 9);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 64 * KiB, 128 * KiB, 0), ==, 0);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 300 * KiB, 1000, 0), ==, 0);
    assert_pattern(blk, 0, 64 * KiB, 9);
    assert_byte(blk, 64 * KiB, 128 * KiB, 0);
    assert_byte(blk, 300 * KiB, 1000, 0);
    ret = bdrv_block_status(blk_bs(blk), 64 * KiB, 128 * KiB, &pnum, &map,
                            &file);
    g_assert_cmpint(ret, >=, 0);
    g_assert(ret & BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 128 * KiB);
    /* Unmapping zero write frees the cluster. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 512 * KiB, 64 * KiB,
                                      BDRV_REQ_MAY_UNMAP), ==, 0);
    assert_byte(blk, 512 * KiB, 64 * KiB, 0);
    /* Writing into a zero cluster again. */
    write_pattern(blk, 64 * KiB + 100, 100, 10);
    assert_pattern(blk, 64 * KiB + 100, 100, 10);
    assert_byte(blk, 64 * KiB, 100, 0);
    assert_byte(blk, 64 * KiB + 200, 64 * KiB - 200, 0);
    blk_unref(blk);
    assert_clean(path);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_discard(void)
{
    char *path = tmp_path("discard.qcow2");
    BlockBackend *blk;
    BdrvCheckResult res;
    int64_t pnum;

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR | BDRV_O_UNMAP);
    write_pattern(blk, 0, 2 * MiB, 11);
    g_assert_cmpint(blk_pdiscard(blk, 64 * KiB, 1 * MiB), ==, 0);
    assert_byte(blk, 64 * KiB, 1 * MiB, 0);
    assert_pattern(blk, 0, 64 * KiB, 11);
    /* As in QEMU, v3 leaves zero clusters: defined here, reading zeroes. */
    g_assert_cmpint(bdrv_block_status(blk_bs(blk), 64 * KiB, 1 * MiB, &pnum,
                                      NULL, NULL) &
                    (BDRV_BLOCK_ZERO | BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED),
                    ==, BDRV_BLOCK_ZERO | BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 1 * MiB);
    /* The freed clusters are reused by the next allocation. */
    write_pattern(blk, 3 * MiB, 64 * KiB, 12);
    blk_unref(blk);
    res = check_image(path, 0);
    g_assert_cmpint(res.leaks + res.corruptions, ==, 0);
    g_assert_cmpuint(res.bfi.allocated_clusters, ==, 32 - 16 + 1);
    g_assert_cmpint(res.image_end_offset, <=, (4 + 1 + 32) * 64 * KiB);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_compressed(void)
{
    char *path = tmp_path("compr.qcow2");
    BlockBackend *blk;
    uint8_t *buf = g_malloc(64 * KiB);
    BdrvCheckResult res;
    int i;

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    for (i = 0; i < 8; i++) {
        memset(buf, 'a' + i, 64 * KiB);
        memcpy(buf + 1000, "hello", 5);
        g_assert_cmpint(blk_pwrite_compressed(blk, i * 64 * KiB, 64 * KiB,
                                              buf), ==, 0);
    }
    /* Incompressible data falls back to a normal cluster. */
    {
        GRand *r = g_rand_new_with_seed(77);
        for (i = 0; i < 64 * KiB; i++) {
            buf[i] = g_rand_int(r);
        }
        g_rand_free(r);
    }
    g_assert_cmpint(blk_pwrite_compressed(blk, 1 * MiB, 64 * KiB, buf),
                    ==, 0);
    for (i = 0; i < 8; i++) {
        assert_byte(blk, i * 64 * KiB, 1000, 'a' + i);
        assert_byte(blk, i * 64 * KiB + 1005, 64 * KiB - 1005, 'a' + i);
    }
    {
        uint8_t *got = g_malloc(64 * KiB);
        g_assert_cmpint(blk_pread(blk, 1 * MiB, 64 * KiB, got, 0), ==, 0);
        g_assert(memcmp(got, buf, 64 * KiB) == 0);
        g_free(got);
    }
    /* Partial overwrite of a compressed cluster: copy-on-write. */
    write_pattern(blk, 3 * 64 * KiB + 10, 20, 5);
    assert_byte(blk, 3 * 64 * KiB, 10, 'a' + 3);
    assert_pattern(blk, 3 * 64 * KiB + 10, 20, 5);
    assert_byte(blk, 3 * 64 * KiB + 30, 970, 'a' + 3);
    blk_unref(blk);
    res = check_image(path, 0);
    g_assert_cmpint(res.leaks + res.corruptions, ==, 0);
    g_assert_cmpuint(res.bfi.compressed_clusters, ==, 7);
    assert_qemu_check_clean(path);
    if (have_qemu()) {
        g_assert_cmpint(run(NULL, "qemu-io -f qcow2 -c 'read -P 0x61 0 1000' "
                            "-c 'read -P 0x68 458752 1000' '%s'", path),
                        ==, 0);
    }
    g_free(buf);
    g_free(path);
}

static void test_backing(void)
{
    char *base = tmp_path("base.qcow2");
    char *top = tmp_path("top.qcow2");
    BlockBackend *blk;
    char *opts;

    create_filled_base(base, 21);

    /* The overlay is larger than its base: reads past it are zero. */
    opts = g_strdup_printf("backing_file=%s,backing_fmt=qcow2", base);
    create_image(top, 2 * MiB, opts);
    g_free(opts);
    blk = open_image(top, BDRV_O_RDWR);
    g_assert_nonnull(blk_bs(blk)->backing);
    assert_pattern(blk, 0, 1 * MiB, 21);
    assert_byte(blk, 1 * MiB, 1 * MiB, 0);
    /* Partial cluster writes copy the rest from the backing file. */
    write_pattern(blk, 70000, 100, 22);
    write_pattern(blk, 1 * MiB - 50, 100, 23);
    blk_unref(blk);

    blk = open_image(top, 0);
    {
        uint8_t *want = g_malloc(1 * MiB), *got = g_malloc(1 * MiB);
        fill(want, 1 * MiB, 21);
        g_assert_cmpint(blk_pread(blk, 0, 1 * MiB, got, 0), ==, 0);
        g_assert(memcmp(got, want, 70000) == 0);
        g_assert(memcmp(got + 70100, want + 70100, 1 * MiB - 50 - 70100)
                 == 0);
        g_free(want);
        g_free(got);
    }
    assert_pattern(blk, 70000, 100, 22);
    assert_pattern(blk, 1 * MiB - 50, 100, 23);
    assert_byte(blk, 1 * MiB + 50, 1 * MiB - 50, 0);
    blk_unref(blk);

    /* A discard in an overlay must not expose backing data again. */
    blk = open_image(top, BDRV_O_RDWR | BDRV_O_UNMAP);
    g_assert_cmpint(blk_pdiscard(blk, 64 * KiB, 64 * KiB), ==, 0);
    assert_byte(blk, 64 * KiB, 64 * KiB, 0);
    blk_unref(blk);
    assert_clean(top);
    assert_qemu_check_clean(top);
    if (have_qemu()) {
        g_assert_cmpint(run(NULL, "qemu-io -f qcow2 -c 'read -P 0 1048626 "
                            "1048526' '%s'", top), ==, 0);
    }
    g_free(base);
    g_free(top);
}

/*
 * A new L2 table brings the missing tables of its aligned group of eight
 * L1 entries with it, empty: they must read as unallocated (the backing
 * file shows through), and the image must stay clean for both checkers.
 */
/* Host offset of the (contiguous) data of guest [off, off + len). */
static int64_t host_offset(BlockBackend *blk, int64_t off, int64_t len)
{
    BlockDriverState *file;
    int64_t pnum, map;
    int ret = bdrv_block_status(blk_bs(blk), off, len, &pnum, &map, &file);

    g_assert_cmpint(ret, >=, 0);
    g_assert_true(ret & BDRV_BLOCK_OFFSET_VALID);
    g_assert_cmpint(pnum, ==, len);
    return map;
}

/*
 * qcow2 hands BDRV_REQ_DONTCACHE on with guest data, on both write paths
 * (new clusters and clusters written in place): the data leaves the
 * host's page cache once flushed.
 */
static void test_dontcache(void)
{
    char *path = tmp_path("dontcache.qcow2");
    const int64_t len = 2 * MiB;
    const int64_t pages = len / sysconf(_SC_PAGESIZE);
    uint8_t *buf = g_malloc(len);
    BlockBackend *blk;
    int64_t a, b;
    int fd;

    create_image(path, 4 * MiB, NULL);
    if (!page_cache_has_dontcache(path)) {
        g_test_skip("no RWF_DONTCACHE here (Linux before 6.14?)");
        goto out;
    }
    blk = open_image(path, BDRV_O_RDWR);
    g_assert_true(blk_bs(blk)->supported_write_flags & BDRV_REQ_DONTCACHE);

    fill(buf, len, 51);
    g_assert_cmpint(blk_pwrite(blk, 0, len, buf, BDRV_REQ_DONTCACHE), ==, 0);
    write_pattern(blk, len, len, 52);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    a = host_offset(blk, 0, len);
    b = host_offset(blk, len, len);
    g_assert_cmpint(page_cache_resident(path, a, len), <, pages / 2);
    g_assert_cmpint(page_cache_resident(path, b, len), >, pages / 2);

    /*
     * In place now.  The kernel drops only pages of blocks the write
     * allocates (Linux 6.18, ext4), so make the range a hole first; the
     * cluster stays allocated in qcow2.
     */
    fd = open(path, O_RDWR);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              b, len), ==, 0);
    close(fd);
    fill(buf, len, 53);
    g_assert_cmpint(blk_pwrite(blk, len, len, buf, BDRV_REQ_DONTCACHE), ==,
                    0);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    g_assert_cmpint(host_offset(blk, len, len), ==, b);
    g_assert_cmpint(page_cache_resident(path, b, len), <, pages / 2);

    assert_pattern(blk, 0, len, 51);
    assert_pattern(blk, len, len, 53);
    blk_unref(blk);
out:
    g_free(buf);
    g_free(path);
}

static void test_l2_group_alloc(void)
{
    char *base = tmp_path("group-base.qcow2");
    char *top = tmp_path("group-top.qcow2");
    /* 512-byte clusters: one L2 table maps 32 KiB, 1 MiB needs 32. */
    const int64_t l2_span = 32 * KiB;
    BlockBackend *blk;
    uint64_t l1_offset;
    int64_t pnum;
    char *opts;
    int i;

    create_filled_base(base, 41);

    opts = g_strdup_printf("backing_file=%s,backing_fmt=qcow2,"
                           "cluster_size=512", base);
    create_image(top, 1 * MiB, opts);
    g_free(opts);
    blk = open_image(top, BDRV_O_RDWR);
    write_pattern(blk, 9 * l2_span + 1024, 512, 42);
    blk_unref(blk);

    l1_offset = file_be64(top, 40);
    for (i = 0; i < 32; i++) {
        uint64_t l2 = file_be64(top, l1_offset + i * 8) & 0x00fffffffffffe00;

        if (i >= 8 && i < 16) {
            g_assert_cmpuint(l2, !=, 0);
        } else {
            g_assert_cmpuint(l2, ==, 0);
        }
    }

    blk = open_image(top, 0);
    g_assert_cmpint(bdrv_is_allocated(blk_bs(blk), 8 * l2_span, l2_span,
                                      &pnum), ==, 0);
    g_assert_cmpint(pnum, ==, l2_span);
    g_assert_cmpint(bdrv_is_allocated(blk_bs(blk), 9 * l2_span + 1024, 512,
                                      &pnum), ==, 1);
    {
        uint8_t *want = g_malloc(1 * MiB), *got = g_malloc(1 * MiB);

        fill(want, 1 * MiB, 41);
        fill(want + 9 * l2_span + 1024, 512, 42);
        g_assert_cmpint(blk_pread(blk, 0, 1 * MiB, got, 0), ==, 0);
        g_assert(memcmp(got, want, 1 * MiB) == 0);
        g_free(want);
        g_free(got);
    }
    blk_unref(blk);
    assert_clean(top);
    assert_qemu_check_clean(top);
    if (have_qemu()) {
        char *out = NULL;

        /* Real QEMU sees one allocated cluster in the top layer. */
        g_assert_cmpint(run(&out, "qemu-img map -f qcow2 --output=json "
                            "'%s' | grep -c '\"depth\": 0'", top), ==, 0);
        g_assert_cmpstr(g_strstrip(out), ==, "1");
        g_free(out);
    }
    g_free(base);
    g_free(top);
}

/*
 * The first zeroed table of the group fails to write: the guest write
 * fails, every cluster taken for it is given back, and a retry works.
 */
static void test_l2_group_alloc_error(void)
{
    char *top = tmp_path("group-err.qcow2");
    g_autofree char *json = NULL;
    BlockBackend *blk;
    Error *err = NULL;

    create_image(top, 1 * MiB, "cluster_size=512");
    json = g_strdup_printf(
        "{\"driver\": \"qcow2\", \"file\": {\"driver\": \"blkdebug\", "
        "\"inject-error\": [{\"event\": \"l2_alloc_write\", "
        "\"once\": true}], \"image\": {\"driver\": \"file\", "
        "\"filename\": \"%s\"}}}", top);
    blk = blk_new_open(NULL, NULL, qdict_from_json(json, &err), BDRV_O_RDWR,
                       &err);
    g_assert_null(err);
    {
        uint8_t buf[512];

        fill(buf, sizeof(buf), 43);
        g_assert_cmpint(blk_pwrite(blk, 9 * 32 * KiB, 512, buf, 0), ==,
                        -EIO);
    }
    write_pattern(blk, 9 * 32 * KiB, 512, 43);
    assert_pattern(blk, 9 * 32 * KiB, 512, 43);
    assert_byte(blk, 8 * 32 * KiB, 32 * KiB, 0);
    blk_unref(blk);
    assert_clean(top);
    assert_qemu_check_clean(top);
    g_free(top);
}

static void test_check_leak_and_repair(void)
{
    char *path = tmp_path("leak.qcow2");
    BlockBackend *blk;
    BdrvCheckResult res;
    uint16_t one = GUINT16_TO_BE(1);

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 128 * KiB, 31);
    blk_unref(blk);
    /* Clusters 0..5 are in use (hdr, reftable, refblock, L1, L2, 2 data
     * = 0..6); mark cluster 20 as used: a leak. */
    file_pwrite(path, 2 * 64 * KiB + 20 * 2, &one, 2);
    res = check_image(path, 0);
    g_assert_cmpint(res.leaks, ==, 1);
    g_assert_cmpint(res.corruptions, ==, 0);
    res = check_image(path, BDRV_FIX_LEAKS);
    g_assert_cmpint(res.leaks_fixed, ==, 1);
    g_assert_cmpint(res.leaks, ==, 0);
    assert_clean(path);
    assert_qemu_check_clean(path);

    /* Refcount too low for a used data cluster: a corruption. */
    file_pwrite(path, 2 * 64 * KiB + 5 * 2, "\0\0", 2);
    res = check_image(path, 0);
    g_assert_cmpint(res.corruptions, >=, 1);
    res = check_image(path, BDRV_FIX_ERRORS | BDRV_FIX_LEAKS);
    g_assert_cmpint(res.corruptions_fixed, >=, 1);
    assert_clean(path);
    blk = open_image(path, 0);
    assert_pattern(blk, 0, 128 * KiB, 31);
    blk_unref(blk);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_corrupt_l2_entry(void)
{
    char *path = tmp_path("badl2.qcow2");
    BlockBackend *blk;
    BdrvCheckResult res;
    uint64_t l2_offset, e;
    uint8_t buf[512];
    Error *err = NULL;

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 64 * KiB, 41);
    blk_unref(blk);
    l2_offset = file_be64(path, 3 * 64 * KiB) & 0x00fffffffffffe00ULL;
    e = file_be64(path, l2_offset);
    file_put_be64(path, l2_offset, e + 512);   /* misaligned data offset */

    res = check_image(path, 0);
    g_assert_cmpint(res.corruptions, >=, 1);

    blk = open_image(path, 0);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -EIO);
    blk_unref(blk);

    /* Read-write: the image gets marked corrupt and refuses RW opens. */
    blk = open_image(path, BDRV_O_RDWR);
    g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), <, 0);
    blk_unref(blk);
    g_assert_cmpuint(file_be64(path, 72) & 2, ==, 2);
    blk = open_image_opts(path, BDRV_O_RDWR, NULL, &err);
    g_assert_null(blk);
    g_assert_nonnull(strstr(error_get_pretty(err), "corrupt"));
    error_free(err);
    g_free(path);
}

static void test_hostile_headers(void)
{
    char *path = tmp_path("hostile.qcow2");
    static const struct {
        off_t off;
        int width;
        uint64_t value;
        const char *msg;
    } cases[] = {
        { 0, 4, 0x12345678, "Image is not in qcow2 format" },
        { 4, 4, 4, "Unsupported qcow2 version 4" },
        { 4, 4, 1, "Unsupported qcow2 version 1" },
        { 20, 4, 30, "Unsupported cluster size" },
        { 20, 4, 8, "Unsupported cluster size" },
        { 36, 4, 0x40000000, "Active L1 table too large" },
        { 36, 4, 0, "L1 table is too small" },
        { 40, 8, 12345, "Active L1 table offset invalid" },
        { 48, 8, 0, "Reference count table offset invalid" },
        { 48, 8, 1000, "Reference count table offset invalid" },
        { 56, 4, 0x100000, "Reference count table too large" },
        { 56, 4, 0, "Image does not contain a reference count table" },
        { 72, 8, 1ULL << 40, "Unsupported qcow2 feature(s): Unknown "
                             "incompatible feature: 10000000000" },
        { 72, 8, 1ULL << 2, "Unsupported qcow2 feature(s): external data "
                            "file" },
        { 96, 4, 7, "Reference count entry width too large" },
        { 100, 4, 50, "qcow2 header too short" },
        { 100, 4, 1 << 20, "qcow2 header exceeds cluster size" },
        { 32, 4, 1, "Encrypted qcow2 images are not supported" },
        { 8, 8, 1 << 20, "Invalid backing file offset" },
        { 24, 8, 1ULL << 62, "Image is too big" },
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        BlockBackend *blk;
        Error *err = NULL;

        unlink(path);
        create_image(path, 1 * MiB, NULL);
        if (cases[i].width == 4) {
            file_put_be32(path, cases[i].off, cases[i].value);
        } else {
            file_put_be64(path, cases[i].off, cases[i].value);
        }
        blk = open_image_opts(path, 0, NULL, &err);
        g_assert_null(blk);
        g_assert_nonnull(err);
        if (!strstr(error_get_pretty(err), cases[i].msg)) {
            g_error("case %zu: got '%s', want '%s'", i,
                    error_get_pretty(err), cases[i].msg);
        }
        error_free(err);
    }

    /* A truncated file. */
    {
        BlockBackend *blk;
        Error *err = NULL;
        g_assert_cmpint(truncate(path, 40), ==, 0);
        blk = open_image_opts(path, 0, NULL, &err);
        g_assert_null(blk);
        error_free(err);
    }

    /* L1 table past the end of the file reads as unallocated. */
    {
        BlockBackend *blk;
        uint8_t buf[512];
        unlink(path);
        create_image(path, 1 * MiB, NULL);
        file_put_be64(path, 40, 1ULL << 30);
        blk = open_image_opts(path, 0, NULL, NULL);
        if (blk) {
            blk_pread(blk, 0, sizeof(buf), buf, 0);
            blk_unref(blk);
        }
    }
    g_free(path);
}

static void test_unknown_ext_preserved(void)
{
    char *path = tmp_path("ext.qcow2");
    BlockBackend *blk;
    uint8_t hdr[1024], after[1024];
    uint8_t ext[16] = { 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 5,
                        'h', 'e', 'l', 'l', 'o', 0, 0, 0 };
    size_t pos;

    create_image(path, 1 * MiB, NULL);
    /* Insert an unknown extension right after the 112-byte header. */
    file_pread(path, 0, hdr, sizeof(hdr));
    memmove(hdr + 112 + 16, hdr + 112, sizeof(hdr) - 112 - 16);
    memcpy(hdr + 112, ext, 16);
    file_pwrite(path, 0, hdr, sizeof(hdr));
    /* Set a bitmaps-style autoclear bit: cleared on read-write open. */
    file_put_be64(path, 88, 1);

    blk = open_image(path, BDRV_O_RDWR);
    blk_unref(blk);
    file_pread(path, 0, after, sizeof(after));
    g_assert_cmpuint(file_be64(path, 88), ==, 0);
    for (pos = 112; pos + 16 <= sizeof(after); pos += 8) {
        if (!memcmp(after + pos, ext, 16)) {
            break;
        }
    }
    g_assert_cmpuint(pos + 16, <=, sizeof(after));
    assert_clean(path);
    g_free(path);
}

typedef struct ConcurrentWrite {
    BlockBackend *blk;
    int64_t offset;
    size_t len;
    uint64_t seed;
    int *pending;
    int ret;
    QEMUIOVector qiov;
    uint8_t *buf;
} ConcurrentWrite;

static void concurrent_done(void *opaque, int ret)
{
    ConcurrentWrite *w = opaque;

    w->ret = ret;
    (*w->pending)--;
}

static void test_concurrent_writes(void)
{
    char *path = tmp_path("conc.qcow2");
    BlockBackend *blk;
    enum { N = 64 };
    ConcurrentWrite w[N];
    int pending = N, i;

    create_image(path, 16 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    /* Many small writes into the same few clusters, all in flight. */
    for (i = 0; i < N; i++) {
        w[i].blk = blk;
        w[i].offset = (i % 16) * 8192 + (i / 16) * 1 * MiB;
        w[i].len = 8192;
        w[i].seed = 100 + i;
        w[i].pending = &pending;
        w[i].buf = g_malloc(w[i].len);
        fill(w[i].buf, w[i].len, w[i].seed);
        qemu_iovec_init_buf(&w[i].qiov, w[i].buf, w[i].len);
        blk_aio_pwritev(blk, w[i].offset, &w[i].qiov, 0, concurrent_done,
                        &w[i]);
    }
    while (pending) {
        aio_poll(qemu_get_aio_context(), true);
    }
    for (i = 0; i < N; i++) {
        g_assert_cmpint(w[i].ret, ==, 0);
    }
    for (i = 0; i < N; i++) {
        assert_pattern(blk, w[i].offset, w[i].len, w[i].seed);
        g_free(w[i].buf);
    }
    blk_unref(blk);
    {
        BdrvCheckResult res = check_image(path, 0);
        g_assert_cmpint(res.leaks + res.corruptions, ==, 0);
        /* 16 * 8 KiB = 2 clusters per MiB region, 4 regions. */
        g_assert_cmpuint(res.bfi.allocated_clusters, ==, 8);
    }
    g_free(path);
}

static void test_dirty_repair(void)
{
    char *path = tmp_path("dirty.qcow2");
    BlockBackend *blk;
    BlockDriverInfo bdi;
    uint16_t one = GUINT16_TO_BE(1);

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 64 * KiB, 51);
    blk_unref(blk);
    file_pwrite(path, 2 * 64 * KiB + 30 * 2, &one, 2);
    file_put_be64(path, 72, 1);     /* dirty bit */

    blk = open_image(path, 0);
    g_assert_cmpint(bdrv_get_info(blk_bs(blk), &bdi), ==, 0);
    g_assert_true(bdi.is_dirty);
    blk_unref(blk);

    blk = open_image(path, BDRV_O_RDWR);
    g_assert_cmpint(bdrv_get_info(blk_bs(blk), &bdi), ==, 0);
    g_assert_false(bdi.is_dirty);
    assert_pattern(blk, 0, 64 * KiB, 51);
    blk_unref(blk);
    g_assert_cmpuint(file_be64(path, 72), ==, 0);
    assert_clean(path);
    g_free(path);
}

static void test_v2_image(void)
{
    char *path = tmp_path("v2.qcow2");
    BlockBackend *blk;
    JsonNode *info;
    char *json;

    create_image(path, 4 * MiB, "compat=0.10");
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 256 * KiB, 61);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 64 * KiB, 64 * KiB, 0), ==, 0);
    assert_byte(blk, 64 * KiB, 64 * KiB, 0);
    info = bdrv_get_specific_info(blk_bs(blk), &error_abort);
    json = json_to_string(info, false);
    g_assert_cmpstr(json, ==, "{\"type\":\"qcow2\",\"data\":{\"compat\":"
                    "\"0.10\",\"compression-type\":\"zlib\","
                    "\"refcount-bits\":16}}");
    g_free(json);
    json_node_unref(info);
    blk_unref(blk);
    assert_clean(path);
    assert_qemu_check_clean(path);

    /* Upgrade to v3 and back. */
    blk = open_image(path, BDRV_O_RDWR);
    {
        QDict *o = qdict_new();
        qdict_put_str(o, "compat", "1.1");
        g_assert_cmpint(bdrv_amend_options(blk_bs(blk), o, false,
                                           &error_abort), ==, 0);
        qobject_unref(o);
        g_assert_cmpint(blk_pwrite_zeroes(blk, 128 * KiB, 64 * KiB, 0),
                        ==, 0);
        o = qdict_new();
        qdict_put_str(o, "compat", "0.10");
        g_assert_cmpint(bdrv_amend_options(blk_bs(blk), o, false,
                                           &error_abort), ==, 0);
        qobject_unref(o);
    }
    blk_unref(blk);
    g_assert_cmpuint(file_be64(path, 0) >> 32, ==, 0x514649fb);
    g_assert_cmpuint(file_be64(path, 0) & 0xffffffff, ==, 2);
    blk = open_image(path, 0);
    assert_byte(blk, 64 * KiB, 128 * KiB, 0);
    assert_pattern(blk, 0, 64 * KiB, 61);
    blk_unref(blk);
    assert_clean(path);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_truncate(void)
{
    char *path = tmp_path("trunc.qcow2");
    BlockBackend *blk;

    create_image(path, 1 * MiB, "cluster_size=4096");
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 1 * MiB, 71);
    /* Grow far enough to need a bigger L1 table. */
    g_assert_cmpint(blk_truncate(blk, 64 * MiB, false, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 64 * MiB);
    write_pattern(blk, 60 * MiB, 8192, 72);
    assert_pattern(blk, 0, 1 * MiB, 71);
    g_assert_cmpint(blk_truncate(blk, 512 * KiB, false, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 512 * KiB);
    assert_pattern(blk, 0, 512 * KiB, 71);
    blk_unref(blk);
    assert_clean(path);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_prealloc_metadata(void)
{
    char *path = tmp_path("prealloc.qcow2");
    BdrvCheckResult res;

    create_image(path, 8 * MiB, "preallocation=metadata");
    res = check_image(path, 0);
    g_assert_cmpint(res.leaks + res.corruptions, ==, 0);
    g_assert_cmpuint(res.bfi.allocated_clusters, ==, 128);
    g_assert_cmpint(res.image_end_offset, ==, 8 * MiB + 5 * 64 * KiB);
    assert_qemu_check_clean(path);
    g_free(path);
}

static void test_measure(void)
{
    BlockMeasureInfo info;
    QDict *opts = qdict_new();

    qdict_put_int(opts, "size", 1 * GiB);
    g_assert_cmpint(bdrv_measure(bdrv_find_format("qcow2"), opts, NULL,
                                 &info, &error_abort), ==, 0);
    /* The numbers real qemu-img measure prints for 1G. */
    g_assert_cmpuint(info.required, ==, 393216);
    g_assert_cmpuint(info.fully_allocated, ==, 1074135040);
    qobject_unref(opts);
}

static void test_qemu_written_image(void)
{
    char *path = tmp_path("qemu.qcow2");
    BlockBackend *blk;
    uint8_t *buf;

    if (!have_qemu()) {
        g_test_skip("qemu-img/qemu-io not installed");
        g_free(path);
        return;
    }
    g_assert_cmpint(run(NULL, "qemu-img create -q -f qcow2 -o "
                        "cluster_size=4096,refcount_bits=1 '%s' 8M", path),
                    ==, 0);
    g_assert_cmpint(run(NULL, "qemu-io -f qcow2 -c 'write -P 0x11 0 100k' "
                        "-c 'write -P 0x22 1M 4k' -c 'write -z 4k 8k' "
                        "-c 'write -c -P 0x33 2M 4k' "
                        "-c 'write -P 0x44 3000 1000' '%s'", path), ==, 0);
    blk = open_image(path, 0);
    assert_byte(blk, 0, 3000, 0x11);
    assert_byte(blk, 3000, 1000, 0x44);
    assert_byte(blk, 4000, 96, 0x11);
    assert_byte(blk, 4 * KiB, 8 * KiB, 0);
    assert_byte(blk, 12 * KiB, 100 * KiB - 12 * KiB, 0x11);
    assert_byte(blk, 100 * KiB, 1 * MiB - 100 * KiB, 0);
    assert_byte(blk, 1 * MiB, 4 * KiB, 0x22);
    assert_byte(blk, 2 * MiB, 4 * KiB, 0x33);
    blk_unref(blk);
    assert_clean(path);

    /* Our writes into their 1-bit-refcount image stay valid for them. */
    blk = open_image(path, BDRV_O_RDWR);
    buf = g_malloc(4 * KiB);
    memset(buf, 0x55, 4 * KiB);
    g_assert_cmpint(blk_pwrite(blk, 5 * MiB, 4 * KiB, buf, 0), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, 2 * MiB + 100, 100, buf, 0), ==, 0);
    g_free(buf);
    blk_unref(blk);
    assert_qemu_check_clean(path);
    g_assert_cmpint(run(NULL, "qemu-io -f qcow2 -c 'read -P 0x55 5M 4k' "
                        "-c 'read -P 0x33 2M 100' -c 'read -P 0x55 2097252 "
                        "100' '%s'", path), ==, 0);
    g_free(path);
}

/*
 * L2 entry @index of the first L2 table of @blk's image @path, and its
 * subcluster bitmap, as on disk after a flush.
 */
static void extl2_entry(BlockBackend *blk, const char *path, int index,
                        uint64_t *entry, uint64_t *bitmap)
{
    uint64_t l1, l2;

    g_assert_cmpint(blk_flush(blk), ==, 0);
    l1 = file_be64(path, 40);
    l2 = file_be64(path, l1) & 0x00fffffffffffe00ULL;
    g_assert_cmpint(l2, !=, 0);
    *entry = file_be64(path, l2 + index * 16);
    *bitmap = file_be64(path, l2 + index * 16 + 8);
}

/* Writes pattern @seed to @blk and to the @model of its contents. */
static void model_write(BlockBackend *blk, uint8_t *model, int64_t off,
                        size_t len, uint64_t seed)
{
    write_pattern(blk, off, len, seed);
    fill(model + off, len, seed);
}

/* Writes zeroes to @blk (without unmapping) and to @model. */
static void model_zero(BlockBackend *blk, uint8_t *model, int64_t off,
                       size_t len)
{
    g_assert_cmpint(blk_pwrite_zeroes(blk, off, len, 0), ==, 0);
    memset(model + off, 0, len);
}

/*
 * Extended L2 entries (64 KiB clusters, 2 KiB subclusters) over a
 * backing file: writes allocate only the subclusters they touch, zero
 * writes set only their subclusters' zero bits, and every part of the
 * disk reads as the model says.
 */
static void test_extended_l2(void)
{
    char *base = tmp_path("xbase.qcow2");
    char *top = tmp_path("xtop.qcow2");
    char *small = tmp_path("xsmall.qcow2");
    uint8_t *model = g_malloc(1 * MiB), *got = g_malloc(1 * MiB);
    uint64_t e, b, host;
    BlockBackend *blk;
    Error *err = NULL;
    QDict *opts;
    char *o;

    create_filled_base(base, 41);
    fill(model, 1 * MiB, 41);

    o = g_strdup_printf("extended_l2=on,backing_file=%s,backing_fmt=qcow2",
                        base);
    create_image(top, 1 * MiB, o);
    g_free(o);
    blk = open_image(top, BDRV_O_RDWR | BDRV_O_UNMAP);
    /* Subclusters 2-3 of cluster 0, in a cluster without a host offset. */
    model_write(blk, model, 4 * KiB, 4 * KiB, 42);
    extl2_entry(blk, top, 0, &e, &b);
    g_assert_cmphex(b, ==, 0xcULL);
    host = e & ~(1ULL << 63);          /* OFLAG_COPIED */
    /* Part of subcluster 16: the rest of it comes from the backing file. */
    model_write(blk, model, 32 * KiB + 512, 1 * KiB, 43);
    extl2_entry(blk, top, 0, &e, &b);
    g_assert_cmphex(b, ==, 0x1000cULL);
    g_assert_cmphex(e, ==, host | (1ULL << 63));
    /* Across clusters 1 and 2: subcluster 31, then 0-2. */
    model_write(blk, model, 126 * KiB, 8 * KiB, 44);
    extl2_entry(blk, top, 1, &e, &b);
    g_assert_cmphex(b, ==, 1ULL << 31);
    extl2_entry(blk, top, 2, &e, &b);
    g_assert_cmphex(b, ==, 0x7ULL);
    /* Whole clusters zeroed and discarded hide the backing file. */
    model_zero(blk, model, 192 * KiB, 64 * KiB);
    extl2_entry(blk, top, 3, &e, &b);
    g_assert_cmphex(b, ==, 0xffffffff00000000ULL);
    g_assert_cmpint(blk_pdiscard(blk, 256 * KiB, 64 * KiB), ==, 0);
    memset(model + 256 * KiB, 0, 64 * KiB);
    /* A write into a zeroed cluster allocates past the zero bits. */
    model_write(blk, model, 194 * KiB, 2 * KiB, 45);
    extl2_entry(blk, top, 3, &e, &b);
    g_assert_cmphex(b, ==, 0xfffffffd00000002ULL);
    /* Zero writes of subclusters, allocated or not, with a host or not. */
    model_zero(blk, model, 4 * KiB, 8 * KiB);
    extl2_entry(blk, top, 0, &e, &b);
    g_assert_cmphex(b, ==, 0x0000003c00010000ULL);
    g_assert_cmphex(e, ==, host | (1ULL << 63));
    model_zero(blk, model, 322 * KiB, 2 * KiB);
    extl2_entry(blk, top, 5, &e, &b);
    g_assert_cmphex(e, ==, 0);
    g_assert_cmphex(b, ==, 0x0000000200000000ULL);
    g_assert_cmpint(blk_pread(blk, 0, 1 * MiB, got, 0), ==, 0);
    g_assert_true(memcmp(got, model, 1 * MiB) == 0);
    blk_unref(blk);

    blk = open_image(top, 0);
    g_assert_cmpint(blk_pread(blk, 0, 1 * MiB, got, 0), ==, 0);
    g_assert_true(memcmp(got, model, 1 * MiB) == 0);
    blk_unref(blk);
    assert_clean(top);
    assert_qemu_check_clean(top);
    if (have_qemu()) {
        char *raw = tmp_path("xmodel.raw");
        g_file_set_contents(raw, (char *)model, 1 * MiB, NULL);
        g_assert_cmpint(run(NULL, "qemu-img compare -f qcow2 -F raw "
                            "'%s' '%s'", top, raw), ==, 0);
        unlink(raw);
        g_free(raw);
    }

    /* Subclusters must be at least 512 bytes, as in QEMU. */
    opts = qdict_new();
    qdict_put_int(opts, "size", 1 * MiB);
    qdict_put_str(opts, "cluster_size", "8k");
    qdict_put_str(opts, "extended_l2", "on");
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), small, opts, &err),
                    <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==, "Extended L2 entries are only "
                    "supported with cluster sizes of at least 16384 bytes");
    error_free(err);
    err = NULL;
    qobject_unref(opts);
    create_image(small, 1 * MiB, "cluster_size=8k");
    file_put_be64(small, 72, 1ULL << 4);    /* extended L2 entries */
    g_assert_null(open_image_opts(small, 0, NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Unsupported subcluster size: 256");
    error_free(err);

    g_free(model);
    g_free(got);
    g_free(base);
    g_free(top);
    g_free(small);
}

static void test_bad_options(void)
{
    char *path = tmp_path("opts.qcow2");
    BlockBackend *blk;
    Error *err = NULL;

    create_image(path, 1 * MiB, NULL);
    blk = open_image_opts(path, 0, "l2-cache-size=1M,refcount-cache-size=64k,"
                          "cache-clean-interval=30", &err);
    g_assert_nonnull(blk);
    blk_unref(blk);
    blk = open_image_opts(path, 0, "lazy-refcounts=on", &err);
    g_assert_null(blk);
    error_free(err);
    err = NULL;
    blk = open_image_opts(path, 0, "cache-size=1M,l2-cache-size=2M", &err);
    g_assert_null(blk);
    error_free(err);
    g_free(path);
}

static int amend(const char *path, const char *key, const char *value,
                 Error **errp)
{
    BlockBackend *blk = open_image(path, BDRV_O_RDWR);
    QDict *opts = qdict_new();
    int ret;

    qdict_put_str(opts, key, value);
    ret = bdrv_amend_options(blk_bs(blk), opts, false, errp);
    qobject_unref(opts);
    blk_unref(blk);
    return ret;
}

/* amend refcount_bits=N rewrites the refcounts; data and counts survive. */
static void test_amend_refcount_width(void)
{
    char *path = tmp_path("rcwidth.qcow2");
    static const struct { const char *bits; uint32_t order; } steps[] = {
        { "64", 6 }, { "1", 0 }, { "8", 3 }, { "2", 1 },
    };
    BlockBackend *blk;
    uint8_t buf[4096];
    Error *err = NULL;
    size_t i;

    create_image(path, 64 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 64 * KiB, 1);
    write_pattern(blk, 33 * MiB, 192 * KiB, 2);
    blk_unref(blk);
    for (i = 0; i < G_N_ELEMENTS(steps); i++) {
        g_assert_cmpint(amend(path, "refcount_bits", steps[i].bits, &err),
                        ==, 0);
        g_assert_null(err);
        file_pread(path, 96, buf, 4);
        g_assert_cmpuint(((uint32_t)buf[0] << 24 | buf[1] << 16 |
                          buf[2] << 8 | buf[3]), ==, steps[i].order);
        assert_clean(path);
        assert_qemu_check_clean(path);
        blk = open_image(path, BDRV_O_RDWR);
        assert_pattern(blk, 0, 64 * KiB, 1);
        assert_pattern(blk, 33 * MiB, 192 * KiB, 2);
        /* Allocation keeps working with the new width. */
        write_pattern(blk, (10 + i) * MiB, 4096, 10 + i);
        blk_unref(blk);
        assert_clean(path);
    }

    /* Two compressed clusters share a host cluster: refcount 2. */
    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    memset(buf, 'x', sizeof(buf));
    for (i = 0; i < 2; i++) {
        uint8_t *c = g_malloc0(64 * KiB);
        memcpy(c, buf, sizeof(buf));
        g_assert_cmpint(blk_pwrite_compressed(blk, i * 64 * KiB, 64 * KiB, c),
                        ==, 0);
        g_free(c);
    }
    blk_unref(blk);
    g_assert_cmpint(amend(path, "refcount_bits", "1", &err), <, 0);
    g_assert_nonnull(strstr(error_get_pretty(err), "Cannot decrease refcount "
                            "entry width to 1 bits"));
    error_free(err);
    err = NULL;
    file_pread(path, 96, buf, 4);
    g_assert_cmpuint(buf[3], ==, 4);
    assert_clean(path);
    g_free(path);
}

/* An L2 table on top of the refcount table must never be written. */
static void test_overlap_l2_on_reftable(void)
{
    char *path = tmp_path("ovl.qcow2");
    BlockBackend *blk;
    uint64_t reftable, l1, before[8], after[8];
    uint8_t buf[4096] = { 0x42 };

    create_image(path, 4 * MiB, NULL);
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 128 * KiB, 3);
    blk_unref(blk);
    reftable = file_be64(path, 48);
    l1 = file_be64(path, 40);
    file_put_be64(path, l1, (1ULL << 63) | reftable);  /* COPIED flag */
    file_pread(path, reftable, before, sizeof(before));

    blk = open_image(path, BDRV_O_RDWR);
    g_assert_cmpint(blk_pwrite(blk, 64 * KiB, sizeof(buf), buf, 0), ==,
                    -EIO);
    g_assert_cmpint(blk_pwrite(blk, 1 * MiB, sizeof(buf), buf, 0), <, 0);
    blk_unref(blk);
    file_pread(path, reftable, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);
    g_assert_cmpuint(file_be64(path, 72) & 2, ==, 2);    /* corrupt bit */
    g_free(path);
}

/* lazy_refcounts: v3 only; the feature bit is set and can be amended. */
static void test_lazy_refcounts(void)
{
    char *path = tmp_path("lazy.qcow2");
    QDict *opts = qdict_new();
    BlockBackend *blk;
    Error *err = NULL;

    create_image(path, 4 * MiB, "lazy_refcounts=on");
    g_assert_cmpuint(file_be64(path, 80), ==, 1);  /* compatible: lazy */
    blk = open_image(path, BDRV_O_RDWR);
    write_pattern(blk, 0, 64 * KiB, 4);
    blk_unref(blk);
    /* Refcounts stay exact: never dirty, nothing to repair. */
    g_assert_cmpuint(file_be64(path, 72) & 1, ==, 0);    /* dirty bit */
    assert_clean(path);
    g_assert_cmpint(amend(path, "lazy_refcounts", "off", &err), ==, 0);
    g_assert_cmpuint(file_be64(path, 80), ==, 0);
    g_assert_cmpint(amend(path, "compat", "0.10", &err), ==, 0);
    g_assert_cmpint(amend(path, "lazy_refcounts", "on", &err), <, 0);
    g_assert_nonnull(strstr(error_get_pretty(err), "use compat=1.1"));
    error_free(err);
    err = NULL;

    qdict_put_int(opts, "size", MiB);
    qdict_put_str(opts, "compat", "0.10");
    qdict_put_str(opts, "lazy_refcounts", "on");
    g_assert_cmpint(bdrv_create(bdrv_find_format("qcow2"), path, opts, &err),
                    <, 0);
    g_assert_nonnull(strstr(error_get_pretty(err), "use version=v3"));
    error_free(err);
    qobject_unref(opts);
    g_free(path);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    bdrv_init();
    tmpdir = g_dir_make_tmp("test-qcow2-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);

    g_test_add_func("/qcow2/create-matches-qemu", test_create_matches_qemu);
    g_test_add_func("/qcow2/roundtrip", test_roundtrip);
    g_test_add_data_func("/qcow2/reftable-growth/16bit",
                         "cluster_size=512", test_reftable_growth);
    g_test_add_data_func("/qcow2/reftable-growth/64bit",
                         "cluster_size=512,refcount_bits=64",
                         test_reftable_growth);
    g_test_add_data_func("/qcow2/reftable-growth/1bit",
                         "cluster_size=512,refcount_bits=1",
                         test_reftable_growth);
    g_test_add_func("/qcow2/zero-clusters", test_zero_clusters);
    g_test_add_func("/qcow2/discard", test_discard);
    g_test_add_func("/qcow2/compressed", test_compressed);
    g_test_add_func("/qcow2/backing", test_backing);
    g_test_add_func("/qcow2/l2-group-alloc", test_l2_group_alloc);
    g_test_add_func("/qcow2/dontcache", test_dontcache);
    g_test_add_func("/qcow2/l2-group-alloc-error", test_l2_group_alloc_error);
    g_test_add_func("/qcow2/check-leak-repair", test_check_leak_and_repair);
    g_test_add_func("/qcow2/corrupt-l2-entry", test_corrupt_l2_entry);
    g_test_add_func("/qcow2/hostile-headers", test_hostile_headers);
    g_test_add_func("/qcow2/unknown-ext-preserved",
                    test_unknown_ext_preserved);
    g_test_add_func("/qcow2/concurrent-writes", test_concurrent_writes);
    g_test_add_func("/qcow2/dirty-repair", test_dirty_repair);
    g_test_add_func("/qcow2/v2-image", test_v2_image);
    g_test_add_func("/qcow2/truncate", test_truncate);
    g_test_add_func("/qcow2/prealloc-metadata", test_prealloc_metadata);
    g_test_add_func("/qcow2/measure", test_measure);
    g_test_add_func("/qcow2/qemu-written-image", test_qemu_written_image);
    g_test_add_func("/qcow2/amend-refcount-width", test_amend_refcount_width);
    g_test_add_func("/qcow2/overlap-l2-on-reftable",
                    test_overlap_l2_on_reftable);
    g_test_add_func("/qcow2/lazy-refcounts", test_lazy_refcounts);
    g_test_add_func("/qcow2/options", test_bad_options);
    g_test_add_func("/qcow2/extended-l2", test_extended_l2);

    ret = g_test_run();
    run(NULL, "rm -rf '%s'", tmpdir);
    g_free(tmpdir);
    return ret;
}
