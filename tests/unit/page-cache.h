/*
 * Page cache probes for tests of BDRV_REQ_DONTCACHE.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef TESTS_UNIT_PAGE_CACHE_H
#define TESTS_UNIT_PAGE_CACHE_H

#include "qemu/osdep.h"

/* Does the kernel take RWF_DONTCACHE for a buffered write to @path? */
bool page_cache_has_dontcache(const char *path);

/* Pages of [offset, offset + len) of @path in the page cache. */
int64_t page_cache_resident(const char *path, int64_t offset, int64_t len);

#endif
