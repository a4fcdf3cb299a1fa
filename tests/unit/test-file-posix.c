/*
 * Tests of the file, raw and null-co/null-aio drivers through the block
 * layer: every I/O engine of the file driver, concurrency, end-of-file
 * reads, sparse files, truncation, creation and the raw window.
 */
#include "qemu/osdep.h"
#include "qemu/error.h"
#include "qemu/aio.h"
#include "qemu/iov.h"
#include "block/block_int.h"
#include "block/block-backend.h"
#include "page-cache.h"

#include <dirent.h>
#include <sys/vfs.h>

#ifdef CONFIG_LINUX_IO_URING
#include <liburing.h>
#endif

static char *test_dir;

typedef struct EngineCase {
    const char *name;
    const char *aio;            /* the "aio" option */
    bool direct;                /* open with cache.direct (BDRV_O_NOCACHE) */
} EngineCase;

static const EngineCase engine_cases[] = {
    { "threads", "threads", false },
    { "threads-direct", "threads", true },
    { "io_uring", "io_uring", false },
    { "io_uring-direct", "io_uring", true },
    { "native", "native", true },
};

static char *tmp_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
    }
}

/* Creates @path with @size bytes of pattern @seed (0: a sparse file). */
static void make_file(const char *path, size_t size, unsigned seed)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

    g_assert_cmpint(fd, >=, 0);
    if (seed) {
        g_autofree uint8_t *buf = g_malloc(size);

        fill_pattern(buf, size, seed);
        g_assert_cmpint(pwrite(fd, buf, size, 0), ==, size);
    } else {
        g_assert_cmpint(ftruncate(fd, size), ==, 0);
    }
    close(fd);
}

static bool fd_target_exists(const char *needle)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    bool found = false;

    g_assert(d);
    while (!found && (de = readdir(d))) {
        g_autofree char *link = g_strdup_printf("/proc/self/fd/%s",
                                                de->d_name);
        char target[256];
        ssize_t n = readlink(link, target, sizeof(target) - 1);

        if (n > 0) {
            target[n] = '\0';
            found = strstr(target, needle) != NULL;
        }
    }
    closedir(d);
    return found;
}

static bool aio_ring_mapped(void)
{
    g_autofree char *maps = NULL;

    g_assert(g_file_get_contents("/proc/self/maps", &maps, NULL, NULL));
    return strstr(maps, "/[aio]") != NULL;
}

/* Whether the host lets us run @c at all; marks the test skipped if not. */
static bool engine_usable(const EngineCase *c, const char *path)
{
    if (c->direct) {
        int fd = open(path, O_RDONLY | O_DIRECT);

        if (fd < 0) {
            g_test_skip("O_DIRECT is not supported here");
            return false;
        }
        close(fd);
    }
    if (!strcmp(c->aio, "io_uring")) {
#ifdef CONFIG_LINUX_IO_URING
        struct io_uring ring;

        if (io_uring_queue_init(4, &ring, 0) < 0) {
            g_test_skip("io_uring is not available");
            return false;
        }
        io_uring_queue_exit(&ring);
#else
        g_test_skip("built without io_uring");
        return false;
#endif
    }
    if (!strcmp(c->aio, "native")) {
#ifndef CONFIG_LINUX_AIO
        g_test_skip("built without Linux AIO");
        return false;
#endif
    }
    return true;
}

static BlockBackend *open_file(const char *path, const char *aio,
                               bool direct, int extra_flags)
{
    QDict *opts = qdict_new();
    Error *err = NULL;
    BlockBackend *blk;

    qdict_put_str(opts, "driver", "file");
    qdict_put_str(opts, "filename", path);
    if (aio) {
        qdict_put_str(opts, "aio", aio);
    }
    blk = blk_new_open(NULL, NULL, opts,
                       BDRV_O_RDWR | (direct ? BDRV_O_NOCACHE : 0) |
                       extra_flags, &err);
    if (!blk) {
        g_error("open %s: %s", path, error_get_pretty(err));
    }
    return blk;
}

