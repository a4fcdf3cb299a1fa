/*
 * Page cache probes for tests of BDRV_REQ_DONTCACHE.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "page-cache.h"

#include <sys/mman.h>
#include <sys/uio.h>
#include <linux/fs.h>

#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080
#endif

bool page_cache_has_dontcache(const char *path)
{
    int fd = open(path, O_RDWR);
    char byte = 0;
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    ssize_t ret;

    g_assert_cmpint(fd, >=, 0);
    /* Rewrites the first byte with itself. */
    ret = pread(fd, &byte, 1, 0);
    g_assert_cmpint(ret, >=, 0);
    ret = pwritev2(fd, &iov, 1, 0, RWF_DONTCACHE);
    close(fd);
    return ret == 1;
}

int64_t page_cache_resident(const char *path, int64_t offset, int64_t len)
{
    size_t page = sysconf(_SC_PAGESIZE);
    int fd = open(path, O_RDONLY);
    g_autofree unsigned char *vec = g_malloc(len / page);
    int64_t n = 0;
    void *map;

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(offset % page, ==, 0);
    map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, offset);
    g_assert(map != MAP_FAILED);
    g_assert_cmpint(mincore(map, len, vec), ==, 0);
    for (size_t i = 0; i < len / page; i++) {
        n += vec[i] & 1;
    }
    munmap(map, len);
    close(fd);
    return n;
}
