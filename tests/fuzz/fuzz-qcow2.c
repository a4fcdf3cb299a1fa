/*
 * libFuzzer target: opens the input as a qcow2 image (read-write, no
 * backing file) and exercises reads, block status, an allocating write,
 * a compressed write, discard and a read-only check.  Hostile images must
 * fail cleanly: no crash, hang or absurd allocation.
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "block/block-backend.h"
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(BlockBackend *blk)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t len = blk_getlength(blk);
    uint8_t buf[4096];
    int64_t pnum, map, off;
    BlockDriverState *file;
    BdrvCheckResult res = { 0 };
    int i;

    if (len <= 0) {
        return;
    }
    for (i = 0, off = 0; i < 8 && off < len; i++, off += 65536 * 7 + 512) {
        int64_t n = MIN((int64_t)sizeof(buf), len - off);
        blk_pread(blk, off, n, buf, 0);
        bdrv_block_status(bs, off, MIN(len - off, 1 << 20), &pnum, &map,
                          &file);
    }
    memset(buf, 0xa5, sizeof(buf));
    blk_pwrite(blk, 512, MIN((int64_t)sizeof(buf), len - 512 > 0 ?
                             len - 512 : 0), buf, 0);
    blk_pwrite_zeroes(blk, 0, MIN(len, 65536), BDRV_REQ_MAY_UNMAP);
    blk_pdiscard(blk, 0, MIN(len, 1 << 20));
    blk_pread(blk, 0, MIN((int64_t)sizeof(buf), len), buf, 0);
    bdrv_check(bs, &res, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool initialized;
    char path[64];
    QDict *opts;
    BlockBackend *blk;
    Error *err = NULL;
    int fd;

    if (!initialized) {
        bdrv_init();
        initialized = true;
    }
    if (size > 4 * MiB) {
        return 0;
    }
    fd = memfd_create("fuzz-qcow2", 0);
    if (fd < 0) {
        return 0;
    }
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    opts = qdict_new();
    qdict_put_str(opts, "driver", "qcow2");
    blk = blk_new_open(path, NULL, opts,
                       BDRV_O_RDWR | BDRV_O_NO_BACKING | BDRV_O_UNMAP, &err);
    if (blk) {
        exercise(blk);
        blk_unref(blk);
    } else {
        error_free(err);
    }
    close(fd);
    return 0;
}