/* Opening @json must fail with exactly @msg. */
static void assert_open_error(const char *json, int flags, const char *msg)
{
    Error *err = NULL;
    QDict *opts = qdict_from_json(json, &error_abort);
    BlockBackend *blk = blk_new_open(NULL, NULL, opts, flags, &err);

    g_assert_null(blk);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

/* ---- round trips per engine ---- */

static void test_engine_rw(gconstpointer opaque)
{
    const EngineCase *c = opaque;
    g_autofree char *path = tmp_path("rw.img");
    const size_t size = 4 * MiB;
    uint8_t *wbuf = qemu_memalign(4096, 1 * MiB);
    uint8_t *rbuf = qemu_memalign(4096, 1 * MiB);
    BlockBackend *blk;

    make_file(path, size, 0);
    if (!engine_usable(c, path)) {
        qemu_vfree(wbuf);
        qemu_vfree(rbuf);
        return;
    }
    blk = open_file(path, c->aio, c->direct, 0);
    if (!strcmp(c->aio, "io_uring")) {
        g_assert_true(fd_target_exists("io_uring"));
    }
    if (!strcmp(c->aio, "native")) {
        g_assert_true(aio_ring_mapped());
    }
    if (c->direct) {
        g_assert_cmpuint(blk_bs(blk)->bl.request_alignment, >=, 512);
        g_assert_true(is_power_of_2(blk_bs(blk)->bl.request_alignment));
    } else {
        g_assert_cmpuint(blk_bs(blk)->bl.request_alignment, ==, 1);
    }

    /* Aligned, unaligned (read-modify-write with O_DIRECT) and large. */
    struct { int64_t off, len; } reqs[] = {
        { 0, 4096 }, { 65536, 1 * MiB }, { 8192 + 100, 3000 },
        { size - 4096, 4096 },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(reqs); i++) {
        fill_pattern(wbuf, reqs[i].len, i + 1);
        g_assert_cmpint(blk_pwrite(blk, reqs[i].off, reqs[i].len, wbuf, 0),
                        ==, 0);
        memset(rbuf, 0xee, reqs[i].len);
        g_assert_cmpint(blk_pread(blk, reqs[i].off, reqs[i].len, rbuf, 0),
                        ==, 0);
        g_assert_cmpmem(rbuf, reqs[i].len, wbuf, reqs[i].len);
    }
    g_assert_cmpint(blk_flush(blk), ==, 0);
    blk_unref(blk);

    /* The data really is in the file. */
    {
        g_autofree char *contents = NULL;
        gsize len;

        g_assert(g_file_get_contents(path, &contents, &len, NULL));
        g_assert_cmpuint(len, ==, size);
        fill_pattern(wbuf, 3000, 3);
        g_assert_cmpmem(contents + 8192 + 100, 3000, wbuf, 3000);
    }
    qemu_vfree(wbuf);
    qemu_vfree(rbuf);
}

/*
 * Vectors the kernel would refuse as they are (more than IOV_MAX
 * elements, or misaligned buffers under O_DIRECT) must still work.
 */
static void test_engine_odd_vectors(gconstpointer opaque)
{
    const EngineCase *c = opaque;
    g_autofree char *path = tmp_path("vec.img");
    const int niov = IOV_MAX + 476;
    const size_t len = (size_t)niov * 512;
    uint8_t *buf = qemu_memalign(4096, len + 4096);
    uint8_t *check = g_malloc(len);
    QEMUIOVector qiov;
    BlockBackend *blk;

    make_file(path, 2 * MiB, 0);
    if (!engine_usable(c, path)) {
        qemu_vfree(buf);
        g_free(check);
        return;
    }
    blk = open_file(path, c->aio, c->direct, 0);

    fill_pattern(buf, len, 9);
    qemu_iovec_init(&qiov, niov);
    for (int i = 0; i < niov; i++) {
        qemu_iovec_add(&qiov, buf + i * 512, 512);
    }
    g_assert_cmpint(blk_pwritev(blk, 0, len, &qiov, 0), ==, 0);
    memset(buf, 0, len);
    g_assert_cmpint(blk_preadv(blk, 0, len, &qiov, 0), ==, 0);
    fill_pattern(check, len, 9);
    g_assert_cmpmem(buf, len, check, len);
    qemu_iovec_destroy(&qiov);

    /* A buffer 8 bytes off any sector alignment. */
    fill_pattern(buf + 8, 4096, 10);
    g_assert_cmpint(blk_pwrite(blk, 4096, 4096, buf + 8, 0), ==, 0);
    memset(buf, 0, 8192);
    g_assert_cmpint(blk_pread(blk, 4096, 4096, buf + 8, 0), ==, 0);
    fill_pattern(check, 4096, 10);
    g_assert_cmpmem(buf + 8, 4096, check, 4096);

    blk_unref(blk);
    qemu_vfree(buf);
    g_free(check);
}

/* ---- many requests in flight ---- */

#define CONC_REQS 320
#define CONC_LEN (16 * KiB)

typedef struct ConcState {
    int pending;
    int failures;
} ConcState;

static void conc_cb(void *opaque, int ret)
{
    ConcState *cs = opaque;

    if (ret < 0) {
        cs->failures++;
    }
    cs->pending--;
}

static void test_engine_concurrent(gconstpointer opaque)
{
    const EngineCase *c = opaque;
    g_autofree char *path = tmp_path("conc.img");
    uint8_t *bufs[CONC_REQS];
    QEMUIOVector qiovs[CONC_REQS];
    ConcState cs = { 0 };
    g_autofree uint8_t *check = g_malloc(CONC_LEN);
    BlockBackend *blk;

    make_file(path, CONC_REQS * CONC_LEN, 0);
    if (!engine_usable(c, path)) {
        return;
    }
    blk = open_file(path, c->aio, c->direct, 0);

    /* More requests than the engines' queue depth, all at once. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < CONC_REQS; i++) {
            bufs[i] = qemu_memalign(4096, CONC_LEN);
            if (round < 2) {
                fill_pattern(bufs[i], CONC_LEN, 100 * round + i);
            }
            qemu_iovec_init_buf(&qiovs[i], bufs[i], CONC_LEN);
            cs.pending++;
            if (round < 2) {
                blk_aio_pwritev(blk, (int64_t)i * CONC_LEN, &qiovs[i], 0,
                                conc_cb, &cs);
            } else {
                blk_aio_preadv(blk, (int64_t)i * CONC_LEN, &qiovs[i], 0,
                               conc_cb, &cs);
            }
        }
        g_assert_cmpint(cs.pending, >, 0);
        AIO_WAIT_WHILE(cs.pending > 0);
        g_assert_cmpint(cs.failures, ==, 0);
        for (int i = 0; i < CONC_REQS; i++) {
            if (round == 2) {
                fill_pattern(check, CONC_LEN, 100 + i);
                g_assert_cmpmem(bufs[i], CONC_LEN, check, CONC_LEN);
            }
            qemu_vfree(bufs[i]);
        }
    }
    blk_unref(blk);
}

/* ---- end of file ---- */

static void test_short_read(gconstpointer opaque)
{
    const EngineCase *c = opaque;
    g_autofree char *path = tmp_path("short.img");
    uint8_t *buf = qemu_memalign(4096, 8192);
    g_autofree uint8_t *expect = g_malloc0(8192);
    BlockBackend *blk;

    /* 1000 bytes: the last sector is partial. */
    make_file(path, 1000, 5);
    if (!engine_usable(c, path)) {
        qemu_vfree(buf);
        return;
    }
    blk = open_file(path, c->aio, c->direct, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 1024);

    memset(buf, 0xee, 8192);
    g_assert_cmpint(blk_pread(blk, 0, 1024, buf, 0), ==, 0);
    fill_pattern(expect, 1000, 5);
    g_assert_cmpmem(buf, 1024, expect, 1024);

    memset(buf, 0xee, 8192);
    g_assert_cmpint(blk_pread(blk, 512, 512, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 512, expect + 512, 512);

    blk_unref(blk);
    qemu_vfree(buf);
}

/* ---- BDRV_REQ_DONTCACHE ---- */

/*
 * A buffered write with BDRV_REQ_DONTCACHE leaves the page cache once it
 * is on disk; one without stays.  With O_DIRECT the flag is not offered.
 */
static void test_dontcache(gconstpointer opaque)
{
    const EngineCase *c = opaque;
    g_autofree char *path = tmp_path("dontcache.img");
    const int64_t half = 4 * MiB;
    const int64_t pages = half / sysconf(_SC_PAGESIZE);
    uint8_t *buf = qemu_memalign(4096, 2 * half);
    g_autofree uint8_t *check = g_malloc(2 * half);
    BlockBackend *blk;

    make_file(path, 2 * half, 0);
    if (!engine_usable(c, path)) {
        qemu_vfree(buf);
        return;
    }
    blk = open_file(path, c->aio, c->direct, 0);
    if (c->direct) {
        g_assert_false(blk_bs(blk)->supported_write_flags &
                       BDRV_REQ_DONTCACHE);
        goto out;
    }
    g_assert_true(blk_bs(blk)->supported_write_flags & BDRV_REQ_DONTCACHE);
    if (!page_cache_has_dontcache(path)) {
        g_test_skip("no RWF_DONTCACHE here (Linux before 6.14?)");
        goto out;
    }

    fill_pattern(buf, 2 * half, 9);
    g_assert_cmpint(blk_pwrite(blk, 0, half, buf, BDRV_REQ_DONTCACHE), ==, 0);
    g_assert_cmpint(blk_pwrite(blk, half, half, buf + half, 0), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, 0);
    /* Thresholds, not counts: the kernel may keep or reclaim a few pages. */
    g_assert_cmpint(page_cache_resident(path, 0, half), <, pages / 2);
    g_assert_cmpint(page_cache_resident(path, half, half), >, pages / 2);

    memset(buf, 0, 2 * half);
    g_assert_cmpint(blk_pread(blk, 0, 2 * half, buf, 0), ==, 0);
    fill_pattern(check, 2 * half, 9);
    g_assert_cmpmem(buf, 2 * half, check, 2 * half);
out:
    blk_unref(blk);
    qemu_vfree(buf);
}

/* ---- sparse files ---- */

static bool fs_supports_holes(const char *path)
{
    int fd = open(path, O_RDWR);
    bool ok;

    g_assert_cmpint(fd, >=, 0);
    ok = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                   4096) == 0 && lseek(fd, 0, SEEK_DATA) != 0;
    close(fd);
    return ok;
}

static void test_sparse(void)
{
    g_autofree char *path = tmp_path("sparse.img");
    g_autofree uint8_t *buf = g_malloc(256 * KiB);
    g_autofree uint8_t *zero = g_malloc0(256 * KiB);
    BlockDriverState *bs, *file;
    int64_t pnum, map, alloc_before;
    BlockBackend *blk;
    int ret;

    make_file(path, 4 * MiB, 0);
    if (!fs_supports_holes(path)) {
        g_test_skip("the file system has no holes");
        return;
    }
    blk = open_file(path, NULL, false, BDRV_O_UNMAP);
    bs = blk_bs(blk);

    g_assert_cmpint(bdrv_get_allocated_file_size(bs), ==, 0);
    fill_pattern(buf, 256 * KiB, 1);
    g_assert_cmpint(blk_pwrite(blk, 1 * MiB, 256 * KiB, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_get_allocated_file_size(bs), >=, 256 * KiB);

    ret = bdrv_block_status(bs, 0, 4 * MiB, &pnum, &map, &file);
    g_assert_cmpint(ret, >=, 0);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    g_assert_false(ret & BDRV_BLOCK_DATA);
    g_assert_true(ret & BDRV_BLOCK_OFFSET_VALID);
    g_assert_cmpint(pnum, ==, 1 * MiB);
    g_assert_cmpint(map, ==, 0);
    g_assert_true(file == bs);

    ret = bdrv_block_status(bs, 1 * MiB, 4 * MiB, &pnum, &map, &file);
    g_assert_true(ret & BDRV_BLOCK_DATA);
    g_assert_false(ret & BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 256 * KiB);
    g_assert_cmpint(map, ==, 1 * MiB);

    ret = bdrv_block_status(bs, 1 * MiB + 256 * KiB, 4 * MiB, &pnum, &map,
                            &file);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    g_assert_true(ret & BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 3 * MiB - 256 * KiB);

    /* Write-zeroes with unmap punches a hole. */
    alloc_before = bdrv_get_allocated_file_size(bs);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 1 * MiB, 64 * KiB,
                                      BDRV_REQ_MAY_UNMAP), ==, 0);
    g_assert_cmpint(bdrv_get_allocated_file_size(bs), <, alloc_before);
    ret = bdrv_block_status(bs, 1 * MiB, 4 * MiB, &pnum, &map, &file);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    g_assert_cmpint(blk_pread(blk, 1 * MiB, 64 * KiB, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 64 * KiB, zero, 64 * KiB);

    /* Without unmap the range reads back as zeroes too. */
    g_assert_cmpint(blk_pwrite_zeroes(blk, 1 * MiB + 64 * KiB, 64 * KiB, 0),
                    ==, 0);
    g_assert_cmpint(blk_pread(blk, 1 * MiB + 64 * KiB, 64 * KiB, buf, 0),
                    ==, 0);
    g_assert_cmpmem(buf, 64 * KiB, zero, 64 * KiB);

    /* Discard deallocates; the rest of the data survives. */
    g_assert_cmpint(blk_pdiscard(blk, 1 * MiB + 128 * KiB, 64 * KiB), ==, 0);
    ret = bdrv_block_status(bs, 1 * MiB + 128 * KiB, 4 * MiB, &pnum, &map,
                            &file);
    g_assert_true(ret & BDRV_BLOCK_ZERO);
    g_assert_cmpint(blk_pread(blk, 1 * MiB + 192 * KiB, 64 * KiB, buf, 0),
                    ==, 0);
    fill_pattern(zero, 256 * KiB, 1);
    g_assert_cmpmem(buf, 64 * KiB, zero + 192 * KiB, 64 * KiB);

    /* Zeroes past the end grow the file (when the user allows that). */
    blk_set_allow_write_beyond_eof(blk, true);
    g_assert_cmpint(blk_pwrite_zeroes(blk, 4 * MiB, 1 * MiB, 0), ==, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 5 * MiB);

    blk_unref(blk);
}

/* ---- truncate and create ---- */

static int64_t file_size(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return st.st_size;
}

static int64_t file_alloc(const char *path)
{
    struct stat st;

    g_assert_cmpint(stat(path, &st), ==, 0);
    return (int64_t)st.st_blocks * 512;
}

static void test_truncate(void)
{
    g_autofree char *path = tmp_path("trunc.img");
    Error *err = NULL;
    BlockBackend *blk;

    make_file(path, 64 * KiB, 3);
    blk = open_file(path, NULL, false, 0);

    g_assert_cmpint(blk_truncate(blk, 1 * MiB, true, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 1 * MiB);
    g_assert_cmpint(blk_getlength(blk), ==, 1 * MiB);
    g_assert_cmpint(file_alloc(path), <, 1 * MiB);

    g_assert_cmpint(blk_truncate(blk, 2 * MiB, true, PREALLOC_MODE_FALLOC, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 2 * MiB);
    g_assert_cmpint(file_alloc(path), >=, 1 * MiB);

    g_assert_cmpint(blk_truncate(blk, 3 * MiB, true, PREALLOC_MODE_FULL, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 3 * MiB);
    g_assert_cmpint(file_alloc(path), >=, 2 * MiB);

    g_assert_cmpint(blk_truncate(blk, 1 * MiB, true, PREALLOC_MODE_FULL, 0,
                                 &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot use preallocation for shrinking files");
    error_free(err);
    err = NULL;

    g_assert_cmpint(blk_truncate(blk, 4 * MiB, true, PREALLOC_MODE_METADATA,
                                 0, &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Unsupported preallocation mode: metadata");
    error_free(err);
    g_assert_cmpint(file_size(path), ==, 3 * MiB);

    g_assert_cmpint(blk_truncate(blk, 4096, true, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 4096);
    g_assert_cmpint(blk_getlength(blk), ==, 4096);
    blk_unref(blk);
}

static int create_file(const char *path, const char *size,
                       const char *prealloc, Error **errp)
{
    g_autoptr(QDict) opts = qdict_new();

    if (size) {
        qdict_put_str(opts, "size", size);
    }
    if (prealloc) {
        qdict_put_str(opts, "preallocation", prealloc);
    }
    return bdrv_create(bdrv_find_format("file"), path, opts, errp);
}

static void test_create(void)
{
    g_autofree char *path = tmp_path("create.img");
    g_autofree char *full = tmp_path("create-full.img");
    g_autofree char *prefixed = g_strdup_printf("file:%s", path);
    Error *err = NULL;

    g_assert_cmpint(create_file(path, "1M", NULL, &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 1 * MiB);
    g_assert_cmpint(file_alloc(path), <, 1 * MiB);

    /* Creating again resets the content; the protocol prefix is accepted. */
    make_file(path, 8192, 4);
    g_assert_cmpint(create_file(prefixed, "4k", NULL, &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 4096);
    g_assert_cmpint(file_alloc(path), ==, 0);

    g_assert_cmpint(create_file(full, "2M", "full", &error_abort), ==, 0);
    g_assert_cmpint(file_size(full), ==, 2 * MiB);
    g_assert_cmpint(file_alloc(full), >=, 2 * MiB);

    g_assert_cmpint(create_file("/nonexistent-dir/x.img", "1M", NULL, &err),
                    ==, -ENOENT);
    g_assert_cmpstr(error_get_pretty(err), ==, "Could not create "
                    "'/nonexistent-dir/x.img': No such file or directory");
    error_free(err);
    err = NULL;

    g_assert_cmpint(create_file(path, "1M", "metadata", &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Unsupported preallocation mode: metadata");
    error_free(err);
    err = NULL;

    g_assert_cmpint(create_file(path, "1M", "bogus", &err), <, 0);
    g_assert_nonnull(err);
    error_free(err);
}

static void test_open_errors(void)
{
    g_autofree char *path = tmp_path("errors.img");
    g_autofree char *json = NULL;
    g_autofree char *json2 = NULL;
    Error *err = NULL;
    BlockDriverState *bs;

    assert_open_error("{\"driver\": \"file\", \"filename\": \"/nonexistent\"}",
                      BDRV_O_RDWR, "Could not open '/nonexistent': "
                      "No such file or directory");

    make_file(path, 4096, 1);
    json = g_strdup_printf("{\"driver\": \"file\", \"filename\": \"%s\", "
                           "\"aio\": \"native\"}", path);
    assert_open_error(json, BDRV_O_RDWR, "aio=native was specified, but it "
                      "requires cache.direct=on, which was not specified.");

    json2 = g_strdup_printf("{\"driver\": \"file\", \"filename\": \"%s\", "
                            "\"aio-max-batch\": -1}", path);
    assert_open_error(json2, BDRV_O_RDWR,
                      "aio-max-batch must be a non-negative integer");

    assert_open_error("{\"driver\": \"file\", \"filename\": \"/\"}", 0,
                      "'file' driver requires '/' to be a regular file or "
                      "a block device");

    /* "file:" names the protocol explicitly. */
    g_free(json);
    json = g_strdup_printf("file:%s", path);
    bs = bdrv_open(json, NULL, NULL, BDRV_O_PROTOCOL, &err);
    g_assert_nonnull(bs);
    g_assert_cmpstr(bs->drv->format_name, ==, "file");
    g_assert_cmpint(bdrv_getlength(bs), ==, 4096);
    bdrv_unref(bs);
}

/* ---- raw ---- */

static BlockBackend *open_raw(const char *path, const char *extra_json,
                              Error **errp)
{
    g_autofree char *json = g_strdup_printf(
        "{\"driver\": \"raw\", \"file\": {\"driver\": \"file\", "
        "\"filename\": \"%s\"}%s}", path, extra_json);
    QDict *opts = qdict_from_json(json, &error_abort);

    return blk_new_open(NULL, NULL, opts, BDRV_O_RDWR, errp);
}

static void test_raw_window(void)
{
    g_autofree char *path = tmp_path("raw.img");
    g_autofree uint8_t *buf = g_malloc(64 * KiB);
    g_autofree uint8_t *expect = g_malloc(1 * MiB);
    g_autofree char *contents = NULL;
    BlockDriverState *file;
    int64_t pnum, map;
    BlockBackend *blk;
    Error *err = NULL;
    int ret;

    make_file(path, 1 * MiB, 7);
    fill_pattern(expect, 1 * MiB, 7);

    blk = open_raw(path, ", \"offset\": 65536, \"size\": 131072",
                   &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 128 * KiB);
    g_assert_cmpint(blk_pread(blk, 0, 4096, buf, 0), ==, 0);
    g_assert_cmpmem(buf, 4096, expect + 64 * KiB, 4096);

    memset(buf, 0x5a, 4096);
    g_assert_cmpint(blk_pwrite(blk, 128 * KiB - 4096, 4096, buf, 0), ==, 0);
    ret = bdrv_block_status(blk_bs(blk), 4096, 8192, &pnum, &map, &file);
    g_assert_true(ret & BDRV_BLOCK_OFFSET_VALID);
    g_assert_cmpint(map, ==, 64 * KiB + 4096);
    g_assert_true(file == blk_bs(blk)->file->bs);

    g_assert_cmpint(blk_truncate(blk, 1 * MiB, true, PREALLOC_MODE_OFF, 0,
                                 &err), ==, -ENOTSUP);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot resize fixed-size raw disks");
    error_free(err);
    err = NULL;
    blk_unref(blk);

    g_assert(g_file_get_contents(path, &contents, NULL, NULL));
    memset(expect + 192 * KiB - 4096, 0x5a, 4096);
    g_assert_cmpmem(contents, 1 * MiB, expect, 1 * MiB);

    /* Offset only: the window runs to the end and can be resized. */
    blk = open_raw(path, ", \"offset\": 1024", &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 1 * MiB - 1024);
    g_assert_cmpint(blk_truncate(blk, 2 * MiB, true, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(file_size(path), ==, 2 * MiB + 1024);
    blk_unref(blk);

    g_assert_null(open_raw(path, ", \"offset\": 4194304", &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Offset (4194304) cannot be "
                    "greater than size of the containing file (2098176)");
    error_free(err);
    err = NULL;

    g_assert_null(open_raw(path, ", \"offset\": 512, \"size\": 2098176",
                           &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "The sum of offset (512) and "
                    "size (2098176) has to be smaller or equal to the  actual "
                    "size of the containing file (2098176)");
    error_free(err);
    err = NULL;

    g_assert_null(open_raw(path, ", \"size\": 1000", &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Specified size is not multiple of 512");
    error_free(err);
}

static void test_raw_passthrough(void)
{
    g_autofree char *path = tmp_path("rawpass.img");
    g_autofree char *created = tmp_path("rawcreate.img");
    g_autoptr(QDict) copts = qdict_new();
    g_autofree uint8_t *buf = g_malloc(64 * KiB);
    int64_t pnum, map;
    BlockDriverState *file;
    BlockBackend *blk;
    int ret;

    make_file(path, 1 * MiB, 0);
    blk = open_raw(path, "", &error_abort);
    g_assert_cmpint(blk_getlength(blk), ==, 1 * MiB);
    fill_pattern(buf, 64 * KiB, 2);
    g_assert_cmpint(blk_pwrite(blk, 128 * KiB, 64 * KiB, buf, 0), ==, 0);
    g_assert_cmpint(blk_flush(blk), ==, 0);

    if (fs_supports_holes(path)) {
        /* The file below answers: a hole, then data. */
        ret = bdrv_block_status(blk_bs(blk), 0, 1 * MiB, &pnum, &map, &file);
        g_assert_true(ret & BDRV_BLOCK_ZERO);
        g_assert_cmpint(pnum, ==, 128 * KiB);
        ret = bdrv_block_status(blk_bs(blk), 128 * KiB, 1 * MiB, &pnum, &map,
                                &file);
        g_assert_true(ret & BDRV_BLOCK_DATA);
        g_assert_cmpint(pnum, ==, 64 * KiB);
        g_assert_true(file == blk_bs(blk)->file->bs);
    }
    g_assert_cmpint(blk_truncate(blk, 2 * MiB, true, PREALLOC_MODE_OFF, 0,
                                 &error_abort), ==, 0);
    g_assert_cmpint(blk_getlength(blk), ==, 2 * MiB);
    blk_unref(blk);

    qdict_put_str(copts, "size", "3M");
    g_assert_cmpint(bdrv_create(bdrv_find_format("raw"), created, copts,
                                &error_abort), ==, 0);
    g_assert_cmpint(file_size(created), ==, 3 * MiB);
}

/* ---- null-co / null-aio ---- */

static void test_null(void)
{
    const char *drivers[] = { "null-co", "null-aio" };
    uint8_t buf[512];
    Error *err = NULL;

    for (unsigned i = 0; i < ARRAY_SIZE(drivers); i++) {
        g_autofree char *json = g_strdup_printf("{\"driver\": \"%s\"}",
                                                drivers[i]);
        g_autofree char *json_z = g_strdup_printf(
            "{\"driver\": \"%s\", \"size\": 8192, \"read-zeroes\": true}",
            drivers[i]);
        g_autofree char *json_lat = g_strdup_printf(
            "{\"driver\": \"%s\", \"latency-ns\": 20000000}", drivers[i]);
        BlockBackend *blk;
        int64_t start;

        blk = blk_new_open(NULL, NULL, qdict_from_json(json, &error_abort),
                           BDRV_O_RDWR, &error_abort);
        g_assert_cmpint(blk_getlength(blk), ==, 1 * GiB);
        memset(buf, 0xab, sizeof(buf));
        g_assert_cmpint(blk_pread(blk, 4096, 512, buf, 0), ==, 0);
        for (unsigned j = 0; j < sizeof(buf); j++) {
            g_assert_cmpint(buf[j], ==, 0xab);
        }
        g_assert_cmpint(blk_pwrite(blk, 0, 512, buf, 0), ==, 0);
        g_assert_cmpint(blk_flush(blk), ==, 0);
        blk_unref(blk);

        blk = blk_new_open(NULL, NULL, qdict_from_json(json_z, &error_abort),
                           BDRV_O_RDWR, &error_abort);
        g_assert_cmpint(blk_getlength(blk), ==, 8192);
        g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
        for (unsigned j = 0; j < sizeof(buf); j++) {
            g_assert_cmpint(buf[j], ==, 0);
        }
        blk_unref(blk);

        blk = blk_new_open(NULL, NULL,
                           qdict_from_json(json_lat, &error_abort),
                           BDRV_O_RDWR, &error_abort);
        start = qemu_clock_get_ns();
        g_assert_cmpint(blk_pread(blk, 0, 512, buf, 0), ==, 0);
        g_assert_cmpint(qemu_clock_get_ns() - start, >=, 20000000);
        blk_unref(blk);
    }

    g_assert_null(bdrv_open("null-co://foo", NULL, NULL, BDRV_O_PROTOCOL,
                            &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "The only allowed filename for this driver is "
                    "'null-co://'");
    error_free(err);
}

/* The test directory holds plain files only. */
static void remove_test_dir(void)
{
    GDir *dir = g_dir_open(test_dir, 0, NULL);
    const char *name;

    while (dir && (name = g_dir_read_name(dir))) {
        g_autofree char *path = g_build_filename(test_dir, name, NULL);

        unlink(path);
    }
    if (dir) {
        g_dir_close(dir);
    }
    rmdir(test_dir);
    g_free(test_dir);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    qemu_get_aio_context();
    bdrv_init();
    test_dir = g_dir_make_tmp("test-file-posix-XXXXXX", NULL);
    g_assert(test_dir);

    for (unsigned i = 0; i < ARRAY_SIZE(engine_cases); i++) {
        const EngineCase *c = &engine_cases[i];
        g_autofree char *rw = g_strdup_printf("/file/%s/rw", c->name);
        g_autofree char *vec = g_strdup_printf("/file/%s/odd-vectors",
                                               c->name);
        g_autofree char *conc = g_strdup_printf("/file/%s/concurrent",
                                                c->name);
        g_autofree char *eof = g_strdup_printf("/file/%s/short-read",
                                               c->name);
        g_autofree char *dc = g_strdup_printf("/file/%s/dontcache", c->name);

        g_test_add_data_func(rw, c, test_engine_rw);
        g_test_add_data_func(vec, c, test_engine_odd_vectors);
        g_test_add_data_func(conc, c, test_engine_concurrent);
        g_test_add_data_func(eof, c, test_short_read);
        g_test_add_data_func(dc, c, test_dontcache);
    }
    g_test_add_func("/file/sparse", test_sparse);
    g_test_add_func("/file/truncate", test_truncate);
    g_test_add_func("/file/create", test_create);
    g_test_add_func("/file/open-errors", test_open_errors);
    g_test_add_func("/raw/window", test_raw_window);
    g_test_add_func("/raw/passthrough", test_raw_passthrough);
    g_test_add_func("/null/basic", test_null);

    ret = g_test_run();
    remove_test_dir();
    return ret;
}
